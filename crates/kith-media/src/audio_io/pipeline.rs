//! The non-realtime halves of the audio paths: device-format samples to Kith's
//! 10 ms 48 kHz frames and back. These run on the caller's thread, never in a
//! device callback, because resampling is too heavy to risk there.

use std::collections::VecDeque;

use super::mix::ChannelMixer;
use super::resample::RateConverter;
use crate::frame::{AudioFrame, Channels, SAMPLE_RATE, SAMPLES_PER_FRAME};

/// Device samples (any rate, any channel count, `f32`) in, 10 ms frames out.
#[derive(Debug)]
pub(crate) struct CapturePath {
    mixer: ChannelMixer,
    converter: RateConverter,
    channels: Channels,
    device_rate: u32,
    /// A device frame split across two pushes.
    carry: Vec<f32>,
    mixed: Vec<f32>,
    ready: VecDeque<f32>,
    position: u64,
}

impl CapturePath {
    pub(crate) fn new(
        device_channels: usize,
        device_rate: u32,
        channels: Channels,
    ) -> Result<Self, String> {
        let mixer = ChannelMixer::new(device_channels, channels.count())
            .ok_or_else(|| format!("device reports {device_channels} channels"))?;
        let converter = RateConverter::new(device_rate, SAMPLE_RATE, channels.count())?;
        Ok(Self {
            mixer,
            converter,
            channels,
            device_rate,
            carry: Vec::with_capacity(device_channels),
            mixed: Vec::new(),
            ready: VecDeque::with_capacity(SAMPLES_PER_FRAME * channels.count() * 4),
            position: 0,
        })
    }

    /// Takes interleaved device samples; a trailing partial frame waits for the next push.
    pub(crate) fn push(&mut self, input: &[f32]) {
        let from = self.mixer.input_channels();
        self.mixed.clear();
        let mut rest = input;
        if !self.carry.is_empty() {
            let take = (from - self.carry.len()).min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() == from {
                self.mixer.mix_into(&self.carry, &mut self.mixed);
                self.carry.clear();
            }
        }
        let used = self.mixer.mix_into(rest, &mut self.mixed);
        self.carry.extend_from_slice(&rest[used..]);
        self.converter.process(&self.mixed, &mut self.ready);
    }

    /// Records that `device_frames` frames were thrown away before reaching us, so
    /// frame positions keep counting real time.
    pub(crate) fn skipped(&mut self, device_frames: u64) {
        self.position += device_frames * u64::from(SAMPLE_RATE) / u64::from(self.device_rate);
    }

    /// The next complete 10 ms frame, if one is ready.
    pub(crate) fn pop_frame(&mut self) -> Option<AudioFrame> {
        let len = SAMPLES_PER_FRAME * self.channels.count();
        if self.ready.len() < len {
            return None;
        }
        let frame = AudioFrame {
            channels: self.channels,
            samples: self.ready.drain(..len).collect(),
            position: self.position,
        };
        self.position += SAMPLES_PER_FRAME as u64;
        Some(frame)
    }

    /// Delay the resampler adds, in 48 kHz frames.
    pub(crate) fn delay_frames(&self) -> usize {
        self.converter.delay_frames()
    }
}

/// 10 ms frames in, device samples (device rate and channel count, `f32`) out.
#[derive(Debug)]
pub(crate) struct PlaybackPath {
    device_channels: usize,
    converter: RateConverter,
    mixed: Vec<f32>,
    out: VecDeque<f32>,
}

impl PlaybackPath {
    pub(crate) fn new(device_channels: usize, device_rate: u32) -> Result<Self, String> {
        if device_channels == 0 {
            return Err("device reports 0 channels".to_owned());
        }
        Ok(Self {
            device_channels,
            converter: RateConverter::new(SAMPLE_RATE, device_rate, device_channels)?,
            mixed: Vec::new(),
            out: VecDeque::new(),
        })
    }

    /// Converts one frame; the device samples are then in [`Self::output`] until the
    /// next call. Frames of any channel count or length are accepted: whole frames
    /// are used and a ragged tail is ignored.
    pub(crate) fn convert(&mut self, frame: &AudioFrame) {
        self.out.clear();
        self.mixed.clear();
        let Some(mixer) = ChannelMixer::new(frame.channels.count(), self.device_channels) else {
            return;
        };
        let used = mixer.mix_into(&frame.samples, &mut self.mixed);
        if used != frame.samples.len() {
            tracing::debug!(
                len = frame.samples.len(),
                channels = frame.channels.count(),
                "frame has a partial sample frame at its end; ignored"
            );
        }
        self.converter.process(&self.mixed, &mut self.out);
    }

    /// Device samples produced by the last [`Self::convert`].
    pub(crate) fn output(&self) -> (&[f32], &[f32]) {
        self.out.as_slices()
    }

    pub(crate) fn output_len(&self) -> usize {
        self.out.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn capture_at_48k_stereo_to_mono_frames() {
        let mut path = CapturePath::new(2, 48_000, Channels::Mono).unwrap();
        let input: Vec<f32> = (0..960)
            .map(|i| if i % 2 == 0 { 0.5 } else { 0.0 })
            .collect();
        // Odd split: a stereo frame straddles the two pushes.
        path.push(&input[..501]);
        assert!(path.pop_frame().is_none());
        path.push(&input[501..]);
        let frame = path.pop_frame().unwrap();
        assert_eq!(frame.channels, Channels::Mono);
        assert_eq!(frame.samples.len(), 480);
        assert!(frame.samples.iter().all(|s| (*s - 0.25).abs() < 1e-6));
        assert_eq!(frame.position, 0);
        assert!(path.pop_frame().is_none());
    }

    #[test]
    fn capture_positions_advance_and_count_skips() {
        let mut path = CapturePath::new(1, 48_000, Channels::Mono).unwrap();
        path.push(&[0.0; 960]);
        assert_eq!(path.pop_frame().unwrap().position, 0);
        assert_eq!(path.pop_frame().unwrap().position, 480);
        path.skipped(4_800);
        path.push(&[0.0; 480]);
        assert_eq!(path.pop_frame().unwrap().position, 960 + 4_800);
    }

    #[test]
    fn capture_resamples_44k1_to_whole_frames() {
        let mut path = CapturePath::new(1, 44_100, Channels::Stereo).unwrap();
        for _ in 0..10 {
            path.push(&[0.1; 441]);
        }
        let mut frames = 0;
        while let Some(f) = path.pop_frame() {
            assert_eq!(f.samples.len(), 960);
            frames += 1;
        }
        assert_eq!(frames, 10);
    }

    #[test]
    fn playback_maps_channels_and_rate() {
        let mut path = PlaybackPath::new(2, 48_000).unwrap();
        let frame = AudioFrame {
            channels: Channels::Mono,
            samples: vec![0.5; 480],
            position: 0,
        };
        path.convert(&frame);
        assert_eq!(path.output_len(), 960);
        let (a, b) = path.output();
        assert!(a.iter().chain(b).all(|s| *s == 0.5));

        let mut slow = PlaybackPath::new(1, 16_000).unwrap();
        let mut total = 0;
        for _ in 0..5 {
            slow.convert(&frame);
            total += slow.output_len();
        }
        assert_eq!(total, 800);
    }

    #[test]
    fn playback_tolerates_ragged_frames() {
        let mut path = PlaybackPath::new(1, 48_000).unwrap();
        let frame = AudioFrame {
            channels: Channels::Stereo,
            samples: vec![0.5; 7],
            position: 0,
        };
        path.convert(&frame);
        assert_eq!(path.output_len(), 3);
    }
}
