//! Every message flow and error code of protocol.md against a real server on
//! loopback, with real WebSocket clients.
#![allow(clippy::unwrap_used)]

#[path = "support/client.rs"]
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use signaling_dev::ServerConfig;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn hello_gets_welcome_with_session_and_online_users() {
    let server = start_default().await;
    let url = server.ws_url();
    let bob = Client::hello(&url, "bob").await;
    assert_eq!(bob.welcome["protocol"], 1);
    assert_eq!(bob.welcome["user"], "bob");
    assert_eq!(bob.welcome["name"], "BOB");
    assert_eq!(bob.welcome["online"], json!([]));
    assert_eq!(bob.welcome["ice_servers"], json!([]));

    let mut alice = Client::connect(&url).await;
    alice
        .send(json!({"type":"hello","user":"alice","name":"Alice","id":"h1","future":"ignored"}))
        .await;
    let welcome = alice.recv_type("welcome").await;
    assert_eq!(welcome["re"], "h1");
    assert_eq!(welcome["online"], json!([{"user":"bob","name":"BOB"}]));
    assert_ne!(welcome["session"], bob.session);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hello_without_name_uses_the_user_id() {
    let server = start_default().await;
    let client = Client::hello_with(&server.ws_url(), json!({"type":"hello","user":"carol"})).await;
    assert_eq!(client.welcome["name"], "carol");
}

#[tokio::test]
async fn anything_before_hello_is_unauthorized_and_closes_4001() {
    let server = start_default().await;
    let url = server.ws_url();
    for first in [
        Message::Text(
            json!({"type":"join","room":"r","id":"q"})
                .to_string()
                .into(),
        ),
        Message::Text("definitely not json".into()),
        Message::Binary(vec![1, 2, 3].into()),
        Message::Text(json!({"type":"dance"}).to_string().into()),
    ] {
        let mut client = Client::connect(&url).await;
        client.send_raw(first.clone()).await;
        let error = client.recv_error("unauthorized").await;
        if first.to_text().is_ok_and(|t| t.contains("\"q\"")) {
            assert_eq!(error["re"], "q");
        }
        assert_eq!(
            client.expect_close().await,
            Closed::Code(4001),
            "after {first:?}"
        );
    }
    // A hello with a bad field says what is wrong, then closes the same way.
    let mut client = Client::connect(&url).await;
    client
        .send(json!({"type":"hello","user":"no spaces allowed"}))
        .await;
    let error = client.recv_error("bad_request").await;
    assert!(
        error["message"].as_str().unwrap().contains("user"),
        "{error}"
    );
    assert_eq!(client.expect_close().await, Closed::Code(4001));
}

#[tokio::test]
async fn token_is_checked_only_when_the_server_has_one() {
    let server = start(ServerConfig {
        token: Some("sesame".into()),
        ..test_config()
    })
    .await;
    let url = server.ws_url();
    for hello in [
        json!({"type":"hello","user":"a"}),
        json!({"type":"hello","user":"a","token":"wrong"}),
    ] {
        let mut client = Client::connect(&url).await;
        client.send(hello).await;
        client.recv_error("unauthorized").await;
        assert_eq!(client.expect_close().await, Closed::Code(4001));
    }
    Client::hello_with(&url, json!({"type":"hello","user":"a","token":"sesame"})).await;

    let open = start_default().await;
    Client::hello_with(
        &open.ws_url(),
        json!({"type":"hello","user":"a","token":"anything"}),
    )
    .await;
}

#[tokio::test]
async fn presence_counts_users_not_sessions() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut watcher = Client::hello(&url, "watcher").await;
    let alice_laptop = Client::hello(&url, "alice").await;
    let presence = watcher.recv_type("presence").await;
    assert_eq!(
        presence,
        json!({"type":"presence","user":"alice","name":"ALICE","online":true})
    );
    let alice_phone = Client::hello(&url, "alice").await;
    watcher.expect_quiet().await;
    assert_eq!(
        alice_phone.welcome["online"],
        json!([{"user":"watcher","name":"WATCHER"}])
    );
    alice_laptop.close().await;
    watcher.expect_quiet().await;
    alice_phone.close().await;
    let presence = watcher.recv_type("presence").await;
    assert_eq!(presence["online"], false);
    assert_eq!(presence["user"], "alice");
}

#[tokio::test]
async fn three_sessions_join_a_mesh_in_order() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "a").await;
    let mut b = Client::hello(&url, "b").await;
    let mut c = Client::hello(&url, "c").await;
    a.recv_type("presence").await;
    a.recv_type("presence").await;
    b.recv_type("presence").await;

    assert_eq!(a.join("standup").await["peers"], json!([]));
    let joined_b = b.join("standup").await;
    assert_eq!(
        joined_b["peers"],
        json!([{"session":a.session,"user":"a","name":"A"}])
    );
    let seen = a.recv_type("peer_joined").await;
    assert_eq!(
        seen["peer"],
        json!({"session":b.session,"user":"b","name":"B"})
    );
    assert_eq!(seen["room"], "standup");

    c.send(json!({"type":"join","room":"standup","id":"j3"}))
        .await;
    let joined_c = c.recv_type("joined").await;
    assert_eq!(joined_c["re"], "j3");
    let order: Vec<&str> = joined_c["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["session"].as_str().unwrap())
        .collect();
    assert_eq!(order, [a.session.as_str(), b.session.as_str()]);
    assert_eq!(
        a.recv_type("peer_joined").await["peer"]["session"],
        c.session.as_str()
    );
    assert_eq!(
        b.recv_type("peer_joined").await["peer"]["session"],
        c.session.as_str()
    );

    // Leave tells the rest; a closed socket leaves too.
    b.send(json!({"type":"leave","room":"standup"})).await;
    for other in [&mut a, &mut c] {
        let left = other.recv_type("peer_left").await;
        assert_eq!(
            left,
            json!({"type":"peer_left","room":"standup","session":b.session,"reason":"left"})
        );
    }
    let c_session = c.session.clone();
    c.close().await;
    let left = a.recv_type("peer_left").await;
    assert_eq!(left["session"], c_session.as_str());
    assert_eq!(left["reason"], "disconnected");
    assert_eq!(a.recv_type("presence").await["online"], false);
}

#[tokio::test]
async fn a_full_room_says_room_full() {
    let server = start(ServerConfig {
        room_limit: 2,
        ..test_config()
    })
    .await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "a").await;
    let mut b = Client::hello(&url, "b").await;
    let mut c = Client::hello(&url, "c").await;
    a.recv_type("presence").await;
    a.recv_type("presence").await;
    b.recv_type("presence").await;
    a.join("r").await;
    b.join("r").await;
    c.send(json!({"type":"join","room":"r","id":"x"})).await;
    assert_eq!(c.recv_error("room_full").await["re"], "x");
    // Another room is fine.
    c.join("other").await;
}

#[tokio::test]
async fn offers_answers_and_candidates_are_relayed_with_from() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "alice").await;
    let mut b = Client::hello(&url, "bob").await;
    a.recv_type("presence").await;
    a.join("call").await;
    b.join("call").await;
    a.recv_type("peer_joined").await;

    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n";
    b.send(json!({"type":"offer","room":"call","to":a.session,"sdp":sdp,"x-extra":{"k":1}}))
        .await;
    let offer = a.recv_type("offer").await;
    assert_eq!(
        offer,
        json!({"type":"offer","room":"call","from":b.session,"from_user":"bob","sdp":sdp,"x-extra":{"k":1}})
    );
    a.send(json!({"type":"answer","room":"call","to":b.session,"sdp":sdp}))
        .await;
    let answer = b.recv_type("answer").await;
    assert_eq!(answer["from"], a.session.as_str());
    assert_eq!(answer["from_user"], "alice");
    assert!(answer.get("to").is_none());

    let candidate = json!({"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                           "sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"uf"});
    a.send(json!({"type":"candidate","room":"call","to":b.session,"candidate":candidate}))
        .await;
    assert_eq!(b.recv_type("candidate").await["candidate"], candidate);
    a.send(json!({"type":"candidate","room":"call","to":b.session,"candidate":null}))
        .await;
    assert_eq!(b.recv_type("candidate").await["candidate"], json!(null));
    assert!(
        server
            .metrics()
            .render()
            .contains("kith_signaling_messages_relayed_total 4")
    );
}

#[tokio::test]
async fn relay_is_refused_outside_a_shared_room() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "a").await;
    let mut b = Client::hello(&url, "b").await;
    a.recv_type("presence").await;
    a.join("one").await;
    b.join("two").await;

    // Not in the room named.
    a.send(json!({"type":"offer","room":"two","to":b.session,"sdp":"v=0","id":"o1"}))
        .await;
    assert_eq!(a.recv_error("not_in_room").await["re"], "o1");
    // In the room, but the target is not.
    a.send(json!({"type":"offer","room":"one","to":b.session,"sdp":"v=0","id":"o2"}))
        .await;
    assert_eq!(a.recv_error("no_such_peer").await["re"], "o2");
    // No such session at all.
    a.send(json!({"type":"candidate","room":"one","to":"s-nobody","candidate":null}))
        .await;
    a.recv_error("no_such_peer").await;
    b.expect_quiet().await;
    // Leaving a room one is not in.
    a.send(json!({"type":"leave","room":"two"})).await;
    a.recv_error("not_in_room").await;
}

#[tokio::test]
async fn invite_accept_reaches_every_caller_session_and_cancels_other_callee_sessions() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut alice = Client::hello(&url, "alice").await;
    let mut alice_phone = Client::hello(&url, "alice").await;
    let mut bob_laptop = Client::hello(&url, "bob").await;
    let mut bob_phone = Client::hello(&url, "bob").await;
    alice.recv_type("presence").await;
    alice_phone.recv_type("presence").await;

    alice
        .send(json!({"type":"invite","room":"r-7","to":"bob","media":"video"}))
        .await;
    for bob in [&mut bob_laptop, &mut bob_phone] {
        assert_eq!(
            bob.recv_type("invite").await,
            json!({"type":"invite","room":"r-7","from":"alice","from_name":"ALICE","media":"video"})
        );
    }
    bob_phone
        .send(json!({"type":"invite_reply","room":"r-7","to":"alice","answer":"accept"}))
        .await;
    for a in [&mut alice, &mut alice_phone] {
        assert_eq!(
            a.recv_type("invite_reply").await,
            json!({"type":"invite_reply","room":"r-7","from":"bob","answer":"accept"})
        );
    }
    assert_eq!(
        bob_laptop.recv_type("invite_cancel").await,
        json!({"type":"invite_cancel","room":"r-7","from":"alice","reason":"answered_elsewhere"})
    );
    bob_phone.expect_quiet().await;
    // The callee that accepted joins; the mesh rule takes over.
    let joined = bob_phone.join("r-7").await;
    assert_eq!(joined["peers"], json!([]));
}

#[tokio::test]
async fn invite_decline_busy_and_cancel() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut alice = Client::hello(&url, "alice").await;
    let mut bob = Client::hello(&url, "bob").await;
    alice.recv_type("presence").await;

    for answer in ["decline", "busy"] {
        alice
            .send(json!({"type":"invite","room":"r","to":"bob","media":"audio"}))
            .await;
        assert_eq!(bob.recv_type("invite").await["media"], "audio");
        bob.send(json!({"type":"invite_reply","room":"r","to":"alice","answer":answer}))
            .await;
        assert_eq!(alice.recv_type("invite_reply").await["answer"], answer);
    }
    alice
        .send(json!({"type":"invite","room":"r2","to":"bob","media":"video"}))
        .await;
    bob.recv_type("invite").await;
    alice
        .send(json!({"type":"invite_cancel","room":"r2","to":"bob"}))
        .await;
    assert_eq!(
        bob.recv_type("invite_cancel").await,
        json!({"type":"invite_cancel","room":"r2","from":"alice","reason":"canceled"})
    );
    // A caller who disconnects while ringing stops the ringing.
    alice
        .send(json!({"type":"invite","room":"r3","to":"bob","media":"video"}))
        .await;
    bob.recv_type("invite").await;
    alice.close().await;
    assert_eq!(bob.recv_type("invite_cancel").await["room"], "r3");
    assert_eq!(bob.recv_type("presence").await["online"], false);
}

#[tokio::test]
async fn inviting_an_offline_user_says_offline() {
    let server = start_default().await;
    let mut alice = Client::hello(&server.ws_url(), "alice").await;
    alice
        .send(json!({"type":"invite","room":"r","to":"nobody","media":"video","id":"i1"}))
        .await;
    assert_eq!(alice.recv_error("offline").await["re"], "i1");
    alice
        .send(json!({"type":"invite_reply","room":"r","to":"nobody","answer":"accept"}))
        .await;
    alice.recv_error("offline").await;
}

#[tokio::test]
async fn malformed_and_unknown_messages_get_errors_and_the_session_survives() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "a").await;
    a.send_raw(Message::Text("{not json".into())).await;
    a.recv_error("bad_request").await;
    a.send(json!({"type":"join","room":"bad room","id":"j"}))
        .await;
    let error = a.recv_error("bad_request").await;
    assert_eq!(error["re"], "j");
    assert!(error["message"].as_str().unwrap().contains("room"));
    a.send(json!({"type":"teleport","id":"t"})).await;
    assert_eq!(a.recv_error("unknown_type").await["re"], "t");
    a.send(json!({"type":"hello","user":"a"})).await;
    a.recv_error("bad_request").await;
    a.send_raw(Message::Binary(vec![0u8; 16].into())).await;
    let error = a.recv_error("bad_request").await;
    assert!(error["message"].as_str().unwrap().contains("binary"));
    // Still a working session.
    a.join("r").await;
}

#[tokio::test]
async fn frames_over_64_kib_get_too_large_then_close_1009() {
    let server = start_default().await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "a").await;
    let mut b = Client::hello(&url, "b").await;
    a.recv_type("presence").await;
    a.join("r").await;
    b.join("r").await;
    a.recv_type("peer_joined").await;

    // Exactly 64 KiB is allowed and relayed.
    let envelope = json!({"type":"offer","room":"r","to":a.session,"sdp":""}).to_string();
    let sdp = "a".repeat(64 * 1024 - envelope.len());
    let frame = json!({"type":"offer","room":"r","to":a.session,"sdp":sdp}).to_string();
    assert_eq!(frame.len(), 64 * 1024);
    b.send_raw(Message::Text(frame.into())).await;
    assert_eq!(
        a.recv_type("offer").await["sdp"].as_str().unwrap().len(),
        sdp.len()
    );

    let too_big = json!({"type":"offer","room":"r","to":a.session,"sdp":format!("{sdp}a")});
    b.send(too_big).await;
    b.recv_error("too_large").await;
    assert_eq!(b.expect_close().await, Closed::Code(1009));
    assert_eq!(
        a.recv_type("peer_left").await["session"],
        b.session.as_str()
    );
}

#[tokio::test]
async fn a_flooding_session_is_rate_limited_and_survives() {
    let server = start(ServerConfig {
        rate_per_second: 20.0,
        rate_burst: 10.0,
        ..test_config()
    })
    .await;
    let url = server.ws_url();
    let mut a = Client::hello(&url, "a").await;
    for i in 0..40 {
        a.send(json!({"type":"join","room":format!("r{i}")})).await;
    }
    let mut joined = 0;
    let mut limited = 0;
    for _ in 0..11 {
        match a.recv().await["type"].as_str().unwrap() {
            "joined" => joined += 1,
            "error" => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // The burst of 10 went through, then one rate_limited for the rest.
    assert_eq!((joined, limited), (10, 1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(a.join("after-the-flood").await["peers"].is_array());
    assert_eq!(
        server
            .metrics()
            .errors_sent(kith_proto::ErrorCode::RateLimited),
        1
    );
}

#[tokio::test]
async fn a_silent_client_is_dropped_and_its_peers_told() {
    let server = start(ServerConfig {
        ping_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(500),
        ..test_config()
    })
    .await;
    let url = server.ws_url();
    let mut alive = Client::hello(&url, "alive").await;
    let mut silent = Client::hello(&url, "silent").await;
    alive.recv_type("presence").await;
    alive.join("r").await;
    silent.join("r").await;
    alive.recv_type("peer_joined").await;
    let silent_session = silent.session.clone();
    // Stop reading: pings go unanswered. Keep the socket open meanwhile.
    let started = tokio::time::Instant::now();
    let left = alive.recv_type("peer_left").await;
    assert_eq!(left["session"], silent_session.as_str());
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "dropped too early"
    );
    assert_eq!(alive.recv_type("presence").await["online"], false);
    drop(silent);
    // The client that answered pings (by reading) is still in.
    alive.join("r2").await;
}

#[tokio::test]
async fn http_endpoints_answer_on_the_same_port() {
    let server = start_default().await;
    let addr = server.local_addr();
    assert_eq!(http_get(addr, "/healthz").await, (200, "ok".into()));
    let (status, page) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Kith"));
    assert_eq!(http_get(addr, "/nope").await.0, 404);

    let mut a = Client::hello(&server.ws_url(), "a").await;
    a.send(json!({"type":"leave","room":"r"})).await;
    a.recv_error("not_in_room").await;
    a.join("r").await;
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "kith_signaling_sessions 1",
        "kith_signaling_rooms 1",
        "kith_signaling_messages_relayed_total 0",
        "kith_signaling_errors_total{code=\"not_in_room\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn shutdown_closes_every_session_with_1001() {
    let server = start_default().await;
    let mut a = Client::hello(&server.ws_url(), "a").await;
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(a.expect_close().await, Closed::Code(1001));
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_server_pings_at_its_interval() {
    use futures_util::StreamExt;
    let server = start(ServerConfig {
        ping_interval: Duration::from_millis(100),
        dead_after: Duration::from_secs(5),
        ..test_config()
    })
    .await;
    let mut a = Client::hello(&server.ws_url(), "a").await;
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let frame = tokio::time::timeout(PATIENCE, a.ws.next()).await.unwrap();
        if matches!(frame, Some(Ok(Message::Ping(_)))) {
            pings += 1;
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "pings came too fast"
    );
    // Reading answers the pings, so the session outlives several intervals.
    a.join("still-here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stops_reading_is_dropped_not_buffered() {
    let server = start(ServerConfig {
        outbound_queue: 16,
        rate_per_second: 1e9,
        rate_burst: 1e9,
        ..test_config()
    })
    .await;
    let url = server.ws_url();
    let mut sender = Client::hello(&url, "sender").await;
    let mut stuck = Client::hello(&url, "stuck").await;
    sender.recv_type("presence").await;
    sender.join("r").await;
    stuck.join("r").await;
    sender.recv_type("peer_joined").await;
    let stuck_session = stuck.session.clone();
    // `stuck` reads nothing more. Send until the kernel's socket buffers and
    // the server's 16-frame queue for it are full and the server gives up.
    let sdp = "a".repeat(16 * 1024);
    let mut dropped = false;
    for _ in 0..4_000 {
        sender
            .send(json!({"type":"offer","room":"r","to":stuck_session,"sdp":sdp}))
            .await;
        if server
            .metrics()
            .render()
            .contains("kith_signaling_slow_sessions_dropped_total 1")
        {
            dropped = true;
            break;
        }
    }
    assert!(
        dropped,
        "64 MB later the stuck session was still queued for"
    );
    let left = loop {
        let message = sender.recv().await;
        if message["type"] == "peer_left" {
            break message;
        }
        // Offers sent after the drop are refused: the peer is gone.
        assert_eq!(message["code"], "no_such_peer", "{message}");
    };
    assert_eq!(left["session"], stuck_session.as_str());
    drop(stuck);
}
