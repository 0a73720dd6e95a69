//! 1:1 calls between two kith-cli processes through a real signaling-dev:
//! every codec, media decoded both ways, glass-to-glass measured.
#![allow(clippy::unwrap_used)]

use kith_e2e::*;

/// Two clients join one room and call for `secs`; returns both reports.
fn call(
    scratch: &Scratch,
    codec: &str,
    audio_codec: &str,
    extra_bob: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let server = Server::start(&[]);
    let url = server.url();
    let alice_report = scratch.path("alice.json");
    let bob_report = scratch.path("bob.json");
    let args = |report: &std::path::Path| {
        Args::new(&["join", "r1"])
            .media(codec, 320, 240, 15)
            .opt("--audio-codec", audio_codec)
            .opt("--bitrate", 400)
            .opt("--duration", 12)
            .flag("--ice-loopback")
            .path("--report", report)
    };
    let mut alice = args(&alice_report).spawn(&url, "alice");
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = args(&bob_report).extend(extra_bob).spawn(&url, "bob");
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    (report(&alice_report), report(&bob_report))
}

fn assert_media_flowed(report: &serde_json::Value, from: &str, codec: &str, audio_codec: &str) {
    let peer = peer(report, from);
    assert_eq!(peer["video_codec"], codec, "{report:#}");
    assert_eq!(peer["audio_codec"], audio_codec, "{report:#}");
    // 12 s at 15 fps is 180 frames; a loaded machine may drop some, but a
    // call that decodes fewer than a quarter of them is broken.
    assert!(peer["frames_decoded"].as_u64().unwrap() >= 45, "{report:#}");
    // The steps to the first frame come in their order.
    let steps: Vec<u64> = ["ice_ms", "connect_ms", "first_packet_ms", "first_frame_ms"]
        .iter()
        .map(|step| {
            peer[*step]
                .as_u64()
                .unwrap_or_else(|| panic!("no {step}: {report:#}"))
        })
        .collect();
    assert!(steps.is_sorted(), "{steps:?}: {report:#}");
    // The latency strip was read off decoded frames: real pictures arrived.
    let g2g = &peer["glass_to_glass_ms"];
    assert!(
        g2g["p50"].as_f64().unwrap() > 0.0
            && g2g["p95"].as_f64().unwrap() >= g2g["p50"].as_f64().unwrap(),
        "{report:#}"
    );
    // 20 ms packets, 50 a second while the tone beeps; DTX sends almost
    // nothing between beeps, so ~25 a second over ~11 s of overlap.
    assert!(
        peer["audio_packets_received"].as_u64().unwrap() >= 100,
        "{report:#}"
    );
    assert_eq!(peer["candidate_type"], "host", "{report:#}");
}

fn both_ways(name: &str, codec: &str, audio_codec: &str) {
    let scratch = Scratch::new(name);
    let (alice, bob) = call(&scratch, codec, audio_codec, &[]);
    assert_media_flowed(&alice, "bob", codec, audio_codec);
    assert_media_flowed(&bob, "alice", codec, audio_codec);
}

#[test]
fn av1_and_opus_both_ways_with_a_recording() {
    let scratch = Scratch::new("av1");
    let recording = scratch.path("bob.y4m");
    let (alice, bob) = call(
        &scratch,
        "AV1",
        "opus",
        &["--record-y4m", recording.to_str().unwrap()],
    );
    assert_media_flowed(&alice, "bob", "AV1", "opus");
    assert_media_flowed(&bob, "alice", "AV1", "opus");
    // The recording holds what bob decoded: alice's synthetic camera, strip and all.
    let mut source = kith_media::video::y4m_file::Y4mSource::open(&recording).unwrap();
    assert_eq!(source.size(), (320, 240));
    let frame = source.next_frame(0).unwrap();
    assert!(
        kith_media::video::latency_strip::read(&frame).is_some(),
        "no latency strip in the recorded video"
    );
}

#[test]
fn vp9_and_opus_both_ways() {
    both_ways("vp9", "VP9", "opus");
}

#[test]
fn vp8_and_opus_both_ways() {
    both_ways("vp8", "VP8", "opus");
}

#[test]
fn h264_and_opus_both_ways() {
    both_ways("h264", "H264", "opus");
}

#[test]
fn vp8_and_pcmu_both_ways() {
    both_ways("pcmu", "VP8", "pcmu");
}
