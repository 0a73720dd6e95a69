//! Asking a sender for the video packets that did not arrive (RFC 4585
//! generic NACK), in webrtc-rs's NACK-generator slot.
//!
//! webrtc-rs's generator asks on a fixed tick, a fixed number of times, and
//! never learns that a retransmission arrived (webrtc-rs turns RTX back into
//! the packet it repairs only after the interceptors), so it asks again
//! whether or not the repair came, and stops asking before a lost repair of
//! a 100 ms round trip could be asked for again. This one works as
//! libwebrtc's `NackRequester` does: it asks as soon as a gap shows, sees
//! each repair (unwrapped from RTX wire-ward of here by [`crate::rtx`] and
//! marked [`Attribute::Retransmission`]), and asks again only after the
//! time a repair takes (measured from its own asks) has passed. No crate
//! offers this for webrtc-rs's interceptor chain, so it is written here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use rtc::shared::error::Error;

use crate::repairs::RepairCounts;

/// Asks per lost packet (libwebrtc's `kMaxNackRetries`).
pub const MAX_ASKS: u8 = 10;
/// A packet missing for longer is no longer asked for: the frame assembler
/// has gone on without it.
pub const MAX_AGE: Duration = Duration::from_millis(1000);
/// Missing packets tracked per stream. A gap wider than this is a stream
/// that restarted or a burst a keyframe repairs better: it is not asked for.
pub const MAX_MISSING: usize = 1000;
/// Sequence numbers one NACK asks for, so its RTCP stays well under a
/// datagram.
const MAX_PER_NACK: usize = 256;
/// What a repair is assumed to take until one is measured.
const INITIAL_REPAIR_TIME: Duration = Duration::from_millis(100);
/// How often asks are looked over while something is missing.
const TICK: Duration = Duration::from_millis(10);
/// Each ask goes out a second time this long after the first, when a repair
/// takes at least [`ECHO_FROM`]: a NACK lost on a lossy link, or the resend
/// it asked for, otherwise costs a whole repair time before the next ask,
/// and the frame behind it freezes for two round trips. The copy is a few
/// bytes of RTCP; a Kith sender answers each copy that arrives with a copy
/// of the packet (`pacer::COPIES_PER_ROUND`), so only losing both costs the
/// round trip. A libwebrtc sender answers the first.
pub const ECHO_AFTER: Duration = Duration::from_millis(10);
/// On a faster path a lost ask is asked again soon enough.
const ECHO_FROM: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Missing {
    since: Instant,
    asked_at: Option<Instant>,
    asks: u8,
    /// Whether the latest ask has had its second copy.
    echoed: bool,
}

#[derive(Debug, Default)]
struct Stream {
    /// The highest sequence number seen, unwrapped.
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
}

impl Stream {
    fn unwrap(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            return u64::from(seq) + (1 << 16);
        };
        let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
        highest.saturating_add_signed(delta)
    }

    /// Takes a packet in; returns the hole it filled, if any (a resend on the
    /// media stream, as a sender without RTX sends one, or a late original).
    fn received(&mut self, seq: u16, now: Instant) -> Option<Missing> {
        let seq = self.unwrap(seq);
        match self.highest {
            Some(highest) if seq > highest => {
                let gap = seq - highest - 1;
                if gap as usize + self.missing.len() > MAX_MISSING {
                    self.missing.clear();
                } else {
                    for lost in highest + 1..seq {
                        self.missing.insert(
                            lost,
                            Missing {
                                since: now,
                                asked_at: None,
                                asks: 0,
                                echoed: false,
                            },
                        );
                    }
                }
                self.highest = Some(seq);
            }
            Some(_) => return self.missing.remove(&seq),
            None => self.highest = Some(seq),
        }
        None
    }
}

pub struct NackRequester {
    sender_ssrc: u32,
    streams: HashMap<u32, Stream>,
    /// Smoothed time from an ask to the repair's arrival.
    repair_time: Duration,
    next_check: Option<Instant>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
    /// Resends received, counted for the stats.
    repairs: RepairCounts,
}

impl Default for NackRequester {
    fn default() -> Self {
        Self {
            sender_ssrc: rand::random(),
            streams: HashMap::new(),
            repair_time: INITIAL_REPAIR_TIME,
            next_check: None,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
            repairs: RepairCounts::default(),
        }
    }
}

impl std::fmt::Debug for NackRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NackRequester")
            .field("repair_time", &self.repair_time)
            .finish_non_exhaustive()
    }
}

impl NackRequester {
    /// Counts each resend that arrives in `repairs`.
    pub fn counting(repairs: RepairCounts) -> Self {
        Self {
            repairs,
            ..Self::default()
        }
    }

    /// How long after an ask it is asked again: a repair's usual time and
    /// a margin for its spread.
    fn ask_again_after(&self) -> Duration {
        let margin = (self.repair_time / 4).max(Duration::from_millis(10));
        (self.repair_time + margin).clamp(Duration::from_millis(20), Duration::from_millis(500))
    }

    fn repaired(&mut self, media_ssrc: u32, seq: u16, now: Instant) {
        let Some(stream) = self.streams.get_mut(&media_ssrc) else {
            return;
        };
        let seq = stream.unwrap(seq);
        let Some(missing) = stream.missing.remove(&seq) else {
            return;
        };
        self.learn_repair_time(&missing, now);
    }

    /// Only a packet asked for once says how long a repair takes: after two
    /// asks nobody knows which one was answered (Karn's rule).
    fn learn_repair_time(&mut self, missing: &Missing, now: Instant) {
        if let (1, Some(asked_at)) = (missing.asks, missing.asked_at) {
            let sample = now.saturating_duration_since(asked_at);
            self.repair_time = (self.repair_time * 7 + sample) / 8;
        }
    }

    fn ask(&mut self, now: Instant) {
        let again_after = self.ask_again_after();
        let echo = self.repair_time >= ECHO_FROM;
        for (&media_ssrc, stream) in &mut self.streams {
            stream.missing.retain(|_, missing| {
                missing.asks < MAX_ASKS && now.saturating_duration_since(missing.since) < MAX_AGE
            });
            let mut due = Vec::new();
            for (&seq, missing) in &mut stream.missing {
                if due.len() == MAX_PER_NACK {
                    break;
                }
                let since_ask = missing.asked_at.map(|at| now.saturating_duration_since(at));
                if since_ask.is_none_or(|since| since >= again_after) {
                    missing.asked_at = Some(now);
                    missing.asks += 1;
                    missing.echoed = false;
                    due.push(seq as u16);
                } else if echo && !missing.echoed && since_ask.is_some_and(|s| s >= ECHO_AFTER) {
                    // The same ask again: its time (and so the repair time
                    // measured from it) stays the first copy's.
                    missing.echoed = true;
                    due.push(seq as u16);
                }
            }
            if due.is_empty() {
                continue;
            }
            let nack = TransportLayerNack {
                sender_ssrc: self.sender_ssrc,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&due),
            };
            self.write_queue.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)])),
            });
        }
        let anything_missing = self.streams.values().any(|s| !s.missing.is_empty());
        self.next_check = anything_missing.then_some(now + TICK);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackRequester {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(rtp) = &msg.message.packet {
            let ssrc = rtp.header.ssrc;
            if msg.message.has(&Attribute::Retransmission) && self.streams.contains_key(&ssrc) {
                self.repairs.received();
                self.repaired(ssrc, rtp.header.sequence_number, msg.now);
            } else if let Some(stream) = self.streams.get_mut(&ssrc) {
                let before = stream.missing.len();
                let filled = stream.received(rtp.header.sequence_number, msg.now);
                let grew = stream.missing.len() > before;
                if let Some(hole) = filled {
                    self.repairs.received();
                    self.learn_repair_time(&hole, msg.now);
                }
                if grew {
                    // Ask now, not on the next tick.
                    self.next_check = Some(msg.now);
                }
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.next_check.is_some_and(|at| now >= at) {
            self.ask(now);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.next_check
    }
}

fn wants_nack(info: &StreamInfo) -> bool {
    info.rtcp_feedback
        .iter()
        .any(|fb| fb.typ == "nack" && fb.parameter.is_empty())
}

impl Interceptor for NackRequester {
    // webrtc-rs binds a repair flow in its own right too, with its media's
    // codec and feedback. Its packets never get here as they are: the RTX
    // unwrapper, bound from the same association, turns each into the media
    // packet it repairs, so the flow's entry here stays empty.
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if wants_nack(info) {
            self.streams.insert(info.ssrc, Stream::default());
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }

    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use rtc::interceptor::RTCPFeedback;

    use super::*;
    use crate::test_packets;

    const MEDIA: u32 = 10;
    const RTX: u32 = 11;

    fn requester() -> NackRequester {
        let mut requester = NackRequester::default();
        let video = |ssrc, ssrc_rtx| StreamInfo {
            ssrc,
            ssrc_rtx,
            mime_type: "video/VP8".to_owned(),
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: String::new(),
            }],
            ..Default::default()
        };
        // As webrtc-rs binds them: the media with its repair flow, then the
        // repair flow in its own right, with the media's codec.
        requester.bind_remote_stream(&video(MEDIA, Some(RTX)));
        requester.bind_remote_stream(&video(RTX, None));
        requester
    }

    fn arrive(requester: &mut NackRequester, now: Instant, ssrc: u32, seq: u16, payload: &[u8]) {
        requester
            .handle_read(test_packets::rtp(now, ssrc, seq, payload))
            .expect("reads");
        requester.poll_read();
    }

    fn media(requester: &mut NackRequester, now: Instant, seq: u16) {
        arrive(requester, now, MEDIA, seq, &[0; 10]);
    }

    /// A repair as the chain hands it on: unwrapped from RTX (crate::rtx).
    fn repair(requester: &mut NackRequester, now: Instant, seq: u16) {
        let mut packet = test_packets::rtp(now, MEDIA, seq, &[0; 10]);
        packet.message.add(Attribute::Retransmission);
        requester.handle_read(packet).expect("reads");
        requester.poll_read();
    }

    /// Runs the timer up to `until`; the sequence numbers asked for.
    fn asks(requester: &mut NackRequester, until: Instant) -> Vec<u16> {
        let mut asked = Vec::new();
        while let Some(at) = requester.poll_timeout().filter(|at| *at <= until) {
            requester.handle_timeout(at).expect("times out");
            while let Some(packet) = requester.poll_write() {
                let Packet::Rtcp(rtcp) = &packet.message.packet else {
                    continue;
                };
                for nack in rtcp {
                    let nack = nack
                        .as_any()
                        .downcast_ref::<TransportLayerNack>()
                        .expect("a NACK");
                    assert_eq!(nack.media_ssrc, MEDIA);
                    for pair in &nack.nacks {
                        asked.extend(pair.packet_list());
                    }
                }
            }
        }
        asked
    }

    #[test]
    fn a_gap_is_asked_for_at_once() {
        let now = Instant::now();
        let mut requester = requester();
        media(&mut requester, now, 1);
        media(&mut requester, now, 4);
        assert_eq!(asks(&mut requester, now), vec![2, 3]);
    }

    #[test]
    fn a_repaired_packet_is_not_asked_for_again() {
        let now = Instant::now();
        let mut requester = requester();
        media(&mut requester, now, 1);
        media(&mut requester, now, 3);
        assert_eq!(asks(&mut requester, now), vec![2]);
        repair(&mut requester, now + Duration::from_millis(60), 2);
        assert!(asks(&mut requester, now + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn resends_that_arrive_are_counted_with_or_without_rtx() {
        let now = Instant::now();
        let repairs = RepairCounts::default();
        let mut requester = requester();
        requester.repairs = repairs.clone();
        media(&mut requester, now, 1);
        media(&mut requester, now, 4);
        repair(&mut requester, now + Duration::from_millis(60), 2);
        // A sender without RTX resends on the media stream.
        media(&mut requester, now + Duration::from_millis(61), 3);
        media(&mut requester, now + Duration::from_millis(62), 3);
        assert_eq!(repairs.received_total(), 2);
        assert_eq!(repairs.resent_total(), 0);
    }

    #[test]
    fn a_late_original_counts_as_arrived() {
        let now = Instant::now();
        let mut requester = requester();
        media(&mut requester, now, 1);
        media(&mut requester, now, 3);
        asks(&mut requester, now);
        media(&mut requester, now + Duration::from_millis(5), 2);
        assert!(asks(&mut requester, now + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn an_unanswered_ask_is_repeated_after_a_repair_time_and_then_given_up() {
        let now = Instant::now();
        let mut requester = requester();
        media(&mut requester, now, 1);
        media(&mut requester, now, 3);
        assert_eq!(asks(&mut requester, now), vec![2]);
        // Repairs are taken to take 100 ms, so the ask is echoed 10 ms
        // after; then not asked again before a repair could have come back
        // (100 ms + margin), and that repeat is echoed too.
        assert_eq!(
            asks(&mut requester, now + Duration::from_millis(20)),
            vec![2],
            "the echo"
        );
        assert!(asks(&mut requester, now + Duration::from_millis(100)).is_empty());
        assert_eq!(
            asks(&mut requester, now + Duration::from_millis(130)),
            vec![2],
            "asked again after a repair time"
        );
        assert_eq!(
            asks(&mut requester, now + Duration::from_millis(145)),
            vec![2],
            "and echoed"
        );
        let rest = asks(&mut requester, now + Duration::from_secs(5));
        assert!(
            !rest.is_empty() && rest.len() < 2 * usize::from(MAX_ASKS),
            "asked {} more times",
            rest.len()
        );
        assert_eq!(requester.poll_timeout(), None, "nothing left to look at");
    }

    /// Forty losses (sequence numbers 1, 3, …, 79), each repaired `repair`
    /// after it was asked for, `every` apart; returns when the last was.
    fn teach_repair_time(
        requester: &mut NackRequester,
        now: Instant,
        repair: Duration,
        every: Duration,
    ) -> Instant {
        teach_repair_time_by(requester, now, repair, every, self::repair)
    }

    /// As [`teach_repair_time`], each repair arriving by `repair_with`.
    fn teach_repair_time_by(
        requester: &mut NackRequester,
        now: Instant,
        repair: Duration,
        every: Duration,
        repair_with: fn(&mut NackRequester, Instant, u16),
    ) -> Instant {
        let mut at = now;
        for i in 0..40u16 {
            media(requester, at, i * 2);
            media(requester, at, i * 2 + 2);
            asks(requester, at);
            repair_with(requester, at + repair, i * 2 + 1);
            at += every;
        }
        at
    }

    /// After repairs that took 300 ms, a new loss is asked for once (and
    /// echoed), and not again until that repair time has passed.
    fn assert_the_repeat_waits_for_a_300_ms_repair(
        repair_with: fn(&mut NackRequester, Instant, u16),
    ) {
        let now = Instant::now();
        let mut requester = requester();
        let at = teach_repair_time_by(
            &mut requester,
            now,
            Duration::from_millis(300),
            Duration::from_millis(400),
            repair_with,
        );
        media(&mut requester, at, 200);
        let missing: Vec<u16> = (81..200).collect();
        assert_eq!(asks(&mut requester, at), missing);
        assert_eq!(
            asks(&mut requester, at + Duration::from_millis(20)),
            missing,
            "the echo"
        );
        assert!(
            asks(&mut requester, at + Duration::from_millis(250)).is_empty(),
            "not asked again before the learnt repair time"
        );
        assert!(!asks(&mut requester, at + Duration::from_millis(400)).is_empty());
    }

    #[test]
    fn the_repeat_follows_the_measured_repair_time() {
        assert_the_repeat_waits_for_a_300_ms_repair(repair);
    }

    #[test]
    fn resends_on_the_media_stream_teach_the_repair_time_too() {
        // A sender without RTX resends on the media stream: the repair time
        // is learnt all the same.
        assert_the_repeat_waits_for_a_300_ms_repair(media);
    }

    #[test]
    fn on_a_fast_path_an_ask_goes_once() {
        let now = Instant::now();
        let mut requester = requester();
        // Repairs that take 5 ms teach it the path is fast.
        let at = teach_repair_time(
            &mut requester,
            now,
            Duration::from_millis(5),
            Duration::from_millis(100),
        );
        media(&mut requester, at, 100);
        assert_eq!(asks(&mut requester, at), (81..100).collect::<Vec<_>>());
        assert!(asks(&mut requester, at + Duration::from_millis(15)).is_empty());
    }

    #[test]
    fn a_gap_wider_than_the_bound_is_not_tracked() {
        let now = Instant::now();
        let mut requester = requester();
        media(&mut requester, now, 1);
        media(&mut requester, now, 1 + MAX_MISSING as u16 + 10);
        assert!(asks(&mut requester, now).is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let now = Instant::now();
        let mut requester = requester();
        media(&mut requester, now, u16::MAX - 1);
        media(&mut requester, now, 1);
        assert_eq!(asks(&mut requester, now), vec![u16::MAX, 0]);
    }
}
