//! Kith signaling protocol v1 (`shared/protocol.md`): every message as a serde
//! type, with every field rule checked when a frame is parsed. The server and
//! every client use these types, so no one re-declares a message.

mod chat;
mod error;
mod messages;
mod names;
mod parse;
pub mod turn;

pub use chat::ChatFrame;
pub use error::{ErrorCode, FieldError, ParseError};
pub use messages::{
    CancelReason, ClientMessage, IceCandidate, IceServer, InviteAnswer, LeftReason,
    MAX_CHAT_TEXT_BYTES, MAX_FRAME_BYTES, MediaKind, OnlineUser, PROTOCOL_VERSION, PeerInfo, Sdp,
    ServerMessage,
};
pub use names::{DisplayName, MAX_ID_CHARS, MAX_NAME_CHARS, RequestId, RoomId, SessionId, UserId};
pub use parse::{Request, parse_client_message, parse_server_message};

#[cfg(test)]
mod tests;
