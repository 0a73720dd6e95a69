//! A call between two hosts on a LAN with no default route (a lab, an office
//! without internet, an offline laptop): two network namespaces joined by a
//! veth pair, addresses on the veth, loopback up, no route anywhere else.
//! webrtc-rs cannot open its mDNS socket there; the call must work anyway.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use kith_e2e::*;

/// Two namespaces and the veth between them, removed when dropped.
struct Lan {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Lan {
    /// `None` when namespaces cannot be made here (not root, no iproute2).
    fn new() -> Option<Self> {
        let tag = std::process::id() % 100_000;
        let lan = Lan {
            a: format!("kith-a{tag}"),
            b: format!("kith-b{tag}"),
        };
        let (va, vb) = (format!("kva{tag}"), format!("kvb{tag}"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &lan.a],
            vec!["netns", "add", &lan.b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", &lan.a],
            vec!["link", "set", &vb, "netns", &lan.b],
            vec!["-n", &lan.a, "addr", "add", "10.77.0.1/24", "dev", &va],
            vec!["-n", &lan.b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            vec!["-n", &lan.a, "link", "set", &va, "up"],
            vec!["-n", &lan.b, "link", "set", &vb, "up"],
            vec!["-n", &lan.a, "link", "set", "lo", "up"],
            vec!["-n", &lan.b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if !ip(&step) {
                return None;
            }
        }
        Some(lan)
    }

    fn exec(&self, ns: &str, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

#[test]
fn a_call_works_between_hosts_with_no_default_route() {
    let lan = Lan::new().expect(
        "cannot build network namespaces (the e2e tests run as root with iproute2; \
         cargo xtask test installs it)",
    );
    let scratch = Scratch::new("isolated-lan");
    let mut server = Process::spawn(
        "signaling-dev",
        lan.exec(&lan.a, &binary("signaling-dev"))
            .args(["--listen", "10.77.0.1:8787"]),
    );
    server.wait_for_line("\"listening\"", PATIENCE);
    let url = "ws://10.77.0.1:8787/ws";
    let join = |ns: &str, user: &str| {
        let report = scratch.path(&format!("{user}.json"));
        let mut command = lan.exec(ns, &binary("kith-cli"));
        command
            .args(["--server", url, "--user", user, "join", "r1"])
            .args(Args::new(&[]).media("VP8", 320, 180, 15).0)
            .args(["--duration", "8"])
            .arg("--report")
            .arg(&report);
        Process::spawn(&format!("kith-cli {user}"), &mut command)
    };
    let mut alice = join(&lan.a, "alice");
    alice.wait_for_line("joined", PATIENCE);
    let mut bob = join(&lan.b, "bob");
    bob.expect_exit(0, PATIENCE);
    alice.expect_exit(0, PATIENCE);
    for (me, other) in [("alice", "bob"), ("bob", "alice")] {
        let report = report(&scratch.path(&format!("{me}.json")));
        let peer = peer(&report, other);
        assert!(peer["frames_decoded"].as_u64().unwrap() > 20, "{report:#}");
        assert!(
            peer["audio_packets_received"].as_u64().unwrap() > 20,
            "{report:#}"
        );
    }
}
