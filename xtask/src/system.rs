//! The Debian packages the build, the app and the tests need, installed when
//! missing (as root, or through sudo).

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Why packages are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Test,
}

/// Needed to build the workspace: compilers and the C libraries the codec,
/// audio-processing and device crates link (see shared/stack.md).
const BUILD: &[&str] = &[
    "build-essential",
    "pkg-config",
    "clang",
    "libclang-dev",
    "cmake",
    "nasm",
    "libvpx-dev",
    "libdav1d-dev",
    "libaom-dev",
    "libopus-dev",
    "libwebrtc-audio-processing-dev",
    "libasound2-dev",
    // The desktop shell: Tauri 2 on WebKitGTK.
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libxdo-dev",
];
/// Needed only by tests and benchmarks: a real TURN server, and PulseAudio
/// for audio devices (null sinks) on machines without sound hardware, and
/// iproute2 and nftables for the network namespaces (and their loss) of
/// the network tests; a virtual display, WebKit's WebDriver, a D-Bus
/// session, Mesa and ImageMagick for the desktop window's tests; Chromium
/// for the browser tests.
const TEST: &[&str] = &[
    "coturn",
    "pulseaudio",
    "pulseaudio-utils",
    "iproute2",
    "nftables",
    "xvfb",
    "webkit2gtk-driver",
    "dbus-daemon",
    // WebGL under Xvfb (Mesa's software rasterizer), and the screenshots
    // (ImageMagick's `import`) the window test checks the video on.
    "libgl1-mesa-dri",
    "imagemagick",
    // Debian's Chromium and its WebDriver: the browser-interop tests call
    // kith-cli from the signaling server's browser client.
    "chromium",
    "chromium-driver",
];

fn wanted(purpose: Purpose) -> Vec<&'static str> {
    let mut packages = BUILD.to_vec();
    // The UI builds with Node.js; a machine that has one (Debian's or
    // NodeSource's) keeps it.
    if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        packages.extend_from_slice(&["nodejs", "npm"]);
    }
    if purpose == Purpose::Test {
        packages.extend_from_slice(TEST);
    }
    packages
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.starts_with(b"ii"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Installs whichever wanted packages are missing; does nothing when all are there.
pub fn ensure(purpose: Purpose) -> anyhow::Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "==> not a Debian-like system: install by hand the equivalents of {}",
            wanted(purpose).join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = wanted(purpose)
        .into_iter()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("==> installing system packages: {}", missing.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = Command::new(sudo.first().copied().unwrap_or("apt-get"));
        if !sudo.is_empty() {
            command.arg("apt-get");
        }
        command
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        let status = command.status().context("cannot run apt-get")?;
        if !status.success() {
            bail!(
                "apt-get {} failed ({status}); install by hand: apt-get install {}",
                args.join(" "),
                missing.join(" ")
            );
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    apt(&install)
}
