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
use crate::media::receive::{VideoSinkSettings, receive_audio, receive_video};
use crate::media::send::{
    AudioSend, SendCounters, UNIT_BACKLOG, UnitSender, VideoSend, VideoSendSettings,
};
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

    // ------------------------------------------------------------ signaling

    async fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::Connected {
                session,
                ice_servers,
                online,
                ..
            } => {
                self.session = Some(session.clone());
                self.ice_servers = ice_servers;
                // Every remote session we knew is gone from the server's view
                // of us; connections live on until they are rebound.
                for link in self.links.values_mut() {
                    link.detached_since.get_or_insert_with(Instant::now);
                }
                self.emit(CallEvent::SignalingConnected {
                    session: session.as_str().to_owned(),
                    online,
                });
                for room in &self.rooms {
                    self.signaling
                        .send(ClientMessage::Join { room: room.clone() });
                }
            }
            SignalingEvent::Disconnected { reason, .. } => {
                self.session = None;
                for link in self.links.values_mut() {
                    link.detached_since.get_or_insert_with(Instant::now);
                }
                self.emit(CallEvent::SignalingLost { reason });
            }
            SignalingEvent::Refused(error) => self.error(error),
            SignalingEvent::Message(message) => self.on_server_message(message).await,
        }
    }

    async fn on_server_message(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Welcome { .. } => {}
            ServerMessage::Presence { user, name, online } => self.emit(CallEvent::Presence {
                user: user.as_str().to_owned(),
                name: name.as_str().to_owned(),
                online,
            }),
            ServerMessage::Joined { room, peers, .. } => {
                self.emit(CallEvent::Joined {
                    room: room.as_str().to_owned(),
                    peers: peers.clone(),
                });
                for info in peers {
                    let remote = Remote {
                        room: room.clone(),
                        session: info.session,
                        user: info.user,
                    };
                    self.offer_to(remote).await;
                }
            }
            ServerMessage::PeerJoined { room, peer } => {
                // The newcomer sends the first offer (mesh rule); wait for it.
                self.emit(CallEvent::PeerJoined {
                    room: room.as_str().to_owned(),
                    peer,
                });
            }
            ServerMessage::PeerLeft { room, session } => {
                let found = self
                    .links
                    .iter_mut()
                    .find(|(_, l)| l.remote.room == room && l.remote.session == session);
                if let Some((id, link)) = found {
                    let id = *id;
                    if link.state == RTCPeerConnectionState::Connected {
                        // It may be reconnecting; keep the media until it comes
                        // back or the connection itself dies.
                        link.detached_since.get_or_insert_with(Instant::now);
                    } else {
                        self.close_link(id, "left the room").await;
                    }
                }
            }
            ServerMessage::Offer {
                room,
                from,
                from_user,
                sdp,
            } => self.on_remote_offer(room, from, from_user, sdp).await,
            ServerMessage::Answer {
                room, from, sdp, ..
            } => self.on_remote_answer(room, from, sdp).await,
            ServerMessage::Candidate {
                room,
                from,
                candidate,
                ..
            } => {
                let Some(candidate) = candidate else { return };
                let init = candidate_from_wire(&candidate);
                let Some(id) = self.link_by_session(&room, &from) else {
                    self.orphan_candidates.entry(from).or_default().push(init);
                    return;
                };
                self.add_candidate(id, init).await;
            }
            ServerMessage::Invite {
                room,
                from,
                from_name,
                media,
            } => self.emit(CallEvent::Invite {
                room: room.as_str().to_owned(),
                from: from.as_str().to_owned(),
                from_name: from_name.as_str().to_owned(),
                media,
            }),
            ServerMessage::InviteReply { room, from, answer } => {
                self.emit(CallEvent::InviteReply {
                    room: room.as_str().to_owned(),
                    from: from.as_str().to_owned(),
                    answer,
                })
            }
            ServerMessage::InviteCancel { room, from } => self.emit(CallEvent::InviteCanceled {
                room: room.as_str().to_owned(),
                from: from.as_str().to_owned(),
            }),
            ServerMessage::Error { code, message, .. } => self.error(CallError::Server {
                code: code.as_str().to_owned(),
                message,
            }),
        }
    }

    fn link_by_session(&self, room: &RoomId, session: &SessionId) -> Option<PeerId> {
        self.links
            .iter()
            .find(|(_, l)| &l.remote.room == room && &l.remote.session == session)
            .map(|(id, _)| *id)
    }

    /// Mesh rule, as the joiner: offer to a peer listed in `joined`, reusing
    /// a connection that survived a reconnect when there is one.
    async fn offer_to(&mut self, remote: Remote) {
        let existing = self
            .link_by_session(&remote.room, &remote.session)
            .or_else(|| {
                self.links
                    .iter()
                    .find(|(_, l)| {
                        l.detached_since.is_some()
                            && l.remote.room == remote.room
                            && l.remote.user == remote.user
                    })
                    .map(|(id, _)| *id)
            });
        if let Some(id) = existing {
            self.rebind(id, remote.session.clone());
            self.send_offer(id).await;
            return;
        }
        let Some(id) = self.new_link(remote, true).await else {
            return;
        };
        self.send_offer(id).await;
    }

    fn rebind(&mut self, id: PeerId, session: SessionId) {
        let my_session = self.session.clone();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.detached_since = None;
        if link.remote.session != session {
            let old = std::mem::replace(&mut link.remote.session, session.clone());
            if let Some(mine) = &my_session {
                link.polite = is_polite(mine, &session);
            }
            if let Some(record) = self.records.get_mut(&id) {
                record.session = session.as_str().to_owned();
            }
            info!(
                old = old.as_str(),
                new = session.as_str(),
                "peer connection rebound to a new session"
            );
            let _ = self.events.send(CallEvent::PeerRebound {
                old_session: old.as_str().to_owned(),
                session: session.as_str().to_owned(),
                user: link.remote.user.as_str().to_owned(),
            });
        } else if let Some(mine) = &my_session {
            link.polite = is_polite(mine, &session);
        }
    }

    async fn new_link(&mut self, remote: Remote, offerer: bool) -> Option<PeerId> {
        let mine = self.session.clone()?;
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let span = info_span!(
            "peer",
            id = id.0,
            user = remote.user.as_str(),
            session = remote.session.as_str()
        );
        let settings = ConnectionSettings {
            ice_servers: self.ice_servers.clone(),
            ice_loopback: self.config.ice_loopback,
            relay_only: self.config.relay_only,
            video_codecs: self.settings_video.clone(),
            audio_codecs: self.settings_audio.clone(),
            start_bitrate_bps: self.config.video.start_bitrate_bps,
            max_bitrate_bps: self.config.max_bitrate_bps,
        };
        let (pc, tracks) = match peer::connect(id, &settings, self.peer_events.clone())
            .instrument(span.clone())
            .await
        {
            Ok(built) => built,
            Err(err) => {
                self.error(err);
                return None;
            }
        };
        let counters = peer::new_counters();
        let mut link = Link {
            polite: is_polite(&mine, &remote.session),
            remote,
            pc,
            tracks,
            have_local_offer: false,
            remote_description_set: false,
            pending_candidates: Vec::new(),
            remote_ufrag: None,
            detached_since: None,
            chat: None,
            chat_open: false,
            sending_video: None,
            sending_audio: None,
            counters: Arc::clone(&counters),
            tasks: Vec::new(),
            state: RTCPeerConnectionState::New,
            created_at: Instant::now(),
            span,
            last_bytes_in: 0,
            last_bytes_out: 0,
            last_frames: 0,
        };
        if let Some(orphans) = self.orphan_candidates.remove(&link.remote.session) {
            link.pending_candidates.extend(orphans);
        }
        for track in [&link.tracks.audio, &link.tracks.video] {
            link.tasks.push(peer::watch_local_rtcp(
                id,
                Arc::clone(track),
                self.peer_events.clone(),
            ));
        }
        if offerer {
            match peer::create_chat_channel(&link.pc).await {
                Ok(channel) => {
                    link.tasks.push(peer::watch_chat_channel(
                        id,
                        Arc::clone(&channel),
                        self.peer_events.clone(),
                    ));
                    link.chat = Some(channel);
                }
                Err(err) => self.error(err),
            }
        }
        self.records.insert(
            id,
            PeerRecord {
                session: link.remote.session.as_str().to_owned(),
                user: link.remote.user.as_str().to_owned(),
                created_at: Some(link.created_at),
                counters,
                ..PeerRecord::default()
            },
        );
        info!(parent: &link.span, offerer, "peer connection created");
        self.links.insert(id, link);
        Some(id)
    }

    async fn send_offer(&mut self, id: PeerId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let pc = Arc::clone(&link.pc);
        let offer = match pc.create_offer(None).await {
            Ok(offer) => offer,
            Err(err) => return self.error(CallError::webrtc("create an offer")(err)),
        };
        if let Err(err) = pc.set_local_description(offer.clone()).await {
            return self.error(CallError::webrtc("set the local offer")(err));
        }
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.have_local_offer = true;
        match Sdp::new(offer.sdp) {
            Ok(sdp) => self.signaling.send(ClientMessage::Offer {
                room: link.remote.room.clone(),
                to: link.remote.session.clone(),
                sdp,
            }),
            Err(err) => self.error(CallError::Signaling(format!(
                "our offer is unusable: {err}"
            ))),
        }
    }

    async fn on_remote_offer(
        &mut self,
        room: RoomId,
        from: SessionId,
        from_user: UserId,
        sdp: Sdp,
    ) {
        let ufrag = ice_ufrag(sdp.as_str()).map(str::to_owned);
        let id = match self.link_by_session(&room, &from) {
            Some(id) => Some(id),
            None => {
                // A connection that survived its peer's reconnect: same ICE
                // credentials, new session.
                let survivor = self
                    .links
                    .iter()
                    .find(|(_, l)| {
                        l.detached_since.is_some()
                            && l.remote.room == room
                            && l.remote_ufrag.is_some()
                            && l.remote_ufrag == ufrag
                    })
                    .map(|(id, _)| *id);
                if let Some(id) = survivor {
                    self.rebind(id, from.clone());
                }
                survivor
            }
        };
        let id = match id {
            Some(id) => id,
            None => {
                let remote = Remote {
                    room,
                    session: from,
                    user: from_user,
                };
                let Some(id) = self.new_link(remote, false).await else {
                    return;
                };
                id
            }
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let pc = Arc::clone(&link.pc);
        if link.have_local_offer {
            if !link.polite {
                debug!(parent: &link.span, "glare: we are impolite, ignoring their offer");
                return;
            }
            debug!(parent: &link.span, "glare: we are polite, rolling back our offer");
            let rollback = match RTCSessionDescription::rollback(None) {
                Ok(rollback) => rollback,
                Err(err) => return self.error(CallError::webrtc("roll back")(err)),
            };
            if let Err(err) = pc.set_local_description(rollback).await {
                return self.error(CallError::webrtc("roll back our offer")(err));
            }
            if let Some(link) = self.links.get_mut(&id) {
                link.have_local_offer = false;
            }
        }
        let offer = match RTCSessionDescription::offer(sdp.into()) {
            Ok(offer) => offer,
            Err(err) => return self.error(CallError::webrtc("read the remote offer")(err)),
        };
        if let Err(err) = pc.set_remote_description(offer).await {
            return self.error(CallError::webrtc("apply the remote offer")(err));
        }
        self.remote_description_applied(id, ufrag).await;
        let answer = match pc.create_answer(None).await {
            Ok(answer) => answer,
            Err(err) => return self.error(CallError::webrtc("create an answer")(err)),
        };
        if let Err(err) = pc.set_local_description(answer.clone()).await {
            return self.error(CallError::webrtc("set the local answer")(err));
        }
        let Some(link) = self.links.get(&id) else {
            return;
        };
        match Sdp::new(answer.sdp) {
            Ok(sdp) => self.signaling.send(ClientMessage::Answer {
                room: link.remote.room.clone(),
                to: link.remote.session.clone(),
                sdp,
            }),
            Err(err) => self.error(CallError::Signaling(format!(
                "our answer is unusable: {err}"
            ))),
        }
        self.start_sending(id).await;
    }

    async fn on_remote_answer(&mut self, room: RoomId, from: SessionId, sdp: Sdp) {
        let Some(id) = self.link_by_session(&room, &from) else {
            debug!(
                from = from.as_str(),
                "answer from a session we did not offer to"
            );
            return;
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.have_local_offer {
            debug!(parent: &link.span, "answer without a pending offer, ignored");
            return;
        }
        let pc = Arc::clone(&link.pc);
        let ufrag = ice_ufrag(sdp.as_str()).map(str::to_owned);
        let answer = match RTCSessionDescription::answer(sdp.into()) {
            Ok(answer) => answer,
            Err(err) => return self.error(CallError::webrtc("read the remote answer")(err)),
        };
        if let Err(err) = pc.set_remote_description(answer).await {
            return self.error(CallError::webrtc("apply the remote answer")(err));
        }
        if let Some(link) = self.links.get_mut(&id) {
            link.have_local_offer = false;
        }
        self.remote_description_applied(id, ufrag).await;
        self.start_sending(id).await;
    }

    async fn remote_description_applied(&mut self, id: PeerId, ufrag: Option<String>) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.remote_description_set = true;
        if ufrag.is_some() {
            link.remote_ufrag = ufrag;
        }
        let pending = std::mem::take(&mut link.pending_candidates);
        let pc = Arc::clone(&link.pc);
        for candidate in pending {
            if let Err(err) = pc.add_ice_candidate(candidate).await {
                debug!(%err, "a queued remote candidate was refused");
            }
        }
    }

    async fn add_candidate(&mut self, id: PeerId, candidate: RTCIceCandidateInit) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.remote_description_set {
            link.pending_candidates.push(candidate);
            return;
        }
        if let Err(err) = link.pc.add_ice_candidate(candidate).await {
            debug!(parent: &link.span, %err, "a remote candidate was refused");
        }
    }

    /// Once a description is agreed: feed the negotiated codecs' encoded
    /// units to this connection (one encoder per codec for the whole call).
    async fn start_sending(&mut self, id: PeerId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        // Packets written before DTLS-SRTP is up are dropped, and a lost
        // first keyframe would leave the peer waiting for a PLI.
        if link.state != RTCPeerConnectionState::Connected {
            return;
        }
        let pc = Arc::clone(&link.pc);
        let span = link.span.clone();
        let video_negotiated = if link.sending_video.is_none() && self.video.is_some() {
            peer::negotiated_send_codec(&pc, RtpCodecKind::Video).await
        } else {
            None
        };
        let audio_negotiated = if link.sending_audio.is_none() && self.audio.is_some() {
            peer::negotiated_send_codec(&pc, RtpCodecKind::Audio).await
        } else {
            None
        };
        if let (Some((mime, payload_type)), Some(video)) = (video_negotiated, &self.video)
            && let Some(codec) = peer::video_codec_of(&mime)
        {
            let units = self
                .video_units
                .entry(codec)
                .or_insert_with(|| {
                    let (tx, _) = broadcast::channel(UNIT_BACKLOG);
                    video.add_codec(codec, tx.clone());
                    tx
                })
                .subscribe();
            let keyframe = video.keyframe_requester(codec);
            if let Some(link) = self.links.get_mut(&id) {
                let writer = peer::write_units(
                    Arc::clone(&link.tracks.video),
                    units,
                    link.tracks.video_ssrc,
                    payload_type,
                    true,
                    Some(keyframe),
                    span.clone(),
                );
                link.tasks.push(writer);
                link.sending_video = Some(codec);
                info!(parent: &span, codec = codec.sdp_name(), payload_type, "sending video");
            }
        }
        if let (Some((mime, payload_type)), Some(audio)) = (audio_negotiated, &self.audio)
            && let Some(codec) = peer::audio_codec_of(&mime)
        {
            let units = self
                .audio_units
                .entry(codec)
                .or_insert_with(|| {
                    let (tx, _) = broadcast::channel(UNIT_BACKLOG);
                    audio.add_codec(codec, tx.clone());
                    tx
                })
                .subscribe();
            if let Some(link) = self.links.get_mut(&id) {
                let writer = peer::write_units(
                    Arc::clone(&link.tracks.audio),
                    units,
                    link.tracks.audio_ssrc,
                    payload_type,
                    false,
                    None,
                    span.clone(),
                );
                link.tasks.push(writer);
                link.sending_audio = Some(codec);
                info!(parent: &span, codec = audio_report_name(codec), payload_type, "sending audio");
            }
        }
    }

    // ------------------------------------------------------------ peers

    async fn on_peer(&mut self, id: PeerId, event: PeerEvent) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        match event {
            PeerEvent::LocalCandidate(candidate) => {
                if link.detached_since.is_none() {
                    self.signaling.send(ClientMessage::Candidate {
                        room: link.remote.room.clone(),
                        to: link.remote.session.clone(),
                        candidate: Some(candidate_to_wire(candidate)),
                    });
                }
            }
            PeerEvent::GatheringComplete => {
                if link.detached_since.is_none() {
                    self.signaling.send(ClientMessage::Candidate {
                        room: link.remote.room.clone(),
                        to: link.remote.session.clone(),
                        candidate: None,
                    });
                }
            }
            PeerEvent::State(state) => {
                info!(parent: &link.span, %state, "connection state");
                link.state = state;
                match state {
                    RTCPeerConnectionState::Connected => {
                        let pc = Arc::clone(&link.pc);
                        let connect_ms = link.created_at.elapsed().as_millis() as u64;
                        let (session, user) = (
                            link.remote.session.as_str().to_owned(),
                            link.remote.user.as_str().to_owned(),
                        );
                        let transport = peer::transport_stats(&pc).await;
                        if let Some(record) = self.records.get_mut(&id) {
                            record.connect_ms.get_or_insert(connect_ms);
                            record.connected_at = Some(Instant::now());
                            record.candidate_type = transport.candidate_type.clone();
                        }
                        self.emit(CallEvent::PeerConnected {
                            session,
                            user,
                            candidate_type: transport.candidate_type,
                            connect_ms,
                        });
                        self.start_sending(id).await;
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.close_link(id, &format!("connection {state}")).await;
                    }
                    _ => {}
                }
            }
            PeerEvent::IceState(state) => {
                debug!(parent: &link.span, %state, "ICE state");
                if link.detached_since.is_some()
                    && matches!(
                        state,
                        RTCIceConnectionState::Disconnected | RTCIceConnectionState::Failed
                    )
                {
                    self.close_link(id, "gone (no signaling, no media)").await;
                }
            }
            PeerEvent::DataChannel(channel) => {
                if channel.label().await.ok().as_deref() != Some("chat") {
                    return;
                }
                let open = matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open));
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.tasks.push(peer::watch_chat_channel(
                    id,
                    Arc::clone(&channel),
                    self.peer_events.clone(),
                ));
                link.chat = Some(channel);
                if open {
                    self.chat_opened(id).await;
                }
            }
            PeerEvent::ChatOpen => self.chat_opened(id).await,
            PeerEvent::ChatClosed => link.chat_open = false,
            PeerEvent::ChatText(text) => self.chat_text(id, text).await,
            PeerEvent::Track(track) => self.track_started(id, track).await,
            PeerEvent::KeyframeRequest(ssrc) => {
                if ssrc == link.tracks.video_ssrc
                    && let (Some(codec), Some(video)) = (link.sending_video, &self.video)
                {
                    debug!(parent: &link.span, "the peer asked for a keyframe");
                    video.request_keyframe(codec);
                }
            }
        }
    }

    async fn chat_opened(&mut self, id: PeerId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.chat_open {
            return;
        }
        link.chat_open = true;
        let Some(channel) = link.chat.clone() else {
            return;
        };
        for wire in self.chat.unacked_for(&link.remote.user) {
            if let Err(err) = channel.send_text(&wire).await {
                debug!(%err, "re-send failed");
                break;
            }
        }
    }

    async fn chat_text(&mut self, id: PeerId, text: String) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let frame = match ChatFrame::parse(&text) {
            Ok(frame) => frame,
            Err(err) => {
                debug!(parent: &link.span, %err, "not a chat frame, ignored");
                return;
            }
        };
        let channel = link.chat.clone();
        let user = link.remote.user.clone();
        match self.chat.receive(&user, frame) {
            Incoming::New { message, ack } => {
                if let Some(channel) = &channel {
                    let _ = channel.send_text(&ack).await;
                }
                self.emit(CallEvent::ChatReceived { message });
            }
            Incoming::Duplicate { ack } => {
                if let Some(channel) = &channel {
                    let _ = channel.send_text(&ack).await;
                }
            }
            Incoming::Acked { id, complete: true } => self.emit(CallEvent::ChatAcked { id }),
            Incoming::Acked { .. } | Incoming::Ignored => {}
        }
    }

    async fn track_started(
        &mut self,
        id: PeerId,
        track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    ) {
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = track.codec(ssrc).await else {
            return;
        };
        let kind = track.kind().await;
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let counters = Arc::clone(&link.counters);
        let span = link.span.clone();
        let (session, user) = (
            link.remote.session.as_str().to_owned(),
            link.remote.user.as_str().to_owned(),
        );
        let (kind_name, codec_name, task) = match kind {
            RtpCodecKind::Video => {
                let Some(video_codec) = peer::video_codec_of(&codec.mime_type) else {
                    return self.error(CallError::Media(format!(
                        "{user} sends video as {}, which Kith cannot decode",
                        codec.mime_type
                    )));
                };
                let record_y4m = self.config.record_y4m.as_ref().map(|path| {
                    self.recordings += 1;
                    if self.recordings == 1 {
                        path.clone()
                    } else {
                        suffixed(path, &user)
                    }
                });
                let sink = VideoSinkSettings {
                    record_y4m,
                    fps: self.config.video.fps,
                };
                let rtcp = keyframe_forwarder(id, self.peer_events.clone());
                let task = tokio::spawn(
                    receive_video(track, video_codec, ssrc, counters, sink, rtcp).instrument(span),
                );
                ("video", video_codec.sdp_name().to_owned(), task)
            }
            RtpCodecKind::Audio => {
                let Some(audio_codec) = peer::audio_codec_of(&codec.mime_type) else {
                    return self.error(CallError::Media(format!(
                        "{user} sends audio as {}, which Kith cannot decode",
                        codec.mime_type
                    )));
                };
                let input = self.mixer.add_input();
                let rtcp = keyframe_forwarder(id, self.peer_events.clone());
                let task = tokio::spawn(
                    receive_audio(track, audio_codec, counters, input, rtcp).instrument(span),
                );
                ("audio", audio_report_name(audio_codec).to_owned(), task)
            }
            _ => return,
        };
        if let Some(link) = self.links.get_mut(&id) {
            link.tasks.push(task);
        }
        if let Some(record) = self.records.get_mut(&id) {
            match kind_name {
                "video" => record.video_codec = Some(codec_name.clone()),
                _ => record.audio_codec = Some(codec_name.clone()),
            }
        }
        self.emit(CallEvent::TrackStarted {
            session,
            user,
            kind: kind_name.to_owned(),
            codec: codec_name,
        });
    }

    async fn close_link(&mut self, id: PeerId, reason: &str) {
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        info!(parent: &link.span, reason, "peer connection closed");
        for task in &link.tasks {
            task.abort();
        }
        peer::close(&link.pc).await;
        if let Some(record) = self.records.get_mut(&id)
            && let Some(connected_at) = record.connected_at.take()
        {
            record.connected_total += connected_at.elapsed();
        }
        if let Some(record) = self.records.get_mut(&id) {
            record.latencies.extend(link.counters.take_latencies());
        }
        if !self
            .links
            .values()
            .any(|l| l.remote.user == link.remote.user)
        {
            self.chat.forget_user(&link.remote.user);
        }
        self.emit(CallEvent::PeerLeft {
            session: link.remote.session.as_str().to_owned(),
            user: link.remote.user.as_str().to_owned(),
            reason: reason.to_owned(),
        });
    }

    // ------------------------------------------------------------ stats

    async fn on_tick(&mut self) {
        let elapsed = self.last_tick.elapsed().as_secs_f64().max(0.001);
        self.last_tick = Instant::now();
        let frames_sent = self
            .send_counters
            .video_frames_sent
            .load(std::sync::atomic::Ordering::Relaxed);
        let fps_sent = (frames_sent - self.last_frames_sent) as f64 / elapsed;
        self.last_frames_sent = frames_sent;

        let mut snapshots = Vec::new();
        let mut estimates: HashMap<VideoCodec, f64> = HashMap::new();
        let ids: Vec<PeerId> = self.links.keys().copied().collect();
        let mut stale = Vec::new();
        for id in ids {
            let Some(link) = self.links.get(&id) else {
                continue;
            };
            if link
                .detached_since
                .is_some_and(|since| since.elapsed() > DETACHED_GRACE)
            {
                stale.push(id);
                continue;
            }
            let pc = Arc::clone(&link.pc);
            let transport: TransportStats = peer::transport_stats(&pc).await;
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            let frames = link
                .counters
                .frames_decoded
                .load(std::sync::atomic::Ordering::Relaxed);
            let latencies = link.counters.take_latencies();
            let estimate = transport
                .video_target_bps
                .or(transport.available_outgoing_bps);
            if let (Some(codec), Some(estimate)) = (link.sending_video, estimate) {
                let entry = estimates.entry(codec).or_insert(f64::MAX);
                *entry = entry.min(estimate);
            }
            let snapshot = PeerStats {
                session: link.remote.session.as_str().to_owned(),
                user: link.remote.user.as_str().to_owned(),
                connected: link.state == RTCPeerConnectionState::Connected,
                video_codec: self.records.get(&id).and_then(|r| r.video_codec.clone()),
                audio_codec: self.records.get(&id).and_then(|r| r.audio_codec.clone()),
                candidate_type: transport.candidate_type.clone(),
                rtt_ms: transport.rtt_ms,
                bitrate_in_kbps: transport.bytes_received.saturating_sub(link.last_bytes_in) as f64
                    * 8.0
                    / 1000.0
                    / elapsed,
                bitrate_out_kbps: transport.bytes_sent.saturating_sub(link.last_bytes_out) as f64
                    * 8.0
                    / 1000.0
                    / elapsed,
                packets_lost: transport.packets_lost,
                jitter_ms: transport.jitter_ms,
                fps_sent: if link.sending_video.is_some() {
                    fps_sent
                } else {
                    0.0
                },
                fps_received: frames.saturating_sub(link.last_frames) as f64 / elapsed,
                frames_decoded: frames,
                freezes: link
                    .counters
                    .freezes
                    .load(std::sync::atomic::Ordering::Relaxed),
                estimated_bandwidth_kbps: estimate.map(|bps| bps / 1000.0),
                glass_to_glass_ms: Percentiles::of(&latencies),
                audio_packets_received: link
                    .counters
                    .audio_packets
                    .load(std::sync::atomic::Ordering::Relaxed),
            };
            link.last_bytes_in = transport.bytes_received;
            link.last_bytes_out = transport.bytes_sent;
            link.last_frames = frames;
            if let Some(record) = self.records.get_mut(&id) {
                record.latencies.extend(latencies);
                if record.first_frame_ms.is_none()
                    && let (Some(first), Some(created)) =
                        (link.counters.first_frame(), record.created_at)
                {
                    record.first_frame_ms =
                        Some(first.saturating_duration_since(created).as_millis() as u64);
                }
                if transport.candidate_type.is_some() {
                    record.candidate_type = transport.candidate_type;
                }
            }
            snapshots.push(snapshot);
        }
        for id in stale {
            self.close_link(id, "did not come back").await;
        }
        if let Some(video) = &self.video {
            for (codec, estimate) in estimates {
                let ceiling = f64::from(self.config.max_bitrate_bps);
                let target = ((estimate - AUDIO_RESERVE_BPS) * 0.95)
                    .clamp(f64::from(MIN_VIDEO_BPS), ceiling) as u32;
                let requested = (self.config.video.width, self.config.video.height);
                let (last_bitrate, last_size) = self
                    .video_targets
                    .get(&codec)
                    .copied()
                    .unwrap_or((self.config.video.start_bitrate_bps, requested));
                // Small moves are noise; each change costs the encoder a reconfiguration.
                if target.abs_diff(last_bitrate) * 20 > last_bitrate {
                    video.set_bitrate(codec, target);
                }
                let size = size_for_bitrate(target, requested.0, requested.1);
                if size != last_size {
                    info!(
                        codec = codec.sdp_name(),
                        width = size.0,
                        height = size.1,
                        target,
                        "video size follows the bandwidth estimate"
                    );
                    video.set_resolution(codec, size.0, size.1);
                }
                let bitrate = if target.abs_diff(last_bitrate) * 20 > last_bitrate {
                    target
                } else {
                    last_bitrate
                };
                self.video_targets.insert(codec, (bitrate, size));
            }
        }
        if !snapshots.is_empty() {
            self.emit(CallEvent::Stats { peers: snapshots });
        }
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

    fn summary(&self) -> CallSummary {
        let peers = self
            .records
            .values()
            .map(|record| {
                let frames = record
                    .counters
                    .frames_decoded
                    .load(std::sync::atomic::Ordering::Relaxed);
                let connected = record.connected_total.as_secs_f64();
                PeerSummary {
                    session: record.session.clone(),
                    user: record.user.clone(),
                    video_codec: record.video_codec.clone(),
                    audio_codec: record.audio_codec.clone(),
                    connect_ms: record.connect_ms,
                    first_frame_ms: record.first_frame_ms.or_else(|| {
                        let first = record.counters.first_frame()?;
                        Some(
                            first
                                .saturating_duration_since(record.created_at?)
                                .as_millis() as u64,
                        )
                    }),
                    frames_decoded: frames,
                    fps: if connected > 0.0 {
                        frames as f64 / connected
                    } else {
                        0.0
                    },
                    freezes: record
                        .counters
                        .freezes
                        .load(std::sync::atomic::Ordering::Relaxed),
                    glass_to_glass_ms: Percentiles::of(&record.latencies),
                    audio_packets_received: record
                        .counters
                        .audio_packets
                        .load(std::sync::atomic::Ordering::Relaxed),
                    candidate_type: record.candidate_type.clone(),
                }
            })
            .collect();
        CallSummary {
            peers,
            chat: self.chat.counts(),
        }
    }
}

/// The picture size that suits a bitrate: below what a size needs, the
/// encoder is better off with fewer pixels than with heavy quantization.
pub fn size_for_bitrate(bitrate_bps: u32, width: u32, height: u32) -> (u32, u32) {
    let ladder: [(u32, u32, u32); 4] = [
        (1_000_000, 1280, 720),
        (500_000, 960, 540),
        (250_000, 640, 360),
        (0, 320, 180),
    ];
    for (needs, w, h) in ladder {
        if bitrate_bps >= needs && w <= width && h <= height {
            return (w, h);
        }
    }
    let smallest = ladder
        .iter()
        .rev()
        .find(|(_, w, h)| *w <= width && *h <= height);
    smallest.map_or((width, height), |(_, w, h)| (*w, *h))
}

/// Hands keyframe requests found in RTCP on a remote track to the engine.
fn keyframe_forwarder(id: PeerId, events: PeerEvents) -> crate::media::receive::RtcpSink {
    Arc::new(move |packets: &[Box<dyn rtc::rtcp::Packet>]| {
        for ssrc in peer::keyframe_requests(packets) {
            let _ = events.send((id, PeerEvent::KeyframeRequest(ssrc)));
        }
    })
}

fn suffixed(path: &std::path::Path, user: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("video");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{user}.{ext}"),
        None => format!("{stem}-{user}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_follows_bitrate_but_never_exceeds_the_request() {
        assert_eq!(size_for_bitrate(2_500_000, 1280, 720), (1280, 720));
        assert_eq!(size_for_bitrate(600_000, 1280, 720), (960, 540));
        assert_eq!(size_for_bitrate(300_000, 1280, 720), (640, 360));
        assert_eq!(size_for_bitrate(100_000, 1280, 720), (320, 180));
        assert_eq!(size_for_bitrate(2_500_000, 640, 360), (640, 360));
        // An odd request smaller than the ladder keeps its own size.
        assert_eq!(size_for_bitrate(2_500_000, 176, 144), (176, 144));
    }

    #[test]
    fn recordings_of_more_peers_get_their_user_in_the_name() {
        assert_eq!(
            suffixed(std::path::Path::new("/tmp/bob.y4m"), "carol"),
            PathBuf::from("/tmp/bob-carol.y4m")
        );
    }
}
