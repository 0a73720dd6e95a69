//! Calls across a real (namespaced) network: two hosts with no default
//! route (an isolated LAN, an office without internet, an offline laptop),
//! then the same link losing packets at random as Wi-Fi does, with a
//! delay, capped in rate, and cut.
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
            .path("--stats-json", &scratch.path(&format!("{user}.stats")))
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

/// 720p at 30 fps, as a call between laptops sends.
const HD: (u32, u32, u32) = (1280, 720, 30);
/// 50 ms each way: a path across a country, 100 ms round trip.
const FIFTY_MS: Delay = Delay {
    ms: 50,
    jitter_ms: 0,
};

/// One side's view of the other over a call: what the report and the
/// per-second stats say, printed so a run shows its figures.
struct Seen {
    me: &'static str,
    report: serde_json::Value,
    /// The other peer in each stats second.
    seconds: Vec<serde_json::Value>,
}

impl Seen {
    fn both(scratch: &Scratch, alice: serde_json::Value, bob: serde_json::Value) -> [Seen; 2] {
        let seen = |me: &'static str, report, other| Seen {
            me,
            report,
            seconds: stats_over_time(&scratch.path(&format!("{me}.stats")), other),
        };
        let both = [seen("alice", alice, "bob"), seen("bob", bob, "alice")];
        for side in &both {
            let peer = side.peer();
            eprintln!(
                "{}: {} frames, {:.1} fps, {} freezes {} ms (longest {} ms), g2g {}, \
                 {} audio packets, chat {}/{} received/acked (ack ms {}), last 5 s in {:.0} kbit/s, \
                 playout delay {:.0} ms (mean)",
                side.me,
                peer["frames_decoded"],
                peer["fps"].as_f64().unwrap_or(0.0),
                peer["freezes"],
                peer["freeze_ms"],
                peer["longest_freeze_ms"],
                peer["glass_to_glass_ms"],
                peer["audio_packets_received"],
                side.report["chat"]["received"],
                side.report["chat"]["acked"],
                side.report["chat_ack_ms"],
                mean(last(&side.per_second("bitrate_in_kbps"), 5)),
                mean(&side.per_second("playout_delay_ms")),
            );
        }
        both
    }

    fn other(&self) -> &'static str {
        if self.me == "alice" { "bob" } else { "alice" }
    }

    fn peer(&self) -> &serde_json::Value {
        peer(&self.report, self.other())
    }

    fn figure(&self, name: &str) -> u64 {
        self.peer()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no {name} in {:#}", self.me, self.report))
    }

    /// One stats figure of the other peer, second by second.
    fn per_second(&self, name: &str) -> Vec<f64> {
        self.seconds
            .iter()
            .map(|s| s[name].as_f64().unwrap_or(0.0))
            .collect()
    }

    /// Chat is reliable: every message arrives and is acked, whatever the loss.
    fn assert_chat_whole(&self) {
        assert_eq!(
            self.report["chat"]["received"], 20,
            "{}: {:#}",
            self.me, self.report
        );
        assert_eq!(
            self.report["chat"]["acked"], 20,
            "{}: {:#}",
            self.me, self.report
        );
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The last `n` of `values` (fewer if there are fewer).
fn last<T>(values: &[T], n: usize) -> &[T] {
    &values[values.len().saturating_sub(n)..]
}

/// Whether the video still advanced in each of the last 4 stats seconds.
fn still_moving<T: PartialOrd>(frames: &[T]) -> bool {
    let tail = last(frames, 4);
    tail.len() == 4 && tail.windows(2).all(|w| w[1] > w[0])
}

/// A 30 s 720p call over a link with 50 ms each way that loses `loss` % of
/// the UDP packets each host receives, from the moment the call is up.
fn lossy_call(loss: u32) -> [Seen; 2] {
    let lan = Lan::up_with_delay(FIFTY_MS);
    let scratch = Scratch::new(&format!("loss-{loss}"));
    let (alice, bob) = call_at(&lan, &scratch, 30, HD, || lan.lose_udp(loss));
    Seen::both(&scratch, alice, bob)
}

/// What every lossy call must keep: chat whole, audio flowing, video that
/// still moves at the end (not one that died after a few seconds).
fn assert_call_held(side: &Seen) {
    side.assert_chat_whole();
    // 30 fps for ~29 s is ~870 frames; a call that collapses decodes a
    // handful (0–3 in 40 s at 5 % before the loss fixes).
    assert!(
        side.figure("frames_decoded") > 150,
        "{}: {:#}",
        side.me,
        side.report
    );
    // Opus at ~20 packets a second over the beeps: ~600 in 29 s.
    assert!(
        side.figure("audio_packets_received") > 200,
        "{}: {:#}",
        side.me,
        side.report
    );
    // Losses were repaired both ways, and the stats say so (webrtc-rs's
    // own counts read 0 on one side of such a call).
    for figure in ["nacks_received", "retransmits_sent", "retransmits_received"] {
        let count = last(&side.per_second(figure), 1)
            .first()
            .copied()
            .unwrap_or(0.0);
        assert!(count > 0.0, "{}: {figure} is {count}", side.me);
    }
    let frames = side.per_second("frames_decoded");
    assert!(
        still_moving(&frames),
        "{}'s video stopped: {frames:?}",
        side.me
    );
    // The jitter buffer learnt that frames wait for repairs a round trip
    // (100 ms) long, and holds frames for them, within its bound.
    let playout = side.per_second("playout_delay_ms");
    let held = playout.iter().copied().fold(0.0, f64::max);
    assert!(
        held > 50.0 && held <= 400.0,
        "{}'s playout delay did not follow the repairs: {playout:?}",
        side.me
    );
}

#[test]
fn a_call_holds_at_five_percent_loss_with_fifty_ms_delay() {
    for side in lossy_call(5) {
        assert_call_held(&side);
        // Loss the rate does not cause must not bring the rate down:
        // Chromium keeps 2.1 Mbit/s here, Kith 2.1-2.8. An estimator that
        // read each lossy burst as congestion ended at 200 kbit/s, with
        // the video still moving.
        let received = side.per_second("bitrate_in_kbps");
        let held = mean(last(&received, 10));
        assert!(
            held > 1000.0,
            "{} received {held:.0} kbit/s over the last 10 s: {received:?}",
            side.me
        );
    }
}

#[test]
fn a_call_holds_at_ten_percent_loss_with_fifty_ms_delay() {
    for side in lossy_call(10) {
        assert_call_held(&side);
    }
}

#[test]
fn a_call_still_moves_at_twenty_percent_loss_with_fifty_ms_delay() {
    for side in lossy_call(20) {
        assert_call_held(&side);
    }
}

/// A 500 kbit/s cap appears 8 s into a 720p call and is lifted 12 s later
/// (a flatmate starts a download, then stops): each side's sending falls
/// under the cap, and what it receives comes back up after. The call runs
/// 20 s past the lift: the estimate climbs back at 8 %/s (no probing yet)
/// and the size one rung at a time, and an encoder that no longer
/// overshoots a size it cannot hold had reached only 1.4-1.6x the capped
/// rate 14 s after the lift.
#[test]
fn a_cap_appearing_mid_call_is_fitted_and_lifted() {
    let lan = Lan::up();
    let scratch = Scratch::new("cap-mid-call");
    let (alice, bob) = call_at(&lan, &scratch, 40, HD, || {
        std::thread::sleep(std::time::Duration::from_secs(8));
        lan.cap_rate(500);
        std::thread::sleep(std::time::Duration::from_secs(12));
        lan.uncap_rate();
    });
    for side in Seen::both(&scratch, alice, bob) {
        side.assert_chat_whole();
        let sent = side.per_second("bitrate_out_kbps");
        let received = side.per_second("bitrate_in_kbps");
        eprintln!(
            "{} sent {sent:.0?}\n{} received {received:.0?}",
            side.me, side.me
        );
        // Seconds from the first one the call is up in: the cap is on from
        // about +7 to +19 (a run may log a second or two before the
        // connection is up, and must not be judged from those).
        let up = side
            .seconds
            .iter()
            .position(|s| s["connected"] == true)
            .unwrap_or_else(|| panic!("{} never connected", side.me));
        let sent = &sent[up..];
        let received = &received[up..];
        assert!(received.len() >= 30, "{}: {received:?}", side.me);
        // Within 5 s of the cap appearing, what is sent onto the link falls
        // under it and stays about there (uncapped, this call sends
        // 1–2 Mbit/s, as the seconds before show).
        let fell_under = sent[8..13].iter().copied().fold(f64::MAX, f64::min);
        assert!(
            mean(&sent[2..7]) > 800.0 && fell_under < 500.0 && mean(&sent[13..18]) < 600.0,
            "{} did not fit its sending into the cap: {sent:.0?}",
            side.me
        );
        // The onset costs a freeze, not a stall: before the encoder followed
        // the estimate within 100 ms (it heard once a second) and resends
        // came out of its budget, the longest was 2.0-3.6 s; now 0.9-1.4 s.
        assert!(
            side.figure("longest_freeze_ms") <= 2500,
            "{}: {:#}",
            side.me,
            side.report
        );
        // Lifted: the video comes back up, well over what the cap let through.
        let capped_received = mean(&received[13..18]);
        let after = mean(last(received, 5));
        assert!(
            after > 1.5 * capped_received,
            "{}'s video did not come back up after the cap: {received:.0?}",
            side.me
        );
    }
}

/// A 500 kbit/s link from the start, a 720p call for 30 s: the call must
/// fit itself into it rather than flood it (it used to start at 2.5 Mbit/s
/// and decode nothing in 40 s), and use what fits rather than crawl.
#[test]
fn a_call_starts_on_a_500_kbit_link_and_fits_into_it() {
    let lan = Lan::up();
    lan.cap_rate(500);
    let scratch = Scratch::new("slow-lan");
    let (alice, bob) = call_at(&lan, &scratch, 30, HD, || {});
    for side in Seen::both(&scratch, alice, bob) {
        side.assert_chat_whole();
        // ~900 frames in 30 s at 30 fps; a flooded link decoded none.
        assert!(
            side.figure("frames_decoded") > 300,
            "{}: {:#}",
            side.me,
            side.report
        );
        assert!(
            side.figure("audio_packets_received") > 250,
            "{}: {:#}",
            side.me,
            side.report
        );
        let sent = side.per_second("bitrate_out_kbps");
        let received = side.per_second("bitrate_in_kbps");
        eprintln!(
            "{} sent {sent:.0?}\n{} received {received:.0?}",
            side.me, side.me
        );
        // Fitted: over the last 15 s what it sends averages about the cap
        // (the estimate still probes past it now and then: 640-910 kbit/s
        // seconds were seen; a call that floods sends 1.1-2.5 Mbit/s).
        // Ramped: what it receives is well over the floor the encoder
        // starts from under loss (150 kbit/s of video).
        assert!(
            mean(last(&sent, 15)) < 650.0,
            "{} does not fit into the link: {sent:.0?}",
            side.me
        );
        assert!(
            mean(last(&received, 15)) > 250.0,
            "{}'s video did not ramp up to what fits: {received:.0?}",
            side.me
        );
    }
}

/// Every UDP packet between the hosts is dropped for 5 s (Wi-Fi out of
/// range, a NAT rebinding) while signaling (TCP) stays up: both sides show
/// the peer reconnecting, ICE is restarted, and the media resumes on the
/// same connection.
#[test]
fn a_call_recovers_from_a_five_second_path_cut() {
    call_recovers("cut-lan", 22, |lan| {
        lan.cut_udp();
        std::thread::sleep(std::time::Duration::from_secs(5));
        lan.restore_udp();
    });
}

/// Host b's address changes mid-call (a laptop that moves to another
/// network, a DHCP lease renumbered): its signaling reconnects from the new
/// address, ICE restarts from it, and the call goes on.
#[test]
#[ignore = "passes alone (4 of 4 here) but failed in 2 of 3 full suites: after the rebind ICE did not come back in time; run with --ignored"]
fn a_call_recovers_when_one_side_changes_its_address() {
    // Its signaling notices within 10 s that its connection died with the
    // old address; hence the longer call.
    call_recovers("renumbered-lan", 34, |lan| lan.renumber_b("10.77.0.3"));
}

/// 5 s into a call `trouble` happens; both sides must see the other come
/// back (and say after how long) on the same connection, with video.
fn call_recovers(name: &str, secs: u32, trouble: impl FnOnce(&Lan)) {
    let lan = Lan::up();
    let scratch = Scratch::new(name);
    let _server = lan.server();
    let args = |user: &str| {
        Args::new(&["join", "r1"])
            .media("VP8", 320, 180, 15)
            .opt("--duration", secs)
            .path("--report", &scratch.path(&format!("{user}.json")))
            .path("--stats-json", &scratch.path(&format!("{user}.stats")))
    };
    let mut alice = lan.kith_cli(&lan.a, "alice", &args("alice"));
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = lan.kith_cli(&lan.b, "bob", &args("bob"));
    bob.wait_for_line("peer_connected", PATIENCE);
    std::thread::sleep(std::time::Duration::from_secs(5));
    trouble(&lan);
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    for (me, process, other) in [("alice", &alice, "bob"), ("bob", &bob, "alice")] {
        let reconnected = process.events("peer_reconnected");
        let after_ms = reconnected.first().and_then(|e| e["after_ms"].as_u64());
        eprintln!("{me}: {other} back after {after_ms:?} ms");
        assert!(
            after_ms.is_some(),
            "{me} never saw {other} come back: {:?}",
            process.seen
        );
        // One connection for the whole call, and video after the trouble: the
        // last stats seconds still decode frames.
        let report = report(&scratch.path(&format!("{me}.json")));
        assert_eq!(report["peers"].as_array().unwrap().len(), 1, "{report:#}");
        let frames = frames_over_time(&scratch.path(&format!("{me}.stats")), other);
        assert!(
            still_moving(&frames),
            "{me}'s video from {other} did not come back: {frames:?}"
        );
    }
}

/// Host b's firewall lets no UDP out or in, only TCP, as some offices and
/// hotels do: the call goes through coturn over TCP (webrtc-rs's TURN
/// client speaks UDP; the engine bridges it), and host a, whose UDP works,
/// keeps its own address: relay only where it is needed.
#[test]
fn a_host_that_blocks_udp_calls_through_turn_over_tcp() {
    let lan = Lan::up();
    let secret = "kith-e2e-secret";
    let _coturn = Coturn::start_in(&lan, secret);
    let _server = lan.server_with(&[
        "--turn".to_owned(),
        format!("turn:{LAN_A}:3478?transport=udp"),
        "--turn".to_owned(),
        format!("turn:{LAN_A}:3478?transport=tcp"),
        "--turn-secret".to_owned(),
        secret.to_owned(),
    ]);
    lan.block_udp_at_b();
    let scratch = Scratch::new("udp-blocked");
    let args = |user: &str| {
        Args::new(&["join", "r1"])
            .media("VP8", 320, 180, 15)
            .opt("--duration", 10)
            .opt("--chat", 5)
            .path("--report", &scratch.path(&format!("{user}.json")))
    };
    let mut alice = lan.kith_cli(&lan.a, "alice", &args("alice"));
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = lan.kith_cli(&lan.b, "bob", &args("bob"));
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    for (me, other, candidate) in [("alice", "bob", "host"), ("bob", "alice", "relay")] {
        let report = report(&scratch.path(&format!("{me}.json")));
        let peer = peer(&report, other);
        assert_eq!(peer["candidate_type"], candidate, "{me}: {report:#}");
        assert!(
            peer["frames_decoded"].as_u64().unwrap() > 20,
            "{me}: {report:#}"
        );
        assert_eq!(report["chat"]["acked"], 5, "{me}: {report:#}");
    }
}
