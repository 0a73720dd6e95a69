import { describe, expect, it } from "vitest";
import { h } from "./dom";

describe("h", () => {
  it("renders names and chat text as text, never as markup", () => {
    const hostile = "<img src=x onerror=alert(1)>";
    const element = h("li", {}, hostile, h("span", {}, hostile));
    expect(element.querySelector("img")).toBeNull();
    expect(element.textContent).toBe(hostile + hostile);
  });
});
