//! From the bandwidth estimate to what the shared encoder is told: a
//! bitrate, and a picture size from a ladder. The group encoder follows the
//! weakest peer. Sizes step down at once (a congested link cannot wait) but
//! step up only one rung at a time, after the estimate has cleared the next
//! rung by a margin for a while, and not soon after a step down: a
//! see-sawing estimate must not make the picture size oscillate.
//!
//! A rung's bitrate is what typical video needs there; some pictures need
//! far more. So a climb is on probation: when the encoder's delta frames at
//! the new size run well over the bitrate it was given, the encoder cannot
//! hold that size within it (it is at its coarsest quantizer), and the size
//! goes back down before the overshoot fills the link, with what the size
//! took remembered as its need for a while. libwebrtc's quality scaler
//! reads the quantizer for the same purpose; the rate is what every codec
//! here reports alike.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::sharp_fall::FallWatch;

/// The lowest bitrate the encoder is asked for.
pub const MIN_VIDEO_BPS: u32 = 150_000;
/// What audio and RTP overhead take out of the estimate.
const AUDIO_RESERVE_BPS: f64 = 60_000.0;
/// Only this share of the estimate goes to video (headroom for bursts).
const VIDEO_SHARE: f64 = 0.95;
/// A bitrate move smaller than 1/20 is noise; each change costs the encoder.
const BITRATE_DEADBAND: u32 = 20;
/// How far above a rung's need the target must be to climb to it.
const UP_MARGIN: f64 = 1.25;
/// How long the target must stay there.
const UP_HOLD: Duration = Duration::from_secs(4);
/// No climb this soon after a step down...
const AFTER_DOWN_HOLD: Duration = Duration::from_secs(8);
/// ...and a climb followed this soon by a step down failed: the link did
/// not carry the bigger size (on a 500 kbit/s link each climb's keyframe
/// overflowed the queue, and the call froze every 8-10 s), so the next
/// attempt waits twice as long, up to [`MAX_AFTER_DOWN_HOLD`]. A climb that
/// holds this long brings the wait back to [`AFTER_DOWN_HOLD`].
const FAILED_CLIMB: Duration = Duration::from_secs(15);
const MAX_AFTER_DOWN_HOLD: Duration = Duration::from_secs(64);
/// How long a climb is on probation...
const PROBATION: Duration = Duration::from_millis(1500);
/// ...and how much of the new size it takes to judge it: 9 frames at 30
/// fps, so that one large delta frame does not decide. Judged at 500 ms,
/// the overshoot before the step back still froze a 500 kbit/s link's
/// picture for 0.2-0.4 s.
const PROBATION_MIN: Duration = Duration::from_millis(300);
/// Delta frames at this many times the bitrate fail a climb. libvpx holds
/// a reachable target within about 15 % over half a second; a VP8 encoder
/// that could not (the synthetic camera at 640x360 and 408 kbit/s) sent
/// 650-870 kbit/s in its first second, and on a 500 kbit/s link that
/// overshoot froze the picture for 0.9-1.4 s.
const OVERSHOOT: f64 = 1.4;
/// For this long after a sharp fall of the target (see [`FallWatch`])
/// sizes are chosen for a quarter of the target, and none is climbed to.
/// The estimator's cuts come in steps after such a fall (1.9 Mbit/s, then
/// 690, 380 and 250 kbit/s over 0.7 s at a 500 kbit/s cap), and each size
/// on the way down was one more keyframe, from an encoder that overshot
/// its bitrate at the larger size, into a link already full. With sizes
/// for half the target, the step from 640x360 to 320x180 0.2 s after the
/// first still cost a second freeze of 0.4 s.
const AFTER_SHARP_FALL: Duration = Duration::from_secs(2);
/// For this long after a sharp fall the encoder gets half the target, so
/// that the queue the fall left standing at the bottleneck drains: a
/// 500 kbit/s link's 200 ms queue, full at the cap's onset, drained at the
/// 120 kbit/s the estimate left free, and each keyframe sent for the new
/// size sat 200-250 ms in it, its repairs too (1.0-1.3 s freezes).
const DRAIN: Duration = Duration::from_secs(1);
/// How long what a size was seen to need outranks the ladder's figure: a
/// picture that was hard to encode may become easy.
const LEARNED_NEED_FOR: Duration = Duration::from_secs(60);

/// Bitrate each picture size needs, largest first.
const LADDER: [(u32, u32, u32); 4] = [
    (1_000_000, 1280, 720),
    (500_000, 960, 540),
    (250_000, 640, 360),
    (0, 320, 180),
];

/// The picture size that suits a bitrate: below what a size needs, the
/// encoder is better off with fewer pixels than with heavy quantization.
/// The requested size needs what the largest rung within it needs, and is
/// kept while the bitrate has that: a 320×240 request, off the ladder, was
/// cut to 320×180 by the first estimate whatever its bitrate.
pub fn size_for_bitrate(bitrate_bps: u32, width: u32, height: u32) -> (u32, u32) {
    let mut within = LADDER
        .iter()
        .filter(|(_, w, h)| *w <= width && *h <= height);
    match within.next() {
        Some(&(needs, _, _)) if bitrate_bps < needs => within
            .clone()
            .find(|(needs, _, _)| bitrate_bps >= *needs)
            .or_else(|| within.next_back())
            .map_or((width, height), |(_, w, h)| (*w, *h)),
        _ => (width, height),
    }
}

/// The next larger size than `size`: a rung within the request, or the
/// request itself, which tops the ladder needing what the largest rung
/// within it needs (as in [`size_for_bitrate`]). Without the request as a
/// rung, an 800×600 call that stepped down to 320×180 climbed back to
/// 640×360 and no further, however much the link carried.
fn next_up(size: (u32, u32), requested: (u32, u32)) -> Option<((u32, u32), u32)> {
    let within = LADDER
        .iter()
        .filter(|(_, w, h)| *w <= requested.0 && *h <= requested.1)
        .map(|(needs, w, h)| ((*w, *h), *needs));
    let top_needs = within.clone().next().map_or(0, |(_, needs)| needs);
    within
        .rev()
        .chain(std::iter::once((requested, top_needs)))
        .find(|(rung, _)| area(*rung) > area(size))
}

fn area((width, height): (u32, u32)) -> u64 {
    u64::from(width) * u64::from(height)
}

/// What the encoder should change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderTarget {
    pub bitrate_bps: Option<u32>,
    pub size: Option<(u32, u32)>,
}

/// The policy for one encoder.
#[derive(Debug, Clone)]
pub struct BandwidthPolicy {
    requested: (u32, u32),
    max_bps: u32,
    bitrate: u32,
    size: (u32, u32),
    /// Since when the target has been high enough for the next rung.
    climb_since: Option<Instant>,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    /// How long after a step down no climb is tried.
    down_hold: Duration,
    /// Bytes of delta frames the encoder had produced at the last sample.
    encoded: Option<u64>,
    probation: Option<Probation>,
    learned: Option<LearnedNeed>,
    fall: FallWatch,
    /// Sizes are chosen warily until then (see [`AFTER_SHARP_FALL`])...
    wary_until: Option<Instant>,
    /// ...and the bitrate halved until then (see [`DRAIN`]).
    drain_until: Option<Instant>,
}

/// A climb being judged.
#[derive(Debug, Clone, Copy)]
struct Probation {
    since: Instant,
    from: (u32, u32),
    encoded_at: u64,
}

/// What a size took when a climb to it failed on probation.
#[derive(Debug, Clone, Copy)]
struct LearnedNeed {
    size: (u32, u32),
    bps: u32,
    at: Instant,
}

impl BandwidthPolicy {
    pub fn new(requested: (u32, u32), start_bps: u32, max_bps: u32) -> Self {
        Self {
            requested,
            max_bps: max_bps.max(MIN_VIDEO_BPS),
            bitrate: start_bps,
            size: requested,
            climb_since: None,
            last_down: None,
            last_up: None,
            down_hold: AFTER_DOWN_HOLD,
            encoded: None,
            probation: None,
            learned: None,
            fall: FallWatch::default(),
            wary_until: None,
            drain_until: None,
        }
    }

    /// How many bytes of delta frames (keyframes left out: one is as large
    /// as many delta frames and comes with every climb) the encoder has
    /// produced so far; read before each [`BandwidthPolicy::on_estimate`].
    /// Without it, climbs are not judged.
    pub fn on_encoded(&mut self, delta_bytes: u64) {
        self.encoded = Some(delta_bytes);
    }

    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// A new estimate (the weakest peer's, bits/s) at `now`.
    pub fn on_estimate(&mut self, now: Instant, estimate_bps: f64) -> EncoderTarget {
        let target = ((estimate_bps - AUDIO_RESERVE_BPS) * VIDEO_SHARE)
            .clamp(f64::from(MIN_VIDEO_BPS), f64::from(self.max_bps)) as u32;
        let mut change = EncoderTarget {
            bitrate_bps: None,
            size: None,
        };
        let wary = self.wary(now, target);
        let bitrate = if self.drain_until.is_some_and(|until| now < until) {
            (target / 2).max(MIN_VIDEO_BPS)
        } else {
            target
        };
        if bitrate.abs_diff(self.bitrate) * BITRATE_DEADBAND > self.bitrate {
            self.bitrate = bitrate;
            change.bitrate_bps = Some(bitrate);
        }
        let fits = size_for_bitrate(
            if wary { target / 4 } else { target },
            self.requested.0,
            self.requested.1,
        );
        if self
            .last_up
            .is_some_and(|up| now.duration_since(up) >= FAILED_CLIMB)
        {
            self.down_hold = AFTER_DOWN_HOLD;
            self.last_up = None;
        }
        let failed_climb = self
            .last_up
            .is_some_and(|up| now.duration_since(up) < FAILED_CLIMB);
        if area(fits) < area(self.size) {
            self.step_down(now, fits, failed_climb);
            change.size = Some(fits);
            return change;
        }
        if let Some(from) = self.failed_probation(now) {
            self.step_down(now, from, true);
            change.size = Some(from);
            return change;
        }
        if wary {
            self.climb_since = None;
            return change;
        }
        let Some((up, needs)) = next_up(self.size, self.requested) else {
            self.climb_since = None;
            return change;
        };
        let needs = match self.learned {
            Some(learned)
                if area(up) >= area(learned.size)
                    && now.duration_since(learned.at) < LEARNED_NEED_FOR =>
            {
                needs.max(learned.bps)
            }
            _ => needs,
        };
        if f64::from(target) < f64::from(needs) * UP_MARGIN {
            self.climb_since = None;
            return change;
        }
        let since = *self.climb_since.get_or_insert(now);
        let settled = self
            .last_down
            .is_none_or(|down| now.duration_since(down) >= self.down_hold);
        if now.duration_since(since) >= UP_HOLD && settled {
            self.probation = self.encoded.map(|encoded_at| Probation {
                since: now,
                from: self.size,
                encoded_at,
            });
            self.size = up;
            self.climb_since = None;
            self.last_up = Some(now);
            change.size = Some(up);
        }
        change
    }

    /// Goes down to `size` at `now`; after a climb that failed, the next
    /// one waits twice as long.
    fn step_down(&mut self, now: Instant, size: (u32, u32), failed_climb: bool) {
        if failed_climb {
            self.down_hold = (self.down_hold * 2).min(MAX_AFTER_DOWN_HOLD);
        }
        self.size = size;
        self.climb_since = None;
        self.last_up = None;
        self.last_down = Some(now);
        self.probation = None;
    }

    /// Whether sizes are chosen warily at `now`, the target having fallen
    /// sharply.
    fn wary(&mut self, now: Instant, target: u32) -> bool {
        if self.fall.fell(now, f64::from(target)) {
            debug!(
                target,
                "a sharp fall: sizes chosen warily, the bitrate halved a while"
            );
            self.wary_until = Some(now + AFTER_SHARP_FALL);
            self.drain_until = Some(now + DRAIN);
        }
        self.wary_until.is_some_and(|until| now < until)
    }

    /// The size to go back to when the climb on probation has failed: its
    /// delta frames ran past [`OVERSHOOT`] times the bitrate. What they ran
    /// at is learned as the size's need.
    fn failed_probation(&mut self, now: Instant) -> Option<(u32, u32)> {
        let probation = self.probation?;
        let on_it = now.duration_since(probation.since);
        if on_it < PROBATION_MIN {
            return None;
        }
        let bytes = self.encoded?.saturating_sub(probation.encoded_at);
        let bps = bytes as f64 * 8.0 / on_it.as_secs_f64();
        if bps <= OVERSHOOT * f64::from(self.bitrate) {
            if on_it >= PROBATION {
                debug!(
                    delta_bps = bps as u64,
                    bitrate = self.bitrate,
                    "the encoder holds the size it climbed to"
                );
                self.probation = None;
            }
            return None;
        }
        debug!(
            delta_bps = bps as u64,
            bitrate = self.bitrate,
            after_ms = on_it.as_millis() as u64,
            "the encoder cannot hold the size it climbed to"
        );
        self.probation = None;
        self.learned = Some(LearnedNeed {
            size: self.size,
            bps: bps as u32,
            at: now,
        });
        Some(probation.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_follows_bitrate_but_never_exceeds_the_request() {
        assert_eq!(size_for_bitrate(2_500_000, 1280, 720), (1280, 720));
        assert_eq!(size_for_bitrate(600_000, 1280, 720), (960, 540));
        assert_eq!(size_for_bitrate(300_000, 1280, 720), (640, 360));
        assert_eq!(size_for_bitrate(100_000, 1280, 720), (320, 180));
        assert_eq!(size_for_bitrate(2_500_000, 640, 360), (640, 360));
        // An odd request smaller than the ladder keeps its own size.
        assert_eq!(size_for_bitrate(2_500_000, 176, 144), (176, 144));
        // One between rungs keeps it while the rung below it would.
        assert_eq!(size_for_bitrate(2_500_000, 320, 240), (320, 240));
        assert_eq!(size_for_bitrate(100_000, 320, 240), (320, 240));
        assert_eq!(size_for_bitrate(300_000, 800, 600), (800, 600));
        assert_eq!(size_for_bitrate(200_000, 800, 600), (320, 180));
    }

    fn run(policy: &mut BandwidthPolicy, start: Instant, estimates: &[f64]) -> Vec<(u32, u32)> {
        let mut sizes = Vec::new();
        for (second, estimate) in estimates.iter().enumerate() {
            let now = start + Duration::from_secs(second as u64);
            if let Some(size) = policy.on_estimate(now, *estimate).size {
                sizes.push(size);
            }
        }
        sizes
    }

    #[test]
    fn a_see_sawing_estimate_does_not_make_the_size_oscillate() {
        let mut policy = BandwidthPolicy::new((1280, 720), 2_500_000, 4_000_000);
        let start = Instant::now();
        // 60 s alternating between 0.6 and 2.5 Mbit/s every second.
        let estimates: Vec<f64> = (0..60)
            .map(|s| if s % 2 == 0 { 600_000.0 } else { 2_500_000.0 })
            .collect();
        let sizes = run(&mut policy, start, &estimates);
        assert_eq!(sizes, vec![(960, 540)], "one step down, no climbing back");
    }

    /// The sizes a call asked for at `requested` goes through when the
    /// estimate dips to 200 kbit/s for 3 s and then stays at 3 Mbit/s.
    fn sizes_after_a_dip(requested: (u32, u32), recovery_secs: usize) -> Vec<(u32, u32)> {
        let mut policy = BandwidthPolicy::new(requested, 2_500_000, 4_000_000);
        let mut estimates = vec![200_000.0; 3];
        estimates.extend(vec![3_000_000.0; recovery_secs]);
        run(&mut policy, Instant::now(), &estimates)
    }

    #[test]
    fn a_lasting_recovery_climbs_one_rung_at_a_time() {
        assert_eq!(
            sizes_after_a_dip((1280, 720), 40),
            vec![(320, 180), (640, 360), (960, 540), (1280, 720)],
            "down at once, then up rung by rung"
        );
    }

    #[test]
    fn a_request_off_the_ladder_is_climbed_back_to() {
        assert_eq!(
            sizes_after_a_dip((800, 600), 30),
            vec![(320, 180), (640, 360), (800, 600)]
        );
    }

    /// The seconds at which the size changed, and to what.
    fn run_timed(policy: &mut BandwidthPolicy, estimates: &[f64]) -> Vec<(usize, (u32, u32))> {
        let start = Instant::now();
        estimates
            .iter()
            .enumerate()
            .filter_map(|(second, estimate)| {
                let now = start + Duration::from_secs(second as u64);
                policy
                    .on_estimate(now, *estimate)
                    .size
                    .map(|size| (second, size))
            })
            .collect()
    }

    /// Low, then enough for 640x360 but the climb is followed a second
    /// later by a drop (the link did not carry it), then enough again until
    /// the next climb, 16 s after that failure rather than 8.
    fn one_failed_climb() -> Vec<f64> {
        let mut estimates = vec![200_000.0; 3];
        estimates.extend(vec![400_000.0; 6]); // climbs at 8
        estimates.push(200_000.0); // fails at 9
        estimates.extend(vec![400_000.0; 16]); // climbs at 25, not 17
        estimates
    }

    const AFTER_ONE_FAILED_CLIMB: [(usize, (u32, u32)); 4] = [
        (0, (320, 180)),
        (8, (640, 360)),
        (9, (320, 180)),
        (25, (640, 360)),
    ];

    #[test]
    fn a_failed_climb_makes_the_next_one_wait_twice_as_long() {
        let mut policy = BandwidthPolicy::new((1280, 720), 2_500_000, 4_000_000);
        let mut estimates = one_failed_climb();
        estimates.push(200_000.0); // fails at 26
        estimates.extend(vec![400_000.0; 40]); // climbs at 58, not 34
        let mut expected = AFTER_ONE_FAILED_CLIMB.to_vec();
        expected.extend([(26, (320, 180)), (58, (640, 360))]);
        assert_eq!(run_timed(&mut policy, &estimates), expected);
    }

    #[test]
    fn a_climb_that_holds_brings_the_wait_back() {
        let mut policy = BandwidthPolicy::new((1280, 720), 2_500_000, 4_000_000);
        let mut estimates = one_failed_climb();
        estimates.extend(vec![400_000.0; 20]); // holds past 40
        estimates.push(200_000.0); // down at 46, not a failed climb
        estimates.extend(vec![400_000.0; 10]); // climbs 8 s later, at 54
        let mut expected = AFTER_ONE_FAILED_CLIMB.to_vec();
        expected.extend([(46, (320, 180)), (54, (640, 360))]);
        assert_eq!(run_timed(&mut policy, &estimates), expected);
    }

    /// A policy fed every 100 ms, as the driver does, with the bytes of
    /// delta frames an encoder produces at `overshoot(size)` times the
    /// bitrate it was given.
    struct Encoding {
        policy: BandwidthPolicy,
        start: Instant,
        tick: u32,
        encoded: f64,
    }

    impl Encoding {
        fn new() -> Self {
            Self {
                policy: BandwidthPolicy::new((1280, 720), 2_500_000, 4_000_000),
                start: Instant::now(),
                tick: 0,
                encoded: 0.0,
            }
        }

        /// The tenths of a second at which the size changed, and to what.
        fn run(
            &mut self,
            secs: u32,
            estimate: f64,
            overshoot: impl Fn((u32, u32)) -> f64,
        ) -> Vec<(u32, (u32, u32))> {
            let mut sizes = Vec::new();
            for _ in 0..secs * 10 {
                let policy = &mut self.policy;
                self.encoded += f64::from(policy.bitrate()) * overshoot(policy.size()) / 80.0;
                policy.on_encoded(self.encoded as u64);
                let now = self.start + Duration::from_millis(u64::from(self.tick) * 100);
                if let Some(size) = policy.on_estimate(now, estimate).size {
                    sizes.push((self.tick, size));
                }
                self.tick += 1;
            }
            sizes
        }
    }

    /// Above 320x180 the encoder cannot hold its bitrate (the synthetic
    /// camera's grain at 640x360 in 408 kbit/s).
    fn hard_above_the_bottom((width, _): (u32, u32)) -> f64 {
        if width > 320 { 1.8 } else { 1.0 }
    }

    #[test]
    fn a_climb_the_encoder_cannot_hold_goes_back_down_within_a_second() {
        let mut encoding = Encoding::new();
        let mut sizes = encoding.run(3, 200_000.0, hard_above_the_bottom);
        // 500 kbit/s clears 640x360's 250 kbit/s by far; what it took there
        // (1.8 x 418 kbit/s) is then its need, which 500 kbit/s does not
        // clear again while it is remembered.
        sizes.extend(encoding.run(50, 500_000.0, hard_above_the_bottom));
        assert_eq!(sizes.len(), 3, "{sizes:?}");
        assert_eq!(sizes[0], (0, (320, 180)));
        let (climbed, up) = sizes[1];
        let (back, down) = sizes[2];
        assert_eq!((up, down), ((640, 360), (320, 180)), "{sizes:?}");
        assert!(
            (3..10).contains(&(back - climbed)),
            "judged after 0.3 s, within a second: {sizes:?}"
        );
    }

    #[test]
    fn a_climb_the_encoder_holds_stays() {
        let mut encoding = Encoding::new();
        let holds = |_| 1.1;
        let mut sizes = encoding.run(3, 200_000.0, holds);
        sizes.extend(encoding.run(50, 500_000.0, holds));
        assert_eq!(sizes.len(), 2, "{sizes:?}");
        assert_eq!(sizes[1].1, (640, 360));
    }

    #[test]
    fn what_a_size_was_seen_to_need_is_forgotten_after_a_minute() {
        let mut encoding = Encoding::new();
        let mut sizes = encoding.run(3, 200_000.0, hard_above_the_bottom);
        sizes.extend(encoding.run(100, 500_000.0, hard_above_the_bottom));
        let failed = sizes[2].0;
        let (retried, size) = sizes[3];
        assert_eq!(size, (640, 360), "{sizes:?}");
        // Forgotten 60 s after the failure, then the usual 4 s of clearing.
        assert_eq!(retried - failed, 640, "{sizes:?}");
    }

    /// 10 s at 2.5 Mbit/s, then the estimator's steps down to a 500 kbit/s
    /// cap as they were logged, at 100 ms ticks.
    fn sizes_through_a_cap_onset() -> Vec<(u32, u32)> {
        let mut policy = BandwidthPolicy::new((1280, 720), 2_500_000, 4_000_000);
        let start = Instant::now();
        let mut estimates = vec![2_500_000.0; 100];
        estimates.extend([690_000.0; 3]);
        estimates.extend([380_000.0; 5]);
        estimates.extend([250_000.0; 20]);
        estimates
            .iter()
            .enumerate()
            .filter_map(|(tick, estimate)| {
                let now = start + Duration::from_millis(100 * tick as u64);
                policy.on_estimate(now, *estimate).size
            })
            .collect()
    }

    #[test]
    fn a_sharp_fall_goes_down_in_one_step() {
        // Each step is a keyframe: straight to what the last cut suits.
        assert_eq!(sizes_through_a_cap_onset(), vec![(320, 180)]);
    }

    #[test]
    fn no_climb_soon_after_a_sharp_fall() {
        let mut policy = BandwidthPolicy::new((1280, 720), 2_500_000, 4_000_000);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // At 320x180 for a long while, then a fall that needs no step down.
        for tick in 0..200 {
            policy.on_estimate(at(tick * 100), 200_000.0);
        }
        let _ = policy.on_estimate(at(20_000), 900_000.0);
        assert_eq!(policy.on_estimate(at(20_100), 400_000.0).size, None);
        // Enough for 640x360 from then on, but not before the wary 2 s are
        // over and the usual 4 s of clearing the rung have passed.
        let climbed = (201..400)
            .find(|tick| policy.on_estimate(at(tick * 100), 500_000.0).size.is_some())
            .map(|tick| tick * 100);
        assert_eq!(climbed, Some(20_100 + 2_000 + 4_000));
    }

    #[test]
    fn small_bitrate_moves_are_ignored() {
        let mut policy = BandwidthPolicy::new((1280, 720), 2_000_000, 4_000_000);
        let now = Instant::now();
        // (2.16M - 60k) * 0.95 = 1.995M: within 5 % of 2M.
        assert_eq!(policy.on_estimate(now, 2_160_000.0).bitrate_bps, None);
        assert!(policy.on_estimate(now, 1_000_000.0).bitrate_bps.is_some());
    }
}
