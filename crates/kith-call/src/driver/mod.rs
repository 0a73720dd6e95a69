//! The driver: a thin async shell around [`CallCore`]. It turns the
//! signaling socket, webrtc-rs callbacks and [`Call`] commands into core
//! inputs, and carries out the core's outputs on webrtc-rs, the media
//! threads and the socket. It decides nothing itself.

mod links;
mod measure;
mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_call_core::{
    CallCore, CallError, CallEvent, CallSnapshot, CallSummary, Command, CoreConfig, VideoPlan,
};
use kith_media::codec::{AudioCodec, VideoCodec};
use kith_media::frame::Channels;
use kith_media::processing::{AudioProcessor, ProcessingSettings};
use kith_proto::{InviteAnswer, MediaKind, RoomId, SessionId, UserId};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info_span};

use crate::codecs::{AUDIO_CODECS, VIDEO_CODECS, ordered};
use crate::media::mixer::{Mixer, MixerOutputs};
use crate::media::send::{AudioSend, SendCounters, VideoSend, VideoSendSettings};
use crate::media::sinks::{AudioLevel, LatestFrame, ParticipantMedia};
use crate::media::sources::{AudioSourceSpec, VideoSourceSpec};
use crate::signaling::{self, SignalingConfig};

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
    /// Answer "busy" on our own to invites that come while in a call.
    pub auto_busy: bool,
}

/// Someone in the call, with their media for a UI to draw.
#[derive(Debug, Clone)]
pub struct Participant {
    pub session: SessionId,
    pub user: UserId,
    pub media: ParticipantMedia,
}

enum Request {
    Core(Command, oneshot::Sender<Result<(), CallError>>),
    SwitchCamera(VideoSourceSpec, oneshot::Sender<Result<(), CallError>>),
    SwitchMicrophone(AudioSourceSpec, oneshot::Sender<Result<(), CallError>>),
    SwitchSpeaker(
        kith_media::audio_io::DeviceChoice,
        oneshot::Sender<Result<(), CallError>>,
    ),
    Processing(ProcessingSettings),
    Snapshot(oneshot::Sender<CallSnapshot>),
    Participants(oneshot::Sender<Vec<Participant>>),
    Finish(oneshot::Sender<CallSummary>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

/// A running call engine. Cheap to clone; every clone drives the same engine.
#[derive(Debug, Clone)]
pub struct Call {
    requests: mpsc::UnboundedSender<Request>,
    user: UserId,
    preview: Option<LatestFrame>,
    microphone: Option<AudioLevel>,
}

/// The call's events, in order, until the engine stops.
pub type CallEvents = mpsc::UnboundedReceiver<CallEvent>;

impl Call {
    /// Opens the media sources (a missing camera or file is an error here)
    /// and connects to the server. Must run inside a tokio runtime.
    pub fn start(config: CallConfig) -> Result<(Call, CallEvents), CallError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let me = config.signaling.user.clone();
        let span = info_span!("call", user = me.as_str());
        let _entered = span.enter();
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
        let (signaling, signaling_task) = signaling::spawn(config.signaling.clone(), signaling_tx);
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let video_codecs = ordered(VIDEO_CODECS, config.video_codec);
        // Our first codec is what a call with another Kith negotiates: get
        // its encoder's slow start-up (the AV1 trial) done while we connect.
        if let (Some(video), Some(first)) = (&video, video_codecs.first()) {
            video.prepare_codec(*first);
        }
        let mut core_config = CoreConfig::new(me.clone());
        core_config.video_codecs = video_codecs;
        core_config.auto_busy = config.auto_busy;
        core_config.video = video.as_ref().map(|_| VideoPlan {
            width: config.video.width,
            height: config.video.height,
            start_bitrate_bps: config.video.start_bitrate_bps,
            max_bitrate_bps: config.max_bitrate_bps,
        });
        let preview = video.as_ref().map(VideoSend::preview);
        let microphone = audio.as_ref().map(AudioSend::level);
        let driver = run::Driver::new(run::Parts {
            core: CallCore::new(core_config, Instant::now()),
            audio_codecs: ordered(AUDIO_CODECS, config.audio_codec),
            config,
            signaling,
            signaling_task,
            video,
            audio,
            mixer,
            send_counters,
            events: events_tx,
            peer_events: peer_tx,
        });
        drop(_entered);
        tokio::spawn(
            driver
                .run(signaling_rx, peer_rx, requests_rx)
                .instrument(span),
        );
        Ok((
            Call {
                requests,
                user: me,
                preview,
                microphone,
            },
            events_rx,
        ))
    }

    fn send(&self, request: Request) -> Result<(), CallError> {
        self.requests.send(request).map_err(|_| CallError::Stopped)
    }

    async fn command(&self, command: Command) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Core(command, tx))?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    async fn reply<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CallError>>) -> Request,
    ) -> Result<T, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    pub async fn join(&self, room: RoomId) -> Result<(), CallError> {
        self.command(Command::Join(room)).await
    }

    pub async fn leave(&self, room: RoomId) -> Result<(), CallError> {
        self.command(Command::Leave(room)).await
    }

    /// Rings `to` in a fresh room and returns it. Events say how it ends
    /// (`RingEnded`); on accept the call joins the room by itself.
    pub async fn ring(
        &self,
        to: UserId,
        media: MediaKind,
        patience: Duration,
    ) -> Result<RoomId, CallError> {
        let room = RoomId::new(format!(
            "call-{}-{}",
            self.user.as_str(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .map_err(|err| CallError::Config(err.to_string()))?;
        self.ring_into(room.clone(), to, media, patience).await?;
        Ok(room)
    }

    /// Rings `to` into `room` (a group call: join it, then ring each
    /// person); on accept they join it.
    pub async fn ring_into(
        &self,
        room: RoomId,
        to: UserId,
        media: MediaKind,
        patience: Duration,
    ) -> Result<(), CallError> {
        self.command(Command::Ring {
            room,
            to,
            media,
            patience,
        })
        .await
    }

    pub async fn cancel_ring(&self, room: RoomId) -> Result<(), CallError> {
        self.command(Command::CancelRing(room)).await
    }

    /// Answers the invite ringing for `room`; accepting joins it.
    pub async fn answer(&self, room: RoomId, answer: InviteAnswer) -> Result<(), CallError> {
        self.command(Command::Answer { room, answer }).await
    }

    /// Sends a chat message to everyone in the call; returns its id (its
    /// `ChatAcked` event carries the same).
    pub async fn send_chat(&self, text: String) -> Result<String, CallError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = kith_media::frame::now_us() / 1000;
        self.command(Command::SendChat {
            id: id.clone(),
            text,
            ts,
        })
        .await?;
        Ok(id)
    }

    pub async fn set_mic_muted(&self, muted: bool) -> Result<(), CallError> {
        self.command(Command::SetMicMuted(muted)).await
    }

    pub async fn set_camera_enabled(&self, on: bool) -> Result<(), CallError> {
        self.command(Command::SetCamera(on)).await
    }

    /// Put this codec first for connections made from now on.
    pub async fn set_preferred_codec(&self, codec: Option<VideoCodec>) -> Result<(), CallError> {
        self.command(Command::SetPreferredCodec(codec)).await
    }

    /// Renegotiate every connection with fresh ICE credentials.
    pub async fn restart_ice(&self) -> Result<(), CallError> {
        self.command(Command::RestartIce).await
    }

    /// Another camera (or video source) without dropping the call; the old
    /// one keeps running if the new one cannot be opened.
    pub async fn switch_camera(&self, source: VideoSourceSpec) -> Result<(), CallError> {
        self.reply(|tx| Request::SwitchCamera(source, tx)).await
    }

    pub async fn switch_microphone(&self, source: AudioSourceSpec) -> Result<(), CallError> {
        self.reply(|tx| Request::SwitchMicrophone(source, tx)).await
    }

    pub async fn switch_speaker(
        &self,
        device: kith_media::audio_io::DeviceChoice,
    ) -> Result<(), CallError> {
        self.reply(|tx| Request::SwitchSpeaker(device, tx)).await
    }

    /// Echo cancellation, noise suppression and gain, on or off.
    pub fn set_processing(&self, settings: ProcessingSettings) -> Result<(), CallError> {
        self.send(Request::Processing(settings))
    }

    /// Where the call stands, for a UI that (re)loads.
    pub async fn snapshot(&self) -> Result<CallSnapshot, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Snapshot(tx))?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// Everyone connected, with their latest decoded frame and audio level.
    pub async fn participants(&self) -> Result<Vec<Participant>, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Participants(tx))?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// Our own camera, as sent (before encoding): the self view.
    pub fn preview(&self) -> Option<LatestFrame> {
        self.preview.clone()
    }

    /// How loud our own audio source is (after echo cancellation, before
    /// muting), for a level meter; `None` without one.
    pub fn microphone_level(&self) -> Option<AudioLevel> {
        self.microphone.clone()
    }

    /// Leaves every room, stops ringing, closes every connection, makes sure
    /// the server has heard it, stops the media and returns what happened.
    pub async fn finish(&self) -> Result<CallSummary, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Finish(tx))?;
        rx.await.map_err(|_| CallError::Stopped)
    }
}
