// The `chat` data channel of protocol.md: JSON messages answered by acks,
// re-sent once the channel is back if they were not acked, duplicates
// dropped by id.

const MAX_TEXT_BYTES = 16 * 1024;
/** Ids remembered for dropping duplicates (the oldest are forgotten). */
const MAX_SEEN = 4096;
/** Messages kept for re-sending until acked. */
const MAX_UNACKED = 1024;

export function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // Outside a secure context randomUUID is missing; getRandomValues is not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class ChatChannel extends EventTarget {
  constructor(selfUser) {
    super();
    this.selfUser = selfUser;
    this.channel = null;
    this.unacked = new Map();
    this.seen = new Set();
    this.sent = 0;
    this.acked = 0;
    this.received = 0;
    this.refused = 0;
  }

  attach(channel) {
    this.channel = channel;
    channel.onopen = () => {
      for (const message of this.unacked.values()) channel.send(JSON.stringify(message));
      this.dispatchEvent(new Event("open"));
    };
    channel.onmessage = (event) => this.onMessage(event.data);
  }

  get open() {
    return this.channel?.readyState === "open";
  }

  /** Sends `text`; throws if it is too long or too many are waiting for acks. */
  send(text) {
    if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) throw new Error("a chat message is at most 16 KiB");
    if (this.unacked.size >= MAX_UNACKED) throw new Error("too many chat messages are waiting for the peer");
    const message = { type: "chat", id: uuid(), from: this.selfUser, ts: Date.now(), text };
    this.unacked.set(message.id, message);
    this.sent++;
    if (this.open) this.channel.send(JSON.stringify(message));
    return message;
  }

  onMessage(data) {
    let message;
    try {
      message = typeof data === "string" ? JSON.parse(data) : null;
    } catch {
      message = null;
    }
    if (!message || typeof message.type !== "string") {
      this.refused++;
      return;
    }
    if (message.type === "ack" && typeof message.id === "string") {
      if (this.unacked.delete(message.id)) {
        this.acked++;
        this.dispatchEvent(new CustomEvent("ack", { detail: message.id }));
      }
      return;
    }
    if (message.type !== "chat" || typeof message.id !== "string" || typeof message.text !== "string") {
      this.refused++;
      return;
    }
    if (this.open) this.channel.send(JSON.stringify({ type: "ack", id: message.id }));
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.values().next().value);
    this.received++;
    this.dispatchEvent(new CustomEvent("chat", { detail: message }));
  }

  close() {
    this.channel?.close();
  }
}
