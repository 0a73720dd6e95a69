//! The receive side of one remote track: RTP in, reassembly and reordering
//! (the frame assembler), decoding on a thread of its own, each frame held
//! until its playout time (together, the video jitter buffer), and decoded
//! media out to the sinks, with the counters the stats need. Asks the
//! sender for a keyframe (PLI) when decoding cannot go on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use kith_media::codec::factory;
use kith_media::codec::{AudioCodec, VideoCodec};
use kith_media::frame::{AudioFrame, Channels, VideoFrame};
use kith_media::video::latency_strip;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::av1::Av1Depacketizer;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::counters::{FreezeDetector, ReceiveCounters};
use crate::media::assembler::{Assembled, FrameAssembler};
use crate::media::keyframe_asks::KeyframeAsks;
use crate::media::keyframe_start;
use crate::media::playout::Playout;
use crate::media::sinks::{AudioLevel, VideoSink};
use crate::media::vp9_rtp::Vp9Depacketizer;

/// Where RTCP that arrives on a remote track goes (webrtc-rs may route
/// feedback about our own streams here).
pub type RtcpSink = Arc<dyn Fn(&[Box<dyn rtc::rtcp::Packet>]) + Send + Sync>;

/// How long a missing video packet is waited for (a NACK round trip on a
/// bad link) before the frames behind it go on without it.
const MAX_PACKET_WAIT: Duration = Duration::from_millis(400);

/// Whole frames waiting for the decoder. A repair releases at once every
/// frame that waited behind it, up to [`MAX_PACKET_WAIT`] of them (12 at
/// 30 fps, 24 at 60): a queue of 8 dropped frames from that burst at 10 %
/// loss, and each drop broke the reference chain and showed as a freeze.
const DECODE_QUEUE: usize = 32;
/// Decoded frames waiting for their playout time at most (the playout
/// delay's bound holds ~12 at 30 fps); past it the oldest is shown at once.
const MAX_HELD_FRAMES: usize = 24;

enum DecoderInput {
    Frame {
        data: Bytes,
        rtp_timestamp: u32,
        /// When its last packet was in.
        whole_at: Instant,
    },
    /// Packets were lost before this point: a decoder without the reference
    /// will fail, and needs a keyframe.
    Gap,
}

/// Runs until the track ends: reads RTP, hands whole frames to a decoder
/// thread, and sends PLI when that thread asks for a keyframe.
pub async fn receive_video(
    track: Arc<dyn TrackRemote>,
    codec: VideoCodec,
    media_ssrc: u32,
    counters: Arc<ReceiveCounters>,
    sinks: Vec<Box<dyn VideoSink>>,
    rtcp: RtcpSink,
) {
    let (frames_tx, frames_rx) = bounded::<DecoderInput>(DECODE_QUEUE);
    let (pli_tx, mut pli_rx) = mpsc::unbounded_channel::<()>();
    let decoder_counters = Arc::clone(&counters);
    // The peer's span (this task is instrumented with it), so the decoder's
    // log lines say whose video they are about.
    let span = tracing::Span::current();
    let decoder = std::thread::Builder::new()
        .name(format!("decode-{}", codec.sdp_name()))
        .spawn(move || {
            let _entered = span.enter();
            run_video_decoder(codec, frames_rx, pli_tx, decoder_counters, sinks)
        });
    if let Err(err) = decoder {
        warn!(%err, "cannot start the video decoder thread");
        return;
    }
    match codec {
        VideoCodec::Av1 => {
            pump_video(
                track,
                assembler(Av1Depacketizer::new(), codec),
                media_ssrc,
                frames_tx,
                &mut pli_rx,
                &counters,
                &rtcp,
            )
            .await
        }
        VideoCodec::Vp9 => {
            pump_video(
                track,
                assembler(Vp9Depacketizer, codec),
                media_ssrc,
                frames_tx,
                &mut pli_rx,
                &counters,
                &rtcp,
            )
            .await
        }
        VideoCodec::Vp8 => {
            pump_video(
                track,
                assembler(Vp8Packet::default(), codec),
                media_ssrc,
                frames_tx,
                &mut pli_rx,
                &counters,
                &rtcp,
            )
            .await
        }
        VideoCodec::H264 => {
            pump_video(
                track,
                assembler(H264Packet::default(), codec),
                media_ssrc,
                frames_tx,
                &mut pli_rx,
                &counters,
                &rtcp,
            )
            .await
        }
    }
}

/// The frame assembler for `codec`'s packets.
fn assembler<D: Depacketizer>(depacketizer: D, codec: VideoCodec) -> FrameAssembler<D> {
    FrameAssembler::new(depacketizer, MAX_PACKET_WAIT)
        .skipping_to_keyframes(keyframe_start::detector(codec))
}

async fn pump_video<D: Depacketizer>(
    track: Arc<dyn TrackRemote>,
    mut assembler: FrameAssembler<D>,
    media_ssrc: u32,
    frames: Sender<DecoderInput>,
    pli: &mut mpsc::UnboundedReceiver<()>,
    counters: &ReceiveCounters,
    rtcp: &RtcpSink,
) {
    let mut asks = KeyframeAsks::default();
    // A frame was dropped and the decoder not yet told (the queue was full
    // for the gap too): it is told before the next frame.
    let mut gap_owed = false;
    loop {
        tokio::select! {
            event = track.poll() => {
                let Some(event) = event else { break };
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        counters.video_packet();
                        counters.video_bytes.fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                        let now = Instant::now();
                        for assembled in assembler.push(now, packet) {
                            let input = match assembled {
                                Assembled::Frame { data, rtp_timestamp } => DecoderInput::Frame {
                                    data,
                                    rtp_timestamp,
                                    whole_at: now,
                                },
                                Assembled::Gap => DecoderInput::Gap,
                            };
                            if gap_owed {
                                match frames.try_send(DecoderInput::Gap) {
                                    Ok(()) => gap_owed = false,
                                    Err(TrySendError::Full(_)) => {}
                                    Err(TrySendError::Disconnected(_)) => return,
                                }
                            }
                            match frames.try_send(input) {
                                Ok(()) => {}
                                Err(TrySendError::Full(_)) => {
                                    // The decoder is behind; dropping breaks the
                                    // reference chain, so ask for a fresh start.
                                    debug!("frame dropped: the decoder is behind");
                                    gap_owed = true;
                                }
                                Err(TrySendError::Disconnected(_)) => return,
                            }
                        }
                    }
                    TrackRemoteEvent::OnRtcpPacket(packets) => rtcp(&packets),
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            request = pli.recv() => {
                if request.is_none() { break; }
                if !asks.ask(Instant::now()) {
                    continue;
                }
                counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                debug!(media_ssrc, "asking the sender for a keyframe");
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
                if let Err(err) = track.write_rtcp(vec![Box::new(pli)]).await {
                    debug!(%err, "cannot send PLI");
                }
            }
        }
    }
    debug!("video track ended");
}

fn run_video_decoder(
    codec: VideoCodec,
    input: Receiver<DecoderInput>,
    pli: mpsc::UnboundedSender<()>,
    counters: Arc<ReceiveCounters>,
    sinks: Vec<Box<dyn VideoSink>>,
) {
    let mut decoder = match factory::video_decoder(codec) {
        Ok(decoder) => decoder,
        Err(err) => {
            warn!(%err, "cannot decode the incoming video");
            return;
        }
    };
    let mut shown = Shown {
        counters: Arc::clone(&counters),
        sinks,
        freezes: FreezeDetector::default(),
    };
    let mut playout = Playout::default();
    // Decoded frames in playout order, each with when it is due.
    let mut held: VecDeque<(Instant, VideoFrame)> = VecDeque::new();
    // Until a keyframe has decoded there is nothing to build on.
    let mut need_keyframe = true;
    let _ = pli.send(());
    loop {
        let item = match held.front() {
            Some((due, _)) => match input.recv_deadline(*due) {
                Ok(item) => Some(item),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match input.recv() {
                Ok(item) => Some(item),
                Err(_) => break,
            },
        };
        match item {
            None => {}
            // Frames that are due are shown below all the same.
            Some(DecoderInput::Gap) => {
                let _ = pli.send(());
            }
            Some(DecoderInput::Frame {
                data,
                rtp_timestamp,
                whole_at,
            }) => match decoder.decode(&data, 0) {
                Ok(Some(frame)) => {
                    need_keyframe = false;
                    let due = playout.schedule(whole_at, rtp_timestamp);
                    counters
                        .playout_delay_ms
                        .store(playout.delay().as_millis() as u64, Ordering::Relaxed);
                    held.push_back((due, frame));
                    if held.len() > MAX_HELD_FRAMES
                        && let Some((_, frame)) = held.pop_front()
                    {
                        shown.show(frame);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    if !need_keyframe {
                        debug!(%err, "decode failed; asking for a keyframe");
                    }
                    need_keyframe = true;
                    let _ = pli.send(());
                }
            },
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, frame)) = held.pop_front() {
                shown.show(frame);
            }
        }
    }
}

/// Where a frame goes at its playout time: the counters (glass-to-glass and
/// freezes are what a viewer sees, so they are taken here) and the sinks.
struct Shown {
    counters: Arc<ReceiveCounters>,
    sinks: Vec<Box<dyn VideoSink>>,
    freezes: FreezeDetector,
}

impl Shown {
    fn show(&mut self, mut frame: VideoFrame) {
        let latency = stamp_capture_time(&mut frame, kith_media::frame::now_us());
        self.counters.frame_decoded(latency);
        if let Some(gap) = self.freezes.frame(Instant::now()) {
            let counters = &self.counters;
            counters.freezes.fetch_add(1, Ordering::Relaxed);
            let gap_ms = gap.as_millis() as u64;
            counters.freeze_ms.fetch_add(gap_ms, Ordering::Relaxed);
            counters
                .longest_freeze_ms
                .fetch_max(gap_ms, Ordering::Relaxed);
            // What a freeze had to beat: how long frames were held for
            // repairs, and how late this one came even so.
            debug!(
                gap_ms,
                playout_delay_ms = counters.playout_delay_ms.load(Ordering::Relaxed),
                glass_to_glass_ms = latency,
                "freeze"
            );
        }
        for sink in &mut self.sinks {
            sink.frame(&frame);
        }
    }
}

/// Reads the latency strip of a decoded frame: returns glass-to-glass so
/// far, and sets the frame's capture time from it (a decoder knows none), so
/// every sink, the app's frame socket among them, sees when it was taken.
fn stamp_capture_time(frame: &mut VideoFrame, now_us: u64) -> Option<u32> {
    let now_ms = now_us / 1000;
    let latency = latency_strip::read(frame)
        .map(|stamped| latency_strip::latency_ms(stamped, now_ms))
        // A strip that decodes to a time far off is not ours (any other
        // source): no latency sample.
        .filter(|ms| *ms < 60_000)?;
    frame.capture_us = now_ms.saturating_sub(u64::from(latency)) * 1000;
    Some(latency)
}

// ---------------------------------------------------------------- audio

/// Packets lost in a row that are still concealed; a longer gap is silence.
const MAX_CONCEALED: u16 = 5;

/// Runs until the track ends: decodes each audio packet (Opus and G.711
/// packets stand alone) and queues 10 ms frames for the mixer. A small gap
/// in sequence numbers is concealed (Opus repairs the last lost packet from
/// the FEC in the next one).
pub async fn receive_audio(
    track: Arc<dyn TrackRemote>,
    codec: AudioCodec,
    counters: Arc<ReceiveCounters>,
    mixer_input: Sender<AudioFrame>,
    level: AudioLevel,
    rtcp: RtcpSink,
) {
    let mut decoder = match factory::audio_decoder(codec, Channels::Mono) {
        Ok(decoder) => decoder,
        Err(err) => {
            warn!(%err, "cannot decode the incoming audio");
            return;
        }
    };
    let mut expected: Option<u16> = None;
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnRtcpPacket(packets) => {
                rtcp(&packets);
                continue;
            }
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        counters.audio_packets.fetch_add(1, Ordering::Relaxed);
        counters
            .audio_bytes
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        let seq = packet.header.sequence_number;
        let lost = expected.map_or(0, |e| seq.wrapping_sub(e));
        if lost >= 0x8000 {
            // Late or duplicate: already concealed or played.
            continue;
        }
        expected = Some(seq.wrapping_add(1));
        let mut frames = Vec::new();
        if (1..=MAX_CONCEALED).contains(&lost) {
            if lost > 1
                && let Ok(concealed) = decoder.conceal(20 * u32::from(lost - 1), None)
            {
                frames.extend(concealed);
            }
            if let Ok(recovered) = decoder.conceal(20, Some(&packet.payload)) {
                frames.extend(recovered);
            }
        }
        match decoder.decode(&packet.payload) {
            Ok(decoded) => frames.extend(decoded),
            Err(err) => debug!(%err, "audio packet did not decode"),
        }
        for frame in frames {
            level.update(&frame);
            match mixer_input.try_send(frame) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_time_comes_from_the_latency_strip() {
        let mut frame = VideoFrame {
            width: 640,
            height: 360,
            data: vec![128; VideoFrame::byte_len(640, 360)],
            capture_us: 0,
        };
        let now_us = kith_media::frame::now_us();
        let captured_ms = now_us / 1000 - 80;
        latency_strip::stamp(&mut frame, captured_ms);
        assert_eq!(stamp_capture_time(&mut frame, now_us), Some(80));
        assert_eq!(frame.capture_us, captured_ms * 1000);
        let mut blank = VideoFrame {
            data: vec![128; VideoFrame::byte_len(640, 360)],
            capture_us: 42,
            ..frame
        };
        assert_eq!(stamp_capture_time(&mut blank, now_us), None);
        assert_eq!(blank.capture_us, 42, "no strip: the frame's own time");
    }
}
