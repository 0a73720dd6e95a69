//! Telling a link that shrank under the call (a cap, a congested hop) from
//! an estimate's usual wobble: a rate under half its highest of the last
//! second. The encoder policy then picks sizes warily and the pacer lets
//! the queue left standing at the bottleneck drain.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A rate under this share of its highest in the last [`FALL_WINDOW`]...
const SHARP_FALL: f64 = 0.5;
const FALL_WINDOW: Duration = Duration::from_secs(1);
/// Rates remembered for that (estimates come every 100 ms, targets with
/// each feedback).
const MAX_RECENT: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct FallWatch {
    recent: VecDeque<(Instant, f64)>,
}

impl FallWatch {
    /// A new rate at `now`: whether it fell sharply. A fall is told once:
    /// the rates after it are measured from it.
    pub fn fell(&mut self, now: Instant, rate: f64) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= FALL_WINDOW)
            || self.recent.len() >= MAX_RECENT
        {
            self.recent.pop_front();
        }
        let peak = self
            .recent
            .iter()
            .map(|(_, rate)| *rate)
            .fold(0.0, f64::max);
        let fell = rate < peak * SHARP_FALL;
        if fell {
            self.recent.clear();
        }
        self.recent.push_back((now, rate));
        fell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fall_under_half_within_a_second_is_sharp_a_slower_one_not() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut watch = FallWatch::default();
        assert!(!watch.fell(at(0), 2_000_000.0));
        assert!(!watch.fell(at(300), 1_200_000.0));
        assert!(watch.fell(at(600), 900_000.0));
        // Told once, not again while the rate stays down.
        assert!(!watch.fell(at(700), 880_000.0));
        // A second fall from there is one.
        assert!(watch.fell(at(800), 400_000.0));
        // Down by half again, but over more than a second.
        let mut watch = FallWatch::default();
        for (ms, rate) in [(0, 2_000_000.0), (700, 1_500_000.0), (1_400, 950_000.0)] {
            assert!(!watch.fell(at(ms), rate), "{rate} at {ms} ms");
        }
    }

    #[test]
    fn what_it_remembers_is_bounded() {
        let start = Instant::now();
        let mut watch = FallWatch::default();
        for n in 0..1_000 {
            watch.fell(start, f64::from(n));
        }
        assert!(watch.recent.len() <= MAX_RECENT);
    }
}
