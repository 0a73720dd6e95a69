//! The protocol's negotiation rules as plain functions: who is polite on
//! glare, and how a peer connection is recognised again after its signaling
//! session changed.

use kith_proto::SessionId;

/// On glare the peer with the lexicographically smaller session id is polite
/// and rolls back its own offer (protocol.md, mesh rule).
pub fn is_polite(mine: &SessionId, theirs: &SessionId) -> bool {
    mine.as_str() < theirs.as_str()
}

/// The `a=ice-ufrag` of the first media section (or the session level).
///
/// A renegotiation offer from a connection that survived a signaling
/// reconnect carries the same ICE credentials, while its `from` session is
/// new: matching the ufrag tells which existing connection it belongs to.
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
        .filter(|ufrag| !ufrag.is_empty())
}

/// The type (`host`, `srflx`, `prflx`, `relay`) named in a candidate line.
pub fn candidate_type(candidate: &str) -> Option<&str> {
    let mut words = candidate.split_whitespace();
    while let Some(word) = words.next() {
        if word == "typ" {
            return words.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> SessionId {
        SessionId::new(id).expect("valid session")
    }

    #[test]
    fn exactly_one_side_is_polite() {
        let (a, b) = (session("s1a"), session("s2b"));
        assert!(is_polite(&a, &b));
        assert!(!is_polite(&b, &a));
    }

    #[test]
    fn ufrag_is_read_from_the_sdp() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\na=ice-pwd:x\r\n";
        assert_eq!(ice_ufrag(sdp), Some("AbCd"));
        assert_eq!(ice_ufrag("v=0\r\na=ice-ufrag:\r\n"), None);
        assert_eq!(ice_ufrag("v=0\r\n"), None);
    }

    #[test]
    fn candidate_type_is_found() {
        assert_eq!(
            candidate_type("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"),
            Some("host")
        );
        assert_eq!(candidate_type("garbage"), None);
    }
}
