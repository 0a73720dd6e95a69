//! The state of a call at one moment, for a UI that (re)loads.

use kith_proto::{RoomId, SessionId, UserId};
use serde::Serialize;

use crate::chat::ChatCounts;
use crate::link::{LinkId, PeerState};
use crate::ringing::{IncomingRing, OutgoingRing};

#[derive(Debug, Clone, Serialize)]
pub struct PeerSnapshot {
    pub link: LinkId,
    pub room: RoomId,
    pub session: SessionId,
    pub user: UserId,
    pub state: PeerState,
    /// Show "reconnecting…".
    pub reconnecting: bool,
    pub video_codec: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallSnapshot {
    pub user: UserId,
    /// `None` while signaling is down.
    pub session: Option<SessionId>,
    pub rooms: Vec<RoomId>,
    pub peers: Vec<PeerSnapshot>,
    /// People we are ringing.
    pub ringing: Vec<OutgoingRing>,
    /// People ringing us.
    pub invites: Vec<IncomingRing>,
    pub mic_muted: bool,
    pub camera_on: bool,
    pub chat: ChatCounts,
}
