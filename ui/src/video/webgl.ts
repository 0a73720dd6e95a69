// I420 on the GPU: three single-channel textures and a BT.601 YUV→RGB
// fragment shader (WebGL 1, so WebGL 2 contexts take it too).
import type { I420Frame } from "./frame";
import type { FrameRenderer } from "./renderer";

const VERTEX = `
attribute vec2 position;
varying vec2 uv;
void main() {
  uv = vec2((position.x + 1.0) / 2.0, (1.0 - position.y) / 2.0);
  gl_Position = vec4(position, 0.0, 1.0);
}`;

const FRAGMENT = `
precision mediump float;
varying vec2 uv;
uniform sampler2D planeY;
uniform sampler2D planeU;
uniform sampler2D planeV;
uniform vec2 scaleY;
uniform vec2 scaleUV;
void main() {
  float y = texture2D(planeY, uv * scaleY).r;
  float u = texture2D(planeU, uv * scaleUV).r - 0.5;
  float v = texture2D(planeV, uv * scaleUV).r - 0.5;
  y = 1.1643 * (y - 0.0625);
  gl_FragColor = vec4(y + 1.5958 * v, y - 0.39173 * u - 0.81290 * v, y + 2.017 * u, 1.0);
}`;

export class WebGlRenderer implements FrameRenderer {
  readonly kind = "webgl" as const;
  private gl: WebGLRenderingContext;
  private textures: WebGLTexture[];
  private scaleY: WebGLUniformLocation | null;
  private scaleUV: WebGLUniformLocation | null;

  /** Throws when the canvas has no WebGL; callers fall back to canvas 2D. */
  constructor(private canvas: HTMLCanvasElement) {
    const gl = (canvas.getContext("webgl2") ?? canvas.getContext("webgl")) as WebGLRenderingContext | null;
    if (!gl) throw new Error("no WebGL");
    this.gl = gl;
    const program = gl.createProgram();
    if (!program) throw new Error("no WebGL program");
    for (const [type, source] of [[gl.VERTEX_SHADER, VERTEX], [gl.FRAGMENT_SHADER, FRAGMENT]] as const) {
      const shader = gl.createShader(type);
      if (!shader) throw new Error("no WebGL shader");
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
        throw new Error(`shader: ${gl.getShaderInfoLog(shader) ?? "?"}`);
      }
      gl.attachShader(program, shader);
    }
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error("WebGL link failed");
    gl.useProgram(program);
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const position = gl.getAttribLocation(program, "position");
    gl.enableVertexAttribArray(position);
    gl.vertexAttribPointer(position, 2, gl.FLOAT, false, 0, 0);
    this.textures = ["planeY", "planeU", "planeV"].map((name, unit) => {
      const texture = gl.createTexture();
      if (!texture) throw new Error("no WebGL texture");
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(program, name), unit);
      return texture;
    });
    this.scaleY = gl.getUniformLocation(program, "scaleY");
    this.scaleUV = gl.getUniformLocation(program, "scaleUV");
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  }

  draw(frame: I420Frame): void {
    const gl = this.gl;
    if (this.canvas.width !== frame.width || this.canvas.height !== frame.height) {
      this.canvas.width = frame.width;
      this.canvas.height = frame.height;
    }
    gl.viewport(0, 0, frame.width, frame.height);
    const chromaHeight = Math.ceil(frame.height / 2);
    const planes: [Uint8Array, number, number][] = [
      [frame.y, frame.yStride, frame.height],
      [frame.u, frame.uvStride, chromaHeight],
      [frame.v, frame.uvStride, chromaHeight],
    ];
    planes.forEach(([data, stride, rows], unit) => {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[unit] ?? null);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, stride, rows, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
    });
    // Strides may be wider than the picture: sample only the picture.
    gl.uniform2f(this.scaleY, frame.width / frame.yStride, 1);
    gl.uniform2f(this.scaleUV, Math.ceil(frame.width / 2) / frame.uvStride, 1);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  dispose(): void {
    for (const texture of this.textures) this.gl.deleteTexture(texture);
  }
}
