//! `cargo xtask bench signaling`: relay throughput and latency, idle memory
//! and accept rate of the real `signaling-dev` binary, driven over loopback
//! from this process. Every phase is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// No phase may run longer than this.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

struct ServerProcess {
    child: Child,
    url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start() -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signaling-dev"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "1e9",
                "--rate-burst",
                "1e9",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap();
        ServerProcess {
            url: ready["ws"].as_str().unwrap().to_owned(),
            child,
        }
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }
}

async fn connect(url: &str) -> Ws {
    // Small buffers: the load generator holds thousands of these too.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    connect_async_with_config(url, Some(config), false)
        .await
        .unwrap()
        .0
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            _ => continue,
        }
    }
}

async fn next_of_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let message = next_json(ws).await;
        if message["type"] == kind {
            return message;
        }
    }
}

async fn hello(url: &str, user: &str) -> (Ws, String) {
    let mut ws = connect(url).await;
    ws.send(Message::Text(
        json!({"type":"hello","user":user}).to_string().into(),
    ))
    .await
    .unwrap();
    let welcome = next_of_type(&mut ws, "welcome").await;
    (ws, welcome["session"].as_str().unwrap().to_owned())
}

/// Two sessions in their own room, each knowing the other's session id.
async fn pair(url: &str, index: usize) -> [(Ws, String, String); 2] {
    let room = format!("pair{index}");
    // Two users with many sessions each: presence is sent only for their first
    // sessions, so what is measured is the relay, not presence fan-out.
    let (mut a, a_id) = hello(url, "bench-a").await;
    let (mut b, b_id) = hello(url, "bench-b").await;
    for ws in [&mut a, &mut b] {
        ws.send(Message::Text(
            json!({"type":"join","room":room}).to_string().into(),
        ))
        .await
        .unwrap();
        next_of_type(ws, "joined").await;
    }
    [(a, b_id.clone(), room.clone()), (b, a_id, room)]
}

async fn pairs(url: &str, sessions: usize) -> Vec<(Ws, String, String)> {
    let made: Vec<_> = stream::iter(0..sessions / 2)
        .map(|i| pair(url, i))
        .buffer_unordered(64)
        .collect()
        .await;
    made.into_iter().flatten().collect()
}

fn offer(room: &str, to: &str, sdp: String) -> Message {
    Message::Text(
        json!({"type":"offer","room":room,"to":to,"sdp":sdp})
            .to_string()
            .into(),
    )
}

/// Every session sends `window` offers to its partner, then reads the
/// partner's `window`, for `rounds` rounds. Returns messages relayed per second.
async fn throughput(url: &str, sessions: usize, rounds: usize, window: usize) -> f64 {
    let members = pairs(url, sessions).await;
    let started = Instant::now();
    let tasks: Vec<_> = members
        .into_iter()
        .map(|(mut ws, partner, room)| {
            tokio::spawn(async move {
                for round in 0..rounds {
                    for i in 0..window {
                        ws.send(offer(&room, &partner, format!("v=0 {round} {i}")))
                            .await
                            .unwrap();
                    }
                    for _ in 0..window {
                        next_of_type(&mut ws, "offer").await;
                    }
                }
                ws
            })
        })
        .collect();
    let mut kept = Vec::new();
    for task in tasks {
        kept.push(
            tokio::time::timeout(PHASE_LIMIT, task)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    (sessions * rounds * window) as f64 / elapsed
}

/// Every session sends one timestamped offer each `period` for `duration`;
/// returns (p50, p99) of send-to-receive time.
async fn latency(url: &str, sessions: usize, period: Duration, duration: Duration) -> (f64, f64) {
    let members = pairs(url, sessions).await;
    let epoch = Arc::new(Instant::now());
    let tasks: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(index, (ws, partner, room))| {
            let epoch = Arc::clone(&epoch);
            tokio::spawn(async move {
                let (mut sink, mut source) = ws.split();
                let sender = tokio::spawn({
                    let epoch = Arc::clone(&epoch);
                    async move {
                        // Spread the senders over the period.
                        let offset = period.mul_f64((index % 97) as f64 / 97.0);
                        tokio::time::sleep(offset).await;
                        let mut ticks = tokio::time::interval(period);
                        let end = Instant::now() + duration;
                        let mut sent = 0usize;
                        while Instant::now() < end {
                            ticks.tick().await;
                            let stamp = epoch.elapsed().as_nanos().to_string();
                            sink.send(offer(&room, &partner, stamp)).await.unwrap();
                            sent += 1;
                        }
                        (sink, sent)
                    }
                });
                let mut samples = Vec::new();
                let deadline = tokio::time::Instant::now() + duration + Duration::from_secs(5);
                while let Ok(Some(Ok(frame))) =
                    tokio::time::timeout_at(deadline, source.next()).await
                {
                    if let Message::Text(text) = frame {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap();
                        if let Some(stamp) =
                            value["sdp"].as_str().and_then(|s| s.parse::<u128>().ok())
                        {
                            let now = epoch.elapsed().as_nanos();
                            samples.push((now - stamp) as f64 / 1e6);
                        }
                    }
                    if samples.len() >= expected(duration, period) {
                        break;
                    }
                }
                let _ = sender.await;
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            tokio::time::timeout(PHASE_LIMIT, task)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

fn expected(duration: Duration, period: Duration) -> usize {
    (duration.as_secs_f64() / period.as_secs_f64()).floor() as usize
}

/// Connects `count` sessions spread over `users` users; returns them and the time taken.
async fn connect_idle(url: &str, count: usize, users: usize) -> (Vec<Ws>, Duration) {
    let started = Instant::now();
    let sessions: Vec<Ws> = stream::iter(0..count)
        .map(|i| async move { hello(url, &format!("idle{}", i % users)).await.0 })
        .buffer_unordered(256)
        .collect()
        .await;
    (sessions, started.elapsed())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("could not raise the open-file limit: {err}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `cargo bench --bench signaling -- idle latency` runs only those phases.
    let phases: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |phase: &str| phases.is_empty() || phases.iter().any(|p| p == phase);
    runtime.block_on(async {
        let mut rows: Vec<(String, String)> = Vec::new();

        let server = ServerProcess::start();
        let baseline = server.rss_bytes();
        let throughput_runs: &[(usize, usize)] = if wants("throughput") {
            &[(100, 400), (1000, 40)]
        } else {
            &[]
        };
        for &(sessions, rounds) in throughput_runs {
            let rate = throughput(&server.url, sessions, rounds, 32).await;
            rows.push((
                format!("relayed messages/s, {sessions} active sessions in pairs"),
                format!("{rate:.0}"),
            ));
        }
        drop(server);

        if wants("latency") {
        let server = ServerProcess::start();
        let (p50, p99) =
            latency(&server.url, 1000, Duration::from_millis(100), Duration::from_secs(5)).await;
        rows.push((
            "relay latency p50 / p99, 1,000 active sessions at 10 msg/s each".into(),
            format!("{p50:.2} ms / {p99:.2} ms"),
        ));
        drop(server);
        }

        if wants("idle") {
        let server = ServerProcess::start();
        let (idle, took) = connect_idle(&server.url, 10_000, 100).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = server.rss_bytes();
        rows.push((
            "accept 10,000 connections (TCP, WebSocket, hello→welcome; 256 at a time)".into(),
            format!("{:.2} s ({:.0}/s)", took.as_secs_f64(), 10_000.0 / took.as_secs_f64()),
        ));
        rows.push(("server RSS, no sessions".into(), mib(baseline)));
        rows.push((
            "server RSS, 10,000 idle sessions (100 users × 100 sessions)".into(),
            format!(
                "{} ({:.1} KiB per session)",
                mib(rss),
                (rss.saturating_sub(baseline)) as f64 / 10_000.0 / 1024.0
            ),
        ));
        drop(idle);
        drop(server);
        }

        if wants("presence") {
        let server = ServerProcess::start();
        let (distinct, took) = connect_idle(&server.url, 1_000, 1_000).await;
        rows.push((
            "1,000 distinct users connect (presence to every session: ~500,000 messages)".into(),
            format!("{:.2} s", took.as_secs_f64()),
        ));
        drop(distinct);
        drop(server);
        }

        println!();
        println!("signaling-dev (release), server in its own process, load from this one, loopback, 2 cores shared");
        println!();
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        println!("| {:width$} | value |", "measure");
        println!("|{}|-------|", "-".repeat(width + 2));
        for (key, value) in rows {
            println!("| {key:width$} | {value} |");
        }
    });
}
