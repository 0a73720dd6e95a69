//! The overuse detector of the delay half: libwebrtc's
//! `TrendlineEstimator`, in place of webrtc-rs's Kalman filter and
//! `OveruseDetector`.
//!
//! webrtc-rs filters the delay gradients with a Kalman filter whose gain
//! is about 0.03, and its adaptive threshold falls at 0.00018 a
//! millisecond. Behind a 500 kbit/s cap that was too slow both ways: the
//! filtered trend stayed over the threshold for a second after the queue
//! had stopped growing, so the rate was cut again and again while the
//! queue drained (to 120 kbit/s under a 500 kbit/s cap), and once noise
//! had lifted the threshold it stayed up and a slowly filling queue went
//! unseen until it overflowed. libwebrtc fits a line to the last 20
//! smoothed accumulated delays, which follows a queue that stops growing
//! within those 20 groups, and lowers its threshold at 0.039 a
//! millisecond. No crate has it (webrtc-rs has the older Kalman design),
//! so it is written here with libwebrtc's constants.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::Usage;

/// Groups the line is fitted over.
const WINDOW: usize = 20;
/// Smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// The slope is multiplied by this...
const GAIN: f64 = 4.0;
/// ...and by the number of gradients seen, at most this many.
const MAX_DELTAS: u32 = 60;
/// Over the threshold for this long (and two gradients) is overuse.
const OVERUSE_MS: f64 = 10.0;
const THRESHOLD_START_MS: f64 = 12.5;
const THRESHOLD_UP: f64 = 0.0087;
const THRESHOLD_DOWN: f64 = 0.039;
/// A trend this far over the threshold is a spike, not a reason to adapt.
const MAX_ADAPT_OFFSET_MS: f64 = 15.0;
const MAX_ADAPT_STEP_MS: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Trendline {
    first: Option<Instant>,
    /// When the group before the latest was sent.
    previous: Option<Instant>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (ms since the first group, smoothed delay), the last [`WINDOW`].
    history: VecDeque<(f64, f64)>,
    deltas: u32,
    trend: f64,
    threshold_ms: f64,
    last_threshold_update: Option<Instant>,
    over_ms: Option<f64>,
    over_count: u32,
    usage: Usage,
}

impl Default for Trendline {
    fn default() -> Self {
        Self {
            first: None,
            previous: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            history: VecDeque::with_capacity(WINDOW + 1),
            deltas: 0,
            trend: 0.0,
            threshold_ms: THRESHOLD_START_MS,
            last_threshold_update: None,
            over_ms: None,
            over_count: 0,
            usage: Usage::Normal,
        }
    }
}

impl Trendline {
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// One group's delay gradient (`delta_ms`: how much later than the
    /// group before it arrived, against how much later it was sent), the
    /// group sent at `at`.
    pub fn update(&mut self, at: Instant, delta_ms: f64) -> Usage {
        let since_previous_ms = self.previous.map_or(0.0, |previous| {
            at.saturating_duration_since(previous).as_secs_f64() * 1000.0
        });
        self.previous = Some(at);
        self.deltas = (self.deltas + 1).min(1000);
        let first = *self.first.get_or_insert(at);
        self.accumulated_ms += delta_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        let x = at.saturating_duration_since(first).as_secs_f64() * 1000.0;
        self.history.push_back((x, self.smoothed_ms));
        if self.history.len() > WINDOW {
            self.history.pop_front();
        }
        let previous_trend = self.trend;
        if self.history.len() == WINDOW
            && let Some(slope) = fit_slope(&self.history)
        {
            self.trend = slope;
        }
        self.detect(at, previous_trend, since_previous_ms);
        self.usage
    }

    fn detect(&mut self, at: Instant, previous_trend: f64, since_previous_ms: f64) {
        if self.deltas < 2 {
            self.usage = Usage::Normal;
            return;
        }
        let modified = f64::from(self.deltas.min(MAX_DELTAS)) * self.trend * GAIN;
        if modified > self.threshold_ms {
            let over = match self.over_ms {
                None => since_previous_ms / 2.0,
                Some(over) => over + since_previous_ms,
            };
            self.over_ms = Some(over);
            self.over_count += 1;
            if over > OVERUSE_MS && self.over_count > 1 && self.trend >= previous_trend {
                self.over_ms = Some(0.0);
                self.over_count = 0;
                self.usage = Usage::Over;
            }
        } else if modified < -self.threshold_ms {
            self.over_ms = None;
            self.over_count = 0;
            self.usage = Usage::Under;
        } else {
            self.over_ms = None;
            self.over_count = 0;
            self.usage = Usage::Normal;
        }
        self.adapt_threshold(at, modified);
    }

    fn adapt_threshold(&mut self, at: Instant, modified: f64) {
        let last = *self.last_threshold_update.get_or_insert(at);
        self.last_threshold_update = Some(at);
        if modified.abs() > self.threshold_ms + MAX_ADAPT_OFFSET_MS {
            return;
        }
        let gain = if modified.abs() < self.threshold_ms {
            THRESHOLD_DOWN
        } else {
            THRESHOLD_UP
        };
        let step_ms =
            (at.saturating_duration_since(last).as_secs_f64() * 1000.0).min(MAX_ADAPT_STEP_MS);
        self.threshold_ms = (self.threshold_ms
            + gain * (modified.abs() - self.threshold_ms) * step_ms)
            .clamp(6.0, 600.0);
    }
}

/// The least-squares slope of `points`, `None` when they share one x.
fn fit_slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let x_mean = points.iter().map(|p| p.0).sum::<f64>() / n;
    let y_mean = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut numerator, mut denominator) = (0.0, 0.0);
    for &(x, y) in points {
        numerator += (x - x_mean) * (y - y_mean);
        denominator += (x - x_mean) * (x - x_mean);
    }
    (denominator != 0.0).then(|| numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Groups every 33 ms whose gradient is `delta_ms`, `count` of them.
    fn feed(trendline: &mut Trendline, start: Instant, from: u32, count: u32, delta_ms: f64) {
        for i in from..from + count {
            let at = start + Duration::from_millis(u64::from(i) * 33);
            trendline.update(at, delta_ms);
        }
    }

    #[test]
    fn a_steady_path_is_normal() {
        let mut trendline = Trendline::default();
        feed(&mut trendline, Instant::now(), 0, 100, 0.0);
        assert_eq!(trendline.usage(), Usage::Normal);
    }

    #[test]
    fn a_growing_queue_is_overuse_within_a_second() {
        let start = Instant::now();
        let mut trendline = Trendline::default();
        feed(&mut trendline, start, 0, 100, 0.0);
        // 2 ms more queue every group: a link 6 % slower than the sending.
        feed(&mut trendline, start, 100, 30, 2.0);
        assert_eq!(trendline.usage(), Usage::Over);
    }

    #[test]
    fn a_queue_that_stops_growing_is_no_longer_overuse_within_a_second() {
        let start = Instant::now();
        let mut trendline = Trendline::default();
        feed(&mut trendline, start, 0, 100, 0.0);
        feed(&mut trendline, start, 100, 30, 4.0);
        assert_eq!(trendline.usage(), Usage::Over);
        feed(&mut trendline, start, 130, 30, -2.0);
        assert_ne!(trendline.usage(), Usage::Over);
    }
}
