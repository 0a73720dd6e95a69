//! The call engine: one task that owns the signaling client, every peer
//! link, the media send side, the mixer and the chat book. Everything that
//! happens (server messages, peer connection events, user commands, the
//! stats tick) arrives as a message and is handled in order, so no state is
//! shared between tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_media::codec::{AudioCodec, VideoCodec};
use kith_media::frame::Channels;
use kith_media::processing::{AudioProcessor, ProcessingSettings};
use kith_proto::{
    ChatFrame, ClientMessage, IceServer, InviteAnswer, MAX_CHAT_TEXT_BYTES, MediaKind, RoomId, Sdp,
    ServerMessage, SessionId, UserId,
};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};
use webrtc::data_channel::{DataChannel, RTCDataChannelState};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCIceConnectionState, RTCPeerConnectionState,
    RTCSessionDescription,
};

use crate::chat::{ChatBook, Incoming};
use crate::codecs::{AUDIO_CODECS, VIDEO_CODECS, audio_report_name, ordered};
use crate::error::CallError;
use crate::events::{CallEvent, CallSummary, PeerSummary};
use crate::media::mixer::{Mixer, MixerOutputs};
use crate::media::receive::{receive_audio, receive_video};
use crate::media::send::{
    AudioSend, SendCounters, UNIT_BACKLOG, UnitSender, VideoSend, VideoSendSettings,
};
use crate::media::sinks::{AudioLevel, ParticipantMedia, VideoSink, Y4mRecorder};
use crate::media::sources::AudioSourceSpec;
use crate::negotiation::{candidate_from_wire, candidate_to_wire, ice_ufrag, is_polite};
use crate::peer::{
    self, ConnectionSettings, LocalTracks, PeerEvent, PeerEvents, PeerId, Remote, TransportStats,
};
use crate::signaling::{self, SignalingConfig, SignalingEvent, SignalingHandle};
use crate::stats::{PeerStats, Percentiles, ReceiveCounters};

/// Everything a call needs to know before it starts.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub signaling: SignalingConfig,
    pub video: VideoSendSettings,
    pub audio: AudioSourceSpec,
    /// Put this codec first (the rest follow in Kith's order).
    pub video_codec: Option<VideoCodec>,
    pub audio_codec: Option<AudioCodec>,
    pub max_bitrate_bps: u32,
    pub ice_loopback: bool,
    pub relay_only: bool,
    pub record_y4m: Option<PathBuf>,
    pub record_wav: Option<PathBuf>,
    /// Play what peers say on the default speakers.
    pub speakers: bool,
}

/// How long a connection whose peer's signaling session vanished keeps
/// running, waiting for that peer to come back (reconnect, server restart).
const DETACHED_GRACE: Duration = Duration::from_secs(20);
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// The lowest bitrate the encoder is asked for.
const MIN_VIDEO_BPS: u32 = 150_000;
/// What audio and RTP overhead take out of the estimate.
const AUDIO_RESERVE_BPS: f64 = 60_000.0;

enum Command {
    Join(RoomId),
    Leave(RoomId),
    Invite {
        room: RoomId,
        to: UserId,
        media: MediaKind,
    },
    ReplyInvite {
        room: RoomId,
        to: UserId,
        answer: InviteAnswer,
    },
    CancelInvite {
        room: RoomId,
        to: UserId,
    },
    Chat(String, oneshot::Sender<Result<(), CallError>>),
    MicMuted(bool),
    Camera(bool),
    Finish(oneshot::Sender<CallSummary>),
}

/// A running call engine. Cheap to clone; every clone drives the same engine.
#[derive(Debug, Clone)]
pub struct Call {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Call {
    /// Opens the media sources and connects to the server. Events arrive on
    /// the returned receiver until the engine stops.
    pub fn start(
        config: CallConfig,
    ) -> Result<(Call, mpsc::UnboundedReceiver<CallEvent>), CallError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let send_counters = Arc::new(SendCounters::default());
        let processor = match config.audio {
            AudioSourceSpec::Mic => Some(
                AudioProcessor::new(
                    Channels::Mono,
                    Channels::Mono,
                    ProcessingSettings::default(),
                )
                .map_err(CallError::media("echo canceller"))?,
            ),
            _ => None,
        };
        let far_end = processor.as_ref().map(AudioProcessor::render_handle);
        let video = VideoSend::start(config.video.clone(), Arc::clone(&send_counters))?;
        let audio = AudioSend::start(&config.audio, processor, Arc::clone(&send_counters))?;
        let mixer = Mixer::start(MixerOutputs {
            speaker: config.speakers,
            record_wav: config.record_wav.clone(),
            far_end,
        })?;
        let (signaling_tx, signaling_rx) = mpsc::unbounded_channel();
        let signaling = signaling::spawn(config.signaling.clone(), signaling_tx);
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let me = config.signaling.user.clone();
        let engine = Engine {
            chat: ChatBook::new(me.clone()),
            me,
            settings_video: ordered(VIDEO_CODECS, config.video_codec),
            settings_audio: ordered(AUDIO_CODECS, config.audio_codec),
            config,
            signaling,
            session: None,
            ice_servers: Vec::new(),
            rooms: BTreeSet::new(),
            links: BTreeMap::new(),
            records: BTreeMap::new(),
            orphan_candidates: HashMap::new(),
            next_id: 0,
            video,
            audio,
            video_units: HashMap::new(),
            audio_units: HashMap::new(),
            mixer,
            send_counters,
            events: events_tx,
            peer_events: peer_tx,
            recordings: 0,
            last_tick: Instant::now(),
            last_frames_sent: 0,
            video_targets: HashMap::new(),
        };
        let span = info_span!("call", user = engine.me.as_str());
        tokio::spawn(
            engine
                .run(signaling_rx, peer_rx, commands_rx)
                .instrument(span),
        );
        Ok((Call { commands }, events_rx))
    }

    fn send(&self, command: Command) -> Result<(), CallError> {
        self.commands.send(command).map_err(|_| CallError::Stopped)
    }

    pub fn join(&self, room: RoomId) -> Result<(), CallError> {
        self.send(Command::Join(room))
    }

    pub fn leave(&self, room: RoomId) -> Result<(), CallError> {
        self.send(Command::Leave(room))
    }

    pub fn invite(&self, room: RoomId, to: UserId, media: MediaKind) -> Result<(), CallError> {
        self.send(Command::Invite { room, to, media })
    }

    pub fn reply_invite(
        &self,
        room: RoomId,
        to: UserId,
        answer: InviteAnswer,
    ) -> Result<(), CallError> {
        self.send(Command::ReplyInvite { room, to, answer })
    }

    pub fn cancel_invite(&self, room: RoomId, to: UserId) -> Result<(), CallError> {
        self.send(Command::CancelInvite { room, to })
    }

    /// Sends a chat message to everyone in the call's rooms.
    pub async fn send_chat(&self, text: String) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Chat(text, tx))?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    pub fn set_mic_muted(&self, muted: bool) -> Result<(), CallError> {
        self.send(Command::MicMuted(muted))
    }

    pub fn set_camera_enabled(&self, on: bool) -> Result<(), CallError> {
        self.send(Command::Camera(on))
    }

    /// Leaves every room, closes every connection, stops the media and
    /// returns what happened in the call.
    pub async fn finish(&self) -> Result<CallSummary, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Finish(tx))?;
        rx.await.map_err(|_| CallError::Stopped)
    }
}

/// One peer connection and its state.
struct Link {
    remote: Remote,
    pc: Arc<dyn PeerConnection>,
    tracks: LocalTracks,
    polite: bool,
    have_local_offer: bool,
    remote_description_set: bool,
    pending_candidates: Vec<RTCIceCandidateInit>,
    remote_ufrag: Option<String>,
    /// Set when the remote's signaling session went away (or ours did).
    detached_since: Option<Instant>,
    chat: Option<Arc<dyn DataChannel>>,
    chat_open: bool,
    sending_video: Option<VideoCodec>,
    sending_audio: Option<AudioCodec>,
    counters: Arc<ReceiveCounters>,
    tasks: Vec<JoinHandle<()>>,
    state: RTCPeerConnectionState,
    created_at: Instant,
    span: tracing::Span,
    last_bytes_in: u64,
    last_bytes_out: u64,
    last_frames: u64,
}

/// What a peer did over the whole call.
#[derive(Debug, Default)]
struct PeerRecord {
    session: String,
    user: String,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    connect_ms: Option<u64>,
    first_frame_ms: Option<u64>,
    created_at: Option<Instant>,
    connected_at: Option<Instant>,
    connected_total: Duration,
    latencies: Vec<u32>,
    candidate_type: Option<String>,
    counters: Arc<ReceiveCounters>,
}

struct Engine {
    config: CallConfig,
    me: UserId,
    settings_video: Vec<VideoCodec>,
    settings_audio: Vec<AudioCodec>,
    signaling: SignalingHandle,
    session: Option<SessionId>,
    ice_servers: Vec<IceServer>,
    rooms: BTreeSet<RoomId>,
    chat: ChatBook,
    links: BTreeMap<PeerId, Link>,
    records: BTreeMap<PeerId, PeerRecord>,
    orphan_candidates: HashMap<SessionId, Vec<RTCIceCandidateInit>>,
    next_id: u64,
    video: Option<VideoSend>,
    audio: Option<AudioSend>,
    video_units: HashMap<VideoCodec, UnitSender>,
    audio_units: HashMap<AudioCodec, UnitSender>,
    mixer: Mixer,
    send_counters: Arc<SendCounters>,
    events: mpsc::UnboundedSender<CallEvent>,
    peer_events: PeerEvents,
    recordings: usize,
    last_tick: Instant,
    last_frames_sent: u64,
    /// Bitrate and size each encoder was last told.
    video_targets: HashMap<VideoCodec, (u32, (u32, u32))>,
}

impl Engine {
    async fn run(
        mut self,
        mut signaling: mpsc::UnboundedReceiver<SignalingEvent>,
        mut peers: mpsc::UnboundedReceiver<(PeerId, PeerEvent)>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut tick = tokio::time::interval(STATS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(event) = signaling.recv() => self.on_signaling(event).await,
                Some((id, event)) = peers.recv() => self.on_peer(id, event).await,
                command = commands.recv() => match command {
                    None => {
                        self.shutdown().await;
                        return;
                    }
                    Some(Command::Finish(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(self.summary());
                        return;
                    }
                    Some(command) => self.on_command(command).await,
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    fn emit(&self, event: CallEvent) {
        let _ = self.events.send(event);
    }

    fn error(&self, error: CallError) {
        warn!(%error, "call error");
        self.emit(CallEvent::Error { error });
    }

    // ------------------------------------------------------------ commands

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Join(room) => {
                self.rooms.insert(room.clone());
                self.signaling.send(ClientMessage::Join { room });
            }
            Command::Leave(room) => {
                self.rooms.remove(&room);
                self.signaling
                    .send(ClientMessage::Leave { room: room.clone() });
                let ids: Vec<PeerId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.remote.room == room)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.close_link(id, "we left").await;
                }
            }
            Command::Invite { room, to, media } => {
                self.signaling
                    .send(ClientMessage::Invite { room, to, media })
            }
            Command::ReplyInvite { room, to, answer } => {
                self.signaling
                    .send(ClientMessage::InviteReply { room, to, answer });
            }
            Command::CancelInvite { room, to } => self
                .signaling
                .send(ClientMessage::InviteCancel { room, to }),
            Command::Chat(text, reply) => {
                let _ = reply.send(self.send_chat(text).await);
            }
            Command::MicMuted(muted) => {
                if let Some(audio) = &self.audio {
                    audio.set_muted(muted);
                }
            }
            Command::Camera(on) => {
                if let Some(video) = &self.video {
                    video.set_enabled(on);
                }
            }
            Command::Finish(_) => {}
        }
    }

    async fn send_chat(&mut self, text: String) -> Result<(), CallError> {
        if text.is_empty() || text.len() > MAX_CHAT_TEXT_BYTES {
            return Err(CallError::Config(format!(
                "a chat message must have 1 to {MAX_CHAT_TEXT_BYTES} bytes (this one has {})",
                text.len()
            )));
        }
        let users: BTreeSet<UserId> = self.links.values().map(|l| l.remote.user.clone()).collect();
        let now_ms = kith_media::frame::now_us() / 1000;
        let (_, wire) = self.chat.compose(text, now_ms, users);
        for link in self.links.values() {
            if let (true, Some(channel)) = (link.chat_open, &link.chat)
                && let Err(err) = channel.send_text(&wire).await
            {
                debug!(%err, "chat send failed; it will be re-sent when the channel is back");
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        for room in std::mem::take(&mut self.rooms) {
            self.signaling.send(ClientMessage::Leave { room });
        }
        let ids: Vec<PeerId> = self.links.keys().copied().collect();
        for id in ids {
            self.close_link(id, "call ended").await;
        }
        // Stop capture and encoding before the summary is read.
        self.video = None;
        self.audio = None;
        self.video_units.clear();
        self.audio_units.clear();
    }
}

mod negotiate;
mod peers;
mod stats;

pub use stats::size_for_bitrate;
