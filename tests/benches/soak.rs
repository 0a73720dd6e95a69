//! `cargo xtask bench soak`: what a long call and many short ones leave
//! behind in memory. Not a CI test: the call alone takes an hour.
//!
//! 1. **Joins and leaves:** one kith-cli stays in a room while 100 others
//!    join it one after another, each staying until media flowed both ways
//!    and then leaving. The staying process's resident memory, open files
//!    and threads are read from /proc along the way, and its report says how
//!    many peer connections are still in memory after it hung up (webrtc-rs
//!    0.21.0 kept every closed one: its issue 906).
//! 2. **A long call:** two kith-cli at 720p30 for an hour, their resident
//!    memory, open files and threads read every 10 s. Growth is measured
//!    from the first minute (encoders, jitter buffers and the allocator's
//!    arenas settle in it) to the end; the goal is under 5 %.
//!
//! `KITH_SOAK_CYCLES` (100), `KITH_SOAK_SECONDS` (3600) and
//! `KITH_SOAK_CODEC` (AV1) shorten or change a run.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use kith_e2e::*;
use serde_json::Value;

/// Settling time the long call's growth is measured from.
const BASELINE_AFTER: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A guest stays this long in the call: connected and media both ways
/// (first frames take under a second on loopback).
const GUEST_SECONDS: f64 = 2.5;
/// What the issue asks of an hour's call.
const GROWTH_GOAL_PERCENT: f64 = 5.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// What /proc says of one process at one moment.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    rss_kib: u64,
    open_files: usize,
    threads: u64,
}

impl Footprint {
    fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse::<u64>().ok())
        };
        let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        Some(Self {
            rss_kib: field("VmRSS:")?,
            open_files,
            threads: field("Threads:")?,
        })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn joins_and_leaves(cycles: u32, codec: &str) {
    println!("\n## Joins and leaves: {cycles} guests, one after another, {codec} 640x360");
    let scratch = Scratch::new("bench-soak-cycles");
    let server = Server::start(&[]);
    let mut host = Args::new(&["join", "soak"])
        .media(codec, 640, 360, 30)
        .flag("--ice-loopback")
        .opt("--expect-peers", 1)
        .path("--report", &scratch.path("host.json"))
        .spawn(&server.url(), "host");
    host.wait_for_line("joined", PATIENCE);
    let mut samples: Vec<(u32, Footprint)> = Vec::new();
    if let Some(footprint) = Footprint::of(host.pid()) {
        samples.push((0, footprint));
    }
    let mut guests_failed = 0;
    let started = Instant::now();
    for cycle in 1..=cycles {
        let mut guest = Args::new(&["join", "soak"])
            .media(codec, 640, 360, 30)
            .flag("--ice-loopback")
            .opt("--expect-peers", 1)
            .opt("--duration", GUEST_SECONDS)
            .spawn(&server.url(), &format!("guest{cycle}"));
        if !guest.wait(PATIENCE).success() {
            guests_failed += 1;
            eprintln!("guest {cycle} did not get a working call");
        }
        if [1, 10, 25, 50, 75, 100].contains(&cycle) || cycle == cycles {
            // Let the host see the leave and close the connection.
            std::thread::sleep(Duration::from_secs(1));
            if let Some(footprint) = Footprint::of(host.pid()) {
                samples.push((cycle, footprint));
            }
        }
    }
    let cycling = started.elapsed();
    host.interrupt();
    let status = host.wait(PATIENCE);
    let report = report(&scratch.path("host.json"));
    let alive = report["peer_connections_alive"].as_u64();
    let peers_seen = report["peers"].as_array().map_or(0, Vec::len);

    println!("| after guest | RSS MiB | open files | threads |");
    println!("|---|---|---|---|");
    for (cycle, footprint) in &samples {
        println!(
            "| {cycle} | {:.1} | {} | {} |",
            mib(footprint.rss_kib),
            footprint.open_files,
            footprint.threads
        );
    }
    // Growth per guest past the first ten, which fill caches and arenas.
    let settled = samples.iter().find(|(cycle, _)| *cycle >= 10.min(cycles));
    if let (Some((from_cycle, from)), Some((to_cycle, to))) = (settled, samples.last())
        && to_cycle > from_cycle
    {
        let guests = f64::from(to_cycle - from_cycle);
        println!(
            "\nper guest after the {from_cycle}th: RSS {:+.1} KiB, open files {:+.2}, threads {:+.2}",
            (to.rss_kib as f64 - from.rss_kib as f64) / guests,
            (to.open_files as f64 - from.open_files as f64) / guests,
            (to.threads as f64 - from.threads as f64) / guests,
        );
    }
    println!(
        "guests: {cycles} in {:.0} s, {guests_failed} without a working call; the host saw {peers_seen} peers and exited with {status}",
        cycling.as_secs_f64()
    );
    match alive {
        Some(alive) => println!(
            "peer connections still in memory after the host hung up: {alive} (of {peers_seen} made): {}",
            if alive == 0 { "no leak" } else { "LEAK" }
        ),
        None => println!("the host's report has no peer_connections_alive"),
    }
}

fn long_call(seconds: u64, codec: &str) {
    println!(
        "\n## A long call: two kith-cli, {codec} 1280x720 30 fps, {seconds} s; RSS read every {} s",
        SAMPLE_EVERY.as_secs()
    );
    let scratch = Scratch::new("bench-soak-call");
    let server = Server::start(&[]);
    let users = ["alice", "bob"];
    let mut processes: Vec<Process> = users
        .iter()
        .map(|user| {
            let mut process = Args::new(&["join", "soak-call"])
                .media(codec, 1280, 720, 30)
                .flag("--ice-loopback")
                .opt("--bitrate", 2500)
                .opt("--expect-peers", 1)
                .opt("--duration", seconds)
                .path("--report", &scratch.path(&format!("{user}.json")))
                .spawn(&server.url(), user);
            process.wait_for_line("joined", PATIENCE);
            process
        })
        .collect();
    let pids: Vec<u32> = processes.iter().map(Process::pid).collect();
    let started = Instant::now();
    let mut series: Vec<Vec<(Duration, Footprint)>> = vec![Vec::new(); users.len()];
    // The last sample a little before the processes leave, not while.
    let last_sample_by = Duration::from_secs(seconds).saturating_sub(Duration::from_secs(5));
    while started.elapsed() + SAMPLE_EVERY <= last_sample_by {
        std::thread::sleep(SAMPLE_EVERY);
        let at = started.elapsed();
        for (samples, pid) in series.iter_mut().zip(&pids) {
            if let Some(footprint) = Footprint::of(*pid) {
                samples.push((at, footprint));
            }
        }
    }
    for process in &mut processes {
        let status = process.wait(PATIENCE * 2);
        if !status.success() {
            eprintln!("{} exited with {status}", process.name);
        }
    }

    println!(
        "| user | RSS MiB at {} s | at end | highest | growth | goal < {GROWTH_GOAL_PERCENT} % | open files at {} s / end | threads at {} s / end | fps received | freeze s |",
        BASELINE_AFTER.as_secs(),
        BASELINE_AFTER.as_secs(),
        BASELINE_AFTER.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (user, samples) in users.iter().zip(&series) {
        let baseline = samples
            .iter()
            .find(|(at, _)| *at >= BASELINE_AFTER)
            .or(samples.first());
        let (Some((_, baseline)), Some((_, end))) = (baseline, samples.last()) else {
            println!("| {user} | no samples |");
            continue;
        };
        let highest = samples.iter().map(|(_, f)| f.rss_kib).max().unwrap_or(0);
        let growth = (end.rss_kib as f64 / baseline.rss_kib as f64 - 1.0) * 100.0;
        let report = report(&scratch.path(&format!("{user}.json")));
        let peer: &Value = &report["peers"][0];
        println!(
            "| {user} | {:.1} | {:.1} | {:.1} | {growth:+.1} % | {} | {} / {} | {} / {} | {:.1} | {:.1} |",
            mib(baseline.rss_kib),
            mib(end.rss_kib),
            mib(highest),
            if growth < GROWTH_GOAL_PERCENT {
                "met"
            } else {
                "NOT met"
            },
            baseline.open_files,
            end.open_files,
            baseline.threads,
            end.threads,
            peer["fps"].as_f64().unwrap_or(f64::NAN),
            peer["freeze_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        );
    }
    // The whole curve, a line per tenth of the call, to tell a slow climb
    // from a step.
    println!("\nRSS MiB over the call (alice / bob):");
    let tenth = (series[0].len() / 10).max(1);
    for (index, (at, alice)) in series[0].iter().enumerate() {
        if index % tenth == tenth - 1 || index + 1 == series[0].len() {
            let bob = series[1]
                .get(index)
                .map_or(f64::NAN, |(_, f)| mib(f.rss_kib));
            println!(
                "  {:>5} s  {:.1} / {bob:.1}",
                at.as_secs(),
                mib(alice.rss_kib)
            );
        }
    }
}

fn main() {
    let cycles: u32 = env_or("KITH_SOAK_CYCLES", 100);
    let seconds: u64 = env_or("KITH_SOAK_SECONDS", 3600);
    let codec: String = env_or("KITH_SOAK_CODEC", "AV1".to_owned());
    println!("# Soak: leaks over many joins and over a long call");
    if cycles > 0 {
        joins_and_leaves(cycles, &codec);
    }
    if seconds > 0 {
        long_call(seconds, &codec);
    }
}
