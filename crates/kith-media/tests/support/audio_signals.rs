//! Signals and measures shared by the integration tests.
#![allow(dead_code)]

use kith_media::frame::{AudioFrame, Channels, SAMPLES_PER_FRAME};

pub const RATE: f32 = 48_000.0;

/// Small deterministic generator, so every run hears the same "speech".
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }

    /// Uniform in [0, 1).
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next()
    }
}

/// A voiced-speech stand-in at 48 kHz: syllables of 120–300 ms, each a
/// harmonic series (1/k roll-off, up to 6 kHz, a formant bump near 700 Hz)
/// whose pitch glides inside `f0` and whose level follows a sin² envelope,
/// with short pauses between syllables. Peak amplitude is `peak`.
pub fn speech_like(seconds: f32, seed: u64, f0: (f32, f32), peak: f32) -> Vec<f32> {
    const BLOCK: usize = 48; // pitch and harmonic weights move once per ms
    let total = (seconds * RATE) as usize;
    let mut rng = Lcg::new(seed);
    let mut out = Vec::with_capacity(total);
    // One rotating phasor per harmonic: no sin() per sample, which keeps
    // debug-build tests fast, and all harmonics stay phase-locked.
    let mut phasors: Vec<(f64, f64)> = Vec::new();
    let mut rotations: Vec<(f64, f64)> = Vec::new();
    let mut weights: Vec<f32> = Vec::new();
    while out.len() < total {
        let len = (rng.range(0.12, 0.30) * RATE) as usize;
        let start_f0 = rng.range(f0.0, f0.1);
        let end_f0 = rng.range(f0.0, f0.1);
        let level = rng.range(0.45, 1.0);
        phasors.clear();
        for n in 0..len {
            let t = n as f32 / len as f32;
            if n % BLOCK == 0 {
                let f = f64::from(start_f0 + (end_f0 - start_f0) * t);
                let fundamental = phasors
                    .first()
                    .map_or(0.0, |&(c, s): &(f64, f64)| s.atan2(c));
                let count = (6000.0 / f) as usize;
                weights.clear();
                rotations.clear();
                for k in 1..=count {
                    let fk = k as f64 * f;
                    let formant = 1.0 + 2.0 * (-((fk - 700.0) / 400.0).powi(2)).exp();
                    weights.push((formant / k as f64) as f32);
                    let w = 2.0 * std::f64::consts::PI * fk / f64::from(RATE);
                    rotations.push((w.cos(), w.sin()));
                    if let Some(p) = phasors.get_mut(k - 1) {
                        // Renormalise against rounding drift.
                        let norm = (p.0 * p.0 + p.1 * p.1).sqrt();
                        *p = (p.0 / norm, p.1 / norm);
                    } else {
                        let a = fundamental * k as f64;
                        phasors.push((a.cos(), a.sin()));
                    }
                }
                phasors.truncate(count);
            }
            let env = (std::f32::consts::PI * t).sin().powi(2) * level;
            let mut s = 0.0f32;
            for ((p, r), w) in phasors.iter_mut().zip(&rotations).zip(&weights) {
                s += w * p.1 as f32;
                *p = (p.0 * r.0 - p.1 * r.1, p.0 * r.1 + p.1 * r.0);
            }
            out.push(env * s);
        }
        let gap = (rng.range(0.03, 0.15) * RATE) as usize;
        out.extend(std::iter::repeat_n(0.0, gap));
    }
    out.truncate(total);
    let max = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if max > 0.0 {
        out.iter_mut().for_each(|s| *s *= peak / max);
    }
    out
}

pub fn tone(freq: f32, amplitude: f32, samples: usize, rate: f32) -> Vec<f32> {
    (0..samples)
        .map(|n| amplitude * (2.0 * std::f32::consts::PI * freq * n as f32 / rate).sin())
        .collect()
}

/// Cuts mono samples into 10 ms frames of `channels` (stereo repeats).
pub fn frames(mono: &[f32], channels: Channels) -> Vec<AudioFrame> {
    mono.chunks_exact(SAMPLES_PER_FRAME)
        .enumerate()
        .map(|(i, chunk)| AudioFrame {
            channels,
            samples: match channels {
                Channels::Mono => chunk.to_vec(),
                Channels::Stereo => chunk.iter().flat_map(|&s| [s, s]).collect(),
            },
            position: (i * SAMPLES_PER_FRAME) as u64,
        })
        .collect()
}

/// First channel of a run of frames.
pub fn first_channel(frames: &[AudioFrame]) -> Vec<f32> {
    frames
        .iter()
        .flat_map(|f| f.samples.iter().step_by(f.channels.count()).copied())
        .collect()
}

pub fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

pub fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

/// The lag in `0..max_lag` at which `y` best matches `x` (normalised
/// cross-correlation over the first half second of `range` of `x`, which is
/// plenty to find it and keeps debug-build tests fast).
pub fn best_lag(x: &[f32], y: &[f32], range: std::ops::Range<usize>, max_lag: usize) -> usize {
    let range = range.start..range.end.min(range.start + 24_000);
    let mut best = (0, f64::MIN);
    for lag in 0..max_lag {
        if range.end + lag > y.len() {
            break;
        }
        let (mut xy, mut yy) = (0.0f64, 0.0f64);
        for n in range.clone() {
            let (a, b) = (f64::from(x[n]), f64::from(y[n + lag]));
            xy += a * b;
            yy += b * b;
        }
        let score = xy / yy.sqrt().max(1e-12);
        if score > best.1 {
            best = (lag, score);
        }
    }
    best.0
}

/// Waveform SNR of `y` delayed by `lag` against `x` over `range` of `x`.
pub fn snr_db(x: &[f32], y: &[f32], lag: usize, range: std::ops::Range<usize>) -> f64 {
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    for n in range {
        let (a, b) = (f64::from(x[n]), f64::from(y[n + lag]));
        sig += a * a;
        err += (a - b) * (a - b);
    }
    db(sig / err.max(1e-30))
}

/// Signal-to-noise-and-distortion of a sine of `freq`: fits the best sine
/// (any phase and gain, so delay and level do not count) and compares it
/// with what is left over.
pub fn sinad_db(y: &[f32], freq: f32, rate: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in y.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let v = f64::from(v);
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += v * s;
        yc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    let (mut fit, mut res) = (0.0, 0.0);
    for (n, &v) in y.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let f = a * s + b * c;
        fit += f * f;
        res += (f64::from(v) - f) * (f64::from(v) - f);
    }
    db(fit / res.max(1e-30))
}

/// RMS of a signal in dBFS (full-scale sine = −3 dBFS).
pub fn rms_dbfs(x: &[f32]) -> f64 {
    db(energy(x) / x.len().max(1) as f64)
}

/// Magnitude-spectrum SNR of `y` (delayed by `lag`) against `x` over
/// `range`, counting only `band` Hz: 1024-point Hann frames with 50 %
/// overlap, signal = Σ|X|², noise = Σ(|X|−|Y|)². Phase is left out on
/// purpose (see the Opus round-trip test for why).
pub fn spectral_snr_db(
    x: &[f32],
    y: &[f32],
    lag: usize,
    range: std::ops::Range<usize>,
    band: (f32, f32),
) -> f64 {
    use realfft::RealFftPlanner;
    const N: usize = 1024;
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N);
    let window: Vec<f32> = (0..N)
        .map(|i| (std::f32::consts::PI * i as f32 / N as f32).sin().powi(2))
        .collect();
    let (mut a, mut b) = (vec![0.0f32; N], vec![0.0f32; N]);
    let (mut fa, mut fb) = (fft.make_output_vec(), fft.make_output_vec());
    let (mut sig, mut noise) = (0.0f64, 0.0f64);
    let mut start = range.start;
    while start + N <= range.end && start + lag + N <= y.len() {
        for i in 0..N {
            a[i] = x[start + i] * window[i];
            b[i] = y[start + lag + i] * window[i];
        }
        fft.process(&mut a, &mut fa).expect("fft");
        fft.process(&mut b, &mut fb).expect("fft");
        for (k, (p, q)) in fa.iter().zip(&fb).enumerate() {
            let f = k as f32 * RATE / N as f32;
            if f >= band.0 && f < band.1 {
                sig += f64::from(p.norm_sqr());
                noise += f64::from(p.norm() - q.norm()).powi(2);
            }
        }
        start += N / 2;
    }
    db(sig / noise.max(1e-30))
}
