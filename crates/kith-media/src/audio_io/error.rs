//! Errors of the audio device layer, worded for the person who has to fix them.

use std::fmt;

/// Which way audio flows through a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Direction::Input => "microphone",
            Direction::Output => "speaker",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// Everything that can go wrong opening or running an audio device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioIoError {
    /// No audio server or subsystem could be reached at all.
    #[error(
        "cannot reach the audio system ({reason}); start PulseAudio or PipeWire \
         (check with `pactl info`) and try again"
    )]
    AudioSystemUnavailable { reason: String },

    /// The system has no device of this kind, or no default one.
    #[error(
        "no {direction} audio device is available; connect a {} or pick one \
         from the device list (check with `pactl list short {}`)",
        direction.noun(),
        if *direction == Direction::Input { "sources" } else { "sinks" }
    )]
    NoDevice { direction: Direction },

    /// A device was asked for by name or index and nothing matched.
    #[error(
        "no {direction} audio device matches \"{wanted}\"; available: {}; \
         pick one of these or use the default device",
        list_or_none(available)
    )]
    DeviceNotFound {
        direction: Direction,
        wanted: String,
        available: Vec<String>,
    },

    /// A name fragment matched more than one device.
    #[error(
        "\"{wanted}\" matches several {direction} audio devices: {}; use the full name",
        matches.join(", ")
    )]
    AmbiguousDevice {
        direction: Direction,
        wanted: String,
        matches: Vec<String>,
    },

    /// The device offers no sample format, rate or channel layout we can use.
    #[error("audio device \"{device}\" cannot be used: {reason}; choose another device")]
    UnsupportedFormat { device: String, reason: String },

    /// The operating system or audio server refused access.
    #[error(
        "access to audio device \"{device}\" was denied ({reason}); allow microphone/speaker \
         access for this app or add the user to the `audio` group"
    )]
    PermissionDenied { device: String, reason: String },

    /// The device exists but cannot be opened or queried right now.
    #[error(
        "audio device \"{device}\" cannot be opened ({reason}); check that it is connected, \
         not held by another program, and that the sound server runs (`pactl info`)"
    )]
    DeviceUnavailable { device: String, reason: String },

    /// The device went away or stopped working while streaming.
    #[error(
        "audio device \"{device}\" stopped working ({reason}); reopen it or choose another device"
    )]
    DeviceLost { device: String, reason: String },

    /// Any other failure reported by the audio backend.
    #[error("audio backend error: {0}")]
    Backend(String),
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl AudioIoError {
    /// Maps a cpal error raised while opening or running `device`.
    pub(crate) fn from_cpal(device: &str, err: &cpal::Error) -> Self {
        use cpal::ErrorKind as K;
        let reason = err.to_string();
        match err.kind() {
            K::HostUnavailable => AudioIoError::AudioSystemUnavailable { reason },
            K::PermissionDenied => AudioIoError::PermissionDenied {
                device: device.to_owned(),
                reason,
            },
            K::UnsupportedConfig => AudioIoError::UnsupportedFormat {
                device: device.to_owned(),
                reason,
            },
            K::DeviceNotAvailable | K::DeviceBusy => AudioIoError::DeviceUnavailable {
                device: device.to_owned(),
                reason,
            },
            K::StreamInvalidated => AudioIoError::DeviceLost {
                device: device.to_owned(),
                reason,
            },
            _ => AudioIoError::Backend(format!("{device}: {reason}")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn not_found_lists_what_exists() {
        let err = AudioIoError::DeviceNotFound {
            direction: Direction::Output,
            wanted: "usb".into(),
            available: vec!["a".into(), "b".into()],
        };
        let text = err.to_string();
        assert!(text.contains("\"usb\""), "{text}");
        assert!(text.contains("available: a, b"), "{text}");

        let none = AudioIoError::DeviceNotFound {
            direction: Direction::Input,
            wanted: "x".into(),
            available: vec![],
        };
        assert!(none.to_string().contains("available: none"));
    }

    #[test]
    fn no_device_says_what_to_check() {
        let text = AudioIoError::NoDevice {
            direction: Direction::Input,
        }
        .to_string();
        assert!(text.contains("microphone"), "{text}");
        assert!(text.contains("pactl list short sources"), "{text}");
    }

    #[test]
    fn cpal_kinds_map_to_actionable_variants() {
        let e = cpal::Error::with_message(cpal::ErrorKind::HostUnavailable, "gone");
        assert!(matches!(
            AudioIoError::from_cpal("d", &e),
            AudioIoError::AudioSystemUnavailable { .. }
        ));
        let e = cpal::Error::with_message(cpal::ErrorKind::DeviceNotAvailable, "unplugged");
        assert!(matches!(
            AudioIoError::from_cpal("d", &e),
            AudioIoError::DeviceUnavailable { .. }
        ));
        let e = cpal::Error::with_message(cpal::ErrorKind::StreamInvalidated, "gone");
        assert!(matches!(
            AudioIoError::from_cpal("d", &e),
            AudioIoError::DeviceLost { .. }
        ));
    }
}
