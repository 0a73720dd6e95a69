//! Which resends a keyframe has made useless: once a stream's keyframe is
//! on its way, a receiver needs no packet from before it (a Kith receiver
//! skips to a whole keyframe, libwebrtc's drops what it cannot decode up
//! to one). At a cap's onset such repairs ran at 260-390 kbit/s on a
//! 500 kbit/s link, ahead of the keyframe asked for, and the picture froze
//! for 1.3-1.6 s. The pacer asks this before it queues a resend.

use std::collections::HashMap;

use rtc::rtp;

use crate::codecs::video_codec_for_mime;
use crate::media::keyframe_start;

/// A resend this far or further before the keyframe is not judged: the
/// sequence numbers may have wrapped since (they wrap every 65,536
/// packets, minutes of video), and so old a packet is no longer asked for.
const HORIZON: u16 = 4096;

#[derive(Debug, Default)]
pub struct KeyframeMarks {
    streams: HashMap<u32, Stream>,
    /// RTX SSRC to the media SSRC it repairs.
    repairs: HashMap<u32, u32>,
}

#[derive(Debug)]
struct Stream {
    starts_keyframe: fn(&[u8]) -> bool,
    /// The RTP timestamp of the last packet sent: a frame's first packet
    /// is the first with a new one.
    last_timestamp: Option<u32>,
    /// The first packet of the latest keyframe.
    keyframe_from: Option<u16>,
}

impl KeyframeMarks {
    /// A local stream with this MIME type; only video streams are marked.
    pub fn bind(&mut self, ssrc: u32, rtx_ssrc: Option<u32>, mime_type: &str) {
        let Some(codec) = video_codec_for_mime(mime_type) else {
            return;
        };
        self.streams.insert(
            ssrc,
            Stream {
                starts_keyframe: keyframe_start::detector(codec),
                last_timestamp: None,
                keyframe_from: None,
            },
        );
        if let Some(rtx) = rtx_ssrc {
            self.repairs.insert(rtx, ssrc);
        }
    }

    pub fn unbind(&mut self, ssrc: u32, rtx_ssrc: Option<u32>) {
        self.streams.remove(&ssrc);
        if let Some(rtx) = rtx_ssrc {
            self.repairs.remove(&rtx);
        }
    }

    /// A packet sent for the first time; true when it starts a keyframe.
    pub fn sent(&mut self, packet: &rtp::Packet) -> bool {
        let Some(stream) = self.streams.get_mut(&packet.header.ssrc) else {
            return false;
        };
        let timestamp = packet.header.timestamp;
        let starts_frame = stream.last_timestamp != Some(timestamp);
        stream.last_timestamp = Some(timestamp);
        let keyframe = starts_frame && (stream.starts_keyframe)(&packet.payload);
        if keyframe {
            stream.keyframe_from = Some(packet.header.sequence_number);
        }
        keyframe
    }

    /// Whether a resend of `sequence` on `ssrc` (the media stream's or its
    /// RTX stream's, with the original sequence number) comes from before
    /// the stream's latest keyframe.
    pub fn superseded(&self, ssrc: u32, sequence: u16) -> bool {
        let media = self.repairs.get(&ssrc).copied().unwrap_or(ssrc);
        self.streams
            .get(&media)
            .and_then(|stream| stream.keyframe_from)
            .is_some_and(|from| (1..HORIZON).contains(&from.wrapping_sub(sequence)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MEDIA: u32 = 10;
    const RTX: u32 = 11;

    /// A VP8 packet: a partition start is a keyframe's when its payload
    /// header's lowest bit is clear.
    fn vp8(sequence: u16, timestamp: u32, payload: &'static [u8]) -> rtp::Packet {
        rtp::Packet {
            header: rtp::header::Header {
                ssrc: MEDIA,
                sequence_number: sequence,
                timestamp,
                ..Default::default()
            },
            payload: Bytes::from_static(payload),
        }
    }

    const KEY_START: &[u8] = &[0x10, 0x00];
    const DELTA_START: &[u8] = &[0x10, 0x01];
    const MIDDLE: &[u8] = &[0x00, 0x00];

    fn marks() -> KeyframeMarks {
        let mut marks = KeyframeMarks::default();
        marks.bind(MEDIA, Some(RTX), "video/VP8");
        marks
    }

    #[test]
    fn resends_from_before_the_latest_keyframe_are_superseded() {
        let mut marks = marks();
        assert!(!marks.sent(&vp8(100, 0, DELTA_START)));
        assert!(!marks.sent(&vp8(101, 0, MIDDLE)));
        assert!(!marks.superseded(RTX, 100), "no keyframe yet");
        assert!(marks.sent(&vp8(102, 3000, KEY_START)));
        assert!(!marks.sent(&vp8(103, 3000, MIDDLE)));
        assert!(marks.superseded(RTX, 100));
        assert!(marks.superseded(MEDIA, 101), "a plain resend too");
        assert!(!marks.superseded(RTX, 102), "the keyframe's own packets");
        assert!(!marks.superseded(RTX, 103));
        assert!(!marks.sent(&vp8(104, 6000, DELTA_START)));
        assert!(!marks.superseded(RTX, 104));
    }

    #[test]
    fn only_a_frames_first_packet_starts_a_keyframe() {
        let mut marks = marks();
        marks.sent(&vp8(100, 0, KEY_START));
        // A packet of the same frame that looks like a start is not one.
        assert!(!marks.sent(&vp8(101, 0, KEY_START)));
        assert!(!marks.superseded(RTX, 100));
    }

    #[test]
    fn across_the_wrap_and_past_the_horizon() {
        let mut marks = marks();
        marks.sent(&vp8(2, 0, KEY_START));
        assert!(marks.superseded(RTX, 65_534));
        assert!(!marks.superseded(RTX, 2u16.wrapping_sub(HORIZON)));
        assert!(!marks.superseded(RTX, 3), "after it");
    }

    #[test]
    fn audio_and_unknown_streams_are_never_judged() {
        let mut marks = KeyframeMarks::default();
        marks.bind(MEDIA, None, "audio/opus");
        assert!(!marks.sent(&vp8(5, 0, KEY_START)));
        assert!(!marks.superseded(MEDIA, 1));
        assert!(!marks.superseded(99, 1));
    }
}
