//! Whether an RTP video payload is the first packet of a keyframe, read
//! from the codec's payload format alone. Both ends use it after a burst
//! of loss: the receiver skips the broken frames before a whole keyframe
//! instead of waiting for their repairs, and the sender stops repairing
//! frames that a keyframe it has sent makes useless. webrtc-rs's
//! depacketizers say where a frame starts, not whether it is a keyframe,
//! so this is written here.

use kith_media::codec::VideoCodec;

/// The test for `codec`'s payloads.
pub fn detector(codec: VideoCodec) -> fn(&[u8]) -> bool {
    match codec {
        VideoCodec::Av1 => av1,
        VideoCodec::Vp9 => vp9,
        VideoCodec::Vp8 => vp8,
        VideoCodec::H264 => h264,
    }
}

/// RFC 7741: the payload descriptor, then, at a partition's start, the
/// VP8 payload header, whose lowest bit is clear on a key frame.
fn vp8(payload: &[u8]) -> bool {
    const X: u8 = 0x80;
    const S: u8 = 0x10;
    const PID: u8 = 0x07;
    const I: u8 = 0x80;
    const L: u8 = 0x40;
    const T: u8 = 0x20;
    const K: u8 = 0x10;
    const LONG_PICTURE_ID: u8 = 0x80;
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & S == 0 || first & PID != 0 {
        return false;
    }
    let mut header = 1;
    if first & X != 0 {
        let Some(&extensions) = payload.get(1) else {
            return false;
        };
        header = 2;
        if extensions & I != 0 {
            let Some(&picture_id) = payload.get(header) else {
                return false;
            };
            header += if picture_id & LONG_PICTURE_ID != 0 {
                2
            } else {
                1
            };
        }
        if extensions & L != 0 {
            header += 1;
        }
        if extensions & (T | K) != 0 {
            header += 1;
        }
    }
    payload.get(header).is_some_and(|vp8| vp8 & 0x01 == 0)
}

/// The VP9 payload descriptor: B (a frame's first packet) set and P (the
/// frame is predicted from an earlier one) clear.
fn vp9(payload: &[u8]) -> bool {
    const P: u8 = 0x40;
    const B: u8 = 0x08;
    first_byte_has(payload, B, P)
}

/// The AV1 aggregation header's N: the first packet of a coded video
/// sequence, which every keyframe starts (webrtc-rs's payloader sets it
/// when the frame opens with a sequence header, as libaom and rav1e write
/// one before each keyframe).
fn av1(payload: &[u8]) -> bool {
    const Z: u8 = 0x80;
    const N: u8 = 0x08;
    first_byte_has(payload, N, Z)
}

/// Whether the payload's first byte has the bits of `set` set and those of
/// `clear` clear.
fn first_byte_has(payload: &[u8], set: u8, clear: u8) -> bool {
    payload
        .first()
        .is_some_and(|first| first & set == set && first & clear == 0)
}

/// RFC 6184: a sequence parameter set, alone or first in a STAP-A. Our
/// encoder and browsers send one right before each IDR frame; the IDR
/// slice itself is not taken, as skipping to it would leave the parameter
/// sets behind.
fn h264(payload: &[u8]) -> bool {
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        STAP_A => payload.get(3).is_some_and(|nal| nal & 0x1f == SPS),
        nal_type => nal_type == SPS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_media::codec::VideoEncoderConfig;
    use kith_media::codec::factory::video_encoder;
    use kith_media::video::synthetic::SyntheticCamera;

    use crate::media::send::FramePayloader;

    /// The payloads of a keyframe and a delta frame, as the sender sends them.
    fn payloads(codec: VideoCodec) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let config = VideoEncoderConfig {
            width: 320,
            height: 180,
            fps: 30,
            bitrate_bps: 300_000,
        };
        let mut encoder = video_encoder(codec, config).expect("the encoder starts");
        let mut camera = SyntheticCamera::new(320, 180);
        let mut frames = Vec::new();
        for index in 0..3u64 {
            let picture = camera.next_frame(index * 33_333);
            frames.extend(encoder.encode(&picture, false).expect("it encodes"));
        }
        assert!(frames[0].keyframe && !frames[2].keyframe);
        let mut payloader = FramePayloader::new(codec).expect("a payloader");
        let mut payload = |frame| -> Vec<Vec<u8>> {
            let packets = payloader.payload(frame).expect("it payloads");
            packets.iter().map(|p| p.to_vec()).collect()
        };
        (payload(&frames[0]), payload(&frames[2]))
    }

    fn only_a_keyframe_starts_a_keyframe(codec: VideoCodec) {
        let detect = detector(codec);
        let (keyframe, delta) = payloads(codec);
        assert!(detect(&keyframe[0]), "{codec:?} keyframe start not seen");
        assert!(
            keyframe[1..].iter().all(|p| !detect(p)),
            "{codec:?}: only the first packet starts it"
        );
        assert!(
            delta.iter().all(|p| !detect(p)),
            "{codec:?}: a delta frame taken for a keyframe"
        );
    }

    #[test]
    fn vp8_keyframes_are_told_apart() {
        only_a_keyframe_starts_a_keyframe(VideoCodec::Vp8);
    }

    #[test]
    fn vp9_keyframes_are_told_apart() {
        only_a_keyframe_starts_a_keyframe(VideoCodec::Vp9);
    }

    #[test]
    fn av1_keyframes_are_told_apart() {
        only_a_keyframe_starts_a_keyframe(VideoCodec::Av1);
    }

    #[test]
    fn h264_keyframes_are_told_apart() {
        only_a_keyframe_starts_a_keyframe(VideoCodec::H264);
    }

    #[test]
    fn short_or_empty_payloads_are_not_keyframes() {
        let cut_short: [(VideoCodec, &[&[u8]]); 4] = [
            (VideoCodec::Av1, &[&[]]),
            (VideoCodec::Vp9, &[&[]]),
            // A partition start with no VP8 header; every extension and
            // nothing after them.
            (VideoCodec::Vp8, &[&[], &[0x10], &[0x90, 0xf0, 0x80]]),
            // A STAP-A cut short; an IDR slice, which the parameter sets
            // come before.
            (VideoCodec::H264, &[&[], &[24], &[24, 0, 9], &[0x65, 0x88]]),
        ];
        for (codec, payloads) in cut_short {
            for payload in payloads {
                assert!(!detector(codec)(payload), "{codec:?} {payload:?}");
            }
        }
    }
}
