// One I420 frame as the app's frame socket sends it (src-tauri frames.rs):
// a 32-byte little-endian header, then the Y, U and V planes.

export const HEADER_BYTES = 32;
const MAGIC = 0x3152464b; // "KFR1" read as a little-endian u32

export interface I420Frame {
  width: number;
  height: number;
  yStride: number;
  uvStride: number;
  skipped: number;
  /** Capture time, µs since the Unix epoch (the sender's clock). */
  captureUs: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** Parses a frame message; `null` if it is not one (never throws). */
export function parseFrame(buffer: ArrayBuffer): I420Frame | null {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const view = new DataView(buffer);
  if (view.getUint32(0, true) !== MAGIC) return null;
  const width = view.getUint32(4, true);
  const height = view.getUint32(8, true);
  const yStride = view.getUint32(12, true);
  const uvStride = view.getUint32(16, true);
  const skipped = view.getUint32(20, true);
  const captureUs = Number(view.getBigUint64(24, true));
  if (width === 0 || height === 0 || width > 8192 || height > 8192) return null;
  if (yStride < width || uvStride < Math.ceil(width / 2)) return null;
  const chromaHeight = Math.ceil(height / 2);
  const ySize = yStride * height;
  const uvSize = uvStride * chromaHeight;
  if (buffer.byteLength < HEADER_BYTES + ySize + 2 * uvSize) return null;
  return {
    width, height, yStride, uvStride, skipped, captureUs,
    y: new Uint8Array(buffer, HEADER_BYTES, ySize),
    u: new Uint8Array(buffer, HEADER_BYTES + ySize, uvSize),
    v: new Uint8Array(buffer, HEADER_BYTES + ySize + uvSize, uvSize),
  };
}
