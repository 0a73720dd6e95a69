import type { I420Frame } from "./frame";

export interface FrameRenderer {
  readonly kind: "webgl" | "canvas";
  draw(frame: I420Frame): void;
  dispose(): void;
}
