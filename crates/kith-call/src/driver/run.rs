//! The driver's loop: wait for the next input (socket, peer connection,
//! command, the core's timer), hand it to the core, carry out its outputs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_call_core::{CallCore, CallError, CallEvent, CallSummary, Input, MediaOp, Output};
use kith_media::codec::{AudioCodec, VideoCodec};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::links::LinkIo;
use super::measure::PeerRecord;
use super::{CallConfig, Participant, Request};
use crate::connection::{PeerEvent, PeerEvents};
use crate::media::mixer::Mixer;
use crate::media::send::{AudioSend, SendCounters, UnitSender, VideoSend};
use crate::signaling::{SignalingEvent, SignalingHandle};
use crate::turn_tcp::TurnTcpBridges;
use kith_call_core::LinkId;

/// How long finishing waits for the signaling client to send its last words.
const FLUSH_PATIENCE: Duration = Duration::from_secs(2);

pub(super) struct Parts {
    pub core: CallCore,
    pub config: CallConfig,
    pub audio_codecs: Vec<AudioCodec>,
    pub signaling: SignalingHandle,
    pub signaling_task: JoinHandle<()>,
    pub video: Option<VideoSend>,
    pub audio: Option<AudioSend>,
    pub mixer: Mixer,
    pub send_counters: Arc<SendCounters>,
    pub events: mpsc::UnboundedSender<CallEvent>,
    pub peer_events: PeerEvents,
}

pub(super) struct Driver {
    pub core: CallCore,
    pub config: CallConfig,
    pub audio_codecs: Vec<AudioCodec>,
    pub signaling: Option<SignalingHandle>,
    signaling_task: Option<JoinHandle<()>>,
    pub video: Option<VideoSend>,
    pub audio: Option<AudioSend>,
    pub mixer: Mixer,
    pub send_counters: Arc<SendCounters>,
    events: mpsc::UnboundedSender<CallEvent>,
    pub peer_events: PeerEvents,
    pub links: BTreeMap<LinkId, LinkIo>,
    pub records: BTreeMap<LinkId, PeerRecord>,
    /// One broadcast per negotiated codec: the shared encoder's output.
    pub video_units: HashMap<VideoCodec, UnitSender>,
    pub audio_units: HashMap<AudioCodec, UnitSender>,
    pub recordings: usize,
    pub last_sample: Instant,
    pub last_frames_sent: u64,
    /// Where `turn:…?transport=tcp` servers are reached (webrtc-rs's TURN
    /// client speaks UDP).
    pub turn_tcp: TurnTcpBridges,
}

impl Driver {
    pub fn new(parts: Parts) -> Self {
        Self {
            core: parts.core,
            config: parts.config,
            audio_codecs: parts.audio_codecs,
            signaling: Some(parts.signaling),
            signaling_task: Some(parts.signaling_task),
            video: parts.video,
            audio: parts.audio,
            mixer: parts.mixer,
            send_counters: parts.send_counters,
            events: parts.events,
            peer_events: parts.peer_events,
            links: BTreeMap::new(),
            records: BTreeMap::new(),
            video_units: HashMap::new(),
            audio_units: HashMap::new(),
            recordings: 0,
            last_sample: Instant::now(),
            last_frames_sent: 0,
            turn_tcp: TurnTcpBridges::default(),
        }
    }

    pub async fn run(
        mut self,
        mut signaling: mpsc::UnboundedReceiver<SignalingEvent>,
        mut peers: mpsc::UnboundedReceiver<(LinkId, PeerEvent)>,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        loop {
            self.carry_out().await;
            let deadline = tokio::time::Instant::from_std(self.core.poll_timeout());
            tokio::select! {
                Some(event) = signaling.recv() => self.on_signaling(event),
                Some((id, event)) = peers.recv() => self.on_peer_event(id, event).await,
                request = requests.recv() => match request {
                    None => {
                        self.shutdown().await;
                        return;
                    }
                    Some(Request::Finish(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(self.summary());
                        return;
                    }
                    Some(request) => self.on_request(request).await,
                },
                () = tokio::time::sleep_until(deadline) => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    pub fn input(&mut self, input: Input) {
        self.core.handle_input(Instant::now(), input);
    }

    pub fn emit(&self, event: CallEvent) {
        let _ = self.events.send(event);
    }

    fn on_signaling(&mut self, event: SignalingEvent) {
        let input = match event {
            SignalingEvent::Message(message) => Input::from(message),
            SignalingEvent::Disconnected { reason, .. } => Input::SignalingDown { reason },
            SignalingEvent::Refused { message } => Input::SignalingRefused { message },
        };
        self.input(input);
    }

    async fn on_request(&mut self, request: Request) {
        match request {
            Request::Core(command, reply) => {
                let result = self.core.command(Instant::now(), command);
                let _ = reply.send(result);
            }
            Request::SwitchCamera(source, reply) => {
                let result = match &self.video {
                    Some(video) => blocking(|| video.switch_source(source)),
                    None => Err(CallError::Config(
                        "this call sends no video; start it with a video source".into(),
                    )),
                };
                let _ = reply.send(result);
            }
            Request::SwitchMicrophone(source, reply) => {
                let result = match &self.audio {
                    Some(audio) => {
                        let switched = blocking(|| audio.switch_source(source));
                        // A first microphone brings an echo canceller, which
                        // must hear what the speakers play.
                        if let Some(far_end) = audio.take_far_end() {
                            self.mixer.set_far_end(far_end);
                        }
                        switched
                    }
                    None => Err(CallError::Config(
                        "this call sends no audio; start it with an audio source".into(),
                    )),
                };
                let _ = reply.send(result);
            }
            Request::SwitchSpeaker(device, reply) => {
                let _ = reply.send(blocking(|| self.mixer.switch_speaker(device)));
            }
            Request::Processing(settings) => {
                if let Some(audio) = &self.audio {
                    audio.set_processing(settings);
                }
            }
            Request::Snapshot(reply) => {
                let _ = reply.send(self.core.snapshot());
            }
            Request::Participants(reply) => {
                let participants = self
                    .links
                    .iter()
                    .filter_map(|(id, link)| {
                        let remote = self.core.remote(*id)?;
                        Some(Participant {
                            session: remote.session.clone(),
                            user: remote.user.clone(),
                            media: link.media.clone(),
                        })
                    })
                    .collect();
                let _ = reply.send(participants);
            }
            Request::Finish(_) => {}
        }
    }

    /// Carries out everything the core has asked for, in order. Peer
    /// operations report back at once, which may queue more.
    pub async fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Signal(message) => {
                    if let Some(signaling) = &self.signaling {
                        signaling.send(message);
                    }
                }
                Output::Event(event) => {
                    self.note_event(&event);
                    self.emit(event);
                }
                Output::Peer(id, op) => self.peer_op(id, op).await,
                Output::Media(op) => self.media_op(op).await,
            }
        }
    }

    async fn media_op(&mut self, op: MediaOp) {
        match op {
            MediaOp::Keyframe(codec) => {
                if let Some(video) = &self.video {
                    debug!(codec = codec.sdp_name(), "keyframe");
                    video.request_keyframe(codec);
                }
            }
            MediaOp::Bitrate(codec, bps) => {
                if let Some(video) = &self.video {
                    video.set_bitrate(codec, bps);
                }
            }
            MediaOp::Resolution(codec, width, height) => {
                if let Some(video) = &self.video {
                    video.set_resolution(codec, width, height);
                }
            }
            MediaOp::MicMuted(muted) => {
                if let Some(audio) = &self.audio {
                    audio.set_muted(muted);
                }
            }
            MediaOp::Camera(on) => {
                // Turning a real camera on opens it again: that may block, and fail.
                let result = self
                    .video
                    .as_ref()
                    .map(|video| blocking(|| video.set_enabled(on)));
                if let Some(Err(error)) = result {
                    self.emit(CallEvent::Error { error });
                }
            }
            MediaOp::SampleStats => {
                let samples = self.sample().await;
                self.input(Input::Stats(samples));
            }
            MediaOp::SampleEstimates => {
                let estimates = self
                    .links
                    .iter()
                    .filter_map(|(id, link)| link.estimate.for_encoder().map(|bps| (*id, bps)))
                    .collect();
                let encoded = self.send_counters.delta_bytes();
                self.input(Input::Estimates { estimates, encoded });
            }
        }
    }

    async fn shutdown(&mut self) {
        if let Err(err) = self
            .core
            .command(Instant::now(), kith_call_core::Command::Hangup)
        {
            warn!(%err, "hanging up");
        }
        self.carry_out().await;
        // The last words (leave, invite_cancel) must reach the server before
        // the process may exit: drop our handle and let the client flush.
        self.signaling = None;
        if let Some(task) = self.signaling_task.take()
            && tokio::time::timeout(FLUSH_PATIENCE, task).await.is_err()
        {
            debug!("the signaling client did not finish in time");
        }
        // Stop capture and encoding before the summary is read.
        self.video = None;
        self.audio = None;
        self.video_units.clear();
        self.audio_units.clear();
    }

    pub fn summary(&self) -> CallSummary {
        CallSummary {
            peers: self.records.values().map(PeerRecord::summary).collect(),
            chat: self.core.chat_counts(),
        }
    }
}

/// Opening a device blocks; on a multi-threaded runtime, say so, so the
/// other tasks move to another worker meanwhile.
fn blocking<T>(open: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(open),
        _ => open(),
    }
}
