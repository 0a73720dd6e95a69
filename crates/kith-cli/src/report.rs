//! The `--report` file: one JSON object written at exit.

use std::path::Path;

use anyhow::Context;
use kith_call::{CallSummary, ChatCounts, PeerSummary};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Report<'a> {
    peers: &'a [PeerSummary],
    chat: ChatCounts,
    /// CPU time this process used (user + system), all threads.
    cpu_seconds: Option<f64>,
}

pub fn write(path: &Path, summary: &CallSummary) -> anyhow::Result<()> {
    let report = Report {
        peers: &summary.peers,
        chat: summary.chat,
        cpu_seconds: cpu_seconds(),
    };
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// User + system CPU time of this process from /proc (Linux). Written by
/// hand: the one number is not worth a process-info crate.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI that Kith builds for.
    Some(ticks as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_is_read() {
        let spent = super::cpu_seconds().expect("/proc/self/stat is readable on Linux");
        assert!(spent >= 0.0);
    }
}
