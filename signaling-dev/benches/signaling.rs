//! `cargo xtask bench signaling`: relay throughput and latency of the real
//! `signaling-dev` binary side by side with a minimal Node `ws` relay of
//! protocol v1 (`benches/node-relay`), both driven over loopback by the same
//! load generator in this process, which also reports its own CPU use next to
//! the server's; then signaling-dev's idle memory and accept rate. Every
//! phase is bounded in count and time.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
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

/// The Node relay: relay.mjs, its package.json and package-lock.json.
const NODE_RELAY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/node-relay");

/// Offers each session sends before reading its partner's, in the throughput phase.
const WINDOW: usize = 32;
/// Each session's send period in the latency phase (10 messages/s) and how long it sends.
const LATENCY_PERIOD: Duration = Duration::from_millis(100);
const LATENCY_DURATION: Duration = Duration::from_secs(5);

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
    /// signaling-dev with its rate limit out of the way.
    fn start() -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_signaling-dev"));
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "1e9",
                "--rate-burst",
                "1e9",
            ])
            .env("RUST_LOG", "error");
        ServerProcess::spawn(&mut command).unwrap_or_else(|err| panic!("signaling-dev: {err}"))
    }

    /// The Node relay, started like signaling-dev; or why it cannot run here.
    fn start_node_relay(ready: &Result<String, String>) -> Result<ServerProcess, String> {
        if let Err(why) = ready {
            return Err(why.clone());
        }
        let mut command = Command::new("node");
        command
            .arg(Path::new(NODE_RELAY_DIR).join("relay.mjs"))
            .args(["--listen", "127.0.0.1:0"]);
        ServerProcess::spawn(&mut command)
    }

    /// Starts a server that prints one JSON line with its `ws` URL once it listens.
    fn spawn(command: &mut Command) -> Result<ServerProcess, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {program}: {err}"))?;
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let url = read
            .ok()
            .and_then(|_| serde_json::from_str::<Value>(&line).ok())
            .and_then(|ready| ready["ws"].as_str().map(str::to_owned));
        match url {
            Some(url) => Ok(ServerProcess { child, url }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "{program} printed no ready line (got {:?})",
                    line.trim()
                ))
            }
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

/// CPU use over one phase, in cores: CPU seconds (user + system, all threads)
/// per second of wall time.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    /// This process: the load generator.
    load: f64,
    server: f64,
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} / {:.2}", self.load, self.server)
    }
}

/// USER_HZ, the unit of CPU times in /proc: `getconf CLK_TCK`, else Linux's usual 100.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds a process has used so far, every thread's user and system time,
/// from /proc/<pid>/stat; `pid` "self" is this process.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; after it come
    // fields 3 onwards of proc(5), of which utime is 14 and stime 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace().skip(14 - 3);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Measures the CPU of this process and of a server over a stretch of wall
/// time, so the table shows which of the two is saturated.
struct CpuMeter {
    server_pid: String,
    started: Instant,
    load_before: Option<f64>,
    server_before: Option<f64>,
}

impl CpuMeter {
    fn start(server: &ServerProcess) -> CpuMeter {
        let server_pid = server.child.id().to_string();
        CpuMeter {
            load_before: cpu_seconds("self"),
            server_before: cpu_seconds(&server_pid),
            server_pid,
            started: Instant::now(),
        }
    }

    fn stop(&self) -> Cpu {
        let wall = self.started.elapsed().as_secs_f64();
        let cores = |before: Option<f64>, pid: &str| match (before, cpu_seconds(pid)) {
            (Some(before), Some(after)) => (after - before) / wall,
            _ => f64::NAN,
        };
        Cpu {
            load: cores(self.load_before, "self"),
            server: cores(self.server_before, &self.server_pid),
        }
    }
}

/// What the throughput phase measured.
#[derive(Debug, Clone, Copy)]
struct Throughput {
    /// Messages relayed per second.
    rate: f64,
    cpu: Cpu,
}

/// Every session sends `window` offers to its partner, then reads the
/// partner's `window`, for `rounds` rounds.
async fn throughput(
    server: &ServerProcess,
    sessions: usize,
    rounds: usize,
    window: usize,
) -> Throughput {
    let members = pairs(&server.url, sessions).await;
    let meter = CpuMeter::start(server);
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
    let cpu = meter.stop();
    Throughput {
        rate: (sessions * rounds * window) as f64 / elapsed,
        cpu,
    }
}

/// What the latency phase measured: send-to-receive times in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    cpu: Cpu,
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} ms / {:.2} ms", self.p50, self.p99)
    }
}

/// Every session sends one timestamped offer each `period` for `duration`;
/// returns p50 and p99 of send-to-receive time.
async fn latency(
    server: &ServerProcess,
    sessions: usize,
    period: Duration,
    duration: Duration,
) -> Latency {
    let members = pairs(&server.url, sessions).await;
    let meter = CpuMeter::start(server);
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
    let cpu = meter.stop();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        cpu,
    }
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

/// 1000 → "1,000".
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Makes sure the Node relay can run: `node` on the PATH and the relay's `ws`
/// package installed, by `npm ci` when the lock file is newer than what
/// node_modules holds (as xtask does for the UI). Returns the versions, or why
/// the relay cannot run.
fn prepare_node_relay() -> Result<String, String> {
    let node = match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => return Err("node not found (apt-get install nodejs npm)".into()),
    };
    let dir = Path::new(NODE_RELAY_DIR);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed < modified(&dir.join("package-lock.json")) {
        eprintln!("==> npm ci in {NODE_RELAY_DIR} (the Node relay's ws package)");
        // npm's output goes to stderr: stdout is the table.
        let done = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .stdout(std::io::stderr())
            .status()
            .is_ok_and(|status| status.success());
        if !done {
            return Err("npm ci failed (run npm ci in signaling-dev/benches/node-relay)".into());
        }
    }
    let ws = std::fs::read_to_string(dir.join("node_modules/ws/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|package| package["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    Ok(format!("Node {node}, ws {ws}"))
}

/// Prints a Markdown table, each column as wide as its widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            std::iter::once(&header)
                .chain(rows)
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let print_row = |row: &[String]| {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:width$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    print_row(&header);
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(width + 2)).collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        print_row(row);
    }
}

fn main() {
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("could not raise the open-file limit: {err}");
    }
    // The load generator: two worker threads.
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
    let node_ready = if wants("throughput") || wants("latency") {
        prepare_node_relay()
    } else {
        Ok(String::new())
    };
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    runtime.block_on(async {
        // A fresh server for each run, signaling-dev then the Node relay at
        // the same size, so the two numbers of a row are taken back to back
        // rather than at either end of a long run on a shared machine.
        let mut compared: Vec<Vec<String>> = Vec::new();
        let not_run = |why: &str| format!("not run: {why}");
        let no_ratio = |_: &str| String::from("—");

        if wants("throughput") {
            for (sessions, rounds) in [(100, 400), (1000, 40)] {
                let server = ServerProcess::start();
                let ours = throughput(&server, sessions, rounds, WINDOW).await;
                drop(server);
                let node = match ServerProcess::start_node_relay(&node_ready) {
                    Ok(server) => Ok(throughput(&server, sessions, rounds, WINDOW).await),
                    Err(why) => Err(why),
                };
                let node = node.as_ref().map_err(String::as_str);
                compared.push(vec![
                    format!(
                        "relayed messages/s, {} active sessions in pairs",
                        count(sessions)
                    ),
                    format!("{:.0}", ours.rate),
                    node.map_or_else(not_run, |n| format!("{:.0}", n.rate)),
                    node.map_or_else(no_ratio, |n| format!("{:.2}×", ours.rate / n.rate)),
                ]);
                compared.push(vec![
                    "  CPU meanwhile, cores: load generator / server".into(),
                    ours.cpu.to_string(),
                    node.map_or_else(no_ratio, |n| n.cpu.to_string()),
                    String::new(),
                ]);
            }
        }

        if wants("latency") {
            for sessions in [100, 1000] {
                let server = ServerProcess::start();
                let ours = latency(&server, sessions, LATENCY_PERIOD, LATENCY_DURATION).await;
                drop(server);
                let node = match ServerProcess::start_node_relay(&node_ready) {
                    Ok(server) => {
                        Ok(latency(&server, sessions, LATENCY_PERIOD, LATENCY_DURATION).await)
                    }
                    Err(why) => Err(why),
                };
                let node = node.as_ref().map_err(String::as_str);
                compared.push(vec![
                    format!(
                        "relay latency p50 / p99, {} active sessions at 10 msg/s each",
                        count(sessions)
                    ),
                    ours.to_string(),
                    node.map_or_else(not_run, |n| n.to_string()),
                    node.map_or_else(no_ratio, |n| {
                        format!("{:.2}× / {:.2}×", ours.p50 / n.p50, ours.p99 / n.p99)
                    }),
                ]);
                compared.push(vec![
                    "  CPU meanwhile, cores: load generator / server".into(),
                    ours.cpu.to_string(),
                    node.map_or_else(no_ratio, |n| n.cpu.to_string()),
                    String::new(),
                ]);
            }
        }

        let mut rows: Vec<Vec<String>> = Vec::new();
        if wants("idle") {
            let server = ServerProcess::start();
            let baseline = server.rss_bytes();
            let (idle, took) = connect_idle(&server.url, 10_000, 100).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss = server.rss_bytes();
            rows.push(vec![
                "accept 10,000 connections (TCP, WebSocket, hello→welcome; 256 at a time)".into(),
                format!(
                    "{:.2} s ({:.0}/s)",
                    took.as_secs_f64(),
                    10_000.0 / took.as_secs_f64()
                ),
            ]);
            rows.push(vec!["server RSS, no sessions".into(), mib(baseline)]);
            rows.push(vec![
                "server RSS, 10,000 idle sessions (100 users × 100 sessions)".into(),
                format!(
                    "{} ({:.1} KiB per session)",
                    mib(rss),
                    (rss.saturating_sub(baseline)) as f64 / 10_000.0 / 1024.0
                ),
            ]);
            drop(idle);
            drop(server);
        }

        if wants("presence") {
            let server = ServerProcess::start();
            let (distinct, took) = connect_idle(&server.url, 1_000, 1_000).await;
            rows.push(vec![
                "1,000 distinct users connect (presence to every session: ~500,000 messages)"
                    .into(),
                format!("{:.2} s", took.as_secs_f64()),
            ]);
            drop(distinct);
            drop(server);
        }

        if !compared.is_empty() {
            let node = node_ready.as_deref().unwrap_or("not run");
            println!();
            println!(
                "relay: signaling-dev (release) against a minimal Node ws relay of protocol v1 \
                 (benches/node-relay; {node}; one thread), each in its own process, the same \
                 load generator in this one, loopback, {cores} cores shared"
            );
            println!();
            print_table(
                &[
                    "measure",
                    "signaling-dev",
                    "Node ws relay",
                    "signaling-dev / Node",
                ],
                &compared,
            );
            println!();
            println!(
                "CPU meanwhile: CPU seconds (user + system, all threads; /proc/<pid>/stat) per \
                 second while the messages flowed, of this load generator (2 worker threads) and \
                 of the server process. The one at its ceiling is the bottleneck: about 1 core \
                 for the Node relay (one JavaScript thread), 2 for the load generator; when the \
                 two add up to the machine's {cores} cores, the shared CPU is."
            );
        }
        if !rows.is_empty() {
            println!();
            println!(
                "signaling-dev (release), server in its own process, load from this one, \
                 loopback, {cores} cores shared"
            );
            println!();
            print_table(&["measure", "value"], &rows);
        }
    });
}
