// The last 60 s of each peer's stats, for the plots: one sample a second,
// a fixed number per peer, so a long call uses no more memory than a short one.
import type { PeerStats } from "./types";

export const WINDOW_SECONDS = 60;
/** Peers kept; the mesh limit is far lower. */
const MAX_PEERS = 16;

export interface Series {
  time: number[];
  bitrateIn: number[];
  bitrateOut: number[];
  rtt: (number | null)[];
  loss: number[];
  fps: number[];
  bandwidth: (number | null)[];
  latest: PeerStats | null;
}

function emptySeries(): Series {
  return { time: [], bitrateIn: [], bitrateOut: [], rtt: [], loss: [], fps: [], bandwidth: [], latest: null };
}

export class StatsHistory {
  private peers = new Map<string, Series>();
  private lastLost = new Map<string, number>();

  add(nowSeconds: number, stats: PeerStats[]): void {
    for (const peer of stats) {
      let series = this.peers.get(peer.session);
      if (!series) {
        if (this.peers.size >= MAX_PEERS) continue;
        series = emptySeries();
        this.peers.set(peer.session, series);
      }
      const lostBefore = this.lastLost.get(peer.session) ?? peer.packets_lost;
      this.lastLost.set(peer.session, peer.packets_lost);
      series.time.push(nowSeconds);
      series.bitrateIn.push(peer.bitrate_in_kbps);
      series.bitrateOut.push(peer.bitrate_out_kbps);
      series.rtt.push(peer.rtt_ms);
      series.loss.push(Math.max(0, peer.packets_lost - lostBefore));
      series.fps.push(peer.fps_received);
      series.bandwidth.push(peer.estimated_bandwidth_kbps);
      series.latest = peer;
      while (series.time.length > 0 && (series.time[0] ?? 0) <= nowSeconds - WINDOW_SECONDS) {
        series.time.shift();
        series.bitrateIn.shift();
        series.bitrateOut.shift();
        series.rtt.shift();
        series.loss.shift();
        series.fps.shift();
        series.bandwidth.shift();
      }
    }
  }

  forget(session: string): void {
    this.peers.delete(session);
    this.lastLost.delete(session);
  }

  clear(): void {
    this.peers.clear();
    this.lastLost.clear();
  }

  sessions(): string[] {
    return [...this.peers.keys()];
  }

  series(session: string): Series | undefined {
    return this.peers.get(session);
  }
}
