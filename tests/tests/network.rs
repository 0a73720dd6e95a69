//! Calls across a real (namespaced) network: two hosts with no default
//! route (an isolated LAN, an office without internet, an offline laptop),
//! then the same link losing packets at random as Wi-Fi does.
#![allow(clippy::unwrap_used)]

use kith_e2e::*;

/// Alice on host a (with the server), bob on host b, `secs` in the call.
fn call(lan: &Lan, scratch: &Scratch, secs: u32) -> (serde_json::Value, serde_json::Value) {
    call_at(lan, scratch, secs, (320, 180, 15), || {})
}

/// `connected` runs once bob's connection to alice is up.
fn call_at(
    lan: &Lan,
    scratch: &Scratch,
    secs: u32,
    (width, height, fps): (u32, u32, u32),
    connected: impl FnOnce(),
) -> (serde_json::Value, serde_json::Value) {
    let _server = lan.server();
    let args = |user: &str| {
        Args::new(&["join", "r1"])
            .media("VP8", width, height, fps)
            .opt("--duration", secs)
            .opt("--chat", 20)
            .opt("--chat-interval-ms", 200)
            .path("--report", &scratch.path(&format!("{user}.json")))
    };
    let mut alice = lan.kith_cli(&lan.a, "alice", &args("alice"));
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = lan.kith_cli(&lan.b, "bob", &args("bob"));
    bob.wait_for_line("peer_connected", PATIENCE);
    connected();
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    (
        report(&scratch.path("alice.json")),
        report(&scratch.path("bob.json")),
    )
}

#[test]
fn a_call_works_between_hosts_with_no_default_route() {
    let lan = Lan::up();
    let scratch = Scratch::new("isolated-lan");
    let (alice, bob) = call(&lan, &scratch, 8);
    for (me, report, other) in [("alice", &alice, "bob"), ("bob", &bob, "alice")] {
        let peer = peer(report, other);
        assert!(
            peer["frames_decoded"].as_u64().unwrap() > 20,
            "{me}: {report:#}"
        );
        assert!(
            peer["audio_packets_received"].as_u64().unwrap() > 20,
            "{me}: {report:#}"
        );
    }
}

/// 5 % of UDP lost each way, from the moment the call is up. Before
/// retransmissions had their own SSRC and the estimate reached the encoder,
/// a call delivered 0–3 frames in 40 s at this loss; now it keeps ~30 fps
/// (at 15 fps here: most frames). (Setting a call up under loss is a
/// different matter: at 10 % one attempt in three did not connect here.)
#[test]
fn a_call_stays_up_at_five_percent_random_loss() {
    let lan = Lan::up();
    let scratch = Scratch::new("lossy-lan");
    let (alice, bob) = call_at(&lan, &scratch, 15, (320, 180, 15), || lan.lose_udp(5));
    for (me, report, other) in [("alice", &alice, "bob"), ("bob", &bob, "alice")] {
        let peer = peer(report, other);
        // 15 fps for ~14 s is ~210 frames; a call that collapses decodes
        // a handful. Audio flows at ~20 packets a second with the beeps.
        assert!(
            peer["frames_decoded"].as_u64().unwrap() > 60,
            "{me}: {report:#}"
        );
        assert!(
            peer["audio_packets_received"].as_u64().unwrap() > 100,
            "{me}: {report:#}"
        );
        assert_eq!(report["chat"]["received"], 20, "{me}: {report:#}");
        assert_eq!(report["chat"]["acked"], 20, "{me}: {report:#}");
    }
}

/// A 500 kbit/s link from the start: the call must fit itself into it
/// rather than flood it (it used to start at 2.5 Mbit/s and decode nothing
/// in 40 s).
#[test]
fn a_call_starts_on_a_500_kbit_link_and_fits_into_it() {
    let lan = Lan::up();
    lan.cap_rate(500);
    let scratch = Scratch::new("slow-lan");
    let (alice, bob) = call_at(&lan, &scratch, 20, (640, 360, 15), || {});
    for (me, report, other) in [("alice", &alice, "bob"), ("bob", &bob, "alice")] {
        let peer = peer(report, other);
        // ~280 frames in 19 s at 15 fps.
        assert!(
            peer["frames_decoded"].as_u64().unwrap() > 80,
            "{me}: {report:#}"
        );
        assert!(
            peer["audio_packets_received"].as_u64().unwrap() > 150,
            "{me}: {report:#}"
        );
        assert_eq!(report["chat"]["acked"], 20, "{me}: {report:#}");
    }
}

/// Every UDP packet between the hosts is dropped for 5 s (Wi-Fi out of
/// range, a NAT rebinding) while signaling (TCP) stays up: both sides show
/// the peer reconnecting, ICE is restarted, and the media resumes on the
/// same connection.
#[test]
fn a_call_recovers_from_a_five_second_path_cut() {
    let lan = Lan::up();
    let scratch = Scratch::new("cut-lan");
    let _server = lan.server();
    let args = |user: &str| {
        Args::new(&["join", "r1"])
            .media("VP8", 320, 180, 15)
            .opt("--duration", 22)
            .path("--report", &scratch.path(&format!("{user}.json")))
            .path("--stats-json", &scratch.path(&format!("{user}.stats")))
    };
    let mut alice = lan.kith_cli(&lan.a, "alice", &args("alice"));
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = lan.kith_cli(&lan.b, "bob", &args("bob"));
    bob.wait_for_line("peer_connected", PATIENCE);
    std::thread::sleep(std::time::Duration::from_secs(5));
    lan.cut_udp();
    std::thread::sleep(std::time::Duration::from_secs(5));
    lan.restore_udp();
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    for (me, process, other) in [("alice", &alice, "bob"), ("bob", &bob, "alice")] {
        assert!(
            !process.events("peer_reconnected").is_empty(),
            "{me} never saw {other} come back: {:?}",
            process.seen
        );
        // One connection for the whole call, and video after the cut: the
        // last stats seconds still decode frames.
        let report = report(&scratch.path(&format!("{me}.json")));
        assert_eq!(report["peers"].as_array().unwrap().len(), 1, "{report:#}");
        let frames = frames_over_time(&scratch.path(&format!("{me}.stats")), other);
        let tail = &frames[frames.len().saturating_sub(4)..];
        assert!(
            tail.windows(2).all(|w| w[1] > w[0]),
            "{me}'s video from {other} did not come back after the cut: {frames:?}"
        );
    }
}
