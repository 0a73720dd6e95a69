//! The realtime halves: the closures cpal calls on its audio thread.
//!
//! They only convert sample types and move samples through lock-free rings:
//! no allocation, no locks, no logging, nothing that can block.

use std::sync::Arc;
use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, SampleFormat, SizedSample};
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

use super::format::StreamPlan;
use super::shared::StreamShared;

/// How long stream creation may take before we call the server hung.
const BUILD_TIMEOUT: Duration = Duration::from_secs(5);

/// Samples moved per step in the playback callback; a stack buffer, so no allocation.
const CHUNK: usize = 1024;

/// Runs `$body` with `$t` bound to the Rust type of a cpal sample format.
macro_rules! with_sample_type {
    ($format:expr, $t:ident => $body:expr) => {
        match $format {
            SampleFormat::F32 => {
                type $t = f32;
                $body
            }
            SampleFormat::I16 => {
                type $t = i16;
                $body
            }
            SampleFormat::I32 => {
                type $t = i32;
                $body
            }
            SampleFormat::I24 => {
                type $t = cpal::I24;
                $body
            }
            SampleFormat::F64 => {
                type $t = f64;
                $body
            }
            SampleFormat::U16 => {
                type $t = u16;
                $body
            }
            SampleFormat::U8 => {
                type $t = u8;
                $body
            }
            SampleFormat::I8 => {
                type $t = i8;
                $body
            }
            SampleFormat::U24 => {
                type $t = cpal::U24;
                $body
            }
            SampleFormat::U32 => {
                type $t = u32;
                $body
            }
            SampleFormat::I64 => {
                type $t = i64;
                $body
            }
            SampleFormat::U64 => {
                type $t = u64;
                $body
            }
            other => Err(cpal::Error::with_message(
                cpal::ErrorKind::UnsupportedConfig,
                format!("sample format {other} is not supported"),
            )),
        }
    };
}

/// Capture stream: device samples, as `f32`, into `ring`.
pub(crate) fn build_capture(
    device: &cpal::Device,
    plan: &StreamPlan,
    ring: HeapProd<f32>,
    shared: Arc<StreamShared>,
) -> Result<cpal::Stream, cpal::Error> {
    with_sample_type!(plan.format, T => capture::<T>(device, plan, ring, shared))
}

fn capture<T>(
    device: &cpal::Device,
    plan: &StreamPlan,
    mut ring: HeapProd<f32>,
    shared: Arc<StreamShared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let channels = usize::from(plan.channels.max(1));
    let on_error = Arc::clone(&shared);
    device.build_input_stream::<T, _, _>(
        plan.config(),
        move |data: &[T], _| {
            StreamShared::count(&shared.callbacks);
            let whole = data.len() - data.len() % channels;
            let room = ring.vacant_len();
            // Whole frames only, so the reader never sees channels slip.
            let fit = whole.min(room - room % channels);
            ring.push_iter(data[..fit].iter().map(|s| s.to_sample::<f32>()));
            if fit < whole {
                StreamShared::count(&shared.overruns);
            }
        },
        move |err| on_error.on_error(&err),
        Some(BUILD_TIMEOUT),
    )
}

/// Playback stream: `ring` (device-format `f32`) to the device; everything that
/// reaches the device, silence included, is copied into `played`.
pub(crate) fn build_playback(
    device: &cpal::Device,
    plan: &StreamPlan,
    ring: HeapCons<f32>,
    played: HeapProd<f32>,
    prefill: usize,
    shared: Arc<StreamShared>,
) -> Result<cpal::Stream, cpal::Error> {
    with_sample_type!(plan.format, T => playback::<T>(device, plan, ring, played, prefill, shared))
}

fn playback<T>(
    device: &cpal::Device,
    plan: &StreamPlan,
    mut ring: HeapCons<f32>,
    mut played: HeapProd<f32>,
    prefill: usize,
    shared: Arc<StreamShared>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32> + Send + 'static,
{
    let channels = usize::from(plan.channels.max(1));
    // `plan` caps channels at MAX_DEVICE_CHANNELS, so this fits in CHUNK.
    let chunk = (CHUNK / channels).max(1) * channels;
    let mut scratch = [0.0f32; CHUNK];
    // Start (and restart after running dry) only once a cushion is queued, so a
    // late writer causes one clean gap rather than a crackle every callback.
    let half = ring.capacity().get() / 2;
    let start_level = prefill.min(half);
    let mut playing = false;
    let on_error = Arc::clone(&shared);
    device.build_output_stream::<T, _, _>(
        plan.config(),
        move |data: &mut [T], _| {
            StreamShared::count(&shared.callbacks);
            // Every ring holds whole frames only: half a frame in or out would
            // swap channels for the rest of the stream.
            let usable = data.len() - data.len() % channels;
            if !playing && ring.occupied_len() >= start_level.max(usable.min(half)) {
                playing = true;
            }
            let mut written = 0;
            if playing {
                while written < usable {
                    let whole = ring.occupied_len() / channels * channels;
                    let want = (usable - written).min(chunk).min(whole);
                    let got = ring.pop_slice(&mut scratch[..want]);
                    if got == 0 {
                        break;
                    }
                    for (out, s) in data[written..written + got].iter_mut().zip(&scratch[..got]) {
                        *out = T::from_sample(*s);
                    }
                    // A full played ring means nobody collects it; drop, don't wait.
                    let room = played.vacant_len() / channels * channels;
                    played.push_slice(&scratch[..got.min(room)]);
                    written += got;
                }
                if written < usable {
                    playing = false;
                    StreamShared::count(&shared.underruns);
                }
            }
            for out in &mut data[written..] {
                *out = T::EQUILIBRIUM;
            }
            let room = played.vacant_len() / channels * channels;
            played.push_iter(std::iter::repeat_n(0.0, (usable - written).min(room)));
        },
        move |err| on_error.on_error(&err),
        Some(BUILD_TIMEOUT),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audio_io::format::is_supported;
    use cpal::Sample;

    #[test]
    fn every_format_we_plan_for_has_a_callback_type() {
        let all = [
            SampleFormat::I8,
            SampleFormat::I16,
            SampleFormat::I24,
            SampleFormat::I32,
            SampleFormat::I64,
            SampleFormat::U8,
            SampleFormat::U16,
            SampleFormat::U24,
            SampleFormat::U32,
            SampleFormat::U64,
            SampleFormat::F32,
            SampleFormat::F64,
        ];
        for format in all {
            let sized: Result<usize, cpal::Error> =
                with_sample_type!(format, T => Ok(size_of::<T>()));
            assert_eq!(sized.is_ok(), is_supported(format), "{format}");
        }
    }

    #[test]
    fn conversions_keep_level_and_silence() {
        assert_eq!(i16::from_sample(0.5f32), 16_384);
        assert_eq!(0.5f32, f32::from_sample(16_384i16));
        assert_eq!(u8::EQUILIBRIUM, 128);
        assert_eq!(f32::from_sample(u8::EQUILIBRIUM), 0.0);
        let x: f32 = cpal::I24::from_sample(-0.25f32).to_sample();
        assert!((x + 0.25).abs() < 1e-6);
    }
}
