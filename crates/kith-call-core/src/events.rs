//! What a call tells its user (the CLI, the desktop shell), in order, and
//! the summary it leaves behind. Every id is a kith-proto newtype, every
//! reason an enum, so a UI never parses text.

use kith_proto::{
    DisplayName, InviteAnswer, MediaKind, OnlineUser, PeerInfo, RoomId, SessionId, UserId,
};
use serde::Serialize;

use crate::chat::{ChatCounts, ChatMessage};
use crate::error::CallError;
use crate::stats::{PeerStats, Percentiles};

/// Why a peer's connection is gone.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It left the room: it hung up (or, with a server that does not say
    /// why, it went before media flowed).
    Left,
    /// We left the room.
    WeLeft,
    /// Our call ended.
    CallEnded,
    /// The connection failed (ICE or DTLS).
    Failed,
    /// The connection was closed.
    Closed,
    /// Its signaling went away and it did not come back within the grace time.
    DidNotComeBack,
    /// Its signaling went away and then its media stopped too.
    Gone,
    /// The connection could not be set up here (see the error before it).
    CouldNotConnect,
}

/// Why a peer shows as reconnecting.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectCause {
    /// Our or its signaling connection dropped; media may still flow.
    Signaling,
    /// ICE lost the path; it may come back by itself.
    Network,
}

/// How ringing someone ended.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RingOutcome {
    /// They accepted; the call joins the room.
    Accepted,
    Declined,
    Busy,
    Offline,
    /// Nobody answered in time; the invite was cancelled.
    NoAnswer,
    /// We cancelled it.
    Canceled,
}

impl RingOutcome {
    pub fn of_answer(answer: InviteAnswer) -> Self {
        match answer {
            InviteAnswer::Accept => RingOutcome::Accepted,
            InviteAnswer::Decline => RingOutcome::Declined,
            InviteAnswer::Busy => RingOutcome::Busy,
        }
    }
}

/// Why an incoming invite stopped ringing without our answer.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteEnd {
    /// The caller gave up or hung up.
    Canceled,
    /// We answered on another device.
    AnsweredElsewhere,
    /// It rang for the whole ring time and nobody answered here.
    Expired,
}

/// Why an incoming call counts as missed.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedReason {
    /// We were in a call: answered busy on our behalf.
    Busy,
    /// The caller gave up before we answered.
    Canceled,
    /// Nobody answered in time.
    Unanswered,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

/// Everything that happens in a call, in order.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEvent {
    SignalingConnected {
        session: SessionId,
        online: Vec<OnlineUser>,
    },
    SignalingLost {
        reason: String,
    },
    Presence {
        user: UserId,
        name: DisplayName,
        online: bool,
    },
    Joined {
        room: RoomId,
        peers: Vec<PeerInfo>,
    },
    PeerJoined {
        room: RoomId,
        peer: PeerInfo,
    },
    /// Media can flow: ICE and DTLS are up.
    PeerConnected {
        session: SessionId,
        user: UserId,
        candidate_type: Option<String>,
        connect_ms: u64,
    },
    /// The peer may come back: show "reconnecting…".
    PeerReconnecting {
        session: SessionId,
        user: UserId,
        cause: ReconnectCause,
    },
    /// The peer is back after `PeerReconnecting`, `after_ms` later.
    PeerReconnected {
        session: SessionId,
        user: UserId,
        after_ms: u64,
    },
    /// The peer's connection is gone.
    PeerLeft {
        session: SessionId,
        user: UserId,
        reason: LeaveReason,
    },
    /// The peer's signaling session changed while its connection lived on.
    PeerRebound {
        old_session: SessionId,
        session: SessionId,
        user: UserId,
    },
    TrackStarted {
        session: SessionId,
        user: UserId,
        kind: TrackKind,
        codec: String,
    },
    /// We are ringing `to`.
    Ringing {
        room: RoomId,
        to: UserId,
        media: MediaKind,
    },
    /// The callee answered our invite.
    InviteReply {
        room: RoomId,
        from: UserId,
        answer: InviteAnswer,
    },
    /// Our ringing is over, one way or another.
    RingEnded {
        room: RoomId,
        to: UserId,
        outcome: RingOutcome,
    },
    /// Someone rings us: answer with accept, decline or busy.
    Invite {
        room: RoomId,
        from: UserId,
        from_name: DisplayName,
        media: MediaKind,
    },
    /// An invite to us stopped ringing without our answer.
    InviteCanceled {
        room: RoomId,
        from: UserId,
        reason: InviteEnd,
    },
    /// For the missed-calls list.
    MissedCall {
        room: RoomId,
        from: UserId,
        from_name: DisplayName,
        media: MediaKind,
        reason: MissedReason,
    },
    ChatSent {
        message: ChatMessage,
    },
    ChatReceived {
        message: ChatMessage,
    },
    /// Every addressee has acked our message.
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
    pub session: SessionId,
    pub user: UserId,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// From creating the connection: ICE connected, then DTLS done
    /// (connected), the first video packet, the first frame decoded.
    pub ice_ms: Option<u64>,
    pub connect_ms: Option<u64>,
    pub first_packet_ms: Option<u64>,
    pub first_frame_ms: Option<u64>,
    pub frames_decoded: u64,
    /// Mean decoded frames per second while connected.
    pub fps: f64,
    pub freezes: u64,
    /// Time spent frozen, and the longest single freeze, ms.
    pub freeze_ms: u64,
    pub longest_freeze_ms: u64,
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
