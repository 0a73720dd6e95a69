import { describe, expect, it } from "vitest";
import { shortcutOf } from "./shortcuts";

const key = (k: string, mods: Partial<{ ctrlKey: boolean; shiftKey: boolean; metaKey: boolean; altKey: boolean }> = {}) => ({
  key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods,
});

describe("shortcutOf", () => {
  it("maps the documented keys", () => {
    expect(shortcutOf(key("d", { ctrlKey: true }))).toBe("toggle-mic");
    expect(shortcutOf(key("E", { metaKey: true }))).toBe("toggle-camera");
    expect(shortcutOf(key("H", { ctrlKey: true, shiftKey: true }))).toBe("hang-up");
  });
  it("leaves plain typing alone", () => {
    expect(shortcutOf(key("d"))).toBeNull();
    expect(shortcutOf(key("h", { ctrlKey: true }))).toBeNull();
    expect(shortcutOf(key("d", { ctrlKey: true, altKey: true }))).toBeNull();
  });
});
