//! Reassembles video frames from RTP packets: reorders by sequence number,
//! releases a frame as soon as its last packet (marker bit) is in and every
//! packet before it is present, and skips past a frame whose packets did not
//! come back in time (the decoder then asks for a keyframe).
//!
//! Written by hand because webrtc-rs's `SampleBuilder` releases a frame only
//! when the *next* frame's first packet has arrived: a whole frame interval
//! (33 ms at 30 fps) of added latency on every frame.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::rtp;
use rtc::rtp::packetizer::Depacketizer;

/// What the assembler hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    Frame(Bytes),
    /// Packets were lost for good before the next frame.
    Gap,
}

#[derive(Debug)]
pub struct FrameAssembler<D: Depacketizer> {
    depacketizer: D,
    /// Packets by unwrapped sequence number, with their arrival time.
    buffer: BTreeMap<i64, (Instant, rtp::Packet)>,
    /// The first sequence number of the next frame; `None` until the first
    /// frame start is seen.
    next: Option<i64>,
    last_unwrapped: Option<i64>,
    max_wait: Duration,
}

impl<D: Depacketizer> FrameAssembler<D> {
    /// `max_wait`: how long a missing packet is waited for (NACK has that
    /// long to bring it back) before the frames behind it move on.
    pub fn new(depacketizer: D, max_wait: Duration) -> Self {
        Self {
            depacketizer,
            buffer: BTreeMap::new(),
            next: None,
            last_unwrapped: None,
            max_wait,
        }
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
        if self.next.is_some_and(|next| sequence < next) {
            return Vec::new(); // late or duplicate: its frame is gone
        }
        self.buffer.entry(sequence).or_insert((now, packet));
        self.drain(now)
    }

    fn drain(&mut self, now: Instant) -> Vec<Assembled> {
        let mut out = Vec::new();
        loop {
            if self.next.is_none() {
                // Start at the first packet that opens a frame.
                let start = self
                    .buffer
                    .iter()
                    .find(|(_, (_, p))| self.depacketizer.is_partition_head(&p.payload))
                    .map(|(seq, _)| *seq);
                let Some(start) = start else { break };
                self.buffer.retain(|seq, _| *seq >= start);
                self.next = Some(start);
            }
            let Some(next) = self.next else { break };
            match self.complete_frame(next) {
                Some(end) => {
                    if let Some(frame) = self.take_frame(next, end) {
                        out.push(Assembled::Frame(frame));
                    } else {
                        out.push(Assembled::Gap);
                    }
                    self.next = Some(end + 1);
                }
                None => {
                    // Incomplete: give up on it once its oldest packet, or the
                    // gap in front of it, has waited too long.
                    let oldest = self.buffer.values().map(|(at, _)| *at).min();
                    if oldest.is_some_and(|at| now.duration_since(at) > self.max_wait) {
                        self.skip_to_next_head(next);
                        out.push(Assembled::Gap);
                        continue;
                    }
                    break;
                }
            }
        }
        out
    }

    /// The last sequence number of the frame starting at `start`, if all of
    /// it is here.
    fn complete_frame(&self, start: i64) -> Option<i64> {
        let (_, first) = self.buffer.get(&start)?;
        let timestamp = first.header.timestamp;
        for (expected, (seq, (_, packet))) in (start..).zip(self.buffer.range(start..)) {
            if *seq != expected || packet.header.timestamp != timestamp {
                return None;
            }
            if self
                .depacketizer
                .is_partition_tail(packet.header.marker, &packet.payload)
            {
                return Some(*seq);
            }
        }
        None
    }

    fn take_frame(&mut self, start: i64, end: i64) -> Option<Bytes> {
        let mut frame = BytesMut::new();
        let mut ok = true;
        for seq in start..=end {
            if let Some((_, packet)) = self.buffer.remove(&seq) {
                match self.depacketizer.depacketize(&packet.payload) {
                    Ok(part) => frame.extend_from_slice(&part),
                    Err(_) => ok = false,
                }
            }
        }
        (ok && !frame.is_empty()).then(|| frame.freeze())
    }

    /// Drops everything before the next frame start after `from`.
    fn skip_to_next_head(&mut self, from: i64) {
        let timestamp = self.buffer.get(&from).map(|(_, p)| p.header.timestamp);
        let next_head = self
            .buffer
            .iter()
            .filter(|(seq, (_, p))| {
                **seq > from
                    && Some(p.header.timestamp) != timestamp
                    && self.depacketizer.is_partition_head(&p.payload)
            })
            .map(|(seq, _)| *seq)
            .next();
        match next_head {
            Some(head) => {
                self.buffer.retain(|seq, _| *seq >= head);
                self.next = Some(head);
            }
            None => {
                self.buffer.clear();
                self.next = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payload byte 0: 1 starts a frame; the marker bit ends it.
    #[derive(Debug, Default)]
    struct Fake;

    impl Depacketizer for Fake {
        fn depacketize(&mut self, b: &Bytes) -> Result<Bytes, rtc::shared::error::Error> {
            Ok(b.slice(1..))
        }
        fn is_partition_head(&self, payload: &Bytes) -> bool {
            payload.first() == Some(&1)
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

    fn frame(bytes: &[u8]) -> Assembled {
        Assembled::Frame(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn a_frame_is_released_with_its_last_packet() {
        let mut a = FrameAssembler::new(Fake, Duration::from_millis(100));
        let now = Instant::now();
        assert!(a.push(now, packet(10, 0, true, false, 1)).is_empty());
        assert!(a.push(now, packet(11, 0, false, false, 2)).is_empty());
        assert_eq!(
            a.push(now, packet(12, 0, false, true, 3)),
            vec![frame(&[1, 2, 3])]
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
            vec![frame(&[1, 2, 3])]
        );
        assert_eq!(
            a.push(now, packet(2, 3000, true, true, 4)),
            vec![frame(&[4])]
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
            vec![Assembled::Gap, frame(&[9]), frame(&[7])]
        );
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
            vec![frame(&[1, 2]), frame(&[9])]
        );
    }
}
