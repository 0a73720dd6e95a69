//! When each decoded video frame is shown: the playout half of the video
//! jitter buffer (the assembler puts packets in order and waits for
//! repairs; this spaces what comes out).
//!
//! A frame with a lost packet is whole only once the repair is in, a round
//! trip later, and the frames behind it, decoded in order, come out in a
//! burst with it. Shown as they are decoded, the picture stalls and then
//! jumps, and each stall of over ~180 ms at 30 fps is a freeze. Shown at
//! their media time plus a delay that covers how late frames have lately
//! been, they keep their cadence. The delay follows the network: it covers
//! [`COVERED`] of the recent frames' lateness (less the [`TOLERATED`] hitch),
//! so a clean link adds nothing and a lossy one adds a repair's round trip.
//! Covering that whole round trip is what keeps a frame that needs a second
//! repair (a lost resend) to a hitch rather than a freeze. It rises at once
//! and comes down slowly. libwebrtc's jitter estimator and `VCMTiming` play
//! this part in Chromium (with the round trip added once NACKs are in use);
//! written by hand as no crate schedules video playout.
//!
//! No I/O and no clock of its own: the caller passes each frame's arrival
//! and the time, so every rule is unit-tested.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The video RTP clock (every video codec's).
const RTP_HZ: i64 = 90_000;
/// How long the fastest transit is remembered as the path's own delay. A
/// path whose delay rises (a queue filling under a rate cap, a longer
/// route) is followed after this long, so its frames, no later than each
/// other, are not held on top of the queue; one whose delay falls, at once.
/// Frames that waited for nothing come several times a second even at 20 %
/// loss, so the window still sees the path's own delay.
const BASE_WINDOW: Duration = Duration::from_secs(2);
/// Frames whose lateness sets the delay (4 s at 30 fps).
const LATENESS_WINDOW: usize = 120;
/// No frame for this long is an outage, not lateness: the delay cannot
/// cover it, and the burst after it must not teach one. Timing starts over.
const OUTAGE: Duration = Duration::from_secs(1);
/// µs a frame must come ahead of its media time (against the one before)
/// to count as part of a burst.
const BURST_SLACK: i64 = 5_000;
/// The share of recent frames the delay covers; the latest few are shown
/// as soon as they are decoded.
const COVERED: f64 = 0.95;
/// Lateness that needs no delay: scheduling noise, so a clean link keeps
/// its latency. Tolerating more costs more than it saves: at 60 ms, a frame
/// waiting for a second repair (two round trips and a margin, 240–280 ms
/// at 100 ms) came 150 ms or more past the delay and froze. Replaying frame
/// arrivals from calls at 5 % and 10 % loss with 50 ms each way, 60 ms gave
/// 1.4 s and 3.0 s of freezes over four sides, 10 ms none and 0.5 s, for
/// 50 ms more delay.
pub const TOLERATED: Duration = Duration::from_millis(10);
/// The most delay added: beyond it a conversation suffers more than the
/// picture gains.
pub const MAX_DELAY: Duration = Duration::from_millis(400);
/// How fast the delay comes down once frames are on time again: 2 ms a
/// frame at 30 fps, which no one sees as frames shown early.
const FALL_PER_SECOND: Duration = Duration::from_millis(60);
/// A frame this far off the path's delay is a jump in the sender's clock (a
/// new source, a restarted encoder), not lateness: timing starts over.
const DISCONTINUITY: Duration = Duration::from_secs(3);

/// Schedules the frames of one incoming video stream.
#[derive(Debug, Default)]
pub struct Playout {
    /// The first frame's arrival and its unwrapped timestamp: transits are
    /// measured from there.
    origin: Option<(Instant, i64)>,
    last_timestamp: i64,
    /// (arrival, transit µs) with transits increasing: the front is the
    /// fastest transit within [`BASE_WINDOW`] (a sliding minimum).
    fastest: VecDeque<(Instant, i64)>,
    /// Recent frames' transits and the path's delay when each came, µs.
    /// A frame's lateness is its transit less the higher of that delay and
    /// today's: a path that slowed down (a queue filled) makes no frame
    /// late once it is the path's delay, and a queue draining (each frame
    /// faster than the one before) makes none late either, as none came
    /// after a faster one.
    transits: VecDeque<(i64, i64)>,
    /// Reused for the percentile, so a frame costs no allocation.
    sorted: Vec<i64>,
    delay: Duration,
    last_arrival: Option<Instant>,
    last_show: Option<Instant>,
    /// After a start or an outage, while frames come faster than their
    /// media time (the burst of those held up): each is shown at once and
    /// becomes the reference, and none counts as late.
    catching_up: bool,
}

impl Playout {
    /// The delay now added to a frame that arrives as fast as the path allows.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// A frame that was whole at `arrived`, with its RTP timestamp: when to
    /// show it. Never before an earlier frame; at or before `arrived` means
    /// at once (it came later than the delay covers).
    pub fn schedule(&mut self, arrived: Instant, rtp_timestamp: u32) -> Instant {
        let transit = match self.transit(arrived, rtp_timestamp) {
            Some(transit) if self.catching_up && transit < -BURST_SLACK => {
                self.restart(arrived, rtp_timestamp);
                0
            }
            Some(transit) => {
                self.catching_up = false;
                transit
            }
            None => {
                self.restart(arrived, rtp_timestamp);
                0
            }
        };
        while self.fastest.back().is_some_and(|(_, t)| *t >= transit) {
            self.fastest.pop_back();
        }
        self.fastest.push_back((arrived, transit));
        while self
            .fastest
            .front()
            .is_some_and(|(at, _)| arrived.saturating_duration_since(*at) > BASE_WINDOW)
        {
            self.fastest.pop_front();
        }
        let base = self.fastest.front().map_or(transit, |(_, t)| *t);
        let late = micros(transit - base);
        if self.transits.len() == LATENESS_WINDOW {
            self.transits.pop_front();
        }
        self.transits.push_back((transit, base));
        self.adapt(arrived, base);
        let show = if self.delay > late {
            arrived + (self.delay - late)
        } else {
            arrived
        };
        let show = self.last_show.map_or(show, |last| show.max(last));
        self.last_show = Some(show);
        show
    }

    /// µs from the frame's media time to its arrival, against the first
    /// frame's; `None` for the first frame, after an outage and after a jump
    /// in the clock.
    fn transit(&mut self, arrived: Instant, rtp_timestamp: u32) -> Option<i64> {
        let (origin_at, origin_timestamp) = self.origin?;
        if self
            .last_arrival
            .is_some_and(|last| arrived.saturating_duration_since(last) > OUTAGE)
        {
            return None;
        }
        let delta = i64::from(rtp_timestamp.wrapping_sub(self.last_timestamp as u32) as i32);
        let timestamp = self.last_timestamp + delta;
        let media_us = (timestamp - origin_timestamp) * 1_000_000 / RTP_HZ;
        let arrival_us = arrived.saturating_duration_since(origin_at).as_micros() as i64;
        let transit = arrival_us - media_us;
        let base = self.fastest.front().map_or(0, |(_, t)| *t);
        if (transit - base).unsigned_abs() > DISCONTINUITY.as_micros() as u64 {
            return None;
        }
        self.last_timestamp = timestamp;
        Some(transit)
    }

    fn restart(&mut self, arrived: Instant, rtp_timestamp: u32) {
        self.origin = Some((arrived, i64::from(rtp_timestamp)));
        self.last_timestamp = i64::from(rtp_timestamp);
        self.fastest.clear();
        self.transits.clear();
        self.delay = Duration::ZERO;
        self.last_arrival = None;
        self.catching_up = true;
    }

    /// Rises at once to what the recent lateness asks (against the path's
    /// delay now, `base`); falls slowly.
    fn adapt(&mut self, arrived: Instant, base: i64) {
        self.sorted.clear();
        self.sorted.extend(
            self.transits
                .iter()
                .map(|(transit, then)| transit - base.max(*then)),
        );
        let rank = ((self.sorted.len() as f64 * COVERED) as usize).min(self.sorted.len() - 1);
        let (_, covered, _) = self.sorted.select_nth_unstable(rank);
        let wanted = micros(*covered).saturating_sub(TOLERATED).min(MAX_DELAY);
        let elapsed = self.last_arrival.map_or(Duration::ZERO, |last| {
            arrived.saturating_duration_since(last)
        });
        self.last_arrival = Some(arrived);
        self.delay = if wanted >= self.delay {
            wanted
        } else {
            let fall = FALL_PER_SECOND.mul_f64(elapsed.as_secs_f64().min(1.0));
            self.delay.saturating_sub(fall).max(wanted)
        };
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_micros(33_333);
    const TICKS: u32 = 3000;

    /// Feeds frames at 30 fps; `late(i)` is how much later than the path's
    /// own delay frame `i` arrives. Returns when each is shown.
    fn play(
        playout: &mut Playout,
        start: Instant,
        frames: u32,
        late: impl Fn(u32) -> u64,
    ) -> Vec<Instant> {
        (0..frames)
            .map(|i| {
                let arrived = start + FRAME * i + Duration::from_millis(late(i));
                playout.schedule(arrived, 1_000 + i * TICKS)
            })
            .collect()
    }

    fn gaps(shown: &[Instant]) -> Vec<Duration> {
        shown.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[test]
    fn a_clean_link_adds_no_delay() {
        let mut playout = Playout::default();
        let start = Instant::now();
        // A few ms of noise, as pacing and scheduling give.
        let shown = play(&mut playout, start, 300, |i| u64::from(i * 7 % 5));
        assert_eq!(playout.delay(), Duration::ZERO);
        for (i, at) in shown.iter().enumerate() {
            let arrived = start + FRAME * i as u32 + Duration::from_millis(i as u64 * 7 % 5);
            assert!(
                *at <= arrived.max(shown[i.saturating_sub(1)]),
                "frame {i} held"
            );
        }
    }

    /// 100 ms round trip: every fifth frame waits a repair (130 ms) and the
    /// three behind it wait with it, then all come in one burst.
    fn repairs(i: u32) -> u64 {
        match i % 5 {
            0 => 0,
            k => 130u64.saturating_sub(33 * u64::from(k - 1)),
        }
    }

    #[test]
    fn repaired_frames_keep_their_cadence_once_the_delay_has_learned() {
        let mut playout = Playout::default();
        let start = Instant::now();
        let shown = play(&mut playout, start, 300, repairs);
        // The latest 5 % wait 130 ms: that, less the tolerated hitch.
        let delay = playout.delay();
        let covers = Duration::from_millis(130) - TOLERATED;
        assert!(
            delay > covers - Duration::from_millis(5) && delay <= covers + Duration::from_millis(1),
            "{delay:?}"
        );
        // After the first second, no gap between shown frames is longer
        // than a frame and a tolerated hitch: no freeze, no stall.
        let worst = gaps(&shown[30..]).into_iter().max().expect("gaps");
        assert!(
            worst <= FRAME + TOLERATED + Duration::from_millis(1),
            "{worst:?}"
        );
        // Shown as decoded, the same frames stall for a repair each time.
        let unscheduled: Vec<Instant> = (0..300)
            .map(|i| start + FRAME * i + Duration::from_millis(repairs(i)))
            .collect();
        let mut latest = unscheduled[0];
        let mut worst_unscheduled = Duration::ZERO;
        for at in &unscheduled[1..] {
            if *at > latest {
                worst_unscheduled = worst_unscheduled.max(*at - latest);
                latest = *at;
            }
        }
        assert!(worst_unscheduled >= Duration::from_millis(160));
    }

    #[test]
    fn a_frame_that_waits_for_a_second_repair_is_a_hitch_not_a_freeze() {
        // As `repairs`, and every 5 s a resend is lost too: that frame
        // comes after a second round trip (250 ms), the ones behind it with
        // it. Too few to count in the covered share: the delay that covers
        // a first repair must do.
        let late = |i: u32| {
            let second = match i % 150 {
                k @ 101..=105 => 250u64.saturating_sub(33 * u64::from(k - 101)),
                _ => 0,
            };
            repairs(i).max(second)
        };
        let mut playout = Playout::default();
        let start = Instant::now();
        let shown = play(&mut playout, start, 900, late);
        let mut freezes = crate::counters::FreezeDetector::default();
        let frozen: Vec<Duration> = shown[60..]
            .iter()
            .filter_map(|at| freezes.frame(*at))
            .collect();
        assert!(frozen.is_empty(), "{frozen:?}");
    }

    #[test]
    fn the_delay_comes_down_slowly_once_the_loss_ends() {
        let mut playout = Playout::default();
        let start = Instant::now();
        play(&mut playout, start, 300, repairs);
        let high = playout.delay();
        // Clean again, from frame 300 on.
        let shown: Vec<Instant> = (300..900)
            .map(|i| playout.schedule(start + FRAME * i, 1_000 + i * TICKS))
            .collect();
        assert_eq!(playout.delay(), Duration::ZERO, "clean for 20 s");
        // Never faster than the fall rate: consecutive frames are shown at
        // least a frame interval less one frame's fall apart.
        let tightest = gaps(&shown).into_iter().min().expect("gaps");
        let fall = FALL_PER_SECOND.mul_f64(FRAME.as_secs_f64());
        assert!(
            tightest + Duration::from_micros(100) >= FRAME - fall,
            "{tightest:?}"
        );
        assert!(high > Duration::from_millis(50));
    }

    #[test]
    fn a_path_that_slows_down_for_good_costs_no_lasting_delay() {
        let mut playout = Playout::default();
        let start = Instant::now();
        // Clean, then every frame 300 ms later for good (a queue filled).
        play(&mut playout, start, 600, |i| if i < 300 { 0 } else { 300 });
        assert_eq!(playout.delay(), Duration::ZERO);
        let arrived = start + FRAME * 600 + Duration::from_millis(300);
        assert_eq!(playout.schedule(arrived, 1_000 + 600 * TICKS), arrived);
    }

    #[test]
    fn a_queue_draining_after_an_outage_is_not_lateness() {
        let mut playout = Playout::default();
        let start = Instant::now();
        play(&mut playout, start, 200, |_| 0);
        // A rate cap: nothing for 1.5 s, then the sender's queue of 420 ms
        // drains over 3.3 s, each frame 4 ms less late than the one before.
        let mut shown = Vec::new();
        for i in 245..400u32 {
            let k = u64::from(i - 245);
            let late = 20 + 4 * 100u64.saturating_sub(k);
            let arrived = start + FRAME * i + Duration::from_millis(late);
            shown.push((arrived, playout.schedule(arrived, 1_000 + i * TICKS)));
        }
        assert_eq!(playout.delay(), Duration::ZERO);
        for (arrived, at) in shown {
            assert_eq!(at, arrived, "held while the queue drained");
        }
    }

    #[test]
    fn after_an_outage_timing_starts_over() {
        let mut playout = Playout::default();
        let start = Instant::now();
        play(&mut playout, start, 300, repairs);
        assert!(playout.delay() > Duration::ZERO);
        // 3 s of nothing, then the frames behind it in a burst.
        let arrived = start + FRAME * 390;
        for i in 300..310 {
            let shown = playout.schedule(arrived, 1_000 + i * TICKS);
            assert_eq!(shown, arrived, "frame {i}");
        }
        assert_eq!(playout.delay(), Duration::ZERO);
    }

    #[test]
    fn lateness_beyond_the_bound_is_not_waited_for() {
        let mut playout = Playout::default();
        let start = Instant::now();
        // Every other frame 600 ms late: the delay stops at its bound.
        play(
            &mut playout,
            start,
            200,
            |i| if i % 2 == 1 { 600 } else { 0 },
        );
        assert_eq!(playout.delay(), MAX_DELAY);
    }

    #[test]
    fn frames_are_never_shown_out_of_order_and_a_late_one_at_once() {
        let mut playout = Playout::default();
        let start = Instant::now();
        let shown = play(&mut playout, start, 200, repairs);
        assert!(shown.windows(2).all(|w| w[1] >= w[0]));
        // A frame far later than the delay covers is due when it arrives.
        let arrived = start + FRAME * 200 + Duration::from_millis(900);
        assert_eq!(playout.schedule(arrived, 1_000 + 200 * TICKS), arrived);
    }

    #[test]
    fn the_timestamp_wrapping_around_changes_nothing() {
        let mut playout = Playout::default();
        let start = Instant::now();
        let first = u32::MAX - 10 * TICKS;
        let shown: Vec<Instant> = (0..60)
            .map(|i| playout.schedule(start + FRAME * i, first.wrapping_add(i * TICKS)))
            .collect();
        assert_eq!(playout.delay(), Duration::ZERO);
        assert_eq!(shown[59], start + FRAME * 59);
    }

    #[test]
    fn a_jump_in_the_senders_clock_starts_over_instead_of_waiting() {
        let mut playout = Playout::default();
        let start = Instant::now();
        play(&mut playout, start, 300, repairs);
        // The sender restarts its encoder half a second later (no outage),
        // with a timestamp an hour away.
        let arrived = start + FRAME * 300 + Duration::from_millis(500);
        let jumped = 1_000 + 300 * TICKS + 3600 * 90_000;
        assert_eq!(playout.schedule(arrived, jumped), arrived);
        assert_eq!(playout.delay(), Duration::ZERO);
        let next = arrived + FRAME;
        assert_eq!(playout.schedule(next, jumped + TICKS), next);
    }
}
