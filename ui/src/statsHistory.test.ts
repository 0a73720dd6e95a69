import { describe, expect, it } from "vitest";
import { StatsHistory, WINDOW_SECONDS } from "./statsHistory";
import type { PeerStats } from "./types";

function stats(session: string, lost: number): PeerStats {
  return {
    session, user: "bob", connected: true, ice_restarts: 0, ice_state: "connected",
    video_codec: "VP8", audio_codec: "opus", candidate_type: "host", rtt_ms: 3,
    bitrate_in_kbps: 900, bitrate_out_kbps: 800, packets_lost: lost, jitter_ms: 1,
    fps_sent: 30, fps_received: 29, width: 1280, height: 720, freezes: 0,
    estimated_bandwidth_kbps: 2000, glass_to_glass_ms: null, audio_level_dbov: 40,
    frames_decoded: 0, freeze_ms: 0, playout_delay_ms: 0, audio_packets_received: 0, keyframe_requests_received: 0,
    video_packets_received: 0, decode_errors: 0, keyframe_requests_sent: 0, nacks_received: 0,
    retransmits_sent: 0, nacks_sent: 0, retransmits_received: 0,
  };
}

describe("StatsHistory", () => {
  it("keeps only the last minute and turns cumulative loss into loss per sample", () => {
    const history = new StatsHistory();
    for (let t = 0; t < 200; t++) history.add(t, [stats("s1", t * 2)]);
    const series = history.series("s1")!;
    expect(series.time.length).toBe(WINDOW_SECONDS);
    expect(series.time[0]).toBe(200 - WINDOW_SECONDS);
    expect(series.loss.every((l) => l === 2)).toBe(true);
    expect(series.latest?.packets_lost).toBe(398);
  });

  it("bounds the number of peers and forgets those who left", () => {
    const history = new StatsHistory();
    history.add(0, Array.from({ length: 40 }, (_, n) => stats(`s${n}`, 0)));
    expect(history.sessions().length).toBe(16);
    history.forget("s0");
    expect(history.series("s0")).toBeUndefined();
  });
});
