//! TURN credentials from `welcome` against a real coturn with `use-auth-secret`.
#![allow(clippy::unwrap_used)]

#[path = "support/client.rs"]
mod common;
#[path = "support/stun.rs"]
mod stun;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use signaling_dev::ServerConfig;

const SECRET: &str = "kith-test-secret";

struct Coturn {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free for both TCP and UDP on loopback right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_coturn() -> Coturn {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("kith-coturn-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("turnserver")
        .args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--allow-loopback-peers",
            "--use-auth-secret",
            "--realm=kith",
            "--log-file=stdout",
            "--no-stdout-log",
        ])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--static-auth-secret={SECRET}"))
        .arg(format!(
            "--pidfile={}",
            dir.join("turnserver.pid").display()
        ))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coturn's turnserver must be installed (cargo xtask test installs it)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let coturn = Coturn {
        child,
        addr,
        _dir: TempDir(dir),
    };
    // Ready when it answers a STUN binding request.
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if stun::binding(addr, Duration::from_millis(200)).is_ok() {
            return coturn;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("turnserver did not answer on {addr}");
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
