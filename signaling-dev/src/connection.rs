//! One WebSocket connection: hello, then frames in and out until it closes,
//! goes silent, or floods.

use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use kith_proto::{
    ClientMessage, ErrorCode, ParseError, Request, RequestId, ServerMessage, SessionId,
    parse_client_message,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tracing::Instrument as _;

use crate::hub::{Outbound, SessionKey};
use crate::rate::TokenBucket;
use crate::server::{HubInput, Shared};

/// Close code for a refused hello (protocol.md).
const CLOSE_UNAUTHORIZED: u16 = 4001;
/// Close code for a frame over the size limit (RFC 6455 "message too big").
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a session dropped for not reading (RFC 6455 "policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Close code when the server shuts down (RFC 6455 "going away").
const CLOSE_GOING_AWAY: u16 = 1001;

/// A connection after the HTTP upgrade.
pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How long a closing connection keeps reading what the client already sent.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// Most bytes a closing connection reads and discards.
const LINGER_BYTES: usize = 256 * 1024;

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    ClientClosed,
    Refused,
    Silent,
    TooLarge,
    Dropped,
    SocketError,
}

pub(crate) async fn run(mut socket: Socket, shared: Arc<Shared>) {
    let key = shared.next_key();
    shared.metrics.connection_opened();
    let span = tracing::info_span!("session", key, session = tracing::field::Empty);
    let end = serve(&mut socket, &shared, key)
        .instrument(span.clone())
        .await;
    span.in_scope(|| tracing::debug!(?end, "connection ended"));
    let _ = shared.hub.send(HubInput::Disconnect { key }).await;
    match end {
        // The client may still be sending: read that before closing, after
        // the others have already been told this session left.
        End::Refused | End::TooLarge => linger(&mut socket).await,
        // Flush the reply to the client's close frame.
        End::ClientClosed => {
            let _ = socket.flush().await;
        }
        End::Silent | End::Dropped | End::SocketError => {}
    }
    shared.metrics.connection_closed();
}

async fn serve(socket: &mut Socket, shared: &Shared, key: SessionKey) -> End {
    let outbox = match await_hello(socket, shared, key).await {
        Ok(outbox) => outbox,
        Err(end) => return end,
    };
    exchange(socket, shared, key, outbox).await
}

/// Waits for the first frame, which must be a valid `hello` (with the right
/// token when the server has one); registers the session with the hub.
async fn await_hello(
    socket: &mut Socket,
    shared: &Shared,
    key: SessionKey,
) -> Result<mpsc::Receiver<Outbound>, End> {
    let deadline = Instant::now() + shared.config.dead_after;
    loop {
        let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(End::Silent),
            Ok(None) => return Err(End::ClientClosed),
            Ok(Some(Err(err))) => return Err(read_failed(socket, shared, err).await),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(_) => return Err(End::ClientClosed),
            Message::Binary(_) => {
                refuse(
                    socket,
                    shared,
                    ErrorCode::Unauthorized,
                    "say hello first",
                    None,
                )
                .await;
                return Err(End::Refused);
            }
            Message::Text(text) => text,
        };
        shared.metrics.received();
        let (user, name, token, re) = match parse_client_message(text.as_str()) {
            Ok(Request {
                id,
                message: ClientMessage::Hello { user, name, token },
                ..
            }) => (user, name, token, id),
            Ok(request) => {
                refuse(
                    socket,
                    shared,
                    ErrorCode::Unauthorized,
                    "say hello first",
                    request.id,
                )
                .await;
                return Err(End::Refused);
            }
            Err(err) if claims_hello(text.as_str()) => {
                let re = err.request_id().cloned();
                refuse(socket, shared, ErrorCode::BadRequest, &err.to_string(), re).await;
                return Err(End::Refused);
            }
            Err(err) => {
                let re = err.request_id().cloned();
                refuse(
                    socket,
                    shared,
                    ErrorCode::Unauthorized,
                    "say hello first",
                    re,
                )
                .await;
                return Err(End::Refused);
            }
        };
        if let Some(expected) = &shared.config.token
            && token.as_deref() != Some(expected.as_str())
        {
            let message = if token.is_some() {
                "wrong token"
            } else {
                "this server needs a token in hello"
            };
            refuse(socket, shared, ErrorCode::Unauthorized, message, re).await;
            return Err(End::Refused);
        }
        let session_id = fresh_session_id();
        tracing::Span::current().record("session", session_id.as_str());
        tracing::info!(%user, "hello");
        let (outbox_tx, outbox_rx) = mpsc::channel(shared.config.outbound_queue.max(1));
        let registered = shared
            .hub
            .send(HubInput::Hello {
                key,
                session_id,
                outbox: outbox_tx,
                user,
                name,
                re,
            })
            .await;
        return match registered {
            Ok(()) => Ok(outbox_rx),
            Err(_) => Err(End::Dropped),
        };
    }
}

/// Relays frames both ways until the connection ends.
async fn exchange(
    socket: &mut Socket,
    shared: &Shared,
    key: SessionKey,
    mut outbox: mpsc::Receiver<Outbound>,
) -> End {
    let config = &shared.config;
    let mut pings = interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut bucket = TokenBucket::new(config.rate_per_second, config.rate_burst, last_heard);
    // One `rate_limited` per burst of refused frames, so a flood cannot make
    // the server write as fast as it is written to.
    let mut told_rate_limited = false;
    loop {
        tokio::select! {
            biased;
            out = outbox.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if let Err(err) = socket.send(Message::Text(text)).await {
                        return socket_error(&err);
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    close(socket, code, reason).await;
                    return End::Dropped;
                }
                None => {
                    // The hub let go of this session: the server is shutting
                    // down, or the session did not keep up with its messages.
                    let (code, reason) = if shared.hub.is_closed() {
                        (CLOSE_GOING_AWAY, "server shutting down")
                    } else {
                        (CLOSE_POLICY, "too slow reading messages")
                    };
                    close(socket, code, reason).await;
                    return End::Dropped;
                }
            },
            frame = socket.next() => {
                let frame = match frame {
                    None => return End::ClientClosed,
                    Some(Err(err)) => return read_failed(socket, shared, err).await,
                    Some(Ok(frame)) => frame,
                };
                let now = Instant::now();
                last_heard = now;
                let payload = match frame {
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    Message::Close(_) => return End::ClientClosed,
                    Message::Binary(_) => None,
                    Message::Text(text) => Some(text),
                };
                shared.metrics.received();
                if !bucket.try_take(now) {
                    if !told_rate_limited {
                        told_rate_limited = true;
                        let sent = send_error(socket, shared, ErrorCode::RateLimited,
                            "too many messages; slow down (this one was dropped)", None).await;
                        if sent.is_err() {
                            return End::SocketError;
                        }
                    }
                    continue;
                }
                told_rate_limited = false;
                let outcome = match payload {
                    None => Err(ParseError::Malformed {
                        reason: "binary frames are a protocol error; send JSON text".into(),
                        id: None,
                    }),
                    Some(text) => parse_client_message(text.as_str()),
                };
                match outcome {
                    Ok(request) => {
                        if shared.hub.send(HubInput::Message { key, request }).await.is_err() {
                            return End::Dropped;
                        }
                    }
                    Err(err) => {
                        let re = err.request_id().cloned();
                        if send_error(socket, shared, err.code(), &err.to_string(), re).await.is_err() {
                            return End::SocketError;
                        }
                    }
                }
            },
            _ = pings.tick() => {
                if last_heard.elapsed() >= config.dead_after {
                    tracing::info!("no answer for {:?}; dropping the session", config.dead_after);
                    return End::Silent;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return End::SocketError;
                }
            }
        }
    }
}

/// A read error: an oversized frame gets `too_large` and close 1009; anything
/// else means the socket is gone.
async fn read_failed(socket: &mut Socket, shared: &Shared, err: tungstenite::Error) -> End {
    let too_large = matches!(err, tungstenite::Error::Capacity(_));
    if too_large {
        let message = format!(
            "frames are limited to {} bytes",
            kith_proto::MAX_FRAME_BYTES
        );
        let _ = send_error(socket, shared, ErrorCode::TooLarge, &message, None).await;
        close(socket, CLOSE_TOO_BIG, "frame too large").await;
        return End::TooLarge;
    }
    tracing::debug!("read failed: {err}");
    End::SocketError
}

fn socket_error(err: &tungstenite::Error) -> End {
    tracing::debug!("write failed: {err}");
    End::SocketError
}

async fn refuse(
    socket: &mut Socket,
    shared: &Shared,
    code: ErrorCode,
    message: &str,
    re: Option<RequestId>,
) {
    let _ = send_error(socket, shared, code, message, re).await;
    close(socket, CLOSE_UNAUTHORIZED, "hello refused").await;
}

async fn send_error(
    socket: &mut Socket,
    shared: &Shared,
    code: ErrorCode,
    message: &str,
    re: Option<RequestId>,
) -> Result<(), tungstenite::Error> {
    shared.metrics.error(code);
    let text = ServerMessage::error(code, message, re).to_json();
    socket.send(Message::Text(Utf8Bytes::from(text))).await
}

async fn close(socket: &mut Socket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// After a close frame: reads and discards what the client had already sent,
/// until it closes too. Closing a TCP socket with unread input makes the
/// kernel reset the connection, and a reset destroys the replies still in
/// flight to the client, such as the `too_large` error just sent.
async fn linger(socket: &mut Socket) {
    let stream = socket.get_mut();
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + LINGER;
    // On the heap: an array here would sit in every idle connection's future.
    let mut buffer = vec![0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => discarded += read,
            _ => break,
        }
    }
}

/// Whether a frame that failed to parse at least says it is a hello, so the
/// client hears what is wrong with it rather than a bare "say hello first".
fn claims_hello(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    serde_json::from_str::<Kind<'_>>(text).is_ok_and(|k| k.kind == Some("hello"))
}

fn fresh_session_id() -> SessionId {
    let id = format!("s{:016x}", rand::random::<u64>());
    match SessionId::new(id) {
        Ok(id) => id,
        Err(_) => unreachable!("a 17-character id is always valid"),
    }
}
