//! Validated identifiers and names from the "Names" section of protocol.md.
//!
//! Each type can only hold a value that satisfies the protocol's rule, so code
//! that receives one never re-checks it. Deserialization validates too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// Longest `user`/`room` id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest display name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest session id or request id we accept from a peer.
pub const MAX_TOKEN_CHARS: usize = 128;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_id(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.len() > MAX_ID_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be 1-{MAX_ID_CHARS} characters long"),
        ));
    }
    if !value.chars().all(is_id_char) {
        return Err(FieldError::new(
            field,
            "may only contain A-Z, a-z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(())
}

macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
        pub struct $name(String);

        impl $name {
            /// Validates `value` against the protocol's rule for this field.
            pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), FieldError> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The protocol's field name for this kind of value.
            pub const FIELD: &'static str = $field;
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

validated_string!(
    /// A person's stable id: 1-64 chars of `[A-Za-z0-9._-]`.
    UserId,
    "user",
    |v| check_id("user", v)
);

validated_string!(
    /// A room id: 1-64 chars of `[A-Za-z0-9._-]`.
    RoomId,
    "room",
    |v| check_id("room", v)
);

validated_string!(
    /// A display name: 1-64 Unicode chars, no control chars. Render as text only.
    DisplayName,
    "name",
    |v| {
        let count = v.chars().count();
        if count == 0 || count > MAX_NAME_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be 1-{MAX_NAME_CHARS} characters long"),
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(FieldError::new("name", "must not contain control characters"));
        }
        Ok(())
    }
);

validated_string!(
    /// A server-chosen session id. Opaque to clients; compared as strings for glare.
    SessionId,
    "session",
    |v| check_token("session", v)
);

validated_string!(
    /// The `id` a client may put on a request, echoed back as `re`.
    RequestId,
    "id",
    |v| check_token("id", v)
);

fn check_token(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.chars().count() > MAX_TOKEN_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be 1-{MAX_TOKEN_CHARS} characters long"),
        ));
    }
    Ok(())
}

impl From<&UserId> for DisplayName {
    /// A user id is always a valid display name; used when `hello` has no `name`.
    fn from(user: &UserId) -> Self {
        DisplayName(user.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_protocol_charset() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("a.b_c-9").is_ok());
        assert!(UserId::new("x".repeat(64)).is_ok());
        assert!(UserId::new("x".repeat(65)).is_err());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("al ice").is_err());
        assert!(UserId::new("alicé").is_err());
        assert!(UserId::new("a/b").is_err());
    }

    #[test]
    fn room_ids_follow_the_protocol_charset() {
        assert!(RoomId::new("standup").is_ok());
        assert!(RoomId::new("r-7").is_ok());
        assert!(RoomId::new("r 7").is_err());
        assert!(RoomId::new("").is_err());
    }

    #[test]
    fn names_count_unicode_chars_and_refuse_control_chars() {
        assert!(DisplayName::new("Zoë 🎥").is_ok());
        assert!(DisplayName::new("é".repeat(64)).is_ok());
        assert!(DisplayName::new("é".repeat(65)).is_err());
        assert!(DisplayName::new("").is_err());
        assert!(DisplayName::new("a\nb").is_err());
        assert!(DisplayName::new("a\u{7f}").is_err());
        assert!(
            DisplayName::new("<b>bold</b>").is_ok(),
            "markup is text, not an error"
        );
    }

    #[test]
    fn deserialization_validates() {
        let bad: Result<UserId, _> = serde_json::from_str("\"no spaces\"");
        assert!(bad.is_err());
        let good: UserId = serde_json::from_str("\"bob\"").expect("valid user");
        assert_eq!(good.as_str(), "bob");
    }
}
