//! Keyframe requests (PLI, FIR, a new peer, a writer that fell behind) on
//! their way to the one encoder every peer shares. A keyframe costs every
//! peer several frames' worth of bits, so one peer's storm must not turn the
//! whole mesh's video into keyframes: each peer is heard at most once per
//! [`PER_PEER_INTERVAL`], and the encoder makes at most one requested
//! keyframe per [`ENCODER_INTERVAL`]. A request inside either window is not
//! lost but coalesced into one keyframe at the encoder window's end: a
//! receiver's PLI 75 ms after the keyframe that opened its stream (whose
//! first frame it missed) was dropped, and its video waited 700 ms more.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kith_media::codec::VideoCodec;

use crate::link::LinkId;

pub const PER_PEER_INTERVAL: Duration = Duration::from_millis(500);
pub const ENCODER_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct EncoderWindow {
    last: Option<Instant>,
    pending: bool,
}

#[derive(Debug, Default)]
pub struct KeyframeThrottle {
    peers: HashMap<LinkId, Instant>,
    encoders: HashMap<VideoCodec, EncoderWindow>,
}

impl KeyframeThrottle {
    /// A request from `link` for the encoder of `codec`; true when the
    /// encoder should make a keyframe now.
    pub fn request(&mut self, now: Instant, link: LinkId, codec: VideoCodec) -> bool {
        let window = self.encoders.entry(codec).or_default();
        if let Some(last) = self.peers.get(&link)
            && now.duration_since(*last) < PER_PEER_INTERVAL
        {
            // Heard recently: served by the next keyframe, not one of its own.
            if window.last.is_some() {
                window.pending = true;
            }
            return false;
        }
        self.peers.insert(link, now);
        match window.last {
            Some(last) if now.duration_since(last) < ENCODER_INTERVAL => {
                window.pending = true;
                false
            }
            _ => {
                window.last = Some(now);
                window.pending = false;
                true
            }
        }
    }

    /// The encoder of `codec` makes a keyframe of its own accord (it
    /// starts again at a new size): the requests waiting are served by it,
    /// and the next requested one is made no sooner than
    /// [`ENCODER_INTERVAL`] after it. At a cap's onset the receivers' PLIs
    /// for the loss that preceded each new size's keyframe brought another
    /// keyframe right behind it: seven keyframes in 1.1 s, each partly
    /// lost on the full link, each making the repairs of the one before
    /// useless, and the picture froze until one got through whole.
    pub fn made(&mut self, now: Instant, codec: VideoCodec) {
        let window = self.encoders.entry(codec).or_default();
        window.last = Some(now);
        window.pending = false;
    }

    /// When a coalesced request is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.encoders
            .values()
            .filter(|w| w.pending)
            .filter_map(|w| w.last.map(|last| last + ENCODER_INTERVAL))
            .min()
    }

    /// The encoders whose coalesced request is due at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<VideoCodec> {
        let mut due = Vec::new();
        for (codec, window) in &mut self.encoders {
            if window.pending
                && window
                    .last
                    .is_some_and(|last| now >= last + ENCODER_INTERVAL)
            {
                window.pending = false;
                window.last = Some(now);
                due.push(*codec);
            }
        }
        due
    }

    pub fn forget(&mut self, link: LinkId) {
        self.peers.remove(&link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_from_one_peer_is_bounded_and_another_peer_is_still_heard() {
        let mut throttle = KeyframeThrottle::default();
        let start = Instant::now();
        let mut keyframes = 0;
        // 1,000 requests a second from link 1 for 10 s.
        for ms in 0..10_000u64 {
            let now = start + Duration::from_millis(ms);
            if throttle.request(now, LinkId(1), VideoCodec::Vp8) {
                keyframes += 1;
            }
            keyframes += throttle.due(now).len();
        }
        assert!(keyframes <= 21, "{keyframes} keyframes in 10 s");
        assert!(keyframes >= 10, "the peer is still served: {keyframes}");
        // Another peer's request right after a keyframe is coalesced, not lost.
        let now = start + Duration::from_millis(10_000);
        let _ = throttle.request(now, LinkId(2), VideoCodec::Vp8);
        let due = throttle.next_due();
        assert!(due.is_none_or(|at| at <= now + ENCODER_INTERVAL));
    }

    #[test]
    fn a_keyframe_the_encoder_made_itself_serves_the_requests_around_it() {
        let mut throttle = KeyframeThrottle::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert!(throttle.request(at(0), LinkId(1), VideoCodec::Vp8));
        // Asked again inside the window: pending...
        assert!(!throttle.request(at(100), LinkId(2), VideoCodec::Vp8));
        // ...and a new size's keyframe serves it.
        throttle.made(at(200), VideoCodec::Vp8);
        assert_eq!(throttle.next_due(), None);
        // A request right after that keyframe waits for the window.
        assert!(!throttle.request(at(300), LinkId(3), VideoCodec::Vp8));
        assert_eq!(throttle.next_due(), Some(at(200) + ENCODER_INTERVAL));
        assert!(throttle.due(at(600)).is_empty());
        assert_eq!(throttle.due(at(700)), vec![VideoCodec::Vp8]);
    }

    #[test]
    fn a_peer_asking_again_right_after_its_first_keyframe_gets_another() {
        let mut throttle = KeyframeThrottle::default();
        let start = Instant::now();
        // The writer's request as the stream opens, then the receiver's PLI.
        assert!(throttle.request(start, LinkId(1), VideoCodec::H264));
        let pli = start + Duration::from_millis(75);
        assert!(!throttle.request(pli, LinkId(1), VideoCodec::H264));
        assert_eq!(throttle.next_due(), Some(start + ENCODER_INTERVAL));
        assert!(throttle.due(pli).is_empty());
        assert_eq!(
            throttle.due(start + ENCODER_INTERVAL),
            vec![VideoCodec::H264]
        );
        assert_eq!(throttle.next_due(), None, "one keyframe for both");
    }
}
