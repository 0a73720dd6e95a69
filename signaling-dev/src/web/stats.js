// One peer's figures from the browser's own getStats(), in the shape the
// tests and the bench read (snake_case, milliseconds).

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function perEmitted(delay, count) {
  return count ? Math.round((delay / count) * 1000 * 10) / 10 : null;
}

/** The window of the "recent" audio buffer figure: the call as it is now, not its start. */
const RECENT_MS = 5000;
/** Snapshots kept for it, at most (stats are read about once a second). */
const MAX_SNAPSHOTS = 64;

/** Jitter buffer delay per sample over about the last RECENT_MS, from getStats snapshots kept on `peer`. */
function recentJitterBuffer(peer, s) {
  const history = peer.audioBufferHistory;
  const now = performance.now();
  history.push({ t: now, delay: s.jitterBufferDelay ?? 0, count: s.jitterBufferEmittedCount ?? 0 });
  while (history.length > MAX_SNAPSHOTS || (history.length > 1 && now - history[1].t >= RECENT_MS)) history.shift();
  const oldest = history[0];
  if (now - oldest.t < RECENT_MS / 2) return null;
  return perEmitted((s.jitterBufferDelay ?? 0) - oldest.delay, (s.jitterBufferEmittedCount ?? 0) - oldest.count);
}

/** @param {import("./peer.js").Peer} peer */
export async function collectStats(peer) {
  const report = await peer.pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  const codec = (s) => byId.get(s.codecId)?.mimeType?.split("/")[1] ?? null;
  const out = {
    session: peer.remote.session,
    user: peer.remote.user,
    name: peer.remote.name,
    connection_state: peer.pc.connectionState,
    connect_ms: peer.connectMs,
    first_frame_ms: peer.firstFrameMs,
    painted_frames: peer.paintedFrames,
    video_in: null,
    audio_in: null,
    video_out: null,
    audio_out: null,
    transport: null,
    glass_to_glass_ms: null,
    chat: { sent: peer.chat.sent, acked: peer.chat.acked, received: peer.chat.received, refused: peer.chat.refused },
  };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.video_in = {
        codec: codec(s),
        decoder: s.decoderImplementation ?? null,
        frames_received: s.framesReceived ?? 0,
        frames_decoded: s.framesDecoded ?? 0,
        frames_dropped: s.framesDropped ?? 0,
        key_frames_decoded: s.keyFramesDecoded ?? 0,
        frames_per_second: s.framesPerSecond ?? null,
        freeze_count: s.freezeCount ?? 0,
        freeze_ms: Math.round((s.totalFreezesDuration ?? 0) * 1000),
        packets_received: s.packetsReceived ?? 0,
        packets_lost: s.packetsLost ?? 0,
        bytes_received: s.bytesReceived ?? 0,
        nack_sent: s.nackCount ?? 0,
        pli_sent: s.pliCount ?? 0,
        jitter_buffer_ms: perEmitted(s.jitterBufferDelay, s.jitterBufferEmittedCount),
        width: s.frameWidth ?? null,
        height: s.frameHeight ?? null,
      };
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      const total = s.totalSamplesReceived ?? 0;
      out.audio_in = {
        codec: codec(s),
        packets_received: s.packetsReceived ?? 0,
        packets_lost: s.packetsLost ?? 0,
        jitter_buffer_ms: perEmitted(s.jitterBufferDelay, s.jitterBufferEmittedCount),
        jitter_buffer_target_ms: perEmitted(s.jitterBufferTargetDelay, s.jitterBufferEmittedCount),
        jitter_buffer_recent_ms: recentJitterBuffer(peer, s),
        total_samples_received: total,
        concealed_samples: s.concealedSamples ?? 0,
        silent_concealed_samples: s.silentConcealedSamples ?? 0,
        concealment_events: s.concealmentEvents ?? 0,
        // Concealment that was not comfort noise over DTX silence, per sample played.
        concealed_ratio: total ? ((s.concealedSamples ?? 0) - (s.silentConcealedSamples ?? 0)) / total : null,
      };
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      out.video_out = {
        codec: codec(s),
        encoder: s.encoderImplementation ?? null,
        frames_encoded: s.framesEncoded ?? 0,
        key_frames_encoded: s.keyFramesEncoded ?? 0,
        frames_sent: s.framesSent ?? 0,
        target_bitrate: s.targetBitrate ?? null,
        bytes_sent: s.bytesSent ?? 0,
        retransmitted_packets: s.retransmittedPacketsSent ?? 0,
        nack_received: s.nackCount ?? 0,
        pli_received: s.pliCount ?? 0,
        quality_limitation: s.qualityLimitationReason ?? null,
        width: s.frameWidth ?? null,
        height: s.frameHeight ?? null,
      };
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.audio_out = { codec: codec(s), packets_sent: s.packetsSent ?? 0, bytes_sent: s.bytesSent ?? 0 };
    } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      out.transport = {
        rtt_ms: s.currentRoundTripTime != null ? Math.round(s.currentRoundTripTime * 1000) : null,
        available_outgoing_bitrate: s.availableOutgoingBitrate ?? null,
        local_candidate_type: byId.get(s.localCandidateId)?.candidateType ?? null,
        remote_candidate_type: byId.get(s.remoteCandidateId)?.candidateType ?? null,
        protocol: byId.get(s.localCandidateId)?.protocol ?? null,
        bytes_received: s.bytesReceived ?? 0,
      };
    }
  });
  const sorted = [...peer.latencies].sort((a, b) => a - b);
  if (sorted.length) {
    out.glass_to_glass_ms = {
      count: sorted.length,
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      max: sorted[sorted.length - 1],
    };
  }
  return out;
}
