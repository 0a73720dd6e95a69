//! The messages of protocol v1, client to server and server to client.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::names::{DisplayName, RequestId, RoomId, SessionId, UserId};

/// The protocol version this crate speaks, sent in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest chat `text` on the data channel, in bytes.
pub const MAX_CHAT_TEXT_BYTES: usize = 16 * 1024;

/// What an invite rings for.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// How the callee answered an invite.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteAnswer {
    Accept,
    Decline,
    Busy,
}

/// Why an invite stopped ringing (`invite_cancel.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The caller hung up or gave up.
    Canceled,
    /// Another session of the callee replied.
    AnsweredElsewhere,
}

/// Why a session left a room (`peer_left.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// It sent `leave`: it hung up.
    Left,
    /// Its connection to the server closed; its media may live on while it reconnects.
    Disconnected,
}

/// An ICE candidate as a browser's `RTCIceCandidate.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line; empty for a browser's end-of-generation marker.
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// A session description's text. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sdp(String);

impl Sdp {
    pub fn new(text: impl Into<String>) -> Result<Self, crate::FieldError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(crate::FieldError::new("sdp", "must not be empty"));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sdp {
    type Error = crate::FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Sdp> for String {
    fn from(value: Sdp) -> String {
        value.0
    }
}

/// A message a client sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        user: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<DisplayName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    Join {
        room: RoomId,
    },
    Leave {
        room: RoomId,
    },
    Offer {
        room: RoomId,
        to: SessionId,
        sdp: Sdp,
    },
    Answer {
        room: RoomId,
        to: SessionId,
        sdp: Sdp,
    },
    Candidate {
        room: RoomId,
        to: SessionId,
        /// `None` (JSON `null`) marks the end of candidates.
        candidate: Option<IceCandidate>,
    },
    Invite {
        room: RoomId,
        to: UserId,
        media: MediaKind,
    },
    InviteReply {
        room: RoomId,
        to: UserId,
        answer: InviteAnswer,
    },
    InviteCancel {
        room: RoomId,
        to: UserId,
    },
}

impl ClientMessage {
    /// Every `type` a client may send.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "join",
        "leave",
        "offer",
        "answer",
        "candidate",
        "invite",
        "invite_reply",
        "invite_cancel",
    ];

    /// The wire `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Hello { .. } => "hello",
            ClientMessage::Join { .. } => "join",
            ClientMessage::Leave { .. } => "leave",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::Invite { .. } => "invite",
            ClientMessage::InviteReply { .. } => "invite_reply",
            ClientMessage::InviteCancel { .. } => "invite_cancel",
        }
    }

    /// For the three relayed types: the room and the target session.
    pub fn relay_target(&self) -> Option<(&RoomId, &SessionId)> {
        match self {
            ClientMessage::Offer { room, to, .. }
            | ClientMessage::Answer { room, to, .. }
            | ClientMessage::Candidate { room, to, .. } => Some((room, to)),
            _ => None,
        }
    }
}

/// One entry of `ice_servers`, shaped like WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Someone who is online, as listed in `welcome.online`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineUser {
    pub user: UserId,
    pub name: DisplayName,
}

/// Another session in a room.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub session: SessionId,
    pub user: UserId,
    pub name: DisplayName,
}

/// A message the server sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        protocol: u32,
        session: SessionId,
        user: UserId,
        name: DisplayName,
        ice_servers: Vec<IceServer>,
        online: Vec<OnlineUser>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
    },
    Presence {
        user: UserId,
        name: DisplayName,
        online: bool,
    },
    Joined {
        room: RoomId,
        peers: Vec<PeerInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
    },
    PeerJoined {
        room: RoomId,
        peer: PeerInfo,
    },
    PeerLeft {
        room: RoomId,
        session: SessionId,
        /// Kith's addition: a `leave` or a lost connection. Absent (a
        /// protocol-v1 server) means either.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<LeftReason>,
    },
    Offer {
        room: RoomId,
        from: SessionId,
        from_user: UserId,
        sdp: Sdp,
    },
    Answer {
        room: RoomId,
        from: SessionId,
        from_user: UserId,
        sdp: Sdp,
    },
    Candidate {
        room: RoomId,
        from: SessionId,
        from_user: UserId,
        candidate: Option<IceCandidate>,
    },
    Invite {
        room: RoomId,
        from: UserId,
        from_name: DisplayName,
        media: MediaKind,
    },
    InviteReply {
        room: RoomId,
        from: UserId,
        answer: InviteAnswer,
    },
    InviteCancel {
        room: RoomId,
        from: UserId,
        /// Kith's addition: why the ringing stopped. Absent means the caller
        /// cancelled (what any protocol-v1 server means by it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<CancelReason>,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
    },
}

impl ServerMessage {
    /// Every `type` the server may send.
    pub const TYPES: &'static [&'static str] = &[
        "welcome",
        "presence",
        "joined",
        "peer_joined",
        "peer_left",
        "offer",
        "answer",
        "candidate",
        "invite",
        "invite_reply",
        "invite_cancel",
        "error",
    ];

    pub fn error(code: ErrorCode, message: impl Into<String>, re: Option<RequestId>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            re,
        }
    }

    /// The message as one JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every key is a string and no
        // value has a fallible Serialize impl.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}
