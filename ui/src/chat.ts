// The open conversation's messages: history from the store, then live
// events merged in by id, with delivery ticks from acks.
import type { ChatMessage, StoredMessage } from "./types";

/** Most messages kept on screen; older ones are in the history. */
export const MAX_SHOWN = 500;

export class Conversation {
  readonly id: string;
  private messages: StoredMessage[] = [];
  private byId = new Map<string, StoredMessage>();

  constructor(id: string, history: StoredMessage[] = []) {
    this.id = id;
    for (const message of history) this.add(message);
  }

  list(): readonly StoredMessage[] {
    return this.messages;
  }

  /** Adds a message unless it is already there (history and event may both bring it). */
  add(message: StoredMessage): boolean {
    const key = keyOf(message.id, message.from);
    const known = this.byId.get(key);
    if (known) {
      if (rank(message.state) > rank(known.state)) known.state = message.state;
      return false;
    }
    const copy = { ...message };
    this.byId.set(key, copy);
    this.messages.push(copy);
    if (this.messages.length > MAX_SHOWN) {
      const dropped = this.messages.shift();
      if (dropped) this.byId.delete(keyOf(dropped.id, dropped.from));
    }
    return true;
  }

  live(message: ChatMessage, me: string): boolean {
    const outgoing = message.from === me;
    return this.add({
      id: message.id,
      conversation: this.id,
      from: message.from,
      text: message.text,
      sent_ms: message.ts,
      outgoing,
      state: outgoing ? "sent" : "received",
    });
  }

  acked(id: string, me: string): boolean {
    const message = this.byId.get(keyOf(id, me));
    if (!message || message.state === "acked") return false;
    message.state = "acked";
    return true;
  }
}

function keyOf(id: string, from: string): string {
  return `${from}\u0000${id}`;
}

function rank(state: StoredMessage["state"]): number {
  return state === "acked" ? 2 : 1;
}

/** ✓ sent, ✓✓ delivered to everyone in the call. */
export function tick(message: StoredMessage): string {
  if (!message.outgoing) return "";
  return message.state === "acked" ? "✓✓" : "✓";
}
