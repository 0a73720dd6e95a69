//! The signaling client: one WebSocket to the server speaking protocol v1,
//! reconnecting with backoff when it drops. What to do after a reconnect
//! (rejoin rooms, rebind peers) is the engine's business; this module only
//! keeps a connection and reports what happens on it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kith_proto::{
    ClientMessage, DisplayName, ErrorCode, IceServer, OnlineUser, ServerMessage, SessionId, UserId,
    parse_server_message,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::error::CallError;

/// Who we are and where the server is.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// `ws://host:port/ws`
    pub url: String,
    pub user: UserId,
    pub name: Option<DisplayName>,
    pub token: Option<String>,
}

/// What happens on the signaling connection.
#[derive(Debug, Clone)]
pub enum SignalingEvent {
    /// `welcome` arrived: a new session (after every reconnect, a new one).
    Connected {
        session: SessionId,
        name: DisplayName,
        ice_servers: Vec<IceServer>,
        online: Vec<OnlineUser>,
    },
    Message(ServerMessage),
    /// The connection dropped; the client tries again after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// The server refused us for good (wrong token): no more retries.
    Refused(CallError),
}

/// Sends messages to the server. Dropping every handle closes the connection.
#[derive(Debug, Clone)]
pub struct SignalingHandle {
    outgoing: mpsc::UnboundedSender<ClientMessage>,
}

impl SignalingHandle {
    /// Queues a message; while disconnected it is dropped (the engine
    /// restates what matters after the next `Connected`).
    pub fn send(&self, message: ClientMessage) {
        let _ = self.outgoing.send(message);
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the client on the current tokio runtime.
pub fn spawn(
    config: SignalingConfig,
    events: mpsc::UnboundedSender<SignalingEvent>,
) -> SignalingHandle {
    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(config, events, outgoing_rx));
    SignalingHandle { outgoing }
}

enum Ended {
    /// Every handle is gone: stop.
    Closed,
    Lost(String),
    Refused(CallError),
}

async fn run(
    config: SignalingConfig,
    events: mpsc::UnboundedSender<SignalingEvent>,
    mut outgoing: mpsc::UnboundedReceiver<ClientMessage>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        match connect_once(&config, &events, &mut outgoing, &mut retry).await {
            Ended::Closed => return,
            Ended::Refused(err) => {
                let _ = events.send(SignalingEvent::Refused(err));
                return;
            }
            Ended::Lost(reason) => {
                info!(%reason, retry_ms = retry.as_millis() as u64, "signaling connection lost");
                if events
                    .send(SignalingEvent::Disconnected {
                        reason,
                        retry_in: retry,
                    })
                    .is_err()
                {
                    return;
                }
                // Sleep, but drop what the engine sends meanwhile (stale offers and
                // candidates would go to sessions that no longer exist) and stop
                // at once if the engine goes away.
                let sleep = tokio::time::sleep(retry);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        message = outgoing.recv() => {
                            if message.is_none() { return; }
                        }
                    }
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

async fn connect_once(
    config: &SignalingConfig,
    events: &mpsc::UnboundedSender<SignalingEvent>,
    outgoing: &mut mpsc::UnboundedReceiver<ClientMessage>,
    retry: &mut Duration,
) -> Ended {
    let connect = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async(config.url.as_str()),
    );
    let mut socket = match connect.await {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(err)) => return Ended::Lost(format!("cannot connect to {}: {err}", config.url)),
        Err(_) => return Ended::Lost(format!("no answer from {} in 5 s", config.url)),
    };
    let hello = ClientMessage::Hello {
        user: config.user.clone(),
        name: config.name.clone(),
        token: config.token.clone(),
    };
    if let Err(ended) = send(&mut socket, &hello).await {
        return ended;
    }
    let mut welcomed = false;
    loop {
        tokio::select! {
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(close))) => {
                        let reason = close.map(|c| format!("closed by server ({} {})", u16::from(c.code), c.reason)).unwrap_or_else(|| "closed by server".to_owned());
                        return Ended::Lost(reason);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => return Ended::Lost(err.to_string()),
                    None => return Ended::Lost("connection closed".to_owned()),
                };
                let message = match parse_server_message(text.as_str()) {
                    Ok(message) => message,
                    Err(err) => {
                        warn!(%err, "ignoring a server message we cannot read");
                        continue;
                    }
                };
                match message {
                    ServerMessage::Welcome { session, name, ice_servers, online, .. } => {
                        welcomed = true;
                        *retry = FIRST_RETRY;
                        info!(session = session.as_str(), "signaling connected");
                        if events.send(SignalingEvent::Connected { session, name, ice_servers, online }).is_err() {
                            return Ended::Closed;
                        }
                    }
                    ServerMessage::Error { code: ErrorCode::Unauthorized, message, .. } if !welcomed => {
                        return Ended::Refused(CallError::Server { code: ErrorCode::Unauthorized.as_str().to_owned(), message });
                    }
                    other => {
                        debug!(kind = ?std::mem::discriminant(&other), "signaling message");
                        if events.send(SignalingEvent::Message(other)).is_err() {
                            return Ended::Closed;
                        }
                    }
                }
            }
            message = outgoing.recv() => {
                let Some(message) = message else {
                    let _ = socket.close(None).await;
                    return Ended::Closed;
                };
                if !welcomed {
                    // Nothing but hello may precede welcome; the engine restates
                    // its rooms after `Connected` anyway.
                    continue;
                }
                if let Err(ended) = send(&mut socket, &message).await {
                    return ended;
                }
            }
        }
    }
}

async fn send<S>(socket: &mut S, message: &ClientMessage) -> Result<(), Ended>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let text = serde_json::to_string(message).map_err(|err| Ended::Lost(err.to_string()))?;
    socket
        .send(Message::text(text))
        .await
        .map_err(|err| Ended::Lost(err.to_string()))
}
