//! CPU used by one side of a call over a window, from /proc: in all and by
//! part (the job of a kith-cli thread, the type of a Chromium process), so
//! the bench says where the cycles go, not only how many.
//!
//! Threads a codec library starts inherit their creator's name (libvpx's,
//! dav1d's), so they count to the encode or decode part that started them;
//! libaom renames its workers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Cores used over a window, in all and by part.
#[derive(Debug, Default, Clone)]
pub struct CpuUse {
    pub cores: f64,
    pub parts: BTreeMap<&'static str, f64>,
}

impl CpuUse {
    pub fn part(&self, name: &str) -> f64 {
        self.parts.get(name).copied().unwrap_or(0.0)
    }
}

/// Which part a thread counts to, from its process's command line and its
/// own name.
pub type PartOf = fn(&str, &str) -> &'static str;

/// The parts of a kith-cli, by thread name.
pub const KITH_PARTS: [&str; 7] = [
    "encode",
    "decode",
    "network",
    "capture",
    "packetize",
    "audio",
    "other",
];

pub fn kith_part(_cmdline: &str, thread: &str) -> &'static str {
    match thread {
        // Scaling to the size the bandwidth allows, then encoding (libaom
        // names its worker threads itself).
        t if t.starts_with("encode-") || t.starts_with("aom ") => "encode",
        // Decoding, reading the latency strip, playout.
        t if t.starts_with("decode-") => "decode",
        // The async runtime: ICE, DTLS, SRTP, RTCP, pacing, NACK and TWCC,
        // RTP writers and readers, signaling.
        t if t.starts_with("tokio-") => "network",
        // The synthetic camera drawing frames (a real camera's conversion
        // runs on `kith-camera`).
        "video-source" | "kith-camera" => "capture",
        "video-packetize" => "packetize",
        t if t.starts_with("audio-") || t.starts_with("kith-audio") => "audio",
        _ => "other",
    }
}

/// The parts of Chromium, by process type.
pub const CHROMIUM_PARTS: [&str; 5] = ["renderer", "gpu", "utility", "browser", "other"];

pub fn chromium_part(cmdline: &str, _thread: &str) -> &'static str {
    let kind = cmdline
        .split(' ')
        .find_map(|arg| arg.strip_prefix("--type="));
    match kind {
        None => "browser",
        Some("renderer") => "renderer",
        Some("gpu-process") => "gpu",
        Some("utility") => "utility",
        Some(_) => "other",
    }
}

/// Clock ticks (utime + stime) of every thread of every process `matches`
/// picks, by (pid, tid), with the part each counts to.
fn thread_ticks(
    matches: &dyn Fn(&str) -> bool,
    part_of: PartOf,
) -> HashMap<(u32, u32), (&'static str, u64)> {
    let mut ticks = HashMap::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for process in processes.flatten() {
        let Some(pid) = number(&process.file_name()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !matches(&cmdline) {
            continue;
        }
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for thread in threads.flatten() {
            let Some(tid) = number(&thread.file_name()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
                continue;
            };
            if let Some((name, used)) = name_and_ticks(&stat) {
                ticks.insert((pid, tid), (part_of(&cmdline, name), used));
            }
        }
    }
    ticks
}

fn number(name: &std::ffi::OsStr) -> Option<u32> {
    name.to_str().and_then(|n| n.parse().ok())
}

/// A stat line's name (field 2, in parentheses, may hold spaces) and its
/// utime + stime (fields 14 and 15).
fn name_and_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((name, field(14)? + field(15)?))
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used by the processes `matches` picks over `window`, from now.
pub async fn over_window(
    window: Duration,
    matches: &dyn Fn(&str) -> bool,
    part_of: PartOf,
) -> CpuUse {
    let before = thread_ticks(matches, part_of);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = thread_ticks(matches, part_of);
    let seconds = started.elapsed().as_secs_f64();
    let per_tick = 1.0 / clock_ticks_per_second() / seconds;
    let mut used = CpuUse::default();
    for (key, (part, ticks)) in after {
        let earlier = before.get(&key).map_or(0, |(_, ticks)| *ticks);
        let cores = ticks.saturating_sub(earlier) as f64 * per_tick;
        *used.parts.entry(part).or_default() += cores;
        used.cores += cores;
    }
    used
}
