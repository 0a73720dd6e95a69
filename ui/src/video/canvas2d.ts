// The fallback when the webview gives no WebGL: I420 → RGBA in script,
// then putImageData. Reuses one ImageData per size.
import type { I420Frame } from "./frame";
import type { FrameRenderer } from "./renderer";

export class CanvasRenderer implements FrameRenderer {
  readonly kind = "canvas" as const;
  private context: CanvasRenderingContext2D;
  private image: ImageData | null = null;

  constructor(private canvas: HTMLCanvasElement) {
    const context = canvas.getContext("2d");
    if (!context) throw new Error("no canvas 2D");
    this.context = context;
  }

  draw(frame: I420Frame): void {
    if (this.canvas.width !== frame.width || this.canvas.height !== frame.height) {
      this.canvas.width = frame.width;
      this.canvas.height = frame.height;
    }
    if (!this.image || this.image.width !== frame.width || this.image.height !== frame.height) {
      this.image = this.context.createImageData(frame.width, frame.height);
    }
    i420ToRgba(frame, this.image.data);
    this.context.putImageData(this.image, 0, 0);
  }

  dispose(): void {
    this.image = null;
  }
}

/** BT.601 limited range, as the WebGL shader does. */
export function i420ToRgba(frame: I420Frame, out: Uint8ClampedArray): void {
  const { width, height, yStride, uvStride, y, u, v } = frame;
  let o = 0;
  for (let row = 0; row < height; row++) {
    const yRow = row * yStride;
    const cRow = (row >> 1) * uvStride;
    for (let col = 0; col < width; col++) {
      const luma = 1.1643 * ((y[yRow + col] ?? 0) - 16);
      const cu = (u[cRow + (col >> 1)] ?? 128) - 128;
      const cv = (v[cRow + (col >> 1)] ?? 128) - 128;
      out[o] = luma + 1.5958 * cv;
      out[o + 1] = luma - 0.39173 * cu - 0.8129 * cv;
      out[o + 2] = luma + 2.017 * cu;
      out[o + 3] = 255;
      o += 4;
    }
  }
}
