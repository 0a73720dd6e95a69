//! Group calls: a 4-peer mesh where everyone decodes everyone, and a peer
//! killed with SIGKILL leaving the others' call healthy.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kith_e2e::*;

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn join(url: &str, scratch: &Scratch, user: &str, duration: &str, expect: &str) -> Process {
    Args::new(&["join", "standup"])
        .media("VP8", 320, 180, 10)
        .opt("--bitrate", 250)
        .opt("--duration", duration)
        .flag("--ice-loopback")
        .opt("--expect-peers", expect)
        .path("--report", &scratch.path(&format!("{user}.json")))
        .path("--stats-json", &scratch.path(&format!("{user}.stats")))
        .spawn(url, user)
}

#[test]
fn four_peers_each_decode_every_other() {
    let scratch = Scratch::new("mesh4");
    let server = Server::start(&[]);
    let mut peers: Vec<Process> = Vec::new();
    for user in USERS {
        let mut process = join(&server.url(), &scratch, user, "15", "3");
        process.wait_for_line("joined", PATIENCE);
        peers.push(process);
    }
    for process in &mut peers {
        process.expect_exit(0, PATIENCE * 2);
    }
    for user in USERS {
        let report = report(&scratch.path(&format!("{user}.json")));
        for other in USERS.iter().filter(|o| **o != user) {
            let peer = peer(&report, other);
            assert!(
                peer["frames_decoded"].as_u64().unwrap() > 10,
                "{user} from {other}: {report:#}"
            );
            assert!(
                peer["audio_packets_received"].as_u64().unwrap() > 100,
                "{user} from {other}: {report:#}"
            );
        }
    }
}

/// Decoded-frame counts of `from` in each stats snapshot of a stats file.
fn frames_from(stats: &std::path::Path, from: &str) -> Vec<u64> {
    std::fs::read_to_string(stats)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|snapshot| {
            snapshot["peers"]
                .as_array()?
                .iter()
                .find(|p| p["user"] == from)
                .and_then(|p| p["frames_decoded"].as_u64())
        })
        .collect()
}

#[test]
fn a_peer_killed_with_sigkill_leaves_the_others_call_healthy() {
    let scratch = Scratch::new("kill");
    let server = Server::start(&[]);
    let mut alice = join(&server.url(), &scratch, "alice", "20", "2");
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = join(&server.url(), &scratch, "bob", "20", "2");
    bob.wait_for_line("joined", PATIENCE);
    let mut carol = join(&server.url(), &scratch, "carol", "60", "2");
    carol.wait_for_line("joined", PATIENCE);
    // Everyone sees everyone's video before the crash.
    for process in [&mut alice, &mut bob] {
        process.wait_for_line("\"user\":\"carol\",\"kind\":\"video\"", PATIENCE);
    }
    std::thread::sleep(Duration::from_secs(2));
    carol.sigkill();
    // The survivors notice: the server says carol left, her connection goes.
    alice.wait_for_line("\"event\":\"peer_left\",\"session\"", PATIENCE);
    alice.expect_exit(0, PATIENCE);
    bob.expect_exit(0, PATIENCE);
    let left: Vec<_> = alice.events("peer_left");
    assert!(left.iter().any(|e| e["user"] == "carol"), "{left:?}");
    // Alice kept decoding bob after the crash, to the end of her call.
    let frames = frames_from(&scratch.path("alice.stats"), "bob");
    assert!(frames.len() >= 15, "{frames:?}");
    // The last snapshots may fall after bob hung up; look at the ones before.
    let tail = &frames[frames.len() - 8..frames.len() - 2];
    assert!(
        tail.windows(2).all(|w| w[1] > w[0]),
        "bob's video stalled at alice after carol died: {frames:?}"
    );
}
