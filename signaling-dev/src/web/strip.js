// The latency strip of ../shared/latency-strip.md: the sender stamps its
// capture time into the top band of each frame; any receiver that decodes
// the frame reads it back and knows the glass-to-glass latency.

const CELLS = 32;
const WHITE = 235;
const BLACK = 16;

/** Height of the strip for a frame `height` pixels tall. */
export function stripHeight(height) {
  return Math.max(8, Math.floor(height / 12)) & ~1;
}

/** Paints `timeMs` (ms since the epoch) into the strip of a 2D context. */
export function paintStrip(ctx, width, height, timeMs) {
  const t = timeMs % 2 ** 32;
  const band = stripHeight(height);
  for (let i = 0; i < CELLS; i++) {
    const bit = Math.floor(t / 2 ** (31 - i)) % 2;
    // Full-range white and black: the browser's RGB→I420 conversion maps
    // them to the strip's luma 235 and 16.
    ctx.fillStyle = bit ? "#fff" : "#000";
    const x0 = Math.floor((i * width) / CELLS);
    const x1 = Math.floor(((i + 1) * width) / CELLS);
    ctx.fillRect(x0, 0, x1 - x0, band);
  }
}

/**
 * Reads the strip off a decoded video. Draws the strip's middle rows into a
 * small canvas (4 pixels per cell) and samples each cell's centre. Returns
 * the stamped time modulo 2^32, or null when the strip did not survive.
 */
export class StripReader {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.width = CELLS * 4;
    this.canvas.height = 2;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
  }

  read(video) {
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (!width || !height) return null;
    const band = stripHeight(height);
    // Rows around the middle of the band, scaled to 4 px per cell.
    this.ctx.drawImage(video, 0, band / 2 - 1, width, 2, 0, 0, CELLS * 4, 2);
    const pixels = this.ctx.getImageData(0, 0, CELLS * 4, 2).data;
    let t = 0;
    for (let i = 0; i < CELLS; i++) {
      let luma = 0;
      for (const x of [4 * i + 1, 4 * i + 2]) {
        for (let y = 0; y < 2; y++) {
          const p = (y * CELLS * 4 + x) * 4;
          // RGB back to studio-range luma (BT.601).
          luma += 16 + 0.257 * pixels[p] + 0.504 * pixels[p + 1] + 0.098 * pixels[p + 2];
        }
      }
      luma /= 4;
      if (Math.abs(luma - WHITE) > 40 && Math.abs(luma - BLACK) > 40) return null;
      t = t * 2 + (luma > 128 ? 1 : 0);
    }
    return t;
  }
}

/** Latency in ms of a frame stamped `stamp` (mod 2^32), seen at `nowMs`. */
export function latencyMs(stamp, nowMs) {
  const now = nowMs % 2 ** 32;
  return (now - stamp + 2 ** 32) % 2 ** 32;
}
