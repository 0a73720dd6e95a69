//! Chat and media across a signaling-server restart, and relay-only calls
//! through a real coturn with the server's TURN REST credentials.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kith_e2e::*;

#[test]
fn chat_and_media_survive_a_signaling_server_restart() {
    let scratch = Scratch::new("restart");
    let port = free_port();
    let mut server = Server::start_on(port, &[]);
    let url = server.url();
    let join = |user: &str| {
        Args::new(&["join", "r1"])
            .media("VP8", 320, 180, 15)
            .opt("--duration", 24)
            .flag("--ice-loopback")
            .opt("--chat", 200)
            .opt("--chat-interval-ms", 50)
            .path("--report", &scratch.path(&format!("{user}.json")))
            .path("--stats-json", &scratch.path(&format!("{user}.stats")))
            .spawn(&url, user)
    };
    let mut alice = join("alice");
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = join("bob");
    bob.wait_for_line("chat_received", PATIENCE);
    // Mid-chat (200 messages take 10 s), the server goes away and comes back.
    std::thread::sleep(Duration::from_secs(2));
    server.process.kill();
    std::thread::sleep(Duration::from_secs(2));
    let _server = Server::start_on(port, &[]);
    alice.expect_exit(0, PATIENCE);
    bob.expect_exit(0, PATIENCE);
    for (process, me, other) in [(&alice, "alice", "bob"), (&bob, "bob", "alice")] {
        // Both noticed, came back, and found the same connection again.
        assert!(
            !process.events("signaling_lost").is_empty(),
            "{me} never lost the server"
        );
        assert!(
            process.events("signaling_connected").len() >= 2,
            "{me} did not reconnect"
        );
        let report = report(&scratch.path(&format!("{me}.json")));
        let chat = &report["chat"];
        assert_eq!(chat["sent"], 200, "{report:#}");
        assert_eq!(chat["acked"], 200, "{report:#}");
        assert_eq!(chat["received"], 200, "{report:#}");
        // One connection for the whole call: it was rebound, not rebuilt.
        assert_eq!(report["peers"].as_array().unwrap().len(), 1, "{report:#}");
        // Media never stopped: decoded frames grew in every second of the call.
        let frames = frames_over_time(&scratch.path(&format!("{me}.stats")), other);
        assert!(frames.len() >= 18, "{me}: {frames:?}");
        let steady = &frames[2..frames.len() - 1];
        assert!(
            steady.windows(2).all(|w| w[1] > w[0]),
            "{me}'s video from {other} stalled: {frames:?}"
        );
    }
}

#[test]
fn relay_only_calls_go_through_coturn() {
    let scratch = Scratch::new("turn");
    let secret = "kith-e2e-secret";
    let coturn = Coturn::start(secret);
    let server = Server::start(&[
        "--turn".to_owned(),
        format!("turn:127.0.0.1:{}?transport=udp", coturn.port),
        "--turn-secret".to_owned(),
        secret.to_owned(),
    ]);
    let join = |user: &str| {
        Args::new(&["join", "r1"])
            .media("VP8", 320, 180, 10)
            .opt("--duration", 10)
            .flag("--relay-only")
            .path("--report", &scratch.path(&format!("{user}.json")))
            .spawn(&server.url(), user)
    };
    let mut alice = join("alice");
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = join("bob");
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    for (me, other) in [("alice", "bob"), ("bob", "alice")] {
        let report = report(&scratch.path(&format!("{me}.json")));
        let peer = peer(&report, other);
        assert_eq!(peer["candidate_type"], "relay", "{report:#}");
        assert!(peer["frames_decoded"].as_u64().unwrap() > 20, "{report:#}");
    }
}
