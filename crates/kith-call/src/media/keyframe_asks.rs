//! When a receiver asks its sender for a keyframe (PLI). A keyframe is
//! several frames' worth of bits, so on a link that is already losing
//! packets (a cap that just appeared) each one adds to the loss that made
//! the decoder ask, and asking every 300 ms kept two peers sending each
//! other keyframes for three seconds. Asks that keep coming back off:
//! each ask soon after the last doubles the wait before the next, and a
//! quiet spell starts over, so a single loss is still answered at once.

use std::time::{Duration, Instant};

/// The shortest wait between asks: a keyframe's round trip on a good link.
pub const FIRST_INTERVAL: Duration = Duration::from_millis(300);
/// The longest: a lost keyframe is asked for again within this.
pub const MAX_INTERVAL: Duration = Duration::from_millis(1200);
/// Asks further apart than this are separate troubles.
pub const CALM: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct KeyframeAsks {
    last: Option<Instant>,
    interval: Duration,
}

impl Default for KeyframeAsks {
    fn default() -> Self {
        Self {
            last: None,
            interval: FIRST_INTERVAL,
        }
    }
}

impl KeyframeAsks {
    /// The decoder wants a keyframe at `now`: true when a PLI goes out.
    pub fn ask(&mut self, now: Instant) -> bool {
        let Some(last) = self.last else {
            self.last = Some(now);
            return true;
        };
        let since = now.saturating_duration_since(last);
        if since < self.interval {
            return false;
        }
        self.interval = if since < CALM {
            (self.interval * 2).min(MAX_INTERVAL)
        } else {
            FIRST_INTERVAL
        };
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Of asks made every 10 ms from `from_ms` to `to_ms`, the times (ms
    /// from `start`) at which a PLI went out.
    fn sent(asks: &mut KeyframeAsks, start: Instant, from_ms: u64, to_ms: u64) -> Vec<u64> {
        (from_ms..to_ms)
            .step_by(10)
            .filter(|ms| asks.ask(start + Duration::from_millis(*ms)))
            .collect()
    }

    #[test]
    fn a_storm_of_asks_backs_off_to_the_longest_interval() {
        let start = Instant::now();
        let mut asks = KeyframeAsks::default();
        let out = sent(&mut asks, start, 0, 6000);
        assert_eq!(out, vec![0, 300, 900, 2100, 3300, 4500, 5700]);
    }

    #[test]
    fn separate_troubles_are_each_answered_at_once() {
        let start = Instant::now();
        let mut asks = KeyframeAsks::default();
        assert_eq!(sent(&mut asks, start, 0, 1000), vec![0, 300, 900]);
        // Quiet for over two seconds: the next trouble starts over.
        assert_eq!(sent(&mut asks, start, 3000, 4000), vec![3000, 3300, 3900]);
        let mut single = KeyframeAsks::default();
        for second in 0..5 {
            let at = start + Duration::from_secs(3 * second);
            assert!(single.ask(at), "ask {second} was held back");
        }
    }
}
