//! The stats tick (snapshots, bandwidth estimate to the encoder) and the
//! summary a call leaves behind.

use super::*;

impl Engine {
    pub(super) async fn on_tick(&mut self) {
        let elapsed = self.last_tick.elapsed().as_secs_f64().max(0.001);
        self.last_tick = Instant::now();
        let frames_sent = self
            .send_counters
            .video_frames_sent
            .load(std::sync::atomic::Ordering::Relaxed);
        let fps_sent = (frames_sent - self.last_frames_sent) as f64 / elapsed;
        self.last_frames_sent = frames_sent;

        let mut snapshots = Vec::new();
        let mut estimates: HashMap<VideoCodec, f64> = HashMap::new();
        let ids: Vec<PeerId> = self.links.keys().copied().collect();
        let mut stale = Vec::new();
        for id in ids {
            let Some(link) = self.links.get(&id) else {
                continue;
            };
            if link
                .detached_since
                .is_some_and(|since| since.elapsed() > DETACHED_GRACE)
            {
                stale.push(id);
                continue;
            }
            let pc = Arc::clone(&link.pc);
            let transport: TransportStats = peer::transport_stats(&pc).await;
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            let frames = link
                .counters
                .frames_decoded
                .load(std::sync::atomic::Ordering::Relaxed);
            let latencies = link.counters.take_latencies();
            let estimate = transport
                .video_target_bps
                .or(transport.available_outgoing_bps);
            if let (Some(codec), Some(estimate)) = (link.sending_video, estimate) {
                let entry = estimates.entry(codec).or_insert(f64::MAX);
                *entry = entry.min(estimate);
            }
            let snapshot = PeerStats {
                session: link.remote.session.as_str().to_owned(),
                user: link.remote.user.as_str().to_owned(),
                connected: link.state == RTCPeerConnectionState::Connected,
                video_codec: self.records.get(&id).and_then(|r| r.video_codec.clone()),
                audio_codec: self.records.get(&id).and_then(|r| r.audio_codec.clone()),
                candidate_type: transport.candidate_type.clone(),
                rtt_ms: transport.rtt_ms,
                bitrate_in_kbps: transport.bytes_received.saturating_sub(link.last_bytes_in) as f64
                    * 8.0
                    / 1000.0
                    / elapsed,
                bitrate_out_kbps: transport.bytes_sent.saturating_sub(link.last_bytes_out) as f64
                    * 8.0
                    / 1000.0
                    / elapsed,
                packets_lost: transport.packets_lost,
                jitter_ms: transport.jitter_ms,
                fps_sent: if link.sending_video.is_some() {
                    fps_sent
                } else {
                    0.0
                },
                fps_received: frames.saturating_sub(link.last_frames) as f64 / elapsed,
                frames_decoded: frames,
                freezes: link
                    .counters
                    .freezes
                    .load(std::sync::atomic::Ordering::Relaxed),
                estimated_bandwidth_kbps: estimate.map(|bps| bps / 1000.0),
                glass_to_glass_ms: Percentiles::of(&latencies),
                audio_packets_received: link
                    .counters
                    .audio_packets
                    .load(std::sync::atomic::Ordering::Relaxed),
            };
            link.last_bytes_in = transport.bytes_received;
            link.last_bytes_out = transport.bytes_sent;
            link.last_frames = frames;
            if let Some(record) = self.records.get_mut(&id) {
                record.latencies.extend(latencies);
                if record.first_frame_ms.is_none()
                    && let (Some(first), Some(created)) =
                        (link.counters.first_frame(), record.created_at)
                {
                    record.first_frame_ms =
                        Some(first.saturating_duration_since(created).as_millis() as u64);
                }
                if transport.candidate_type.is_some() {
                    record.candidate_type = transport.candidate_type;
                }
            }
            snapshots.push(snapshot);
        }
        for id in stale {
            self.close_link(id, "did not come back").await;
        }
        if let Some(video) = &self.video {
            for (codec, estimate) in estimates {
                let ceiling = f64::from(self.config.max_bitrate_bps);
                let target = ((estimate - AUDIO_RESERVE_BPS) * 0.95)
                    .clamp(f64::from(MIN_VIDEO_BPS), ceiling) as u32;
                let requested = (self.config.video.width, self.config.video.height);
                let (last_bitrate, last_size) = self
                    .video_targets
                    .get(&codec)
                    .copied()
                    .unwrap_or((self.config.video.start_bitrate_bps, requested));
                // Small moves are noise; each change costs the encoder a reconfiguration.
                if target.abs_diff(last_bitrate) * 20 > last_bitrate {
                    video.set_bitrate(codec, target);
                }
                let size = size_for_bitrate(target, requested.0, requested.1);
                if size != last_size {
                    info!(
                        codec = codec.sdp_name(),
                        width = size.0,
                        height = size.1,
                        target,
                        "video size follows the bandwidth estimate"
                    );
                    video.set_resolution(codec, size.0, size.1);
                }
                let bitrate = if target.abs_diff(last_bitrate) * 20 > last_bitrate {
                    target
                } else {
                    last_bitrate
                };
                self.video_targets.insert(codec, (bitrate, size));
            }
        }
        if !snapshots.is_empty() {
            self.emit(CallEvent::Stats { peers: snapshots });
        }
    }

    pub(super) fn summary(&self) -> CallSummary {
        let peers = self
            .records
            .values()
            .map(|record| {
                let frames = record
                    .counters
                    .frames_decoded
                    .load(std::sync::atomic::Ordering::Relaxed);
                let connected = record.connected_total.as_secs_f64();
                PeerSummary {
                    session: record.session.clone(),
                    user: record.user.clone(),
                    video_codec: record.video_codec.clone(),
                    audio_codec: record.audio_codec.clone(),
                    connect_ms: record.connect_ms,
                    first_frame_ms: record.first_frame_ms.or_else(|| {
                        let first = record.counters.first_frame()?;
                        Some(
                            first
                                .saturating_duration_since(record.created_at?)
                                .as_millis() as u64,
                        )
                    }),
                    frames_decoded: frames,
                    fps: if connected > 0.0 {
                        frames as f64 / connected
                    } else {
                        0.0
                    },
                    freezes: record
                        .counters
                        .freezes
                        .load(std::sync::atomic::Ordering::Relaxed),
                    glass_to_glass_ms: Percentiles::of(&record.latencies),
                    audio_packets_received: record
                        .counters
                        .audio_packets
                        .load(std::sync::atomic::Ordering::Relaxed),
                    candidate_type: record.candidate_type.clone(),
                }
            })
            .collect();
        CallSummary {
            peers,
            chat: self.chat.counts(),
        }
    }
}

/// The picture size that suits a bitrate: below what a size needs, the
/// encoder is better off with fewer pixels than with heavy quantization.
pub fn size_for_bitrate(bitrate_bps: u32, width: u32, height: u32) -> (u32, u32) {
    let ladder: [(u32, u32, u32); 4] = [
        (1_000_000, 1280, 720),
        (500_000, 960, 540),
        (250_000, 640, 360),
        (0, 320, 180),
    ];
    for (needs, w, h) in ladder {
        if bitrate_bps >= needs && w <= width && h <= height {
            return (w, h);
        }
    }
    let smallest = ladder
        .iter()
        .rev()
        .find(|(_, w, h)| *w <= width && *h <= height);
    smallest.map_or((width, height), |(_, w, h)| (*w, *h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_follows_bitrate_but_never_exceeds_the_request() {
        assert_eq!(size_for_bitrate(2_500_000, 1280, 720), (1280, 720));
        assert_eq!(size_for_bitrate(600_000, 1280, 720), (960, 540));
        assert_eq!(size_for_bitrate(300_000, 1280, 720), (640, 360));
        assert_eq!(size_for_bitrate(100_000, 1280, 720), (320, 180));
        assert_eq!(size_for_bitrate(2_500_000, 640, 360), (640, 360));
        // An odd request smaller than the ladder keeps its own size.
        assert_eq!(size_for_bitrate(2_500_000, 176, 144), (176, 144));
    }
}
