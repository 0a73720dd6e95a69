//! Kith's call logic with no I/O, in the manner of str0m's `Rtc` and
//! signaling-dev's `Hub`: a synchronous [`CallCore`] owns every decision of a
//! call (rooms and links, who offers, glare and rollback, rebinding after a
//! signaling reconnect, the grace for a link without signaling, invites and
//! ringing with their timeouts, the chat book, bandwidth and keyframe
//! policy, every timer). It is fed [`Input`]s and [`Command`]s with the time
//! passed in and polled for [`Output`]s; it never reads a clock, a socket or
//! a random number. `kith-call`'s driver carries the outputs out on
//! webrtc-rs, the media threads and the WebSocket; tests carry them out on
//! simulated time with cores wired through `signaling_dev::Hub`.
//!
//! A separate crate so that it cannot grow I/O (it has no async runtime, no
//! WebRTC stack among its dependencies) and its tests build and run in
//! seconds.

pub mod bandwidth;
pub mod chat;
mod core;
pub mod error;
pub mod events;
pub mod ice_recovery;
pub mod io;
pub mod keyframes;
pub mod link;
pub mod negotiation;
mod orphans;
pub mod ringing;
pub mod sharp_fall;
pub mod snapshot;
pub mod stats;

pub use crate::core::{
    CallCore, CoreConfig, DETACHED_GRACE, ESTIMATE_INTERVAL, STATS_INTERVAL, VideoPlan,
};
pub use bandwidth::size_for_bitrate;
pub use chat::{ChatCounts, ChatMessage};
pub use error::{CallError, DeviceKind, DeviceProblem};
pub use events::{
    CallEvent, CallSummary, InviteEnd, LeaveReason, MissedReason, PeerSummary, ReconnectCause,
    RingOutcome, TrackKind,
};
pub use io::{Command, Input, LinkSample, MediaOp, Outgoing, Output, PeerFact, PeerOp};
pub use link::{IceState, LinkId, PeerState, Remote};
pub use snapshot::{CallSnapshot, PeerSnapshot};
pub use stats::{PeerMeasure, PeerStats, Percentiles};
