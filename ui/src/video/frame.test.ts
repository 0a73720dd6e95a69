import { describe, expect, it } from "vitest";
import { i420ToRgba } from "./canvas2d";
import { HEADER_BYTES, parseFrame } from "./frame";

function message(width: number, height: number, fill: [number, number, number], captureUs = 123456789n): ArrayBuffer {
  const cw = Math.ceil(width / 2), ch = Math.ceil(height / 2);
  const buffer = new ArrayBuffer(HEADER_BYTES + width * height + 2 * cw * ch);
  const view = new DataView(buffer);
  view.setUint32(0, 0x3152464b, true);
  view.setUint32(4, width, true);
  view.setUint32(8, height, true);
  view.setUint32(12, width, true);
  view.setUint32(16, cw, true);
  view.setUint32(20, 0, true);
  view.setBigUint64(24, captureUs, true);
  const bytes = new Uint8Array(buffer);
  bytes.fill(fill[0], HEADER_BYTES, HEADER_BYTES + width * height);
  bytes.fill(fill[1], HEADER_BYTES + width * height, HEADER_BYTES + width * height + cw * ch);
  bytes.fill(fill[2], HEADER_BYTES + width * height + cw * ch);
  return buffer;
}

describe("parseFrame", () => {
  it("reads the header the app writes", () => {
    const frame = parseFrame(message(5, 3, [16, 128, 128]))!;
    expect(frame.width).toBe(5);
    expect(frame.uvStride).toBe(3);
    expect(frame.captureUs).toBe(123456789);
    expect(frame.v.length).toBe(6);
  });
  it("refuses what is not a whole frame", () => {
    expect(parseFrame(new ArrayBuffer(10))).toBeNull();
    expect(parseFrame(message(4, 4, [0, 0, 0]).slice(0, HEADER_BYTES + 5))).toBeNull();
    const wrong = message(4, 4, [0, 0, 0]);
    new DataView(wrong).setUint32(0, 0, true);
    expect(parseFrame(wrong)).toBeNull();
  });
});

describe("i420ToRgba", () => {
  it("turns limited-range black, white and red into RGB", () => {
    const out = new Uint8ClampedArray(4 * 4);
    i420ToRgba(parseFrame(message(2, 2, [16, 128, 128]))!, out);
    expect([...out.slice(0, 4)]).toEqual([0, 0, 0, 255]);
    i420ToRgba(parseFrame(message(2, 2, [235, 128, 128]))!, out);
    expect(out[0]).toBeGreaterThan(250);
    i420ToRgba(parseFrame(message(2, 2, [81, 90, 240]))!, out);
    expect(out[0]).toBeGreaterThan(240);
    expect(out[1]).toBeLessThan(10);
  });
});
