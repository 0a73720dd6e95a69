//! The Kith call engine: signaling client, peer connections (webrtc-rs),
//! the media pipeline between kith-media and RTP, chat, stats and a typed
//! event API. Knows nothing of any UI.
//!
//! Start a [`Call`] with a [`CallConfig`], tell it what to do (join, invite,
//! chat) and read [`CallEvent`]s; [`Call::finish`] returns a
//! [`CallSummary`].

pub mod chat;
pub mod codecs;
mod engine;
pub mod error;
pub mod events;
pub mod media;
pub mod negotiation;
mod peer;
mod rtcp_filter;
pub mod signaling;
pub mod stats;

pub use chat::{ChatCounts, ChatMessage};
pub use engine::{Call, CallConfig, size_for_bitrate};
pub use error::CallError;
pub use events::{CallEvent, CallSummary, PeerSummary};
pub use media::send::VideoSendSettings;
pub use media::sinks::{AudioLevel, LatestFrame, ParticipantMedia, VideoSink, Y4mRecorder};
pub use media::sources::{AudioSourceSpec, VideoSourceSpec};
pub use signaling::SignalingConfig;
pub use stats::{PeerStats, Percentiles};
