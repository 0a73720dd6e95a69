//! VP8 and VP9 over libvpx, end to end on a moving synthetic picture at 30 fps.
//!
//! Every assertion is about behaviour (sizes, keyframe flags, bytes, PSNR),
//! never speed: the encoders run at fixed speed settings, so results do not
//! depend on how busy the machine is.
#![allow(clippy::unwrap_used)]

#[path = "support/vpx_common.rs"]
mod common;

use common::{Rng, Scene, capture_us, psnr_y};
use kith_media::codec::vpx::{VpxDecoder, VpxEncoder, VpxEncoderOptions};
use kith_media::codec::{
    CodecError, EncodedVideoFrame, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig,
    rtp_timestamp,
};
use kith_media::frame::VideoFrame;

#[derive(Debug, Clone, Copy)]
struct Case {
    codec: VideoCodec,
    width: u32,
    height: u32,
    bitrate_bps: u32,
    /// Lowest acceptable mean Y PSNR of a round trip at `bitrate_bps`.
    ///
    /// Measured on this picture (which is deliberately hard: per-pixel grain
    /// over the whole frame, a pan and a moving box), libvpx in this mode
    /// gives about 36 dB (VP8) / 35 dB (VP9) at 360p and 1 Mbit/s, and 32 dB
    /// for both at 720p and 2.5 Mbit/s. The thresholds sit ~2 dB below: a
    /// real regression (wrong strides, wrong plane order, a broken rate
    /// controller) costs far more than 2 dB, while run-to-run variation
    /// (threads) is a few tenths. 30 dB at 720p is also the usual floor for
    /// "good" real-time video.
    min_psnr: f64,
}

impl Case {
    fn config(self) -> VideoEncoderConfig {
        VideoEncoderConfig {
            width: self.width,
            height: self.height,
            fps: 30,
            bitrate_bps: self.bitrate_bps,
        }
    }

    fn encoder(self) -> VpxEncoder {
        VpxEncoder::new(self.codec, self.config(), VpxEncoderOptions::default()).unwrap()
    }

    fn decoder(self) -> VpxDecoder {
        VpxDecoder::new(self.codec).unwrap()
    }
}

/// Encodes one frame and checks the one output frame's metadata.
fn encode_one(
    enc: &mut VpxEncoder,
    picture: &VideoFrame,
    force_keyframe: bool,
) -> EncodedVideoFrame {
    let mut out = enc.encode(picture, force_keyframe).unwrap();
    assert_eq!(
        out.len(),
        1,
        "one input frame gives exactly one output frame"
    );
    let f = out.remove(0);
    assert!(!f.data.is_empty());
    assert_eq!(f.codec, enc.codec());
    assert_eq!((f.width, f.height), (picture.width, picture.height));
    assert_eq!(f.capture_us, picture.capture_us);
    assert_eq!(f.rtp_timestamp, rtp_timestamp(picture.capture_us));
    f
}

fn kbps(bytes: usize, frames: usize) -> f64 {
    bytes as f64 * 8.0 / (frames as f64 / 30.0) / 1000.0
}

fn round_trip_psnr(case: Case) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    let mut dec = case.decoder();
    let mut psnrs = Vec::new();
    for n in 0..90 {
        let picture = scene.frame(n, capture_us(n));
        let f = encode_one(&mut enc, &picture, false);
        let decoded = dec.decode(&f.data, f.capture_us).unwrap().unwrap();
        assert_eq!((decoded.width, decoded.height), (case.width, case.height));
        assert_eq!(decoded.capture_us, f.capture_us);
        assert_eq!(
            decoded.data.len(),
            VideoFrame::byte_len(case.width, case.height)
        );
        psnrs.push(psnr_y(&picture, &decoded));
    }
    let mean = psnrs.iter().sum::<f64>() / psnrs.len() as f64;
    let min = psnrs.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!("{case:?}: PSNR-Y mean {mean:.2} dB, min {min:.2} dB");
    assert!(
        mean >= case.min_psnr,
        "mean PSNR {mean:.2} dB < {}",
        case.min_psnr
    );
    // No single frame may be broken (a misaligned or stale picture is < 15 dB).
    assert!(min >= case.min_psnr - 5.0, "worst frame {min:.2} dB");
}

fn keyframe_on_demand(case: Case) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    let mut dec = case.decoder();
    let forced = [17, 31];
    let mut keyframes = Vec::new();
    for n in 0..40 {
        let picture = scene.frame(n, capture_us(n));
        let f = encode_one(&mut enc, &picture, forced.contains(&n));
        if f.keyframe {
            keyframes.push(n);
            // A keyframe stands alone: a fresh decoder (which rejects delta
            // frames until its first keyframe) decodes it.
            let alone = case
                .decoder()
                .decode(&f.data, f.capture_us)
                .unwrap()
                .unwrap();
            assert!(psnr_y(&picture, &alone) >= case.min_psnr - 5.0);
        }
        dec.decode(&f.data, f.capture_us).unwrap().unwrap();
    }
    assert_eq!(
        keyframes,
        [0, 17, 31],
        "keyframes exactly where asked (and first)"
    );
}

fn bitrate_on_target(case: Case) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    // 5 s at 30 fps, first keyframe included.
    let frames = 150;
    let bytes: usize = (0..frames as u64)
        .map(|n| {
            encode_one(&mut enc, &scene.frame(n, capture_us(n)), false)
                .data
                .len()
        })
        .sum();
    let achieved = kbps(bytes, frames);
    let target = f64::from(case.bitrate_bps) / 1000.0;
    eprintln!("{case:?}: {achieved:.0} kbit/s for {target:.0}");
    assert!(
        (achieved - target).abs() <= 0.25 * target,
        "{achieved:.0} kbit/s is not within 25% of {target:.0}"
    );
}

fn set_bitrate_changes_rate(case: Case) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    let mut dec = case.decoder();
    let low = case.bitrate_bps / 3;
    // 4 s per phase; measure the last 2 s of each, once rate control settled.
    let phase = 120u64;
    let mut rates = Vec::new();
    for (i, bitrate) in [case.bitrate_bps, low, case.bitrate_bps]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            enc.set_bitrate(bitrate).unwrap();
        }
        assert_eq!(enc.config().bitrate_bps, bitrate);
        let mut bytes = 0;
        for n in i as u64 * phase..(i as u64 + 1) * phase {
            let f = encode_one(&mut enc, &scene.frame(n, capture_us(n)), false);
            dec.decode(&f.data, f.capture_us).unwrap().unwrap();
            if n >= i as u64 * phase + phase / 2 {
                bytes += f.data.len();
            }
        }
        rates.push(kbps(bytes, phase as usize / 2));
    }
    eprintln!("{case:?}: kbit/s per phase {rates:.0?}");
    let low_kbps = f64::from(low) / 1000.0;
    assert!(
        (rates[1] - low_kbps).abs() <= 0.3 * low_kbps,
        "lowered rate {:.0} kbit/s, target {low_kbps:.0}",
        rates[1]
    );
    assert!(rates[1] < 0.6 * rates[0], "rate did not drop: {rates:?}");
    assert!(
        rates[2] > 2.0 * rates[1],
        "rate did not come back: {rates:?}"
    );
}

fn set_resolution_mid_stream(case: Case) {
    // Down to half, then up past the starting size, then back.
    let sizes = [
        (case.width, case.height),
        (case.width / 2, case.height / 2),
        (case.width * 3 / 2, case.height * 3 / 2),
        (case.width, case.height),
    ];
    let mut enc = case.encoder();
    let mut dec = case.decoder();
    let mut n = 0u64;
    for (i, (w, h)) in sizes.into_iter().enumerate() {
        if i > 0 {
            enc.set_resolution(w, h).unwrap();
        }
        assert_eq!((enc.config().width, enc.config().height), (w, h));
        let scene = Scene::new(w, h);
        let mut psnrs = Vec::new();
        for k in 0..20 {
            let picture = scene.frame(n, capture_us(n));
            let f = encode_one(&mut enc, &picture, false);
            assert_eq!(f.keyframe, k == 0, "frame {k} after resize to {w}x{h}");
            let decoded = dec.decode(&f.data, f.capture_us).unwrap().unwrap();
            assert_eq!((decoded.width, decoded.height), (w, h), "decoder follows");
            psnrs.push(psnr_y(&picture, &decoded));
            n += 1;
        }
        let mean = psnrs.iter().sum::<f64>() / psnrs.len() as f64;
        eprintln!("{case:?}: {w}x{h} PSNR-Y mean {mean:.2} dB");
        // Same bitrate at other sizes: bigger pictures get fewer bits per pixel.
        assert!(mean >= case.min_psnr - 6.0, "{w}x{h}: {mean:.2} dB");
    }
    // A frame of the old size is refused, not silently encoded.
    let stale = Scene::new(case.width / 2, case.height / 2).frame(0, capture_us(n));
    assert!(matches!(
        enc.encode(&stale, false),
        Err(CodecError::Encode { .. })
    ));
}

/// Encodes `frames` frames, forcing keyframes at the given indices.
fn stream(case: Case, frames: u64, keyframes: &[u64]) -> (Vec<VideoFrame>, Vec<EncodedVideoFrame>) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    (0..frames)
        .map(|n| {
            let picture = scene.frame(n, capture_us(n));
            let f = encode_one(&mut enc, &picture, keyframes.contains(&n));
            (picture, f)
        })
        .unzip()
}

/// Feeds one input, which may fail but must not crash; a picture it gives
/// must be well formed.
fn feed(dec: &mut VpxDecoder, data: &[u8]) -> bool {
    match dec.decode(data, 1) {
        Ok(Some(p)) => {
            assert!(p.width > 0 && p.height > 0);
            assert_eq!(p.data.len(), VideoFrame::byte_len(p.width, p.height));
            true
        }
        Ok(None) => false,
        Err(CodecError::Decode { reason, .. }) => {
            assert!(!reason.is_empty());
            false
        }
        Err(CodecError::Unsupported { .. }) => false,
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

/// After whatever came before, the clean keyframe at `key` and the delta
/// frames after it decode well.
fn recovers(
    case: Case,
    dec: &mut VpxDecoder,
    pictures: &[VideoFrame],
    frames: &[EncodedVideoFrame],
    key: usize,
) {
    for i in key..key + 3 {
        let decoded = dec
            .decode(&frames[i].data, frames[i].capture_us)
            .unwrap_or_else(|e| panic!("frame {i} after corrupt input: {e}"))
            .unwrap();
        let psnr = psnr_y(&pictures[i], &decoded);
        assert!(psnr >= case.min_psnr - 5.0, "frame {i}: {psnr:.2} dB");
    }
}

fn corrupt_input_never_crashes(case: Case) {
    let (pictures, frames) = stream(case, 24, &[12]);
    assert!(frames[0].keyframe && frames[12].keyframe);
    let key = frames[0].data.clone();
    let mut rng = Rng::new(u64::from(case.width) * 31 + case.codec as u64);
    let mut dec = case.decoder();

    // Truncated keyframes, then truncated delta frames after a good start.
    for len in [
        1,
        2,
        3,
        5,
        9,
        10,
        11,
        16,
        40,
        key.len() / 4,
        key.len() / 2,
        key.len() - 1,
    ] {
        feed(&mut dec, &key[..len]);
    }
    recovers(case, &mut dec, &pictures, &frames, 0);
    for f in &frames[3..8] {
        feed(&mut dec, &f.data[..f.data.len() / 2]);
    }
    // A decode error leaves the decoder waiting for a keyframe.
    let mut dec_err = case.decoder();
    dec_err.decode(&key, 0).unwrap();
    let truncated_error = dec_err.decode(&frames[1].data[..3], 0).is_err();
    if truncated_error {
        let e = dec_err.decode(&frames[2].data, 0).unwrap_err();
        assert!(e.to_string().contains("waiting for a keyframe"), "{e}");
    }
    recovers(case, &mut dec_err, &pictures, &frames, 12);

    // Random bytes, plain and behind a plausible keyframe header so they
    // reach the entropy decoder.
    for i in 0..300 {
        let len = 1 + rng.below(if i % 3 == 0 { 64 } else { 4000 }) as usize;
        let mut data = rng.bytes(len);
        if i % 2 == 1 && data.len() > 10 {
            let header = 10.min(key.len());
            data[..header].copy_from_slice(&key[..header]);
        }
        feed(&mut dec, &data);
    }
    recovers(case, &mut dec, &pictures, &frames, 12);

    // Bit-flipped keyframes (1 to 8 flips anywhere, header included), each
    // followed by the delta frames that depend on it.
    for _ in 0..150 {
        let mut data = key.to_vec();
        for _ in 0..1 + rng.below(8) {
            let bit = rng.below(data.len() as u64 * 8) as usize;
            data[bit / 8] ^= 1 << (bit % 8);
        }
        feed(&mut dec, &data);
        for f in &frames[1..4] {
            feed(&mut dec, &f.data);
        }
    }
    recovers(case, &mut dec, &pictures, &frames, 12);

    // Empty input is an error, not a crash.
    assert!(matches!(dec.decode(&[], 0), Err(CodecError::Decode { .. })));
}

macro_rules! cases {
    ($($name:ident: $codec:ident, $w:expr, $h:expr, $bps:expr, $psnr:expr;)*) => {$(
        mod $name {
            use super::*;

            const CASE: Case = Case {
                codec: VideoCodec::$codec,
                width: $w,
                height: $h,
                bitrate_bps: $bps,
                min_psnr: $psnr,
            };

            #[test]
            fn round_trip_psnr() {
                super::round_trip_psnr(CASE);
            }

            #[test]
            fn keyframe_on_demand() {
                super::keyframe_on_demand(CASE);
            }

            #[test]
            fn bitrate_on_target() {
                super::bitrate_on_target(CASE);
            }

            #[test]
            fn set_bitrate_changes_rate() {
                super::set_bitrate_changes_rate(CASE);
            }

            #[test]
            fn set_resolution_mid_stream() {
                super::set_resolution_mid_stream(CASE);
            }

            #[test]
            fn corrupt_input_never_crashes() {
                super::corrupt_input_never_crashes(CASE);
            }
        }
    )*};
}

cases! {
    vp8_360p: Vp8, 640, 360, 1_000_000, 33.0;
    vp8_720p: Vp8, 1280, 720, 2_500_000, 30.0;
    vp9_360p: Vp9, 640, 360, 1_000_000, 33.0;
    vp9_720p: Vp9, 1280, 720, 2_500_000, 30.0;
}

#[test]
fn odd_sizes_round_trip() {
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9] {
        for (w, h) in [(321, 181), (99, 57), (2, 2), (1, 1)] {
            let config = VideoEncoderConfig {
                width: w,
                height: h,
                fps: 30,
                bitrate_bps: 800_000,
            };
            let mut enc = VpxEncoder::new(codec, config, VpxEncoderOptions::default()).unwrap();
            let mut dec = VpxDecoder::new(codec).unwrap();
            let scene = Scene::new(w.max(16), h.max(16));
            for n in 0..10 {
                // Crop the scene to the odd size so every plane has odd widths.
                let big = scene.frame(n, capture_us(n));
                let mut picture = VideoFrame::filled(w, h, 0, 0, 0, big.capture_us);
                let (cw, ch) = VideoFrame::chroma_size(w, h);
                let (bcw, _) = VideoFrame::chroma_size(big.width, big.height);
                let (py, pu, pv) = picture.planes_mut();
                for y in 0..h as usize {
                    py[y * w as usize..(y + 1) * w as usize]
                        .copy_from_slice(&big.y()[y * big.width as usize..][..w as usize]);
                }
                for y in 0..ch as usize {
                    let row = y * cw as usize..(y + 1) * cw as usize;
                    pu[row.clone()].copy_from_slice(&big.u()[y * bcw as usize..][..cw as usize]);
                    pv[row].copy_from_slice(&big.v()[y * bcw as usize..][..cw as usize]);
                }
                let f = encode_one(&mut enc, &picture, false);
                let decoded = dec.decode(&f.data, f.capture_us).unwrap().unwrap();
                assert_eq!((decoded.width, decoded.height), (w, h));
                let psnr = psnr_y(&picture, &decoded);
                // Chroma must land in the right place too: compare the mean
                // of U and V, which a misplaced plane would shift.
                let mean = |p: &[u8]| p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64;
                if w > 16 {
                    assert!(
                        (mean(picture.u()) - mean(decoded.u())).abs() < 3.0,
                        "{codec:?} {w}x{h} U"
                    );
                    assert!(
                        (mean(picture.v()) - mean(decoded.v())).abs() < 3.0,
                        "{codec:?} {w}x{h} V"
                    );
                    assert!(psnr >= 28.0, "{codec:?} {w}x{h} frame {n}: {psnr:.2} dB");
                }
            }
        }
    }
}

#[test]
fn two_threads_round_trip() {
    // The default picks one thread on a two-core machine; the threaded
    // paths of encoder and decoder must give the same pictures. This checks
    // correctness, not quality: a broken threaded path is far below 25 dB.
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9] {
        let config = VideoEncoderConfig {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_500_000,
        };
        let options = VpxEncoderOptions {
            threads: Some(2),
            cpu_used: None,
        };
        let mut enc = VpxEncoder::new(codec, config, options).unwrap();
        let mut dec = VpxDecoder::with_threads(codec, 2).unwrap();
        let scene = Scene::new(1280, 720);
        let mut psnrs = Vec::new();
        for n in 0..30 {
            let picture = scene.frame(n, capture_us(n));
            let f = encode_one(&mut enc, &picture, n == 15);
            assert_eq!(f.keyframe, n == 0 || n == 15);
            let decoded = dec.decode(&f.data, f.capture_us).unwrap().unwrap();
            psnrs.push(psnr_y(&picture, &decoded));
        }
        let mean = psnrs.iter().sum::<f64>() / psnrs.len() as f64;
        let min = psnrs.iter().copied().fold(f64::INFINITY, f64::min);
        eprintln!("{codec:?} 720p two threads: PSNR-Y mean {mean:.2} dB, min {min:.2} dB");
        assert!(
            mean >= 28.0 && min >= 25.0,
            "{codec:?}: mean {mean:.2}, min {min:.2}"
        );
    }
}

#[test]
fn set_fps_keeps_bitrate() {
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9] {
        let case = Case {
            codec,
            width: 640,
            height: 360,
            bitrate_bps: 600_000,
            min_psnr: 0.0,
        };
        let scene = Scene::new(640, 360);
        let mut enc = case.encoder();
        for n in 0..30 {
            encode_one(&mut enc, &scene.frame(n, capture_us(n)), false);
        }
        enc.set_fps(15).unwrap();
        assert_eq!(enc.config().fps, 15);
        // 6 s at 15 fps; measure the last 4 s.
        let mut bytes = 0;
        for k in 0..90u64 {
            let n = 30 + k;
            let at = capture_us(30) + k * 1_000_000 / 15;
            let f = encode_one(&mut enc, &scene.frame(n, at), false);
            if k >= 30 {
                bytes += f.data.len();
            }
        }
        let achieved = bytes as f64 * 8.0 / 4.0 / 1000.0;
        eprintln!("{codec:?} at 15 fps: {achieved:.0} kbit/s for 600");
        assert!(
            (achieved - 600.0).abs() <= 0.25 * 600.0,
            "{codec:?}: {achieved:.0} kbit/s"
        );
    }
}

#[test]
fn force_keyframe_right_after_start_and_resize() {
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9] {
        let case = Case {
            codec,
            width: 320,
            height: 180,
            bitrate_bps: 300_000,
            min_psnr: 0.0,
        };
        let scene = Scene::new(320, 180);
        let mut enc = case.encoder();
        // Forcing the very first frame or twice in a row is fine.
        for (n, force, key) in [
            (0, true, true),
            (1, true, true),
            (2, true, true),
            (3, false, false),
        ] {
            let f = encode_one(&mut enc, &scene.frame(n, capture_us(n)), force);
            assert_eq!(f.keyframe, key, "{codec:?} frame {n}");
        }
        // Setting the same size again is a no-op: no keyframe.
        enc.set_resolution(320, 180).unwrap();
        assert!(!encode_one(&mut enc, &scene.frame(4, capture_us(4)), false).keyframe);
    }
}

#[test]
fn bad_input_and_config_are_errors() {
    let config = VideoEncoderConfig {
        width: 320,
        height: 180,
        fps: 30,
        bitrate_bps: 300_000,
    };
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9] {
        let mut enc = VpxEncoder::new(codec, config, VpxEncoderOptions::default()).unwrap();
        assert_eq!(enc.implementation(), "libvpx");
        // Wrong size.
        let other = VideoFrame::filled(160, 90, 16, 128, 128, 0);
        assert!(matches!(
            enc.encode(&other, false),
            Err(CodecError::Encode { .. })
        ));
        // Right size, wrong byte count (fields are public).
        let mut short = VideoFrame::filled(320, 180, 16, 128, 128, 0);
        short.data.truncate(100);
        let e = enc.encode(&short, false).unwrap_err();
        assert!(matches!(e, CodecError::Encode { .. }), "{e}");
        // Still works after refusing those.
        let ok = VideoFrame::filled(320, 180, 16, 128, 128, 0);
        assert!(encode_one(&mut enc, &ok, false).keyframe);
        // Out-of-range settings are refused and change nothing.
        assert!(enc.set_bitrate(0).is_err());
        assert!(enc.set_fps(0).is_err());
        assert!(enc.set_resolution(0, 10).is_err());
        assert!(enc.set_resolution(20_000, 10).is_err());
        assert_eq!(enc.config(), config);
        encode_one(&mut enc, &ok, false);

        for bad in [
            VideoEncoderConfig { width: 0, ..config },
            VideoEncoderConfig {
                height: 17_000,
                ..config
            },
            VideoEncoderConfig { fps: 0, ..config },
            VideoEncoderConfig {
                bitrate_bps: 0,
                ..config
            },
        ] {
            let e = VpxEncoder::new(codec, bad, VpxEncoderOptions::default()).unwrap_err();
            assert!(matches!(e, CodecError::Init { .. }), "{e}");
        }
        let e = VpxEncoder::new(
            codec,
            config,
            VpxEncoderOptions {
                threads: Some(0),
                cpu_used: None,
            },
        );
        assert!(e.is_err());
    }
    for codec in [VideoCodec::Av1, VideoCodec::H264] {
        assert!(matches!(
            VpxEncoder::new(codec, config, VpxEncoderOptions::default()),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(matches!(
            VpxDecoder::new(codec),
            Err(CodecError::Unsupported { .. })
        ));
    }
}

#[test]
fn decoder_waits_for_a_keyframe_and_says_why() {
    for codec in [VideoCodec::Vp8, VideoCodec::Vp9] {
        let case = Case {
            codec,
            width: 320,
            height: 180,
            bitrate_bps: 300_000,
            min_psnr: 0.0,
        };
        let (pictures, frames) = stream(case, 6, &[]);
        let mut dec = case.decoder();
        assert_eq!(dec.codec(), codec);
        // Joining mid-stream: delta frames are refused until a keyframe.
        let e = dec.decode(&frames[2].data, 0).unwrap_err();
        assert!(
            matches!(e, CodecError::Decode { .. }) && e.to_string().contains("keyframe"),
            "{e}"
        );
        dec.decode(&frames[0].data, 0).unwrap().unwrap();
        // A libvpx failure names the call and libvpx's own message.
        let mut garbage = frames[1].data.to_vec();
        garbage.truncate(2);
        if let Err(e) = dec.decode(&garbage, 0) {
            let text = e.to_string();
            assert!(text.starts_with(codec.sdp_name()), "{text}");
            assert!(text.contains("vpx_codec_decode failed"), "{text}");
        }
        let mut dec = case.decoder();
        for (p, f) in pictures.iter().zip(&frames) {
            let decoded = dec.decode(&f.data, 0).unwrap().unwrap();
            assert!(psnr_y(p, &decoded) > 25.0);
        }
    }
}

#[test]
fn codecs_are_send_and_boxable() {
    fn send<T: Send>() {}
    send::<VpxEncoder>();
    send::<VpxDecoder>();
    let config = VideoEncoderConfig {
        width: 160,
        height: 96,
        fps: 30,
        bitrate_bps: 200_000,
    };
    let mut enc: Box<dyn VideoEncoder> = Box::new(VpxEncoder::vp9(config).unwrap());
    let mut dec: Box<dyn VideoDecoder> = Box::new(VpxDecoder::new(VideoCodec::Vp9).unwrap());
    // Encode on one thread, decode on another.
    let frame = VideoFrame::filled(160, 96, 100, 120, 140, 5);
    let out = std::thread::spawn(move || enc.encode(&frame, false).unwrap())
        .join()
        .unwrap();
    let picture = std::thread::spawn(move || dec.decode(&out[0].data, 5).unwrap())
        .join()
        .unwrap()
        .unwrap();
    assert_eq!((picture.width, picture.height), (160, 96));
    assert!(picture.y().iter().all(|&v| v.abs_diff(100) <= 2));
}

#[test]
fn many_codecs_come_and_go() {
    // Creating and dropping contexts (with and without use) must not leak or
    // crash; run under valgrind to see leaks, here it checks the RAII paths.
    let config = VideoEncoderConfig {
        width: 64,
        height: 64,
        fps: 30,
        bitrate_bps: 100_000,
    };
    let frame = VideoFrame::filled(64, 64, 80, 128, 128, 0);
    for i in 0..50 {
        let codec = if i % 2 == 0 {
            VideoCodec::Vp8
        } else {
            VideoCodec::Vp9
        };
        let mut enc = VpxEncoder::new(codec, config, VpxEncoderOptions::default()).unwrap();
        let mut dec = VpxDecoder::new(codec).unwrap();
        if i % 3 != 0 {
            let f = encode_one(&mut enc, &frame, false);
            dec.decode(&f.data, 0).unwrap().unwrap();
            enc.set_resolution(32, 32).unwrap();
        }
    }
}

/// The frames of an IVF file (32-byte header, then 12-byte frame headers).
fn ivf_frames(bytes: &[u8]) -> Vec<&[u8]> {
    assert_eq!(&bytes[..4], b"DKIF");
    let mut frames = Vec::new();
    let mut at = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        frames.push(&bytes[at + 12..at + 12 + len]);
        at += 12 + len;
    }
    frames
}

#[test]
fn vp9_high_bit_depth_is_shifted_to_8_bits() {
    // Made with Debian's vpxenc 1.12 (--profile=2 --bit-depth=10) from a
    // 10-bit ramp: Y = 100 + 16x + frame, U = 400, V = 600.
    let ivf = include_bytes!("data/vp9_profile2_10bit_48x32.ivf");
    let mut dec = VpxDecoder::new(VideoCodec::Vp9).unwrap();
    for (n, data) in ivf_frames(ivf).into_iter().enumerate() {
        let p = dec.decode(data, n as u64).unwrap().unwrap();
        assert_eq!((p.width, p.height), (48, 32));
        for (x, &v) in p.y()[..48].iter().enumerate() {
            let want = (100 + 16 * x as i32 + n as i32) >> 2;
            assert!(
                (i32::from(v) - want).abs() <= 2,
                "frame {n} x {x}: {v} vs {want}"
            );
        }
        assert!(p.u().iter().all(|&v| v.abs_diff(100) <= 2));
        assert!(p.v().iter().all(|&v| v.abs_diff(150) <= 2));
    }
}

#[test]
fn vp9_444_is_reported_unsupported() {
    // Profile 1 (4:4:4) from vpxenc: Kith's frames are 4:2:0 only.
    let ivf = include_bytes!("data/vp9_profile1_444_48x32.ivf");
    let mut dec = VpxDecoder::new(VideoCodec::Vp9).unwrap();
    let e = dec.decode(ivf_frames(ivf)[0], 0).unwrap_err();
    assert!(matches!(e, CodecError::Unsupported { .. }), "{e}");
}
