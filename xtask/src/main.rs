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
    /// Start Kith (for now: the signaling server, with what to open next).
    Run {
        /// Arguments passed on to signaling-dev, e.g. -- --listen 127.0.0.1:9000
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Format check, clippy with -D warnings, then every test.
    Test {
        /// Do not install missing system packages.
        #[arg(long)]
        no_install: bool,
    },
    /// Run benchmarks and print their tables: signaling (default all).
    Bench {
        /// Which benchmarks: signaling, media, call.
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
    }
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
    step(
        "build signaling-dev",
        cargo().args(["build", "--release", "--locked", "-p", "signaling-dev"]),
    )?;
    let binary = workspace_root().join("target/release/signaling-dev");
    eprintln!(
        "==> Kith's desktop app is not built yet; starting the signaling server it will use.\n    \
         Open the address printed below (the \"ws\" one is for clients; http://HOST:PORT/ shows \
         the server's page). Stop it with Ctrl-C."
    );
    let status = Command::new(&binary)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    if !status.success() {
        bail!("signaling-dev exited with {status}");
    }
    Ok(())
}

fn bench(names: &[String]) -> anyhow::Result<()> {
    const KNOWN: [&str; 3] = ["signaling", "media", "call"];
    let wanted: Vec<&str> = if names.is_empty() {
        KNOWN.to_vec()
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
            "call" => {
                step(
                    "build release binaries",
                    cargo().args([
                        "build",
                        "--release",
                        "--locked",
                        "-p",
                        "kith-cli",
                        "-p",
                        "signaling-dev",
                    ]),
                )?;
                step(
                    "call benchmark",
                    cargo().args(["bench", "--locked", "-p", "kith-e2e", "--bench", "call"]),
                )?;
                step(
                    "data channel benchmark",
                    cargo().args([
                        "bench",
                        "--locked",
                        "-p",
                        "kith-call",
                        "--bench",
                        "datachannel",
                    ]),
                )?;
            }
            other => bail!("unknown benchmark {other:?}; known: {}", KNOWN.join(", ")),
        }
    }
    Ok(())
}
