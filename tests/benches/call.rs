//! `cargo xtask bench call`: the same calls made by kith-cli processes and
//! by pages of signaling-dev's browser client in Debian's headless Chromium,
//! on this machine in one run: 1:1 at 720p30 for every codec and a 3-peer
//! mesh, audio on, the latency strip read by every receiver; then the data
//! channel's bulk throughput. Prints Kith, Chromium and the ratio.
//!
//! CPU is counted from /proc for every process of a side (all kith-cli, or
//! all Chromium processes) over the same window of the running call, after
//! start-up: both sides measured alike.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "call/cpu.rs"]
mod cpu;
#[path = "call/datachannel.rs"]
mod datachannel;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kith_e2e::browser::{Chromium, Page, call_query};
use kith_e2e::*;
use serde_json::{Value, json};

/// Seconds a kith-cli stays in the call.
const SECONDS: u64 = 20;
/// Start-up left out of the CPU window, after everyone joined.
const WARM_UP: Duration = Duration::from_secs(4);
/// The CPU window.
const WINDOW: Duration = Duration::from_secs(12);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const BITRATE_KBPS: u32 = 2500;

/// One side's figures for one call, averaged over its receivers.
#[derive(Debug, Default, Clone)]
struct Figures {
    /// Kith's steps to the first frame (NaN for Chromium's pages).
    ice_ms: f64,
    first_packet_ms: f64,
    connect_ms: f64,
    first_frame_ms: f64,
    g2g_p50_ms: f64,
    g2g_p95_ms: f64,
    fps: f64,
    freezes: f64,
    cpu: cpu::CpuUse,
}

impl Figures {
    /// What both sides' reports name alike, averaged over the receivers
    /// (freezes summed, from `freezes_at` in each); fps is left to the
    /// caller, each side counting it its own way.
    fn of_receivers(peers: &[Value], freezes_at: &[&str], cpu: cpu::CpuUse) -> Self {
        let average = |path: &[&str]| mean(peers.iter().map(|p| get(p, path)));
        Self {
            ice_ms: average(&["ice_ms"]),
            first_packet_ms: average(&["first_packet_ms"]),
            connect_ms: average(&["connect_ms"]),
            first_frame_ms: average(&["first_frame_ms"]),
            g2g_p50_ms: average(&["glass_to_glass_ms", "p50"]),
            g2g_p95_ms: average(&["glass_to_glass_ms", "p95"]),
            fps: f64::NAN,
            freezes: peers
                .iter()
                .map(|p| get(p, freezes_at))
                .filter(|f| f.is_finite())
                .sum(),
            cpu,
        }
    }
}

fn is_kith_cli(cmdline: &str) -> bool {
    cmdline
        .split(' ')
        .next()
        .is_some_and(|program| program.ends_with("/kith-cli"))
}

fn is_chromium(cmdline: &str) -> bool {
    cmdline
        .split(' ')
        .next()
        .is_some_and(|program| program.contains("chromium") && !program.contains("driver"))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn get(value: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(value, |value, key| &value[*key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

async fn kith_call(name: &str, codec: &str, users: &[&str]) -> Figures {
    let scratch = Scratch::new(&format!("bench-{}", name.replace([' ', ':'], "-")));
    let server = Server::start(&[]);
    let mut processes = Vec::new();
    for user in users {
        let mut process = Args::new(&["join", "bench"])
            .media(codec, WIDTH, HEIGHT, 30)
            .opt("--bitrate", BITRATE_KBPS)
            .opt("--duration", SECONDS)
            .flag("--ice-loopback")
            .opt("--expect-peers", users.len() - 1)
            .path("--report", &scratch.path(&format!("{user}.json")))
            .spawn(&server.url(), user);
        process.wait_for_line("joined", PATIENCE);
        processes.push(process);
    }
    tokio::time::sleep(WARM_UP).await;
    let cpu = cpu::over_window(WINDOW, &is_kith_cli, cpu::kith_part).await;
    let processes = tokio::task::spawn_blocking(move || {
        for process in &mut processes {
            let status = process.wait(PATIENCE * 2);
            if !status.success() {
                eprintln!("{} exited with {status}", process.name);
            }
        }
    });
    processes.await.unwrap();
    let mut peers = Vec::new();
    for user in users {
        let report = report(&scratch.path(&format!("{user}.json")));
        peers.extend(report["peers"].as_array().unwrap().iter().cloned());
    }
    Figures {
        fps: mean(peers.iter().map(|p| get(p, &["fps"]))),
        ..Figures::of_receivers(&peers, &["freezes"], cpu)
    }
}

/// Frames decoded per remote peer, by user, from a page's report.
fn frames_decoded(report: &Value) -> HashMap<String, f64> {
    report["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|peer| {
            (
                peer["user"].as_str().unwrap_or_default().to_owned(),
                get(peer, &["video_in", "frames_decoded"]),
            )
        })
        .collect()
}

async fn chromium_call(codec: &str, pages: usize) -> Figures {
    let server = Server::start(&[]);
    let chromium = Chromium::start();
    let mut opened: Vec<Page> = Vec::new();
    for index in 0..pages {
        let query = call_query("bench", &format!("web{index}"), codec, (WIDTH, HEIGHT, 30));
        let page = chromium.open(&server.page(&query)).await;
        page.wait_until("joined", "window.kith.state === 'in-call'")
            .await;
        opened.push(page);
    }
    let everyone_seen = format!(
        "(await window.kith.report()).peers.filter((p) => p.first_frame_ms !== null).length === {}",
        pages - 1
    );
    for page in &opened {
        page.wait_until("every peer's first frame", &everyone_seen)
            .await;
    }
    tokio::time::sleep(WARM_UP).await;
    let mut before = Vec::new();
    for page in &opened {
        before.push((Instant::now(), frames_decoded(&page.report().await)));
    }
    let cpu = cpu::over_window(WINDOW, &is_chromium, cpu::chromium_part).await;
    let mut peers = Vec::new();
    let mut fps = Vec::new();
    for (page, (at, decoded_before)) in opened.iter().zip(before) {
        let report = page.report().await;
        let seconds = at.elapsed().as_secs_f64();
        for (user, decoded) in frames_decoded(&report) {
            if let Some(earlier) = decoded_before.get(&user) {
                fps.push((decoded - earlier) / seconds);
            }
        }
        peers.extend(report["peers"].as_array().into_iter().flatten().cloned());
    }
    for page in opened {
        page.close().await;
    }
    Figures {
        fps: mean(fps.into_iter()),
        ..Figures::of_receivers(&peers, &["video_in", "freeze_count"], cpu)
    }
}

/// Two RTCPeerConnections in one page, a reliable ordered channel between
/// them, `total` bytes in `message`-byte messages: MB/s; and a second
/// channel carrying a chat message every `every` ms, sent `idle` ms before
/// the transfer and during it: its latency (one clock, one page).
const CHROMIUM_BULK: &str = r#"
const [message, total, every, idle, done] = arguments;
const percentile = (values, p) => {
  if (!values.length) return null;
  values.sort((x, y) => x - y);
  return values[Math.round((values.length - 1) * p / 100)];
};
(async () => {
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const channel = a.createDataChannel("bulk", { ordered: true });
  const chat = a.createDataChannel("chat", { ordered: true });
  const latencies = [];
  const finished = new Promise((resolve) => {
    b.ondatachannel = (e) => {
      if (e.channel.label === "chat") {
        e.channel.onmessage = (m) => {
          const now = performance.now();
          latencies.push([now, now - Number(m.data)]);
        };
        return;
      }
      let received = 0;
      e.channel.binaryType = "arraybuffer";
      e.channel.onmessage = (m) => {
        received += m.data.byteLength;
        if (received >= total) resolve(performance.now());
      };
    };
  });
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  await new Promise((resolve) => (channel.onopen = resolve));
  if (chat.readyState !== "open") await new Promise((resolve) => (chat.onopen = resolve));
  const pinger = setInterval(() => chat.send(String(performance.now())), every);
  await new Promise((resolve) => setTimeout(resolve, idle));
  const payload = new Uint8Array(message).fill(0x5a);
  // Chromium refuses a send past 16 MiB queued: keep under 8 and refill at 2.
  channel.bufferedAmountLowThreshold = 2 << 20;
  const started = performance.now();
  for (let sent = 0; sent < total; sent += message) {
    if (channel.bufferedAmount + message > 8 << 20) {
      await new Promise((resolve) => (channel.onbufferedamountlow = resolve));
    }
    channel.send(payload);
  }
  const ended = await finished;
  clearInterval(pinger);
  a.close();
  b.close();
  const idleMs = latencies.filter(([at]) => at < started).map(([, ms]) => ms);
  const busyMs = latencies.filter(([at]) => at >= started && at <= ended).map(([, ms]) => ms);
  done({
    mb_per_s: total / ((ended - started) / 1000) / 1e6,
    chat_idle_p50_ms: percentile(idleMs, 50),
    chat_busy_p50_ms: percentile(busyMs, 50),
    chat_busy_p95_ms: percentile(busyMs, 95),
  });
})().catch((e) => done({ error: String(e) }));
"#;

async fn chromium_throughput(message: usize) -> datachannel::Bulk {
    let server = Server::start(&[]);
    let chromium = Chromium::start();
    let page = chromium.open(&server.page("source=synthetic")).await;
    let result = page
        .run_async(
            CHROMIUM_BULK,
            vec![
                json!(message),
                json!(datachannel::TOTAL),
                json!(datachannel::CHAT_EVERY.as_millis()),
                json!(datachannel::IDLE.as_millis()),
            ],
        )
        .await;
    page.close().await;
    if let Some(error) = result["error"].as_str() {
        eprintln!("Chromium's data channel bench failed: {error}");
    }
    datachannel::Bulk {
        mb_per_s: get(&result, &["mb_per_s"]),
        chat_idle_p50_ms: get(&result, &["chat_idle_p50_ms"]),
        chat_busy_p50_ms: get(&result, &["chat_busy_p50_ms"]),
        chat_busy_p95_ms: get(&result, &["chat_busy_p95_ms"]),
    }
}

/// Where Kith's time to the first frame goes, from creating the connection.
fn print_first_frame_steps(rows: &[(&str, Figures, Figures)]) {
    println!();
    println!(
        "Kith's first frame, step by step (ms, mean over receivers): ICE to a working pair; \
         DTLS to connected; then to the first video packet (the sender's encoder starts and \
         encodes a keyframe); then to the first frame shown (the keyframe's packets arrive, \
         it is decoded and played out)."
    );
    println!();
    println!(
        "| call | ICE | + DTLS | + first packet | + first frame | = Kith first frame | Chromium |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, kith, chromium) in rows {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            kith.ice_ms,
            kith.connect_ms - kith.ice_ms,
            kith.first_packet_ms - kith.connect_ms,
            kith.first_frame_ms - kith.first_packet_ms,
            kith.first_frame_ms,
            chromium.first_frame_ms,
        );
    }
}

/// Where each side's CPU went over the window, in cores.
fn print_cpu_parts(rows: &[(&str, Figures, Figures)]) {
    println!();
    println!(
        "Where the CPU goes, cores over the same window: Kith by thread (encode includes scaling; \
         decode, playout and the latency strip; network is the async runtime: ICE, DTLS, SRTP, RTCP, \
         pacing, RTP; capture is the synthetic camera drawing), Chromium by process."
    );
    println!();
    let kith_heads = cpu::KITH_PARTS.join(" | ");
    let chromium_heads = cpu::CHROMIUM_PARTS.join(" | ");
    let columns = cpu::KITH_PARTS.len() + cpu::CHROMIUM_PARTS.len();
    println!("| call | Kith: {kith_heads} | Chromium: {chromium_heads} |");
    println!("|---|{}", "---|".repeat(columns));
    for (name, kith, chromium) in rows {
        let kith_cells: Vec<String> = cpu::KITH_PARTS
            .iter()
            .map(|part| format!("{:.2}", kith.cpu.part(part)))
            .collect();
        let chromium_cells: Vec<String> = cpu::CHROMIUM_PARTS
            .iter()
            .map(|part| format!("{:.2}", chromium.cpu.part(part)))
            .collect();
        println!(
            "| {name} | {} | {} |",
            kith_cells.join(" | "),
            chromium_cells.join(" | ")
        );
    }
}

fn ratio(kith: f64, chromium: f64) -> String {
    if kith.is_finite() && chromium.is_finite() && chromium > 0.0 {
        format!("{:.2}", kith / chromium)
    } else {
        "–".to_owned()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Cargo passes `--bench`; `calls` or `datachannel` runs only that half.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted = |half: &str| only.is_empty() || only.iter().any(|arg| arg == half);
    let mut calls = vec![
        ("1:1 AV1", "AV1", 2),
        ("1:1 VP9", "VP9", 2),
        ("1:1 VP8", "VP8", 2),
        ("1:1 H264", "H264", 2),
        ("3-peer mesh VP8", "VP8", 3),
    ];
    if !wanted("calls") {
        calls.clear();
    }
    let users = ["alice", "bob", "carol"];
    let mut rows = Vec::new();
    for (name, codec, peers) in calls {
        eprintln!("==> {name}: kith-cli");
        let kith = kith_call(name, codec, &users[..peers]).await;
        eprintln!("==> {name}: Chromium");
        let chromium = chromium_call(codec, peers).await;
        rows.push((name, kith, chromium));
    }
    let mut bulk = Vec::new();
    let sizes = if wanted("datachannel") {
        vec![16 * 1024, 64 * 1024]
    } else {
        Vec::new()
    };
    for message in sizes {
        eprintln!("==> data channel, {} KiB messages", message >> 10);
        let kith = datachannel::kith_throughput(message)
            .await
            .unwrap_or_else(|err| {
                eprintln!("Kith's data channel bench failed: {err:#}");
                datachannel::Bulk::FAILED
            });
        let chromium = chromium_throughput(message).await;
        bulk.push((message, kith, chromium));
    }

    println!();
    println!(
        "Calls: {WIDTH}×{HEIGHT} 30 fps, latency strip, audio on, loopback; CPU of all processes of a side over {} s after a {} s warm-up. Each cell: Kith / Chromium (ratio Kith÷Chromium).",
        WINDOW.as_secs(),
        WARM_UP.as_secs()
    );
    println!();
    println!(
        "| call | connect ms | first frame ms | g2g p50 ms | g2g p95 ms | fps | freezes | CPU cores |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, kith, chromium) in &rows {
        let cell = |k: f64, c: f64, digits: usize| {
            format!("{k:.digits$} / {c:.digits$} ({})", ratio(k, c))
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            cell(kith.connect_ms, chromium.connect_ms, 0),
            cell(kith.first_frame_ms, chromium.first_frame_ms, 0),
            cell(kith.g2g_p50_ms, chromium.g2g_p50_ms, 0),
            cell(kith.g2g_p95_ms, chromium.g2g_p95_ms, 0),
            cell(kith.fps, chromium.fps, 1),
            cell(kith.freezes, chromium.freezes, 0),
            cell(kith.cpu.cores, chromium.cpu.cores, 2),
        );
    }
    if !rows.is_empty() {
        print_first_frame_steps(&rows);
        print_cpu_parts(&rows);
    }
    println!();
    println!(
        "| data channel (reliable, ordered, loopback, 64 MiB) | Kith MB/s | Chromium MB/s | ratio \
         | chat ms before, p50 Kith / Chromium | chat ms during, p50 | chat ms during, p95 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (message, kith, chromium) in bulk {
        let pair = |k: f64, c: f64| format!("{k:.1} / {c:.1}");
        println!(
            "| {} KiB messages | {:.1} | {:.1} | {} | {} | {} | {} |",
            message >> 10,
            kith.mb_per_s,
            chromium.mb_per_s,
            ratio(kith.mb_per_s, chromium.mb_per_s),
            pair(kith.chat_idle_p50_ms, chromium.chat_idle_p50_ms),
            pair(kith.chat_busy_p50_ms, chromium.chat_busy_p50_ms),
            pair(kith.chat_busy_p95_ms, chromium.chat_busy_p95_ms),
        );
    }
    println!(
        "Chat: a message every {} ms on a second channel of the same connection, {} ms before the transfer and during it.",
        datachannel::CHAT_EVERY.as_millis(),
        datachannel::IDLE.as_millis()
    );
    println!();
    println!(
        "Goals: first frame and g2g ≤ 0.70, CPU ≤ 0.50, fps ≥ 1.00, data channel ≥ 1.00 (Kith÷Chromium)."
    );
}
