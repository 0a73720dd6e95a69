//! Sample-rate conversion between a device's rate and Kith's 48 kHz, built on rubato.

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, Fft, FixedAsync, FixedSync, PolynomialDegree, Resampler};

/// Streams interleaved audio from one fixed rate to another.
///
/// Rates from one device clock are locked to each other, so the synchronous FFT
/// resampler fits: 10 ms in always gives 10 ms out for the standard rates.
pub(crate) struct RateConverter {
    channels: usize,
    kind: Kind,
}

enum Kind {
    Passthrough,
    Resample {
        resampler: Box<dyn Resampler<f32>>,
        /// Input gathered until the resampler's next chunk is complete.
        pending: Vec<f32>,
        out_buf: Vec<f32>,
    },
}

impl std::fmt::Debug for RateConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RateConverter");
        d.field("channels", &self.channels);
        match &self.kind {
            Kind::Passthrough => d.field("kind", &"passthrough"),
            Kind::Resample { resampler, .. } => d.field("ratio", &resampler.resample_ratio()),
        };
        d.finish()
    }
}

impl RateConverter {
    pub(crate) fn new(from_rate: u32, to_rate: u32, channels: usize) -> Result<Self, String> {
        if channels == 0 || from_rate == 0 || to_rate == 0 {
            return Err(format!(
                "cannot resample {channels} channels from {from_rate} Hz to {to_rate} Hz"
            ));
        }
        if from_rate == to_rate {
            return Ok(Self {
                channels,
                kind: Kind::Passthrough,
            });
        }
        let (from, to) = (from_rate as usize, to_rate as usize);
        let ten_ms = (from / 100).max(1);
        let fft = Fft::<f32>::new(from, to, ten_ms, channels, FixedSync::Both)
            .map_err(|e| e.to_string())?;
        // Rates without a small common divisor make the FFT blocks (and so the delay)
        // huge; polynomial interpolation is good enough for speech there.
        let resampler: Box<dyn Resampler<f32>> = if fft.input_frames_next() <= from / 10 {
            Box::new(fft)
        } else {
            tracing::debug!(
                from_rate,
                to_rate,
                "unusual rate pair, using polynomial resampler"
            );
            Box::new(
                Async::<f32>::new_poly(
                    to as f64 / from as f64,
                    1.0,
                    PolynomialDegree::Cubic,
                    ten_ms,
                    channels,
                    FixedAsync::Input,
                )
                .map_err(|e| e.to_string())?,
            )
        };
        let out_buf = vec![0.0; resampler.output_frames_max() * channels];
        let pending = Vec::with_capacity(resampler.input_frames_max() * channels);
        Ok(Self {
            channels,
            kind: Kind::Resample {
                resampler,
                pending,
                out_buf,
            },
        })
    }

    /// Output frames by which the converter delays its input.
    pub(crate) fn delay_frames(&self) -> usize {
        match &self.kind {
            Kind::Passthrough => 0,
            Kind::Resample { resampler, .. } => resampler.output_delay(),
        }
    }

    /// Converts `input` (whole interleaved frames) and appends what is ready to `out`.
    pub(crate) fn process(&mut self, input: &[f32], out: &mut VecDeque<f32>) {
        let channels = self.channels;
        let Kind::Resample {
            resampler,
            pending,
            out_buf,
        } = &mut self.kind
        else {
            out.extend(input.iter().copied());
            return;
        };
        let mut rest = input;
        while !rest.is_empty() {
            let need = resampler.input_frames_next() * channels;
            let take = need.saturating_sub(pending.len()).min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if pending.len() < need {
                break;
            }
            let frames_in = need / channels;
            let out_capacity = out_buf.len() / channels;
            let result = InterleavedSlice::new(&pending[..], channels, frames_in)
                .map_err(|e| e.to_string())
                .and_then(|input| {
                    let mut output =
                        InterleavedSlice::new_mut(&mut out_buf[..], channels, out_capacity)
                            .map_err(|e| e.to_string())?;
                    resampler
                        .process_into_buffer(&input, &mut output, None)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok((_, written)) => out.extend(out_buf[..written * channels].iter().copied()),
                // Buffers are sized from the resampler itself, so this is a bug, not
                // something a device can cause; losing one chunk beats stopping audio.
                Err(e) => tracing::error!(error = %e, "resampling failed, chunk dropped"),
            }
            pending.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    fn sine(rate: u32, freq: f32, amp: f32, frames: usize, channels: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let s = amp * (TAU * freq * i as f32 / rate as f32).sin();
                std::iter::repeat_n(s, channels)
            })
            .collect()
    }

    fn zero_crossing_freq(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    #[test]
    fn same_rate_passes_through() {
        let mut rc = RateConverter::new(48_000, 48_000, 2).unwrap();
        let mut out = VecDeque::new();
        rc.process(&[0.1, 0.2, 0.3, 0.4], &mut out);
        assert_eq!(out, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(rc.delay_frames(), 0);
    }

    #[test]
    fn cd_rate_becomes_48k_with_same_tone() {
        let mut rc = RateConverter::new(44_100, 48_000, 1).unwrap();
        let input = sine(44_100, 1000.0, 0.5, 44_100, 1);
        let mut out = VecDeque::new();
        // Feed in odd-sized pieces, as device callbacks do.
        for piece in input.chunks(317) {
            rc.process(piece, &mut out);
        }
        let out: Vec<f32> = out.into_iter().collect();
        let expected = 48_000 - rc.delay_frames();
        assert!(
            out.len().abs_diff(48_000) <= 480,
            "{} vs {expected}",
            out.len()
        );
        let steady = &out[4_800..out.len() - 4_800];
        let f = zero_crossing_freq(steady, 48_000);
        assert!((f - 1000.0).abs() < 5.0, "frequency {f}");
        let peak = steady.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.02, "peak {peak}");
    }

    #[test]
    fn every_10ms_in_gives_10ms_out_for_standard_rates() {
        // (22.05 kHz has no whole number of samples per 10 ms, so it is left out.)
        for rate in [8_000, 16_000, 24_000, 32_000, 44_100, 88_200, 96_000] {
            let mut rc = RateConverter::new(rate, 48_000, 2).unwrap();
            let mut out = VecDeque::new();
            let input = vec![0.0; (rate as usize / 100) * 2];
            for _ in 0..10 {
                rc.process(&input, &mut out);
            }
            assert_eq!(out.len(), 480 * 2 * 10, "rate {rate}");
        }
    }

    #[test]
    fn odd_rate_pair_still_converts() {
        let mut rc = RateConverter::new(44_101, 48_000, 1).unwrap();
        let mut out = VecDeque::new();
        rc.process(&sine(44_101, 440.0, 0.5, 44_101, 1), &mut out);
        assert!(out.len().abs_diff(48_000) < 1_000, "{}", out.len());
    }

    #[test]
    fn zero_rate_rejected() {
        assert!(RateConverter::new(0, 48_000, 1).is_err());
        assert!(RateConverter::new(48_000, 48_000, 0).is_err());
    }
}
