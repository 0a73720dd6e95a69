//! `cargo xtask bench app`: a 1:1 720p call between the desktop app (its
//! real window under Xvfb) and a kith-cli bot, beside the same call between
//! two kith-cli. Prints the app's CPU (its process and the WebKit processes
//! it starts) and glass-to-glass as the page paints it (remote capture →
//! painted, read off each tile's last frame), against kith-cli's own
//! glass-to-glass (capture → decoded).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use kith_e2e::desktop::{Desktop, add_contact, attr_number, click, open, sign_up, video_call};
use kith_e2e::*;

/// The bot's (and kith-cli's) codec: `KITH_BENCH_CODEC`, AV1 by default.
fn codec() -> String {
    std::env::var("KITH_BENCH_CODEC").unwrap_or_else(|_| "AV1".into())
}

const WARM_UP: Duration = Duration::from_secs(4);
const WINDOW: Duration = Duration::from_secs(15);

/// Clock ticks of a process and its descendants (user + system).
fn tree_ticks(root: u32) -> u64 {
    let mut total = 0;
    let mut pending = vec![root];
    let mut all = Vec::new();
    while let Some(pid) = pending.pop() {
        all.push(pid);
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if parent_of(child) == Some(pid) {
                    pending.push(child);
                }
            }
        }
    }
    for pid in all {
        total += ticks_of(pid);
    }
    total
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its ')'.
    let rest = text.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(String::from).collect())
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn ticks_of(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| {
        f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    })
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

fn app_pid() -> u32 {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &Desktop::application().display().to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .min()
        .expect("the app's process")
}

struct AppRun {
    cpu_cores: f64,
    painted_p50: f64,
    painted_p95: f64,
    painted_fps: f64,
    renderer: String,
}

async fn app_call() -> AppRun {
    let scratch = Scratch::new("bench-app");
    let desktop = Desktop::start(&scratch);
    let client = open(&desktop).await;
    sign_up(&client, "alice", "Alice").await;
    add_contact(&client, "bot", "Bot").await;
    let seconds = (WARM_UP + WINDOW).as_secs() + 10;
    let mut bot = Args::new(&["answer"])
        .media(&codec(), 1280, 720, 30)
        .opt("--duration", seconds)
        .flag("--ice-loopback")
        .spawn(&desktop.server_url(), "bot");
    bot.wait_for_line("signaling_connected", PATIENCE);
    let tile = video_call(&client, "bot", 10).await;
    tokio::time::sleep(WARM_UP).await;
    let pid = app_pid();
    let renderer = tile
        .attr("data-renderer")
        .await
        .unwrap()
        .unwrap_or_default();
    let painted_before = attr_number(&tile, "data-painted").await;
    let ticks_before = tree_ticks(pid);
    let started = Instant::now();
    let mut delays = Vec::new();
    let mut last_painted = painted_before;
    while started.elapsed() < WINDOW {
        let painted = attr_number(&tile, "data-painted").await;
        if painted != last_painted {
            let delay = attr_number(&tile, "data-delay-ms").await;
            if delay.is_finite() {
                delays.push(delay);
            }
            last_painted = painted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_cores = (tree_ticks(pid) - ticks_before) as f64 / ticks_per_second() / elapsed;
    let painted_after = attr_number(&tile, "data-painted").await;
    click(&client, "#hang-up").await;
    client.close().await.unwrap();
    bot.kill();
    AppRun {
        cpu_cores,
        painted_p50: percentile(&mut delays, 0.5),
        painted_p95: percentile(&mut delays, 0.95),
        painted_fps: (painted_after - painted_before) / elapsed,
        renderer,
    }
}

/// The same call between two kith-cli: glass-to-glass at decode.
fn cli_call() -> (f64, f64) {
    let scratch = Scratch::new("bench-app-cli");
    let server = Server::start(&[]);
    let seconds = (WARM_UP + WINDOW).as_secs_f64();
    let mut processes: Vec<Process> = ["alice", "bob"]
        .iter()
        .map(|user| {
            Args::new(&["join", "bench"])
                .media(&codec(), 1280, 720, 30)
                .opt("--duration", seconds)
                .flag("--ice-loopback")
                .path("--report", &scratch.path(&format!("{user}.json")))
                .spawn(&server.url(), user)
        })
        .collect();
    for process in &mut processes {
        process.wait(PATIENCE * 2);
    }
    let report = report(&scratch.path("alice.json"));
    let g2g = &report["peers"][0]["glass_to_glass_ms"];
    (
        g2g["p50"].as_f64().unwrap_or(f64::NAN),
        g2g["p95"].as_f64().unwrap_or(f64::NAN),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let app = app_call().await;
    let (cli_p50, cli_p95) = tokio::task::spawn_blocking(cli_call).await.unwrap();
    println!();
    println!(
        "| 1:1 720p30 {}, {} s window | app (window, {}) | kith-cli | app − kith-cli |",
        codec(),
        WINDOW.as_secs(),
        app.renderer
    );
    println!("|---|---|---|---|");
    println!(
        "| glass-to-glass p50 ms (app: capture → painted; kith-cli: capture → decoded) | {:.1} | {:.1} | {:+.1} |",
        app.painted_p50,
        cli_p50,
        app.painted_p50 - cli_p50
    );
    println!(
        "| glass-to-glass p95 ms | {:.1} | {:.1} | {:+.1} |",
        app.painted_p95,
        cli_p95,
        app.painted_p95 - cli_p95
    );
    println!("| frames painted per second | {:.1} | | |", app.painted_fps);
    println!(
        "| CPU cores of the app (its process + WebKit's) | {:.2} | | |",
        app.cpu_cores
    );
}
