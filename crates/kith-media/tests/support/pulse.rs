//! Real-device test support: a PulseAudio server with throwaway null sinks.

#![allow(clippy::unwrap_used, dead_code)]

use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Set in the re-executed child so it never re-executes again.
const CHILD_MARKER: &str = "KITH_AUDIO_TEST_CHILD";

/// Runs `pactl` with a hard time limit, so a hung server fails the test instead of hanging it.
pub fn pactl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg("20")
        .arg("pactl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run pactl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "pactl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Path of the running server's socket, starting PulseAudio first if needed.
fn server_socket() -> &'static str {
    static SOCKET: OnceLock<String> = OnceLock::new();
    SOCKET.get_or_init(|| {
        if pactl(&["info"]).is_err() {
            // As root PulseAudio warns that it is not meant for root, then runs.
            let started = Command::new("pulseaudio")
                .args(["-D", "--exit-idle-time=-1"])
                .output()
                .expect("pulseaudio binary (Debian package pulseaudio) is needed");
            eprintln!(
                "started pulseaudio: {} {}",
                started.status,
                String::from_utf8_lossy(&started.stderr).trim()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let info = loop {
            match pactl(&["info"]) {
                Ok(info) => break info,
                Err(e) if Instant::now() > deadline => panic!("PulseAudio did not come up: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let server = info
            .lines()
            .find_map(|l| l.strip_prefix("Server String:"))
            .expect("pactl info names the server")
            .trim();
        server.strip_prefix("unix:").unwrap_or(server).to_owned()
    })
}

/// Makes sure PulseAudio runs and that cpal can reach it. cpal finds the server
/// only through `PULSE_SERVER` or `XDG_RUNTIME_DIR`, which a root shell or CI may
/// lack, and the environment cannot be changed safely inside a threaded test; so
/// then the test re-runs itself in a child process with `PULSE_SERVER` set.
///
/// Tests run one at a time (the guard), so a 2-core machine is not also loaded
/// by the suite itself. `Some` means: run the test body here, holding the guard;
/// `None` means a child process already ran (and passed) it.
pub fn in_pulse_env(test_name: &str) -> Option<MutexGuard<'static, ()>> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let socket = server_socket();
    if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
        return Some(guard);
    }
    assert!(
        std::env::var_os(CHILD_MARKER).is_none(),
        "cpal cannot see PulseAudio even with PULSE_SERVER=unix:{socket}"
    );
    let out: Output = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("PULSE_SERVER", format!("unix:{socket}"))
        .env(CHILD_MARKER, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "--- child run of {test_name} ---\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child run of {test_name} failed");
    assert!(
        stdout.contains("1 passed"),
        "child run of {test_name} did not run the test"
    );
    None
}

/// A null sink and a source fed from its monitor, unloaded on drop.
pub struct PulseFixture {
    pub sink: String,
    pub source: String,
    modules: Vec<String>,
}

impl PulseFixture {
    /// Device formats are pinned (44.1 kHz s16 stereo) so the resampling and
    /// sample-conversion paths are exercised whatever the server defaults are.
    pub fn new(tag: &str) -> Self {
        let id = format!("{}_{tag}", std::process::id());
        let sink = format!("kith_test_spk_{id}");
        let source = format!("kith_test_mic_{id}");
        let mut fixture = Self {
            sink: sink.clone(),
            source: source.clone(),
            modules: Vec::new(),
        };
        fixture.load(&[
            "module-null-sink",
            &format!("sink_name={sink}"),
            "rate=44100",
            "channels=2",
            "format=s16le",
            "sink_properties=device.description=KithTestSpeaker",
        ]);
        fixture.load(&[
            "module-remap-source",
            &format!("master={sink}.monitor"),
            &format!("source_name={source}"),
            "rate=44100",
            "channels=2",
            "format=s16le",
            "source_properties=device.description=KithTestMic",
        ]);
        fixture
    }

    fn load(&mut self, args: &[&str]) {
        let mut full = vec!["load-module"];
        full.extend_from_slice(args);
        let index = pactl(&full).unwrap().trim().to_owned();
        self.modules.push(index);
    }

    /// Unloads the modules now (newest first); later calls and drop do nothing.
    pub fn unload(&mut self) {
        while let Some(index) = self.modules.pop() {
            if let Err(e) = pactl(&["unload-module", &index]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

impl Drop for PulseFixture {
    fn drop(&mut self) {
        self.unload();
    }
}

/// Power of `samples` at `freq` (Goertzel).
pub fn goertzel(samples: &[f32], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2)
}

pub fn dbfs(rms: f64) -> f64 {
    20.0 * rms.max(1e-12).log10()
}
