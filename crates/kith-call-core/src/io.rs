//! What goes into the core and what comes out of it. The driver turns
//! sockets, webrtc-rs callbacks and user commands into [`Input`]s and
//! carries out every [`Output`].

use std::time::Duration;

use kith_media::codec::{AudioCodec, VideoCodec};
use kith_proto::{
    ClientMessage, DisplayName, IceCandidate, IceServer, InviteAnswer, MediaKind, OnlineUser,
    RequestId, RoomId, Sdp, ServerMessage, SessionId,
};

use crate::events::{CallEvent, TrackKind};
use crate::link::{IceState, LinkId, PeerState, Remote};
use crate::stats::PeerMeasure;

/// Something that happened, for the core to decide on.
#[derive(Debug, Clone)]
pub enum Input {
    /// `welcome` arrived: a new session (after every reconnect, a new one).
    SignalingUp {
        session: SessionId,
        name: DisplayName,
        ice_servers: Vec<IceServer>,
        online: Vec<OnlineUser>,
    },
    /// The signaling connection dropped; the driver retries by itself.
    SignalingDown {
        reason: String,
    },
    /// The server refused our token: no more retries.
    SignalingRefused {
        message: String,
    },
    Server(ServerMessage),
    /// A fact about one peer connection.
    Peer(LinkId, PeerFact),
    /// The measurements asked for with [`MediaOp::SampleStats`].
    Stats(Vec<(LinkId, LinkSample)>),
    /// The bandwidth estimate toward each peer, bits/s (links with none yet
    /// left out), and how many bytes of delta frames each codec's encoder
    /// has produced so far, asked for with [`MediaOp::SampleEstimates`].
    Estimates {
        estimates: Vec<(LinkId, f64)>,
        encoded: Vec<(VideoCodec, u64)>,
    },
}

impl From<ServerMessage> for Input {
    /// `welcome` starts a session; every other message is handed on as it is.
    fn from(message: ServerMessage) -> Self {
        match message {
            ServerMessage::Welcome {
                session,
                name,
                ice_servers,
                online,
                ..
            } => Input::SignalingUp {
                session,
                name,
                ice_servers,
                online,
            },
            other => Input::Server(other),
        }
    }
}

/// One connection's measurements.
#[derive(Debug, Clone, Default)]
pub struct LinkSample {
    pub measure: PeerMeasure,
}

/// What the driver learns of a peer connection.
#[derive(Debug, Clone)]
pub enum PeerFact {
    /// A requested description is set locally.
    LocalDescription(Sdp),
    LocalCandidate(IceCandidate),
    GatheringComplete,
    State(PeerState),
    /// Connected, with the type of the selected local candidate.
    Connected {
        candidate_type: Option<String>,
    },
    Ice(IceState),
    /// The connection negotiated and started sending these codecs.
    Sending {
        video: Option<VideoCodec>,
        audio: Option<AudioCodec>,
    },
    Track {
        kind: TrackKind,
        codec: String,
    },
    ChatOpen,
    ChatClosed,
    ChatText(String),
    /// The peer (PLI or FIR for our video) or our writer for it needs a keyframe.
    KeyframeRequest,
    /// A peer operation failed; the link cannot go on.
    Failed {
        context: String,
        reason: String,
    },
}

/// What the user asks of the call.
#[derive(Debug, Clone)]
pub enum Command {
    Join(RoomId),
    Leave(RoomId),
    /// Ring `to` in a fresh `room`; give up after `patience`.
    Ring {
        room: RoomId,
        to: kith_proto::UserId,
        media: MediaKind,
        patience: Duration,
    },
    CancelRing(RoomId),
    /// Answer the invite ringing for `room`; accepting joins it.
    Answer {
        room: RoomId,
        answer: InviteAnswer,
    },
    SendChat {
        /// A fresh unique id (the driver draws it; the core has no randomness).
        id: String,
        text: String,
        /// Milliseconds since the Unix epoch.
        ts: u64,
    },
    SetMicMuted(bool),
    SetCamera(bool),
    /// Put this codec first for connections made from now on.
    SetPreferredCodec(Option<VideoCodec>),
    /// Renegotiate every connection with fresh ICE credentials (after a
    /// network change).
    RestartIce,
    /// Leave every room, stop ringing, close every connection.
    Hangup,
}

/// A message for the server, with the request id its error would carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub message: ClientMessage,
    pub id: Option<RequestId>,
}

/// What the driver must do.
#[derive(Debug, Clone)]
pub enum Output {
    Signal(Outgoing),
    Peer(LinkId, PeerOp),
    Media(MediaOp),
    Event(CallEvent),
}

/// An operation on one peer connection. They are carried out in order.
#[derive(Debug, Clone)]
pub enum PeerOp {
    /// Build the connection (one audio and one video transceiver,
    /// sendrecv); the offerer also creates the `chat` channel.
    Create {
        remote: Remote,
        offerer: bool,
        ice_servers: Vec<IceServer>,
        video_codecs: Vec<VideoCodec>,
    },
    /// Create an offer (with fresh ICE credentials when `ice_restart`) and
    /// set it locally; report it as `LocalDescription`.
    CreateOffer {
        ice_restart: bool,
    },
    /// (Roll back our own offer first when `rollback`.) Set the remote
    /// offer, create an answer, set it locally; report `LocalDescription`.
    AcceptOffer {
        sdp: Sdp,
        rollback: bool,
    },
    AcceptAnswer {
        sdp: Sdp,
    },
    AddCandidate(IceCandidate),
    /// Connected and negotiated: feed it the shared encoders' output;
    /// report `Sending`.
    StartSending,
    SendChat(String),
    Close,
}

/// An operation on the call's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaOp {
    Keyframe(VideoCodec),
    Bitrate(VideoCodec, u32),
    Resolution(VideoCodec, u32, u32),
    MicMuted(bool),
    Camera(bool),
    /// Measure every link and answer with `Input::Stats`.
    SampleStats,
    /// Read every link's bandwidth estimate and answer with
    /// `Input::Estimates`.
    SampleEstimates,
}
