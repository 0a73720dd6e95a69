// What this page sends: the browser's camera and microphone, or a synthetic
// source (moving pictures with the latency strip, and a tone) for machines
// without devices and for measurements.

import { paintStrip, stripHeight } from "./strip.js";

/**
 * @param {{source: string, width: number, height: number, fps: number, tone: string, audio: boolean}} options
 * @returns {Promise<{stream: MediaStream, kind: string, warning: string | null, stop: () => void}>}
 */
export async function openMedia(options) {
  if (options.source === "devices") {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: options.width, height: options.height, frameRate: options.fps },
        audio: options.audio,
      });
      return { stream, kind: "devices", warning: null, stop: () => stopAll(stream) };
    } catch (err) {
      const warning = `Camera or microphone unavailable (${err.name}); sending the synthetic source instead.`;
      return { ...synthetic(options), warning };
    }
  }
  return { ...synthetic(options), warning: null };
}

function stopAll(stream) {
  for (const track of stream.getTracks()) track.stop();
}

function synthetic(options) {
  const video = syntheticVideo(options.width, options.height, options.fps);
  const tracks = [video.track];
  let audio = null;
  if (options.audio) {
    audio = syntheticTone(options.tone === "continuous");
    tracks.push(audio.track);
  }
  const stream = new MediaStream(tracks);
  return {
    stream,
    kind: "synthetic",
    stop() {
      video.stop();
      audio?.stop();
      stopAll(stream);
    },
  };
}

/** A canvas with moving content under the strip, one frame per tick. */
function syntheticVideo(width, height, fps) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d", { alpha: false });
  // captureStream(0) plus requestFrame() right after painting: the frame's
  // capture time is the time stamped into it, not some later canvas poll.
  const stream = canvas.captureStream(0);
  const track = stream.getVideoTracks()[0];
  const band = stripHeight(height);
  let frame = 0;
  const paint = () => {
    const t = frame / fps;
    const hue = (frame * 2) % 360;
    ctx.fillStyle = `hsl(${hue} 45% 35%)`;
    ctx.fillRect(0, band, width, height - band);
    // Boxes that move and change, so the encoder has real work to do.
    for (let i = 0; i < 6; i++) {
      const x = ((Math.sin(t * (0.7 + i * 0.3) + i) + 1) / 2) * (width - width / 6);
      const y = band + ((Math.cos(t * (0.5 + i * 0.25) + i) + 1) / 2) * (height - band - height / 6);
      ctx.fillStyle = `hsl(${(hue + i * 60) % 360} 70% 55%)`;
      ctx.fillRect(x, y, width / 6, height / 6);
    }
    ctx.fillStyle = "#fff";
    ctx.font = `${Math.round(height / 10)}px monospace`;
    ctx.fillText(String(frame), width / 20, height - height / 12);
    paintStrip(ctx, width, height, Date.now());
    track.requestFrame();
    frame++;
  };
  const timer = setInterval(paint, 1000 / fps);
  paint();
  return { track, stop: () => clearInterval(timer) };
}

/** 440 Hz; beeping (200 ms of each second) like kith-cli's tone, or continuous. */
function syntheticTone(continuous) {
  const context = new AudioContext({ sampleRate: 48000 });
  const oscillator = context.createOscillator();
  oscillator.frequency.value = 440;
  const gain = context.createGain();
  gain.gain.value = continuous ? 0.3 : 0;
  if (!continuous) {
    const start = context.currentTime + 0.05;
    for (let s = 0; s < 3600; s++) {
      gain.gain.setValueAtTime(0.3, start + s);
      gain.gain.setValueAtTime(0, start + s + 0.2);
    }
  }
  const destination = context.createMediaStreamDestination();
  oscillator.connect(gain).connect(destination);
  oscillator.start();
  void context.resume();
  return { track: destination.stream.getAudioTracks()[0], stop: () => void context.close() };
}
