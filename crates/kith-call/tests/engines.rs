//! Two whole call engines in one process: an in-process signaling-dev on
//! loopback, real webrtc-rs connections, real encoders and decoders, and the
//! frames read from the API's sinks, as an app would draw them.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use kith_call::{
    AudioSourceSpec, Call, CallConfig, CallEvent, CallEvents, SignalingConfig, VideoSendSettings,
    VideoSourceSpec,
};
use kith_media::codec::VideoCodec;
use kith_proto::{RoomId, UserId};
use signaling_dev::{Server, ServerConfig};

const PATIENCE: Duration = Duration::from_secs(30);

fn config(url: &str, user: &str) -> CallConfig {
    CallConfig {
        signaling: SignalingConfig {
            url: url.to_owned(),
            user: UserId::new(user).unwrap(),
            name: None,
            token: None,
            keepalive: Default::default(),
        },
        video: VideoSendSettings {
            source: VideoSourceSpec::Synthetic,
            width: 320,
            height: 180,
            fps: 15,
            start_bitrate_bps: 300_000,
        },
        audio: AudioSourceSpec::Tone,
        video_codec: Some(VideoCodec::Vp8),
        audio_codec: None,
        max_bitrate_bps: 1_000_000,
        ice_loopback: true,
        relay_only: false,
        record_y4m: None,
        record_wav: None,
        speakers: false,
        auto_busy: true,
    }
}

async fn until(events: &mut CallEvents, what: &str, pred: impl Fn(&CallEvent) -> bool) {
    let wait = async {
        while let Some(event) = events.recv().await {
            if pred(&event) {
                return;
            }
        }
        panic!("the engine stopped before {what}");
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} in {PATIENCE:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_call_each_other_and_their_sinks_fill() {
    let server = Server::start(ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let (alice, mut alice_events) = Call::start(config(&url, "alice")).unwrap();
    let (bob, mut bob_events) = Call::start(config(&url, "bob")).unwrap();
    let room = RoomId::new("r1").unwrap();
    until(&mut alice_events, "alice's welcome", |e| {
        matches!(e, CallEvent::SignalingConnected { .. })
    })
    .await;
    until(&mut bob_events, "bob's welcome", |e| {
        matches!(e, CallEvent::SignalingConnected { .. })
    })
    .await;
    alice.join(room.clone()).await.unwrap();
    until(&mut alice_events, "alice joined", |e| {
        matches!(e, CallEvent::Joined { .. })
    })
    .await;
    bob.join(room).await.unwrap();
    until(&mut bob_events, "bob connected", |e| {
        matches!(e, CallEvent::PeerConnected { .. })
    })
    .await;
    until(&mut alice_events, "alice connected", |e| {
        matches!(e, CallEvent::PeerConnected { .. })
    })
    .await;

    // The self view shows our own camera before anything is encoded.
    let preview = alice.preview().unwrap();
    assert!(preview.latest().is_some() || preview.subscribe().changed().await.is_ok());

    // Each side's participant slot fills with the other's decoded video.
    for (me, call) in [("alice", &alice), ("bob", &bob)] {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let participants = call.participants().await.unwrap();
            if let Some(p) = participants.first()
                && p.media.video.frames_published() >= 15
            {
                let frame = p.media.video.latest().unwrap();
                assert_eq!((frame.width, frame.height), (320, 180), "{me}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{me} decoded no video from the other side"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A UI that reloads can rebuild the call from a snapshot.
    let snapshot = alice.snapshot().await.unwrap();
    assert_eq!(snapshot.peers.len(), 1);
    assert_eq!(snapshot.peers[0].user.as_str(), "bob");

    // Chat over the data channel, acked.
    let id = alice.send_chat("hello bob".into()).await.unwrap();
    until(
        &mut bob_events,
        "bob's chat",
        |e| matches!(e, CallEvent::ChatReceived { message } if message.text == "hello bob"),
    )
    .await;
    until(
        &mut alice_events,
        "alice's ack",
        |e| matches!(e, CallEvent::ChatAcked { id: acked } if *acked == id),
    )
    .await;

    // Live controls answer without dropping the call: a camera that is not
    // there is a typed error and alice's video keeps reaching bob.
    let missing = alice
        .switch_camera(VideoSourceSpec::Camera(Some(97)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            kith_call::CallError::Device {
                device: kith_call::DeviceKind::Camera,
                problem: kith_call::DeviceProblem::Missing,
                ..
            }
        ),
        "{missing:?}"
    );
    let bob_sees = bob.participants().await.unwrap()[0].media.video.clone();
    let before = bob_sees.frames_published();
    tokio::time::timeout(PATIENCE, async {
        while bob_sees.frames_published() < before + 10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("alice's video stopped after a failed camera switch");
    alice.set_mic_muted(true).await.unwrap();
    alice.set_camera_enabled(false).await.unwrap();
    alice.set_camera_enabled(true).await.unwrap();

    let alice_summary = alice.finish().await.unwrap();
    let bob_summary = bob.finish().await.unwrap();
    for (me, summary) in [("alice", alice_summary), ("bob", bob_summary)] {
        assert_eq!(summary.peers.len(), 1, "{me}");
        assert!(summary.peers[0].frames_decoded > 0, "{me}");
        assert!(summary.peers[0].audio_packets_received > 0, "{me}");
    }
    server.shutdown().await.unwrap();
}
