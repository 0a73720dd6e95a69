// Live call statistics: a table of the latest figures per peer and uPlot
// charts of the last 60 s.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fill, h } from "./dom";
import type { Series, StatsHistory } from "./statsHistory";

interface PeerCharts {
  box: HTMLElement;
  table: HTMLElement;
  plots: { plot: uPlot; data: (s: Series) => uPlot.AlignedData }[];
}

const CHARTS: { title: string; series: { label: string; stroke: string }[]; data: (s: Series) => uPlot.AlignedData }[] = [
  {
    title: "kbit/s",
    series: [
      { label: "in", stroke: "#2f6fde" },
      { label: "out", stroke: "#d9822b" },
      { label: "estimate", stroke: "#999" },
    ],
    data: (s) => [s.time, s.bitrateIn, s.bitrateOut, s.bandwidth],
  },
  {
    title: "RTT ms / packets lost",
    series: [
      { label: "rtt", stroke: "#7b3fc4" },
      { label: "lost", stroke: "#c43f3f" },
    ],
    data: (s) => [s.time, s.rtt, s.loss],
  },
  {
    title: "frames/s received",
    series: [{ label: "fps", stroke: "#2a9d5b" }],
    data: (s) => [s.time, s.fps],
  },
];

export class StatsPanel {
  readonly element = h("section", { class: "stats", id: "stats" });
  private peers = new Map<string, PeerCharts>();
  private header = h("div", { class: "stats-header" });

  constructor(private names: () => Record<string, string>) {
    this.element.append(this.header);
  }

  update(history: StatsHistory, renderer: string): void {
    fill(this.header, `renderer: ${renderer}`);
    const sessions = history.sessions();
    for (const [session, charts] of this.peers) {
      if (!sessions.includes(session)) {
        for (const { plot } of charts.plots) plot.destroy();
        charts.box.remove();
        this.peers.delete(session);
      }
    }
    for (const session of sessions) {
      const series = history.series(session);
      if (!series?.latest) continue;
      let charts = this.peers.get(session);
      if (!charts) {
        charts = this.create(session);
        this.peers.set(session, charts);
      }
      const s = series.latest;
      fill(
        charts.table,
        h("h4", {}, this.names()[session] ?? s.user),
        row("codec", [s.video_codec, s.audio_codec].filter(Boolean).join(" + ") || "—"),
        row("resolution", s.width && s.height ? `${s.width}×${s.height}` : "—"),
        row("fps in / out", `${s.fps_received.toFixed(1)} / ${s.fps_sent.toFixed(1)}`),
        row("kbit/s in / out", `${s.bitrate_in_kbps.toFixed(0)} / ${s.bitrate_out_kbps.toFixed(0)}`),
        row("estimated bandwidth", s.estimated_bandwidth_kbps === null ? "—" : `${s.estimated_bandwidth_kbps.toFixed(0)} kbit/s`),
        row("RTT", s.rtt_ms === null ? "—" : `${s.rtt_ms.toFixed(0)} ms`),
        row("packets lost", String(s.packets_lost)),
        row("freezes", `${s.freezes} (${(s.freeze_ms / 1000).toFixed(1)} s)`),
        row("video buffer", `${s.playout_delay_ms} ms`),
        row("candidate", s.candidate_type ?? "—"),
        row("ICE", `${s.ice_state}${s.ice_restarts ? ` (${s.ice_restarts} restarts)` : ""}`),
      );
      for (const { plot, data } of charts.plots) plot.setData(data(series));
    }
  }

  private create(session: string): PeerCharts {
    const table = h("div", { class: "stats-table" });
    const box = h("div", { class: "stats-peer", dataset: { session } }, table);
    this.element.append(box);
    const plots = CHARTS.map((chart) => {
      const holder = h("div", { class: "stats-plot" });
      box.append(holder);
      const plot = new uPlot(
        {
          title: chart.title,
          width: 300,
          height: 120,
          scales: { x: { time: true } },
          series: [{}, ...chart.series.map((s) => ({ label: s.label, stroke: s.stroke, spanGaps: true }))],
          axes: [{ size: 30 }, { size: 40 }],
          legend: { show: true },
        },
        chart.data({ time: [], bitrateIn: [], bitrateOut: [], rtt: [], loss: [], fps: [], bandwidth: [], latest: null }),
        holder,
      );
      return { plot, data: chart.data };
    });
    return { box, table, plots };
  }

  clear(): void {
    for (const charts of this.peers.values()) {
      for (const { plot } of charts.plots) plot.destroy();
      charts.box.remove();
    }
    this.peers.clear();
  }
}

function row(label: string, value: string): HTMLElement {
  return h("div", { class: "stats-row" }, h("span", {}, label), h("span", {}, value));
}
