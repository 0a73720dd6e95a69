//! Picking the AV1 encoder and resolution this machine can sustain: rav1e
//! when it keeps up, libaom's real-time mode when it does not, and a smaller
//! picture when neither does.

use std::time::Instant;

use crate::codec::av1::aom_encoder::{AomEncoder, DEFAULT_CPU_USED};
use crate::codec::av1::rav1e_encoder::{DEFAULT_SPEED, Rav1eEncoder};
use crate::codec::{CodecError, VideoEncoder, VideoEncoderConfig};
use crate::video::synthetic::SyntheticCamera;

/// Which AV1 encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Av1Preference {
    /// Measure and pick (the default).
    Auto,
    Rav1e,
    Libaom,
}

/// Frames encoded to measure an encoder's speed.
const TRIAL_FRAMES: u64 = 8;
/// An encoder keeps up when it needs at most this share of the frame interval:
/// the rest is for decoding, audio and everything else on two cores.
const BUDGET_SHARE: f64 = 0.6;

/// Mean milliseconds per frame over a short trial on moving content.
pub fn trial_ms_per_frame(encoder: &mut dyn VideoEncoder) -> Result<f64, CodecError> {
    let config = encoder.config();
    let camera = SyntheticCamera::new(config.width, config.height);
    // The first frame is a keyframe and slower; measure the steady state.
    encoder.encode(&camera.draw(0, 0), false)?;
    let started = Instant::now();
    for index in 1..=TRIAL_FRAMES {
        encoder.encode(&camera.draw(index, index * 33_333), false)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / TRIAL_FRAMES as f64)
}

/// Sizes to fall back to, largest first, never above what was asked for.
fn ladder(width: u32, height: u32) -> Vec<(u32, u32)> {
    let mut sizes = vec![(width, height)];
    for (w, h) in [(960, 540), (640, 360), (480, 270), (320, 180)] {
        if w < width && h < height {
            sizes.push((w, h));
        }
    }
    sizes
}

/// What a trial picked: the encoder and the size it keeps up at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Choice {
    pub kind: Av1Preference,
    pub width: u32,
    pub height: u32,
}

/// A fresh encoder of the chosen kind and size, at `config`'s bitrate and
/// rate; `threads` is the encoder's thread count.
pub fn make_av1_encoder(
    choice: Av1Choice,
    config: VideoEncoderConfig,
    threads: usize,
) -> Result<Box<dyn VideoEncoder>, CodecError> {
    let sized = VideoEncoderConfig {
        width: choice.width,
        height: choice.height,
        ..config
    };
    Ok(match choice.kind {
        Av1Preference::Libaom => Box::new(AomEncoder::new(
            sized,
            DEFAULT_CPU_USED,
            u32::try_from(threads).unwrap_or(2),
        )?),
        _ => Box::new(Rav1eEncoder::new(sized, DEFAULT_SPEED, threads)?),
    })
}

/// Times trial encodes to find an AV1 encoder and size that keep up at
/// `config.fps` on this machine (see [`choose_av1_encoder`]).
pub fn trial_av1(
    config: VideoEncoderConfig,
    preference: Av1Preference,
    threads: usize,
) -> Result<Av1Choice, CodecError> {
    let budget_ms = 1000.0 / f64::from(config.fps.max(1)) * BUDGET_SHARE;
    let candidates: &[Av1Preference] = match preference {
        Av1Preference::Auto => &[Av1Preference::Rav1e, Av1Preference::Libaom],
        Av1Preference::Rav1e => &[Av1Preference::Rav1e],
        Av1Preference::Libaom => &[Av1Preference::Libaom],
    };
    let mut slowest_fallback = None;
    for (width, height) in ladder(config.width, config.height) {
        for kind in candidates {
            let choice = Av1Choice {
                kind: *kind,
                width,
                height,
            };
            let mut trial = make_av1_encoder(choice, config, threads)?;
            let ms = trial_ms_per_frame(&mut *trial)?;
            tracing::debug!(?kind, width, height, ms, budget_ms, "AV1 encoder trial");
            if ms <= budget_ms {
                tracing::info!(?kind, width, height, ms, "AV1 encoder chosen");
                return Ok(choice);
            }
            slowest_fallback = Some(choice);
        }
    }
    // Nothing keeps up (a very busy machine): the smallest size of the last
    // candidate tried is the best there is.
    let choice = slowest_fallback.unwrap_or(Av1Choice {
        kind: Av1Preference::Libaom,
        width: config.width,
        height: config.height,
    });
    tracing::warn!(
        kind = ?choice.kind,
        width = choice.width,
        height = choice.height,
        "no AV1 encoder keeps up; using the smallest size"
    );
    Ok(choice)
}

/// An AV1 encoder for `config` that keeps up at `config.fps`, possibly at a
/// smaller size (see its `config()`); `threads` is the encoder's thread count.
/// A fresh encoder after the trials, so the call starts on a keyframe of its
/// own.
pub fn choose_av1_encoder(
    config: VideoEncoderConfig,
    preference: Av1Preference,
    threads: usize,
) -> Result<Box<dyn VideoEncoder>, CodecError> {
    make_av1_encoder(trial_av1(config, preference, threads)?, config, threads)
}
