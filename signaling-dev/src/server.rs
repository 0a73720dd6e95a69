//! Starting and stopping a server, and the task that owns the hub.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::serve::ListenerExt;
use kith_proto::{DisplayName, Request, RequestId, SessionId, UserId};
use tokio::net::TcpListener;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::hub::{Hub, HubConfig, Outbound, SessionKey};
use crate::metrics::Metrics;

/// Longest wait for connections to finish closing at shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source} (is another server already using that port?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped unexpectedly: {0}")]
    Stopped(String),
}

/// What a connection tells the hub task.
#[derive(Debug)]
pub(crate) enum HubInput {
    Hello {
        key: SessionKey,
        session_id: SessionId,
        outbox: mpsc::Sender<Outbound>,
        user: UserId,
        name: Option<DisplayName>,
        re: Option<RequestId>,
    },
    Message {
        key: SessionKey,
        request: Request,
    },
    Disconnect {
        key: SessionKey,
    },
}

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub metrics: Metrics,
    pub hub: mpsc::Sender<HubInput>,
    next_key: AtomicU64,
    /// Never sent on: when every clone of `Shared` is gone, every connection
    /// task has finished, and shutdown can return.
    _alive: mpsc::Sender<()>,
}

impl Shared {
    pub(crate) fn next_key(&self) -> SessionKey {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running server. Dropping it without [`Server::shutdown`] leaves it
/// running until the runtime stops.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `config.listen` and starts serving on the current tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics = Metrics::default();
        let hub = Hub::new(
            HubConfig {
                room_limit: config.room_limit,
                stun_urls: config.stun_urls.clone(),
                turn_urls: config.turn_urls.clone(),
                turn_secret: config.turn_secret.clone(),
                turn_ttl_secs: config.turn_ttl.as_secs(),
            },
            metrics.clone(),
        );
        let (hub_tx, hub_rx) = mpsc::channel(4096);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (hub_stop_tx, hub_stop_rx) = oneshot::channel::<()>();
        let hub_task = tokio::spawn(run_hub(hub, hub_rx, hub_stop_rx, metrics.clone()));
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let shared = Arc::new(Shared {
            config,
            metrics: metrics.clone(),
            hub: hub_tx,
            next_key: AtomicU64::new(1),
            _alive: alive_tx,
        });
        let router = crate::http::router(shared);
        let task = tokio::spawn(async move {
            // Signaling is small messages that must go at once: Nagle's
            // algorithm held an answer back until the previous one was
            // acknowledged (Node's `ws` turns it off on every socket too).
            let listener = listener.tap_io(|stream| {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(%err, "cannot turn off Nagle's algorithm");
                }
            });
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                    // Close every session now: upgraded connections are not
                    // waited for by the HTTP server's graceful shutdown.
                    let _ = hub_stop_tx.send(());
                })
                .await;
            let _ = hub_task.await;
            // Let the connections send their close frames before returning,
            // so a process that exits right after shutdown loses none.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv()).await;
            served
        });
        tracing::info!(%local_addr, "signaling server listening");
        Ok(Server {
            local_addr,
            metrics,
            stop: Some(stop_tx),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The WebSocket URL clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.local_addr)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Closes every session (code 1001) and stops listening.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(ServerError::Stopped(err.to_string())),
            Err(err) => Err(ServerError::Stopped(err.to_string())),
        }
    }
}

/// Owns the hub: applies inputs in arrival order and delivers what it produces.
async fn run_hub(
    mut hub: Hub,
    mut inputs: mpsc::Receiver<HubInput>,
    mut stop: oneshot::Receiver<()>,
    metrics: Metrics,
) {
    let mut outboxes: HashMap<SessionKey, mpsc::Sender<Outbound>> = HashMap::new();
    loop {
        let input = tokio::select! {
            input = inputs.recv() => input,
            _ = &mut stop => None,
        };
        let Some(input) = input else { break };
        apply(&mut hub, &mut outboxes, input);
        // Take whatever else is already waiting before delivering, so bursts
        // are handled without a wake-up per message.
        while let Ok(input) = inputs.try_recv() {
            apply(&mut hub, &mut outboxes, input);
        }
        deliver(&mut hub, &mut outboxes, &metrics);
    }
    // Dropping every outbox tells each connection to close.
    tracing::info!(sessions = outboxes.len(), "closing all sessions");
}

fn apply(
    hub: &mut Hub,
    outboxes: &mut HashMap<SessionKey, mpsc::Sender<Outbound>>,
    input: HubInput,
) {
    match input {
        HubInput::Hello {
            key,
            session_id,
            outbox,
            user,
            name,
            re,
        } => {
            let now_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            outboxes.insert(key, outbox);
            hub.hello(key, session_id, user, name, re, now_unix);
        }
        HubInput::Message { key, request } => hub.handle(key, request),
        HubInput::Disconnect { key } => {
            outboxes.remove(&key);
            hub.disconnect(key);
        }
    }
}

/// Hands queued frames to their sessions. A session whose queue is full is not
/// reading: it is dropped (its connection closes with 1008) rather than let
/// it grow the server's memory or hold up everyone else.
fn deliver(
    hub: &mut Hub,
    outboxes: &mut HashMap<SessionKey, mpsc::Sender<Outbound>>,
    metrics: &Metrics,
) {
    loop {
        let frames = hub.take_outbound();
        if frames.is_empty() {
            return;
        }
        let mut dropped = Vec::new();
        for (key, frame) in frames {
            let Some(outbox) = outboxes.get(&key) else {
                continue;
            };
            match outbox.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(key, "session is not reading its messages; dropping it");
                    metrics.slow_dropped();
                    outboxes.remove(&key);
                    dropped.push(key);
                }
                Err(TrySendError::Closed(_)) => {
                    outboxes.remove(&key);
                    dropped.push(key);
                }
            }
        }
        for key in dropped {
            hub.disconnect(key);
        }
    }
}
