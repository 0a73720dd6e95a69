//! Capture-side voice processing: echo cancellation, noise suppression and
//! automatic gain control from WebRTC's audio processing module (APM).
//!
//! Backed by `webrtc-audio-processing` 0.5, which links Debian's
//! libwebrtc-audio-processing 0.3 (WebRTC's classic AEC, not AEC3). Both the
//! capture and the render (far-end) path run on 10 ms frames at 48 kHz,
//! exactly Kith's [`AudioFrame`].

use webrtc_audio_processing as apm;

use crate::frame::{AudioFrame, Channels, SAMPLES_PER_FRAME};

/// Why the audio processor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessingError {
    #[error("audio processing could not start: {0}")]
    Init(String),
    #[error("audio processing failed on a frame: {0}")]
    Process(String),
    #[error(
        "{path} frame is {got_channels:?} with {got_samples} samples; expected 10 ms of {expected:?}"
    )]
    FrameShape {
        path: &'static str,
        expected: Channels,
        got_channels: Channels,
        got_samples: usize,
    },
}

/// What the processor does; every field can change while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingSettings {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    /// Removes DC and rumble below ~80 Hz before the other stages.
    pub high_pass_filter: bool,
    /// Known delay from render (what the speakers played) to its echo in the
    /// capture, in ms. `None` lets the canceller estimate it itself
    /// (delay-agnostic mode), which is what desktop audio stacks with
    /// unreliable latency reports need.
    pub stream_delay_ms: Option<u16>,
}

impl Default for ProcessingSettings {
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            high_pass_filter: true,
            stream_delay_ms: None,
        }
    }
}

impl ProcessingSettings {
    /// The APM configuration these settings mean. The tuning follows what
    /// Chromium shipped with this AEC on desktop: extended filter (echo
    /// tails up to ~128 ms) and delay-agnostic alignment, moderate noise
    /// suppression, adaptive digital gain aiming at −3 dBFS.
    fn to_config(self) -> apm::Config {
        apm::Config {
            echo_cancellation: self.echo_cancellation.then(|| apm::EchoCancellation {
                suppression_level: apm::EchoCancellationSuppressionLevel::Moderate,
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: self.stream_delay_ms.map(i32::from),
            }),
            gain_control: self.gain_control.then_some(apm::GainControl {
                mode: apm::GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            }),
            noise_suppression: self.noise_suppression.then_some(apm::NoiseSuppression {
                suppression_level: apm::NoiseSuppressionLevel::Moderate,
            }),
            voice_detection: None,
            enable_transient_suppressor: false,
            enable_high_pass_filter: self.high_pass_filter,
        }
    }
}

/// What the processor reports about itself; `None` where the stage that
/// measures it is off or has not measured yet.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessingStats {
    /// Echo return loss enhancement: how much the canceller removed, dB.
    pub erle_db: Option<f64>,
    /// Echo return loss: far-end level over echo level, dB.
    pub erl_db: Option<f64>,
    /// Median estimated render-to-capture delay, ms.
    pub delay_median_ms: Option<i32>,
    pub delay_std_ms: Option<i32>,
    /// Share of delay estimates bad enough to hurt cancellation (0–1).
    pub delay_fraction_poor: Option<f64>,
    /// Whether the latest capture frame might contain echo.
    pub has_echo: Option<bool>,
    /// Capture level after processing, dBFS (−127 is silence).
    pub output_rms_dbfs: Option<i32>,
    /// Noise suppressor's speech probability for the latest frame (0–1).
    pub speech_probability: Option<f64>,
}

impl From<apm::Stats> for ProcessingStats {
    fn from(s: apm::Stats) -> Self {
        // The library reports "not measured yet" as negative sentinels.
        let delay = |v: Option<i32>| v.filter(|&d| d >= 0);
        Self {
            erle_db: s.echo_return_loss_enhancement,
            erl_db: s.echo_return_loss,
            delay_median_ms: delay(s.delay_median_ms),
            delay_std_ms: delay(s.delay_standard_deviation_ms),
            delay_fraction_poor: s.delay_fraction_poor_delays.filter(|&f| f >= 0.0),
            has_echo: s.has_echo,
            output_rms_dbfs: s.rms_dbfs,
            speech_probability: s.speech_probability,
        }
    }
}

/// One far-end feed into a processor, movable to the playback thread.
///
/// The APM is internally synchronised for one render and one capture
/// caller, so capture processing stays on [`AudioProcessor`] while this
/// handle sits where the speaker audio is produced.
pub struct RenderHandle {
    inner: apm::Processor,
    channels: Channels,
    /// The APM may modify render audio in place; the caller's frame is
    /// borrowed immutably, so it is copied here (reused, not reallocated).
    scratch: Vec<f32>,
}

impl std::fmt::Debug for RenderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderHandle")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl RenderHandle {
    /// Feeds 10 ms of what the speakers actually played. A frame in the
    /// other channel layout is mixed to this processor's layout.
    pub fn process_render(&mut self, frame: &AudioFrame) -> Result<(), ProcessingError> {
        if frame.samples.len() != SAMPLES_PER_FRAME * frame.channels.count() {
            return Err(ProcessingError::FrameShape {
                path: "render",
                expected: self.channels,
                got_channels: frame.channels,
                got_samples: frame.samples.len(),
            });
        }
        self.scratch.clear();
        crate::codec::opus::append_as(frame, self.channels, &mut self.scratch);
        self.inner
            .process_render_frame(&mut self.scratch)
            .map_err(|e| ProcessingError::Process(e.to_string()))
    }
}

/// WebRTC voice processing for one call's microphone.
pub struct AudioProcessor {
    inner: apm::Processor,
    capture_channels: Channels,
    settings: ProcessingSettings,
    render: RenderHandle,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("capture_channels", &self.capture_channels)
            .field("render_channels", &self.render.channels)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AudioProcessor {
    pub fn new(
        capture_channels: Channels,
        render_channels: Channels,
        settings: ProcessingSettings,
    ) -> Result<Self, ProcessingError> {
        let init = apm::InitializationConfig {
            num_capture_channels: capture_channels.count() as i32,
            num_render_channels: render_channels.count() as i32,
            ..apm::InitializationConfig::default()
        };
        let mut inner =
            apm::Processor::new(&init).map_err(|e| ProcessingError::Init(e.to_string()))?;
        inner.set_config(settings.to_config());
        let render = RenderHandle {
            inner: inner.clone(),
            channels: render_channels,
            scratch: Vec::with_capacity(SAMPLES_PER_FRAME * render_channels.count()),
        };
        Ok(Self {
            inner,
            capture_channels,
            settings,
            render,
        })
    }

    pub fn settings(&self) -> ProcessingSettings {
        self.settings
    }

    /// Applies new settings at once, between two frames.
    pub fn set_settings(&mut self, settings: ProcessingSettings) {
        if settings != self.settings {
            tracing::debug!(?settings, "audio processing settings changed");
            self.inner.set_config(settings.to_config());
            self.settings = settings;
        }
    }

    pub fn set_echo_cancellation(&mut self, on: bool) {
        self.set_settings(ProcessingSettings {
            echo_cancellation: on,
            ..self.settings
        });
    }

    pub fn set_noise_suppression(&mut self, on: bool) {
        self.set_settings(ProcessingSettings {
            noise_suppression: on,
            ..self.settings
        });
    }

    pub fn set_gain_control(&mut self, on: bool) {
        self.set_settings(ProcessingSettings {
            gain_control: on,
            ..self.settings
        });
    }

    /// See [`ProcessingSettings::stream_delay_ms`].
    pub fn set_stream_delay_ms(&mut self, delay_ms: Option<u16>) {
        self.set_settings(ProcessingSettings {
            stream_delay_ms: delay_ms,
            ..self.settings
        });
    }

    /// Tells the AEC and AGC that playback is muted, so they do not adapt
    /// to a silence that is not the room's.
    pub fn set_output_muted(&self, muted: bool) {
        self.inner.set_output_will_be_muted(muted);
    }

    /// Processes one 10 ms microphone frame in place. Its layout must be
    /// the capture layout the processor was made with.
    pub fn process_capture(&mut self, frame: &mut AudioFrame) -> Result<(), ProcessingError> {
        if frame.channels != self.capture_channels
            || frame.samples.len() != SAMPLES_PER_FRAME * self.capture_channels.count()
        {
            return Err(ProcessingError::FrameShape {
                path: "capture",
                expected: self.capture_channels,
                got_channels: frame.channels,
                got_samples: frame.samples.len(),
            });
        }
        // Non-finite input would spread through the adaptive filters and
        // never leave them; one bad sample is cheaper as silence.
        for s in &mut frame.samples {
            if !s.is_finite() {
                *s = 0.0;
            }
        }
        self.inner
            .process_capture_frame(&mut frame.samples)
            .map_err(|e| ProcessingError::Process(e.to_string()))
    }

    /// Feeds 10 ms of far-end audio as played; see [`RenderHandle`] for
    /// feeding it from another thread.
    pub fn process_render(&mut self, frame: &AudioFrame) -> Result<(), ProcessingError> {
        self.render.process_render(frame)
    }

    /// A render feed for another thread, sharing this processor's state.
    pub fn render_handle(&self) -> RenderHandle {
        RenderHandle {
            inner: self.inner.clone(),
            channels: self.render.channels,
            scratch: Vec::with_capacity(SAMPLES_PER_FRAME * self.render.channels.count()),
        }
    }

    /// The latest statistics (ERLE and delay come from the echo canceller
    /// and are `None` while it is off).
    pub fn stats(&self) -> ProcessingStats {
        self.inner.get_stats().into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn processor_and_render_handle_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<AudioProcessor>();
        is_send::<RenderHandle>();
    }

    #[test]
    fn wrong_frame_shapes_are_errors() {
        let mut p = AudioProcessor::new(
            Channels::Mono,
            Channels::Mono,
            ProcessingSettings::default(),
        )
        .unwrap();
        let mut stereo = AudioFrame::silent(Channels::Stereo, 0);
        assert!(matches!(
            p.process_capture(&mut stereo),
            Err(ProcessingError::FrameShape { .. })
        ));
        let short = AudioFrame {
            channels: Channels::Mono,
            samples: vec![0.0; 10],
            position: 0,
        };
        assert!(p.process_render(&short).is_err());
        // The other layout on the render side is mixed, not refused.
        p.process_render(&AudioFrame::silent(Channels::Stereo, 0))
            .unwrap();
        let mut nan = AudioFrame::silent(Channels::Mono, 0);
        nan.samples[3] = f32::NAN;
        p.process_capture(&mut nan).unwrap();
        assert!(nan.samples.iter().all(|s| s.is_finite()));
    }

    #[test]
    fn stats_follow_the_echo_canceller_switch() {
        let mut p = AudioProcessor::new(
            Channels::Mono,
            Channels::Mono,
            ProcessingSettings::default(),
        )
        .unwrap();
        let mut frame = AudioFrame::silent(Channels::Mono, 0);
        p.process_render(&AudioFrame::silent(Channels::Mono, 0))
            .unwrap();
        p.process_capture(&mut frame).unwrap();
        assert!(p.stats().erle_db.is_some());
        p.set_echo_cancellation(false);
        p.process_capture(&mut frame).unwrap();
        assert_eq!(p.stats().erle_db, None);
        assert!(!p.settings().echo_cancellation);
    }
}
