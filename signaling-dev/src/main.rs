//! `signaling-dev`: run Kith's dev signaling server on its own.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use signaling_dev::{Server, ServerConfig};

/// Kith's dev signaling server (protocol v1). Prints one JSON line with its
/// address when it is listening; logs go to stderr (RUST_LOG sets the level).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Require this token in every hello.
    #[arg(long, env = "KITH_SIGNALING_TOKEN")]
    token: Option<String>,
    /// Most sessions in one room (mesh calls).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    room_limit: u16,
    /// STUN server URL handed to clients (repeatable).
    #[arg(long = "stun", value_name = "URL")]
    stun: Vec<String>,
    /// TURN server URL handed to clients (repeatable); needs --turn-secret.
    #[arg(long = "turn", value_name = "URL", requires = "turn_secret")]
    turn: Vec<String>,
    /// coturn's static-auth-secret, to mint TURN REST credentials.
    #[arg(long, env = "KITH_TURN_SECRET")]
    turn_secret: Option<String>,
    /// Lifetime of TURN credentials, in seconds.
    #[arg(long, default_value_t = 86_400)]
    turn_ttl: u64,
    /// Seconds between WebSocket pings.
    #[arg(long, default_value_t = 20.0)]
    ping_interval: f64,
    /// Seconds of silence after which a session is dropped.
    #[arg(long, default_value_t = 60.0)]
    dead_after: f64,
    /// Messages per second one session may send (sustained).
    #[arg(long, default_value_t = 50.0)]
    rate_limit: f64,
    /// Messages one session may send in a burst.
    #[arg(long, default_value_t = 200.0)]
    rate_burst: f64,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, not {value}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if args.rate_limit <= 0.0 || args.rate_burst < 1.0 {
        anyhow::bail!("--rate-limit must be above 0 and --rate-burst at least 1");
    }
    // Each session is a socket; the default soft limit (often 1024) would cap
    // the server far below what it can hold.
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("could not raise the open-file limit: {err}");
    }
    let config = ServerConfig {
        listen: args.listen,
        token: args.token,
        room_limit: usize::from(args.room_limit),
        stun_urls: args.stun,
        turn_urls: args.turn,
        turn_secret: args.turn_secret,
        turn_ttl: Duration::from_secs(args.turn_ttl),
        ping_interval: seconds("ping-interval", args.ping_interval)?,
        dead_after: seconds("dead-after", args.dead_after)?,
        rate_per_second: args.rate_limit,
        rate_burst: args.rate_burst,
        ..ServerConfig::default()
    };
    // Watch for signals before saying we are ready, so a stop request that
    // follows the ready line at once is never missed.
    let stop = stop_signal()?;
    let server = Server::start(config).await?;
    let addr = server.local_addr();
    let ready = serde_json::json!({"listening": addr.to_string(), "ws": server.ws_url()});
    #[allow(clippy::print_stdout)] // The one machine-readable line is this binary's contract.
    {
        println!("{ready}");
    }
    stop.await?;
    tracing::info!("shutting down");
    server.shutdown().await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; both are watched from the moment this returns.
fn stop_signal() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        Ok(())
    })
}
