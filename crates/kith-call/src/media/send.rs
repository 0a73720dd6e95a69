//! The send side of a call: one source thread per kind, one encoder per
//! negotiated codec (normally one for the whole call), and the encoded
//! output split into RTP payloads *once* and broadcast to every peer's RTP
//! writer (encode once, send to all).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, unbounded};
use kith_media::audio::tone::ToneSource;
use kith_media::audio::wav::WavSource;
use kith_media::audio_io::{DeviceChoice, Microphone};
use kith_media::camera::{Camera, CameraChoice, CameraRequest};
use kith_media::codec::factory;
use kith_media::codec::{
    AudioCodec, AudioEncoder, EncodedVideoFrame, VideoCodec, VideoEncoderConfig,
};
use kith_media::frame::{AudioFrame, Channels, VideoFrame, now_us};
use kith_media::pipeline::encoder_thread::{EncoderCommand, EncoderEvent, EncoderThread};
use kith_media::processing::{AudioProcessor, ProcessingSettings, RenderHandle};
use kith_media::video::synthetic::SyntheticCamera;
use kith_media::video::y4m_file::Y4mSource;
use rtc::rtp::packetizer::Payloader;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::codecs::{VIDEO_CODECS, audio_rtp_codec, video_rtp_codec};
use crate::error::CallError;
use crate::media::sinks::{AudioLevel, LatestFrame, VideoSink};
use crate::media::sources::{AudioSourceSpec, VideoSourceSpec};
use crate::media::vp9_rtp::Vp9Payloader;

/// RTP payload bytes per packet: 1200-byte packets leave room for the RTP
/// header, header extensions (TWCC, MID) and the SRTP tag on any path MTU.
pub const PAYLOAD_MTU: usize = 1100;

/// One encoded frame or audio packet, already split into RTP payloads.
#[derive(Debug)]
pub struct MediaUnit {
    pub payloads: Vec<Bytes>,
    /// In the codec's RTP clock.
    pub rtp_timestamp: u32,
    pub keyframe: bool,
    pub marker: Marker,
}

/// Which packet of a unit carries the RTP marker bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Video: the last packet of a frame (RFC 6184, 7741, 9628 alike).
    LastPacket,
    /// Audio: the first packet of a talkspurt, after silence (RFC 3551
    /// 4.1); a receiver may adapt its playout delay there.
    FirstPacket,
    /// Audio inside a talkspurt, and DTX's silence markers.
    Nowhere,
}

pub type UnitSender = broadcast::Sender<Arc<MediaUnit>>;
pub type UnitReceiver = broadcast::Receiver<Arc<MediaUnit>>;

/// Frames that may wait for a slow peer writer before it starts skipping.
pub const UNIT_BACKLOG: usize = 64;

#[derive(Debug, Default)]
pub struct SendCounters {
    pub video_frames_sent: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub audio_packets_sent: AtomicU64,
    /// Bytes of delta frames by codec, in [`VIDEO_CODECS`] order: what the
    /// size ladder judges a climb by.
    delta_bytes: [AtomicU64; VIDEO_CODECS.len()],
}

impl SendCounters {
    fn count_delta_frame(&self, codec: VideoCodec, bytes: usize) {
        if let Some(slot) = VIDEO_CODECS.iter().position(|c| *c == codec) {
            self.delta_bytes[slot].fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Bytes of delta frames each codec has produced so far.
    pub fn delta_bytes(&self) -> Vec<(VideoCodec, u64)> {
        VIDEO_CODECS
            .iter()
            .zip(&self.delta_bytes)
            .map(|(codec, bytes)| (*codec, bytes.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Settings of the outgoing video.
#[derive(Debug, Clone)]
pub struct VideoSendSettings {
    pub source: VideoSourceSpec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub start_bitrate_bps: u32,
}

#[derive(Debug)]
enum VideoControl {
    /// Run the slow part of this codec's encoder start-up ahead (the AV1
    /// trial), for an `AddCodec` to come.
    Prepare(VideoCodec),
    AddCodec(VideoCodec, UnitSender),
    Keyframe(VideoCodec),
    Bitrate(VideoCodec, u32),
    Resolution(VideoCodec, u32, u32),
    /// An opened source to continue with.
    Source(Box<Source>),
}

enum Source {
    Synthetic(SyntheticCamera),
    Y4m(Y4mSource),
    Camera(Camera),
    /// Switched to none: nothing is captured or sent.
    Idle,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Synthetic(_) => "Synthetic",
            Source::Y4m(_) => "Y4m",
            Source::Camera(_) => "Camera",
            Source::Idle => "Idle",
        })
    }
}

/// Opens `spec` at the configured size (a Y4M file has its own; the encoder
/// thread scales). Errors here leave whatever runs untouched.
fn open_video_source(
    spec: &VideoSourceSpec,
    settings: &VideoSendSettings,
) -> Result<Source, CallError> {
    Ok(match spec {
        VideoSourceSpec::None => Source::Idle,
        VideoSourceSpec::Synthetic => {
            Source::Synthetic(SyntheticCamera::new(settings.width, settings.height))
        }
        VideoSourceSpec::Y4m(path) => {
            Source::Y4m(Y4mSource::open(path).map_err(CallError::media("video file"))?)
        }
        VideoSourceSpec::Camera(index) => Source::Camera(
            Camera::open(
                &CameraChoice::Index(index.unwrap_or(0)),
                CameraRequest {
                    width: settings.width,
                    height: settings.height,
                    fps: settings.fps,
                },
            )
            .map_err(crate::device_errors::camera)?,
        ),
    })
}

/// The outgoing video of a call; dropping it stops its threads.
#[derive(Debug)]
pub struct VideoSend {
    control: Sender<VideoControl>,
    enabled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    settings: VideoSendSettings,
    /// What runs now (`settings.source` is what the call started with).
    source: Mutex<VideoSourceSpec>,
    /// A real camera is closed while video is off, so its light goes out.
    camera_released: AtomicBool,
    preview: LatestFrame,
    thread: Option<JoinHandle<()>>,
}

impl VideoSend {
    /// Opens the source now (so a missing camera or bad file is an error
    /// here) and starts the source thread.
    pub fn start(
        settings: VideoSendSettings,
        counters: Arc<SendCounters>,
    ) -> Result<Option<Self>, CallError> {
        if settings.width < 16 || settings.height < 16 || settings.fps == 0 || settings.fps > 120 {
            return Err(CallError::Config(format!(
                "video {}x{} at {} fps: width and height must be at least 16, fps 1 to 120",
                settings.width, settings.height, settings.fps
            )));
        }
        if settings.source == VideoSourceSpec::None {
            return Ok(None);
        }
        let source = open_video_source(&settings.source, &settings)?;
        let (control, control_rx) = unbounded();
        let enabled = Arc::new(AtomicBool::new(true));
        let thread_settings = settings.clone();
        let thread_enabled = Arc::clone(&enabled);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let preview = LatestFrame::new();
        let thread_preview = preview.clone();
        // Threads do not inherit the span: carry it so each log line names its call.
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name("video-source".into())
            .spawn(move || {
                let _entered = span.enter();
                run_video_source(
                    source,
                    thread_settings,
                    control_rx,
                    thread_enabled,
                    thread_stop,
                    thread_preview,
                    counters,
                )
            })
            .map_err(CallError::media("start the video thread"))?;
        Ok(Some(Self {
            control,
            enabled,
            stop,
            source: Mutex::new(settings.source.clone()),
            camera_released: AtomicBool::new(false),
            settings,
            preview,
            thread: Some(thread),
        }))
    }

    /// Starts what is slow in starting `codec`'s encoder (the AV1 trial)
    /// now, while the call connects, so the encoder is ready sooner once
    /// `add_codec` comes.
    pub fn prepare_codec(&self, codec: VideoCodec) {
        let _ = self.control.send(VideoControl::Prepare(codec));
    }

    /// Starts an encoder for `codec` (once) feeding `units`.
    pub fn add_codec(&self, codec: VideoCodec, units: UnitSender) {
        let _ = self.control.send(VideoControl::AddCodec(codec, units));
    }

    pub fn request_keyframe(&self, codec: VideoCodec) {
        let _ = self.control.send(VideoControl::Keyframe(codec));
    }

    /// A handle peers keep to ask for a keyframe (on PLI, or when they join).
    pub fn keyframe_requester(&self, codec: VideoCodec) -> Arc<dyn Fn() + Send + Sync> {
        let control = self.control.clone();
        Arc::new(move || {
            let _ = control.send(VideoControl::Keyframe(codec));
        })
    }

    pub fn set_bitrate(&self, codec: VideoCodec, bitrate_bps: u32) {
        let _ = self.control.send(VideoControl::Bitrate(codec, bitrate_bps));
    }

    pub fn set_resolution(&self, codec: VideoCodec, width: u32, height: u32) {
        let _ = self
            .control
            .send(VideoControl::Resolution(codec, width, height));
    }

    /// Camera off sends nothing (the transceiver stays negotiated) and
    /// closes a real camera; on opens it again, which blocks a moment and
    /// fails if the camera is gone (video then stays off).
    pub fn set_enabled(&self, on: bool) -> Result<(), CallError> {
        let current = lock(&self.source);
        let is_camera = matches!(*current, VideoSourceSpec::Camera(_));
        if on && self.camera_released.load(Ordering::Relaxed) {
            let source = open_video_source(&current, &self.settings)?;
            self.control
                .send(VideoControl::Source(Box::new(source)))
                .map_err(|_| CallError::Stopped)?;
            self.camera_released.store(false, Ordering::Relaxed);
        } else if !on && is_camera && !self.camera_released.load(Ordering::Relaxed) {
            self.control
                .send(VideoControl::Source(Box::new(Source::Idle)))
                .map_err(|_| CallError::Stopped)?;
            self.camera_released.store(true, Ordering::Relaxed);
        }
        self.enabled.store(on, Ordering::Relaxed);
        Ok(())
    }

    pub fn settings(&self) -> &VideoSendSettings {
        &self.settings
    }

    /// What the camera sees, as sent (nothing while it is off).
    pub fn preview(&self) -> LatestFrame {
        self.preview.clone()
    }

    /// Continues the call from another source (`None`: send nothing and
    /// release the camera). The new one is opened here, on the caller's
    /// thread (a camera takes a moment to open, so call this where blocking
    /// is fine): if that fails the error comes back and the old source keeps
    /// running. Frames keep the configured size.
    pub fn switch_source(&self, spec: VideoSourceSpec) -> Result<(), CallError> {
        let mut current = lock(&self.source);
        // The same camera twice would be opened while still open, and fail.
        if *current == spec {
            return Ok(());
        }
        // Video is off and the camera closed: the new choice opens when it comes on.
        if self.camera_released.load(Ordering::Relaxed) {
            if !matches!(spec, VideoSourceSpec::Camera(_)) {
                let source = open_video_source(&spec, &self.settings)?;
                self.control
                    .send(VideoControl::Source(Box::new(source)))
                    .map_err(|_| CallError::Stopped)?;
                self.camera_released.store(false, Ordering::Relaxed);
            }
            *current = spec;
            return Ok(());
        }
        let source = open_video_source(&spec, &self.settings)?;
        self.control
            .send(VideoControl::Source(Box::new(source)))
            .map_err(|_| CallError::Stopped)?;
        info!(source = %spec, "video source switched");
        *current = spec;
        Ok(())
    }

    /// The source running now.
    pub fn source(&self) -> VideoSourceSpec {
        lock(&self.source).clone()
    }
}

impl Drop for VideoSend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct RunningEncoder {
    codec: VideoCodec,
    thread: EncoderThread,
    packetizer: Option<JoinHandle<()>>,
}

fn run_video_source(
    mut source: Source,
    settings: VideoSendSettings,
    control: Receiver<VideoControl>,
    enabled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    mut preview: LatestFrame,
    counters: Arc<SendCounters>,
) {
    let interval = Duration::from_secs_f64(1.0 / f64::from(settings.fps));
    let mut encoders: Vec<RunningEncoder> = Vec::new();
    let mut trial: Option<factory::EncoderTrial> = None;
    let mut next_tick = Instant::now();
    let mut failures = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            stop_encoders(encoders);
            return;
        }
        loop {
            match control.try_recv() {
                Ok(VideoControl::Source(new)) => {
                    // The old source (a camera's capture thread) stops here.
                    source = *new;
                    failures = 0;
                    next_tick = Instant::now();
                }
                Ok(command) => {
                    apply_video_control(command, &mut encoders, &mut trial, &settings, &counters)
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    stop_encoders(encoders);
                    return;
                }
            }
        }
        let frame = match &mut source {
            Source::Camera(camera) => camera.next_frame().map_err(|err| err.to_string()),
            other => {
                let now = Instant::now();
                if next_tick > now {
                    std::thread::sleep(next_tick - now);
                }
                next_tick += interval;
                // After a stall, do not burst to catch up.
                if next_tick + interval < Instant::now() {
                    next_tick = Instant::now() + interval;
                }
                match other {
                    Source::Synthetic(camera) => Ok(camera.next_frame(now_us())),
                    Source::Y4m(file) => file.next_frame(now_us()).map_err(|err| err.to_string()),
                    Source::Camera(_) | Source::Idle => continue,
                }
            }
        };
        let frame: VideoFrame = match frame {
            Ok(frame) => {
                failures = 0;
                frame
            }
            Err(reason) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    warn!(%reason, failures, "video source failed to deliver a frame");
                }
                std::thread::sleep(interval);
                continue;
            }
        };
        if !enabled.load(Ordering::Relaxed) {
            continue;
        }
        preview.frame(&frame);
        for encoder in &encoders {
            encoder.thread.push(frame.clone());
        }
    }
}

fn stop_encoders(encoders: Vec<RunningEncoder>) {
    for mut encoder in encoders {
        let packetizer = encoder.packetizer.take();
        drop(encoder);
        if let Some(packetizer) = packetizer {
            let _ = packetizer.join();
        }
    }
}

fn apply_video_control(
    command: VideoControl,
    encoders: &mut Vec<RunningEncoder>,
    trial: &mut Option<factory::EncoderTrial>,
    settings: &VideoSendSettings,
    counters: &Arc<SendCounters>,
) {
    let find = |encoders: &Vec<RunningEncoder>, codec: VideoCodec| {
        encoders.iter().position(|e| e.codec == codec)
    };
    // What an encoder starts with (the bandwidth estimate moves it later).
    let config = || VideoEncoderConfig {
        width: settings.width,
        height: settings.height,
        fps: settings.fps,
        bitrate_bps: settings.start_bitrate_bps,
    };
    match command {
        VideoControl::Prepare(codec) => {
            if find(encoders, codec).is_none() && trial.is_none() {
                *trial = factory::EncoderTrial::start(codec, config());
            }
        }
        VideoControl::AddCodec(codec, units) => {
            if find(encoders, codec).is_some() {
                return;
            }
            let trial = trial.take();
            let config = config();
            // Built on the encoder's own thread: the AV1 choice times trial
            // encodes (or waits for the trial run ahead), and this (the
            // capture) thread must keep delivering.
            let build = move || {
                let encoder =
                    factory::video_encoder_after(trial, codec, config).inspect_err(|err| {
                        warn!(%err, codec = codec.sdp_name(), "cannot start the video encoder");
                    })?;
                info!(
                    codec = codec.sdp_name(),
                    implementation = encoder.implementation(),
                    width = encoder.config().width,
                    height = encoder.config().height,
                    "video encoder started"
                );
                Ok(encoder)
            };
            let (out_tx, out_rx) = unbounded();
            let name = format!("encode-{}", codec.sdp_name());
            let thread = match EncoderThread::spawn_with(name, Box::new(build), out_tx) {
                Ok(thread) => thread,
                Err(err) => {
                    warn!(%err, "cannot start the encoder thread");
                    return;
                }
            };
            let counters = Arc::clone(counters);
            let span = tracing::Span::current();
            let packetizer = std::thread::Builder::new()
                .name("video-packetize".into())
                .spawn(move || {
                    let _entered = span.enter();
                    packetize_video(codec, out_rx, units, counters)
                })
                .ok();
            encoders.push(RunningEncoder {
                codec,
                thread,
                packetizer,
            });
        }
        VideoControl::Keyframe(codec) => {
            if let Some(i) = find(encoders, codec) {
                encoders[i].thread.command(EncoderCommand::Keyframe);
            }
        }
        VideoControl::Bitrate(codec, bps) => {
            if let Some(i) = find(encoders, codec) {
                encoders[i].thread.command(EncoderCommand::Bitrate(bps));
            }
        }
        VideoControl::Resolution(codec, width, height) => {
            if let Some(i) = find(encoders, codec) {
                encoders[i]
                    .thread
                    .command(EncoderCommand::Resolution { width, height });
            }
        }
        // Taken by the source loop itself.
        VideoControl::Source(_) => {}
    }
}

/// Splits encoded frames into RTP payloads of at most [`PAYLOAD_MTU`]:
/// VP9 with our own payloader (see `vp9_rtp`), the others with webrtc-rs's.
pub(crate) enum FramePayloader {
    Vp9(Vp9Payloader),
    Rtp(Box<dyn Payloader>),
}

impl FramePayloader {
    pub(crate) fn new(codec: VideoCodec) -> Result<Self, rtc::shared::error::Error> {
        Ok(match codec {
            VideoCodec::Vp9 => Self::Vp9(Vp9Payloader::default()),
            _ => Self::Rtp(video_rtp_codec(codec).payloader()?),
        })
    }

    pub(crate) fn payload(
        &mut self,
        frame: &EncodedVideoFrame,
    ) -> Result<Vec<Bytes>, rtc::shared::error::Error> {
        match self {
            Self::Vp9(vp9) => Ok(vp9.payload(
                PAYLOAD_MTU,
                &frame.data,
                frame.keyframe,
                frame.width,
                frame.height,
            )),
            Self::Rtp(payloader) => payloader.payload(PAYLOAD_MTU, &frame.data),
        }
    }
}

fn packetize_video(
    codec: VideoCodec,
    encoded: Receiver<EncoderEvent>,
    units: UnitSender,
    counters: Arc<SendCounters>,
) {
    let mut payloader = match FramePayloader::new(codec) {
        Ok(payloader) => payloader,
        Err(err) => {
            warn!(%err, codec = codec.sdp_name(), "no RTP payloader");
            return;
        }
    };
    for event in encoded {
        match event {
            EncoderEvent::Frame(frame) => {
                let payloads = match payloader.payload(&frame) {
                    Ok(payloads) if !payloads.is_empty() => payloads,
                    Ok(_) => continue,
                    Err(err) => {
                        warn!(%err, "cannot packetize a frame");
                        continue;
                    }
                };
                counters.video_frames_sent.fetch_add(1, Ordering::Relaxed);
                if !frame.keyframe {
                    counters.count_delta_frame(frame.codec, frame.data.len());
                }
                counters
                    .video_bytes_sent
                    .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
                // No receiver yet is fine: the frame is simply not needed.
                let _ = units.send(Arc::new(MediaUnit {
                    payloads,
                    rtp_timestamp: frame.rtp_timestamp,
                    keyframe: frame.keyframe,
                    marker: Marker::LastPacket,
                }));
            }
            EncoderEvent::Error(err) => debug!(%err, "encoder error"),
        }
    }
}

/// A poisoned lock here only means a panic elsewhere mid-update of plain
/// data that is still consistent (a spec, settings).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------- audio

#[derive(Debug)]
enum AudioControl {
    AddCodec(AudioCodec, UnitSender),
    /// An opened input to continue with, and an echo canceller for it when
    /// the thread has none yet.
    Source(Box<AudioInput>, Option<Box<AudioProcessor>>),
    Processing(ProcessingSettings),
}

/// The outgoing audio of a call; dropping it stops its thread.
#[derive(Debug)]
pub struct AudioSend {
    control: Sender<AudioControl>,
    /// The microphone's level after processing, before muting: the settings' meter.
    level: AudioLevel,
    muted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    state: Mutex<AudioSendState>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct AudioSendState {
    source: AudioSourceSpec,
    /// What processors get, now and when one is made later.
    processing: ProcessingSettings,
    /// Whether the audio thread holds an echo canceller.
    has_processor: bool,
    /// The far end of a processor made by a switch, for the mixer.
    far_end: Option<RenderHandle>,
}

enum AudioInput {
    Tone(ToneSource),
    Wav(Box<WavSource>),
    Mic(Box<Microphone>),
}

impl std::fmt::Debug for AudioInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioInput::Tone(_) => "Tone",
            AudioInput::Wav(_) => "Wav",
            AudioInput::Mic(_) => "Mic",
        })
    }
}

fn silence() -> AudioInput {
    AudioInput::Tone(ToneSource::new(440.0, 0.0, Channels::Mono))
}

/// Opens `spec`; `None` is silence (the microphone is let go, packets go on).
fn open_audio_input(spec: &AudioSourceSpec) -> Result<AudioInput, CallError> {
    Ok(match spec {
        AudioSourceSpec::None => silence(),
        AudioSourceSpec::Tone => {
            AudioInput::Tone(ToneSource::new(440.0, 0.25, Channels::Mono).beeping())
        }
        AudioSourceSpec::Wav(path) => AudioInput::Wav(Box::new(
            WavSource::open(path, Channels::Mono).map_err(CallError::media("audio file"))?,
        )),
        AudioSourceSpec::Mic => AudioInput::Mic(Box::new(
            Microphone::open(&DeviceChoice::Default, Channels::Mono).map_err(|err| {
                crate::device_errors::audio(kith_call_core::DeviceKind::Microphone, err)
            })?,
        )),
    })
}

impl AudioSend {
    /// Opens the source now and starts its thread. `processor` is the echo
    /// canceller for a microphone (its far end is fed by the mixer).
    pub fn start(
        source: &AudioSourceSpec,
        processor: Option<AudioProcessor>,
        counters: Arc<SendCounters>,
    ) -> Result<Option<Self>, CallError> {
        if *source == AudioSourceSpec::None {
            return Ok(None);
        }
        let input = open_audio_input(source)?;
        let state = AudioSendState {
            source: source.clone(),
            processing: processor
                .as_ref()
                .map(AudioProcessor::settings)
                .unwrap_or_default(),
            has_processor: processor.is_some(),
            far_end: None,
        };
        let (control, control_rx) = unbounded();
        let muted = Arc::new(AtomicBool::new(false));
        let thread_muted = Arc::clone(&muted);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let span = tracing::Span::current();
        let level = AudioLevel::new();
        let thread_level = level.clone();
        let thread = std::thread::Builder::new()
            .name("audio-source".into())
            .spawn(move || {
                let _entered = span.enter();
                run_audio_source(
                    input,
                    processor,
                    control_rx,
                    AudioThreadShared {
                        muted: thread_muted,
                        stop: thread_stop,
                        counters,
                        level: thread_level,
                    },
                )
            })
            .map_err(CallError::media("start the audio thread"))?;
        Ok(Some(Self {
            control,
            level,
            muted,
            stop,
            state: Mutex::new(state),
            thread: Some(thread),
        }))
    }

    pub fn level(&self) -> AudioLevel {
        self.level.clone()
    }

    pub fn add_codec(&self, codec: AudioCodec, units: UnitSender) {
        let _ = self.control.send(AudioControl::AddCodec(codec, units));
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Continues from another input (`None`: silence, the microphone let
    /// go). It is opened here, on the caller's thread: if that fails the
    /// error comes back and the old input keeps running. A microphone goes
    /// through the echo canceller; if the call had none, one is made now and
    /// its far end waits in [`AudioSend::take_far_end`] for the mixer.
    pub fn switch_source(&self, spec: AudioSourceSpec) -> Result<(), CallError> {
        let mut state = lock(&self.state);
        // The same microphone twice would be opened while still open.
        if state.source == spec {
            return Ok(());
        }
        let input = open_audio_input(&spec)?;
        let processor = if matches!(input, AudioInput::Mic(_)) && !state.has_processor {
            let processor = AudioProcessor::new(Channels::Mono, Channels::Mono, state.processing)
                .map_err(CallError::media("echo canceller"))?;
            Some(processor)
        } else {
            None
        };
        let far_end = processor.as_ref().map(AudioProcessor::render_handle);
        let made = processor.is_some();
        self.control
            .send(AudioControl::Source(
                Box::new(input),
                processor.map(Box::new),
            ))
            .map_err(|_| CallError::Stopped)?;
        if made {
            state.has_processor = true;
            state.far_end = far_end;
        }
        info!(source = ?spec, "audio source switched");
        state.source = spec;
        Ok(())
    }

    /// The far end of an echo canceller made by [`AudioSend::switch_source`]
    /// (once): give it to [`crate::media::mixer::Mixer::set_far_end`] so it
    /// hears what the speakers play.
    pub fn take_far_end(&self) -> Option<RenderHandle> {
        lock(&self.state).far_end.take()
    }

    /// Echo cancellation, noise suppression and gain control, applied on
    /// the audio thread between two frames (and to any echo canceller made
    /// later).
    pub fn set_processing(&self, settings: ProcessingSettings) {
        lock(&self.state).processing = settings;
        let _ = self.control.send(AudioControl::Processing(settings));
    }

    /// The input running now.
    pub fn source(&self) -> AudioSourceSpec {
        lock(&self.state).source.clone()
    }

    pub fn processing(&self) -> ProcessingSettings {
        lock(&self.state).processing
    }
}

impl Drop for AudioSend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct RunningAudioEncoder {
    encoder: Box<dyn AudioEncoder>,
    units: UnitSender,
    clock_per_frame: u32,
    /// RTP time of the end of the last 10 ms frame fed in.
    clock: u32,
    payloader: Box<dyn Payloader>,
    /// Nothing has been sent yet, or only silence since the last speech:
    /// the next packet of sound starts a talkspurt.
    in_silence: bool,
}

/// What the audio thread shares with its `AudioSend`.
struct AudioThreadShared {
    muted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    counters: Arc<SendCounters>,
    level: AudioLevel,
}

fn run_audio_source(
    mut input: AudioInput,
    mut processor: Option<AudioProcessor>,
    control: Receiver<AudioControl>,
    shared: AudioThreadShared,
) {
    let AudioThreadShared {
        muted,
        stop,
        counters,
        level,
    } = shared;
    const FRAME: Duration = Duration::from_millis(10);
    let mut encoders: Vec<(AudioCodec, RunningAudioEncoder)> = Vec::new();
    let mut next_tick = Instant::now();
    let mut position = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        loop {
            match control.try_recv() {
                Ok(AudioControl::AddCodec(codec, units)) => {
                    if encoders.iter().any(|(c, _)| *c == codec) {
                        continue;
                    }
                    let rtp_codec = audio_rtp_codec(codec);
                    match (factory::audio_encoder(codec), rtp_codec.payloader()) {
                        (Ok(encoder), Ok(payloader)) => {
                            let start: u32 = rand::random();
                            encoders.push((
                                codec,
                                RunningAudioEncoder {
                                    encoder,
                                    units,
                                    clock_per_frame: rtp_codec.clock_rate / 100,
                                    clock: start,
                                    payloader,
                                    in_silence: true,
                                },
                            ));
                        }
                        (Err(err), _) => warn!(%err, "cannot start the audio encoder"),
                        (_, Err(err)) => warn!(%err, "no RTP payloader for audio"),
                    }
                }
                Ok(AudioControl::Source(new, new_processor)) => {
                    // The old input (a microphone's stream) stops here.
                    input = *new;
                    if let Some(new_processor) = new_processor {
                        processor = Some(*new_processor);
                    }
                    next_tick = Instant::now();
                }
                Ok(AudioControl::Processing(settings)) => {
                    if let Some(processor) = &mut processor {
                        processor.set_settings(settings);
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
        let frame = match &mut input {
            AudioInput::Mic(mic) => {
                let Some(mut frame) = mic.read_frame(Duration::from_millis(100)) else {
                    if let Some(err) = mic.failure() {
                        warn!(%err, "microphone failed; sending silence");
                        input = silence();
                    }
                    continue;
                };
                if let Some(processor) = &mut processor
                    && let Err(err) = processor.process_capture(&mut frame)
                {
                    debug!(%err, "echo canceller failed on a frame");
                }
                frame
            }
            paced => {
                let now = Instant::now();
                if next_tick > now {
                    std::thread::sleep(next_tick - now);
                }
                next_tick += FRAME;
                if next_tick + FRAME * 5 < Instant::now() {
                    next_tick = Instant::now() + FRAME;
                }
                match paced {
                    AudioInput::Tone(tone) => tone.next_frame(),
                    AudioInput::Wav(wav) => match wav.next_frame() {
                        Ok(frame) => frame,
                        Err(err) => {
                            warn!(%err, "audio file failed; sending silence");
                            input = silence();
                            continue;
                        }
                    },
                    AudioInput::Mic(..) => continue,
                }
            }
        };
        position += 1;
        level.update(&frame);
        let frame = if muted.load(Ordering::Relaxed) {
            AudioFrame::silent(Channels::Mono, position)
        } else {
            frame
        };
        for (_, running) in &mut encoders {
            running.clock = running.clock.wrapping_add(running.clock_per_frame);
            match running.encoder.encode(&frame) {
                Ok(Some(packet)) => {
                    let payloads = match running.payloader.payload(PAYLOAD_MTU, &packet) {
                        Ok(payloads) => payloads,
                        Err(err) => {
                            debug!(%err, "cannot packetize audio");
                            continue;
                        }
                    };
                    // The packet ends with this frame. Counted back from
                    // here, not from the previous packet: after a DTX gap
                    // that one is long gone, and a timestamp from before the
                    // gap makes the receiver think this packet came late
                    // (Chromium's jitter buffer grew to 350 ms on that).
                    let frames = running.encoder.frames_per_packet();
                    let silence = running.encoder.sent_silence();
                    let marker = if running.in_silence && !silence {
                        Marker::FirstPacket
                    } else {
                        Marker::Nowhere
                    };
                    running.in_silence = silence;
                    let unit = MediaUnit {
                        payloads,
                        rtp_timestamp: running
                            .clock
                            .wrapping_sub(frames.wrapping_mul(running.clock_per_frame)),
                        keyframe: false,
                        marker,
                    };
                    counters.audio_packets_sent.fetch_add(1, Ordering::Relaxed);
                    let _ = running.units.send(Arc::new(unit));
                }
                Ok(None) => {}
                Err(err) => debug!(%err, "audio encode failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kith_media::audio::wav::WavSink;
    use kith_media::video::y4m_file::Y4mSink;

    use super::*;

    fn video(source: VideoSourceSpec, width: u32, height: u32) -> VideoSend {
        let settings = VideoSendSettings {
            source,
            width,
            height,
            fps: 30,
            start_bitrate_bps: 1_500_000,
        };
        match VideoSend::start(settings, Arc::new(SendCounters::default())) {
            Ok(Some(video)) => video,
            Ok(None) => panic!("no video source"),
            Err(err) => panic!("video did not start: {err}"),
        }
    }

    /// The longest wait between two preview frames while `until` is false,
    /// polled every 2 ms, giving up after `limit`.
    fn longest_preview_gap(
        preview: &LatestFrame,
        limit: Duration,
        mut until: impl FnMut() -> bool,
    ) -> Duration {
        let started = Instant::now();
        let mut last_change = Instant::now();
        let mut last = preview.frames_published();
        let mut longest = Duration::ZERO;
        while !until() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(2));
            let now = preview.frames_published();
            if now != last {
                longest = longest.max(last_change.elapsed());
                last_change = Instant::now();
                last = now;
            }
        }
        longest.max(last_change.elapsed())
    }

    #[test]
    fn the_av1_trial_does_not_stall_capture() {
        let video = video(VideoSourceSpec::Synthetic, 1280, 720);
        let preview = video.preview();
        let (units, mut rx) = broadcast::channel(UNIT_BACKLOG);
        video.add_codec(VideoCodec::Av1, units);
        let mut first_unit = false;
        let gap = longest_preview_gap(&preview, Duration::from_secs(20), || {
            first_unit = first_unit || rx.try_recv().is_ok();
            first_unit
        });
        assert!(first_unit, "AV1 never produced a frame");
        // 33 ms between frames at 30 fps (about 40 ms measured here); the
        // trial alone takes 115 to 170 ms at 720p on this kind of machine.
        assert!(gap < Duration::from_millis(100), "capture stalled {gap:?}");
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("kith-send-{}-{name}", std::process::id()))
    }

    /// Waits until `ok` holds, up to 5 s.
    fn eventually(mut ok: impl FnMut() -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn preview_size(preview: &LatestFrame) -> Option<(u32, u32)> {
        preview.latest().map(|f| (f.width, f.height))
    }

    /// Frames still come: the count grows by `n` within 5 s.
    fn frames_keep_coming(preview: &LatestFrame, n: u64) -> bool {
        let from = preview.frames_published();
        eventually(|| preview.frames_published() >= from + n)
    }

    fn unit_arrives(rx: &mut UnitReceiver) -> bool {
        // Whatever is queued from before the switch does not count.
        while rx.try_recv().is_ok() {}
        eventually(|| rx.try_recv().is_ok())
    }

    #[test]
    fn switching_between_synthetic_and_y4m_keeps_frames_and_units_coming() {
        let path = temp_path("clip.y4m");
        let mut clip = match Y4mSink::create(&path, 160, 90, 30) {
            Ok(clip) => clip,
            Err(err) => panic!("cannot write the test clip: {err}"),
        };
        let camera = SyntheticCamera::new(160, 90);
        for i in 0..10 {
            if let Err(err) = clip.write(&camera.draw(i, 0)) {
                panic!("cannot write the test clip: {err}");
            }
        }
        drop(clip);

        let video = video(VideoSourceSpec::Synthetic, 320, 180);
        let preview = video.preview();
        let (units, mut rx) = broadcast::channel(UNIT_BACKLOG);
        video.add_codec(VideoCodec::Vp8, units);
        assert!(eventually(|| preview_size(&preview) == Some((320, 180))));
        assert!(unit_arrives(&mut rx));

        let clip = VideoSourceSpec::Y4m(path.clone());
        assert_eq!(video.switch_source(clip.clone()), Ok(()));
        assert!(eventually(|| preview_size(&preview) == Some((160, 90))));
        assert!(frames_keep_coming(&preview, 5));
        assert!(unit_arrives(&mut rx), "the encoder takes the clip, scaled");
        assert_eq!(video.source(), clip);

        assert_eq!(video.switch_source(VideoSourceSpec::Synthetic), Ok(()));
        assert!(eventually(|| preview_size(&preview) == Some((320, 180))));
        assert!(frames_keep_coming(&preview, 5));
        assert!(unit_arrives(&mut rx));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_missing_camera_or_file_is_an_error_and_the_old_source_runs_on() {
        let video = video(VideoSourceSpec::Synthetic, 320, 180);
        let preview = video.preview();
        assert!(frames_keep_coming(&preview, 1));
        let missing = video.switch_source(VideoSourceSpec::Camera(Some(97)));
        assert!(
            matches!(
                missing,
                Err(CallError::Device {
                    device: kith_call_core::DeviceKind::Camera,
                    problem: kith_call_core::DeviceProblem::Missing,
                    ..
                })
            ),
            "{missing:?}"
        );
        let missing = video.switch_source(VideoSourceSpec::Y4m(temp_path("none.y4m")));
        assert!(matches!(missing, Err(CallError::Media(_))), "{missing:?}");
        assert!(frames_keep_coming(&preview, 5));
        assert_eq!(video.source(), VideoSourceSpec::Synthetic);
    }

    #[test]
    fn switching_to_no_video_stops_frames_until_a_source_is_back() {
        let video = video(VideoSourceSpec::Synthetic, 320, 180);
        let preview = video.preview();
        assert!(frames_keep_coming(&preview, 1));
        assert_eq!(video.switch_source(VideoSourceSpec::None), Ok(()));
        std::thread::sleep(Duration::from_millis(100));
        let stopped_at = preview.frames_published();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(preview.frames_published(), stopped_at);
        assert_eq!(video.switch_source(VideoSourceSpec::Synthetic), Ok(()));
        assert!(frames_keep_coming(&preview, 3));
    }

    fn audio(
        source: AudioSourceSpec,
        processor: Option<AudioProcessor>,
    ) -> (AudioSend, UnitReceiver) {
        audio_in(AudioCodec::Pcmu, source, processor)
    }

    fn audio_in(
        codec: AudioCodec,
        source: AudioSourceSpec,
        processor: Option<AudioProcessor>,
    ) -> (AudioSend, UnitReceiver) {
        let audio = match AudioSend::start(&source, processor, Arc::new(SendCounters::default())) {
            Ok(Some(audio)) => audio,
            Ok(None) => panic!("no audio source"),
            Err(err) => panic!("audio did not start: {err}"),
        };
        let (units, rx) = broadcast::channel(UNIT_BACKLOG);
        audio.add_codec(codec, units);
        (audio, rx)
    }

    /// The beeping tone with Opus DTX: packets stop between beeps. Each
    /// packet's RTP time must still be the time its audio was captured, so
    /// the first packet of a beep is stamped a gap later than the last of
    /// the one before, not right after it (a stamp from before the gap made
    /// Chromium's jitter buffer grow to 350 ms).
    #[test]
    fn opus_timestamps_follow_capture_time_across_dtx_gaps() {
        let (_audio, mut rx) = audio_in(AudioCodec::Opus, AudioSourceSpec::Tone, None);
        let mut stamps: Vec<(Instant, u32)> = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            match rx.try_recv() {
                Ok(unit) => stamps.push((Instant::now(), unit.rtp_timestamp)),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        let gaps: Vec<_> = stamps
            .windows(2)
            .filter(|pair| pair[1].0 - pair[0].0 > Duration::from_millis(200))
            .collect();
        assert!(
            !gaps.is_empty(),
            "DTX made no gap in {} packets",
            stamps.len()
        );
        for pair in stamps.windows(2) {
            let wall_ms = (pair[1].0 - pair[0].0).as_secs_f64() * 1000.0;
            let rtp_ms = f64::from(pair[1].1.wrapping_sub(pair[0].1)) / 48.0;
            // Packets are 20 ms; the thread and this loop add jitter.
            assert!(
                (wall_ms - rtp_ms).abs() < 60.0,
                "{rtp_ms} ms of RTP time for {wall_ms:.0} ms of wall time"
            );
        }
    }

    /// The RTP marker bit opens each talkspurt (RFC 3551): the first packet
    /// of sound, and the first after each DTX silence marker (a packet of at
    /// most 2 bytes), and no other. It was on every audio packet, which
    /// tells a receiver each packet starts a new talkspurt.
    #[test]
    fn opus_marks_the_start_of_each_beep_only() {
        let (_audio, mut rx) = audio_in(AudioCodec::Opus, AudioSourceSpec::Tone, None);
        let mut units: Vec<(Instant, Marker, usize)> = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2500) {
            match rx.try_recv() {
                Ok(unit) => units.push((
                    Instant::now(),
                    unit.marker,
                    unit.payloads.iter().map(Bytes::len).sum(),
                )),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        let gaps = units
            .windows(2)
            .filter(|pair| pair[1].0 - pair[0].0 > Duration::from_millis(200))
            .count();
        assert!(gaps > 0, "DTX made no gap in {} packets", units.len());
        let mut after_silence = true;
        for (index, (_, marker, bytes)) in units.iter().enumerate() {
            let silence = *bytes <= 2;
            let expected = if after_silence && !silence {
                Marker::FirstPacket
            } else {
                Marker::Nowhere
            };
            assert_eq!(*marker, expected, "packet {index} of {bytes} bytes");
            after_silence = silence;
        }
        let marked = units
            .iter()
            .filter(|unit| unit.1 == Marker::FirstPacket)
            .count();
        assert!(marked > gaps, "{marked} talkspurts across {gaps} gaps");
    }

    #[test]
    fn audio_switches_between_tone_and_wav_and_a_missing_file_leaves_it_running() {
        let path = temp_path("voice.wav");
        let mut wav = match WavSink::create(&path, Channels::Mono) {
            Ok(wav) => wav,
            Err(err) => panic!("cannot write the test file: {err}"),
        };
        let mut tone = ToneSource::new(300.0, 0.3, Channels::Mono);
        for _ in 0..50 {
            if let Err(err) = wav.write(&tone.next_frame()) {
                panic!("cannot write the test file: {err}");
            }
        }
        if let Err(err) = wav.finish() {
            panic!("cannot write the test file: {err}");
        }

        let (audio, mut rx) = audio(AudioSourceSpec::Tone, None);
        assert!(unit_arrives(&mut rx));
        let file = AudioSourceSpec::Wav(path.clone());
        assert_eq!(audio.switch_source(file.clone()), Ok(()));
        assert!(unit_arrives(&mut rx));
        let missing = audio.switch_source(AudioSourceSpec::Wav(temp_path("none.wav")));
        assert!(matches!(missing, Err(CallError::Media(_))), "{missing:?}");
        assert!(unit_arrives(&mut rx));
        assert_eq!(audio.source(), file);
        // Silence still sends (G.711 has no DTX), without the file.
        assert_eq!(audio.switch_source(AudioSourceSpec::None), Ok(()));
        assert!(unit_arrives(&mut rx));
        assert!(
            audio.take_far_end().is_none(),
            "no microphone, no echo canceller made"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn processing_settings_change_while_audio_runs() {
        let processor = match AudioProcessor::new(
            Channels::Mono,
            Channels::Mono,
            ProcessingSettings::default(),
        ) {
            Ok(processor) => processor,
            Err(err) => panic!("no echo canceller: {err}"),
        };
        let (audio, mut rx) = audio(AudioSourceSpec::Tone, Some(processor));
        let off = ProcessingSettings {
            echo_cancellation: false,
            noise_suppression: false,
            gain_control: false,
            ..ProcessingSettings::default()
        };
        audio.set_processing(off);
        assert_eq!(audio.processing(), off);
        assert!(unit_arrives(&mut rx));
        audio.set_processing(ProcessingSettings::default());
        assert!(unit_arrives(&mut rx));
    }
}
