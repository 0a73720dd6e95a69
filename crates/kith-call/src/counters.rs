//! Per-peer counters the media threads bump and the freeze rule; the
//! driver reads them every second (the published shapes are kith-call-core's).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Counters of what one remote peer sent us. Written by that peer's receive
/// threads, read by the engine's stats tick.
#[derive(Debug, Default)]
pub struct ReceiveCounters {
    pub video_packets: AtomicU64,
    pub video_bytes: AtomicU64,
    pub frames_decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    pub freezes: AtomicU64,
    /// Time spent frozen, ms (the W3C `totalFreezesDuration`).
    pub freeze_ms: AtomicU64,
    /// The longest single freeze, ms.
    pub longest_freeze_ms: AtomicU64,
    /// The video playout delay now, ms (see `media::playout`).
    pub playout_delay_ms: AtomicU64,
    /// PLI we sent (the decoder needed a keyframe).
    pub keyframe_requests: AtomicU64,
    /// PLI/FIR the peer sent us for our video.
    pub keyframe_requests_received: AtomicU64,
    pub audio_packets: AtomicU64,
    pub audio_bytes: AtomicU64,
    /// Set once, by the first video packet (where the first frame's time
    /// goes: before it, connecting and the sender's encoder; after it, the
    /// keyframe's transfer and decoding).
    first_video_packet: OnceLock<Instant>,
    /// Set once, by the first decoded frame.
    first_frame: Mutex<Option<Instant>>,
    /// Glass-to-glass latencies (ms) from the latency strip; the stats tick
    /// drains them into the peer's history.
    latencies: Mutex<Vec<u32>>,
}

impl ReceiveCounters {
    /// A decoded frame reached the sinks (at its playout time), with its
    /// glass-to-glass latency there.
    pub fn frame_decoded(&self, latency_ms: Option<u32>) {
        self.frames_decoded.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_frame.lock()
            && first.is_none()
        {
            *first = Some(Instant::now());
        }
        if let Some(latency) = latency_ms
            && let Ok(mut latencies) = self.latencies.lock()
        {
            latencies.push(latency);
        }
    }

    /// A video RTP packet arrived.
    pub fn video_packet(&self) {
        self.video_packets.fetch_add(1, Ordering::Relaxed);
        self.first_video_packet.get_or_init(Instant::now);
    }

    pub fn first_video_packet(&self) -> Option<Instant> {
        self.first_video_packet.get().copied()
    }

    pub fn first_frame(&self) -> Option<Instant> {
        self.first_frame.lock().ok().and_then(|first| *first)
    }

    pub fn take_latencies(&self) -> Vec<u32> {
        self.latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// The W3C `freezeCount` rule: a gap between rendered frames longer than
/// max(3 x the mean frame duration, mean + 150 ms), the mean over recent
/// frames, is a freeze.
#[derive(Debug, Default)]
pub struct FreezeDetector {
    last: Option<Instant>,
    recent: VecDeque<Duration>,
}

impl FreezeDetector {
    const WINDOW: usize = 30;

    /// A frame was rendered at `at`; the gap before it when that was a
    /// freeze.
    pub fn frame(&mut self, at: Instant) -> Option<Duration> {
        let last = self.last.replace(at)?;
        let gap = at.saturating_duration_since(last);
        let frozen = if self.recent.len() >= 5 {
            let mean = self.recent.iter().sum::<Duration>() / self.recent.len() as u32;
            gap > (mean * 3).max(mean + Duration::from_millis(150))
        } else {
            false
        };
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(gap);
        frozen.then_some(gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_frames_do_not_freeze_and_a_long_gap_does() {
        let mut detector = FreezeDetector::default();
        let start = Instant::now();
        let mut at = start;
        for _ in 0..20 {
            at += Duration::from_millis(33);
            assert!(detector.frame(at).is_none());
        }
        // 150 ms: under mean + 150 ms (183 ms), not a freeze.
        at += Duration::from_millis(150);
        assert!(detector.frame(at).is_none());
        at += Duration::from_millis(33);
        detector.frame(at);
        at += Duration::from_millis(400);
        assert_eq!(detector.frame(at), Some(Duration::from_millis(400)));
    }
}
