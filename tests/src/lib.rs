//! Harness for end-to-end tests: starts the real binaries (signaling-dev,
//! kith-cli, coturn) as processes on loopback and reads what they write.
//! The binaries come from the same cargo build as the tests
//! (`cargo xtask test` builds the whole workspace first).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod browser;
pub mod desktop;
pub mod wire;

pub use wire::{Delay, Wire};

/// How long anything may take before a test gives up (generous: CI is a
/// busy 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A built binary of this workspace, next to the test executable's folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through `cargo xtask test` (or build the workspace first)",
        path.display()
    );
    path
}

/// A fresh folder for one test's files, removed afterwards (kept when the
/// test fails, or when `KITH_E2E_KEEP` is set, to read after).
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kith-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("KITH_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A port free for both TCP and UDP on loopback right now.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running child process, killed when dropped, with its stdout lines
/// collected as they come.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, patience: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line with {needle:?} in {patience:?}; saw:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit; returns its status (all stdout read).
    pub fn wait(&mut self, patience: Duration) -> ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Collect what is left of stdout.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit in {patience:?}; saw:\n{}",
                    self.name,
                    self.seen.join("\n")
                );
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit and asserts its code, showing what the process
    /// printed when it is not the one expected.
    pub fn expect_exit(&mut self, code: i32, patience: Duration) {
        let status = self.wait(patience);
        assert_eq!(
            status.code(),
            Some(code),
            "{} exited with {status}; it printed:\n{}",
            self.name,
            self.seen.join("\n")
        );
    }

    /// Stdout events (JSON lines) of one kind seen so far.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["event"] == kind)
            .collect()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL, as a crash would be.
    pub fn sigkill(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// SIGINT, as Ctrl-C: kith-cli hangs up and writes its report. Does
    /// not wait; `wait` does.
    pub fn interrupt(&self) {
        self.signal("-INT");
    }

    fn signal(&self, which: &str) {
        let _ = Command::new("kill")
            .args([which, &self.pid().to_string()])
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// signaling-dev on loopback.
#[derive(Debug)]
pub struct Server {
    pub process: Process,
    pub port: u16,
}

impl Server {
    pub fn start(extra: &[String]) -> Self {
        Self::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[String]) -> Self {
        let mut command = Command::new(binary("signaling-dev"));
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra);
        let mut process = Process::spawn("signaling-dev", &mut command);
        process.wait_for_line("\"listening\"", PATIENCE);
        Self { process, port }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// The browser client's page, with `query` (`room=r1&user=web`...).
    pub fn page(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/?{query}", self.port)
    }
}

/// `kith-cli --server URL --user USER ARGS...`
pub fn kith_cli<S: AsRef<std::ffi::OsStr>>(server: &str, user: &str, args: &[S]) -> Process {
    let mut command = Command::new(binary("kith-cli"));
    command
        .args(["--server", server, "--user", user])
        .args(args);
    Process::spawn(&format!("kith-cli {user}"), &mut command)
}

/// A kith-cli command line after `--user`: the command, then options.
#[derive(Debug, Clone)]
pub struct Args(pub Vec<String>);

impl Args {
    pub fn new(command: &[&str]) -> Self {
        Self(command.iter().map(|s| (*s).to_owned()).collect())
    }

    /// Synthetic camera and beeping tone, with this codec, size and rate.
    pub fn media(self, codec: &str, width: u32, height: u32, fps: u32) -> Self {
        self.opt("--video", "synthetic")
            .opt("--audio", "tone")
            .opt("--codec", codec)
            .opt("--width", width)
            .opt("--height", height)
            .opt("--fps", fps)
    }

    pub fn opt(mut self, name: &str, value: impl ToString) -> Self {
        self.0.push(name.to_owned());
        self.0.push(value.to_string());
        self
    }

    pub fn path(self, name: &str, path: &Path) -> Self {
        self.opt(name, path.display())
    }

    pub fn flag(mut self, name: &str) -> Self {
        self.0.push(name.to_owned());
        self
    }

    pub fn extend(mut self, more: &[&str]) -> Self {
        self.0.extend(more.iter().map(|s| (*s).to_owned()));
        self
    }

    pub fn spawn(&self, server: &str, user: &str) -> Process {
        kith_cli(server, user, &self.0)
    }
}

/// The `q` quantile (0–1) of `values`, nearest rank; NaN when there are
/// none. Sorts `values`.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// A report file written by `--report`.
pub fn report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("no report at {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Frames decoded from `user`, one figure per stats second, from a
/// `--stats-json` file.
pub fn frames_over_time(stats: &Path, user: &str) -> Vec<u64> {
    stats_over_time(stats, user)
        .iter()
        .filter_map(|p| p["frames_decoded"].as_u64())
        .collect()
}

/// What the `--stats-json` file says of `user`, one entry per stats second.
pub fn stats_over_time(stats: &Path, user: &str) -> Vec<Value> {
    std::fs::read_to_string(stats)
        .unwrap_or_else(|err| panic!("no stats at {}: {err}", stats.display()))
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|s| {
            s["peers"]
                .as_array()?
                .iter()
                .find(|p| p["user"] == user)
                .cloned()
        })
        .collect()
}

/// The report's entry for the peer with this user id.
pub fn peer<'a>(report: &'a Value, user: &str) -> &'a Value {
    report["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"] == user)
        .unwrap_or_else(|| panic!("no peer {user} in {report:#}"))
}

/// coturn with `use-auth-secret` on a free loopback port.
#[derive(Debug)]
pub struct Coturn {
    pub process: Process,
    pub port: u16,
    _dir: Scratch,
}

impl Coturn {
    pub fn start(secret: &str) -> Self {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self::spawn(
            Command::new("turnserver"),
            "127.0.0.1",
            port,
            secret,
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        )
    }

    /// coturn on host a of `lan`, on `LAN_A`:3478 (UDP and TCP), relaying
    /// from that address.
    pub fn start_in(lan: &Lan, secret: &str) -> Self {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &lan.a, "turnserver"]);
        Self::spawn(command, LAN_A, 3478, secret, || {
            lan.tcp_listening(&lan.a, LAN_A, 3478)
        })
    }

    /// Starts `command` (turnserver, perhaps behind `ip netns exec`) on
    /// `ip:port` and waits until `listening`.
    fn spawn(
        mut command: Command,
        ip: &str,
        port: u16,
        secret: &str,
        listening: impl Fn() -> bool,
    ) -> Self {
        let dir = Scratch::new(&format!("coturn-{ip}-{port}"));
        command
            .args([
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--allow-loopback-peers",
                "--use-auth-secret",
                "--realm=kith",
                "--log-file=stdout",
                "--no-stdout-log",
            ])
            .arg(format!("--listening-ip={ip}"))
            .arg(format!("--relay-ip={ip}"))
            .arg(format!("--listening-port={port}"))
            .arg(format!("--static-auth-secret={secret}"))
            .arg(format!(
                "--pidfile={}",
                dir.path("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.path("turndb").display()));
        let process = Process::spawn("turnserver", &mut command);
        let deadline = Instant::now() + PATIENCE;
        while !listening() {
            assert!(
                Instant::now() < deadline,
                "turnserver did not listen on {ip}:{port} (is coturn installed? cargo xtask test installs it)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            process,
            port,
            _dir: dir,
        }
    }
}

/// Two hosts on a LAN of their own: network namespaces joined by a veth
/// pair (or by a [`Wire`] with a delay), addresses 10.77.0.1 and 10.77.0.2
/// on the link, loopback up, and no default route. Removed when dropped.
/// Needs root and iproute2 (and nftables for [`Lan::lose_udp`]); `cargo
/// xtask test` installs them.
#[derive(Debug)]
pub struct Lan {
    pub a: String,
    pub b: String,
    /// The link's device in each namespace.
    dev_a: String,
    dev_b: String,
    wire: Option<Wire>,
}

pub const LAN_A: &str = "10.77.0.1";
pub const LAN_B: &str = "10.77.0.2";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn ip_steps(steps: &[Vec<&str>]) {
    for step in steps {
        assert!(
            ip(step),
            "`ip {}` failed: the network tests need root and iproute2 \
             (cargo xtask test installs it)",
            step.join(" ")
        );
    }
}

impl Lan {
    /// Builds the namespaces and a veth link (not `new`: it changes the host).
    pub fn up() -> Self {
        let lan = Self::namespaces("kv");
        ip_steps(&[
            vec![
                "link", "add", &lan.dev_a, "type", "veth", "peer", "name", &lan.dev_b,
            ],
            vec!["link", "set", &lan.dev_a, "netns", &lan.a],
            vec!["link", "set", &lan.dev_b, "netns", &lan.b],
            vec![
                "-n",
                &lan.a,
                "addr",
                "add",
                &format!("{LAN_A}/24"),
                "dev",
                &lan.dev_a,
            ],
            vec![
                "-n",
                &lan.b,
                "addr",
                "add",
                &format!("{LAN_B}/24"),
                "dev",
                &lan.dev_b,
            ],
        ]);
        lan.links_up();
        lan
    }

    /// The same two hosts with `delay` each way on the link between them:
    /// a [`Wire`] between two TUN devices instead of the veth.
    pub fn up_with_delay(delay: Delay) -> Self {
        let mut lan = Self::namespaces("kt");
        let open = |dev: &str| {
            wire::open_tun(dev).unwrap_or_else(|err| {
                panic!("cannot create TUN device {dev} (needs root and /dev/net/tun): {err}")
            })
        };
        let (tun_a, tun_b) = (open(&lan.dev_a), open(&lan.dev_b));
        ip_steps(&[
            vec!["link", "set", &lan.dev_a, "netns", &lan.a],
            vec!["link", "set", &lan.dev_b, "netns", &lan.b],
            vec![
                "-n", &lan.a, "addr", "add", LAN_A, "peer", LAN_B, "dev", &lan.dev_a,
            ],
            vec![
                "-n", &lan.b, "addr", "add", LAN_B, "peer", LAN_A, "dev", &lan.dev_b,
            ],
        ]);
        lan.links_up();
        lan.wire = Some(Wire::connect(tun_a, tun_b, delay).expect("the wire's threads start"));
        lan
    }

    fn namespaces(kind: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let lan = Lan {
            a: format!("kith-a{tag}"),
            b: format!("kith-b{tag}"),
            dev_a: format!("{kind}a{tag}"),
            dev_b: format!("{kind}b{tag}"),
            wire: None,
        };
        ip_steps(&[vec!["netns", "add", &lan.a], vec!["netns", "add", &lan.b]]);
        lan
    }

    fn links_up(&self) {
        ip_steps(&[
            vec!["-n", &self.a, "link", "set", &self.dev_a, "up"],
            vec!["-n", &self.b, "link", "set", &self.dev_b, "up"],
            vec!["-n", &self.a, "link", "set", "lo", "up"],
            vec!["-n", &self.b, "link", "set", "lo", "up"],
        ]);
    }

    /// A default route on each host, through the link: Chromium gathers no
    /// candidates on a host without one (its connections stay `new`),
    /// though nothing leaves the link either way.
    pub fn default_routes(&self) {
        ip_steps(&[
            vec!["-n", &self.a, "route", "add", "default", "dev", &self.dev_a],
            vec!["-n", &self.b, "route", "add", "default", "dev", &self.dev_b],
        ]);
    }

    /// `program` run inside namespace `ns`.
    pub fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }

    /// Both hosts drop `percent` % of the UDP packets they receive, at
    /// random (nftables; this kernel has no netem).
    pub fn lose_udp(&self, percent: u32) {
        self.nft(&format!(
            "table inet kith_loss {{\n chain input {{\n  type filter hook input priority 0;\n  \
             meta l4proto udp numgen random mod 100 lt {percent} drop\n }}\n}}\n"
        ));
    }

    /// Both hosts stop receiving UDP (the path is cut) until [`Lan::restore_udp`].
    pub fn cut_udp(&self) {
        self.nft("table inet kith_cut {\n chain input {\n  type filter hook input priority 0;\n  meta l4proto udp drop\n }\n}\n");
    }

    pub fn restore_udp(&self) {
        for ns in [&self.a, &self.b] {
            assert!(
                ip(&[
                    "netns", "exec", ns, "nft", "delete", "table", "inet", "kith_cut"
                ]),
                "nft could not restore the path"
            );
        }
    }

    fn nft(&self, rules: &str) {
        for ns in [&self.a, &self.b] {
            nft_in(ns, rules);
        }
    }

    /// Both hosts send at most `kbit` kbit/s onto the link (tc tbf).
    pub fn cap_rate(&self, kbit: u32) {
        for (ns, dev) in [(&self.a, &self.dev_a), (&self.b, &self.dev_b)] {
            let rate = format!("{kbit}kbit");
            assert!(
                ip(&[
                    "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
                    "rate", &rate, "burst", "32kbit", "latency", "200ms"
                ]),
                "tc refused the rate cap"
            );
        }
    }

    /// Lifts [`Lan::cap_rate`].
    pub fn uncap_rate(&self) {
        for (ns, dev) in [(&self.a, &self.dev_a), (&self.b, &self.dev_b)] {
            assert!(
                ip(&[
                    "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"
                ]),
                "tc could not lift the rate cap"
            );
        }
    }

    /// Host b moves from `LAN_B` to `address` on the same link, as a
    /// laptop that changes networks gets a new address: sockets bound to
    /// the old one stop working.
    pub fn renumber_b(&self, address: &str) {
        ip_steps(&[
            vec![
                "-n",
                &self.b,
                "addr",
                "del",
                &format!("{LAN_B}/24"),
                "dev",
                &self.dev_b,
            ],
            vec![
                "-n",
                &self.b,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                &self.dev_b,
            ],
        ]);
    }

    /// Whether something in `ns` accepts TCP connections on `ip:port`.
    pub fn tcp_listening(&self, ns: &str, ip: &str, port: u16) -> bool {
        Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{ip}/{port}"))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Host b neither sends nor receives UDP on the link (a firewall that
    /// lets only TCP out); loopback is untouched.
    pub fn block_udp_at_b(&self) {
        let dev = &self.dev_b;
        let rules = format!(
            "table inet kith_udp_blocked {{\n chain input {{\n  type filter hook input priority 0;\n  \
             iifname \"{dev}\" meta l4proto udp drop\n }}\n chain output {{\n  \
             type filter hook output priority 0;\n  oifname \"{dev}\" meta l4proto udp drop\n }}\n}}\n"
        );
        nft_in(&self.b, &rules);
    }

    /// signaling-dev inside host a, with these extra arguments.
    pub fn server_with(&self, extra: &[String]) -> Process {
        let mut server = Process::spawn(
            "signaling-dev",
            self.exec(&self.a, &binary("signaling-dev"))
                .args(["--listen", &format!("{LAN_A}:8787")])
                .args(extra),
        );
        server.wait_for_line("\"listening\"", PATIENCE);
        server
    }

    /// signaling-dev inside host a.
    pub fn server(&self) -> Process {
        self.server_with(&[])
    }

    pub fn url(&self) -> String {
        format!("ws://{LAN_A}:8787/ws")
    }

    /// The client page of [`Lan::server`] with `query`.
    pub fn page(&self, query: &str) -> String {
        format!("http://{LAN_A}:8787/?{query}")
    }

    /// kith-cli inside namespace `ns` with these arguments after `--user`.
    pub fn kith_cli(&self, ns: &str, user: &str, args: &Args) -> Process {
        let mut command = self.exec(ns, &binary("kith-cli"));
        command
            .args(["--server", &self.url(), "--user", user])
            .args(&args.0);
        Process::spawn(&format!("kith-cli {user}"), &mut command)
    }
}

/// Loads nftables `rules` in namespace `ns`.
fn nft_in(ns: &str, rules: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft runs (cargo xtask test installs nftables)");
    if let Some(stdin) = child.stdin.as_mut() {
        use std::io::Write as _;
        stdin.write_all(rules.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success(), "nft refused: {rules}");
}

impl Drop for Lan {
    fn drop(&mut self) {
        // The wire's threads first: they hold the TUN devices.
        drop(self.wire.take());
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}
