// The browser client: sign in, presence, rooms, invites, the call screen
// and chat. Every name and chat text goes into the page as text (textContent
// and text nodes), never as markup.
//
// URL parameters drive it without clicks, for tests and bots:
//   user, name, token, server    sign in at once
//   room                         join this room once online
//   call=USER                    ring USER (once they are online)
//   answer=accept|decline|busy   reply to invites by itself
//   source=devices|synthetic     camera+mic, or the synthetic picture + tone
//   codec=AV1|VP9|VP8|H264       preferred video codec
//   width, height, fps           what the source produces (1280×720 30)
//   tone=beep|continuous, audio=none
//   chat=N, chat_interval=MS     send N numbered messages once connected

import { Signaling } from "./signaling.js";
import { Peer } from "./peer.js";
import { openMedia } from "./media.js";

const params = new URLSearchParams(location.search);
const number = (key, fallback) => {
  const value = Number(params.get(key));
  return Number.isFinite(value) && value > 0 ? value : fallback;
};
const options = {
  server: params.get("server") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  token: params.get("token") ?? undefined,
  room: params.get("room"),
  call: params.get("call"),
  answer: params.get("answer"),
  source: params.get("source") ?? "devices",
  codec: params.get("codec") ?? "AV1",
  width: number("width", 1280),
  height: number("height", 720),
  fps: number("fps", 30),
  tone: params.get("tone") ?? "beep",
  audio: params.get("audio") !== "none",
  chat: number("chat", 0),
  chatInterval: number("chat_interval", 50),
};

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Invites shown at once; more are answered busy. */
const MAX_INVITES = 16;

const $ = (id) => document.getElementById(id);

/** Builds an element; strings become text nodes, never markup. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) node.append(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

const app = {
  state: "signed-out",
  signaling: null,
  welcome: null,
  online: new Map(),
  media: null,
  room: null,
  peers: new Map(),
  left: [],
  invites: new Map(),
  ringing: null,
  pendingCall: null,
  errors: [],
  micMuted: false,
  cameraOff: false,
  autoChatStarted: false,
};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
  if (isError) app.errors.push(text);
}

function show(screen) {
  for (const id of ["signin", "lobby", "call"]) $(id).hidden = id !== screen;
}

// ---- sign in and presence -------------------------------------------------

async function signIn(user, name) {
  if (!NAME_RE.test(user)) {
    setStatus("A user id is 1–64 letters, digits, '.', '_' or '-'.", true);
    return;
  }
  const signaling = new Signaling(options.server, { user, name: name || user, token: options.token });
  setStatus(`Connecting to ${options.server}…`);
  try {
    app.welcome = await signaling.connect();
  } catch (err) {
    setStatus(String(err.message ?? err), true);
    return;
  }
  app.signaling = signaling;
  app.state = "online";
  for (const person of app.welcome.online ?? []) app.online.set(person.user, person.name);
  signaling.addEventListener("message", (event) => onMessage(event.detail));
  signaling.addEventListener("close", () => {
    setStatus("The signaling server closed the connection. Calls in progress go on; reload to sign in again.", true);
    app.state = app.room ? app.state : "signed-out";
  });
  $("me").textContent = `${app.welcome.name} (${app.welcome.user})`;
  setStatus("Online.");
  show("lobby");
  renderOnline();
  if (options.room) void join(options.room);
  if (options.call) {
    app.pendingCall = options.call;
    maybeCall();
  }
}

function renderOnline() {
  const list = $("online");
  list.replaceChildren();
  for (const [user, name] of app.online) {
    if (user === app.welcome.user) continue;
    list.append(
      el("li", {}, el("span", {}, name), el("span", { class: "muted" }, user),
        el("button", { type: "button", onclick: () => void ring(user, "video") }, "Video call"),
        el("button", { type: "button", onclick: () => void ring(user, "audio") }, "Audio call")),
    );
  }
  $("nobody").hidden = list.children.length > 0;
}

function maybeCall() {
  if (app.pendingCall && app.online.has(app.pendingCall) && !app.ringing && !app.room) {
    const user = app.pendingCall;
    app.pendingCall = null;
    void ring(user, "video");
  }
}

// ---- messages from the server --------------------------------------------

function onMessage(message) {
  switch (message.type) {
    case "presence":
      if (message.online) app.online.set(message.user, message.name);
      else app.online.delete(message.user);
      renderOnline();
      maybeCall();
      break;
    case "joined":
      if (message.room !== app.room) return;
      app.state = "in-call";
      for (const remote of message.peers ?? []) addPeer(remote, true);
      maybeStartChat();
      break;
    case "peer_joined":
      if (message.room === app.room && message.peer) addPeer(message.peer, false);
      break;
    case "peer_left":
      if (message.room === app.room) void removePeer(message.session);
      break;
    case "offer":
    case "answer":
    case "candidate": {
      if (message.room !== app.room || typeof message.from !== "string") return;
      let entry = app.peers.get(message.from);
      if (!entry) {
        if (message.type !== "offer" && message.type !== "candidate") return;
        entry = addPeer({ session: message.from, user: message.from_user ?? "?", name: message.from_user ?? "?" }, false);
      }
      if (message.type === "candidate") void entry.peer.onCandidate(message.candidate);
      else void entry.peer.onDescription(message.type, message.sdp);
      break;
    }
    case "invite":
      onInvite(message);
      break;
    case "invite_reply":
      onInviteReply(message);
      break;
    case "invite_cancel":
      app.invites.delete(message.room);
      renderInvites();
      break;
    case "error":
      if (app.ringing && message.re === app.ringing.requestId && message.code === "offline") {
        setStatus(`${app.ringing.to} is offline.`, true);
        stopRinging();
      } else {
        setStatus(`Server: ${message.code}${message.message ? ` (${message.message})` : ""}`, true);
      }
      break;
    default:
      break;
  }
}

// ---- invites ---------------------------------------------------------------

async function ring(user, media) {
  if (app.room || app.ringing) return;
  const room = `r-${Math.random().toString(36).slice(2, 10)}`;
  const requestId = app.signaling.send({ type: "invite", room, to: user, media });
  app.ringing = { room, to: user, requestId };
  $("ringing-text").textContent = `Calling ${app.online.get(user) ?? user}…`;
  $("ringing").hidden = false;
}

function stopRinging() {
  app.ringing = null;
  $("ringing").hidden = true;
}

function cancelRing() {
  if (!app.ringing) return;
  app.signaling.send({ type: "invite_cancel", room: app.ringing.room, to: app.ringing.to });
  stopRinging();
}

function onInviteReply(message) {
  if (!app.ringing || message.room !== app.ringing.room) return;
  const { room } = app.ringing;
  stopRinging();
  if (message.answer === "accept") void join(room);
  else setStatus(`${message.from} ${message.answer === "busy" ? "is busy" : "declined"}.`);
}

function onInvite(message) {
  const busy = app.room !== null || app.ringing !== null || app.invites.size >= MAX_INVITES;
  const reply = (answer) => {
    app.signaling.send({ type: "invite_reply", room: message.room, to: message.from, answer });
    app.invites.delete(message.room);
    renderInvites();
    if (answer === "accept") void join(message.room);
  };
  if (busy) {
    reply("busy");
    return;
  }
  if (options.answer === "accept" || options.answer === "decline" || options.answer === "busy") {
    reply(options.answer);
    return;
  }
  app.invites.set(message.room, { ...message, reply });
  renderInvites();
}

function renderInvites() {
  const list = $("invites");
  list.replaceChildren();
  for (const invite of app.invites.values()) {
    list.append(
      el("li", {}, el("span", {}, `${invite.from_name ?? invite.from} (${invite.media === "audio" ? "audio" : "video"})`),
        el("button", { type: "button", onclick: () => invite.reply("accept") }, "Accept"),
        el("button", { type: "button", class: "danger", onclick: () => invite.reply("decline") }, "Decline")),
    );
  }
  if (!list.children.length) list.append(el("li", { class: "muted" }, "No invites."));
}

// ---- the call ---------------------------------------------------------------

async function join(room) {
  if (app.room) return;
  if (!NAME_RE.test(room)) {
    setStatus("A room name is 1–64 letters, digits, '.', '_' or '-'.", true);
    return;
  }
  app.room = room;
  app.state = "joining";
  if (!app.media) {
    app.media = await openMedia({
      source: options.source,
      width: options.width,
      height: options.height,
      fps: options.fps,
      tone: options.tone,
      audio: options.audio,
    });
    if (app.media.warning) setStatus(app.media.warning, true);
  }
  const selfTile = el("div", { class: "tile self" });
  const selfVideo = el("video", { muted: true, autoplay: true, playsInline: true });
  selfVideo.srcObject = app.media.stream;
  selfTile.append(selfVideo, el("span", { class: "label" }, `${app.welcome.name} (you)`));
  $("grid").replaceChildren(selfTile);
  $("room-name").textContent = `room ${room}`;
  $("chat-log").replaceChildren();
  show("call");
  app.signaling.send({ type: "join", room });
}

function addPeer(remote, offerer) {
  const existing = app.peers.get(remote.session);
  if (existing) return existing;
  const peer = new Peer({
    room: app.room,
    remote,
    selfSession: app.welcome.session,
    selfUser: app.welcome.user,
    signaling: app.signaling,
    stream: app.media.stream,
    codec: options.codec,
    iceServers: app.welcome.ice_servers ?? [],
    offerer,
  });
  const video = el("video", { autoplay: true, playsInline: true });
  video.srcObject = peer.remoteStream;
  const stats = el("span", { class: "stats" }, "connecting…");
  const tile = el("div", { class: "tile" }, video, stats, el("span", { class: "label" }, remote.name ?? remote.user));
  tile.dataset.session = remote.session;
  tile.dataset.user = remote.user;
  $("grid").append(tile);
  peer.addEventListener("track", () => void video.play().catch(() => {}));
  peer.addEventListener("chat", (event) => addChatLine(remote.name ?? remote.user, event.detail.text, null));
  peer.addEventListener("change", renderChatAcks);
  peer.chat.addEventListener("open", maybeStartChat);
  peer.watch(video);
  const entry = { peer, tile, stats, video };
  app.peers.set(remote.session, entry);
  return entry;
}

async function removePeer(session) {
  const entry = app.peers.get(session);
  if (!entry) return;
  app.peers.delete(session);
  await entry.peer.close();
  app.left.push(entry.peer.finalStats);
  entry.tile.remove();
}

async function leave() {
  if (!app.room) return;
  app.signaling.send({ type: "leave", room: app.room });
  for (const session of [...app.peers.keys()]) await removePeer(session);
  app.media?.stop();
  app.media = null;
  app.room = null;
  app.state = "online";
  app.autoChatStarted = false;
  show("lobby");
}

function toggleMic() {
  app.micMuted = !app.micMuted;
  for (const track of app.media?.stream.getAudioTracks() ?? []) track.enabled = !app.micMuted;
  $("mute").textContent = app.micMuted ? "Unmute" : "Mute";
  $("mute").classList.toggle("off", app.micMuted);
}

function toggleCamera() {
  app.cameraOff = !app.cameraOff;
  for (const track of app.media?.stream.getVideoTracks() ?? []) track.enabled = !app.cameraOff;
  $("camera").textContent = app.cameraOff ? "Camera on" : "Camera off";
  $("camera").classList.toggle("off", app.cameraOff);
}

// ---- chat -------------------------------------------------------------------

const chatLines = [];

function addChatLine(from, text, messages) {
  const line = el("li", {}, el("span", { class: "from" }, from), el("span", {}, text));
  if (messages) line.classList.add("pending");
  chatLines.push({ line, messages });
  $("chat-log").append(line);
  line.scrollIntoView({ block: "nearest" });
}

function renderChatAcks() {
  for (const { line, messages } of chatLines) {
    if (!messages) continue;
    const delivered = messages.every(({ chat, id }) => !chat.unacked.has(id));
    line.classList.toggle("pending", !delivered);
  }
}

function sendChat(text) {
  if (!text) return;
  const messages = [];
  try {
    for (const { peer } of app.peers.values()) messages.push({ chat: peer.chat, id: peer.chat.send(text).id });
  } catch (err) {
    setStatus(String(err.message ?? err), true);
    return;
  }
  addChatLine(app.welcome.name, text, messages);
}

function maybeStartChat() {
  if (!options.chat || app.autoChatStarted) return;
  if (![...app.peers.values()].some(({ peer }) => peer.chat.open)) return;
  app.autoChatStarted = true;
  let n = 0;
  const timer = setInterval(() => {
    n++;
    sendChat(`message ${n} from ${app.welcome.user}`);
    if (n >= options.chat) clearInterval(timer);
  }, options.chatInterval);
}

// ---- live stats ---------------------------------------------------------------

const previous = new Map();

async function updateStats() {
  for (const [session, entry] of app.peers) {
    let s;
    try {
      s = await entry.peer.stats();
    } catch {
      continue;
    }
    // Rates from two readings a second apart, ours rather than getStats'
    // framesPerSecond, which reads hundreds in a call's first second.
    const now = performance.now();
    const reading = { at: now, bytes: s.video_in?.bytes_received ?? 0, frames: s.video_in?.frames_decoded ?? 0 };
    const before = previous.get(session);
    previous.set(session, reading);
    const seconds = before ? (now - before.at) / 1000 : 0;
    const parts = [s.connection_state];
    if (s.video_in) {
      const rate = (value) => (seconds > 0 ? value / seconds : null);
      const fps = rate(reading.frames - (before?.frames ?? 0));
      const bps = rate((reading.bytes - (before?.bytes ?? 0)) * 8);
      parts.push(
        `${s.video_in.codec ?? "video"} ${fps === null ? "–" : fps.toFixed(0)} fps`,
        `${bps === null ? "–" : (bps / 1e6).toFixed(2)} Mbit/s`,
      );
    }
    if (s.transport?.rtt_ms != null) parts.push(`rtt ${s.transport.rtt_ms} ms`);
    if (s.glass_to_glass_ms) parts.push(`g2g ${s.glass_to_glass_ms.p50} ms`);
    entry.stats.textContent = parts.join(" · ");
  }
  for (const session of previous.keys()) if (!app.peers.has(session)) previous.delete(session);
}
setInterval(() => void updateStats(), 1000);

// ---- wiring -------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  options.source = $("source").value;
  options.codec = $("codec").value;
  void signIn($("user").value.trim(), $("name").value.trim());
});
$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void join($("room").value.trim());
});
$("cancel-ring").addEventListener("click", cancelRing);
$("leave").addEventListener("click", () => void leave());
$("mute").addEventListener("click", toggleMic);
$("camera").addEventListener("click", toggleCamera);
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sendChat($("chat-text").value);
  $("chat-text").value = "";
});
$("source").value = options.source;
$("codec").value = options.codec;
renderInvites();

/** What tests and bots read and drive (the page's own API, not the UI). */
window.kith = {
  get state() {
    return app.state;
  },
  get errors() {
    return [...app.errors];
  },
  async report() {
    const peers = [];
    for (const { peer } of app.peers.values()) peers.push(await peer.stats());
    return {
      user: app.welcome?.user ?? null,
      session: app.welcome?.session ?? null,
      room: app.room,
      state: app.state,
      source: app.media?.kind ?? null,
      peers,
      left: app.left,
      errors: app.errors,
    };
  },
  /** Users whose peers have left this page's room (their figures are frozen). */
  leftUsers() {
    return app.left.filter(Boolean).map((peer) => peer.user);
  },
  sendChat,
  leave,
  join,
  ring,
};

if (params.get("user")) {
  $("user").value = params.get("user");
  void signIn(params.get("user"), params.get("name") ?? params.get("user"));
}
