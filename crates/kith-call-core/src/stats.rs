//! The numbers a call publishes: per-peer snapshots every second and
//! percentiles of glass-to-glass latency.

use kith_proto::{SessionId, UserId};
use serde::Serialize;

/// p50 and p95 of a set of samples.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
}

impl Percentiles {
    pub fn of(values: &[u32]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let at = |q: f64| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]);
        Some(Self {
            p50: at(0.5),
            p95: at(0.95),
        })
    }
}

/// What the driver measured of one connection over the last interval.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerMeasure {
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub candidate_type: Option<String>,
    pub rtt_ms: Option<f64>,
    pub bitrate_in_kbps: f64,
    pub bitrate_out_kbps: f64,
    pub packets_lost: i64,
    pub jitter_ms: Option<f64>,
    pub fps_sent: f64,
    pub fps_received: f64,
    pub frames_decoded: u64,
    /// Size of the last decoded frame.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub freezes: u64,
    /// Time spent frozen, ms.
    pub freeze_ms: u64,
    /// What the video jitter buffer now adds before a frame is shown, ms:
    /// about a repair's round trip on a lossy link, 0 on a clean one.
    pub playout_delay_ms: u64,
    pub estimated_bandwidth_kbps: Option<f64>,
    pub glass_to_glass_ms: Option<Percentiles>,
    pub audio_packets_received: u64,
    /// The peer's audio level, RFC 6464 dBov (0 loudest, 127 silence).
    pub audio_level_dbov: Option<u8>,
    pub keyframe_requests_received: u64,
    pub video_packets_received: u64,
    /// Frames the decoder could not decode (each asks for a keyframe).
    pub decode_errors: u64,
    /// PLI we sent because our decoder needed a keyframe.
    pub keyframe_requests_sent: u64,
    /// NACKs the peer sent for our video, and packets we re-sent for them.
    pub nacks_received: u64,
    pub retransmits_sent: u64,
    /// NACKs we sent for the peer's video, and re-sent packets that arrived.
    pub nacks_sent: u64,
    pub retransmits_received: u64,
}

/// One peer's state, published every second.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStats {
    pub session: SessionId,
    pub user: UserId,
    pub connected: bool,
    /// ICE restarts made to recover a broken path.
    pub ice_restarts: u32,
    pub ice_state: crate::link::IceState,
    #[serde(flatten)]
    pub measure: PeerMeasure,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_values() {
        let values: Vec<u32> = (1..=100).collect();
        let p = Percentiles::of(&values).expect("values");
        assert_eq!(p.p50, 51.0);
        assert_eq!(p.p95, 95.0);
        assert!(Percentiles::of(&[]).is_none());
    }
}
