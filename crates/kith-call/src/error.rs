//! Errors of the call engine. Serializable, because the desktop shell hands
//! them to the UI as they are; each says what the user can do.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum CallError {
    /// A setting cannot work (bad codec name, bad source, bad size).
    #[error("bad setting: {0}")]
    Config(String),
    /// The signaling server refused us or cannot be reached.
    #[error("signaling: {0}")]
    Signaling(String),
    /// The server answered a request with an error.
    #[error("the server said {code}: {message}")]
    Server { code: String, message: String },
    /// webrtc-rs failed at a step of setting up or running a connection.
    #[error("could not {context}: {reason}")]
    WebRtc { context: String, reason: String },
    /// A capture device, file, encoder or decoder failed.
    #[error("media: {0}")]
    Media(String),
    /// The engine has stopped; nothing more can be asked of it.
    #[error("the call engine has stopped")]
    Stopped,
}

impl CallError {
    /// An adapter for `map_err` that names the step that failed.
    pub fn webrtc<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> CallError {
        move |err| CallError::WebRtc {
            context: context.to_owned(),
            reason: err.to_string(),
        }
    }

    pub fn media<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> CallError {
        move |err| CallError::Media(format!("{context}: {err}"))
    }
}
