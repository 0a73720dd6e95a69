//! Messages on the `chat` data channel (protocol.md, "Over the peer connection").

use serde::{Deserialize, Serialize};

use crate::FieldError;
use crate::messages::MAX_CHAT_TEXT_BYTES;
use crate::names::UserId;

/// One JSON text on the `chat` data channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatFrame {
    Chat {
        id: String,
        from: UserId,
        /// Milliseconds since the Unix epoch, sender's clock.
        ts: u64,
        text: String,
    },
    Ack {
        id: String,
    },
}

impl ChatFrame {
    /// Parses a frame and checks the text limit and that `id` is non-empty.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let frame: ChatFrame = serde_json::from_str(text)
            .map_err(|err| FieldError::new("chat", format!("is not a chat frame: {err}")))?;
        match &frame {
            ChatFrame::Chat { id, text, .. } => {
                if id.is_empty() {
                    return Err(FieldError::new("id", "must not be empty"));
                }
                if text.len() > MAX_CHAT_TEXT_BYTES {
                    return Err(FieldError::new(
                        "text",
                        format!("must be at most {MAX_CHAT_TEXT_BYTES} bytes"),
                    ));
                }
            }
            ChatFrame::Ack { id } if id.is_empty() => {
                return Err(FieldError::new("id", "must not be empty"));
            }
            ChatFrame::Ack { .. } => {}
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_round_trips_in_the_protocol_shape() {
        let wire =
            r#"{"type":"chat","id":"u1","from":"alice","ts":1767225600000,"text":"hi","extra":1}"#;
        let frame = ChatFrame::parse(wire).expect("valid chat");
        assert_eq!(
            frame,
            ChatFrame::Chat {
                id: "u1".into(),
                from: UserId::new("alice").expect("valid"),
                ts: 1_767_225_600_000,
                text: "hi".into()
            }
        );
        let ack = serde_json::to_string(&ChatFrame::Ack { id: "u1".into() }).expect("serializes");
        assert_eq!(ack, r#"{"type":"ack","id":"u1"}"#);
    }

    #[test]
    fn oversized_text_is_refused() {
        let text = "x".repeat(MAX_CHAT_TEXT_BYTES + 1);
        let wire =
            serde_json::json!({"type":"chat","id":"u","from":"a","ts":0,"text":text}).to_string();
        assert!(ChatFrame::parse(&wire).is_err());
    }
}
