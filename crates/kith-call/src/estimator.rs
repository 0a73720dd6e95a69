//! The bandwidth estimator the congestion-control interceptor runs: GCC's
//! delay half ([`delay`], with the gain webrtc-rs leaves out) and our own
//! loss half ([`loss`]), the lower of the two, with
//! what they see logged once a second (target `kith_call::estimator` at
//! debug) so a collapsing estimate can be told apart: the delay half or the
//! loss half, and the loss it measured.

mod aimd;
#[cfg(test)]
mod closed_loop_tests;
mod delay;
mod loss;
mod trendline;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, PacketReport};
use tracing::debug;

const LOG_EVERY: Duration = Duration::from_secs(1);
/// A fall of the estimate past this share in one feedback is logged when
/// it happens: the once-a-second log hid when a cap was first seen.
const CUT_LOGGED: f64 = 0.8;

/// What the chain is told is this many times GCC's estimate. webrtc-rs's
/// pacer releases at exactly the target it hears, so an encoder's overshoot
/// (a keyframe, retransmissions) queues behind it for seconds; Chromium
/// paces at 2.5× its estimate for that reason. The congestion controller
/// hands the chain only this figure, so the pacer's retransmission budget
/// divides it back ([`estimate_from_target`]); the stats and the encoder
/// policy read the estimate itself from [`SharedEstimate`].
pub const PACING_FACTOR: f64 = 2.5;

/// The most of the estimate that resends take from the encoder's budget.
/// At a cap's onset the resend storm alone ran past the whole estimate and
/// left the encoder at its floor, and the smallest picture size, for the
/// seconds the size ladder takes to climb back.
const MAX_RESEND_SHARE: f64 = 0.5;

/// The bandwidth estimate behind a target the chain published.
pub fn estimate_from_target(target_bps: f64) -> f64 {
    target_bps / PACING_FACTOR
}

/// What one connection's chain knows of its send rate, for the encoder
/// policy to read whenever it likes: the estimate, written by the
/// estimator, and what retransmissions are taking of it, written by the
/// pacer. The chain publishes its figures only through the peer
/// connection's stats, which cost a round through webrtc-rs's driver; read
/// once a second they left the encoder a second behind a cap that had
/// already filled the link's queue.
#[derive(Debug, Clone, Default)]
pub struct SharedEstimate(Arc<Rates>);

#[derive(Debug, Default)]
struct Rates {
    estimate_bps: AtomicU64,
    resent_bps: AtomicU64,
}

impl SharedEstimate {
    /// Bits/s, or `None` before the first feedback.
    pub fn estimate(&self) -> Option<f64> {
        let bits = self.0.estimate_bps.load(Ordering::Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }

    /// What the encoder may spend: the estimate less what retransmissions
    /// are spending, as libwebrtc takes its protection overhead out of the
    /// encoder's target. Without it, resends on top of a video that already
    /// fills a capped link kept it overfull for seconds: loss, more resends
    /// and keyframe requests fed each other.
    /// The resends take at most [`MAX_RESEND_SHARE`] of it.
    pub fn for_encoder(&self) -> Option<f64> {
        let resent = f64::from_bits(self.0.resent_bps.load(Ordering::Relaxed));
        self.estimate()
            .map(|estimate| estimate - resent.min(estimate * MAX_RESEND_SHARE))
    }

    fn set_estimate(&self, bps: f64) {
        self.0.estimate_bps.store(bps.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn set_resent(&self, bps: f64) {
        self.0
            .resent_bps
            .store(bps.max(0.0).to_bits(), Ordering::Relaxed);
    }
}

pub struct Estimator {
    /// GCC's delay half only: its loss half gives up the link's capacity
    /// to loss the rate does not cause.
    delay: delay::DelayHalf,
    loss: loss::LossHalf,
    shared: SharedEstimate,
    last_log: Option<Instant>,
    reported: usize,
    lost: usize,
}

impl Estimator {
    pub fn new(start_bps: f64, min_bps: f64, max_bps: f64, shared: SharedEstimate) -> Self {
        Self {
            delay: delay::DelayHalf::new(start_bps, min_bps, max_bps),
            loss: loss::LossHalf::new(start_bps, min_bps, max_bps),
            shared,
            last_log: None,
            reported: 0,
            lost: 0,
        }
    }

    /// The lower of the two halves (each kept within the bounds it was
    /// made with).
    fn estimate(&self) -> f64 {
        self.delay.target().min(self.loss.target())
    }
}

impl BandwidthEstimator for Estimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        let before = self.estimate();
        self.delay.update(now, reports);
        let lost = reports.iter().filter(|r| !r.arrived).count();
        self.loss
            .update(now, lost, reports.len(), self.delay.delivered());
        self.shared.set_estimate(self.estimate());
        if self.estimate() < before * CUT_LOGGED {
            debug!(
                from_bps = before as u64,
                delay_bps = self.delay.target() as u64,
                loss_bps = self.loss.target() as u64,
                delivered_bps = self.delay.delivered().map(|d| d as u64),
                lost,
                reported = reports.len(),
                "estimate cut"
            );
        }
        self.reported += reports.len();
        self.lost += lost;
        if self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            debug!(
                target_bps = self.estimate() as u64,
                delay_bps = self.delay.target() as u64,
                delay_usage = ?self.delay.usage(),
                link_capacity_bps = self.delay.capacity().map(|c| c as u64),
                delivered_bps = self.delay.delivered().map(|d| d as u64),
                loss_bps = self.loss.target() as u64,
                inherent_loss = self.loss.inherent(),
                reported = self.reported,
                lost = self.lost,
                "estimate"
            );
            self.last_log = Some(now);
            self.reported = 0;
            self.lost = 0;
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.estimate() * PACING_FACTOR
    }

    fn stats(&self) -> EstimatorStats {
        // Non-exhaustive: built field by field.
        let mut stats = EstimatorStats::default();
        stats.delay_based_bitrate = Some(self.delay.target());
        stats.loss_based_bitrate = Some(self.loss.target());
        stats.packet_loss = self.loss.average();
        stats
    }
}
