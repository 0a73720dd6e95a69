//! The delay half's rate controller: libwebrtc's `AimdRateControl` with its
//! link capacity estimate, which webrtc-rs's `RateController` simplifies
//! away.
//!
//! webrtc-rs remembers the rate of the last decrease as a ceiling and climbs
//! additively by a fixed 12 kbit per step near it, and multiplicatively
//! anywhere else, however far above what the link has been seen to carry.
//! libwebrtc keeps a running estimate of the link's capacity (the rates
//! delivered at each overuse, with their spread) and climbs additively while
//! it has one, one packet per response time; it forgets it only when the
//! delivered rate leaves mean ± 3 deviations. It never raises the target
//! past 1.5× what was delivered, so an encoder that sent less than it was
//! allowed does not leave an estimate that a climb of the picture size then
//! finds the link cannot carry. No crate has it apart from webrtc-rs's
//! version, so it is written here.

use std::time::{Duration, Instant};

use rtc::interceptor::Usage;

/// What an overuse leaves of the delivered rate.
const BETA: f64 = 0.85;
/// Growth a second while the link's capacity is unknown.
const MULTIPLICATIVE: f64 = 1.08;
/// The least a multiplicative step adds, bits/s.
const MIN_MULTIPLICATIVE_STEP: f64 = 1_000.0;
/// The least an additive climb adds a second, bits/s.
const MIN_ADDITIVE_PER_SECOND: f64 = 4_000.0;
/// The round trip assumed (feedback carries none to the estimator):
/// libwebrtc's before it has measured one, and the most it waits between
/// two decreases.
const ASSUMED_RTT: Duration = Duration::from_millis(200);
/// A target never climbs past this many times the delivered rate...
const DELIVERED_HEADROOM: f64 = 1.5;
/// ...plus this, bits/s.
const DELIVERED_SLACK: f64 = 10_000.0;
const FRAME_RATE: f64 = 30.0;
const PACKET_BITS: f64 = 1200.0 * 8.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Hold,
    Increase,
}

/// The link's capacity as the delivered rates at overuse, kbit/s, with a
/// normalised variance (libwebrtc's `LinkCapacityEstimator`).
#[derive(Debug, Clone, Copy)]
struct LinkCapacity {
    estimate_kbps: Option<f64>,
    deviation: f64,
}

impl Default for LinkCapacity {
    fn default() -> Self {
        Self {
            estimate_kbps: None,
            deviation: Self::MIN_DEVIATION,
        }
    }
}

impl LinkCapacity {
    const ALPHA: f64 = 0.05;
    const MIN_DEVIATION: f64 = 0.4;
    const MAX_DEVIATION: f64 = 2.5;

    fn spread(&self, estimate: f64) -> f64 {
        (self.deviation * estimate).sqrt()
    }

    fn upper_bound(&self) -> f64 {
        self.estimate_kbps
            .map_or(f64::INFINITY, |e| (e + 3.0 * self.spread(e)) * 1000.0)
    }

    fn lower_bound(&self) -> f64 {
        self.estimate_kbps
            .map_or(0.0, |e| (e - 3.0 * self.spread(e)).max(0.0) * 1000.0)
    }

    fn on_overuse(&mut self, delivered_bps: f64) {
        let sample = delivered_bps / 1000.0;
        let estimate = match self.estimate_kbps {
            None => sample,
            Some(e) => (1.0 - Self::ALPHA) * e + Self::ALPHA * sample,
        };
        let error = estimate - sample;
        let deviation =
            (1.0 - Self::ALPHA) * self.deviation + Self::ALPHA * error * error / estimate.max(1.0);
        self.deviation = deviation.clamp(Self::MIN_DEVIATION, Self::MAX_DEVIATION);
        self.estimate_kbps = Some(estimate);
    }

    fn reset(&mut self) {
        self.estimate_kbps = None;
    }
}

#[derive(Debug, Clone)]
pub struct Aimd {
    target: f64,
    min: f64,
    max: f64,
    state: State,
    capacity: LinkCapacity,
    last_change: Option<Instant>,
}

impl Aimd {
    pub fn new(initial: f64, min: f64, max: f64) -> Self {
        Self {
            target: initial.clamp(min, max),
            min,
            max,
            state: State::Hold,
            capacity: LinkCapacity::default(),
            last_change: None,
        }
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    /// The link capacity estimate, bits/s, while there is one.
    pub fn capacity(&self) -> Option<f64> {
        self.capacity.estimate_kbps.map(|kbps| kbps * 1000.0)
    }

    /// What the detector says at `now`, and the rate the far end was
    /// delivered (`None` until enough has arrived to say).
    pub fn update(&mut self, now: Instant, usage: Usage, delivered: Option<f64>) {
        let Some(delivered) = delivered else {
            return;
        };
        match usage {
            Usage::Over => {
                if self.time_to_reduce(now, delivered) {
                    self.decrease(now, delivered);
                }
            }
            Usage::Under => self.state = State::Hold,
            Usage::Normal => {
                if self.state == State::Hold {
                    // The climb is timed from here, not from the decrease.
                    self.last_change = Some(now);
                    self.state = State::Increase;
                }
                self.increase(now, delivered);
            }
        }
    }

    /// A decrease is given a round trip to take effect, unless the link
    /// already delivers under half the target.
    fn time_to_reduce(&self, now: Instant, delivered: f64) -> bool {
        self.last_change
            .is_none_or(|at| now.saturating_duration_since(at) >= ASSUMED_RTT)
            || delivered < 0.5 * self.target
    }

    fn decrease(&mut self, now: Instant, delivered: f64) {
        let mut decreased = delivered * BETA;
        if decreased > 5_000.0 {
            decreased -= 5_000.0;
        }
        if decreased > self.target
            && let Some(capacity) = self.capacity()
        {
            decreased = BETA * capacity;
        }
        if decreased < self.target {
            self.target = decreased.clamp(self.min, self.max);
        }
        if delivered < self.capacity.lower_bound() {
            self.capacity.reset();
        }
        self.capacity.on_overuse(delivered);
        self.state = State::Hold;
        self.last_change = Some(now);
    }

    fn increase(&mut self, now: Instant, delivered: f64) {
        if delivered > self.capacity.upper_bound() {
            self.capacity.reset();
        }
        let since = self
            .last_change
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let limit = DELIVERED_HEADROOM * delivered + DELIVERED_SLACK;
        if self.target < limit {
            let increased = if self.capacity.estimate_kbps.is_some() {
                self.target + self.additive_per_second() * since.as_secs_f64()
            } else {
                let growth = MULTIPLICATIVE.powf(since.as_secs_f64().min(1.0)) - 1.0;
                self.target + (self.target * growth).max(MIN_MULTIPLICATIVE_STEP)
            };
            self.target = increased.min(limit).clamp(self.min, self.max);
        }
        self.last_change = Some(now);
    }

    /// One packet per response time (a round trip and 100 ms), the packet
    /// being a frame's share at this rate.
    fn additive_per_second(&self) -> f64 {
        let frame_bits = self.target / FRAME_RATE;
        let packets = (frame_bits / PACKET_BITS).ceil().max(1.0);
        let packet_bits = frame_bits / packets;
        let response = ASSUMED_RTT + Duration::from_millis(100);
        (packet_bits / response.as_secs_f64()).max(MIN_ADDITIVE_PER_SECOND)
    }
}
