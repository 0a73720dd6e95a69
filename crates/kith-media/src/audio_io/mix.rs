//! Channel up- and down-mixing between Kith's mono/stereo and whatever layout a device has.

/// Converts interleaved frames from one channel count to another.
///
/// Layouts beyond stereo are assumed to start with front-left, front-right (the
/// PulseAudio, ALSA and WAVE default order), so stereo maps onto the first two
/// channels and the rest stay silent or are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelMixer {
    from: usize,
    to: usize,
}

impl ChannelMixer {
    /// `None` when either side has no channels.
    pub(crate) fn new(from: usize, to: usize) -> Option<Self> {
        (from > 0 && to > 0).then_some(Self { from, to })
    }

    pub(crate) fn input_channels(&self) -> usize {
        self.from
    }

    /// Mixes every whole frame of `input` onto the end of `out`; returns how many
    /// input samples were consumed (a trailing partial frame is left for the caller).
    pub(crate) fn mix_into(&self, input: &[f32], out: &mut Vec<f32>) -> usize {
        let frames = input.len() / self.from;
        let used = frames * self.from;
        out.reserve(frames * self.to);
        for frame in input[..used].chunks_exact(self.from) {
            self.mix_frame(frame, out);
        }
        used
    }

    fn mix_frame(&self, frame: &[f32], out: &mut Vec<f32>) {
        match (self.from, self.to) {
            (a, b) if a == b => out.extend_from_slice(frame),
            // Averaging keeps a tone that is identical on every channel at its level.
            (_, 1) => out.push(frame.iter().sum::<f32>() / self.from as f32),
            (1, _) => {
                let s = frame[0];
                out.push(s);
                out.push(s);
                out.extend(std::iter::repeat_n(0.0, self.to - 2));
            }
            (_, _) => {
                let shared = self.from.min(self.to);
                out.extend_from_slice(&frame[..shared]);
                out.extend(std::iter::repeat_n(0.0, self.to - shared));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mix(from: usize, to: usize, input: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        let used = ChannelMixer::new(from, to)
            .unwrap()
            .mix_into(input, &mut out);
        assert_eq!(used, input.len() / from * from);
        out
    }

    #[test]
    fn stereo_to_mono_averages() {
        assert_eq!(mix(2, 1, &[1.0, 0.0, 0.5, 0.5]), vec![0.5, 0.5]);
    }

    #[test]
    fn mono_to_stereo_duplicates() {
        assert_eq!(mix(1, 2, &[0.25, -1.0]), vec![0.25, 0.25, -1.0, -1.0]);
    }

    #[test]
    fn mono_to_surround_fills_front_pair_only() {
        assert_eq!(mix(1, 4, &[0.5]), vec![0.5, 0.5, 0.0, 0.0]);
    }

    #[test]
    fn surround_to_stereo_keeps_front_pair() {
        assert_eq!(mix(6, 2, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), vec![0.1, 0.2]);
    }

    #[test]
    fn stereo_to_surround_pads_with_silence() {
        assert_eq!(mix(2, 3, &[0.1, 0.2]), vec![0.1, 0.2, 0.0]);
    }

    #[test]
    fn partial_frame_is_left_over() {
        let mut out = Vec::new();
        let used = ChannelMixer::new(2, 1)
            .unwrap()
            .mix_into(&[1.0, 1.0, 0.5], &mut out);
        assert_eq!(used, 2);
        assert_eq!(out, vec![1.0]);
    }

    #[test]
    fn zero_channels_rejected() {
        assert!(ChannelMixer::new(0, 2).is_none());
        assert!(ChannelMixer::new(2, 0).is_none());
    }
}
