//! The delay half of the bandwidth estimate: GCC's (draft-ietf-rmcat-gcc
//! §5.3–5.5) from webrtc-rs's parts, with the gain webrtc-rs's `Gcc` leaves
//! out.
//!
//! GCC compares the Kalman-filtered delay gradient, multiplied by the
//! number of gradients seen so far (at most 60), against an adaptive
//! threshold of 6–600 ms. libwebrtc and pion both multiply; webrtc-rs 0.21
//! compares the bare gradient. The filter's gain is about 0.03, so a queue
//! that grows by 200 ms moves the bare estimate by 6–8 ms at most, never
//! over the threshold: under a 500 kbit/s cap with a 200 ms queue the delay
//! half never reacted, and only heavy loss, seconds later, cut the rate.
//! The parts (`SlopeEstimator`, `OveruseDetector`, `RateController`) are
//! public, so the multiplication is put back here rather than in a fork.
//!
//! webrtc-rs's `RateController` also remembers the rate of its last
//! decrease for good and climbs additively (12 kbit per step) whenever it
//! is near it, so one decrease would slow every later climb; the ceiling is
//! forgotten after [`CEILING_MEMORY`] without a decrease, as libwebrtc
//! forgets its link capacity estimate.

use std::time::{Duration, Instant};

use rtc::interceptor::{
    OveruseDetector, PacketReport, RateCalculator, RateController, SlopeEstimator, Usage,
};

/// The most gradients the filtered one is multiplied by (libwebrtc's
/// `kMinNumDeltas`).
const MAX_DELTAS: u32 = 60;
/// How long the rate of the last decrease is taken as the link's ceiling.
pub const CEILING_MEMORY: Duration = Duration::from_secs(10);

pub struct DelayHalf {
    slope: SlopeEstimator,
    detector: OveruseDetector,
    received: RateCalculator,
    control: RateController,
    deltas: u32,
    min: f64,
    max: f64,
    last_decrease: Option<Instant>,
}

impl DelayHalf {
    pub fn new(initial: f64, min: f64, max: f64) -> Self {
        Self {
            slope: SlopeEstimator::new(),
            detector: OveruseDetector::new(),
            received: RateCalculator::default(),
            control: RateController::new(initial, min, max),
            deltas: 0,
            min,
            max,
            last_decrease: None,
        }
    }

    pub fn target(&self) -> f64 {
        self.control.target()
    }

    pub fn usage(&self) -> Usage {
        self.detector.usage()
    }

    /// Folds in one feedback packet's reports (in send order) that arrived
    /// at `now`.
    pub fn update(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let mut usage = self.detector.usage();
        for report in reports {
            if report.arrived {
                self.received.add(now, report.size);
            }
            if let Some(trend) = self.slope.accumulate(report) {
                self.deltas = (self.deltas + 1).min(MAX_DELTAS);
                // One gradient says nothing yet (libwebrtc waits for two).
                if self.deltas >= 2 {
                    let modified = trend.estimate_ms * f64::from(self.deltas);
                    usage = self.detector.update(trend.at, modified);
                }
            }
        }
        let received = self.received.rate_bits_per_second(now);
        if self
            .last_decrease
            .is_some_and(|at| now.saturating_duration_since(at) >= CEILING_MEMORY)
        {
            self.control = RateController::new(self.control.target(), self.min, self.max);
            self.last_decrease = None;
        }
        let before = self.control.target();
        let after = self.control.update(now, usage, received);
        if after < before {
            self.last_decrease = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender at `rate_bps` of 1200-byte packets over a path that
    /// delivers at most `capacity_bps` behind a queue that drops what would
    /// wait over 200 ms (a tc tbf with `latency 200ms`),
    /// each packet fed back in the first 100 ms feedback after it arrived,
    /// for `secs`; the target at the end.
    fn run(rate_bps: f64, capacity_bps: f64, secs: u64) -> (f64, DelayHalf) {
        let start = Instant::now();
        let mut half = DelayHalf::new(rate_bps, 100_000.0, 10_000_000.0);
        let gap = Duration::from_secs_f64(1200.0 * 8.0 / rate_bps);
        let service = Duration::from_secs_f64(1200.0 * 8.0 / capacity_bps);
        let mut link_free = start;
        let mut sent = start;
        let mut batch = Vec::new();
        let mut next_feedback = start + Duration::from_millis(100);
        let mut sequence = 0u16;
        while sent < start + Duration::from_secs(secs) {
            let queued = link_free.saturating_duration_since(sent);
            let dropped = queued > Duration::from_millis(200);
            let arrival = link_free.max(sent) + service + Duration::from_millis(20);
            if !dropped {
                link_free = link_free.max(sent) + service;
            }
            batch.push(PacketReport {
                ssrc: 1,
                id: u64::from(sequence),
                rtp_sequence_number: sequence,
                is_twcc: true,
                twcc_sequence_number: sequence,
                size: 1200,
                arrived: !dropped,
                departure: sent,
                arrival: (!dropped).then(|| arrival - start),
                ecn: Default::default(),
            });
            sequence = sequence.wrapping_add(1);
            sent += gap;
            if sent >= next_feedback {
                let arrived = batch
                    .iter()
                    .take_while(|r| r.arrival.is_none_or(|a| start + a <= next_feedback))
                    .count();
                let reported: Vec<PacketReport> = batch.drain(..arrived).collect();
                half.update(next_feedback, &reported);
                next_feedback += Duration::from_millis(100);
            }
        }
        (half.target(), half)
    }

    #[test]
    fn a_path_with_room_is_left_alone() {
        let (target, half) = run(1_000_000.0, 5_000_000.0, 10);
        assert!(target >= 1_000_000.0, "{target}");
        assert_ne!(half.usage(), Usage::Over);
    }

    #[test]
    fn a_queue_growing_behind_a_cap_cuts_to_the_cap_within_a_second() {
        let (target, _) = run(2_000_000.0, 500_000.0, 1);
        assert!(target < 600_000.0, "{target}");
    }
}
