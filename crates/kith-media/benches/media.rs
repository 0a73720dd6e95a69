//! `cargo xtask bench media`: encode/decode speed, bitrate and quality of
//! every video codec at 360p and 720p (2 threads; OpenH264 one), and audio
//! costs. `cargo bench -p kith-media --bench media -- H264` runs only the
//! rows whose name contains `H264`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use kith_media::codec::av1::aom_encoder::{AomEncoder, DEFAULT_CPU_USED};
use kith_media::codec::av1::dav1d_decoder::Dav1dDecoder;
use kith_media::codec::av1::rav1e_encoder::Rav1eEncoder;
use kith_media::codec::h264::{H264Decoder, H264Encoder};
use kith_media::codec::vpx::{VpxDecoder, VpxEncoder, VpxEncoderOptions};
use kith_media::codec::{VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig};
use kith_media::frame::VideoFrame;
use kith_media::video::synthetic::SyntheticCamera;

const FPS: u32 = 30;
const THREADS: usize = 2;

fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * q).round() as usize]
}

fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> f64 {
    let mse: f64 = a
        .y()
        .iter()
        .zip(b.y())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.y().len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (65025.0 / mse).log10()
    }
}

struct Row {
    name: String,
    size: String,
    encode_fps: f64,
    encode_p50: f64,
    encode_p95: f64,
    decode_fps: f64,
    decode_p50: f64,
    decode_p95: f64,
    kbps: f64,
    target_kbps: u32,
    psnr: f64,
}

fn measure(
    name: &str,
    encoder: &mut dyn VideoEncoder,
    decoder: &mut dyn VideoDecoder,
    frames: u64,
) -> Row {
    let config = encoder.config();
    let camera = SyntheticCamera::new(config.width, config.height);
    let inputs: Vec<VideoFrame> = (0..frames)
        .map(|i| camera.draw(i, i * 1_000_000 / u64::from(FPS)))
        .collect();
    let (mut encode_ms, mut decode_ms) = (Vec::new(), Vec::new());
    let (mut bytes, mut psnr_sum, mut decoded) = (0usize, 0.0, 0usize);
    for frame in &inputs {
        let started = Instant::now();
        let out = encoder.encode(frame, false).unwrap();
        encode_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        for packet in out {
            bytes += packet.data.len();
            let started = Instant::now();
            let picture = decoder.decode(&packet.data, packet.capture_us).unwrap();
            decode_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if let Some(picture) = picture {
                // Match by capture time: encoders with lag (rav1e) emit a
                // frame several inputs after it went in.
                // Rounded: capture times are whole microseconds of 1/30 s steps.
                let index = ((picture.capture_us * u64::from(FPS) + 500_000) / 1_000_000) as usize;
                if let Some(source) = inputs.get(index) {
                    psnr_sum += psnr_y(source, &picture);
                    decoded += 1;
                }
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Row {
        name: name.into(),
        size: format!("{}p", config.height),
        encode_fps: 1000.0 / mean(&encode_ms),
        encode_p50: percentile(&mut encode_ms, 0.5),
        encode_p95: percentile(&mut encode_ms, 0.95),
        decode_fps: 1000.0 / mean(&decode_ms),
        decode_p50: percentile(&mut decode_ms, 0.5),
        decode_p95: percentile(&mut decode_ms, 0.95),
        kbps: bytes as f64 * 8.0 / (frames as f64 / f64::from(FPS)) / 1000.0,
        target_kbps: config.bitrate_bps / 1000,
        psnr: psnr_sum / decoded.max(1) as f64,
    }
}

fn config(height: u32) -> VideoEncoderConfig {
    let (width, bitrate_bps) = if height == 720 {
        (1280, 2_500_000)
    } else {
        (640, 1_000_000)
    };
    VideoEncoderConfig {
        width,
        height,
        fps: FPS,
        bitrate_bps,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the first other argument filters rows.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut rows = Vec::new();
    for height in [360, 720] {
        for speed in [10u8, 8, 6] {
            let name = format!("AV1 rav1e speed {speed}");
            if !wanted(&name) {
                continue;
            }
            // rav1e is slow at 720p: fewer frames keep the bench bounded.
            let frames = if height == 720 { 60 } else { 90 };
            let mut encoder = Rav1eEncoder::new(config(height), speed, THREADS).unwrap();
            let mut decoder = Dav1dDecoder::new(THREADS as u32).unwrap();
            rows.push(measure(&name, &mut encoder, &mut decoder, frames));
        }
        for cpu_used in [DEFAULT_CPU_USED, 8] {
            let name = format!("AV1 libaom rt cpu-used {cpu_used}");
            if !wanted(&name) {
                continue;
            }
            let mut encoder = AomEncoder::new(config(height), cpu_used, THREADS as u32).unwrap();
            let mut decoder = Dav1dDecoder::new(THREADS as u32).unwrap();
            rows.push(measure(&name, &mut encoder, &mut decoder, 300));
        }
        for codec in [VideoCodec::Vp9, VideoCodec::Vp8] {
            let name = format!("{} libvpx realtime", codec.sdp_name());
            if !wanted(&name) {
                continue;
            }
            let mut encoder =
                VpxEncoder::new(codec, config(height), VpxEncoderOptions::default()).unwrap();
            let mut decoder = VpxDecoder::new(codec).unwrap();
            rows.push(measure(&name, &mut encoder, &mut decoder, 300));
        }
        // OpenH264 runs one thread (what WebRTC picks below 3 cores).
        let name = "H264 openh264 realtime";
        if wanted(name) {
            let mut encoder = H264Encoder::new(config(height)).unwrap();
            let mut decoder = H264Decoder::new().unwrap();
            rows.push(measure(name, &mut encoder, &mut decoder, 300));
        }
    }
    println!();
    println!(
        "kith-media codecs: synthetic 30 fps clip, 2 threads, encode and decode on this machine"
    );
    println!();
    println!(
        "| codec / encoder | size | enc fps | enc ms p50 / p95 | dec fps | dec ms p50 / p95 | kbps (target) | PSNR Y dB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.1} / {:.1} | {:.0} | {:.2} / {:.2} | {:.0} ({}) | {:.1} |",
            r.name,
            r.size,
            r.encode_fps,
            r.encode_p50,
            r.encode_p95,
            r.decode_fps,
            r.decode_p50,
            r.decode_p95,
            r.kbps,
            r.target_kbps,
            r.psnr
        );
    }
}
