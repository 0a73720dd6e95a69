// The settings dialog: server, devices with a live camera preview, audio
// processing, codec, bandwidth, renderer.
import { fill, h, option } from "./dom";
import { errorText, ipc } from "./ipc";
import { toast } from "./toast";
import type { Devices, FrameEndpoint, Renderer, Settings } from "./types";
import { VideoTile } from "./video/tile";

const CODECS = ["", "AV1", "VP9", "VP8", "H264"];

export class SettingsPanel {
  readonly element = h("div", { id: "settings", class: "dialog" });
  private settings: Settings | null = null;
  private devices: Devices | null = null;
  private preview: VideoTile | null = null;
  private meterTimer: number | undefined;
  endpoint: FrameEndpoint | null = null;

  /** Whether a call is on (then the camera is the call's to switch). */
  inCall: () => boolean = () => false;

  constructor(private saved: () => Promise<void>) {
    this.element.hidden = true;
  }

  setData(settings: Settings, devices: Devices): void {
    this.settings = settings;
    this.devices = devices;
  }

  open(): void {
    const settings = this.settings;
    const devices = this.devices;
    if (!settings || !devices) return;
    const text = (id: string, value: string, placeholder: string) => h("input", { id, type: "text", value, placeholder });
    const check = (id: string, checked: boolean) => h("input", { id, type: "checkbox", checked });
    const choose = (id: string, list: { id: string; label: string }[], current: string) => {
      const select = h("select", { id });
      for (const item of list) select.append(option(item.id, item.label, item.id === current));
      return select;
    };
    const server = text("set-server", settings.server_url ?? "", "bundled server (leave empty)");
    const token = text("set-token", settings.token ?? "", "token (optional)");
    const lan = check("set-lan", settings.listen_on_lan);
    const port = h("input", { id: "set-port", type: "number", value: String(settings.listen_port) });
    const camera = choose("set-camera", devices.cameras, settings.camera);
    const microphone = choose("set-microphone", devices.microphones, settings.microphone);
    const speaker = choose("set-speaker", devices.speakers, settings.speaker === null ? "default" : String(settings.speaker));
    const echo = check("set-aec", settings.echo_cancellation);
    const noise = check("set-ns", settings.noise_suppression);
    const gain = check("set-agc", settings.auto_gain);
    const codec = choose("set-codec", CODECS.map((c) => ({ id: c, label: c || "automatic" })), settings.codec ?? "");
    const low = check("set-low", settings.low_bandwidth);
    const renderer = choose("set-renderer", [
      { id: "auto", label: "automatic (WebGL if available)" },
      { id: "webgl", label: "WebGL" },
      { id: "canvas", label: "canvas 2D" },
    ], settings.renderer);
    const field = (label: string, input: HTMLElement) => h("label", { class: "field" }, h("span", {}, label), input);
    const previewBox = h("div", { id: "camera-preview" });
    const meterBar = h("div", { class: "meter-bar" });
    const meter = h("div", { id: "mic-meter", class: "meter", title: "microphone level" }, meterBar);
    fill(
      this.element,
      h("h2", {}, "Settings"),
      h("form", {
        id: "settings-form",
        onsubmit: (event) => {
          event.preventDefault();
          const next: Settings = {
            server_url: server.value.trim() || null,
            token: token.value.trim() || null,
            listen_on_lan: lan.checked,
            listen_port: Number(port.value) || 8787,
            camera: camera.value,
            microphone: microphone.value,
            speaker: speaker.value === "default" ? null : Number(speaker.value),
            codec: codec.value || null,
            low_bandwidth: low.checked,
            echo_cancellation: echo.checked,
            noise_suppression: noise.checked,
            auto_gain: gain.checked,
            renderer: renderer.value as Renderer,
          };
          void (async () => {
            try {
              await ipc.saveSettings(next);
              this.close();
              await this.saved();
              toast("Settings saved");
            } catch (error) {
              toast(errorText(error), "error");
            }
          })();
        },
      },
        h("fieldset", {}, h("legend", {}, "Server"), field("Server address", server), field("Token", token),
          field("Let others on my network join", lan), field("Port of the bundled server", port)),
        h("fieldset", {}, h("legend", {}, "Devices"), previewBox, field("Camera", camera), field("Microphone", microphone), field("Level", meter), field("Speaker", speaker),
          ...devices.problems.map((p) => h("p", { class: "hint" }, p))),
        h("fieldset", {}, h("legend", {}, "Audio"), field("Echo cancellation", echo), field("Noise suppression", noise), field("Automatic gain", gain)),
        h("fieldset", {}, h("legend", {}, "Video"), field("Preferred codec", codec), field("Low bandwidth (360p, 500 kbit/s)", low), field("Renderer", renderer)),
        h("div", { class: "row" },
          h("button", { type: "submit", id: "settings-save" }, "Save"),
          h("button", { type: "button", id: "settings-cancel", onclick: () => this.close() }, "Cancel")),
      ),
    );
    if (this.endpoint && settings.camera !== "none") {
      // Outside a call the camera is closed: open it for the preview.
      if (!this.inCall()) void ipc.setCamera(true).catch(() => undefined);
      this.preview = new VideoTile("self", this.endpoint, settings.renderer);
      previewBox.append(this.preview.element);
    }
    this.element.hidden = false;
    window.clearInterval(this.meterTimer);
    this.meterTimer = window.setInterval(() => {
      void ipc.micLevel().then((dbov) => {
        // 0 dBov is full scale, 127 silence; the meter shows -60..0 dBov.
        const share = dbov === null ? 0 : Math.max(0, Math.min(1, (60 - dbov) / 60));
        meterBar.style.width = `${(share * 100).toFixed(0)}%`;
        meter.dataset.dbov = dbov === null ? "none" : String(dbov);
      }, () => undefined);
    }, 150);
  }

  close(): void {
    window.clearInterval(this.meterTimer);
    if (this.preview && !this.inCall()) void ipc.setCamera(false).catch(() => undefined);
    this.preview?.close();
    this.preview = null;
    this.element.hidden = true;
  }
}
