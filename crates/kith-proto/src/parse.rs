//! Turning one text frame into a typed message, telling malformed from unknown.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ParseError;
use crate::messages::{ClientMessage, MAX_FRAME_BYTES, ServerMessage};
use crate::names::RequestId;

/// A client message with its optional request id.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<RequestId>,
    pub message: ClientMessage,
    /// The frame's JSON object as received, kept for the relayed types so the
    /// server can forward fields it does not know unchanged.
    pub relay_fields: Option<Map<String, Value>>,
}

/// Parses a client-to-server frame.
pub fn parse_client_message(text: &str) -> Result<Request, ParseError> {
    let Envelope { object, id, kind } = split_envelope(text, ClientMessage::TYPES)?;
    let keep_raw = matches!(kind.as_str(), "offer" | "answer" | "candidate");
    let raw = keep_raw.then(|| object.clone());
    let message = typed::<ClientMessage>(object, &id)?;
    Ok(Request {
        id,
        message,
        relay_fields: raw,
    })
}

/// Parses a server-to-client frame.
pub fn parse_server_message(text: &str) -> Result<ServerMessage, ParseError> {
    let envelope = split_envelope(text, ServerMessage::TYPES)?;
    typed::<ServerMessage>(envelope.object, &envelope.id)
}

fn typed<T: DeserializeOwned>(
    object: Map<String, Value>,
    id: &Option<RequestId>,
) -> Result<T, ParseError> {
    serde_json::from_value(Value::Object(object)).map_err(|err| ParseError::Malformed {
        reason: err.to_string(),
        id: id.clone(),
    })
}

/// A frame's JSON object with the fields every message shares taken out.
struct Envelope {
    object: Map<String, Value>,
    id: Option<RequestId>,
    kind: String,
}

/// Checks the parts every message shares: a JSON object, a string `type` that
/// this side knows, and a well-formed `id` when there is one.
fn split_envelope(text: &str, known: &[&str]) -> Result<Envelope, ParseError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ParseError::Malformed {
            reason: format!("frame is over {MAX_FRAME_BYTES} bytes"),
            id: None,
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|err| ParseError::Malformed {
        reason: format!("not JSON: {err}"),
        id: None,
    })?;
    let Value::Object(object) = value else {
        return Err(ParseError::Malformed {
            reason: "a message must be a JSON object".into(),
            id: None,
        });
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => {
            Some(
                RequestId::new(raw.clone()).map_err(|err| ParseError::Malformed {
                    reason: err.to_string(),
                    id: None,
                })?,
            )
        }
        Some(_) => {
            return Err(ParseError::Malformed {
                reason: "field `id` must be a string".into(),
                id: None,
            });
        }
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => {
            return Err(ParseError::Malformed {
                reason: "field `type` must be a string".into(),
                id,
            });
        }
        None => {
            return Err(ParseError::Malformed {
                reason: "missing field `type`".into(),
                id,
            });
        }
    };
    if !known.contains(&kind.as_str()) {
        return Err(ParseError::UnknownType { kind, id });
    }
    Ok(Envelope { object, id, kind })
}
