//! Capture: a device's input as Kith's 10 ms 48 kHz frames.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::StreamTrait;
use ringbuf::traits::{Consumer, Observer, Split};
use ringbuf::{HeapCons, HeapRb};

use super::error::{AudioIoError, Direction};
use super::format::{StreamFormat, StreamOptions, StreamPlan};
use super::pipeline::CapturePath;
use super::shared::StreamShared;
use super::watch::{PresenceWatch, watch};
use super::{AudioIoStats, DeviceChoice, devices};
use crate::frame::{AudioFrame, Channels};

/// Callback period asked of the device. PulseAudio drops capture the client has
/// not collected within one period (cpal sets its record buffer to one
/// fragment); 10 ms lost audio whenever a busy 2-core machine delayed us.
const PERIOD_MS: u32 = 20;
/// Device audio the ring can hold before the callback has to drop.
const RING_MS: u32 = 500;
/// Backlog beyond which old audio is skipped: a call wants fresh audio, not a
/// growing delay after the reader stalled once.
const MAX_BACKLOG_MS: u32 = 200;
/// Backlog kept after skipping.
const KEEP_BACKLOG_MS: u32 = 20;
/// Device audio moved out of the ring per step.
pub(crate) const SCRATCH_MS: u32 = 50;
/// Longest sleep while waiting for the device.
const POLL: Duration = Duration::from_millis(2);
/// Silence from the device this long is worth a warning.
const STALL_WARNING: Duration = Duration::from_secs(2);

/// An open input device delivering 10 ms 48 kHz frames.
pub struct Microphone {
    /// Held, never read: dropping it stops the device callback.
    _stream: cpal::Stream,
    /// Held, never read: dropping it stops the watcher.
    _watch: Option<PresenceWatch>,
    ring: HeapCons<f32>,
    shared: Arc<StreamShared>,
    path: CapturePath,
    scratch: Vec<f32>,
    device_name: String,
    plan: StreamPlan,
    frames: u64,
    last_callbacks: u64,
    last_progress: Instant,
    stall_warned: bool,
}

impl fmt::Debug for Microphone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Microphone")
            .field("device", &self.device_name)
            .field("format", &self.plan)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Microphone {
    /// Opens `choice` and starts capturing at once.
    pub fn open(choice: &DeviceChoice, channels: Channels) -> Result<Self, AudioIoError> {
        Self::open_with(choice, channels, &StreamOptions::default())
    }

    pub fn open_with(
        choice: &DeviceChoice,
        channels: Channels,
        options: &StreamOptions,
    ) -> Result<Self, AudioIoError> {
        let direction = Direction::Input;
        let (device, device_name, plan) =
            devices::open_plan(choice, direction, channels, options, PERIOD_MS)?;
        let device_channels = usize::from(plan.channels);
        let path = CapturePath::new(device_channels, plan.rate, channels).map_err(|reason| {
            AudioIoError::UnsupportedFormat {
                device: device_name.clone(),
                reason,
            }
        })?;
        let ring_len = samples_for(RING_MS, plan.rate, device_channels);
        let ring = HeapRb::<f32>::try_new(ring_len).map_err(|e| {
            AudioIoError::Backend(format!(
                "cannot allocate {ring_len}-sample capture ring: {e}"
            ))
        })?;
        let (producer, consumer) = ring.split();
        let shared = Arc::new(StreamShared::new(&device_name, direction));
        let stream = super::callback::build_capture(&device, &plan, producer, Arc::clone(&shared))
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
            "microphone open"
        );
        let watch = match choice {
            // Following the default to wherever the server moves it is what was asked.
            DeviceChoice::Default => None,
            _ => watch(&device, &device_name, direction, &shared),
        };
        Ok(Self {
            _stream: stream,
            _watch: watch,
            ring: consumer,
            shared,
            // Whole device frames, so skipping a backlog never splits one.
            scratch: vec![0.0; samples_for(SCRATCH_MS, plan.rate, device_channels)],
            path,
            device_name,
            plan,
            frames: 0,
            last_callbacks: 0,
            last_progress: Instant::now(),
            stall_warned: false,
        })
    }

    /// The next 10 ms 48 kHz frame, waiting at most `timeout`; `None` on timeout
    /// or, at once, when the stream has stopped (see [`Self::failure`]).
    pub fn read_frame(&mut self, timeout: Duration) -> Option<AudioFrame> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(frame) = self.path.pop_frame() {
                self.frames += 1;
                return Some(frame);
            }
            if self.pull() {
                continue;
            }
            if self.shared.is_stopped() {
                return None;
            }
            self.watch_for_stall();
            let now = Instant::now();
            let nap = match deadline {
                Some(d) if now >= d => return None,
                Some(d) => (d - now).min(POLL),
                None => POLL,
            };
            std::thread::sleep(nap);
        }
    }

    /// Moves what the callback has captured into the conversion path; false if
    /// there was nothing.
    fn pull(&mut self) -> bool {
        let channels = usize::from(self.plan.channels);
        let max_backlog = samples_for(MAX_BACKLOG_MS, self.plan.rate, channels);
        let backlog = self.ring.occupied_len();
        if backlog > max_backlog {
            let keep = samples_for(KEEP_BACKLOG_MS, self.plan.rate, channels);
            let excess = (backlog - keep) / channels * channels;
            let skipped = self.ring.skip(excess);
            self.path.skipped((skipped / channels) as u64);
            StreamShared::count(&self.shared.overruns);
            tracing::debug!(
                device = %self.device_name,
                skipped_ms = skipped as u64 * 1000 / (u64::from(self.plan.rate) * channels as u64),
                "microphone reader fell behind; skipped old audio"
            );
        }
        let n = self.ring.pop_slice(&mut self.scratch);
        if n == 0 {
            return false;
        }
        self.path.push(&self.scratch[..n]);
        true
    }

    fn watch_for_stall(&mut self) {
        let callbacks = StreamShared::get(&self.shared.callbacks);
        if callbacks != self.last_callbacks {
            self.last_callbacks = callbacks;
            self.last_progress = Instant::now();
            self.stall_warned = false;
        } else if !self.stall_warned && self.last_progress.elapsed() >= STALL_WARNING {
            self.stall_warned = true;
            tracing::warn!(
                device = %self.device_name,
                "microphone has delivered no audio for 2 s; it may be gone or suspended"
            );
        }
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

    /// The format the device runs at (before conversion to 48 kHz).
    pub fn device_format(&self) -> StreamFormat {
        self.plan.describe()
    }

    /// Delay added by resampling, if any.
    pub fn conversion_delay(&self) -> Duration {
        Duration::from_secs_f64(
            self.path.delay_frames() as f64 / f64::from(crate::frame::SAMPLE_RATE),
        )
    }

    /// Why the device stopped or disappeared, once it has. After a disappearance
    /// PulseAudio may keep the stream running on another device; reopen to choose.
    pub fn failure(&self) -> Option<AudioIoError> {
        self.shared.failure()
    }
}

/// Interleaved samples in `ms` milliseconds, rounded to whole frames, at least one frame.
pub(crate) fn samples_for(ms: u32, rate: u32, channels: usize) -> usize {
    let frames = (u64::from(rate) * u64::from(ms) / 1000).max(1);
    usize::try_from(frames).unwrap_or(usize::MAX / 4) * channels.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::samples_for;

    #[test]
    fn sample_counts() {
        assert_eq!(samples_for(10, 48_000, 2), 960);
        assert_eq!(samples_for(10, 44_100, 1), 441);
        assert_eq!(samples_for(0, 48_000, 2), 2);
    }
}
