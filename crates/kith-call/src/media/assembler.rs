//! Reassembles video frames from RTP packets: reorders by sequence number,
//! releases a frame as soon as its last packet (marker bit) is in and every
//! packet before it is present, and skips past a frame whose packets did not
//! come back in time (the decoder then asks for a keyframe), or at once
//! when a whole keyframe has come behind it. What it holds is bounded in
//! packets and bytes whatever the sender does.
//!
//! Written by hand because webrtc-rs's `SampleBuilder` releases a frame only
//! when the *next* frame's first packet has arrived: a whole frame interval
//! (33 ms at 30 fps) of added latency on every frame.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::rtp;
use rtc::rtp::packetizer::Depacketizer;

/// Packets held at most. A hostile or broken sender (no frame starts, no
/// marker bits, wild sequence jumps) must not grow memory; 1024 packets is
/// more than a 720p keyframe needs at call bitrates (~100).
pub const MAX_BUFFERED_PACKETS: usize = 1024;
/// Payload bytes held at most (packets can be up to 64 KiB on a path that
/// allows it). A frame that would need more is dropped as a gap.
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;

/// What the assembler hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// A whole frame and its RTP timestamp (its media time: playout
    /// schedules by it).
    Frame { data: Bytes, rtp_timestamp: u32 },
    /// Packets were lost for good before the next frame.
    Gap,
}

/// How far the frame starting at `start` is known to be whole, so each
/// packet is looked at once however long the frame waits for its tail.
#[derive(Debug, Clone, Copy)]
struct Scanned {
    start: i64,
    /// Every packet from `start` through here is in, with `timestamp`, and
    /// none of them ends the frame.
    through: i64,
    timestamp: u32,
}

#[derive(Debug)]
pub struct FrameAssembler<D: Depacketizer> {
    depacketizer: D,
    /// Packets by unwrapped sequence number, with their arrival time.
    buffer: BTreeMap<i64, (Instant, rtp::Packet)>,
    /// The same packets by arrival, for the oldest without a scan.
    arrivals: BTreeSet<(Instant, i64)>,
    bytes: usize,
    /// The first sequence number of the next frame; `None` until a frame
    /// start is seen. While `None`, nothing buffered starts a frame.
    next: Option<i64>,
    scanned: Option<Scanned>,
    last_unwrapped: Option<i64>,
    max_wait: Duration,
    /// Tells a keyframe's first packet (see [`Self::skipping_to_keyframes`]).
    keyframe_start: Option<fn(&[u8]) -> bool>,
    /// Buffered packets that start a keyframe.
    keyframe_heads: BTreeSet<i64>,
}

impl<D: Depacketizer> FrameAssembler<D> {
    /// `max_wait`: how long a missing packet is waited for (NACK has that
    /// long to bring it back) before the frames behind it move on.
    pub fn new(depacketizer: D, max_wait: Duration) -> Self {
        Self {
            depacketizer,
            buffer: BTreeMap::new(),
            arrivals: BTreeSet::new(),
            bytes: 0,
            next: None,
            scanned: None,
            last_unwrapped: None,
            max_wait,
            keyframe_start: None,
            keyframe_heads: BTreeSet::new(),
        }
    }

    /// Frames that wait for a repair are given up as soon as a whole
    /// keyframe has come behind them: nothing before it is needed any
    /// more. After a burst of loss (a link capped mid-call) the frames
    /// behind the hole were given up one `max_wait` after another, and the
    /// keyframe asked for waited behind them: 1.3-1.6 s of frozen picture.
    pub fn skipping_to_keyframes(mut self, keyframe_start: fn(&[u8]) -> bool) -> Self {
        self.keyframe_start = Some(keyframe_start);
        self
    }

    pub fn buffered_packets(&self) -> usize {
        self.buffer.len()
    }

    /// Payload bytes held.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn unwrap_sequence(&mut self, sequence: u16) -> i64 {
        let unwrapped = match self.last_unwrapped {
            None => i64::from(sequence),
            Some(last) => {
                let delta = i64::from(sequence.wrapping_sub(last as u16) as i16);
                last + delta
            }
        };
        if self.last_unwrapped.is_none_or(|last| unwrapped > last) {
            self.last_unwrapped = Some(unwrapped);
        }
        unwrapped
    }

    /// Takes one packet; returns what became ready (in order).
    pub fn push(&mut self, now: Instant, packet: rtp::Packet) -> Vec<Assembled> {
        let sequence = self.unwrap_sequence(packet.header.sequence_number);
        if self.next.is_some_and(|next| sequence < next) || self.buffer.contains_key(&sequence) {
            return Vec::new(); // late or duplicate: its frame is gone or has it
        }
        if self.next.is_none() && self.depacketizer.is_partition_head(&packet.payload) {
            // The first frame start: what came before it belongs to a frame
            // whose start is missing.
            self.remove_below(sequence);
            self.next = Some(sequence);
        }
        self.insert(sequence, now, packet);
        let mut out = self.drain(now);
        let mut gap = false;
        while self.buffer.len() > MAX_BUFFERED_PACKETS || self.bytes > MAX_BUFFERED_BYTES {
            match self.next {
                // The frame being collected cannot fit (or the packets ahead
                // of it crowd it out): give it up.
                Some(next) => {
                    tracing::debug!(
                        packets = self.buffer.len(),
                        bytes = self.bytes,
                        "frame given up: the buffer is full"
                    );
                    self.skip_to_next_head(next);
                    gap = true;
                }
                // No frame started: the oldest packets are the least useful.
                None => {
                    if let Some((seq, _)) = self.buffer.first_key_value() {
                        let seq = *seq;
                        self.remove(seq);
                    }
                }
            }
        }
        if gap {
            push_gap(&mut out);
            for assembled in self.drain(now) {
                match assembled {
                    Assembled::Gap => push_gap(&mut out),
                    frame => out.push(frame),
                }
            }
        }
        out
    }

    fn insert(&mut self, sequence: i64, now: Instant, packet: rtp::Packet) {
        if self
            .keyframe_start
            .is_some_and(|starts_keyframe| starts_keyframe(&packet.payload))
        {
            self.keyframe_heads.insert(sequence);
        }
        self.bytes += packet.payload.len();
        self.arrivals.insert((now, sequence));
        self.buffer.insert(sequence, (now, packet));
    }

    fn remove(&mut self, sequence: i64) -> Option<rtp::Packet> {
        let (at, packet) = self.buffer.remove(&sequence)?;
        if self
            .scanned
            .is_some_and(|s| (s.start..=s.through).contains(&sequence))
        {
            self.scanned = None;
        }
        self.arrivals.remove(&(at, sequence));
        self.keyframe_heads.remove(&sequence);
        self.bytes -= packet.payload.len();
        Some(packet)
    }

    fn remove_below(&mut self, sequence: i64) {
        while let Some((seq, _)) = self.buffer.first_key_value() {
            let seq = *seq;
            if seq >= sequence {
                break;
            }
            self.remove(seq);
        }
    }

    fn clear(&mut self) {
        self.scanned = None;
        self.buffer.clear();
        self.arrivals.clear();
        self.keyframe_heads.clear();
        self.bytes = 0;
    }

    fn drain(&mut self, now: Instant) -> Vec<Assembled> {
        let mut out = Vec::new();
        while let Some(next) = self.next {
            match self.complete_frame(next) {
                Some(end) => {
                    if let Some((data, rtp_timestamp)) = self.take_frame(next, end) {
                        out.push(Assembled::Frame {
                            data,
                            rtp_timestamp,
                        });
                    } else {
                        tracing::debug!("frame given up: its packets do not depacketize");
                        push_gap(&mut out);
                    }
                    self.next = Some(end + 1);
                }
                None => {
                    if let Some(keyframe) = self.whole_keyframe_after(next) {
                        tracing::debug!(
                            packets = keyframe - next,
                            "frames given up: a whole keyframe came behind them"
                        );
                        // No gap: the keyframe is the fresh start a gap
                        // would ask for.
                        self.remove_below(keyframe);
                        self.next = Some(keyframe);
                        continue;
                    }
                    if self.waited_too_long(next, now) {
                        tracing::debug!(
                            buffered = self.buffer.len(),
                            "frame given up: a packet did not come back in time"
                        );
                        self.skip_to_next_head(next);
                        push_gap(&mut out);
                        continue;
                    }
                    break;
                }
            }
        }
        out
    }

    /// Whether the incomplete frame at `start` should be given up. If the
    /// packet right after its whole part is here, it belongs to another
    /// frame: this one's tail has no sequence number left, so at once. A
    /// packet is missing once one behind it has come: timed from that
    /// arrival (NACK's time). With nothing behind, its tail is still
    /// streaming in (a paced keyframe takes longer than `max_wait` at a low
    /// start bitrate): timed from the newest arrival, so only a stall ends
    /// it. Timed from the frame's first packet, a 720p H.264 keyframe paced
    /// over 800 ms was given up at 200 ms, and the first picture waited.
    fn waited_too_long(&self, start: i64, now: Instant) -> bool {
        let whole_through = match self.scanned {
            Some(scanned) if scanned.start == start => scanned.through,
            _ => start - 1,
        };
        let since = match self.buffer.range(whole_through + 1..).next() {
            Some((seq, _)) if *seq == whole_through + 1 => return true,
            Some((_, (behind_the_hole, _))) => Some(*behind_the_hole),
            None => self.arrivals.last().map(|(at, _)| *at),
        };
        since.is_some_and(|at| now.duration_since(at) > self.max_wait)
    }

    /// The last sequence number of the frame starting at `start`, if all of
    /// it is here.
    fn complete_frame(&mut self, start: i64) -> Option<i64> {
        let (through, timestamp) = match self.scanned {
            Some(scanned) if scanned.start == start => (scanned.through, scanned.timestamp),
            _ => (start - 1, self.buffer.get(&start)?.1.header.timestamp),
        };
        match self.scan(through, timestamp) {
            Ok(end) => Some(end),
            Err(through) => {
                self.scanned = Some(Scanned {
                    start,
                    through,
                    timestamp,
                });
                None
            }
        }
    }

    /// Scans a frame on past `through` (every packet of it up to there is
    /// in, with `timestamp`, and none ends it; one before its first packet
    /// to scan it whole): `Ok` with its last packet if all of it is here,
    /// else `Err` with how far it now runs whole.
    fn scan(&self, mut through: i64, timestamp: u32) -> Result<i64, i64> {
        for (seq, (_, packet)) in self.buffer.range(through + 1..) {
            if *seq != through + 1 || packet.header.timestamp != timestamp {
                break;
            }
            if self
                .depacketizer
                .is_partition_tail(packet.header.marker, &packet.payload)
            {
                return Ok(*seq);
            }
            through = *seq;
        }
        Err(through)
    }

    /// The first keyframe after `next` that is all here. Each buffered
    /// packet is looked at once at most, however many claim to start a
    /// keyframe.
    fn whole_keyframe_after(&self, next: i64) -> Option<i64> {
        let mut looked_through = next;
        for head in self.keyframe_heads.range(next + 1..).copied() {
            if head <= looked_through {
                continue;
            }
            match self.frame_end(head) {
                Ok(_) => return Some(head),
                Err(through) => looked_through = through,
            }
        }
        None
    }

    /// The last sequence number of the frame starting at `start` if all of
    /// it is here, else how far it runs whole ([`Self::complete_frame`]
    /// without its memory, for frames other than the next).
    fn frame_end(&self, start: i64) -> Result<i64, i64> {
        match self.buffer.get(&start) {
            Some((_, first)) => self.scan(start - 1, first.header.timestamp),
            None => Err(start),
        }
    }

    fn take_frame(&mut self, start: i64, end: i64) -> Option<(Bytes, u32)> {
        let mut frame = BytesMut::new();
        let mut ok = true;
        let mut timestamp = None;
        for seq in start..=end {
            if let Some(packet) = self.remove(seq) {
                timestamp.get_or_insert(packet.header.timestamp);
                match self.depacketizer.depacketize(&packet.payload) {
                    Ok(part) => frame.extend_from_slice(&part),
                    Err(_) => ok = false,
                }
            }
        }
        let timestamp = timestamp.filter(|_| ok && !frame.is_empty())?;
        Some((frame.freeze(), timestamp))
    }

    /// Drops everything before the next frame start after `from`.
    fn skip_to_next_head(&mut self, from: i64) {
        let timestamp = self.buffer.get(&from).map(|(_, p)| p.header.timestamp);
        let next_head = self
            .buffer
            .range(from + 1..)
            .find(|(_, (_, p))| {
                Some(p.header.timestamp) != timestamp
                    && self.depacketizer.is_partition_head(&p.payload)
            })
            .map(|(seq, _)| *seq);
        match next_head {
            Some(head) => {
                self.remove_below(head);
                self.next = Some(head);
            }
            None => {
                self.clear();
                self.next = None;
            }
        }
    }
}

/// Gaps in a row say no more than one: the decoder asks for one keyframe.
fn push_gap(out: &mut Vec<Assembled>) {
    if out.last() != Some(&Assembled::Gap) {
        out.push(Assembled::Gap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payload byte 0: bit 0 starts a frame, bit 1 a keyframe; the marker
    /// bit ends a frame.
    #[derive(Debug, Default)]
    struct Fake;

    fn starts_keyframe(payload: &[u8]) -> bool {
        payload.first().is_some_and(|b| b & 2 != 0)
    }

    impl Depacketizer for Fake {
        fn depacketize(&mut self, b: &Bytes) -> Result<Bytes, rtc::shared::error::Error> {
            Ok(b.slice(1..))
        }
        fn is_partition_head(&self, payload: &Bytes) -> bool {
            payload.first().is_some_and(|b| b & 1 != 0)
        }
        fn is_partition_tail(&self, marker: bool, _payload: &Bytes) -> bool {
            marker
        }
    }

    fn packet(seq: u16, ts: u32, head: bool, marker: bool, body: u8) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header {
                sequence_number: seq,
                timestamp: ts,
                marker,
                ..Default::default()
            },
            payload: Bytes::from(vec![u8::from(head), body]),
        }
    }

    fn keyframe(seq: u16, ts: u32, marker: bool, body: u8) -> rtp::Packet {
        let mut packet = packet(seq, ts, true, marker, body);
        packet.payload = Bytes::from(vec![3, body]);
        packet
    }

    fn frame(rtp_timestamp: u32, bytes: &[u8]) -> Assembled {
        Assembled::Frame {
            data: Bytes::copy_from_slice(bytes),
            rtp_timestamp,
        }
    }

    #[test]
    fn a_frame_is_released_with_its_last_packet() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        assert!(a.push(now, packet(10, 0, true, false, 1)).is_empty());
        assert!(a.push(now, packet(11, 0, false, false, 2)).is_empty());
        assert_eq!(
            a.push(now, packet(12, 0, false, true, 3)),
            vec![frame(0, &[1, 2, 3])]
        );
    }

    #[test]
    fn reordered_packets_are_put_back_in_order_across_the_wrap() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        assert!(a.push(now, packet(65535, 0, true, false, 1)).is_empty());
        assert!(a.push(now, packet(1, 0, false, true, 3)).is_empty());
        assert_eq!(
            a.push(now, packet(0, 0, false, false, 2)),
            vec![frame(0, &[1, 2, 3])]
        );
        assert_eq!(
            a.push(now, packet(2, 3000, true, true, 4)),
            vec![frame(3000, &[4])]
        );
        // A duplicate of an old packet is ignored.
        assert!(a.push(now, packet(0, 0, false, false, 2)).is_empty());
    }

    #[test]
    fn a_lost_packet_becomes_a_gap_after_the_wait_and_the_next_frame_follows() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let start = Instant::now();
        a.push(start, packet(1, 0, true, false, 1));
        // 2 is lost; the next frame is complete but must wait behind the gap.
        assert!(a.push(start, packet(3, 3000, true, true, 9)).is_empty());
        let later = start + Duration::from_millis(150);
        assert_eq!(
            a.push(later, packet(4, 6000, true, true, 7)),
            vec![Assembled::Gap, frame(3000, &[9]), frame(6000, &[7])]
        );
    }

    /// A frame missing a packet, a delta frame, then a keyframe: what comes
    /// out as the keyframe's last packet arrives, with no time passing.
    fn keyframe_behind_a_hole(skipping: bool) -> Vec<Assembled> {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        if skipping {
            a = a.skipping_to_keyframes(starts_keyframe);
        }
        let now = Instant::now();
        a.push(now, packet(1, 0, true, false, 1));
        // 2 is lost.
        assert!(a.push(now, packet(3, 3000, true, true, 9)).is_empty());
        assert!(a.push(now, keyframe(4, 6000, false, 5)).is_empty());
        a.push(now, packet(5, 6000, false, true, 6))
    }

    #[test]
    fn a_whole_keyframe_behind_a_hole_goes_at_once() {
        assert_eq!(keyframe_behind_a_hole(true), vec![frame(6000, &[5, 6])]);
        // Without the skip it waited for the lost packet's repair.
        assert!(keyframe_behind_a_hole(false).is_empty());
    }

    #[test]
    fn frames_after_the_skipped_to_keyframe_follow_and_a_late_repair_is_ignored() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100))
            .skipping_to_keyframes(starts_keyframe);
        let now = Instant::now();
        a.push(now, packet(1, 0, true, false, 1));
        a.push(now, keyframe(3, 3000, true, 5));
        assert_eq!(
            a.push(now, packet(4, 6000, true, true, 7)),
            vec![frame(6000, &[7])]
        );
        assert!(a.push(now, packet(2, 0, false, true, 2)).is_empty());
        assert_eq!(a.buffered_packets(), 0);
    }

    #[test]
    fn a_keyframe_missing_a_packet_is_not_skipped_to() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100))
            .skipping_to_keyframes(starts_keyframe);
        let now = Instant::now();
        a.push(now, packet(1, 0, true, false, 1));
        // 2 is lost, and so is the keyframe's 4.
        assert!(a.push(now, keyframe(3, 3000, false, 5)).is_empty());
        assert!(a.push(now, packet(5, 3000, false, true, 6)).is_empty());
        assert!(a.push(now, packet(6, 6000, true, true, 7)).is_empty());
        // Its repair comes: the keyframe goes, and the frame behind it.
        assert_eq!(
            a.push(now, packet(4, 3000, false, false, 8)),
            vec![frame(3000, &[5, 8, 6]), frame(6000, &[7])]
        );
    }

    #[test]
    fn packets_that_all_claim_a_keyframe_and_never_end_stay_bounded() {
        let mut a = FrameAssembler::new(Fake, Duration::from_secs(60))
            .skipping_to_keyframes(starts_keyframe);
        let now = Instant::now();
        a.push(now, packet(0, 0, true, false, 0));
        for seq in 2..4000u16 {
            let out = a.push(now, keyframe(seq, 3000, false, 0));
            assert!(out.iter().all(|o| *o == Assembled::Gap), "{out:?}");
            assert_bounded(&a);
        }
    }

    #[test]
    fn a_packet_that_comes_back_in_time_completes_its_frame() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        a.push(now, packet(1, 0, true, false, 1));
        a.push(now, packet(3, 3000, true, true, 9));
        // The retransmission of 2 arrives (NACK): both frames go, in order.
        assert_eq!(
            a.push(now, packet(2, 0, false, true, 2)),
            vec![frame(0, &[1, 2]), frame(3000, &[9])]
        );
    }

    #[test]
    fn a_keyframe_paced_out_slower_than_the_wait_arrives_whole() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(200));
        let start = Instant::now();
        // 80 packets in order, one every 10 ms: 800 ms for the frame.
        for seq in 0..79u16 {
            let at = start + Duration::from_millis(u64::from(seq) * 10);
            let out = a.push(at, packet(seq, 0, seq == 0, false, 1));
            assert!(out.is_empty(), "packet {seq}: {out:?}");
        }
        let end = start + Duration::from_millis(790);
        assert_eq!(a.push(end, packet(79, 0, false, true, 2)).len(), 1);
    }

    #[test]
    fn a_frame_whose_packets_stop_coming_is_given_up() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let start = Instant::now();
        a.push(start, packet(1, 0, true, false, 1));
        // Its tail is lost and nothing else comes for a while; then the
        // next frame's start shows the loss and waits it out.
        let later = start + Duration::from_millis(500);
        assert!(a.push(later, packet(3, 3000, true, true, 9)).is_empty());
        assert_eq!(
            a.push(
                later + Duration::from_millis(150),
                packet(4, 6000, true, true, 7)
            ),
            vec![Assembled::Gap, frame(3000, &[9]), frame(6000, &[7])]
        );
    }

    fn sized(seq: u16, ts: u32, head: bool, marker: bool, len: usize) -> rtp::Packet {
        let mut payload = vec![0u8; len.max(1)];
        payload[0] = u8::from(head);
        rtp::Packet {
            header: rtp::header::Header {
                sequence_number: seq,
                timestamp: ts,
                marker,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        }
    }

    const FLOOD: u32 = 100_000;

    fn assert_bounded<D: Depacketizer>(a: &FrameAssembler<D>) {
        assert!(
            a.buffered_packets() <= MAX_BUFFERED_PACKETS,
            "{}",
            a.buffered_packets()
        );
        assert!(
            a.buffered_bytes() <= MAX_BUFFERED_BYTES,
            "{}",
            a.buffered_bytes()
        );
    }

    /// A small deterministic generator: the flood tests need no real randomness.
    fn lcg(state: &mut u64) -> u32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 33) as u32
    }

    #[test]
    fn packets_that_never_start_a_frame_stay_bounded() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        // One instant: nothing ever times out, only the bounds hold.
        let now = Instant::now();
        for i in 0..FLOOD {
            let out = a.push(now, sized(i as u16, i / 3, false, i % 3 == 2, 1200));
            assert!(out.iter().all(|x| *x == Assembled::Gap));
            assert_bounded(&a);
        }
        assert_eq!(a.buffered_packets(), MAX_BUFFERED_PACKETS);
        // A real frame still gets through afterwards.
        let seq = FLOOD as u16;
        assert_eq!(
            a.push(now, packet(seq, 1, true, true, 5)),
            vec![frame(1, &[5])]
        );
    }

    #[test]
    fn a_frame_that_never_ends_stays_bounded_and_becomes_a_gap() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        let mut gaps = 0;
        for i in 0..FLOOD {
            // One frame start, then packets of the same frame without a marker.
            let out = a.push(now, sized(i as u16, 0, i == 0, false, 1200));
            assert!(out.iter().all(|x| *x == Assembled::Gap));
            gaps += out.len();
            assert_bounded(&a);
        }
        assert!(gaps >= 1);
        // Every packet a frame start with its own timestamp, never a marker.
        for i in FLOOD..2 * FLOOD {
            let out = a.push(now, sized(i as u16, i, true, false, 1200));
            assert!(out.iter().all(|x| *x == Assembled::Gap));
            assert_bounded(&a);
        }
        // Each junk frame is given up as the next packet shows its tail
        // cannot come; a real frame then goes straight through.
        let seq = (2 * FLOOD) as u16;
        let later = now + Duration::from_millis(150);
        let out = a.push(later, packet(seq, 7, true, true, 5));
        assert_eq!(out.last(), Some(&frame(7, &[5])), "{out:?}");
        assert!(out[..out.len() - 1].iter().all(|x| *x == Assembled::Gap));
    }

    #[test]
    fn wild_sequence_numbers_stay_bounded() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        let mut state = 7;
        for _ in 0..FLOOD {
            let bits = lcg(&mut state);
            let seq = lcg(&mut state) as u16;
            let ts = lcg(&mut state) % 16;
            a.push(now, sized(seq, ts, bits & 1 == 1, bits & 2 == 2, 1200));
            assert_bounded(&a);
        }
    }

    #[test]
    fn a_frame_larger_than_the_byte_bound_is_a_gap() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        const BIG: usize = 60_000;
        let packets = MAX_BUFFERED_BYTES / BIG + 20;
        let mut out = Vec::new();
        for i in 0..packets {
            let last = i + 1 == packets;
            out.extend(a.push(now, sized(i as u16, 0, i == 0, last, BIG)));
            assert_bounded(&a);
        }
        assert!(out.contains(&Assembled::Gap));
        assert!(!out.iter().any(|x| matches!(x, Assembled::Frame { .. })));
        // The next frame decodes again (after the keyframe the gap asks for).
        let seq = packets as u16;
        assert_eq!(
            a.push(now, packet(seq, 3000, true, true, 5)),
            vec![frame(3000, &[5])]
        );
        assert_eq!(a.buffered_packets(), 0);
    }

    /// 2 % random loss (no retransmission) on frames of 10 packets at 30 fps:
    /// every frame released is whole and in order, and the frames whose
    /// packets all came are released (about 0.98^10 = 82 % of them).
    #[test]
    fn under_random_loss_only_whole_frames_come_out_and_most_do() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(200));
        let start = Instant::now();
        let mut seq: u16 = 65_000;
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % 100
        };
        let mut out = Vec::new();
        let mut intact = 0;
        for n in 0..3000u32 {
            let now = start + Duration::from_millis(u64::from(n) * 33);
            let mut whole = true;
            for k in 0..10u8 {
                let p = packet(seq, n * 3000, k == 0, k == 9, (n % 250) as u8);
                seq = seq.wrapping_add(1);
                if random() < 2 {
                    whole = false;
                    continue;
                }
                out.extend(a.push(now, p));
            }
            intact += usize::from(whole);
        }
        let frames: Vec<u8> = out
            .iter()
            .filter_map(|o| match o {
                Assembled::Frame { data: bytes, .. } => {
                    assert_eq!(bytes.len(), 10, "a frame came out with packets missing");
                    assert!(bytes.iter().all(|b| *b == bytes[0]), "mixed frames");
                    Some(bytes[0])
                }
                Assembled::Gap => None,
            })
            .collect();
        assert!(
            frames.len() * 100 >= intact * 95,
            "{} of {intact} whole frames released",
            frames.len()
        );
    }
}
