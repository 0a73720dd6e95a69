//! Running one command on the call engine: connect, ring or answer, stay in
//! the call, report. The rules (what ends a ring, when a room is joined,
//! flushing the last messages) are the engine's; this only reads events.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use kith_call::{Call, CallEvent, CallEvents, CallSummary, RingOutcome};
use kith_proto::{InviteAnswer, MediaKind, RoomId};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use crate::options::{CallOptions, Cli, Command};
use crate::report;

/// Exit statuses, so scripts and tests can tell outcomes apart.
pub mod status {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const DECLINED: u8 = 3;
    pub const BUSY: u8 = 4;
    pub const OFFLINE: u8 = 5;
    pub const NO_ANSWER: u8 = 6;
    /// The call ran but not every expected peer connected and sent media.
    pub const CALL_INCOMPLETE: u8 = 7;
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = match &cli.command {
        Command::Join { call, .. } | Command::Call { call, .. } | Command::Answer { call, .. } => {
            call.clone()
        }
        Command::Online => CallOptions::for_online(),
    };
    let config = options.call_config(&cli);
    let (call, mut events) = Call::start(config).context("cannot start the call engine")?;
    let mut out = Output::open(&options)?;
    wait_connected(&mut events, &mut out).await?;

    let code = match &cli.command {
        Command::Online => {
            // `SignalingConnected` (printed) carried the list.
            call.finish().await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Join { room, .. } => {
            call.join(room.clone()).await?;
            in_call(&call, &mut events, &options, &mut out).await?
        }
        Command::Call {
            callee, ring_secs, ..
        } => {
            let media = if options.video == kith_call::VideoSourceSpec::None {
                MediaKind::Audio
            } else {
                MediaKind::Video
            };
            let room = call
                .ring(callee.clone(), media, Duration::from_secs(*ring_secs))
                .await?;
            match ring_outcome(&mut events, &mut out, &room).await? {
                // The engine joins the room on accept.
                RingOutcome::Accepted => in_call(&call, &mut events, &options, &mut out).await?,
                RingOutcome::Declined => status::DECLINED,
                RingOutcome::Busy => status::BUSY,
                RingOutcome::Offline => status::OFFLINE,
                RingOutcome::NoAnswer | RingOutcome::Canceled => status::NO_ANSWER,
            }
        }
        Command::Answer {
            decline,
            busy,
            ignore,
            wait_secs,
            ..
        } => {
            let patience = Duration::from_secs(*wait_secs);
            let Some(room) = wait_invite(&mut events, &mut out, patience).await? else {
                call.finish().await?;
                return Ok(ExitCode::from(status::NO_ANSWER));
            };
            if *ignore {
                let stopped = wait_ring_stopped(&mut events, &mut out, &room, patience).await?;
                call.finish().await?;
                return Ok(ExitCode::from(if stopped {
                    status::OK
                } else {
                    status::NO_ANSWER
                }));
            }
            let answer = match (decline, busy) {
                (true, _) => InviteAnswer::Decline,
                (_, true) => InviteAnswer::Busy,
                _ => InviteAnswer::Accept,
            };
            // Accepting joins the room.
            call.answer(room, answer).await?;
            if answer == InviteAnswer::Accept {
                in_call(&call, &mut events, &options, &mut out).await?
            } else {
                status::OK
            }
        }
    };
    // Finishing makes sure the server heard our last words.
    let summary = call.finish().await?;
    // Events emitted while finishing (peers leaving) still get printed.
    while let Ok(event) = events.try_recv() {
        out.event(&event)?;
    }
    // Judged only when a call took place (not after a decline or busy).
    let took_part = !summary.peers.is_empty()
        || options.expect_peers > 0 && code == status::OK && took_part_in_call(&cli.command);
    let code = if code == status::OK && took_part && !call_worked(&summary, options.expect_peers) {
        status::CALL_INCOMPLETE
    } else {
        code
    };
    if let Some(path) = &options.report {
        report::write(path, &summary, &out.acks).await?;
    }
    Ok(ExitCode::from(code))
}

/// Whether the command, having returned OK, was in a call (not a reply).
fn took_part_in_call(command: &Command) -> bool {
    match command {
        Command::Answer {
            decline,
            busy,
            ignore,
            ..
        } => !(*decline || *busy || *ignore),
        _ => true,
    }
}

/// Every expected peer connected and sent media.
fn call_worked(summary: &CallSummary, expected: usize) -> bool {
    let connected: Vec<_> = summary
        .peers
        .iter()
        .filter(|p| p.connect_ms.is_some())
        .collect();
    connected.len() >= expected
        && connected
            .iter()
            .all(|p| p.frames_decoded > 0 || p.audio_packets_received > 0)
}

/// The next event, printed; `None` when `deadline` passes first.
async fn next_event(
    events: &mut CallEvents,
    out: &mut Output,
    deadline: Option<Instant>,
) -> anyhow::Result<Option<CallEvent>> {
    let event = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(event) => event,
            Err(_) => return Ok(None),
        },
        None => events.recv().await,
    };
    let event = event.context("the call engine stopped")?;
    out.event(&event)?;
    Ok(Some(event))
}

async fn wait_connected(events: &mut CallEvents, out: &mut Output) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let Some(event) = next_event(events, out, Some(deadline)).await? else {
            bail!("no answer from the signaling server in 15 s (is it running? see --server)");
        };
        match event {
            CallEvent::SignalingConnected { .. } => return Ok(()),
            CallEvent::Error { error } => bail!("{error}"),
            _ => {}
        }
    }
}

/// How our ringing of `room` ended (the engine times it out itself).
async fn ring_outcome(
    events: &mut CallEvents,
    out: &mut Output,
    room: &RoomId,
) -> anyhow::Result<RingOutcome> {
    loop {
        if let Some(CallEvent::RingEnded {
            room: r, outcome, ..
        }) = next_event(events, out, None).await?
            && r == *room
        {
            return Ok(outcome);
        }
    }
}

async fn wait_invite(
    events: &mut CallEvents,
    out: &mut Output,
    patience: Duration,
) -> anyhow::Result<Option<RoomId>> {
    let deadline = Instant::now() + patience;
    loop {
        match next_event(events, out, Some(deadline)).await? {
            None => return Ok(None),
            Some(CallEvent::Invite { room, .. }) => return Ok(Some(room)),
            Some(_) => {}
        }
    }
}

async fn wait_ring_stopped(
    events: &mut CallEvents,
    out: &mut Output,
    room: &RoomId,
    patience: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + patience;
    loop {
        match next_event(events, out, Some(deadline)).await? {
            None => return Ok(false),
            Some(CallEvent::InviteCanceled { room: r, .. }) if r == *room => return Ok(true),
            Some(_) => {}
        }
    }
}

/// Stays in the call until `--duration` passes, Ctrl-C, or the engine
/// stops; sends `--chat` messages once peers are there.
async fn in_call(
    call: &Call,
    events: &mut CallEvents,
    options: &CallOptions,
    out: &mut Output,
) -> anyhow::Result<u8> {
    let started = Instant::now();
    let deadline = options
        .duration
        .map(|secs| started + Duration::from_secs_f64(secs.max(0.0)));
    let mut connected = 0usize;
    let mut chat_started = false;
    let (typed_tx, mut typed) = mpsc::unbounded_channel::<String>();
    if std::io::stdin().is_terminal() {
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if typed_tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let sleep_until_deadline = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until_deadline);
    loop {
        tokio::select! {
            () = &mut sleep_until_deadline => break,
            _ = tokio::signal::ctrl_c() => {
                info!("interrupted; leaving the call");
                break;
            }
            line = typed.recv() => {
                if let Some(line) = line && !line.trim().is_empty()
                    && let Err(err) = call.send_chat(line).await
                {
                    eprintln!("kith-cli: {err}");
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                out.event(&event)?;
                match &event {
                    CallEvent::PeerConnected { .. } => connected += 1,
                    CallEvent::PeerLeft { .. } => connected = connected.saturating_sub(1),
                    _ => {}
                }
                if !chat_started && options.chat > 0 && connected >= options.expect_peers.max(1) {
                    chat_started = true;
                    let (call, count, interval) = (call.clone(), options.chat, Duration::from_millis(options.chat_interval_ms));
                    tokio::spawn(async move {
                        for n in 1..=count {
                            if let Err(err) = call.send_chat(format!("message {n} of {count}")).await {
                                eprintln!("kith-cli: chat: {err}");
                                break;
                            }
                            tokio::time::sleep(interval).await;
                        }
                    });
                }
            }
        }
    }
    Ok(status::OK)
}

/// Where events and stats go.
pub struct Output {
    stdout: std::io::Stdout,
    stats: Option<std::io::BufWriter<std::fs::File>>,
    acks: report::AckTimes,
}

impl Output {
    fn open(options: &CallOptions) -> anyhow::Result<Self> {
        let stats = match &options.stats_json {
            Some(path) => Some(std::io::BufWriter::new(create(path)?)),
            None => None,
        };
        Ok(Self {
            stdout: std::io::stdout(),
            stats,
            acks: report::AckTimes::default(),
        })
    }

    fn event(&mut self, event: &CallEvent) -> anyhow::Result<()> {
        self.acks.event(event, std::time::Instant::now());
        let line = serde_json::to_string(event)?;
        if let CallEvent::Stats { .. } = event {
            if let Some(stats) = &mut self.stats {
                writeln!(stats, "{line}")?;
                stats.flush()?;
            }
            return Ok(());
        }
        let mut stdout = self.stdout.lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        Ok(())
    }
}

fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))
}
