//! TURN REST credentials (draft-uberti-behave-turn-rest), the scheme coturn
//! checks with `use-auth-secret`: the username carries its own expiry and the
//! password is an HMAC of it, so the TURN server needs no user database.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::names::UserId;

/// A time-limited TURN username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `"<unix expiry>:<user>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// Credentials for `user` valid until `expires_unix` (seconds since the epoch).
pub fn rest_credentials(secret: &[u8], user: &UserId, expires_unix: u64) -> TurnCredentials {
    let username = format!("{expires_unix}:{user}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredentials {
        username,
        credential,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_hmac() {
        // Reference value computed with:
        // printf '1767225600:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
        let user = UserId::new("alice").expect("valid user");
        let creds = rest_credentials(b"s3cret", &user, 1_767_225_600);
        assert_eq!(creds.username, "1767225600:alice");
        assert_eq!(creds.credential, REFERENCE);
    }

    const REFERENCE: &str = "+CKIbET1K2zFrSOk2S33FcZCpuI=";
}
