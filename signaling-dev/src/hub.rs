//! The server's state and rules, with no I/O: sessions, users, rooms and
//! invites. Inputs are method calls (with the time passed in); outputs are
//! frames queued for sessions, which the caller delivers. This keeps every
//! rule of protocol.md testable without sockets, in the manner of str0m.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use kith_proto::{
    CancelReason, ClientMessage, DisplayName, ErrorCode, IceServer, InviteAnswer, LeftReason,
    MediaKind, OnlineUser, PROTOCOL_VERSION, PeerInfo, Request, RequestId, RoomId, ServerMessage,
    SessionId, UserId,
};
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::metrics::Metrics;

/// The server's own handle for a connection; never sent on the wire.
pub type SessionKey = u64;

/// Most invites one session may have ringing at once; the oldest is forgotten first.
const MAX_PENDING_INVITES: usize = 64;

/// What the hub needs to know of the server's settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub room_limit: usize,
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub turn_ttl_secs: u64,
}

/// A frame for one session.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Text(Utf8Bytes),
    /// Close the connection with this WebSocket close code.
    Close {
        code: u16,
        reason: &'static str,
    },
}

#[derive(Debug)]
struct Session {
    id: SessionId,
    user: UserId,
    name: DisplayName,
    /// Rooms in the order joined.
    rooms: Vec<RoomId>,
    /// Invites this session sent that are still ringing: (room, callee).
    invites_sent: Vec<(RoomId, UserId)>,
}

#[derive(Debug)]
struct User {
    name: DisplayName,
    sessions: Vec<SessionKey>,
}

/// All signaling state of one server.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    sessions: HashMap<SessionKey, Session>,
    by_id: HashMap<SessionId, SessionKey>,
    users: HashMap<UserId, User>,
    /// Members of each room in the order they joined.
    rooms: HashMap<RoomId, Vec<SessionKey>>,
    metrics: Metrics,
    out: Vec<(SessionKey, Outbound)>,
}

impl Hub {
    pub fn new(config: HubConfig, metrics: Metrics) -> Self {
        Self {
            config,
            sessions: HashMap::new(),
            by_id: HashMap::new(),
            users: HashMap::new(),
            rooms: HashMap::new(),
            metrics,
            out: Vec::new(),
        }
    }

    /// Frames produced since the last call, in order.
    pub fn take_outbound(&mut self) -> Vec<(SessionKey, Outbound)> {
        std::mem::take(&mut self.out)
    }

    /// A connection said a valid `hello` (the token was already checked).
    /// `session_id` is the fresh id the caller drew; `now_unix` dates TURN credentials.
    pub fn hello(
        &mut self,
        key: SessionKey,
        session_id: SessionId,
        user: UserId,
        name: Option<DisplayName>,
        re: Option<RequestId>,
        now_unix: u64,
    ) {
        if self.sessions.contains_key(&key) {
            self.error(key, ErrorCode::BadRequest, "hello was already said", re);
            return;
        }
        if self.by_id.contains_key(&session_id) {
            // The caller draws ids at random; a clash is a bug there, not the client's fault.
            tracing::error!(%session_id, "session id drawn twice");
            self.push(
                key,
                Outbound::Close {
                    code: 1011,
                    reason: "session id clash",
                },
            );
            return;
        }
        let name = name.unwrap_or_else(|| DisplayName::from(&user));
        let first_of_user = !self.users.contains_key(&user);
        let online = self
            .users
            .iter()
            .filter(|(other, _)| **other != user)
            .map(|(other, entry)| OnlineUser {
                user: other.clone(),
                name: entry.name.clone(),
            })
            .collect();
        let welcome = ServerMessage::Welcome {
            protocol: PROTOCOL_VERSION,
            session: session_id.clone(),
            user: user.clone(),
            name: name.clone(),
            ice_servers: self.ice_servers(&user, now_unix),
            online,
            re,
        };
        self.send(key, &welcome);
        if first_of_user {
            let presence = encode(&ServerMessage::Presence {
                user: user.clone(),
                name: name.clone(),
                online: true,
            });
            let everyone: Vec<SessionKey> = self.sessions.keys().copied().collect();
            self.broadcast(&everyone, &presence);
        }
        self.users
            .entry(user.clone())
            .or_insert_with(|| User {
                name: name.clone(),
                sessions: Vec::new(),
            })
            .sessions
            .push(key);
        self.by_id.insert(session_id.clone(), key);
        self.sessions.insert(
            key,
            Session {
                id: session_id,
                user,
                name,
                rooms: Vec::new(),
                invites_sent: Vec::new(),
            },
        );
        self.metrics.set_sessions(self.sessions.len());
    }

    /// A message from a session that has said hello.
    pub fn handle(&mut self, key: SessionKey, request: Request) {
        if !self.sessions.contains_key(&key) {
            return;
        }
        let Request {
            id,
            message,
            relay_fields,
        } = request;
        match message {
            ClientMessage::Hello { .. } => {
                self.error(key, ErrorCode::BadRequest, "hello was already said", id);
            }
            ClientMessage::Join { room } => self.join(key, room, id),
            ClientMessage::Leave { room } => self.leave(key, &room, id),
            ClientMessage::Offer { room, to, .. }
            | ClientMessage::Answer { room, to, .. }
            | ClientMessage::Candidate { room, to, .. } => {
                self.relay(key, &room, &to, relay_fields.unwrap_or_default(), id);
            }
            ClientMessage::Invite { room, to, media } => self.invite(key, room, &to, media, id),
            ClientMessage::InviteReply { room, to, answer } => {
                self.invite_reply(key, room, &to, answer, id);
            }
            ClientMessage::InviteCancel { room, to } => self.invite_cancel(key, room, &to, id),
        }
    }

    /// Sends an error produced outside the hub (parsing, rate limit) and counts it.
    pub fn error(
        &mut self,
        key: SessionKey,
        code: ErrorCode,
        message: impl Into<String>,
        re: Option<RequestId>,
    ) {
        self.metrics.error(code);
        self.send(key, &ServerMessage::error(code, message, re));
    }

    /// The connection is gone (closed, dead, or dropped for being too slow).
    pub fn disconnect(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.remove(&key) else {
            return;
        };
        self.by_id.remove(&session.id);
        for room in &session.rooms {
            self.remove_from_room(key, &session.id, room, LeftReason::Disconnected);
        }
        for (room, callee) in &session.invites_sent {
            let cancel = encode(&ServerMessage::InviteCancel {
                room: room.clone(),
                from: session.user.clone(),
                reason: Some(CancelReason::Canceled),
            });
            let targets = self.sessions_of(callee, None);
            self.broadcast(&targets, &cancel);
        }
        if let Entry::Occupied(mut user) = self.users.entry(session.user.clone()) {
            user.get_mut().sessions.retain(|other| *other != key);
            if user.get().sessions.is_empty() {
                let gone = user.remove();
                let presence = encode(&ServerMessage::Presence {
                    user: session.user.clone(),
                    name: gone.name,
                    online: false,
                });
                let everyone: Vec<SessionKey> = self.sessions.keys().copied().collect();
                self.broadcast(&everyone, &presence);
            }
        }
        self.metrics.set_sessions(self.sessions.len());
        self.metrics.set_rooms(self.rooms.len());
    }

    fn join(&mut self, key: SessionKey, room: RoomId, re: Option<RequestId>) {
        let members = self.rooms.get(&room).map(Vec::as_slice).unwrap_or_default();
        let already_in = members.contains(&key);
        if !already_in && members.len() >= self.config.room_limit {
            let limit = self.config.room_limit;
            self.error(
                key,
                ErrorCode::RoomFull,
                format!("room {room} already has {limit} members, the most it takes"),
                re,
            );
            return;
        }
        let peers: Vec<PeerInfo> = members
            .iter()
            .filter(|member| **member != key)
            .filter_map(|member| self.peer_info(*member))
            .collect();
        let others: Vec<SessionKey> = members.iter().copied().filter(|m| *m != key).collect();
        self.send(
            key,
            &ServerMessage::Joined {
                room: room.clone(),
                peers,
                re,
            },
        );
        if already_in {
            // Joining twice is answered like the first time and changes nothing,
            // so a client that lost track of its state can simply join again.
            return;
        }
        if let Some(me) = self.peer_info(key) {
            let announce = encode(&ServerMessage::PeerJoined {
                room: room.clone(),
                peer: me,
            });
            self.broadcast(&others, &announce);
        }
        self.rooms.entry(room.clone()).or_default().push(key);
        if let Some(session) = self.sessions.get_mut(&key) {
            session.rooms.push(room);
        }
        self.metrics.set_rooms(self.rooms.len());
    }

    fn leave(&mut self, key: SessionKey, room: &RoomId, re: Option<RequestId>) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(position) = session.rooms.iter().position(|r| r == room) else {
            self.error(
                key,
                ErrorCode::NotInRoom,
                format!("you are not in room {room}"),
                re,
            );
            return;
        };
        session.rooms.remove(position);
        let id = session.id.clone();
        self.remove_from_room(key, &id, room, LeftReason::Left);
        self.metrics.set_rooms(self.rooms.len());
    }

    fn remove_from_room(
        &mut self,
        key: SessionKey,
        id: &SessionId,
        room: &RoomId,
        reason: LeftReason,
    ) {
        let Entry::Occupied(mut members) = self.rooms.entry(room.clone()) else {
            return;
        };
        members.get_mut().retain(|member| *member != key);
        if members.get().is_empty() {
            members.remove();
            return;
        }
        let remaining = members.get().clone();
        let left = encode(&ServerMessage::PeerLeft {
            room: room.clone(),
            session: id.clone(),
            reason: Some(reason),
        });
        self.broadcast(&remaining, &left);
    }

    fn relay(
        &mut self,
        key: SessionKey,
        room: &RoomId,
        to: &SessionId,
        mut fields: Map<String, Value>,
        re: Option<RequestId>,
    ) {
        let members = self.rooms.get(room).map(Vec::as_slice).unwrap_or_default();
        if !members.contains(&key) {
            self.error(
                key,
                ErrorCode::NotInRoom,
                format!("you are not in room {room}"),
                re,
            );
            return;
        }
        let target = self.by_id.get(to).copied().filter(|t| members.contains(t));
        let (Some(target), Some(sender)) = (target, self.sessions.get(&key)) else {
            self.error(
                key,
                ErrorCode::NoSuchPeer,
                format!("no session {to} in room {room}"),
                re,
            );
            return;
        };
        fields.remove("to");
        fields.insert("from".into(), Value::String(sender.id.to_string()));
        fields.insert("from_user".into(), Value::String(sender.user.to_string()));
        let text = Value::Object(fields).to_string();
        self.push(target, Outbound::Text(text.into()));
        self.metrics.relayed();
    }

    fn invite(
        &mut self,
        key: SessionKey,
        room: RoomId,
        callee: &UserId,
        media: MediaKind,
        re: Option<RequestId>,
    ) {
        let targets = self.sessions_of(callee, Some(key));
        let Some(caller) = self.sessions.get_mut(&key) else {
            return;
        };
        if targets.is_empty() {
            self.error(key, ErrorCode::Offline, format!("{callee} is offline"), re);
            return;
        }
        let ring = encode(&ServerMessage::Invite {
            room: room.clone(),
            from: caller.user.clone(),
            from_name: caller.name.clone(),
            media,
        });
        let pending = (room, callee.clone());
        if !caller.invites_sent.contains(&pending) {
            if caller.invites_sent.len() >= MAX_PENDING_INVITES {
                caller.invites_sent.remove(0);
            }
            caller.invites_sent.push(pending);
        }
        self.broadcast(&targets, &ring);
    }

    fn invite_reply(
        &mut self,
        key: SessionKey,
        room: RoomId,
        caller: &UserId,
        answer: InviteAnswer,
        re: Option<RequestId>,
    ) {
        let Some(me) = self.sessions.get(&key) else {
            return;
        };
        let my_user = me.user.clone();
        let caller_sessions = self.sessions_of(caller, Some(key));
        if caller_sessions.is_empty() {
            self.error(key, ErrorCode::Offline, format!("{caller} is offline"), re);
            return;
        }
        let reply = encode(&ServerMessage::InviteReply {
            room: room.clone(),
            from: my_user.clone(),
            answer,
        });
        self.broadcast(&caller_sessions, &reply);
        // The callee's other devices stop ringing: answered elsewhere.
        let answered_elsewhere = encode(&ServerMessage::InviteCancel {
            room: room.clone(),
            from: caller.clone(),
            reason: Some(CancelReason::AnsweredElsewhere),
        });
        let my_other_sessions = self.sessions_of(&my_user, Some(key));
        self.broadcast(&my_other_sessions, &answered_elsewhere);
        for session in caller_sessions {
            if let Some(caller_session) = self.sessions.get_mut(&session) {
                caller_session
                    .invites_sent
                    .retain(|(r, callee)| !(r == &room && callee == &my_user));
            }
        }
    }

    fn invite_cancel(
        &mut self,
        key: SessionKey,
        room: RoomId,
        callee: &UserId,
        re: Option<RequestId>,
    ) {
        let targets = self.sessions_of(callee, Some(key));
        let Some(caller) = self.sessions.get_mut(&key) else {
            return;
        };
        caller
            .invites_sent
            .retain(|(r, c)| !(r == &room && c == callee));
        if targets.is_empty() {
            self.error(key, ErrorCode::Offline, format!("{callee} is offline"), re);
            return;
        }
        let cancel = encode(&ServerMessage::InviteCancel {
            room,
            from: caller.user.clone(),
            reason: Some(CancelReason::Canceled),
        });
        self.broadcast(&targets, &cancel);
    }

    fn ice_servers(&self, user: &UserId, now_unix: u64) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if !self.config.stun_urls.is_empty() {
            servers.push(IceServer {
                urls: self.config.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if !self.config.turn_urls.is_empty() {
            let credentials = self.config.turn_secret.as_ref().map(|secret| {
                kith_proto::turn::rest_credentials(
                    secret.as_bytes(),
                    user,
                    now_unix.saturating_add(self.config.turn_ttl_secs),
                )
            });
            servers.push(IceServer {
                urls: self.config.turn_urls.clone(),
                username: credentials.as_ref().map(|c| c.username.clone()),
                credential: credentials.map(|c| c.credential),
            });
        }
        servers
    }

    fn peer_info(&self, key: SessionKey) -> Option<PeerInfo> {
        self.sessions.get(&key).map(|s| PeerInfo {
            session: s.id.clone(),
            user: s.user.clone(),
            name: s.name.clone(),
        })
    }

    /// Every session of `user`, except `except`.
    fn sessions_of(&self, user: &UserId, except: Option<SessionKey>) -> Vec<SessionKey> {
        self.users
            .get(user)
            .map(|u| {
                u.sessions
                    .iter()
                    .copied()
                    .filter(|s| Some(*s) != except)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn send(&mut self, key: SessionKey, message: &ServerMessage) {
        self.push(key, Outbound::Text(encode(message)));
    }

    fn broadcast(&mut self, targets: &[SessionKey], text: &Utf8Bytes) {
        for target in targets {
            self.push(*target, Outbound::Text(text.clone()));
        }
    }

    fn push(&mut self, key: SessionKey, frame: Outbound) {
        self.out.push((key, frame));
    }
}

/// Serializes once; clones of the result share one buffer.
fn encode(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(message.to_json())
}

#[cfg(test)]
mod tests;
