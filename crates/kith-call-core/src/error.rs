//! Errors of a call. Serializable, because the desktop shell hands them to
//! the UI as they are; each variant says what went wrong in terms a user can
//! act on, and the `Display` text says what to do.

use kith_proto::{ErrorCode, RoomId, UserId};
use serde::Serialize;

/// A capture or playback device.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
        })
    }
}

/// What is wrong with a device.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceProblem {
    /// There is no such device (none plugged in, or a wrong index).
    Missing,
    /// Another program holds it.
    Busy,
    /// It went away during the call.
    Unplugged,
    /// It is there but failed to start or deliver.
    Failed,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum CallError {
    /// A setting cannot work (bad codec name, bad source, bad size).
    #[error("bad setting: {0}")]
    Config(String),
    /// A device is missing, busy, unplugged or failing.
    #[error("{}", device_text(*.device, *.problem, .detail))]
    Device {
        device: DeviceKind,
        problem: DeviceProblem,
        detail: String,
    },
    /// A media file, encoder or decoder failed.
    #[error("media: {0}")]
    Media(String),
    /// The signaling server cannot be reached (the call retries by itself).
    #[error("cannot reach the signaling server: {0} (is it running? check the server address)")]
    Signaling(String),
    /// The server refused our token: retrying will not help.
    #[error("the signaling server refused the token: {message} (check the token in the settings)")]
    TokenRefused { message: String },
    /// The person called is not online.
    #[error("{user} is offline; try again when they are online")]
    UserOffline { user: UserId },
    /// The server answered a request with an error.
    #[error("the server said {code}: {message}")]
    Server { code: ErrorCode, message: String },
    /// Something needs the signaling connection, which is down right now.
    #[error("not connected to the signaling server; wait until it is back")]
    NotConnected,
    /// There is no ringing invite for this room.
    #[error("no invite is ringing for room {room}")]
    NoSuchInvite { room: RoomId },
    /// A chat message must have 1 to `max` bytes.
    #[error("a chat message must have 1 to {max} bytes (this one has {bytes})")]
    ChatSize { bytes: usize, max: usize },
    /// webrtc-rs failed at a step of setting up or running a connection.
    #[error("could not {context}: {reason}")]
    WebRtc { context: String, reason: String },
    /// The engine has stopped; nothing more can be asked of it.
    #[error("the call engine has stopped")]
    Stopped,
}

fn device_text(device: DeviceKind, problem: DeviceProblem, detail: &str) -> String {
    let what = match problem {
        DeviceProblem::Missing => format!("no {device} found; plug one in or choose another"),
        DeviceProblem::Busy => {
            format!("the {device} is in use by another program; close it or choose another")
        }
        DeviceProblem::Unplugged => format!("the {device} was unplugged; choose another"),
        DeviceProblem::Failed => format!("the {device} failed; choose another"),
    };
    if detail.is_empty() {
        what
    } else {
        format!("{what} ({detail})")
    }
}

impl CallError {
    /// An adapter for `map_err` that names the step that failed.
    pub fn webrtc<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> CallError {
        move |err| CallError::WebRtc {
            context: context.to_owned(),
            reason: err.to_string(),
        }
    }

    /// An adapter for `map_err` for media failures that are not a device's.
    pub fn media<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> CallError {
        move |err| CallError::Media(format!("{context}: {err}"))
    }

    pub fn device(device: DeviceKind, problem: DeviceProblem, detail: impl Into<String>) -> Self {
        CallError::Device {
            device,
            problem,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_with_a_kind_and_say_what_to_do() {
        let error = CallError::device(DeviceKind::Camera, DeviceProblem::Busy, "");
        let json = serde_json::to_value(&error).expect("serializes");
        assert_eq!(json["kind"], "device");
        assert_eq!(json["detail"]["device"], "camera");
        assert_eq!(json["detail"]["problem"], "busy");
        assert!(error.to_string().contains("close it"), "{error}");
        let offline = CallError::Server {
            code: ErrorCode::Offline,
            message: "bob is offline".into(),
        };
        let json = serde_json::to_value(&offline).expect("serializes");
        assert_eq!(json["detail"]["code"], "offline");
    }
}
