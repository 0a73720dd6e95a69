//! The `signaling-dev` binary as a user runs it: its ready line, its signals,
//! and its behaviour under a flood of garbage.
#![allow(clippy::unwrap_used)]

#[path = "support/client.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Running {
    child: Child,
    ready: Value,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signaling-dev"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).expect("the first stdout line is JSON");
    Running {
        child,
        ready,
        stdout,
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn prints_one_ready_line_and_stops_cleanly_on_sigterm() {
    let mut server = spawn_server(&[]);
    let listening = server.ready["listening"].as_str().unwrap().to_owned();
    assert!(listening.starts_with("127.0.0.1:"));
    assert_ne!(listening, "127.0.0.1:0");
    assert_eq!(server.ready["ws"], format!("ws://{listening}/ws"));
    assert_eq!(server.ready.as_object().unwrap().len(), 2);

    let ws = server.ready["ws"].as_str().unwrap().to_owned();
    let mut client = Client::hello(&ws, "alice").await;
    signal(server.child.id(), "TERM");
    assert_eq!(client.expect_close().await, Closed::Code(1001));
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut server.stdout, &mut rest).unwrap();
        (status, rest)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    assert_eq!(status.1, "", "nothing but the ready line on stdout");
}

#[tokio::test]
async fn sigint_stops_it_too() {
    let mut server = spawn_server(&[]);
    signal(server.child.id(), "INT");
    let status = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_signaling-dev"))
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

const FLOODERS: usize = 4;
const FRAMES_PER_FLOODER: usize = 25_000;
const OVERSIZED_EVERY: usize = 5_000;

/// One frame of garbage: malformed JSON, wrong fields, unknown types, binary
/// or random text.
fn garbage(rng: &mut impl Rng, i: usize) -> Message {
    match i % 6 {
        0 => Message::Text("{\"type\":\"join\",".into()),
        1 => Message::Text(
            json!({"type":"offer","room":"x","to":"nobody","sdp":""})
                .to_string()
                .into(),
        ),
        2 => Message::Text(
            json!({"type":format!("t{i}"),"id":i.to_string()})
                .to_string()
                .into(),
        ),
        3 => Message::Binary(
            (0..rng.random_range(0..64))
                .map(|_| rng.random())
                .collect::<Vec<u8>>()
                .into(),
        ),
        4 => {
            const ALPHABET: &[char] = &[
                '{', '}', '[', ']', '"', ':', ',', 'a', '0', 'é', '😀', ' ', '\\', 'n',
            ];
            let text: String = (0..rng.random_range(0..120))
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect();
            Message::Text(text.into())
        }
        _ => Message::Text(
            json!({"type":"candidate","room":"r","to":"s","candidate":42})
                .to_string()
                .into(),
        ),
    }
}

/// Sends its share of garbage, reconnecting after each oversized frame;
/// returns how many error replies it read and how many frames it sent.
async fn flood(url: String, flooder: usize) -> (usize, usize) {
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut sent = 0;
    let mut answered = 0;
    let mut expected = 0;
    while sent < FRAMES_PER_FLOODER {
        let client = Client::hello(&url, &format!("flooder{flooder}")).await;
        let (mut sink, mut stream) = client.ws.split();
        let reader = tokio::spawn(async move {
            let mut errors = 0;
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(text) = frame {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap();
                    if value["type"] == "error" && value["code"] != "too_large" {
                        errors += 1;
                    }
                }
            }
            errors
        });
        let batch_end = (sent + OVERSIZED_EVERY).min(FRAMES_PER_FLOODER);
        let mut in_batch = 0;
        while sent < batch_end {
            sink.send(garbage(&mut rng, sent)).await.unwrap();
            sent += 1;
            in_batch += 1;
        }
        // Then one frame over the limit, which ends this connection.
        let oversized = "x".repeat(70 * 1024);
        let _ = sink.send(Message::Text(oversized.into())).await;
        sent += 1;
        answered += tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("the server closes the connection after an oversized frame")
            .unwrap();
        expected += in_batch;
    }
    assert_eq!(
        answered, expected,
        "flooder {flooder}: every bad frame answered"
    );
    (answered, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_leaves_the_server_up_bounded_and_relaying() {
    // Rate limiting off, so every frame reaches the parser.
    let server = spawn_server(&["--rate-limit", "1000000000", "--rate-burst", "1000000000"]);
    let url = server.ready["ws"].as_str().unwrap().to_owned();
    let pid = server.child.id();

    let mut alice = Client::hello(&url, "alice").await;
    let mut bob = Client::hello(&url, "bob").await;
    alice.recv_type("presence").await;
    alice.join("calm").await;
    bob.join("calm").await;
    alice.recv_type("peer_joined").await;
    let rss_before = rss_kib(pid);

    let flooders: Vec<_> = (0..FLOODERS)
        .map(|i| tokio::spawn(flood(url.clone(), i)))
        .collect();

    // Meanwhile the calm pair keeps relaying, and checks every message.
    let mut peak_rss = rss_before;
    let mut rounds = 0;
    while !flooders.iter().all(|f| f.is_finished()) || rounds < 50 {
        let sdp = format!("v=0\r\no=- {rounds} 0 IN IP4 127.0.0.1\r\n");
        bob.send(json!({"type":"offer","room":"calm","to":alice.session,"sdp":sdp}))
            .await;
        let offer = loop {
            let message = alice.recv().await;
            if message["type"] != "presence" {
                break message;
            }
        };
        assert_eq!(offer["sdp"], sdp.as_str());
        assert_eq!(offer["from"], bob.session.as_str());
        alice
            .send(json!({"type":"answer","room":"calm","to":bob.session,"sdp":sdp}))
            .await;
        let answer = loop {
            let message = bob.recv().await;
            if message["type"] != "presence" {
                break message;
            }
        };
        assert_eq!(answer["sdp"], sdp.as_str());
        rounds += 1;
        peak_rss = peak_rss.max(rss_kib(pid));
    }
    let mut frames = 0;
    let mut answered = 0;
    for flooder in flooders {
        let (a, s) = flooder.await.unwrap();
        answered += a;
        frames += s;
    }
    assert!(frames >= 100_000, "sent {frames}");
    assert!(answered >= 99_000);

    let (status, body) = http_get(
        server.ready["listening"].as_str().unwrap().parse().unwrap(),
        "/healthz",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let rss_after = rss_kib(pid);
    eprintln!(
        "flood: {frames} frames, {answered} errors answered, {rounds} calm rounds, \
         RSS before {rss_before} KiB, peak {peak_rss} KiB, after {rss_after} KiB"
    );
    // Garbage must not accumulate: what a flood leaves behind is bounded.
    assert!(
        peak_rss < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {peak_rss} KiB"
    );
}
