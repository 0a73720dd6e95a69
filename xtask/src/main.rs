//! `cargo xtask run|test|bench`: the project's two commands (and its
//! benchmarks). Installs the system packages that are missing, builds, runs.

mod system;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Kith's build, test and run commands")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build the UI and the desktop app (release) and open the Kith window.
    Run {
        /// Arguments passed on to the app.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Format check, clippy with -D warnings, then every test.
    Test {
        /// Do not install missing system packages.
        #[arg(long)]
        no_install: bool,
    },
    /// Run benchmarks and print their tables (default all but soak).
    Bench {
        /// Which benchmarks: signaling, media, call, network, app, soak
        /// (an hour; KITH_SOAK_SECONDS shortens it).
        names: Vec<String>,
    },
    /// Only install the system packages the build and tests need.
    Deps,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Run { args } => run(&args),
        Task::Test { no_install } => test(!no_install),
        Task::Bench { names } => bench(&names),
        Task::Deps => system::ensure(system::Purpose::Test),
    }
}

/// Runs a command, echoing it first; fails with its exit status.
fn step(description: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {description}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{description} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

fn workspace_root() -> std::path::PathBuf {
    // xtask lives one level below the workspace root.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test(install: bool) -> anyhow::Result<()> {
    if install {
        system::ensure(system::Purpose::Test)?;
        ensure_tauri_driver()?;
    }
    // The app embeds the built UI, so it comes before anything compiles it.
    ui(UiCheck::Full)?;
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "cargo clippy -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The end-to-end tests (tests/) run the binaries as processes.
    step(
        "build the binaries",
        cargo().args(["build", "--workspace", "--bins", "--locked"]),
    )?;
    if has_nextest() {
        // Doc tests first: nextest does not run them, and its summary should
        // be the run's last word.
        step(
            "doc tests",
            cargo().args(["test", "--workspace", "--locked", "--doc"]),
        )?;
        step(
            "cargo nextest run",
            cargo().args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ]),
        )?;
    } else {
        step(
            "cargo test",
            cargo().args(["test", "--workspace", "--locked", "--no-fail-fast"]),
        )?;
    }
    Ok(())
}

fn run(args: &[String]) -> anyhow::Result<()> {
    system::ensure(system::Purpose::Run)?;
    ui(UiCheck::BuildOnly)?;
    step(
        "build the desktop app",
        cargo().args(["build", "--release", "--locked", "-p", "kith-desktop"]),
    )?;
    let binary = workspace_root().join("target/release/kith");
    eprintln!("==> starting Kith");
    let status = Command::new(&binary)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    if !status.success() {
        bail!("Kith exited with {status}");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UiCheck {
    /// Type-check and unit-test the UI, then build it.
    Full,
    BuildOnly,
}

/// Installs the UI's packages when the lock file changed, checks, builds `ui/dist`.
fn ui(check: UiCheck) -> anyhow::Result<()> {
    let dir = workspace_root().join("ui");
    let npm = |args: &[&str]| {
        let mut command = Command::new("npm");
        command.current_dir(&dir).args(args);
        command
    };
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if modified(&installed) < modified(&lock) {
        step("npm ci (ui)", &mut npm(&["ci", "--no-audit", "--no-fund"]))?;
    }
    if check == UiCheck::Full {
        step("ui: TypeScript check", &mut npm(&["run", "check"]))?;
        step("ui: unit tests", &mut npm(&["test"]))?;
    }
    step(
        "ui: build",
        &mut npm(&["exec", "--", "vite", "build", "--logLevel", "warn"]),
    )
}

/// tauri-driver bridges WebDriver to WebKitWebDriver for the window tests.
fn ensure_tauri_driver() -> anyhow::Result<()> {
    let installed = |program: &std::ffi::OsStr| {
        Command::new(program)
            .arg("--help")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let in_cargo_home = cargo_home.map(|home| home.join("bin/tauri-driver"));
    if installed("tauri-driver".as_ref())
        || in_cargo_home.is_some_and(|path| installed(path.as_os_str()))
    {
        return Ok(());
    }
    step(
        "cargo install tauri-driver",
        cargo().args(["install", "tauri-driver", "--locked", "--version", "2.1.0"]),
    )
}

/// The benchmarks' processes, built with the release profile.
fn build_release(packages: &[&str]) -> anyhow::Result<()> {
    let mut command = cargo();
    command.args(["build", "--release", "--locked"]);
    for package in packages {
        command.args(["-p", package]);
    }
    step("build release binaries", &mut command)
}

/// One of kith-e2e's benchmarks, which start the release `binaries`.
fn e2e_bench(name: &str, binaries: &[&str]) -> anyhow::Result<()> {
    build_release(binaries)?;
    step(
        &format!("{name} benchmark"),
        cargo().args(["bench", "--locked", "-p", "kith-e2e", "--bench", name]),
    )
}

fn bench(names: &[String]) -> anyhow::Result<()> {
    const KNOWN: [&str; 6] = ["signaling", "media", "call", "network", "app", "soak"];
    // The soak takes an hour: only when asked for by name.
    let wanted: Vec<&str> = if names.is_empty() {
        KNOWN
            .iter()
            .copied()
            .filter(|name| *name != "soak")
            .collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    system::ensure(system::Purpose::Test)?;
    for name in wanted {
        match name {
            "signaling" => step(
                "signaling benchmark",
                cargo().args([
                    "bench",
                    "--locked",
                    "-p",
                    "signaling-dev",
                    "--bench",
                    "signaling",
                ]),
            )?,
            "media" => step(
                "media benchmark",
                cargo().args([
                    "bench",
                    "--locked",
                    "-p",
                    "kith-media",
                    "--bench",
                    "media",
                    "--bench",
                    "audio",
                ]),
            )?,
            "app" => {
                ensure_tauri_driver()?;
                ui(UiCheck::BuildOnly)?;
                e2e_bench("app", &["kith-desktop", "kith-cli", "signaling-dev"])?;
            }
            "call" => e2e_bench("call", &["kith-cli", "signaling-dev"])?,
            "network" => e2e_bench("network", &["kith-cli", "signaling-dev", "kith-e2e"])?,
            "soak" => e2e_bench("soak", &["kith-cli", "signaling-dev"])?,
            other => bail!("unknown benchmark {other:?}; known: {}", KNOWN.join(", ")),
        }
    }
    Ok(())
}
