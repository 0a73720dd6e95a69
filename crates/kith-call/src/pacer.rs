//! The pacer between the senders and the wire, in webrtc-rs's pacer slot.
//!
//! webrtc-rs's pacer is one FIFO for everything and holds up to 4,096
//! packets: audio waits behind a keyframe, a retransmission waits behind
//! every frame sent after the loss it repairs, and at a low estimate the
//! queue grows to seconds (8–13 s glass-to-glass seen under a 500 kbit/s
//! cap). This one keeps libwebrtc's order (audio, then retransmissions,
//! then video) and bounds how long anything waits. No crate offers this
//! for webrtc-rs's interceptor chain, so it is written here.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Pacer, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

use crate::estimator::SharedEstimate;
use crate::repairs::RepairCounts;
use crate::superseded::KeyframeMarks;
use kith_call_core::sharp_fall::FallWatch;

/// Video is released at least fast enough to empty its queue in this
/// long. A queue that grows past it (a keyframe at a low estimate, an
/// encoder overshooting) is drained faster than the estimate, as
/// libwebrtc's pacer does past 2 s: video that waits longer only arrives
/// late, and a call cannot use late video.
pub const MAX_QUEUE_TIME: Duration = Duration::from_millis(500);
/// A retransmission that has waited this long is dropped: by then the
/// receiver has asked again or gone on without the packet.
pub const MAX_RETRANSMISSION_WAIT: Duration = Duration::from_millis(500);
/// Video packets held; past this new ones are refused (about 2.4 MB).
pub const MAX_VIDEO_PACKETS: usize = 2048;
/// Retransmissions held; a peer's NACKs cannot queue more.
pub const MAX_RETRANSMISSIONS: usize = 512;
/// Asks within this long of a packet's first resend are one round of asks:
/// a Kith receiver sends each NACK twice, 10 ms apart, on a long path (see
/// `nack::ECHO_AFTER`), and a genuine second ask comes only after a
/// repair's round trip.
pub const RESEND_GUARD: Duration = Duration::from_millis(25);
/// Copies of a packet one round of asks gets. Each copy of a NACK that
/// arrives is answered, up to this: a resend lost on the way (5 % of them
/// at 5 % loss) then costs no second round trip unless both copies were
/// lost, and on a long path that round trip was a freeze. A repair costs
/// twice the bits instead, within the resend budget. libwebrtc answers one
/// NACK per round trip, and Chromium sends one, so a call with it gets one.
pub const COPIES_PER_ROUND: usize = 2;
/// Retransmissions may use at most the bandwidth estimate, as libwebrtc's
/// retransmission rate limiter allows: past it a lossy link's NACKs would
/// crowd out the video they repair (4.5 Mbit/s of resends seen on a
/// 500 kbit/s link), and a resend over budget is dropped, not queued.
const RETRANSMISSION_SHARE: f64 = 1.0;
/// The rate before the congestion controller's first estimate.
const START_BPS: f64 = 1_000_000.0;
/// The shortest wait the pacer asks for. The bucket's wait for the last
/// fraction of a bit rounds to zero nanoseconds, and a deadline that
/// refills nothing would spin the chain at one instant.
const MIN_WAIT: Duration = Duration::from_micros(1);
/// A queue past its deadline is drained over this long, not at once.
const MIN_DRAIN_TIME: Duration = Duration::from_millis(20);
/// After a sharp fall of the target (a cap, a congested hop) video waits
/// this long, audio and resends not: the queue the link had built before
/// the fall was seen drains meanwhile (a 500 kbit/s link's 200 ms one
/// nearly empties), and the keyframe for the new size, which drops the
/// frames queued before it, then finds room. Sent at once, into that full
/// queue, the keyframe lost a packet, waited a round trip for its repair
/// behind it, and the picture froze for over a second.
const VIDEO_HOLD: Duration = Duration::from_millis(200);
/// One hold per fall: the estimator's cuts after it come in steps over
/// the next second, and a second hold, once the picture had resumed, was
/// a second freeze.
const HOLD_AGAIN_AFTER: Duration = Duration::from_secs(2);

pub struct PriorityPacer {
    bucket: Pacer,
    /// What retransmissions may spend, refilled at [`RETRANSMISSION_SHARE`]
    /// of the estimate.
    retransmission_budget: Pacer,
    /// What the congestion controller last asked for.
    target_bps: f64,
    audio_ssrcs: HashSet<u32>,
    rtx_ssrcs: HashSet<u32>,
    retransmissions: VecDeque<TaggedPacket>,
    /// Packets resent within [`RESEND_GUARD`], a copy each, oldest first
    /// (at most [`MAX_RETRANSMISSIONS`]).
    recent_resends: VecDeque<(Instant, (u32, u16))>,
    video: VecDeque<TaggedPacket>,
    video_bits: f64,
    /// Packets the budget has released (and audio, which is never held).
    released: VecDeque<TaggedPacket>,
    read_queue: VecDeque<TaggedPacket>,
    /// RTCP, which is not paced.
    write_queue: VecDeque<TaggedPacket>,
    tally: Tally,
    resends: ResendMeter,
    shared: SharedEstimate,
    /// Resends counted for the stats.
    repairs: RepairCounts,
    /// Resends a keyframe sent since has made useless are not sent.
    keyframes: KeyframeMarks,
    fall: FallWatch,
    /// No video leaves before then (see [`VIDEO_HOLD`]).
    hold_video_until: Option<Instant>,
    last_hold: Option<Instant>,
}

/// How often the resend rate is measured for the encoder's budget.
const RESEND_WINDOW: Duration = Duration::from_millis(250);

/// The rate retransmissions leave at, smoothed over a few windows so one
/// repaired burst does not yank the encoder's target.
#[derive(Debug, Default)]
struct ResendMeter {
    since: Option<Instant>,
    bits: f64,
    bps: f64,
}

impl ResendMeter {
    /// The new rate when a window has closed.
    fn tick(&mut self, now: Instant) -> Option<f64> {
        let since = *self.since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        if elapsed < RESEND_WINDOW {
            return None;
        }
        let window = self.bits / elapsed.as_secs_f64();
        self.bps = (self.bps + window) / 2.0;
        self.bits = 0.0;
        self.since = Some(now);
        Some(self.bps)
    }
}

/// What went out, logged once a second (target `kith_call::pacer` at
/// debug), so a link flooded by audio, video or resends can be told apart.
#[derive(Debug, Default)]
struct Tally {
    since: Option<Instant>,
    audio_bits: f64,
    video_bits: f64,
    resent_bits: f64,
    /// Resends that went on the media SSRC (no RTX negotiated for it).
    resent_without_rtx: u32,
    /// Asks for a packet already resent [`COPIES_PER_ROUND`] times within
    /// [`RESEND_GUARD`] or queued as often.
    resends_repeated: u32,
    /// Asks over the resend budget or past the resend queue's bound.
    resends_refused: u32,
    /// Resends that waited past [`MAX_RETRANSMISSION_WAIT`] and were dropped.
    resends_stale: u32,
    /// Resends of packets from before a keyframe sent since, dropped.
    resends_superseded: u32,
    /// Video packets queued before a keyframe, dropped.
    video_superseded: u32,
}

impl Tally {
    fn log_each_second(&mut self, now: Instant, target_bps: f64, queued_bits: f64) {
        let since = *self.since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since).as_secs_f64();
        if elapsed < 1.0 {
            return;
        }
        tracing::debug!(
            target_kbps = (target_bps / 1000.0) as u64,
            audio_kbps = (self.audio_bits / elapsed / 1000.0) as u64,
            video_kbps = (self.video_bits / elapsed / 1000.0) as u64,
            resent_kbps = (self.resent_bits / elapsed / 1000.0) as u64,
            resent_without_rtx = self.resent_without_rtx,
            resends_repeated = self.resends_repeated,
            resends_refused = self.resends_refused,
            resends_stale = self.resends_stale,
            resends_superseded = self.resends_superseded,
            video_superseded = self.video_superseded,
            queued_kbit = (queued_bits / 1000.0) as u64,
            "sent"
        );
        *self = Tally {
            since: Some(now),
            ..Tally::default()
        };
    }
}

impl Default for PriorityPacer {
    fn default() -> Self {
        Self {
            bucket: Pacer::new(START_BPS),
            retransmission_budget: Pacer::new(retransmission_rate(START_BPS)),
            target_bps: START_BPS,
            audio_ssrcs: HashSet::new(),
            rtx_ssrcs: HashSet::new(),
            retransmissions: VecDeque::new(),
            recent_resends: VecDeque::new(),
            video: VecDeque::new(),
            video_bits: 0.0,
            released: VecDeque::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
            tally: Tally::default(),
            resends: ResendMeter::default(),
            shared: SharedEstimate::default(),
            repairs: RepairCounts::default(),
            keyframes: KeyframeMarks::default(),
            fall: FallWatch::default(),
            hold_video_until: None,
            last_hold: None,
        }
    }
}

impl std::fmt::Debug for PriorityPacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriorityPacer")
            .field("target_bps", &self.target_bps)
            .field("video", &self.video.len())
            .field("retransmissions", &self.retransmissions.len())
            .finish_non_exhaustive()
    }
}

fn retransmission_rate(target_bps: f64) -> f64 {
    crate::estimator::estimate_from_target(target_bps) * RETRANSMISSION_SHARE
}

fn bits_of(packet: &TaggedPacket) -> f64 {
    match &packet.message.packet {
        Packet::Rtp(rtp) => (rtp.marshal_size() * 8) as f64,
        _ => 0.0,
    }
}

impl PriorityPacer {
    /// A pacer that publishes its resend rate to `shared`.
    pub fn new(shared: SharedEstimate) -> Self {
        Self {
            shared,
            ..Self::default()
        }
    }

    /// Counts each resend it sends in `repairs`.
    pub fn counting(mut self, repairs: RepairCounts) -> Self {
        self.repairs = repairs;
        self
    }

    /// The packet a retransmission repairs: RTX carries its sequence number
    /// in the payload's first two bytes (RFC 4588), a plain resend in its
    /// header.
    fn repaired(&self, packet: &TaggedPacket) -> Option<(u32, u16)> {
        let Packet::Rtp(rtp) = &packet.message.packet else {
            return None;
        };
        let ssrc = rtp.header.ssrc;
        if self.rtx_ssrcs.contains(&ssrc) {
            Some((ssrc, crate::rtx::original_sequence_number(rtp)?))
        } else {
            Some((ssrc, rtp.header.sequence_number))
        }
    }

    /// The estimate, or faster when the queued video would otherwise not
    /// be gone by the time its oldest packet has waited [`MAX_QUEUE_TIME`].
    fn set_rate(&mut self, now: Instant) {
        let drain_bps = self.video.front().map_or(0.0, |oldest| {
            let deadline = oldest.now + MAX_QUEUE_TIME;
            let left = deadline.saturating_duration_since(now).max(MIN_DRAIN_TIME);
            self.video_bits / left.as_secs_f64()
        });
        let rate = self.target_bps.max(drain_bps);
        if (rate - self.bucket.target_bitrate()).abs() > 1.0 {
            self.bucket.set_target_bitrate(rate);
        }
    }

    /// The budget a packet of `bits` waits for: a packet larger than the
    /// burst goes once the bucket is full, as webrtc-rs's pacer sends it.
    fn needed(&self, bits: f64) -> f64 {
        bits.min(self.bucket.burst_bits())
    }

    fn drop_stale_retransmissions(&mut self, now: Instant) {
        while self
            .retransmissions
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.now) > MAX_RETRANSMISSION_WAIT)
        {
            self.retransmissions.pop_front();
            self.tally.resends_stale += 1;
        }
    }

    fn drop_superseded_retransmissions(&mut self) {
        let before = self.retransmissions.len();
        let mut retransmissions = std::mem::take(&mut self.retransmissions);
        retransmissions.retain(|packet| {
            !self
                .repaired(packet)
                .is_some_and(|(ssrc, sequence)| self.keyframes.superseded(ssrc, sequence))
        });
        self.retransmissions = retransmissions;
        self.tally.resends_superseded += (before - self.retransmissions.len()) as u32;
    }

    /// Video of `ssrc` still queued when its keyframe comes: the receiver
    /// needs none of it once the keyframe is there, and it would only
    /// delay it.
    fn drop_video_before_keyframe(&mut self, ssrc: u32) {
        let before = self.video.len();
        let mut dropped_bits = 0.0;
        self.video.retain(|packet| {
            let stale =
                matches!(&packet.message.packet, Packet::Rtp(rtp) if rtp.header.ssrc == ssrc);
            if stale {
                dropped_bits += bits_of(packet);
            }
            !stale
        });
        self.video_bits = (self.video_bits - dropped_bits).max(0.0);
        self.tally.video_superseded += (before - self.video.len()) as u32;
    }

    /// What leaves next: resends, then video unless it is held.
    fn head(&self) -> Option<&TaggedPacket> {
        self.retransmissions.front().or_else(|| {
            self.hold_video_until
                .is_none()
                .then(|| self.video.front())
                .flatten()
        })
    }

    fn release(&mut self, now: Instant) {
        if self.hold_video_until.is_some_and(|until| now >= until) {
            self.hold_video_until = None;
        }
        self.bucket.refill(now);
        self.drop_stale_retransmissions(now);
        self.set_rate(now);
        while let Some(head) = self.head() {
            let bits = bits_of(head);
            if !self.bucket.can_afford(self.needed(bits)) {
                break;
            }
            let mut packet = match self.retransmissions.pop_front() {
                Some(packet) => {
                    self.repairs.resent();
                    if let Packet::Rtp(rtp) = &packet.message.packet
                        && !self.rtx_ssrcs.contains(&rtp.header.ssrc)
                    {
                        self.tally.resent_without_rtx += 1;
                    }
                    self.tally.resent_bits += bits;
                    self.resends.bits += bits;
                    packet
                }
                None => match self.video.pop_front() {
                    Some(packet) => {
                        self.video_bits = (self.video_bits - bits).max(0.0);
                        self.tally.video_bits += bits;
                        packet
                    }
                    None => break,
                },
            };
            self.bucket.consume(bits);
            // It departs now: the send history beyond us must see this
            // instant, or the queueing is charged to the network.
            packet.now = now;
            self.released.push_back(packet);
        }
        self.measure(now);
    }

    /// The resend rate for the encoder's budget, and the log of what went
    /// out. Runs on every release and every packet written (audio comes
    /// every 20 ms), so the rate falls back once resends stop.
    fn measure(&mut self, now: Instant) {
        if let Some(bps) = self.resends.tick(now) {
            self.shared.set_resent(bps);
        }
        self.tally
            .log_each_second(now, self.target_bps, self.video_bits);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PriorityPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        // The congestion controller is wire-most, so its estimate can only
        // reach us on the read leg, riding the feedback that produced it.
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            msg.message.get(&Attribute::TargetBitrateChanged {
                bits_per_second: 0.0,
            })
        {
            self.target_bps = bits_per_second.max(0.0);
            if self.fall.fell(msg.now, self.target_bps)
                && self
                    .last_hold
                    .is_none_or(|at| msg.now.saturating_duration_since(at) >= HOLD_AGAIN_AFTER)
            {
                tracing::debug!(
                    target_bps = self.target_bps as u64,
                    "a sharp fall: video held"
                );
                self.hold_video_until = Some(msg.now + VIDEO_HOLD);
                self.last_hold = Some(msg.now);
            }
            self.retransmission_budget.refill(msg.now);
            self.retransmission_budget
                .set_target_bitrate(retransmission_rate(self.target_bps));
            self.set_rate(msg.now);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtp(rtp) = &msg.message.packet else {
            self.write_queue.push_back(msg);
            return Ok(());
        };
        self.bucket.refill(msg.now);
        self.measure(msg.now);
        if self.audio_ssrcs.contains(&rtp.header.ssrc) {
            // Audio is never held: it is small and steady, and a talkspurt
            // behind a keyframe is what a listener hears. It is charged, so
            // video makes room for it.
            self.bucket.consume(bits_of(&msg));
            self.tally.audio_bits += bits_of(&msg);
            self.released.push_back(msg);
            return Ok(());
        }
        if msg.message.has(&Attribute::Retransmission) {
            self.drop_stale_retransmissions(msg.now);
            let repaired = self.repaired(&msg);
            if repaired.is_some_and(|(ssrc, sequence)| self.keyframes.superseded(ssrc, sequence)) {
                self.tally.resends_superseded += 1;
                return Ok(());
            }
            while self
                .recent_resends
                .front()
                .is_some_and(|(at, _)| msg.now.saturating_duration_since(*at) > RESEND_GUARD)
            {
                self.recent_resends.pop_front();
            }
            // Asks past the round's copies, for a packet whose resends
            // have not left yet or left a moment ago, would only flood.
            let again = repaired.is_some_and(|repaired| {
                let sent = self
                    .recent_resends
                    .iter()
                    .filter(|(_, r)| *r == repaired)
                    .count();
                let queued = self
                    .retransmissions
                    .iter()
                    .filter(|queued| self.repaired(queued) == Some(repaired))
                    .count();
                // A plain resend's copy would share its SRTP index, and
                // the receiver's replay check drops it.
                let copies = if self.rtx_ssrcs.contains(&repaired.0) {
                    COPIES_PER_ROUND
                } else {
                    1
                };
                sent.max(queued) >= copies
            });
            let bits = bits_of(&msg);
            self.retransmission_budget.refill(msg.now);
            if !again
                && self.retransmissions.len() < MAX_RETRANSMISSIONS
                && self.retransmission_budget.can_afford(bits)
            {
                self.retransmission_budget.consume(bits);
                if let Some(repaired) = repaired {
                    if self.recent_resends.len() == MAX_RETRANSMISSIONS {
                        self.recent_resends.pop_front();
                    }
                    self.recent_resends.push_back((msg.now, repaired));
                }
                self.retransmissions.push_back(msg);
            } else if again {
                self.tally.resends_repeated += 1;
            } else {
                self.tally.resends_refused += 1;
            }
        } else if self.video.len() < MAX_VIDEO_PACKETS {
            if self.keyframes.sent(rtp) {
                self.drop_superseded_retransmissions();
                self.drop_video_before_keyframe(rtp.header.ssrc);
            }
            self.video_bits += bits_of(&msg);
            let now = msg.now;
            self.video.push_back(msg);
            self.set_rate(now);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue
            .pop_front()
            .or_else(|| self.released.pop_front())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        self.release(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        if let Some(until) = self.hold_video_until
            && self.retransmissions.is_empty()
            && !self.video.is_empty()
        {
            return Some(until);
        }
        // When the head can afford to go: always after the last refill, so
        // the chain never spins on a deadline already passed.
        let needed = self.needed(bits_of(self.head()?));
        let at = self.bucket.affordable_at(needed)?;
        Some(if self.bucket.can_afford(needed) {
            at
        } else {
            at + MIN_WAIT
        })
    }
}

impl Interceptor for PriorityPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.keyframes
            .bind(info.ssrc, info.ssrc_rtx, &info.mime_type);
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio_ssrcs.insert(info.ssrc);
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx_ssrcs.insert(rtx);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.keyframes.unbind(info.ssrc, info.ssrc_rtx);
        self.audio_ssrcs.remove(&info.ssrc);
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx_ssrcs.remove(&rtx);
        }
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::TransportContext;

    use super::*;
    use crate::test_packets;

    const AUDIO: u32 = 1;
    const VIDEO: u32 = 2;
    const RTX: u32 = 3;

    fn pacer(target_bps: f64) -> PriorityPacer {
        let mut pacer = PriorityPacer::default();
        pacer.bind_local_stream(&StreamInfo {
            ssrc: AUDIO,
            mime_type: "audio/opus".to_owned(),
            ..Default::default()
        });
        pacer.bind_local_stream(&StreamInfo {
            ssrc: VIDEO,
            ssrc_rtx: Some(RTX),
            mime_type: "video/VP8".to_owned(),
            ..Default::default()
        });
        set_target(&mut pacer, Instant::now(), target_bps);
        pacer
    }

    fn queue_video(pacer: &mut PriorityPacer, now: Instant, seqs: std::ops::Range<u16>) {
        for seq in seqs {
            pacer
                .handle_write(test_packets::rtp(now, VIDEO, seq, &[0; 1200]))
                .expect("writes");
        }
    }

    /// The first packet of a VP8 keyframe, a frame after those at 0.
    fn vp8_keyframe(now: Instant, seq: u16) -> TaggedPacket {
        let mut keyframe = test_packets::rtp(now, VIDEO, seq, &[0x10, 0x00, 0, 0]);
        if let Packet::Rtp(rtp) = &mut keyframe.message.packet {
            rtp.header.timestamp = 3000;
        }
        keyframe
    }

    fn resend(now: Instant, repaired_seq: u16, rtx_seq: u16) -> TaggedPacket {
        let mut payload = repaired_seq.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0; 1000]);
        let mut packet = test_packets::rtp(now, RTX, rtx_seq, &payload);
        packet.message.add(Attribute::Retransmission);
        packet
    }

    /// What leaves by `until`, stepping the clock as the chain would.
    fn drain(pacer: &mut PriorityPacer, until: Instant) -> Vec<(u32, u16, Instant)> {
        let mut out = Vec::new();
        loop {
            while let Some(packet) = pacer.poll_write() {
                if let Packet::Rtp(rtp) = &packet.message.packet {
                    out.push((rtp.header.ssrc, rtp.header.sequence_number, packet.now));
                }
            }
            match pacer.poll_timeout() {
                Some(at) if at <= until => pacer.handle_timeout(at).expect("times out"),
                _ => return out,
            }
        }
    }

    #[test]
    fn audio_goes_at_once_past_a_queue_of_video() {
        let now = Instant::now();
        let mut pacer = pacer(300_000.0);
        queue_video(&mut pacer, now, 0..50);
        pacer
            .handle_write(test_packets::rtp(now, AUDIO, 7, &[0; 80]))
            .expect("writes");
        let first = drain(&mut pacer, now);
        assert!(first.contains(&(AUDIO, 7, now)), "{first:?}");
        assert!(first.iter().filter(|(ssrc, ..)| *ssrc == VIDEO).count() < 50);
    }

    #[test]
    fn a_retransmission_overtakes_queued_video() {
        let now = Instant::now();
        let mut pacer = pacer(300_000.0);
        queue_video(&mut pacer, now, 0..40);
        drain(&mut pacer, now);
        pacer.handle_write(resend(now, 3, 0)).expect("writes");
        let next = drain(&mut pacer, now + Duration::from_secs(1));
        assert_eq!(next.first().map(|p| p.0), Some(RTX), "{next:?}");
    }

    #[test]
    fn a_third_ask_for_a_queued_resend_is_not_sent() {
        let now = Instant::now();
        let mut pacer = pacer(1_000_000.0);
        queue_video(&mut pacer, now, 0..20);
        pacer.handle_write(resend(now, 3, 0)).expect("writes");
        pacer.handle_write(resend(now, 3, 1)).expect("writes");
        pacer.handle_write(resend(now, 3, 2)).expect("writes");
        pacer.handle_write(resend(now, 4, 3)).expect("writes");
        let out = drain(&mut pacer, now + Duration::from_secs(2));
        let resent: Vec<u16> = out.iter().filter(|p| p.0 == RTX).map(|p| p.1).collect();
        assert_eq!(resent, vec![0, 1, 3]);
    }

    #[test]
    fn the_echo_of_an_ask_is_resent_once_more_a_third_copy_not_and_a_later_ask_is() {
        let now = Instant::now();
        let mut pacer = pacer(1_000_000.0);
        pacer.handle_write(resend(now, 3, 0)).expect("writes");
        assert_eq!(drain(&mut pacer, now).len(), 1);
        // The receiver's second copy of the same NACK: a second copy, so a
        // lost resend costs no round trip.
        let echo = now + Duration::from_millis(10);
        pacer.handle_write(resend(echo, 3, 1)).expect("writes");
        assert_eq!(drain(&mut pacer, echo).len(), 1);
        // A third ask in the same round is a flood.
        let third = now + Duration::from_millis(15);
        pacer.handle_write(resend(third, 3, 2)).expect("writes");
        assert!(drain(&mut pacer, third).is_empty());
        // Asked again a round trip later: both copies were lost.
        let later = now + Duration::from_millis(120);
        pacer.handle_write(resend(later, 3, 3)).expect("writes");
        assert_eq!(drain(&mut pacer, later).len(), 1);
    }

    #[test]
    fn a_plain_resend_goes_once_a_round() {
        let now = Instant::now();
        let mut pacer = pacer(1_000_000.0);
        // No RTX: the resend is the media packet again, whose second copy
        // the receiver's SRTP replay check would drop.
        for at in [now, now + Duration::from_millis(10)] {
            let mut packet = test_packets::rtp(at, VIDEO, 3, &[0; 1000]);
            packet.message.add(Attribute::Retransmission);
            pacer.handle_write(packet).expect("writes");
        }
        let out = drain(&mut pacer, now + Duration::from_millis(100));
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn a_keyframe_drops_the_resends_it_makes_useless() {
        let now = Instant::now();
        let mut pacer = pacer(1_000_000.0);
        queue_video(&mut pacer, now, 0..20);
        drain(&mut pacer, now + Duration::from_secs(1));
        // Asked for before the keyframe: queued, then dropped by it.
        pacer.handle_write(resend(now, 3, 0)).expect("writes");
        // A VP8 keyframe's first packet, for the next frame.
        pacer.handle_write(vp8_keyframe(now, 20)).expect("writes");
        // Asked for after it: from before it, refused; from it, sent.
        pacer.handle_write(resend(now, 5, 1)).expect("writes");
        pacer.handle_write(resend(now, 20, 2)).expect("writes");
        let out = drain(&mut pacer, now + Duration::from_secs(2));
        let resent: Vec<u16> = out.iter().filter(|p| p.0 == RTX).map(|p| p.1).collect();
        assert_eq!(resent, vec![2], "{out:?}");
    }

    fn set_target(pacer: &mut PriorityPacer, now: Instant, bits_per_second: f64) {
        let mut estimate = AttributedPacket::new(Packet::Rtcp(Vec::new()));
        estimate.add(Attribute::TargetBitrateChanged { bits_per_second });
        pacer
            .handle_read(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: estimate,
            })
            .expect("reads");
        pacer.poll_read();
    }

    #[test]
    fn after_a_sharp_fall_video_waits_a_moment_and_audio_does_not() {
        let now = Instant::now();
        let mut pacer = pacer(4_000_000.0);
        set_target(&mut pacer, now, 1_000_000.0);
        queue_video(&mut pacer, now, 0..5);
        pacer
            .handle_write(test_packets::rtp(now, AUDIO, 7, &[0; 80]))
            .expect("writes");
        let held = drain(&mut pacer, now + VIDEO_HOLD - Duration::from_millis(1));
        assert_eq!(held, vec![(AUDIO, 7, now)]);
        let after = drain(&mut pacer, now + VIDEO_HOLD + Duration::from_millis(50));
        assert_eq!(after.len(), 5, "{after:?}");
        // A further fall soon after is not held again.
        let soon = now + Duration::from_millis(500);
        set_target(&mut pacer, soon, 400_000.0);
        pacer
            .handle_write(test_packets::rtp(soon, VIDEO, 5, &[0; 1200]))
            .expect("writes");
        assert_eq!(drain(&mut pacer, soon).len(), 1);
        // A gentler fall holds nothing.
        let later = now + Duration::from_secs(5);
        set_target(&mut pacer, later, 300_000.0);
        pacer
            .handle_write(test_packets::rtp(later, VIDEO, 6, &[0; 1200]))
            .expect("writes");
        assert_eq!(drain(&mut pacer, later).len(), 1);
    }

    #[test]
    fn a_keyframe_drops_the_video_queued_before_it() {
        let now = Instant::now();
        let mut pacer = pacer(100_000.0);
        queue_video(&mut pacer, now, 0..20);
        pacer.handle_write(vp8_keyframe(now, 20)).expect("writes");
        let out = drain(&mut pacer, now + Duration::from_secs(2));
        let sent: Vec<u16> = out.iter().map(|p| p.1).collect();
        assert_eq!(sent, vec![20]);
    }

    #[test]
    fn resends_are_held_to_the_estimate() {
        let now = Instant::now();
        // 250 kbit/s paced is a 100 kbit/s estimate: 100 ms of it is about
        // one 8.2 kbit resend past the burst; 100 asked at once must not
        // all go.
        let mut pacer = pacer(250_000.0);
        for seq in 0..100 {
            pacer.handle_write(resend(now, seq, seq)).expect("writes");
        }
        let out = drain(&mut pacer, now + Duration::from_secs(2));
        assert!((1..10).contains(&out.len()), "{} resends went", out.len());
    }

    #[test]
    fn resends_are_counted_when_they_leave_not_when_asked() {
        let now = Instant::now();
        let repairs = RepairCounts::default();
        let mut pacer = pacer(250_000.0).counting(repairs.clone());
        for seq in 0..100 {
            pacer.handle_write(resend(now, seq, seq)).expect("writes");
        }
        let out = drain(&mut pacer, now + Duration::from_secs(2));
        assert_eq!(repairs.resent_total(), out.len() as u64);
        assert_eq!(repairs.received_total(), 0);
    }

    #[test]
    fn a_resend_that_waited_too_long_is_dropped() {
        let now = Instant::now();
        let mut pacer = pacer(100_000.0);
        pacer.handle_write(resend(now, 3, 0)).expect("writes");
        // Nothing is released in between: the clock jumps past the wait.
        pacer
            .handle_timeout(now + MAX_RETRANSMISSION_WAIT + Duration::from_millis(1))
            .expect("times out");
        assert!(pacer.poll_write().is_none());
    }

    #[test]
    fn a_video_queue_leaves_within_the_queue_time_however_low_the_estimate() {
        let now = Instant::now();
        // 200 packets of 1,212 bytes is ~1.9 Mbit: ~19 s at 100 kbit/s.
        let mut pacer = pacer(100_000.0);
        queue_video(&mut pacer, now, 0..200);
        let out = drain(&mut pacer, now + Duration::from_secs(30));
        assert_eq!(out.len(), 200);
        let last = out.last().map(|p| p.2).expect("released");
        assert!(
            last.duration_since(now) <= MAX_QUEUE_TIME + Duration::from_millis(50),
            "the last packet left after {:?}",
            last.duration_since(now)
        );
    }

    #[test]
    fn video_is_paced_at_the_estimate_when_the_queue_is_short() {
        let now = Instant::now();
        // 40 packets of ~9.7 kbit at 1 Mbit/s: 388 kbit, less the bucket's
        // 100 kbit starting burst, is ~290 ms, and under the queue time.
        let mut pacer = pacer(1_000_000.0);
        queue_video(&mut pacer, now, 0..40);
        let out = drain(&mut pacer, now + Duration::from_secs(2));
        assert_eq!(out.len(), 40);
        let span = out[39].2.duration_since(out[0].2);
        assert!(
            (Duration::from_millis(250)..Duration::from_millis(350)).contains(&span),
            "40 packets left in {span:?}"
        );
    }

    #[test]
    fn the_video_queue_is_bounded() {
        let now = Instant::now();
        let mut pacer = pacer(1.0);
        for seq in 0..(MAX_VIDEO_PACKETS as u32 + 100) {
            pacer
                .handle_write(test_packets::rtp(now, VIDEO, seq as u16, &[0; 10]))
                .expect("writes");
        }
        assert_eq!(pacer.video.len(), MAX_VIDEO_PACKETS);
    }
}
