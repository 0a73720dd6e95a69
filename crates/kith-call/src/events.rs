//! What the engine tells its user (the CLI, the desktop shell), and the
//! summary it leaves behind.

use kith_proto::{InviteAnswer, MediaKind, OnlineUser, PeerInfo};
use serde::Serialize;

use crate::chat::{ChatCounts, ChatMessage};
use crate::error::CallError;
use crate::stats::{PeerStats, Percentiles};

/// Everything that happens in a call, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEvent {
    SignalingConnected {
        session: String,
        online: Vec<OnlineUser>,
    },
    SignalingLost {
        reason: String,
    },
    Presence {
        user: String,
        name: String,
        online: bool,
    },
    Joined {
        room: String,
        peers: Vec<PeerInfo>,
    },
    PeerJoined {
        room: String,
        peer: PeerInfo,
    },
    /// Media can flow: ICE and DTLS are up.
    PeerConnected {
        session: String,
        user: String,
        candidate_type: Option<String>,
        connect_ms: u64,
    },
    /// The peer's connection is gone (left, failed or closed).
    PeerLeft {
        session: String,
        user: String,
        reason: String,
    },
    /// The peer's signaling session changed while its connection lived on.
    PeerRebound {
        old_session: String,
        session: String,
        user: String,
    },
    TrackStarted {
        session: String,
        user: String,
        kind: String,
        codec: String,
    },
    Invite {
        room: String,
        from: String,
        from_name: String,
        media: MediaKind,
    },
    InviteReply {
        room: String,
        from: String,
        answer: InviteAnswer,
    },
    InviteCanceled {
        room: String,
        from: String,
    },
    ChatReceived {
        message: ChatMessage,
    },
    ChatAcked {
        id: String,
    },
    Stats {
        peers: Vec<PeerStats>,
    },
    Error {
        error: CallError,
    },
}

/// One peer over the whole call, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct PeerSummary {
    pub session: String,
    pub user: String,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub connect_ms: Option<u64>,
    pub first_frame_ms: Option<u64>,
    pub frames_decoded: u64,
    /// Mean decoded frames per second while connected.
    pub fps: f64,
    pub freezes: u64,
    pub glass_to_glass_ms: Option<Percentiles>,
    pub audio_packets_received: u64,
    pub candidate_type: Option<String>,
}

/// What is left when the engine stops.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub peers: Vec<PeerSummary>,
    pub chat: ChatCounts,
}
