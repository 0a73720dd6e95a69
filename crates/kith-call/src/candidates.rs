//! How an ICE candidate crosses between the wire (kith-proto) and
//! webrtc-rs. The negotiation rules themselves are kith-call-core's.

use kith_proto::IceCandidate;
use webrtc::peer_connection::RTCIceCandidateInit;

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

#[cfg(test)]
mod tests {
    use super::*;

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
