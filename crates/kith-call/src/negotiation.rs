//! The protocol's negotiation rules as plain functions: who is polite on
//! glare, how a candidate crosses between the wire and webrtc-rs, and how a
//! peer connection is recognised again after its signaling session changed.

use kith_proto::{IceCandidate, SessionId};
use webrtc::peer_connection::RTCIceCandidateInit;

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

/// A candidate from the wire, for webrtc-rs.
pub fn candidate_from_wire(candidate: &IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: candidate.candidate.clone(),
        sdp_mid: candidate.sdp_mid.clone(),
        sdp_mline_index: candidate.sdp_m_line_index,
        username_fragment: candidate.username_fragment.clone(),
        ..Default::default()
    }
}

/// A local candidate from webrtc-rs, for the wire. webrtc-rs leaves the mid
/// empty; with BUNDLE every candidate belongs to the first section, mid "0",
/// which is what browsers need to accept it.
pub fn candidate_to_wire(candidate: RTCIceCandidateInit) -> IceCandidate {
    let sdp_mid = match candidate.sdp_mid {
        Some(mid) if !mid.is_empty() => Some(mid),
        _ => Some("0".to_owned()),
    };
    IceCandidate {
        candidate: candidate.candidate,
        sdp_mid,
        sdp_m_line_index: candidate.sdp_mline_index.or(Some(0)),
        username_fragment: candidate.username_fragment,
    }
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
        assert_eq!(
            candidate_type(
                "candidate:2 1 udp 16777215 10.0.0.1 5000 typ relay raddr 1.2.3.4 rport 9"
            ),
            Some("relay")
        );
        assert_eq!(candidate_type("garbage"), None);
    }

    #[test]
    fn empty_mid_becomes_the_first_section() {
        let wire = candidate_to_wire(RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 1 127.0.0.1 1 typ host".into(),
            sdp_mid: Some(String::new()),
            ..Default::default()
        });
        assert_eq!(wire.sdp_mid.as_deref(), Some("0"));
        assert_eq!(wire.sdp_m_line_index, Some(0));
        let back = candidate_from_wire(&wire);
        assert_eq!(back.candidate, wire.candidate);
    }
}
