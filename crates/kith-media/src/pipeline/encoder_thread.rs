//! A video encoder on its own thread: frames in through a one-frame slot
//! (a slow encoder drops the oldest frame, never stalls the camera), commands
//! in (bitrate, frame rate, resolution, keyframe), encoded frames out to one
//! channel the call engine fans out to every peer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select, unbounded};

use crate::codec::{CodecError, EncodedVideoFrame, VideoEncoder};
use crate::frame::VideoFrame;
use crate::video::scale::Scaler;

/// A change to a running encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderCommand {
    Bitrate(u32),
    Fps(u32),
    Resolution { width: u32, height: u32 },
    Keyframe,
}

/// What the encoder thread produces.
#[derive(Debug, Clone)]
pub enum EncoderEvent {
    Frame(EncodedVideoFrame),
    /// The encoder failed on one frame or command; it keeps running.
    Error(CodecError),
}

/// Counters the encoder thread keeps; read them at any time.
#[derive(Debug, Default)]
pub struct EncoderCounters {
    pub frames_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub frames_encoded: AtomicU64,
    pub keyframes: AtomicU64,
    pub bytes: AtomicU64,
    /// Sum of encode times, for the mean.
    pub encode_us_total: AtomicU64,
}

/// The running encoder. Dropping it stops the thread.
#[derive(Debug)]
pub struct EncoderThread {
    frames: Option<Sender<VideoFrame>>,
    /// Kept to pop the stale frame when the slot is full.
    stale: Receiver<VideoFrame>,
    commands: Sender<EncoderCommand>,
    counters: Arc<EncoderCounters>,
    thread: Option<JoinHandle<()>>,
}

/// What builds the encoder on its thread.
pub type EncoderBuilder = Box<dyn FnOnce() -> Result<Box<dyn VideoEncoder>, CodecError> + Send>;

impl EncoderThread {
    /// Starts `encoder` on a new thread; its output goes to `output`. The
    /// thread logs inside the caller's current span.
    pub fn spawn(
        encoder: Box<dyn VideoEncoder>,
        output: Sender<EncoderEvent>,
    ) -> std::io::Result<Self> {
        let name = format!("encode-{}", encoder.implementation());
        Self::start(name, Box::new(move || Ok(encoder)), output, false)
    }

    /// Starts a thread that first runs `build` and then encodes with what it
    /// returns, so a slow start (the AV1 choice times trial encodes) stalls
    /// no caller. Frames pushed while it builds are dropped, not encoded
    /// late; commands sent meanwhile apply once it runs. A failed build is
    /// reported as one [`EncoderEvent::Error`] and ends the thread.
    pub fn spawn_with(
        name: String,
        build: EncoderBuilder,
        output: Sender<EncoderEvent>,
    ) -> std::io::Result<Self> {
        Self::start(name, build, output, true)
    }

    fn start(
        name: String,
        build: EncoderBuilder,
        output: Sender<EncoderEvent>,
        skip_early_frame: bool,
    ) -> std::io::Result<Self> {
        let (frame_tx, frame_rx) = bounded::<VideoFrame>(1);
        let (command_tx, command_rx) = unbounded::<EncoderCommand>();
        let counters = Arc::new(EncoderCounters::default());
        let shared = Arc::clone(&counters);
        let stale = frame_rx.clone();
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let _entered = span.enter();
            let encoder = match build() {
                Ok(encoder) => encoder,
                Err(err) => {
                    let _ = output.send(EncoderEvent::Error(err));
                    return;
                }
            };
            // A frame captured during the build is as old as the build took.
            if skip_early_frame && frame_rx.try_recv().is_ok() {
                shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
            run(encoder, &frame_rx, &command_rx, &output, &shared);
        })?;
        Ok(Self {
            frames: Some(frame_tx),
            stale,
            commands: command_tx,
            counters,
            thread: Some(thread),
        })
    }

    /// Offers a frame; if the encoder has not taken the previous one yet, that
    /// one is dropped (latency matters more than every frame).
    pub fn push(&self, frame: VideoFrame) {
        let Some(frames) = &self.frames else { return };
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(frame)) = frames.try_send(frame) {
            if self.stale.try_recv().is_ok() {
                self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
            let _ = frames.try_send(frame);
        }
    }

    pub fn command(&self, command: EncoderCommand) {
        let _ = self.commands.send(command);
    }

    pub fn counters(&self) -> &EncoderCounters {
        &self.counters
    }
}

impl Drop for EncoderThread {
    fn drop(&mut self) {
        // Closing the frame slot ends the thread's loop.
        self.frames = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    mut encoder: Box<dyn VideoEncoder>,
    frame_rx: &Receiver<VideoFrame>,
    command_rx: &Receiver<EncoderCommand>,
    output: &Sender<EncoderEvent>,
    shared: &EncoderCounters,
) {
    let mut scaler = Scaler::default();
    let mut keyframe_pending = false;
    loop {
        select! {
            recv(command_rx) -> command => {
                let Ok(command) = command else { continue };
                if let Err(err) = apply(&mut *encoder, command, &mut keyframe_pending) {
                    let _ = output.send(EncoderEvent::Error(err));
                }
            }
            recv(frame_rx) -> frame => {
                let Ok(frame) = frame else { break };
                // Commands that arrived with the frame apply to it.
                while let Ok(command) = command_rx.try_recv() {
                    if let Err(err) = apply(&mut *encoder, command, &mut keyframe_pending) {
                        let _ = output.send(EncoderEvent::Error(err));
                    }
                }
                let config = encoder.config();
                let frame = match scaler.scale(&frame, config.width, config.height) {
                    Ok(frame) => frame,
                    Err(err) => {
                        let _ = output.send(EncoderEvent::Error(CodecError::Encode {
                            codec: encoder.implementation(),
                            reason: err.to_string(),
                        }));
                        continue;
                    }
                };
                let started = Instant::now();
                let result = encoder.encode(&frame, keyframe_pending);
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                shared.encode_us_total.fetch_add(took, Ordering::Relaxed);
                match result {
                    Ok(encoded) => {
                        keyframe_pending = false;
                        for frame in encoded {
                            shared.frames_encoded.fetch_add(1, Ordering::Relaxed);
                            shared.bytes.fetch_add(frame.data.len() as u64, Ordering::Relaxed);
                            if frame.keyframe {
                                shared.keyframes.fetch_add(1, Ordering::Relaxed);
                            }
                            if output.send(EncoderEvent::Frame(frame)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(err) => {
                        let _ = output.send(EncoderEvent::Error(err));
                    }
                }
            }
        }
    }
}

fn apply(
    encoder: &mut dyn VideoEncoder,
    command: EncoderCommand,
    keyframe_pending: &mut bool,
) -> Result<(), CodecError> {
    match command {
        EncoderCommand::Bitrate(bps) => encoder.set_bitrate(bps),
        EncoderCommand::Fps(fps) => encoder.set_fps(fps),
        EncoderCommand::Resolution { width, height } => {
            *keyframe_pending = true;
            encoder.set_resolution(width, height)
        }
        EncoderCommand::Keyframe => {
            *keyframe_pending = true;
            Ok(())
        }
    }
}
