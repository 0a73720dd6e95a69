import { h } from "./dom";

const SHOWN_MS = 6000;
const MAX_TOASTS = 4;

/** A short message in the corner; errors stay a little longer. */
export function toast(text: string, kind: "info" | "error" = "info"): void {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts" });
    document.body.append(box);
  }
  const item = h("div", { class: `toast toast-${kind}` }, text);
  box.append(item);
  while (box.children.length > MAX_TOASTS) box.firstElementChild?.remove();
  window.setTimeout(() => item.remove(), kind === "error" ? SHOWN_MS * 2 : SHOWN_MS);
}
