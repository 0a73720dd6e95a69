//! TURN credentials from `welcome` against a real coturn with `use-auth-secret`.
#![allow(clippy::unwrap_used)]

#[path = "support/client.rs"]
mod common;
#[path = "support/stun.rs"]
mod stun;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use signaling_dev::ServerConfig;

const SECRET: &str = "kith-test-secret";

/// A coturn with `use-auth-secret`, shared with the end-to-end tests.
fn start_coturn() -> Coturn {
    let coturn = kith_e2e::Coturn::start(SECRET);
    let addr = SocketAddr::from(([127, 0, 0, 1], coturn.port));
    // It listens on TCP first; ready for us when it answers STUN on UDP.
    let deadline = Instant::now() + PATIENCE;
    while stun::binding(addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "turnserver did not answer on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Coturn {
        _process: coturn,
        addr,
    }
}

struct Coturn {
    _process: kith_e2e::Coturn,
    addr: SocketAddr,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_credentials_allocate_on_a_real_coturn() {
    let coturn = start_coturn();
    let turn_url = format!("turn:{}?transport=udp", coturn.addr);
    let server = start(ServerConfig {
        stun_urls: vec![format!("stun:{}", coturn.addr)],
        turn_urls: vec![turn_url.clone()],
        turn_secret: Some(SECRET.into()),
        turn_ttl: Duration::from_secs(600),
        ..test_config()
    })
    .await;
    let alice = Client::hello(&server.ws_url(), "alice").await;
    let servers = alice.welcome["ice_servers"].as_array().unwrap().clone();
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert_eq!(servers[0]["urls"][0], format!("stun:{}", coturn.addr));
    let turn = &servers[1];
    assert_eq!(turn["urls"][0], turn_url.as_str());
    let username = turn["username"].as_str().unwrap().to_owned();
    let credential = turn["credential"].as_str().unwrap().to_owned();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expiry {expiry} vs now {now}"
    );

    let addr = coturn.addr;
    let allocated =
        tokio::task::spawn_blocking(move || stun::allocate(addr, &username, &credential, "kith"))
            .await
            .unwrap();
    let relayed = allocated.expect("allocation with the server's credentials succeeds");
    assert_eq!(relayed.ip().to_string(), "127.0.0.1");

    // Credentials minted with another secret are refused.
    let forged = kith_proto::turn::rest_credentials(
        b"not-the-secret",
        &kith_proto::UserId::new("alice").unwrap(),
        now + 600,
    );
    let refused = tokio::task::spawn_blocking(move || {
        stun::allocate(addr, &forged.username, &forged.credential, "kith")
    })
    .await
    .unwrap();
    match refused {
        Err(stun::StunError::Refused(code)) => assert_eq!(code, 401, "wrong secret"),
        other => panic!("a wrong secret must be refused, got {other:?}"),
    }

    // Expired credentials with the right secret are refused too.
    let expired = kith_proto::turn::rest_credentials(
        SECRET.as_bytes(),
        &kith_proto::UserId::new("alice").unwrap(),
        now - 60,
    );
    let refused = tokio::task::spawn_blocking(move || {
        stun::allocate(addr, &expired.username, &expired.credential, "kith")
    })
    .await
    .unwrap();
    assert!(
        matches!(refused, Err(stun::StunError::Refused(401))),
        "expired credentials must be refused, got {refused:?}"
    );
}
