//! `cargo xtask bench call`: real calls between kith-cli processes at
//! 720p30 on this machine, one per codec, and a 3-peer mesh. Prints a table.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use kith_e2e::*;
use serde_json::Value;

const SECONDS: f64 = 20.0;

struct Row {
    name: String,
    peers: Vec<Value>,
    cpu_seconds: f64,
    wall_seconds: f64,
}

fn run(name: &str, codec: &str, users: &[&str]) -> Row {
    let scratch = Scratch::new(&format!("bench-{}", name.replace(' ', "-")));
    let server = Server::start(&[]);
    let mut processes = Vec::new();
    let started = std::time::Instant::now();
    for user in users {
        let mut process = Args::new(&["join", "bench"])
            .media(codec, 1280, 720, 30)
            .opt("--bitrate", 2500)
            .opt("--duration", SECONDS)
            .flag("--ice-loopback")
            .opt("--expect-peers", users.len() - 1)
            .path("--report", &scratch.path(&format!("{user}.json")))
            .spawn(&server.url(), user);
        process.wait_for_line("joined", PATIENCE);
        processes.push(process);
    }
    for process in &mut processes {
        let status = process.wait(PATIENCE * 2);
        if !status.success() {
            eprintln!("{} exited with {status}", process.name);
        }
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut peers = Vec::new();
    let mut cpu_seconds = 0.0;
    for user in users {
        let report = report(&scratch.path(&format!("{user}.json")));
        cpu_seconds += report["cpu_seconds"].as_f64().unwrap_or(0.0);
        peers.extend(report["peers"].as_array().unwrap().iter().cloned());
    }
    Row {
        name: name.to_owned(),
        peers,
        cpu_seconds,
        wall_seconds,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn main() {
    // Cargo passes `--bench`; nothing to filter.
    let rows = vec![
        run("1:1 AV1", "AV1", &["alice", "bob"]),
        run("1:1 VP9", "VP9", &["alice", "bob"]),
        run("1:1 VP8", "VP8", &["alice", "bob"]),
        run("1:1 H264", "H264", &["alice", "bob"]),
        run("3-peer mesh AV1", "AV1", &["alice", "bob", "carol"]),
    ];
    println!();
    println!(
        "| call (720p30, {SECONDS} s, loopback) | connect ms | first frame ms | glass-to-glass p50 / p95 ms | fps | freezes | CPU cores (all peers) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let get = |key: &str| mean(row.peers.iter().filter_map(|p| p[key].as_f64()));
        let p50 = mean(
            row.peers
                .iter()
                .filter_map(|p| p["glass_to_glass_ms"]["p50"].as_f64()),
        );
        let p95 = mean(
            row.peers
                .iter()
                .filter_map(|p| p["glass_to_glass_ms"]["p95"].as_f64()),
        );
        let freezes: f64 = row.peers.iter().filter_map(|p| p["freezes"].as_f64()).sum();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.1} | {:.0} | {:.2} |",
            row.name,
            get("connect_ms"),
            get("first_frame_ms"),
            p50,
            p95,
            get("fps"),
            freezes,
            row.cpu_seconds / row.wall_seconds,
        );
    }
}
