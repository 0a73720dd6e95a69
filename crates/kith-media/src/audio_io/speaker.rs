//! Playback: Kith's 10 ms 48 kHz frames to an output device, and what was
//! actually played back out again for the echo canceller.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::StreamTrait;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::error::{AudioIoError, Direction};
use super::format::{StreamFormat, StreamOptions, StreamPlan};
use super::microphone::{SCRATCH_MS, samples_for};
use super::pipeline::{CapturePath, PlaybackPath};
use super::shared::StreamShared;
use super::watch::{PresenceWatch, watch};
use super::{AudioIoStats, DeviceChoice, devices};
use crate::frame::{AudioFrame, Channels};

/// Callback period asked of the device; 20 ms survives a busy machine better than 10.
const PERIOD_MS: u32 = 20;
/// Queue limit for written frames; beyond it `write_frame` drops.
const RING_MS: u32 = 500;
/// Queued audio needed before playback (re)starts.
const PREFILL_MS: u32 = 30;
/// Played audio kept for `take_played`.
const PLAYED_RING_MS: u32 = 2000;
/// Played-audio backlog beyond which the oldest is skipped: nobody is reading
/// it. Kept well above the bursts a sound server sends after a stall, which
/// the echo canceller still needs.
const PLAYED_MAX_BACKLOG_MS: u32 = 1000;
const PLAYED_KEEP_BACKLOG_MS: u32 = 100;

/// An open output device taking 10 ms 48 kHz frames.
pub struct Speaker {
    /// Held, never read: dropping it stops the device callback.
    _stream: cpal::Stream,
    /// Held, never read: dropping it stops the watcher.
    _watch: Option<PresenceWatch>,
    ring: HeapProd<f32>,
    played_ring: HeapCons<f32>,
    shared: Arc<StreamShared>,
    path: PlaybackPath,
    played_path: CapturePath,
    scratch: Vec<f32>,
    device_name: String,
    plan: StreamPlan,
    frames: u64,
}

impl fmt::Debug for Speaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Speaker")
            .field("device", &self.device_name)
            .field("format", &self.plan)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Speaker {
    /// Opens `choice`; it plays silence until frames are written.
    pub fn open(choice: &DeviceChoice, channels: Channels) -> Result<Self, AudioIoError> {
        Self::open_with(choice, channels, &StreamOptions::default())
    }

    pub fn open_with(
        choice: &DeviceChoice,
        channels: Channels,
        options: &StreamOptions,
    ) -> Result<Self, AudioIoError> {
        let direction = Direction::Output;
        let (device, device_name, plan) =
            devices::open_plan(choice, direction, channels, options, PERIOD_MS)?;
        let device_channels = usize::from(plan.channels);
        let unsupported = |reason| AudioIoError::UnsupportedFormat {
            device: device_name.clone(),
            reason,
        };
        let path = PlaybackPath::new(device_channels, plan.rate).map_err(unsupported)?;
        let played_path =
            CapturePath::new(device_channels, plan.rate, channels).map_err(unsupported)?;

        let (producer, consumer) = ring(samples_for(RING_MS, plan.rate, device_channels))?;
        let (played_producer, played_consumer) =
            ring(samples_for(PLAYED_RING_MS, plan.rate, device_channels))?;
        let shared = Arc::new(StreamShared::new(&device_name, direction));
        let stream = super::callback::build_playback(
            &device,
            &plan,
            consumer,
            played_producer,
            samples_for(PREFILL_MS, plan.rate, device_channels),
            Arc::clone(&shared),
        )
        .map_err(|e| AudioIoError::from_cpal(&device_name, &e))?;
        stream
            .play()
            .map_err(|e| AudioIoError::from_cpal(&device_name, &e))?;
        tracing::info!(
            device = %device_name,
            rate = plan.rate,
            channels = plan.channels,
            format = %plan.format,
            buffer = ?plan.buffer,
            "speaker open"
        );
        let watch = match choice {
            // Following the default to wherever the server moves it is what was asked.
            DeviceChoice::Default => None,
            _ => watch(&device, &device_name, direction, &shared),
        };
        Ok(Self {
            _stream: stream,
            _watch: watch,
            ring: producer,
            played_ring: played_consumer,
            shared,
            path,
            played_path,
            // Whole device frames, so skipping a backlog never splits one.
            scratch: vec![0.0; samples_for(SCRATCH_MS, plan.rate, device_channels)],
            device_name,
            plan,
            frames: 0,
        })
    }

    /// Queues one 10 ms frame. Never blocks: when the queue is full the frame is
    /// dropped and counted as an overrun. Playback starts, and restarts after
    /// running dry, once 30 ms is queued, so a late writer makes one clean gap.
    pub fn write_frame(&mut self, frame: &AudioFrame) {
        self.path.convert(frame);
        let len = self.path.output_len();
        if self.ring.vacant_len() < len {
            StreamShared::count(&self.shared.overruns);
            tracing::trace!(device = %self.device_name, "playback queue full; frame dropped");
            return;
        }
        let (a, b) = self.path.output();
        // One push publishes the frame at once; the callback never sees half of it.
        self.ring.push_iter(a.iter().chain(b).copied());
        self.frames += 1;
    }

    /// What the device actually played (silence included), as 10 ms 48 kHz frames
    /// in the speaker's channel count; `None` until another frame has been played.
    pub fn take_played(&mut self) -> Option<AudioFrame> {
        let channels = usize::from(self.plan.channels);
        loop {
            if let Some(frame) = self.played_path.pop_frame() {
                return Some(frame);
            }
            let backlog = self.played_ring.occupied_len();
            if backlog > samples_for(PLAYED_MAX_BACKLOG_MS, self.plan.rate, channels) {
                let keep = samples_for(PLAYED_KEEP_BACKLOG_MS, self.plan.rate, channels);
                let excess = (backlog - keep) / channels * channels;
                let skipped = self.played_ring.skip(excess);
                self.played_path.skipped((skipped / channels) as u64);
                tracing::debug!(device = %self.device_name, "played audio not collected; skipped old");
            }
            let n = self.played_ring.pop_slice(&mut self.scratch);
            if n == 0 {
                return None;
            }
            self.played_path.push(&self.scratch[..n]);
        }
    }

    /// Audio queued and not yet handed to the device.
    pub fn buffered(&self) -> Duration {
        let frames = self.ring.occupied_len() / usize::from(self.plan.channels.max(1));
        Duration::from_secs_f64(frames as f64 / f64::from(self.plan.rate))
    }

    pub fn stats(&self) -> AudioIoStats {
        AudioIoStats {
            overruns: StreamShared::get(&self.shared.overruns),
            underruns: StreamShared::get(&self.shared.underruns),
            frames: self.frames,
        }
    }

    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The format the device runs at (after conversion from 48 kHz).
    pub fn device_format(&self) -> StreamFormat {
        self.plan.describe()
    }

    /// Why the device stopped or disappeared, once it has. After a disappearance
    /// PulseAudio may keep the stream running on another device; reopen to choose.
    pub fn failure(&self) -> Option<AudioIoError> {
        self.shared.failure()
    }
}

fn ring(len: usize) -> Result<(HeapProd<f32>, HeapCons<f32>), AudioIoError> {
    HeapRb::<f32>::try_new(len)
        .map(Split::split)
        .map_err(|e| AudioIoError::Backend(format!("cannot allocate {len}-sample audio ring: {e}")))
}
