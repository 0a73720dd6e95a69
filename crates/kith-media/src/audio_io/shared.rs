//! State shared between a device's callbacks and the handle that owns the stream.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::error::{AudioIoError, Direction};

/// Counters are plain atomics so the data callback never takes a lock; the
/// failure slot has a mutex because only the error callback and the owner touch it.
#[derive(Debug)]
pub(crate) struct StreamShared {
    device: String,
    direction: Direction,
    pub(crate) overruns: AtomicU64,
    pub(crate) underruns: AtomicU64,
    pub(crate) callbacks: AtomicU64,
    /// The stream itself has ended; no more audio will come.
    stopped: AtomicBool,
    /// A failure has been recorded (the stream may still run, e.g. moved elsewhere).
    flagged: AtomicBool,
    failure: Mutex<Option<AudioIoError>>,
}

impl StreamShared {
    pub(crate) fn new(device: &str, direction: Direction) -> Self {
        Self {
            device: device.to_owned(),
            direction,
            overruns: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            callbacks: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            flagged: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Error callback: glitches are counted, anything that ends the stream is kept
    /// for [`Self::failure`] so the owner stops waiting on a dead device.
    pub(crate) fn on_error(&self, err: &cpal::Error) {
        use cpal::ErrorKind as K;
        match err.kind() {
            K::Xrun => match self.direction {
                Direction::Input => Self::count(&self.overruns),
                Direction::Output => Self::count(&self.underruns),
            },
            K::RealtimeDenied => {
                tracing::info!(device = %self.device, "no real-time priority for the audio thread")
            }
            K::DeviceChanged => {
                tracing::info!(device = %self.device, error = %err, "audio route changed")
            }
            K::DeviceBusy => {
                tracing::warn!(device = %self.device, error = %err, "audio device busy")
            }
            _ => {
                tracing::warn!(
                    device = %self.device,
                    direction = %self.direction,
                    error = %err,
                    "audio device failed"
                );
                let mapped = AudioIoError::from_cpal(&self.device, err);
                let lost = match mapped {
                    e @ AudioIoError::DeviceLost { .. } => e,
                    other => AudioIoError::DeviceLost {
                        device: self.device.clone(),
                        reason: other.to_string(),
                    },
                };
                self.record(lost);
                self.stopped.store(true, Ordering::Release);
            }
        }
    }

    /// The device vanished from the backend's list while our stream may live on
    /// (PulseAudio moves orphaned streams to another device).
    pub(crate) fn device_gone(&self) {
        tracing::warn!(
            device = %self.device,
            direction = %self.direction,
            "audio device disappeared; the sound server may have moved the stream elsewhere"
        );
        self.record(AudioIoError::DeviceLost {
            device: self.device.clone(),
            reason: "it was removed; audio may now go to another device".to_owned(),
        });
    }

    fn record(&self, err: AudioIoError) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(err);
        self.flagged.store(true, Ordering::Release);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn failure(&self) -> Option<AudioIoError> {
        if !self.flagged.load(Ordering::Acquire) {
            return None;
        }
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn xruns_count_by_direction() {
        let input = StreamShared::new("mic", Direction::Input);
        input.on_error(&cpal::Error::new(cpal::ErrorKind::Xrun));
        assert_eq!(StreamShared::get(&input.overruns), 1);
        assert!(!input.is_stopped());
        assert!(input.failure().is_none());

        let output = StreamShared::new("spk", Direction::Output);
        output.on_error(&cpal::Error::new(cpal::ErrorKind::Xrun));
        assert_eq!(StreamShared::get(&output.underruns), 1);
    }

    #[test]
    fn fatal_error_is_kept_first_wins() {
        let s = StreamShared::new("spk", Direction::Output);
        assert!(s.failure().is_none());
        s.on_error(&cpal::Error::with_message(
            cpal::ErrorKind::DeviceNotAvailable,
            "unplugged",
        ));
        s.on_error(&cpal::Error::with_message(
            cpal::ErrorKind::BackendError,
            "later",
        ));
        assert!(s.is_stopped());
        match s.failure() {
            Some(AudioIoError::DeviceLost { device, reason }) => {
                assert_eq!(device, "spk");
                assert!(reason.contains("unplugged"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn vanished_device_is_reported_but_not_stopped() {
        let s = StreamShared::new("mic", Direction::Input);
        s.device_gone();
        assert!(!s.is_stopped());
        assert!(matches!(s.failure(), Some(AudioIoError::DeviceLost { .. })));
    }
}
