//! H.264 over OpenH264, end to end on the synthetic camera at 30 fps (with
//! its latency strip) and on the harder moving picture of the VP8/VP9 tests.
//!
//! Every assertion is about behaviour (sizes, keyframe flags, NAL units,
//! bytes, PSNR), never speed: OpenH264 runs single-threaded at a fixed
//! complexity, so results do not depend on how busy the machine is.
#![allow(clippy::unwrap_used)]

#[path = "support/codec_check.rs"]
mod check;
#[path = "support/vpx_common.rs"]
mod common;

use common::{Rng, Scene, capture_us, psnr_y};
use kith_media::codec::h264::{H264Decoder, H264Encoder, annexb};
use kith_media::codec::{
    CodecError, EncodedVideoFrame, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig,
    rtp_timestamp,
};
use kith_media::frame::VideoFrame;

#[derive(Debug, Clone, Copy)]
struct Case {
    width: u32,
    height: u32,
    bitrate_bps: u32,
    /// Lowest acceptable mean Y PSNR of the synthetic camera at `bitrate_bps`.
    /// See `cases!` for the measurements behind it.
    min_psnr: f64,
}

impl Case {
    fn config(self) -> VideoEncoderConfig {
        VideoEncoderConfig {
            width: self.width,
            height: self.height,
            fps: check::FPS,
            bitrate_bps: self.bitrate_bps,
        }
    }

    fn encoder(self) -> H264Encoder {
        H264Encoder::new(self.config()).unwrap()
    }
}

fn decoder() -> H264Decoder {
    H264Decoder::new().unwrap()
}

/// Encodes one frame and checks the one output frame's metadata and NAL
/// units: SPS, PPS and an IDR slice on keyframes, only non-IDR slices on
/// the others.
fn encode_one(
    enc: &mut H264Encoder,
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
    check_frame(&f, picture);
    f
}

fn check_frame(f: &EncodedVideoFrame, picture: &VideoFrame) {
    assert_eq!(f.codec, VideoCodec::H264);
    assert_eq!((f.width, f.height), (picture.width, picture.height));
    assert_eq!(f.capture_us, picture.capture_us);
    assert_eq!(f.rtp_timestamp, rtp_timestamp(picture.capture_us));
    assert_eq!(
        &f.data[..4],
        [0, 0, 0, 1],
        "Annex B with 4-byte start codes"
    );
    let types: Vec<u8> = annexb::split(&f.data)
        .expect("Annex B")
        .into_iter()
        .map(|nal| annexb::nal_type(nal).unwrap())
        .collect();
    if f.keyframe {
        assert_eq!(
            types,
            [annexb::NAL_SPS, annexb::NAL_PPS, annexb::NAL_IDR],
            "keyframe: SPS, PPS, one IDR slice"
        );
    } else {
        assert_eq!(types, [annexb::NAL_SLICE], "delta frame: one non-IDR slice");
    }
}

/// 150 frames (5 s) of the synthetic camera, a keyframe asked for at frame 75:
/// quality, latency strip, keyframes exactly where asked, bitrate, parameter
/// sets, and damage handling on the result (the shared AV1 checks).
fn round_trip(case: Case) {
    let mut encoder = case.encoder();
    let mut decoder = decoder();
    let run = check::run(&mut encoder, &mut decoder, 150, &[75]);
    let target = f64::from(case.bitrate_bps);
    eprintln!(
        "H264 {}x{}: PSNR mean {:.2} min {:.2} dB, {:.0} kbit/s for {:.0} ({:+.1}%), keyframes at {:?}, strips {}/{}",
        case.width,
        case.height,
        run.mean_psnr,
        run.min_psnr,
        run.bitrate_bps() / 1000.0,
        target / 1000.0,
        (run.bitrate_bps() / target - 1.0) * 100.0,
        run.keyframes_at,
        run.strips_read,
        run.decoded
    );
    assert_eq!(
        run.frames_out, 150,
        "one packet per frame, no skipped frames"
    );
    assert_eq!(run.decoded, 150, "every packet decodes to a picture");
    assert!(
        run.mean_psnr >= case.min_psnr,
        "mean PSNR {:.2} dB < {}",
        run.mean_psnr,
        case.min_psnr
    );
    // No single frame may be broken (a misaligned or stale picture is < 15 dB).
    assert!(
        run.min_psnr >= case.min_psnr - 5.0,
        "worst frame {:.2} dB",
        run.min_psnr
    );
    assert_eq!(
        run.strips_read, run.decoded,
        "the latency strip survives coding"
    );
    assert_eq!(
        run.keyframes_at,
        [0, 75],
        "keyframes first and exactly where asked"
    );
    let ratio = run.bitrate_bps() / target;
    assert!(
        (0.75..=1.25).contains(&ratio),
        "bitrate {ratio:.2}x target over 5 s"
    );
    let camera = kith_media::video::synthetic::SyntheticCamera::new(case.width, case.height);
    for (n, f) in run.encoded.iter().enumerate() {
        let picture = camera.draw(n as u64, f.capture_us);
        check_frame(f, &picture);
        if f.keyframe {
            // A keyframe stands alone: a fresh decoder (which rejects delta
            // frames until its first keyframe) decodes it.
            let alone = H264Decoder::new()
                .unwrap()
                .decode(&f.data, f.capture_us)
                .unwrap()
                .unwrap();
            assert!(check::psnr_y(&picture, &alone) >= case.min_psnr - 5.0);
        }
    }
    let mut fresh = H264Decoder::new().unwrap();
    check::survives_damage(&mut fresh, &run.encoded[75].data, &run.encoded[80].data);
}

fn kbps(bytes: usize, frames: usize) -> f64 {
    bytes as f64 * 8.0 / (frames as f64 / 30.0) / 1000.0
}

fn set_bitrate_changes_rate(case: Case) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    let mut dec = decoder();
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
            // The rate changes in place: no keyframe for it.
            assert_eq!(f.keyframe, n == 0, "frame {n}");
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
    // Down to half, then up past the starting size, then back (all even).
    let sizes = [
        (case.width, case.height),
        (case.width / 2, case.height / 2),
        (case.width * 3 / 2, case.height * 3 / 2),
        (case.width, case.height),
    ];
    let mut enc = case.encoder();
    let mut dec = decoder();
    let mut n = 0u64;
    for (i, (w, h)) in sizes.into_iter().enumerate() {
        if i > 0 {
            enc.set_resolution(w, h).unwrap();
        }
        assert_eq!((enc.config().width, enc.config().height), (w, h));
        assert_eq!(enc.config().bitrate_bps, case.bitrate_bps);
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
        // The VP8/VP9 tests' picture codes better than the camera's (its
        // grain does not move); at the same bitrate the 1.5x sizes, with the
        // fewest bits per pixel, measured 32.2 dB (960x540) and 30.0 dB
        // (1920x1080), so the camera's floor holds here too.
        assert!(mean >= case.min_psnr, "{w}x{h}: {mean:.2} dB");
    }
    // A frame of the old size is refused, not silently encoded.
    let stale = Scene::new(case.width / 2, case.height / 2).frame(0, capture_us(n));
    assert!(matches!(
        enc.encode(&stale, false),
        Err(CodecError::Encode { .. })
    ));
}

/// Encodes `frames` frames of the moving picture, forcing keyframes at the
/// given indices.
fn stream(case: Case, frames: u64, keyframes: &[u64]) -> (Vec<VideoFrame>, Vec<EncodedVideoFrame>) {
    let scene = Scene::new(case.width, case.height);
    let mut enc = case.encoder();
    (0..frames)
        .map(|n| {
            let picture = scene.frame(n, capture_us(n));
            let f = encode_one(&mut enc, &picture, keyframes.contains(&n));
            assert_eq!(f.keyframe, n == 0 || keyframes.contains(&n), "frame {n}");
            (picture, f)
        })
        .unzip()
}

/// Feeds one damaged input: it must not crash, and when it decodes the
/// picture must be well formed. Returns whether it was refused.
fn feed(dec: &mut H264Decoder, data: &[u8]) -> bool {
    match dec.decode(data, 1) {
        Ok(Some(p)) => {
            assert!(p.width > 0 && p.height > 0);
            assert_eq!(p.data.len(), VideoFrame::byte_len(p.width, p.height));
            false
        }
        Ok(None) => false,
        Err(CodecError::Decode { reason, .. }) => {
            assert!(!reason.is_empty());
            true
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

/// After whatever came before, the clean keyframe at `key` and the delta
/// frames after it decode well.
fn recovers(
    dec: &mut H264Decoder,
    pictures: &[VideoFrame],
    frames: &[EncodedVideoFrame],
    key: usize,
) {
    assert!(frames[key].keyframe);
    for i in key..key + 3 {
        let decoded = dec
            .decode(&frames[i].data, frames[i].capture_us)
            .unwrap_or_else(|e| panic!("frame {i} after damaged input: {e}"))
            .unwrap();
        let psnr = psnr_y(&pictures[i], &decoded);
        assert!(psnr >= 20.0, "frame {i}: {psnr:.2} dB");
    }
}

fn damaged_input_is_an_error(case: Case) {
    let (pictures, frames) = stream(case, 24, &[12]);
    let key = frames[0].data.clone();
    let mut rng = Rng::new(u64::from(case.width) * 31 + 264);

    // Delta frames without a keyframe before them: refused.
    let mut dec = decoder();
    for f in &frames[1..6] {
        let e = dec.decode(&f.data, f.capture_us).unwrap_err();
        assert!(e.to_string().contains("waiting for a keyframe"), "{e}");
    }
    recovers(&mut dec, &pictures, &frames, 0);

    // Truncated keyframes, each on a fresh decoder: refused, whatever the
    // cut (inside a start code, after the parameter sets, mid-slice, one
    // byte short), and the next keyframe decodes.
    let idr_at = key
        .windows(5)
        .position(|w| w == [0, 0, 0, 1, 0x65])
        .unwrap();
    for len in [
        1,
        3,
        4,
        5,
        9,
        idr_at,
        idr_at + 5,
        idr_at + 40,
        key.len() / 2,
        key.len() - 1,
    ] {
        let mut dec = decoder();
        assert!(
            feed(&mut dec, &key[..len]),
            "keyframe cut to {len} of {} bytes decoded",
            key.len()
        );
        recovers(&mut dec, &pictures, &frames, 12);
    }
    // Truncated delta frames after a good start: refused, the decoder waits
    // for a keyframe (and says so) and takes the next one.
    let mut dec = decoder();
    dec.decode(&key, 0).unwrap().unwrap();
    for f in &frames[1..6] {
        let cut = &f.data[..f.data.len() / 2];
        assert!(feed(&mut dec, cut), "delta frame cut in half decoded");
    }
    let e = dec.decode(&frames[6].data, 0).unwrap_err();
    assert!(e.to_string().contains("waiting for a keyframe"), "{e}");
    recovers(&mut dec, &pictures, &frames, 12);

    // Random bytes: refused, plain or behind a start code and an IDR, SPS or
    // slice NAL header so they reach OpenH264's parsers.
    let mut dec = decoder();
    for i in 0..300 {
        let len = 1 + rng.below(if i % 3 == 0 { 64 } else { 4000 }) as usize;
        let mut data = rng.bytes(len);
        if i % 2 == 1 && data.len() > 5 {
            let header = [0x65, 0x67, 0x41][i % 3];
            data[..5].copy_from_slice(&[0, 0, 0, 1, header]);
        }
        assert!(
            feed(&mut dec, &data),
            "random input {i} ({len} bytes) decoded"
        );
    }
    recovers(&mut dec, &pictures, &frames, 12);

    // Bit-flipped keyframes (1 to 8 flips anywhere, start codes and headers
    // included), each followed by the delta frames that depend on it. A flip
    // in coefficient data can still be valid syntax, so these may decode to
    // a wrong picture; most must be refused, none may crash.
    let mut dec = decoder();
    let mut refused = 0;
    let tries = 200;
    for _ in 0..tries {
        let mut data = key.to_vec();
        for _ in 0..1 + rng.below(8) {
            let bit = rng.below(data.len() as u64 * 8) as usize;
            data[bit / 8] ^= 1 << (bit % 8);
        }
        refused += usize::from(feed(&mut dec, &data));
        for f in &frames[1..4] {
            feed(&mut dec, &f.data);
        }
    }
    eprintln!("{case:?}: {refused} of {tries} bit-flipped keyframes refused");
    assert!(
        refused * 2 > tries,
        "only {refused} of {tries} bit-flipped keyframes refused"
    );
    recovers(&mut dec, &pictures, &frames, 12);

    // Empty input is an error, not a crash.
    assert!(matches!(dec.decode(&[], 0), Err(CodecError::Decode { .. })));
}

macro_rules! cases {
    ($($name:ident: $w:expr, $h:expr, $bps:expr, $psnr:expr;)*) => {$(
        mod $name {
            use super::*;

            const CASE: Case = Case {
                width: $w,
                height: $h,
                bitrate_bps: $bps,
                min_psnr: $psnr,
            };

            #[test]
            fn round_trip() {
                super::round_trip(CASE);
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
            fn damaged_input_is_an_error() {
                super::damaged_input_is_an_error(CASE);
            }
        }
    )*};
}

// PSNR floor on the synthetic camera (fine texture over the whole frame,
// all of it moving, plus a box and the latency strip): measured here 28.9 dB
// mean (worst frame 28.3) at 360p/1 Mbit/s and 28.8 dB (worst 28.1) at
// 720p/2.5 Mbit/s, with OpenH264 at low complexity (medium gains 0.1 dB for
// a quarter more time). 27 dB, the AV1 tests' floor on the same clip,
// leaves room for OpenH264 versions, while a broken pipeline (a plane lost,
// swapped or misaligned, a stale picture) scores under 15 dB.
cases! {
    h264_360p: 640, 360, 1_000_000, 27.0;
    h264_720p: 1280, 720, 2_500_000, 27.0;
}

#[test]
fn keyframe_on_demand_exactly_on_that_frame() {
    let case = Case {
        width: 320,
        height: 180,
        bitrate_bps: 300_000,
        min_psnr: 0.0,
    };
    let scene = Scene::new(320, 180);
    let mut enc = case.encoder();
    let mut dec = decoder();
    // Forcing the very first frame, twice in a row, and later once.
    let forced = [0, 1, 2, 17, 31];
    let mut keyframes = Vec::new();
    for n in 0..40 {
        let picture = scene.frame(n, capture_us(n));
        let f = encode_one(&mut enc, &picture, forced.contains(&n));
        if f.keyframe {
            keyframes.push(n);
        }
        dec.decode(&f.data, f.capture_us).unwrap().unwrap();
    }
    assert_eq!(keyframes, forced, "keyframes exactly where asked");
    // Setting the same size again is a no-op: no keyframe.
    enc.set_resolution(320, 180).unwrap();
    assert!(!encode_one(&mut enc, &scene.frame(40, capture_us(40)), false).keyframe);
}

#[test]
fn set_fps_keeps_bitrate() {
    let case = Case {
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
        assert!(!f.keyframe, "frame rate changes in place");
        if k >= 30 {
            bytes += f.data.len();
        }
    }
    let achieved = bytes as f64 * 8.0 / 4.0 / 1000.0;
    eprintln!("H264 at 15 fps: {achieved:.0} kbit/s for 600");
    assert!(
        (achieved - 600.0).abs() <= 0.25 * 600.0,
        "{achieved:.0} kbit/s"
    );
}

#[test]
fn settings_before_the_first_frame_apply() {
    // OpenH264 takes options only once running; before that the encoder is
    // rebuilt, and the first frame is still the one keyframe.
    let config = VideoEncoderConfig {
        width: 320,
        height: 180,
        fps: 30,
        bitrate_bps: 300_000,
    };
    let mut enc = H264Encoder::new(config).unwrap();
    enc.set_bitrate(200_000).unwrap();
    enc.set_fps(15).unwrap();
    enc.set_resolution(160, 96).unwrap();
    let want = VideoEncoderConfig {
        width: 160,
        height: 96,
        fps: 15,
        bitrate_bps: 200_000,
    };
    assert_eq!(enc.config(), want);
    let scene = Scene::new(160, 96);
    let mut dec = decoder();
    for n in 0..10 {
        let picture = scene.frame(n, capture_us(n));
        let f = encode_one(&mut enc, &picture, false);
        assert_eq!(f.keyframe, n == 0);
        let decoded = dec.decode(&f.data, f.capture_us).unwrap().unwrap();
        assert_eq!((decoded.width, decoded.height), (160, 96));
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
    let mut enc = H264Encoder::new(config).unwrap();
    assert_eq!(enc.implementation(), "openh264");
    assert_eq!(enc.codec(), VideoCodec::H264);
    assert_eq!(VideoCodec::H264.sdp_name(), "H264");
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
    assert!(enc.set_bitrate(u32::MAX).is_err());
    assert!(enc.set_fps(0).is_err());
    assert!(enc.set_resolution(0, 10).is_err());
    assert!(
        enc.set_resolution(321, 180).is_err(),
        "odd sizes cannot be signalled"
    );
    assert!(enc.set_resolution(8, 8).is_err());
    assert!(enc.set_resolution(4000, 2000).is_err());
    assert_eq!(enc.config(), config);
    assert!(!encode_one(&mut enc, &ok, false).keyframe);

    for bad in [
        VideoEncoderConfig { width: 0, ..config },
        VideoEncoderConfig {
            width: 321,
            ..config
        },
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
        let e = H264Encoder::new(bad).unwrap_err();
        assert!(matches!(e, CodecError::Init { .. }), "{e}");
    }
}

#[test]
fn decoder_takes_parameter_sets_alone_and_names_errors() {
    let case = Case {
        width: 320,
        height: 180,
        bitrate_bps: 300_000,
        min_psnr: 0.0,
    };
    let (pictures, frames) = stream(case, 4, &[]);
    let mut dec = decoder();
    assert_eq!(dec.codec(), VideoCodec::H264);
    // A keyframe split in two: SPS and PPS alone give no picture (and no
    // error); then the IDR slice decodes with them.
    let key = &frames[0].data;
    let idr_at = key
        .windows(5)
        .position(|w| w == [0, 0, 0, 1, 0x65])
        .unwrap();
    assert!(
        dec.decode(&key[..idr_at], 0).is_err(),
        "still waiting: no IDR yet"
    );
    let mut dec = decoder();
    dec.decode(key, 0).unwrap().unwrap();
    assert_eq!(dec.decode(&key[..idr_at], 0).unwrap(), None);
    for (p, f) in pictures.iter().zip(&frames).skip(1) {
        let decoded = dec.decode(&f.data, f.capture_us).unwrap().unwrap();
        assert_eq!(decoded.capture_us, f.capture_us);
        assert!(psnr_y(p, &decoded) > 25.0);
    }
    // An OpenH264 failure says which.
    let mut garbage = frames[1].data.to_vec();
    garbage.truncate(8);
    let e = dec.decode(&garbage, 0).unwrap_err().to_string();
    assert!(e.starts_with("H264 could not decode"), "{e}");
}

#[test]
fn codecs_are_send_and_boxable() {
    fn send<T: Send>() {}
    send::<H264Encoder>();
    send::<H264Decoder>();
    let config = VideoEncoderConfig {
        width: 160,
        height: 96,
        fps: 30,
        bitrate_bps: 200_000,
    };
    let mut enc: Box<dyn VideoEncoder> = Box::new(H264Encoder::new(config).unwrap());
    let mut dec: Box<dyn VideoDecoder> = Box::new(H264Decoder::new().unwrap());
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
    assert!(picture.u().iter().all(|&v| v.abs_diff(120) <= 2));
    assert!(picture.v().iter().all(|&v| v.abs_diff(140) <= 2));
}
