//! Everything that can go wrong between the camera and an I420 frame.

use std::time::Duration;

use super::convert::PixelFormat;

/// Why the camera could not be listed, opened or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CameraError {
    /// No camera matched the choice (or there is no camera at all).
    #[error("{}", not_found_message(wanted, available))]
    NotFound {
        /// What the caller asked for, e.g. `index 0` or `name "Logitech"`.
        wanted: String,
        /// Names of the cameras that do exist (may be empty).
        available: Vec<String>,
    },
    /// Another program (or another handle) holds the camera.
    #[error("camera {name} is busy (is another app using it?): {detail}")]
    Busy { name: String, detail: String },
    /// The camera went away (or stopped answering) after it was opened.
    #[error("camera {name} stopped delivering frames (unplugged?): {detail}")]
    Unplugged { name: String, detail: String },
    /// The camera is open but no frame arrived in time.
    #[error("camera {name} delivered no frame within {} ms", waited.as_millis())]
    Timeout { name: String, waited: Duration },
    /// The camera offers nothing Kith can convert, or a conversion was asked
    /// for a format that is not supported.
    #[error("unsupported camera format: {detail}")]
    UnsupportedFormat { detail: String },
    /// A frame buffer was too short, malformed, or the wrong size.
    #[error("corrupt {format:?} frame: {detail}")]
    CorruptFrame { format: PixelFormat, detail: String },
    /// Anything else the platform camera API reported.
    #[error("camera backend error: {0}")]
    Backend(String),
}

fn not_found_message(wanted: &str, available: &[String]) -> String {
    const HINT: &str = "use the synthetic camera instead with `--video synthetic`";
    if available.is_empty() {
        format!("no camera was found (wanted {wanted}); {HINT}")
    } else {
        format!(
            "no camera was found matching {wanted} (available: {}); pick one of those or {HINT}",
            available.join(", ")
        )
    }
}

impl CameraError {
    pub(crate) fn corrupt(format: PixelFormat, detail: impl Into<String>) -> Self {
        Self::CorruptFrame {
            format,
            detail: detail.into(),
        }
    }
}
