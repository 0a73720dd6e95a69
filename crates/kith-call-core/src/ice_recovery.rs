//! When a connection's path breaks (ICE disconnected or failed) while
//! signaling is up: wait a moment (a blip often heals by itself), then
//! renegotiate with fresh ICE credentials, again every few seconds, and give
//! the connection up when nothing has worked for long enough.

use std::time::{Duration, Instant};

/// A break shorter than this heals by itself more often than not.
pub const RESTART_AFTER: Duration = Duration::from_secs(2);
/// Between restarts (or postponements while one cannot be made).
pub const RETRY_EVERY: Duration = Duration::from_secs(5);
/// No path for this long: the peer is gone.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct IceRecovery {
    trouble_since: Option<Instant>,
    /// The last restart, or the last time one was due but could not be made.
    last_attempt: Option<Instant>,
    restarts: u32,
}

/// What to do about a broken path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Wait,
    Restart,
    GiveUp,
}

impl IceRecovery {
    pub fn trouble(&mut self, now: Instant) {
        self.trouble_since.get_or_insert(now);
    }

    pub fn healthy(&mut self) {
        self.trouble_since = None;
        self.last_attempt = None;
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    fn due(&self, since: Instant) -> Instant {
        match self.last_attempt {
            None => since + RESTART_AFTER,
            Some(at) => at + RETRY_EVERY,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let since = self.trouble_since?;
        Some(self.due(since).min(since + GIVE_UP_AFTER))
    }

    /// `can_restart`: signaling is up and no negotiation is under way.
    pub fn step(&mut self, now: Instant, can_restart: bool) -> Step {
        let Some(since) = self.trouble_since else {
            return Step::Wait;
        };
        if now >= since + GIVE_UP_AFTER {
            return Step::GiveUp;
        }
        if now < self.due(since) {
            return Step::Wait;
        }
        self.last_attempt = Some(now);
        if can_restart {
            self.restarts += 1;
            Step::Restart
        } else {
            Step::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_after_a_pause_retries_and_gives_up() {
        let mut ice = IceRecovery::default();
        let t0 = Instant::now();
        ice.trouble(t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(ice.step(at(1), true), Step::Wait);
        assert_eq!(ice.step(at(2), true), Step::Restart);
        assert_eq!(ice.step(at(3), true), Step::Wait);
        assert_eq!(ice.next_deadline(), Some(at(7)));
        // Due, but a negotiation is under way: postponed, not counted.
        assert_eq!(ice.step(at(7), false), Step::Wait);
        assert_eq!(ice.step(at(12), true), Step::Restart);
        assert_eq!(ice.restarts(), 2);
        assert_eq!(ice.step(at(30), true), Step::GiveUp);
        ice.healthy();
        assert_eq!(ice.next_deadline(), None);
        assert_eq!(ice.step(at(40), true), Step::Wait);
    }
}
