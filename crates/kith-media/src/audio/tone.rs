//! A tone (or beeping) audio source for tests, bots and machines without a
//! microphone.

use std::f64::consts::TAU;

use crate::frame::{AudioFrame, Channels, SAMPLE_RATE, SAMPLES_PER_FRAME};

/// A sine at `frequency` Hz; with `beep`, on for 200 ms of every second, so
/// a listener (or a level meter) can tell it is live.
#[derive(Debug, Clone)]
pub struct ToneSource {
    frequency: f64,
    amplitude: f32,
    channels: Channels,
    beep: bool,
    position: u64,
}

impl ToneSource {
    pub fn new(frequency: f64, amplitude: f32, channels: Channels) -> Self {
        Self {
            frequency,
            amplitude: amplitude.clamp(0.0, 1.0),
            channels,
            beep: false,
            position: 0,
        }
    }

    /// Beeps instead of sounding continuously.
    pub fn beeping(mut self) -> Self {
        self.beep = true;
        self
    }

    /// The next 10 ms.
    pub fn next_frame(&mut self) -> AudioFrame {
        let mut frame = AudioFrame::silent(self.channels, self.position);
        let channels = self.channels.count();
        for (i, chunk) in frame.samples.chunks_exact_mut(channels).enumerate() {
            let n = self.position + i as u64;
            let on = !self.beep || n % u64::from(SAMPLE_RATE) < u64::from(SAMPLE_RATE) / 5;
            // Phase from the absolute sample index: no drift over long runs.
            let phase = TAU * self.frequency * (n as f64) / f64::from(SAMPLE_RATE);
            let value = if on {
                self.amplitude * phase.sin() as f32
            } else {
                0.0
            };
            chunk.fill(value);
        }
        self.position += SAMPLES_PER_FRAME as u64;
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produces_continuous_10ms_frames_at_the_right_level() {
        let mut tone = ToneSource::new(1000.0, 0.5, Channels::Stereo);
        let a = tone.next_frame();
        let b = tone.next_frame();
        assert_eq!(a.samples.len(), 960);
        assert_eq!((a.position, b.position), (0, 480));
        // RMS of a sine is amplitude / sqrt(2).
        assert!((a.rms() - 0.5 / 2f32.sqrt()).abs() < 0.01);
        // Left and right carry the same signal.
        assert_eq!(a.samples[10], a.samples[11]);
    }

    #[test]
    fn beeps_are_on_a_fifth_of_the_time() {
        let mut tone = ToneSource::new(440.0, 0.5, Channels::Mono).beeping();
        let loud = (0..100).filter(|_| tone.next_frame().rms() > 0.1).count();
        assert_eq!(loud, 20);
    }
}
