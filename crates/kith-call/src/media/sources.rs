//! Where a call's outgoing media comes from, as users name it on a command
//! line (`synthetic`, `camera:1`, `y4m:clip.y4m`, `tone`, `mic`, `wav:a.wav`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::CallError;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VideoSourceSpec {
    /// Moving test picture with the latency strip.
    #[default]
    Synthetic,
    /// A camera by index (`None`: the first one).
    Camera(Option<u32>),
    /// A Y4M file, looped.
    Y4m(PathBuf),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSourceSpec {
    /// A beeping 440 Hz tone.
    #[default]
    Tone,
    /// The default microphone (through echo cancellation).
    Mic,
    /// A WAV file, looped.
    Wav(PathBuf),
    None,
}

impl FromStr for VideoSourceSpec {
    type Err = CallError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            CallError::Config(format!(
                "video source {text:?}: use synthetic, camera[:INDEX], y4m:PATH or none"
            ))
        };
        Ok(match text.split_once(':') {
            None if text == "synthetic" => Self::Synthetic,
            None if text == "camera" => Self::Camera(None),
            None if text == "none" => Self::None,
            Some(("camera", index)) => Self::Camera(Some(index.parse().map_err(|_| bad())?)),
            Some(("y4m", path)) if !path.is_empty() => Self::Y4m(PathBuf::from(path)),
            _ => return Err(bad()),
        })
    }
}

impl FromStr for AudioSourceSpec {
    type Err = CallError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.split_once(':') {
            None if text == "tone" => Self::Tone,
            None if text == "mic" => Self::Mic,
            None if text == "none" => Self::None,
            Some(("wav", path)) if !path.is_empty() => Self::Wav(PathBuf::from(path)),
            _ => {
                return Err(CallError::Config(format!(
                    "audio source {text:?}: use tone, mic, wav:PATH or none"
                )));
            }
        })
    }
}

impl fmt::Display for VideoSourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Synthetic => f.write_str("synthetic"),
            Self::Camera(None) => f.write_str("camera"),
            Self::Camera(Some(i)) => write!(f, "camera:{i}"),
            Self::Y4m(path) => write!(f, "y4m:{}", path.display()),
            Self::None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "camera:2".parse::<VideoSourceSpec>().ok(),
            Some(VideoSourceSpec::Camera(Some(2)))
        );
        assert_eq!(
            "y4m:/tmp/a.y4m".parse::<VideoSourceSpec>().ok(),
            Some(VideoSourceSpec::Y4m("/tmp/a.y4m".into()))
        );
        assert!("camera:x".parse::<VideoSourceSpec>().is_err());
        assert!("y4m:".parse::<VideoSourceSpec>().is_err());
        assert_eq!(
            "wav:a.wav".parse::<AudioSourceSpec>().ok(),
            Some(AudioSourceSpec::Wav("a.wav".into()))
        );
        assert!("speaker".parse::<AudioSourceSpec>().is_err());
    }
}
