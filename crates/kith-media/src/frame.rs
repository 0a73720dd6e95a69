//! Raw media as it moves between sources, processing, codecs and sinks.

use std::time::Duration;

/// Audio sample rate of everything inside Kith.
pub const SAMPLE_RATE: u32 = 48_000;
/// Audio moves in 10 ms frames (what the echo canceller and Opus want).
pub const FRAME_DURATION: Duration = Duration::from_millis(10);
/// Samples per channel in one 10 ms frame.
pub const SAMPLES_PER_FRAME: usize = 480;

/// Mono or stereo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channels {
    Mono = 1,
    Stereo = 2,
}

impl Channels {
    pub fn count(self) -> usize {
        self as usize
    }

    pub fn from_count(count: usize) -> Option<Self> {
        match count {
            1 => Some(Channels::Mono),
            2 => Some(Channels::Stereo),
            _ => None,
        }
    }
}

/// 10 ms of 48 kHz audio, interleaved `f32` samples in `[-1, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    pub channels: Channels,
    /// `SAMPLES_PER_FRAME * channels` interleaved samples.
    pub samples: Vec<f32>,
    /// Position of the first sample, in samples per channel since the stream began.
    pub position: u64,
}

impl AudioFrame {
    pub fn silent(channels: Channels, position: u64) -> Self {
        Self {
            channels,
            samples: vec![0.0; SAMPLES_PER_FRAME * channels.count()],
            position,
        }
    }

    /// Root-mean-square level of all samples.
    pub fn rms(&self) -> f32 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f32 = self.samples.iter().map(|s| s * s).sum();
        (sum / self.samples.len() as f32).sqrt()
    }
}

/// One picture in planar YUV 4:2:0 (I420): a full-size Y plane, then U and V
/// at half width and height (rounded up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    /// Y, then U, then V, each plane tightly packed (stride = plane width).
    pub data: Vec<u8>,
    /// Capture time, microseconds since the Unix epoch.
    pub capture_us: u64,
}

impl VideoFrame {
    /// Width and height of the chroma planes.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// Bytes an I420 frame of this size takes.
    pub fn byte_len(width: u32, height: u32) -> usize {
        let (cw, ch) = Self::chroma_size(width, height);
        (width as usize * height as usize) + 2 * (cw as usize * ch as usize)
    }

    /// A frame filled with one colour.
    pub fn filled(width: u32, height: u32, y: u8, u: u8, v: u8, capture_us: u64) -> Self {
        let luma = width as usize * height as usize;
        let (cw, ch) = Self::chroma_size(width, height);
        let chroma = cw as usize * ch as usize;
        let mut data = vec![y; luma + 2 * chroma];
        data[luma..luma + chroma].fill(u);
        data[luma + chroma..].fill(v);
        Self {
            width,
            height,
            data,
            capture_us,
        }
    }

    /// Wraps I420 bytes; `None` when the length does not match the size.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>, capture_us: u64) -> Option<Self> {
        (width > 0 && height > 0 && data.len() == Self::byte_len(width, height)).then_some(Self {
            width,
            height,
            data,
            capture_us,
        })
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width as usize * self.height as usize]
    }

    pub fn u(&self) -> &[u8] {
        let luma = self.width as usize * self.height as usize;
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        &self.data[luma..luma + cw as usize * ch as usize]
    }

    pub fn v(&self) -> &[u8] {
        let luma = self.width as usize * self.height as usize;
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        &self.data[luma + cw as usize * ch as usize..]
    }

    /// The three planes, mutably.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width as usize * self.height as usize;
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        let chroma = cw as usize * ch as usize;
        let (y, rest) = self.data.split_at_mut(luma);
        let (u, v) = rest.split_at_mut(chroma);
        (y, u, v)
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
