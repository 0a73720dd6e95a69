//! A synthetic moving picture and measuring helpers for the codec tests.
//!
//! The picture is built so an encoder has real work on every frame: a
//! textured background (gradients, sine patterns, fine-grained pseudo-random
//! detail, blocky patches) that pans, and a checkered box that bounces
//! across it. Everything costly is precomputed once per size; a frame is row
//! copies, so tests stay fast in unoptimized builds.
#![allow(dead_code, clippy::unwrap_used)]

use kith_media::frame::VideoFrame;

/// 30 fps: 33 333 µs between frames.
pub const FRAME_US: u64 = 33_333;
/// Capture time of frame 0 (any epoch-like value).
pub const START_US: u64 = 1_700_000_000_000_000;

/// Capture time of frame `n` at 30 fps.
pub fn capture_us(n: u64) -> u64 {
    START_US + n * 1_000_000 / 30
}

fn hash(x: u32, y: u32, seed: u32) -> u32 {
    let mut h = x
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add(y.wrapping_mul(0x85EB_CA77))
        .wrapping_add(seed.wrapping_mul(0xC2B2_AE3D));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    h
}

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Precomputed layers of one picture size.
pub struct Scene {
    pub width: u32,
    pub height: u32,
    /// Extra background columns on each side for panning.
    margin: usize,
    bg_y: Vec<u8>,
    bg_u: Vec<u8>,
    bg_v: Vec<u8>,
    box_w: usize,
    box_h: usize,
    box_y: Vec<u8>,
}

impl Scene {
    pub fn new(width: u32, height: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let margin = (w / 10).max(8) & !1;
        let bw = w + 2 * margin;
        let mut bg_y = vec![0u8; bw * h];
        for y in 0..h {
            for x in 0..bw {
                let (fx, fy) = (x as f32, y as f32);
                let gradient = 30.0 + 140.0 * fx / bw as f32 + 50.0 * fy / h as f32;
                let waves = 18.0 * (fx * 0.11).sin() * (fy * 0.07).cos()
                    + 10.0 * (fx * 0.031 + fy * 0.047).sin();
                let grain = (hash(x as u32, y as u32, 1) % 25) as f32 - 12.0;
                let patch = if hash(x as u32 / 16, y as u32 / 16, 2).is_multiple_of(4) {
                    ((hash(x as u32 / 4, y as u32 / 4, 3) % 61) as f32) - 30.0
                } else {
                    0.0
                };
                bg_y[y * bw + x] = clamp_u8(gradient + waves + grain + patch);
            }
        }
        let (cw, ch) = VideoFrame::chroma_size(width, height);
        let (cw, ch) = (cw as usize, ch as usize);
        let cbw = cw + margin;
        let mut bg_u = vec![0u8; cbw * ch];
        let mut bg_v = vec![0u8; cbw * ch];
        for y in 0..ch {
            for x in 0..cbw {
                let (fx, fy) = (x as f32 / cbw as f32, y as f32 / ch as f32);
                bg_u[y * cbw + x] = clamp_u8(90.0 + 70.0 * fx + 8.0 * (x as f32 * 0.2).sin());
                bg_v[y * cbw + x] = clamp_u8(170.0 - 60.0 * fy + 8.0 * (y as f32 * 0.15).cos());
            }
        }
        let box_w = (w / 5).max(2);
        let box_h = (h / 4).max(2);
        let mut box_y = vec![0u8; box_w * box_h];
        for y in 0..box_h {
            for x in 0..box_w {
                let border = x < 3 || y < 3 || x + 3 >= box_w || y + 3 >= box_h;
                let check = ((x / 8) + (y / 8)) % 2 == 0;
                let base = if border {
                    250.0
                } else if check {
                    200.0
                } else {
                    60.0
                };
                let grain = (hash(x as u32, y as u32, 4) % 31) as f32 - 15.0;
                box_y[y * box_w + x] = clamp_u8(base + grain);
            }
        }
        Self {
            width,
            height,
            margin,
            bg_y,
            bg_u,
            bg_v,
            box_w,
            box_h,
            box_y,
        }
    }

    /// Triangle wave over `0..=max` with the given period.
    fn bounce(n: u64, speed: u64, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let max = max as u64;
        let p = (n * speed) % (2 * max);
        (if p <= max { p } else { 2 * max - p }) as usize
    }

    /// Frame `n` of the sequence, captured at `capture_us`.
    pub fn frame(&self, n: u64, capture_us: u64) -> VideoFrame {
        let (w, h) = (self.width as usize, self.height as usize);
        let bw = w + 2 * self.margin;
        // Background pans 2 px per frame (even, so chroma pans 1).
        let pan = Self::bounce(n, 2, 2 * self.margin) & !1;
        let mut frame = VideoFrame::filled(self.width, self.height, 0, 0, 0, capture_us);
        let (cw, ch) = VideoFrame::chroma_size(self.width, self.height);
        let (cw, ch) = (cw as usize, ch as usize);
        let cbw = cw + self.margin;
        let (py, pu, pv) = frame.planes_mut();
        for y in 0..h {
            py[y * w..(y + 1) * w].copy_from_slice(&self.bg_y[y * bw + pan..y * bw + pan + w]);
        }
        for y in 0..ch {
            let src = y * cbw + pan / 2;
            pu[y * cw..(y + 1) * cw].copy_from_slice(&self.bg_u[src..src + cw]);
            pv[y * cw..(y + 1) * cw].copy_from_slice(&self.bg_v[src..src + cw]);
        }
        // The box: ~1 % of the width per frame across, slower down.
        let speed_x = (w as u64 / 100).max(1);
        let bx = Self::bounce(n, speed_x, w - self.box_w);
        let by = Self::bounce(n, (speed_x / 2).max(1), h - self.box_h);
        for y in 0..self.box_h {
            let dst = (by + y) * w + bx;
            py[dst..dst + self.box_w]
                .copy_from_slice(&self.box_y[y * self.box_w..(y + 1) * self.box_w]);
        }
        for y in by / 2..((by + self.box_h) / 2).min(ch) {
            let start = y * cw + bx / 2;
            let end = (y * cw + (bx + self.box_w) / 2).min((y + 1) * cw);
            pu[start..end].fill(200);
            pv[start..end].fill(60);
        }
        frame
    }
}

/// PSNR of the Y planes, dB (capped at 99 for identical planes).
pub fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> f64 {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "frame sizes differ"
    );
    let sse: u64 = a
        .y()
        .iter()
        .zip(b.y())
        .map(|(&p, &q)| {
            let d = i32::from(p) - i32::from(q);
            (d * d) as u64
        })
        .sum();
    if sse == 0 {
        return 99.0;
    }
    let mse = sse as f64 / a.y().len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// A small deterministic generator for random test input (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Percentile (0..=100) of unsorted samples.
pub fn percentile(samples: &[f64], pct: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((pct / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx.min(s.len() - 1)]
}
