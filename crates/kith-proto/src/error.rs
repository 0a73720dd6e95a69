//! Error codes of the protocol and the ways a frame can fail to parse.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::RequestId;

/// Every error code of protocol v1, as sent in `{"type":"error","code":…}`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownType,
    Unauthorized,
    NotInRoom,
    NoSuchPeer,
    RoomFull,
    Offline,
    RateLimited,
    TooLarge,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownType,
        ErrorCode::Unauthorized,
        ErrorCode::NotInRoom,
        ErrorCode::NoSuchPeer,
        ErrorCode::RoomFull,
        ErrorCode::Offline,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::NoSuchPeer => "no_such_peer",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::Offline => "offline",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field that breaks a rule of protocol.md.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// Why a text frame is not a message we can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object with a string `type`, or a known type whose fields are wrong.
    #[error("malformed message: {reason}")]
    Malformed {
        reason: String,
        /// The request's `id`, when the frame had a usable one, so the error can carry `re`.
        id: Option<RequestId>,
    },
    /// A well-formed object whose `type` this side does not know.
    #[error("unknown message type `{kind}`")]
    UnknownType { kind: String, id: Option<RequestId> },
}

impl ParseError {
    /// The protocol error code this failure is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::Malformed { .. } => ErrorCode::BadRequest,
            ParseError::UnknownType { .. } => ErrorCode::UnknownType,
        }
    }

    /// The request id to echo as `re`, when there was one.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            ParseError::Malformed { id, .. } | ParseError::UnknownType { id, .. } => id.as_ref(),
        }
    }
}
