//! Shared measurements for codec tests: run a synthetic clip through an
//! encoder and decoder and report what came out.
#![allow(dead_code, clippy::unwrap_used)]

use kith_media::codec::{EncodedVideoFrame, VideoDecoder, VideoEncoder};
use kith_media::frame::VideoFrame;
use kith_media::video::latency_strip;
use kith_media::video::synthetic::SyntheticCamera;

pub const FPS: u32 = 30;
/// An arbitrary fixed start time, so latency strips are reproducible.
pub const START_US: u64 = 1_767_225_600_000_000;

/// Peak signal-to-noise ratio of the luma planes, in dB.
pub fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mse: f64 = a
        .y()
        .iter()
        .zip(b.y())
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        / a.y().len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

#[derive(Debug, Default)]
pub struct Run {
    pub frames_in: usize,
    pub frames_out: usize,
    pub decoded: usize,
    pub bytes: usize,
    pub mean_psnr: f64,
    pub min_psnr: f64,
    pub strips_read: usize,
    pub keyframes_at: Vec<usize>,
    pub encoded: Vec<EncodedVideoFrame>,
}

impl Run {
    /// Achieved bitrate over the clip's duration.
    pub fn bitrate_bps(&self) -> f64 {
        self.bytes as f64 * 8.0 / (self.frames_in as f64 / f64::from(FPS))
    }
}

/// Encodes `frames` synthetic frames at 30 fps (keyframes forced at
/// `force_at`), decodes every output, and measures.
pub fn run(
    encoder: &mut dyn VideoEncoder,
    decoder: &mut dyn VideoDecoder,
    frames: usize,
    force_at: &[usize],
) -> Run {
    let config = encoder.config();
    let camera = SyntheticCamera::new(config.width, config.height);
    let mut result = Run {
        min_psnr: f64::MAX,
        ..Run::default()
    };
    let mut psnr_sum = 0.0;
    let mut sources = std::collections::HashMap::new();
    for index in 0..frames {
        let capture_us = START_US + index as u64 * 1_000_000 / u64::from(FPS);
        let frame = camera.draw(index as u64, capture_us);
        sources.insert(capture_us, frame.clone());
        let out = encoder.encode(&frame, force_at.contains(&index)).unwrap();
        result.frames_in += 1;
        for encoded in out {
            result.frames_out += 1;
            result.bytes += encoded.data.len();
            if encoded.keyframe {
                // Which source frame this is, by its capture time (encoders
                // with lag emit it later than it went in).
                // Rounded: capture times are whole microseconds of 1/30 s steps.
                let source =
                    ((encoded.capture_us - START_US) * u64::from(FPS) + 500_000) / 1_000_000;
                result.keyframes_at.push(source as usize);
            }
            if let Some(picture) = decoder.decode(&encoded.data, encoded.capture_us).unwrap() {
                result.decoded += 1;
                let source = &sources[&picture.capture_us];
                let psnr = psnr_y(source, &picture);
                psnr_sum += psnr;
                result.min_psnr = result.min_psnr.min(psnr);
                if latency_strip::read(&picture) == Some((picture.capture_us / 1000) as u32) {
                    result.strips_read += 1;
                }
            }
            result.encoded.push(encoded);
        }
    }
    result.mean_psnr = psnr_sum / result.decoded.max(1) as f64;
    result
}

/// Feeds damaged versions of `good` into `decoder`: it must not panic, and
/// must still decode `keyframe` afterwards.
pub fn survives_damage(decoder: &mut dyn VideoDecoder, keyframe: &[u8], later: &[u8]) {
    let mut damaged: Vec<Vec<u8>> = vec![
        keyframe[..keyframe.len() / 2].to_vec(),
        keyframe[..3.min(keyframe.len())].to_vec(),
        vec![],
        (0..4000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(),
    ];
    let mut flipped = keyframe.to_vec();
    for i in (10..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    damaged.push(flipped);
    damaged.push(later.to_vec()); // a delta frame with no keyframe before it
    for (i, bytes) in damaged.iter().enumerate() {
        // Errors are fine; panics and hangs are not.
        let _ = decoder.decode(bytes, i as u64);
    }
    let picture = decoder
        .decode(keyframe, 99)
        .expect("a good keyframe decodes after damage");
    assert!(
        picture.is_some(),
        "a good keyframe yields a picture after damage"
    );
}
