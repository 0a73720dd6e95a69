//! The signaling client: one WebSocket to the server speaking protocol v1,
//! reconnecting with backoff when it drops. What to do after a reconnect
//! (rejoin rooms, rebind peers) is the call core's business; this module only
//! keeps a connection and reports what happens on it. When every handle is
//! dropped it sends what is still queued, closes the socket and ends, so a
//! caller that awaits its task knows the last message (a cancel, a leave)
//! went out.
//!
//! A connection whose path has died (the laptop changed networks, a NAT
//! forgot it) shows no error for many minutes: TCP keeps retransmitting.
//! So the client pings the server, and a connection silent for longer
//! than [`Keepalive::silent_for`] counts as lost and is replaced.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use kith_call_core::Outgoing;
use kith_proto::{
    ClientMessage, DisplayName, ErrorCode, ServerMessage, UserId, parse_server_message,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tracing::{Instrument, debug, info, warn};

/// Who we are and where the server is.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// `ws://host:port/ws`
    pub url: String,
    pub user: UserId,
    pub name: Option<DisplayName>,
    pub token: Option<String>,
    pub keepalive: Keepalive,
}

/// How a dead connection is noticed.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// A WebSocket ping goes out this often...
    pub ping_every: Duration,
    /// ...and nothing heard for this long (no pong, no message) means the
    /// path is gone.
    pub silent_for: Duration,
}

impl Default for Keepalive {
    /// Two pings unanswered and then some: a lost packet or two on a slow
    /// link is not a dead connection, a laptop that moved is found within
    /// 10 s.
    fn default() -> Self {
        Self {
            ping_every: Duration::from_secs(4),
            silent_for: Duration::from_secs(10),
        }
    }
}

/// What happens on the signaling connection.
#[derive(Debug, Clone)]
pub enum SignalingEvent {
    /// A server message; `welcome` among them starts a new session (after
    /// every reconnect, a new one).
    Message(ServerMessage),
    /// The connection dropped; the client tries again after `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
    /// The server refused our token: no more retries.
    Refused { message: String },
}

/// Sends messages to the server. Dropping every handle closes the connection.
#[derive(Debug, Clone)]
pub struct SignalingHandle {
    outgoing: mpsc::UnboundedSender<Outgoing>,
}

impl SignalingHandle {
    /// Queues a message; while disconnected it is dropped (the core restates
    /// what matters after the next `Connected`).
    pub fn send(&self, message: Outgoing) {
        let _ = self.outgoing.send(message);
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the client on the current tokio runtime. The task ends after every
/// handle is dropped and what was queued has been sent.
pub fn spawn(
    config: SignalingConfig,
    events: mpsc::UnboundedSender<SignalingEvent>,
) -> (SignalingHandle, JoinHandle<()>) {
    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(config, events, outgoing_rx).in_current_span());
    (SignalingHandle { outgoing }, task)
}

enum Ended {
    /// Every handle is gone: stop.
    Closed,
    Lost(String),
    Refused(String),
}

async fn run(
    config: SignalingConfig,
    events: mpsc::UnboundedSender<SignalingEvent>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        match connect_once(&config, &events, &mut outgoing, &mut retry).await {
            Ended::Closed => return,
            Ended::Refused(message) => {
                let _ = events.send(SignalingEvent::Refused { message });
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
                // Sleep, but drop what the core sends meanwhile (stale offers and
                // candidates would go to sessions that no longer exist) and stop
                // at once if the core goes away.
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
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
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
    let hello = Outgoing {
        message: ClientMessage::Hello {
            user: config.user.clone(),
            name: config.name.clone(),
            token: config.token.clone(),
        },
        id: None,
    };
    let keepalive = config.keepalive;
    if let Err(ended) = send(&mut socket, &hello, keepalive.silent_for).await {
        return ended;
    }
    let mut welcomed = false;
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive.ping_every,
        keepalive.ping_every,
    );
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            _ = pings.tick() => {
                if last_heard.elapsed() >= keepalive.silent_for {
                    return Ended::Lost(format!(
                        "no word from the server in {} s",
                        keepalive.silent_for.as_secs_f64()
                    ));
                }
                let ping = Message::Ping(Vec::new().into());
                if let Err(ended) = send_frame(&mut socket, ping, keepalive.silent_for).await {
                    return ended;
                }
            }
            frame = socket.next() => {
                last_heard = Instant::now();
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
                    ServerMessage::Welcome { ref session, .. } => {
                        welcomed = true;
                        *retry = FIRST_RETRY;
                        info!(session = session.as_str(), "signaling connected");
                        if events.send(SignalingEvent::Message(message)).is_err() {
                            return Ended::Closed;
                        }
                    }
                    ServerMessage::Error { code: ErrorCode::Unauthorized, message, .. } if !welcomed => {
                        return Ended::Refused(message);
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
                    // Everything queued before the last handle went has been sent.
                    let _ = socket.close(None).await;
                    return Ended::Closed;
                };
                if !welcomed {
                    // Nothing but hello may precede welcome; the core restates
                    // its rooms after `Connected` anyway.
                    continue;
                }
                if let Err(ended) = send(&mut socket, &message, keepalive.silent_for).await {
                    return ended;
                }
            }
        }
    }
}

/// The wire text of a message, with its request id when it has one.
fn wire_text(message: &Outgoing) -> Result<String, serde_json::Error> {
    let mut json = serde_json::to_value(&message.message)?;
    if let (Some(id), Some(object)) = (&message.id, json.as_object_mut()) {
        object.insert("id".to_owned(), serde_json::Value::from(id.as_str()));
    }
    serde_json::to_string(&json)
}

async fn send<S>(socket: &mut S, message: &Outgoing, limit: Duration) -> Result<(), Ended>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let text = wire_text(message).map_err(|err| Ended::Lost(err.to_string()))?;
    send_frame(socket, Message::text(text), limit).await
}

/// A frame that has not gone out within `limit` (the path died and the
/// socket's buffer filled up) ends the connection as silence does, rather
/// than stall the client and its silence check behind it.
async fn send_frame<S>(socket: &mut S, frame: Message, limit: Duration) -> Result<(), Ended>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    match tokio::time::timeout(limit, socket.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Ended::Lost(err.to_string())),
        Err(_) => Err(Ended::Lost(format!(
            "nothing could be sent for {} s",
            limit.as_secs_f64()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_proto::{RequestId, RoomId, parse_client_message};

    /// A server that welcomes us and then goes quiet without closing (its
    /// path died): it reads nothing more, so our pings go unanswered. The
    /// client must call the connection lost rather than wait on TCP.
    #[tokio::test]
    async fn a_server_gone_silent_is_noticed_and_replaced() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut socket = tokio_tungstenite::accept_async(tcp).await.expect("ws");
            let _hello = socket.next().await;
            let welcome = r#"{"type":"welcome","protocol":1,"session":"s1","user":"alice","name":"Alice","ice_servers":[],"online":[]}"#;
            socket.send(Message::text(welcome)).await.expect("welcome");
            // Silent from here on, socket held open.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let config = SignalingConfig {
            url,
            user: UserId::new("alice").expect("user"),
            name: None,
            token: None,
            keepalive: Keepalive {
                ping_every: Duration::from_millis(100),
                silent_for: Duration::from_millis(400),
            },
        };
        let (_handle, task) = spawn(config, events_tx);
        let lost = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = events.recv().await {
                if let SignalingEvent::Disconnected { reason, .. } = event {
                    return reason;
                }
            }
            String::new()
        })
        .await
        .expect("the silent connection is given up");
        assert!(lost.contains("no word from the server"), "{lost}");
        task.abort();
        server.abort();
    }

    #[test]
    fn a_request_id_goes_on_the_wire_as_id() {
        let outgoing = Outgoing {
            message: ClientMessage::Join {
                room: RoomId::new("r1").expect("room"),
            },
            id: Some(RequestId::new("k7").expect("id")),
        };
        let text = wire_text(&outgoing).expect("serializes");
        let request = parse_client_message(&text).expect("parses");
        assert_eq!(request.id.as_ref().map(RequestId::as_str), Some("k7"));
        assert_eq!(request.message, outgoing.message);
    }
}
