//! Audio device I/O: microphones and speakers as streams of 10 ms 48 kHz frames.
//!
//! Each open device has a cpal callback on the backend's audio thread that only
//! converts sample types and moves samples through a lock-free SPSC ring
//! ([`ringbuf`]). Everything heavier (channel mixing, resampling with rubato,
//! cutting into 10 ms frames) happens on the caller's thread in
//! [`Microphone::read_frame`], [`Speaker::write_frame`] and
//! [`Speaker::take_played`], so a slow caller can lose audio but never stall
//! the device.
//!
//! On Linux the PulseAudio host is used whenever a PulseAudio (or
//! pipewire-pulse) socket is reachable via `PULSE_SERVER` or `XDG_RUNTIME_DIR`;
//! device names are then PulseAudio sink and source names. Otherwise ALSA's
//! devices are used (its `default` and `pulse` PCMs still reach a running
//! PulseAudio).

mod callback;
mod devices;
mod error;
mod format;
mod matching;
mod microphone;
pub(crate) mod mix;
mod pipeline;
pub(crate) mod resample;
mod shared;
mod speaker;
mod watch;

pub use devices::AudioDeviceInfo;
pub use error::{AudioIoError, Direction};
pub use format::{FormatPreference, StreamFormat, StreamOptions};
pub use microphone::Microphone;
pub use speaker::Speaker;

/// Which device to open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum DeviceChoice {
    /// The system's default input or output.
    #[default]
    Default,
    /// Position in [`input_devices`] / [`output_devices`].
    Index(usize),
    /// Exact name or description, else a case-insensitive substring matching
    /// exactly one device.
    Name(String),
}

/// Glitch counters of an open device. Glitches are counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioIoStats {
    /// Microphone: callbacks that found the ring full, plus times the reader
    /// skipped a stale backlog. Speaker: frames dropped because the queue was full.
    pub overruns: u64,
    /// Speaker: times playback ran dry and fell back to silence (each gap once).
    /// Both: xruns the backend reported.
    pub underruns: u64,
    /// Microphone: frames delivered. Speaker: frames accepted for playback.
    pub frames: u64,
}

/// Input devices (microphones, and PulseAudio monitors of outputs).
pub fn input_devices() -> Result<Vec<AudioDeviceInfo>, AudioIoError> {
    devices::infos(Direction::Input)
}

/// Output devices.
pub fn output_devices() -> Result<Vec<AudioDeviceInfo>, AudioIoError> {
    devices::infos(Direction::Output)
}
