//! The delay half of the bandwidth estimate: GCC's (draft-ietf-rmcat-gcc
//! §5.3–5.5) as libwebrtc runs it. webrtc-rs's `ArrivalGroupAccumulator`
//! groups the packets sent within 5 ms of each other and yields each
//! group's delay gradient; the rest is libwebrtc's, written here because webrtc-rs's
//! versions (a Kalman filter without the gradient-count gain, a threshold
//! that hardly falls, a controller without a link capacity estimate, a
//! received rate measured by our clock) let the estimate sit 20-50 % over
//! a 500 kbit/s cap with its queue full: the trend and the overuse test
//! ([`super::trendline`]), the rate controller ([`super::aimd`]) and the
//! rate the far end received by its own clock ([`Delivered`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{ArrivalGroupAccumulator, PacketReport, Usage};

use super::aimd::Aimd;
use super::trendline::Trendline;

/// The delivered rate is measured over this much of the far end's clock.
const DELIVERED_WINDOW: Duration = Duration::from_millis(500);
/// Arrivals spanning less than this give no rate yet.
const DELIVERED_MIN_SPAN: Duration = Duration::from_millis(100);
/// The most arrivals the window holds, whatever times the far end reports
/// (a window of 4 Mbit/s holds about 200).
const DELIVERED_MAX_ARRIVALS: usize = 4096;

/// The rate the far end received, by the arrival times it reported.
/// webrtc-rs's `RateCalculator`, fed the time each feedback reached us,
/// held six feedbacks' packets in its 500 ms window over a span of five
/// intervals and read a fifth high: a back-off to 0.85 of it landed on a
/// 500 kbit/s cap, not under it, and the queue never drained. Each arrival
/// counts with the time since the arrival before it in the same feedback:
/// when feedback is lost (the return path is as congested), the packets it
/// covered come back as lost, and counting the time between two feedbacks
/// read a 500 kbit/s cap as 200. Arrival times are the far end's word, so
/// the window is bounded by count as well as by time.
#[derive(Debug, Default)]
struct Delivered {
    /// (arrival, bytes, time since the arrival before) in the window.
    arrivals: VecDeque<(Duration, usize, Duration)>,
    bytes: usize,
    span: Duration,
    newest: Duration,
    /// The latest arrival in the feedback being read.
    run_latest: Option<Duration>,
}

impl Delivered {
    fn next_feedback(&mut self) {
        self.run_latest = None;
    }

    fn report(&mut self, report: &PacketReport) {
        let Some(arrival) = report.arrival.filter(|_| report.arrived) else {
            return;
        };
        let (bytes, gap) = match self.run_latest {
            // The first of a feedback: what came before it is unknown.
            None => (0, Duration::ZERO),
            Some(latest) => (report.size, arrival.saturating_sub(latest)),
        };
        self.run_latest = Some(
            self.run_latest
                .map_or(arrival, |latest| latest.max(arrival)),
        );
        self.newest = self.newest.max(arrival);
        self.arrivals.push_back((arrival, bytes, gap));
        self.bytes += bytes;
        self.span += gap;
        while let Some(&(oldest, bytes, gap)) = self.arrivals.front() {
            if oldest.saturating_add(DELIVERED_WINDOW) >= self.newest
                && self.arrivals.len() <= DELIVERED_MAX_ARRIVALS
            {
                break;
            }
            self.arrivals.pop_front();
            self.bytes -= bytes;
            self.span = self.span.saturating_sub(gap);
        }
    }

    /// Bits/s, once the window spans enough time to say.
    fn rate(&self) -> Option<f64> {
        (self.span >= DELIVERED_MIN_SPAN).then(|| self.bytes as f64 * 8.0 / self.span.as_secs_f64())
    }
}

#[cfg(test)]
mod delivered_tests {
    use super::*;

    fn arrived(arrival: Duration) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id: 0,
            rtp_sequence_number: 0,
            is_twcc: true,
            twcc_sequence_number: 0,
            size: 1200,
            arrived: true,
            departure: Instant::now(),
            arrival: Some(arrival),
            ecn: Default::default(),
        }
    }

    #[test]
    fn a_far_end_that_stops_its_clock_does_not_grow_the_window() {
        let mut delivered = Delivered::default();
        for _ in 0..DELIVERED_MAX_ARRIVALS * 3 {
            delivered.report(&arrived(Duration::from_secs(5)));
        }
        assert_eq!(delivered.arrivals.len(), DELIVERED_MAX_ARRIVALS);
    }

    #[test]
    fn a_steady_stream_reads_its_rate() {
        let mut delivered = Delivered::default();
        // 1200 bytes every 10 ms: 960 kbit/s, in feedbacks of ten.
        for i in 0..200u64 {
            if i % 10 == 0 {
                delivered.next_feedback();
            }
            delivered.report(&arrived(Duration::from_millis(i * 10)));
        }
        let rate = delivered.rate().unwrap_or(0.0);
        assert!((rate - 960_000.0).abs() < 1_000.0, "{rate}");
    }
}

pub struct DelayHalf {
    groups: ArrivalGroupAccumulator,
    trendline: Trendline,
    delivered: Delivered,
    control: Aimd,
}

impl DelayHalf {
    pub fn new(initial: f64, min: f64, max: f64) -> Self {
        Self {
            groups: ArrivalGroupAccumulator::default(),
            trendline: Trendline::default(),
            delivered: Delivered::default(),
            control: Aimd::new(initial, min, max),
        }
    }

    pub fn target(&self) -> f64 {
        self.control.target()
    }

    /// The link capacity the controller climbs carefully near, bits/s.
    pub fn capacity(&self) -> Option<f64> {
        self.control.capacity()
    }

    /// What the far end received lately, bits/s.
    pub fn delivered(&self) -> Option<f64> {
        self.delivered.rate()
    }

    pub fn usage(&self) -> Usage {
        self.trendline.usage()
    }

    /// Folds in one feedback packet's reports (in send order) that arrived
    /// at `now`.
    pub fn update(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let mut usage = self.trendline.usage();
        self.delivered.next_feedback();
        for report in reports {
            self.delivered.report(report);
            if let Some(gradient) = self.groups.accumulate(report) {
                usage = self.trendline.update(gradient.at, gradient.delta_ms);
            }
        }
        self.control.update(now, usage, self.delivered.rate());
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
    fn a_queue_growing_behind_a_cap_cuts_under_the_cap_within_a_second() {
        // A queue filling at a quarter of the link's rate; one that fills
        // within a few groups and then overflows shows as loss, which the
        // loss half answers.
        let (target, _) = run(650_000.0, 500_000.0, 1);
        assert!(target < 500_000.0, "{target}");
    }
}
