// A minimal Kith signaling relay (protocol v1, shared/protocol.md) on the `ws`
// package: one Node process, one thread of JavaScript, no clustering. It is
// the baseline `cargo xtask bench signaling` measures signaling-dev against,
// so it does the work any honest v1 relay must (check every frame as
// signaling-dev's parser does, hello, presence, rooms, relay by session and
// room, invites, errors, pings) and leaves out what the protocol makes
// optional (tokens, ICE/TURN servers, rate limits, /metrics, the web client).
//
//   node relay.mjs --listen 127.0.0.1:0      (or KITH_RELAY_LISTEN=127.0.0.1:0)
//
// Once listening it prints one JSON line on stdout, like signaling-dev:
//   {"listening":"127.0.0.1:40123","ws":"ws://127.0.0.1:40123/ws"}
// and nothing more there: the bench closes the pipe after that line, so later
// writes to stdout would fail. Anything else goes to stderr.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const MAX_FRAME_BYTES = 64 * 1024;
const ROOM_LIMIT = 8; // signaling-dev's default mesh limit
const PING_MS = 20_000;
const DEAD_MS = 60_000;
// signaling-dev drops a session that lets 1024 frames queue up; ws queues
// bytes, so the same rule here is a byte bound.
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

// ---- Field checks: the same rules signaling-dev's parser (kith-proto) applies.

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const isId = (v) => typeof v === 'string' && ID.test(v);
// Session and request ids: 1-128 characters (code points, not UTF-16 units).
const isToken = (v) =>
  typeof v === 'string' && v.length > 0 && (v.length <= 128 || [...v].length <= 128);
const isName = (v) =>
  typeof v === 'string' && v.length > 0 && [...v].length <= 64 && !/\p{Cc}/u.test(v);
const isString = (v) => typeof v === 'string';
const isSdp = (v) => typeof v === 'string' && v.trim() !== '';
const isU16 = (v) => Number.isInteger(v) && v >= 0 && v <= 65535;
const optional = (v, check) => v === undefined || v === null || check(v);
const isCandidate = (c) =>
  c === undefined ||
  c === null ||
  (typeof c === 'object' &&
    !Array.isArray(c) &&
    typeof c.candidate === 'string' &&
    optional(c.sdpMid, isString) &&
    optional(c.sdpMLineIndex, isU16) &&
    optional(c.usernameFragment, isString));

// Every type a client may send, with what its fields must be.
const CHECKS = new Map([
  ['hello', (m) => isId(m.user) && optional(m.name, isName) && optional(m.token, isString)],
  ['join', (m) => isId(m.room)],
  ['leave', (m) => isId(m.room)],
  ['offer', (m) => isId(m.room) && isToken(m.to) && isSdp(m.sdp)],
  ['answer', (m) => isId(m.room) && isToken(m.to) && isSdp(m.sdp)],
  ['candidate', (m) => isId(m.room) && isToken(m.to) && isCandidate(m.candidate)],
  ['invite', (m) => isId(m.room) && isId(m.to) && (m.media === 'audio' || m.media === 'video')],
  ['invite_reply', (m) => isId(m.room) && isId(m.to) && ['accept', 'decline', 'busy'].includes(m.answer)],
  ['invite_cancel', (m) => isId(m.room) && isId(m.to)],
]);

/** A text frame as `{ msg, re }`, or `{ error: [code, message], msg?, re? }`. */
function parse(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return { error: ['bad_request', 'malformed message: not JSON'] };
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return { error: ['bad_request', 'malformed message: a message must be a JSON object'] };
  }
  if (!optional(msg.id, isToken)) {
    return { error: ['bad_request', 'malformed message: field `id` must be 1-128 characters'] };
  }
  const re = msg.id ?? undefined;
  if (typeof msg.type !== 'string') {
    return { error: ['bad_request', 'malformed message: field `type` must be a string'], re };
  }
  const check = CHECKS.get(msg.type);
  if (!check) return { error: ['unknown_type', `unknown message type ${msg.type}`], re };
  if (!check(msg)) {
    return { error: ['bad_request', `malformed message: bad or missing fields for ${msg.type}`], msg, re };
  }
  return { msg, re };
}

// ---- State. Maps and Sets keep insertion order, which is join order for rooms.

const sessions = new Map(); // session id → { id, user, name, ws, rooms: Set<room> }
const users = new Map(); // user → { name, sessions: Set<session> }
const rooms = new Map(); // room → Set<session>

const encode = (message) => JSON.stringify(message); // `re: undefined` is left out

/** Queues a frame for a session; one that has stopped reading is dropped, as in signaling-dev. */
function deliver(session, text) {
  if (session.ws.bufferedAmount > MAX_QUEUED_BYTES) {
    session.ws.close(1008, 'too slow reading messages');
    disconnect(session);
    return;
  }
  session.ws.send(text);
}

/** Encodes once for any number of receivers. */
function broadcast(targets, message) {
  const text = encode(message);
  for (const target of targets) deliver(target, text);
}

function sendError(ws, code, message, re) {
  ws.send(encode({ type: 'error', code, message, re }));
}

const peerInfo = (s) => ({ session: s.id, user: s.user, name: s.name });

/** Every session of `user` but `except`. */
function sessionsOf(user, except) {
  const entry = users.get(user);
  return entry ? [...entry.sessions].filter((s) => s !== except) : [];
}

function hello(ws, msg, re) {
  let id;
  do id = `s${randomBytes(8).toString('hex')}`;
  while (sessions.has(id));
  const name = msg.name ?? msg.user;
  const online = [];
  for (const [user, entry] of users) if (user !== msg.user) online.push({ user, name: entry.name });
  ws.send(encode({ type: 'welcome', protocol: 1, session: id, user: msg.user, name, ice_servers: [], online, re }));
  let entry = users.get(msg.user);
  if (!entry) {
    // A user's first session: everyone already here hears it.
    broadcast(sessions.values(), { type: 'presence', user: msg.user, name, online: true });
    entry = { name, sessions: new Set() };
    users.set(msg.user, entry);
  }
  const session = { id, user: msg.user, name, ws, rooms: new Set() };
  entry.sessions.add(session);
  sessions.set(id, session);
  return session;
}

function join(session, room, re) {
  const members = rooms.get(room) ?? new Set();
  const already = members.has(session);
  if (!already && members.size >= ROOM_LIMIT) {
    sendError(session.ws, 'room_full', `room ${room} already has ${ROOM_LIMIT} members, the most it takes`, re);
    return;
  }
  const others = [...members].filter((m) => m !== session);
  session.ws.send(encode({ type: 'joined', room, peers: others.map(peerInfo), re }));
  if (already) return; // joining twice is answered again and changes nothing
  broadcast(others, { type: 'peer_joined', room, peer: peerInfo(session) });
  members.add(session);
  rooms.set(room, members);
  session.rooms.add(room);
}

function leaveRoom(session, room) {
  const members = rooms.get(room);
  if (!members) return;
  members.delete(session);
  if (members.size === 0) rooms.delete(room);
  else broadcast(members, { type: 'peer_left', room, session: session.id });
}

/** offer, answer, candidate: forwarded unchanged but for `to` → `from`, `from_user`. */
function relay(session, msg, re) {
  const members = rooms.get(msg.room);
  if (!members?.has(session)) {
    sendError(session.ws, 'not_in_room', `you are not in room ${msg.room}`, re);
    return;
  }
  const target = sessions.get(msg.to);
  if (!target || !members.has(target)) {
    sendError(session.ws, 'no_such_peer', `no session ${msg.to} in room ${msg.room}`, re);
    return;
  }
  delete msg.to;
  msg.from = session.id;
  msg.from_user = session.user;
  deliver(target, encode(msg));
}

function handle(session, msg, re) {
  const { room } = msg;
  switch (msg.type) {
    case 'hello':
      sendError(session.ws, 'bad_request', 'hello was already said', re);
      break;
    case 'join':
      join(session, room, re);
      break;
    case 'leave':
      if (!session.rooms.delete(room)) sendError(session.ws, 'not_in_room', `you are not in room ${room}`, re);
      else leaveRoom(session, room);
      break;
    case 'offer':
    case 'answer':
    case 'candidate':
      relay(session, msg, re);
      break;
    case 'invite':
    case 'invite_cancel': {
      const targets = sessionsOf(msg.to, session);
      if (targets.length === 0) sendError(session.ws, 'offline', `${msg.to} is offline`, re);
      else if (msg.type === 'invite')
        broadcast(targets, { type: 'invite', room, from: session.user, from_name: session.name, media: msg.media });
      else broadcast(targets, { type: 'invite_cancel', room, from: session.user });
      break;
    }
    case 'invite_reply': {
      const callers = sessionsOf(msg.to, session);
      if (callers.length === 0) {
        sendError(session.ws, 'offline', `${msg.to} is offline`, re);
        break;
      }
      broadcast(callers, { type: 'invite_reply', room, from: session.user, answer: msg.answer });
      // The callee's other devices stop ringing: answered elsewhere.
      broadcast(sessionsOf(session.user, session), { type: 'invite_cancel', room, from: msg.to });
      break;
    }
  }
}

/** The connection is gone or dropped; safe to call twice. */
function disconnect(session) {
  if (sessions.get(session.id) !== session) return;
  sessions.delete(session.id);
  for (const room of session.rooms) leaveRoom(session, room);
  const entry = users.get(session.user);
  entry.sessions.delete(session);
  if (entry.sessions.size === 0) {
    users.delete(session.user);
    broadcast(sessions.values(), { type: 'presence', user: session.user, name: entry.name, online: false });
  }
}

// ---- Sockets.

function listenAddress() {
  let value = process.env.KITH_RELAY_LISTEN ?? '127.0.0.1:8787';
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--listen' && i + 1 < args.length) value = args[++i];
    else if (args[i].startsWith('--listen=')) value = args[i].slice('--listen='.length);
    else fail(`unknown argument ${args[i]}; usage: node relay.mjs [--listen HOST:PORT]`);
  }
  const match = /^(?:\[(.+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  if (!match) fail(`--listen wants HOST:PORT, not ${value}`);
  return { host: match[1] ?? match[2], port: Number(match[3]) };
}

function fail(message) {
  process.stderr.write(`relay.mjs: ${message}\n`);
  process.exit(2);
}

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.end('ok');
  } else if (req.url === '/ws') {
    res.writeHead(426, { upgrade: 'websocket' }).end('this endpoint speaks WebSocket (Kith signaling protocol v1)');
  } else {
    res.writeHead(404).end();
  }
});

// No permessage-deflate: signaling-dev does not offer it either.
const wss = new WebSocketServer({ server: http, path: '/ws', maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });

wss.on('connection', (ws) => {
  let session = null; // set by a valid hello
  ws.heard = Date.now();
  ws.on('pong', () => (ws.heard = Date.now()));
  // Without a listener an 'error' (bad frame, frame over maxPayload: ws then
  // closes with 1002/1009 by itself) would throw and end the process.
  ws.on('error', () => {});
  ws.on('close', () => session && disconnect(session));
  ws.on('message', (data, isBinary) => {
    ws.heard = Date.now();
    const parsed = isBinary
      ? { error: ['bad_request', 'binary frames are a protocol error; send JSON text'] }
      : parse(data.toString());
    if (session) {
      if (parsed.error) sendError(ws, ...parsed.error, parsed.re);
      else handle(session, parsed.msg, parsed.re);
      return;
    }
    if (!parsed.error && parsed.msg.type === 'hello') {
      session = hello(ws, parsed.msg, parsed.re);
      return;
    }
    // Anything but a valid hello first: refused, and the connection closed.
    const [code, message] =
      parsed.msg?.type === 'hello' ? parsed.error : ['unauthorized', 'say hello first'];
    sendError(ws, code, message, parsed.re);
    ws.close(4001, 'hello refused');
  });
});

// One timer for all sessions: ping the live, drop the silent.
setInterval(() => {
  const now = Date.now();
  for (const ws of wss.clients) {
    if (now - ws.heard >= DEAD_MS) ws.terminate();
    else ws.ping();
  }
}, PING_MS);

const { host, port } = listenAddress();
http.on('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`));
// The same accept backlog as tokio's TcpListener::bind, which signaling-dev uses.
http.listen({ host, port, backlog: 1024 }, () => {
  const address = http.address();
  const hostPort = address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
  process.stdout.write(`${JSON.stringify({ listening: hostPort, ws: `ws://${hostPort}/ws` })}\n`);
});
