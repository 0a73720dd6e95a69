//! kith-cli: the headless Kith client on the same engine as the desktop app.

mod options;
mod report;
mod session;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = options::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Before any thread starts, so all of them inherit it.
    if let Err(err) = kith_call::priority::raise_call_priority() {
        tracing::debug!(%err, "the call runs at the usual priority");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kith-cli: cannot start the async runtime: {err}");
            return ExitCode::from(session::status::FAILED);
        }
    };
    match runtime.block_on(session::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kith-cli: {err:#}");
            ExitCode::from(session::status::FAILED)
        }
    }
}
