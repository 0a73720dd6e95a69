//! One peer connection as the core sees it: who is at the other end, where
//! negotiation stands, and whether it is connected, detached from signaling
//! or sending.

use std::time::Instant;

use kith_media::codec::{AudioCodec, VideoCodec};
use kith_proto::{IceCandidate, RoomId, SessionId, UserId};
use serde::Serialize;

/// The core's name for a peer connection; stable while the remote's
/// signaling session changes under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LinkId(pub u64);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link{}", self.0)
    }
}

/// Identity of the remote end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remote {
    pub room: RoomId,
    pub session: SessionId,
    pub user: UserId,
}

/// The peer connection's overall state, as webrtc-rs (or a browser) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// ICE's own state, which says sooner than the connection that a path broke.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IceState {
    New,
    Checking,
    Connected,
    Completed,
    Disconnected,
    Failed,
    Closed,
}

/// Remote candidates kept while no remote description is set.
pub const MAX_PENDING_CANDIDATES: usize = 64;

#[derive(Debug)]
pub struct Link {
    pub remote: Remote,
    pub polite: bool,
    /// We asked the driver for an offer and it has not come back yet.
    pub making_offer: bool,
    /// Our offer is set locally and unanswered.
    pub have_local_offer: bool,
    /// We asked the driver for an answer and it has not come back yet.
    pub answering: bool,
    pub remote_description_set: bool,
    pub pending_candidates: Vec<IceCandidate>,
    pub remote_ufrag: Option<String>,
    /// Set when the remote's signaling session went away (or ours did).
    pub detached_since: Option<Instant>,
    pub state: PeerState,
    pub chat_open: bool,
    /// The driver was asked to start sending (once per connection).
    pub sending_requested: bool,
    pub sending_video: Option<VideoCodec>,
    pub sending_audio: Option<AudioCodec>,
    pub created_at: Instant,
    pub connected_once: bool,
    /// Shown as reconnecting since then.
    pub reconnecting_since: Option<Instant>,
    pub ice: crate::ice_recovery::IceRecovery,
    /// ICE's last reported state.
    pub ice_state: IceState,
}

impl Link {
    pub fn new(remote: Remote, polite: bool, now: Instant) -> Self {
        Self {
            remote,
            polite,
            making_offer: false,
            have_local_offer: false,
            answering: false,
            remote_description_set: false,
            pending_candidates: Vec::new(),
            remote_ufrag: None,
            detached_since: None,
            state: PeerState::New,
            chat_open: false,
            sending_requested: false,
            sending_video: None,
            sending_audio: None,
            created_at: now,
            connected_once: false,
            reconnecting_since: None,
            ice: crate::ice_recovery::IceRecovery::default(),
            ice_state: IceState::New,
        }
    }

    /// Queues a remote candidate until the remote description is set; the
    /// oldest goes first past the bound (a peer cannot grow this forever).
    pub fn queue_candidate(&mut self, candidate: IceCandidate) {
        if self.pending_candidates.len() >= MAX_PENDING_CANDIDATES {
            self.pending_candidates.remove(0);
        }
        self.pending_candidates.push(candidate);
    }
}
