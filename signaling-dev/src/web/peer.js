// One RTCPeerConnection to one session in the room, negotiated as
// protocol.md says: the joiner offers first, later renegotiation may come
// from either side, and on glare the smaller session id is polite and
// rolls back ("perfect negotiation", as in the WebRTC spec's example).

import { ChatChannel } from "./chat.js";
import { StripReader, latencyMs } from "./strip.js";
import { collectStats } from "./stats.js";

/** Trickled candidates held until a remote description exists. */
const MAX_QUEUED_CANDIDATES = 64;
/** Latency samples kept per peer (newest win): minutes of video at 30 fps. */
const MAX_LATENCY_SAMPLES = 10000;

const VIDEO_MIME = { AV1: "video/AV1", VP9: "video/VP9", VP8: "video/VP8", H264: "video/H264" };

export class Peer extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.room
   * @param {{session: string, user: string, name: string}} options.remote
   * @param {string} options.selfSession
   * @param {string} options.selfUser
   * @param {import("./signaling.js").Signaling} options.signaling
   * @param {MediaStream} options.stream what this page sends
   * @param {string} options.codec preferred video codec
   * @param {RTCIceServer[]} options.iceServers
   * @param {boolean} options.offerer this side sends the first offer
   */
  constructor(options) {
    super();
    this.room = options.room;
    this.remote = options.remote;
    this.signaling = options.signaling;
    this.stream = options.stream;
    this.codec = options.codec;
    this.polite = options.selfSession < options.remote.session;
    this.createdAt = performance.now();
    this.connectMs = null;
    this.firstFrameMs = null;
    this.mayOffer = options.offerer;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.queuedCandidates = [];
    this.latencies = [];
    this.paintedFrames = 0;
    this.remoteStream = new MediaStream();
    this.closed = false;
    this.finalStats = null;
    /** getStats snapshots of the audio jitter buffer, for its recent figure (stats.js). */
    this.audioBufferHistory = [];

    this.pc = new RTCPeerConnection({ iceServers: options.iceServers, bundlePolicy: "max-bundle" });
    this.chat = new ChatChannel(options.selfUser);
    this.chat.addEventListener("chat", (event) => this.dispatchEvent(new CustomEvent("chat", { detail: event.detail })));
    this.chat.addEventListener("ack", () => this.dispatchEvent(new Event("change")));

    this.pc.onicecandidate = ({ candidate }) => {
      this.signal({ type: "candidate", candidate: candidate ? candidate.toJSON() : null });
    };
    this.pc.ontrack = ({ track }) => {
      this.remoteStream.addTrack(track);
      this.dispatchEvent(new Event("track"));
    };
    this.pc.ondatachannel = ({ channel }) => {
      if (channel.label === "chat") this.chat.attach(channel);
    };
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === "connected" && this.connectMs === null) {
        this.connectMs = Math.round(performance.now() - this.createdAt);
      }
      this.dispatchEvent(new Event("change"));
    };
    this.pc.oniceconnectionstatechange = () => {
      if (this.pc.iceConnectionState === "failed" && this.mayOffer) this.pc.restartIce();
    };
    this.pc.onnegotiationneeded = () => void this.offer();

    if (options.offerer) {
      for (const kind of ["audio", "video"]) {
        const track = this.stream.getTracks().find((t) => t.kind === kind) ?? kind;
        this.pc.addTransceiver(track, { direction: "sendrecv", streams: [this.stream] });
      }
      this.preferCodec();
      this.chat.attach(this.pc.createDataChannel("chat", { ordered: true }));
    }
  }

  signal(message) {
    this.signaling.send({ ...message, room: this.room, to: this.remote.session });
  }

  async offer() {
    if (!this.mayOffer || this.closed) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.signal({ type: "offer", sdp: this.pc.localDescription.sdp });
    } catch (err) {
      console.warn("offer failed", err);
    } finally {
      this.makingOffer = false;
    }
  }

  /** An `offer` or `answer` relayed from the remote session. */
  async onDescription(type, sdp) {
    if (typeof sdp !== "string" || (type !== "offer" && type !== "answer")) return;
    const collision = type === "offer" && (this.makingOffer || this.pc.signalingState !== "stable");
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      await this.pc.setRemoteDescription({ type, sdp });
      if (type === "offer") {
        this.attachLocalTracks();
        await this.pc.setLocalDescription();
        this.signal({ type: "answer", sdp: this.pc.localDescription.sdp });
        this.mayOffer = true;
      }
      const queued = this.queuedCandidates.splice(0);
      for (const candidate of queued) await this.addCandidate(candidate);
    } catch (err) {
      console.warn(`cannot apply the remote ${type}`, err);
    }
  }

  /** A `candidate` relayed from the remote session (null: end of candidates). */
  async onCandidate(candidate) {
    if (!this.pc.remoteDescription) {
      if (this.queuedCandidates.length < MAX_QUEUED_CANDIDATES) this.queuedCandidates.push(candidate);
      return;
    }
    await this.addCandidate(candidate);
  }

  async addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
    } catch (err) {
      if (!this.ignoreOffer) console.warn("cannot add a candidate", err);
    }
  }

  /** As the answerer: send our tracks on the transceivers the offer made. */
  attachLocalTracks() {
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      if (transceiver.sender.track) continue;
      const track = this.stream.getTracks().find((t) => t.kind === kind);
      if (track) void transceiver.sender.replaceTrack(track);
      transceiver.sender.setStreams(this.stream);
      transceiver.direction = "sendrecv";
    }
    this.preferCodec();
  }

  /** Puts the chosen video codec first; the other codecs stay offered after it. */
  preferCodec() {
    const mime = VIDEO_MIME[this.codec];
    const capabilities = RTCRtpReceiver.getCapabilities("video");
    if (!mime || !capabilities) return;
    const first = (codec) => {
      if (codec.mimeType !== mime) return false;
      const fmtp = codec.sdpFmtpLine ?? "";
      if (mime === "video/VP9") return !fmtp.includes("profile-id") || fmtp.includes("profile-id=0");
      if (mime === "video/H264") return fmtp.includes("packetization-mode=1");
      return true;
    };
    const codecs = [...capabilities.codecs.filter(first), ...capabilities.codecs.filter((c) => !first(c))];
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.receiver.track.kind === "video") {
        try {
          transceiver.setCodecPreferences(codecs);
        } catch (err) {
          console.warn("cannot set codec preferences", err);
        }
      }
    }
  }

  /** Starts reading the latency strip off every frame shown in `video`. */
  watch(video) {
    const reader = new StripReader();
    const onFrame = () => {
      if (this.closed) return;
      this.paintedFrames++;
      if (this.firstFrameMs === null) this.firstFrameMs = Math.round(performance.now() - this.createdAt);
      const stamp = reader.read(video);
      if (stamp !== null) {
        if (this.latencies.length >= MAX_LATENCY_SAMPLES) this.latencies.shift();
        this.latencies.push(latencyMs(stamp, Date.now()));
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  async stats() {
    if (this.finalStats) return this.finalStats;
    return collectStats(this);
  }

  /** Freezes the figures (so a report after the peer left still has them), then closes. */
  async close() {
    if (this.closed) return;
    try {
      this.finalStats = await collectStats(this);
    } catch {
      // A connection that cannot report any more reports nothing.
    }
    this.closed = true;
    this.chat.close();
    this.pc.close();
  }
}
