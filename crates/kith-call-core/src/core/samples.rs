//! The driver's measurements: each second's stats event, and the bandwidth
//! estimates the encoder policy follows, read ten times as often.

use std::collections::BTreeMap;
use std::time::Instant;

use kith_media::codec::VideoCodec;
use tracing::info;

use super::CallCore;
use crate::bandwidth::BandwidthPolicy;
use crate::events::CallEvent;
use crate::io::{LinkSample, MediaOp};
use crate::link::{LinkId, PeerState};
use crate::stats::PeerStats;

impl CallCore {
    pub(super) fn stats(&mut self, samples: Vec<(LinkId, LinkSample)>) {
        let peers: Vec<PeerStats> = samples
            .into_iter()
            .filter_map(|(id, sample)| {
                let link = self.links.get(&id)?;
                Some(PeerStats {
                    session: link.remote.session.clone(),
                    user: link.remote.user.clone(),
                    connected: link.state == PeerState::Connected,
                    ice_restarts: link.ice.restarts(),
                    ice_state: link.ice_state,
                    measure: sample.measure,
                })
            })
            .collect();
        if !peers.is_empty() {
            self.emit(CallEvent::Stats { peers });
        }
    }

    /// Each encoder follows the weakest estimate among the peers it feeds,
    /// its climbs judged by what it `encoded`.
    pub(super) fn estimates(
        &mut self,
        now: Instant,
        estimates: Vec<(LinkId, f64)>,
        encoded: &[(VideoCodec, u64)],
    ) {
        let Some(plan) = self.config.video else {
            return;
        };
        let mut weakest: BTreeMap<u8, (VideoCodec, f64)> = BTreeMap::new();
        for (id, estimate) in estimates {
            let Some(codec) = self.links.get(&id).and_then(|link| link.sending_video) else {
                continue;
            };
            let entry = weakest.entry(codec_key(codec)).or_insert((codec, f64::MAX));
            entry.1 = entry.1.min(estimate);
        }
        for (codec, estimate) in weakest.into_values() {
            let policy = self.bandwidth.entry(codec).or_insert_with(|| {
                BandwidthPolicy::new(
                    (plan.width, plan.height),
                    plan.start_bitrate_bps,
                    plan.max_bitrate_bps,
                )
            });
            if let Some((_, bytes)) = encoded.iter().find(|(c, _)| *c == codec) {
                policy.on_encoded(*bytes);
            }
            let change = policy.on_estimate(now, estimate);
            if let Some(bps) = change.bitrate_bps {
                self.media(MediaOp::Bitrate(codec, bps));
            }
            if let Some((width, height)) = change.size {
                info!(
                    codec = codec.sdp_name(),
                    width, height, estimate, "video size follows the bandwidth estimate"
                );
                self.keyframes.made(now, codec);
                self.media(MediaOp::Resolution(codec, width, height));
            }
        }
    }
}

/// A stable order for codecs (they have no `Ord`).
fn codec_key(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::Av1 => 0,
        VideoCodec::Vp9 => 1,
        VideoCodec::Vp8 => 2,
        VideoCodec::H264 => 3,
    }
}
