//! One browser client page in its own headless Chromium, for benchmarks
//! that need a browser peer inside a network namespace: run it under
//! `ip netns exec`, and chromedriver, Chromium and their sockets are all in
//! that namespace, where the benchmark process cannot reach them.
//!
//! `browser-peer URL SECONDS OUT`: opens `URL` (the client page with its
//! query), prints `in-call` once the page has joined, then appends the
//! page's report (`window.kith.report()`) to `OUT` once a second as a JSON
//! line with the seconds since joining, for `SECONDS`, and closes.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use kith_e2e::browser::Chromium;
use serde_json::json;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, seconds, out] = args.as_slice() else {
        eprintln!("usage: browser-peer URL SECONDS OUT");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().unwrap_or_else(|_| {
        eprintln!("SECONDS must be a whole number, not {seconds:?}");
        std::process::exit(2);
    });
    let mut file =
        std::fs::File::create(out).unwrap_or_else(|err| panic!("cannot create {out}: {err}"));
    let chromium = Chromium::start();
    let page = chromium.open(url).await;
    page.wait_until("joined", "window.kith.state === 'in-call'")
        .await;
    println!("in-call");
    std::io::stdout().flush().unwrap();
    let joined = Instant::now();
    let mut next = joined;
    while joined.elapsed() < Duration::from_secs(seconds) {
        next += Duration::from_secs(1);
        tokio::time::sleep_until(next.into()).await;
        let report = page.report().await;
        let line = json!({ "t": joined.elapsed().as_secs_f64(), "report": report });
        writeln!(file, "{line}").unwrap();
    }
    page.close().await;
}
