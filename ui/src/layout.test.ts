import { describe, expect, it } from "vitest";
import { gridShape, spotlightOf } from "./layout";

describe("gridShape", () => {
  it("fills a wide area side by side and a tall one stacked", () => {
    expect(gridShape(2, 1600, 450)).toEqual({ columns: 2, rows: 1 });
    expect(gridShape(2, 400, 900)).toEqual({ columns: 1, rows: 2 });
  });
  it("reflows as people join", () => {
    expect(gridShape(1, 1280, 720).columns).toBe(1);
    expect(gridShape(4, 1280, 720)).toEqual({ columns: 2, rows: 2 });
    expect(gridShape(7, 1280, 720).columns).toBe(3);
  });
});

describe("spotlightOf", () => {
  it("prefers the pinned, then the speaker, then the first", () => {
    expect(spotlightOf(["a", "b"], "b", "a")).toBe("b");
    expect(spotlightOf(["a", "b"], null, "b")).toBe("b");
    expect(spotlightOf(["a", "b"], "gone", null)).toBe("a");
    expect(spotlightOf([], null, null)).toBeNull();
  });
});
