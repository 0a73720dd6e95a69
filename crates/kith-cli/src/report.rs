//! The `--report` file: one JSON object written at exit.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kith_call::{CallEvent, CallSummary, ChatCounts, PeerSummary};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Report<'a> {
    peers: &'a [PeerSummary],
    chat: ChatCounts,
    /// From sending a chat message to its last ack, over the acked ones.
    chat_ack_ms: Option<AckSummary>,
    /// CPU time this process used (user + system), all threads.
    cpu_seconds: Option<f64>,
    /// Peer connections still in memory after the call ended: any is a leak.
    peer_connections_alive: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AckSummary {
    pub p50: u64,
    pub max: u64,
}

/// Times from our chat messages to their acks, read off the call's events.
#[derive(Debug, Default)]
pub struct AckTimes {
    waiting: HashMap<String, Instant>,
    acked_ms: Vec<u64>,
}

/// Messages timed at once; the engine stops re-sending past its own bound.
const TIMED_LIMIT: usize = kith_call::UNACKED_CHAT_LIMIT;

impl AckTimes {
    pub fn event(&mut self, event: &CallEvent, now: Instant) {
        match event {
            CallEvent::ChatSent { message } if self.waiting.len() < TIMED_LIMIT => {
                self.waiting.insert(message.id.clone(), now);
            }
            CallEvent::ChatAcked { id } => {
                if let Some(sent) = self.waiting.remove(id) {
                    self.acked_ms
                        .push(now.duration_since(sent).as_millis() as u64);
                }
            }
            _ => {}
        }
    }

    pub fn summary(&self) -> Option<AckSummary> {
        let mut sorted = self.acked_ms.clone();
        sorted.sort_unstable();
        Some(AckSummary {
            p50: *sorted.get(sorted.len() / 2)?,
            max: *sorted.last()?,
        })
    }
}

pub async fn write(path: &Path, summary: &CallSummary, acks: &AckTimes) -> anyhow::Result<()> {
    let report = Report {
        peers: &summary.peers,
        chat: summary.chat,
        chat_ack_ms: acks.summary(),
        cpu_seconds: cpu_seconds(),
        peer_connections_alive: connections_left_after_close().await,
    };
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// webrtc-rs frees a closed connection on its own tasks, a moment after the
/// close: give it that moment before counting what is left.
async fn connections_left_after_close() -> usize {
    const PATIENCE: Duration = Duration::from_secs(2);
    let deadline = Instant::now() + PATIENCE;
    while kith_call::peer_connections_alive() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kith_call::peer_connections_alive()
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
    use super::*;

    fn sent(id: &str) -> CallEvent {
        CallEvent::ChatSent {
            message: kith_call::ChatMessage {
                id: id.into(),
                from: kith_proto::UserId::new("alice").expect("a valid user"),
                ts: 0,
                text: "hi".into(),
            },
        }
    }

    #[test]
    fn ack_times_run_from_send_to_ack_and_ignore_unknown_acks() {
        let start = Instant::now();
        let mut acks = AckTimes::default();
        assert_eq!(acks.summary(), None);
        for id in ["a", "b", "c"] {
            acks.event(&sent(id), start);
        }
        let ms = Duration::from_millis;
        acks.event(&CallEvent::ChatAcked { id: "a".into() }, start + ms(100));
        acks.event(&CallEvent::ChatAcked { id: "c".into() }, start + ms(3000));
        acks.event(&CallEvent::ChatAcked { id: "zz".into() }, start + ms(9000));
        acks.event(&CallEvent::ChatAcked { id: "b".into() }, start + ms(200));
        assert_eq!(
            acks.summary(),
            Some(AckSummary {
                p50: 200,
                max: 3000
            })
        );
    }

    #[test]
    fn cpu_time_is_read() {
        let spent = cpu_seconds().expect("/proc/self/stat is readable on Linux");
        assert!(spent >= 0.0);
    }
}
