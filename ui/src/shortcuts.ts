// Keyboard shortcuts of the call screen. All need Ctrl (or Cmd), so they
// work while typing in the chat box without eating any text.

export type Shortcut = "toggle-mic" | "toggle-camera" | "hang-up";

export const SHORTCUT_HELP: Record<Shortcut, string> = {
  "toggle-mic": "Ctrl+D",
  "toggle-camera": "Ctrl+E",
  "hang-up": "Ctrl+Shift+H",
};

export interface KeyLike {
  key: string;
  ctrlKey: boolean;
  metaKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
}

export function shortcutOf(event: KeyLike): Shortcut | null {
  const mod = event.ctrlKey || event.metaKey;
  if (!mod || event.altKey) return null;
  const key = event.key.toLowerCase();
  if (key === "d" && !event.shiftKey) return "toggle-mic";
  if (key === "e" && !event.shiftKey) return "toggle-camera";
  if (key === "h" && event.shiftKey) return "hang-up";
  return null;
}
