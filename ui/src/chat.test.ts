import { describe, expect, it } from "vitest";
import { Conversation, MAX_SHOWN, tick } from "./chat";
import type { StoredMessage } from "./types";

const stored = (id: string, outgoing: boolean, state: StoredMessage["state"] = outgoing ? "sent" : "received"): StoredMessage => ({
  id, conversation: "bob", from: outgoing ? "me" : "bob", text: `t${id}`, sent_ms: 1, outgoing, state,
});

describe("Conversation", () => {
  it("keeps a message once when history and a live event both bring it", () => {
    const c = new Conversation("bob", [stored("1", false)]);
    expect(c.live({ id: "1", from: "bob", ts: 1, text: "t1" }, "me")).toBe(false);
    expect(c.list()).toHaveLength(1);
  });

  it("ticks our message once every peer acked it, and never goes back", () => {
    const c = new Conversation("bob");
    c.live({ id: "m", from: "me", ts: 1, text: "hi" }, "me");
    expect(tick(c.list()[0]!)).toBe("✓");
    expect(c.acked("m", "me")).toBe(true);
    expect(tick(c.list()[0]!)).toBe("✓✓");
    c.add(stored("m", true, "sent"));
    expect(c.list()[0]!.state).toBe("acked");
    expect(c.acked("m", "me")).toBe(false);
  });

  it("does not let a peer ack or overwrite someone else's message id", () => {
    const c = new Conversation("bob");
    c.live({ id: "x", from: "bob", ts: 1, text: "theirs" }, "me");
    expect(c.acked("x", "me")).toBe(false);
    expect(c.live({ id: "x", from: "me", ts: 1, text: "mine" }, "me")).toBe(true);
    expect(c.list()).toHaveLength(2);
  });

  it("is bounded", () => {
    const c = new Conversation("bob");
    for (let n = 0; n < MAX_SHOWN + 50; n++) c.add(stored(String(n), false));
    expect(c.list()).toHaveLength(MAX_SHOWN);
    expect(c.list()[0]!.id).toBe("50");
  });
});
