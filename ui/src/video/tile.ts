// A video tile: one frame socket for one stream, a renderer, and the
// measurements the stats panel and the tests read. The page asks for the
// next frame only after it painted one, so frames never queue anywhere.
import type { FrameEndpoint, Renderer } from "../types";
import { CanvasRenderer } from "./canvas2d";
import { parseFrame, type I420Frame } from "./frame";
import type { FrameRenderer } from "./renderer";
import { WebGlRenderer } from "./webgl";

const RETRY_MS = 1000;

export class VideoTile {
  readonly element: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private renderer: FrameRenderer | null = null;
  private socket: WebSocket | null = null;
  private pending: I420Frame | null = null;
  private drawScheduled = false;
  private closed = false;
  private retry: number | undefined;
  private resizeObserver: ResizeObserver | null = null;
  private lastSize = "";
  /** Frames painted since the tile opened. */
  painted = 0;
  /** Remote capture → painted, ms, of the last painted frame. */
  lastDelayMs: number | null = null;

  constructor(
    readonly stream: string,
    private endpoint: FrameEndpoint,
    private preference: Renderer,
  ) {
    this.element = document.createElement("div");
    this.element.className = "tile";
    this.element.dataset.stream = stream;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "tile-video";
    this.element.append(this.canvas);
    this.renderer = makeRenderer(this.canvas, preference);
    this.element.dataset.renderer = this.renderer?.kind ?? "none";
    if (typeof ResizeObserver !== "undefined") {
      this.resizeObserver = new ResizeObserver(() => this.sendSize());
      this.resizeObserver.observe(this.element);
    }
    this.connect();
  }

  get rendererKind(): string {
    return this.renderer?.kind ?? "none";
  }

  private size(): { width: number; height: number } {
    const ratio = window.devicePixelRatio || 1;
    const rect = this.element.getBoundingClientRect();
    // Even sizes: chroma planes are half the picture.
    const even = (n: number) => Math.max(2, Math.round((n * ratio) / 2) * 2);
    return { width: even(rect.width || 320), height: even(rect.height || 180) };
  }

  private connect(): void {
    if (this.closed) return;
    const { width, height } = this.size();
    const query = new URLSearchParams({
      token: this.endpoint.token,
      stream: this.stream,
      w: String(width),
      h: String(height),
    });
    const socket = new WebSocket(`ws://127.0.0.1:${this.endpoint.port}/frames?${query}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send("next");
    socket.onmessage = (message) => {
      if (!(message.data instanceof ArrayBuffer)) return;
      const frame = parseFrame(message.data);
      if (!frame) {
        socket.send("next");
        return;
      }
      this.pending = frame;
      this.scheduleDraw();
    };
    socket.onclose = () => {
      if (this.socket === socket) this.socket = null;
      if (!this.closed) this.retry = window.setTimeout(() => this.connect(), RETRY_MS);
    };
    this.socket = socket;
  }

  private scheduleDraw(): void {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      const frame = this.pending;
      this.pending = null;
      if (!frame || this.closed) return;
      this.renderer?.draw(frame);
      this.painted += 1;
      this.lastDelayMs = (performance.timeOrigin + performance.now()) - frame.captureUs / 1000;
      this.element.dataset.painted = String(this.painted);
      this.element.dataset.delayMs = this.lastDelayMs.toFixed(1);
      if (this.socket?.readyState === WebSocket.OPEN) this.socket.send("next");
    });
  }

  private sendSize(): void {
    const { width, height } = this.size();
    const key = `${width}x${height}`;
    if (key === this.lastSize) return;
    this.lastSize = key;
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ width, height }));
    }
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.retry);
    this.resizeObserver?.disconnect();
    this.socket?.close();
    this.renderer?.dispose();
    this.element.remove();
  }
}

function makeRenderer(canvas: HTMLCanvasElement, preference: Renderer): FrameRenderer | null {
  if (preference !== "canvas") {
    try {
      return new WebGlRenderer(canvas);
    } catch {
      if (preference === "webgl") console.warn("WebGL was asked for but is not available; using canvas 2D");
    }
  }
  try {
    return new CanvasRenderer(canvas);
  } catch {
    return null;
  }
}
