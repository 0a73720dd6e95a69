//! Measuring: each second's sample of every link (transport stats from
//! webrtc-rs, counters from the media threads) for the core, and the record
//! of each peer over the whole call for the summary.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kith_call_core::{
    LinkId, LinkSample, PeerMeasure, PeerSummary, Percentiles, Remote, TrackKind,
};
use kith_proto::{SessionId, UserId};

use super::run::Driver;
use crate::connection;
use crate::counters::ReceiveCounters;

/// What a peer did over the whole call.
#[derive(Debug)]
pub(super) struct PeerRecord {
    pub session: SessionId,
    user: UserId,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    connect_ms: Option<u64>,
    ice_connected_at: Option<Instant>,
    created_at: Instant,
    connected_at: Option<Instant>,
    connected_total: Duration,
    latencies: Vec<u32>,
    candidate_type: Option<String>,
    counters: Arc<ReceiveCounters>,
}

/// Latency samples kept per peer for the summary (an hour at 30 fps).
const MAX_LATENCIES: usize = 108_000;

impl PeerRecord {
    pub fn new(remote: &Remote, counters: Arc<ReceiveCounters>, now: Instant) -> Self {
        Self {
            session: remote.session.clone(),
            user: remote.user.clone(),
            video_codec: None,
            audio_codec: None,
            connect_ms: None,
            ice_connected_at: None,
            created_at: now,
            connected_at: None,
            connected_total: Duration::ZERO,
            latencies: Vec::new(),
            candidate_type: None,
            counters,
        }
    }

    pub fn connected(&mut self, now: Instant, connect_ms: u64, candidate_type: Option<String>) {
        self.connect_ms.get_or_insert(connect_ms);
        self.connected_at.get_or_insert(now);
        if candidate_type.is_some() {
            self.candidate_type = candidate_type;
        }
    }

    /// ICE found a working pair (DTLS comes next).
    pub fn ice_connected(&mut self, now: Instant) {
        self.ice_connected_at.get_or_insert(now);
    }

    pub fn closed(&mut self, now: Instant) {
        if let Some(at) = self.connected_at.take() {
            self.connected_total += now.saturating_duration_since(at);
        }
        let latencies = self.counters.take_latencies();
        self.keep_latencies(latencies);
    }

    pub fn track(&mut self, kind: TrackKind, codec: &str) {
        match kind {
            TrackKind::Video => self.video_codec = Some(codec.to_owned()),
            TrackKind::Audio => self.audio_codec = Some(codec.to_owned()),
        }
    }

    fn keep_latencies(&mut self, latencies: Vec<u32>) {
        let room = MAX_LATENCIES.saturating_sub(self.latencies.len());
        self.latencies.extend(latencies.into_iter().take(room));
    }

    pub fn summary(&self) -> PeerSummary {
        let frames = self.counters.frames_decoded.load(Ordering::Relaxed);
        let connected = (self.connected_total
            + self.connected_at.map_or(Duration::ZERO, |at| at.elapsed()))
        .as_secs_f64();
        let since_created =
            |at: Instant| at.saturating_duration_since(self.created_at).as_millis() as u64;
        PeerSummary {
            session: self.session.clone(),
            user: self.user.clone(),
            video_codec: self.video_codec.clone(),
            audio_codec: self.audio_codec.clone(),
            ice_ms: self.ice_connected_at.map(since_created),
            connect_ms: self.connect_ms,
            first_packet_ms: self.counters.first_video_packet().map(since_created),
            first_frame_ms: self.counters.first_frame().map(since_created),
            frames_decoded: frames,
            fps: if connected > 0.0 {
                frames as f64 / connected
            } else {
                0.0
            },
            freezes: self.counters.freezes.load(Ordering::Relaxed),
            freeze_ms: self.counters.freeze_ms.load(Ordering::Relaxed),
            longest_freeze_ms: self.counters.longest_freeze_ms.load(Ordering::Relaxed),
            glass_to_glass_ms: Percentiles::of(&self.latencies),
            audio_packets_received: self.counters.audio_packets.load(Ordering::Relaxed),
            candidate_type: self.candidate_type.clone(),
        }
    }
}

impl Driver {
    /// One second's measurements of every link.
    pub(super) async fn sample(&mut self) -> Vec<(LinkId, LinkSample)> {
        let elapsed = self.last_sample.elapsed().as_secs_f64().max(0.001);
        self.last_sample = Instant::now();
        let frames_sent = self.send_counters.video_frames_sent.load(Ordering::Relaxed);
        let fps_sent = frames_sent.saturating_sub(self.last_frames_sent) as f64 / elapsed;
        self.last_frames_sent = frames_sent;
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        let mut samples = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(pc) = self.links.get(&id).map(|l| Arc::clone(&l.pc)) else {
                continue;
            };
            let transport = connection::transport_stats(&pc).await;
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            let counters = &link.counters;
            let frames = counters.frames_decoded.load(Ordering::Relaxed);
            let latencies = counters.take_latencies();
            // The figure the encoder follows, from the estimator itself.
            let estimate = link
                .estimate
                .estimate()
                .or(transport.available_outgoing_bps);
            let last_frame = link.media.video.latest();
            let record = self.records.get(&id);
            let measure = PeerMeasure {
                video_codec: record.and_then(|r| r.video_codec.clone()),
                audio_codec: record.and_then(|r| r.audio_codec.clone()),
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
                fps_sent,
                fps_received: frames.saturating_sub(link.last_frames) as f64 / elapsed,
                frames_decoded: frames,
                width: last_frame.as_ref().map(|f| f.width),
                height: last_frame.as_ref().map(|f| f.height),
                freezes: counters.freezes.load(Ordering::Relaxed),
                freeze_ms: counters.freeze_ms.load(Ordering::Relaxed),
                playout_delay_ms: counters.playout_delay_ms.load(Ordering::Relaxed),
                estimated_bandwidth_kbps: estimate.map(|bps| bps / 1000.0),
                glass_to_glass_ms: Percentiles::of(&latencies),
                audio_packets_received: counters.audio_packets.load(Ordering::Relaxed),
                audio_level_dbov: (counters.audio_packets.load(Ordering::Relaxed) > 0)
                    .then(|| link.media.audio_level.dbov()),
                keyframe_requests_received: counters
                    .keyframe_requests_received
                    .load(Ordering::Relaxed),
                keyframe_requests_sent: counters.keyframe_requests.load(Ordering::Relaxed),
                video_packets_received: counters.video_packets.load(Ordering::Relaxed),
                decode_errors: counters.decode_errors.load(Ordering::Relaxed),
                nacks_received: link.repairs.nacks_received_total(),
                retransmits_sent: link.repairs.resent_total(),
                nacks_sent: transport.nacks_sent,
                retransmits_received: link.repairs.received_total(),
            };
            link.last_bytes_in = transport.bytes_received;
            link.last_bytes_out = transport.bytes_sent;
            link.last_frames = frames;
            if let Some(record) = self.records.get_mut(&id) {
                record.keep_latencies(latencies);
                if transport.candidate_type.is_some() {
                    record.candidate_type = transport.candidate_type;
                }
            }
            samples.push((id, LinkSample { measure }));
        }
        samples
    }
}
