//! The Kith call engine an app embeds: the signaling client, peer
//! connections (webrtc-rs), the media pipeline between kith-media and RTP,
//! frame sinks, stats and a typed event API. Knows nothing of any UI.
//!
//! Every decision is made by [`kith_call_core::CallCore`] (no I/O, tested on
//! simulated time); this crate is its driver. Start a [`Call`] with a
//! [`CallConfig`], tell it what to do (join, ring, answer, mute, chat, switch
//! devices), read its [`CallEvent`]s, draw its [`LatestFrame`]s;
//! [`Call::finish`] returns a [`CallSummary`].
//!
//! ## The frame path
//!
//! Camera to wire: a source ([`media::sources`]: camera, synthetic, Y4M) is
//! read by the video source thread in [`media::send`], which also feeds the
//! self-view [`LatestFrame`]; one encoder thread per negotiated codec
//! (kith-media's `codec::factory`) encodes once for the whole call; the
//! packetizer splits each frame into RTP payloads once and broadcasts them;
//! each peer's RTP writer (`connection::write_units`) stamps its own SSRC and
//! sequence numbers and hands them to webrtc-rs, whose interceptor chain
//! (built in `chain`) paces them (`pacer`: audio first, then
//! retransmissions, then video), answers NACKs and stamps TWCC before SRTP.
//! Audio takes the same way from [`media::send`]'s audio thread (microphone
//! through the echo canceller, tone or WAV) through Opus or G.711.
//!
//! Wire to screen: the chain unwraps retransmissions (`rtx`) and asks for
//! what is missing (`nack`); webrtc-rs delivers each remote track's RTP to
//! [`media::receive`]; [`media::assembler`] reorders packets and releases
//! whole frames; a decoder thread per track decodes them and holds each
//! until the time [`media::playout`] gives it (together, the video jitter
//! buffer: a delay that covers recent repairs, none on a clean link), then
//! hands it to the sinks of [`media::sinks`] (the participant's
//! [`LatestFrame`], a [`Y4mRecorder`]), measuring glass-to-glass latency
//! from the latency strip and freezes as shown. Audio is decoded per
//! packet (with FEC and concealment), measured by [`AudioLevel`] and mixed
//! by [`media::mixer`] into the speakers, the echo canceller's far end and
//! a WAV recording.

mod alive;
pub mod candidates;
mod chain;
pub mod codecs;
mod connection;
pub mod counters;
pub mod device_errors;
mod driver;
pub mod error;
mod estimator;
pub mod media;
mod nack;
mod pacer;
pub mod priority;
mod repairs;
mod rtcp_filter;
mod rtx;
pub mod signaling;
pub mod sockets;
mod superseded;
#[cfg(test)]
mod test_packets;
mod turn_tcp;

pub use alive::peer_connections_alive;
pub use driver::{Call, CallConfig, CallEvents, Participant};
pub use error::CallError;
pub use kith_call_core::chat::UNACKED_LIMIT as UNACKED_CHAT_LIMIT;
pub use kith_call_core::{
    CallEvent, CallSnapshot, CallSummary, ChatCounts, ChatMessage, DeviceKind, DeviceProblem,
    InviteEnd, LeaveReason, MissedReason, PeerStats, PeerSummary, Percentiles, ReconnectCause,
    RingOutcome, TrackKind, size_for_bitrate,
};
pub use media::send::VideoSendSettings;
pub use media::sinks::{AudioLevel, LatestFrame, ParticipantMedia, VideoSink, Y4mRecorder};
pub use media::sources::{AudioSourceSpec, VideoSourceSpec};
pub use signaling::SignalingConfig;
