//! Video to the webview without Tauri's JSON IPC: a loopback-only WebSocket
//! that serves the newest frame of one stream per connection, when the page
//! asks for it ("next"), scaled natively to the tile size the page reports.
//! A slow page gets fewer frames, never a queue.
//!
//! Each binary message: a 32-byte little-endian header, then the I420 planes.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `KFR1` |
//! | 4..8 | width |
//! | 8..12 | height |
//! | 12..16 | Y stride (= width) |
//! | 16..20 | U/V stride (= (width + 1) / 2) |
//! | 20..24 | frames the server skipped since the last one sent |
//! | 24..32 | capture time, µs since the Unix epoch |

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use kith_call::{Call, LatestFrame};
use kith_media::frame::VideoFrame;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tracing::{debug, info, warn};

pub const HEADER_BYTES: usize = 32;
const MAGIC: &[u8; 4] = b"KFR1";
/// How long a tile may wait for its stream (a peer whose video has not started yet).
const STREAM_WAIT: Duration = Duration::from_secs(20);
/// The page origins of a Tauri webview (Linux/macOS, Windows).
const ALLOWED_ORIGINS: &[&str] = &["tauri://localhost", "http://tauri.localhost"];
/// Concurrent frame connections; tiles are far fewer.
const MAX_CONNECTIONS: usize = 64;

/// Where the page connects, handed over by a command.
#[derive(ts_rs::TS, Debug, Clone, Serialize)]
pub struct FrameEndpoint {
    pub port: u16,
    pub token: String,
}

/// Binds the loopback frame server and serves it in the background.
pub async fn start(calls: watch::Receiver<Option<Call>>) -> std::io::Result<FrameEndpoint> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let port = listener.local_addr()?.port();
    let token = random_token();
    let endpoint = FrameEndpoint {
        port,
        token: token.clone(),
    };
    let token: Arc<str> = token.into();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    info!(port, "frame server listening on loopback");
    tauri::async_runtime::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "frame server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                debug!(%peer, "too many frame connections; refused");
                continue;
            };
            let (token, calls) = (Arc::clone(&token), calls.clone());
            tauri::async_runtime::spawn(async move {
                if let Err(error) = serve(stream, &token, calls).await {
                    debug!(%error, "frame connection ended");
                }
                drop(permit);
            });
        }
    });
    Ok(endpoint)
}

fn random_token() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

/// What a tile asks for, from the URL's query.
#[derive(Debug, Default)]
struct Ask {
    stream: String,
    size: Option<(u32, u32)>,
}

#[derive(Debug, Deserialize)]
struct Resize {
    width: u32,
    height: u32,
}

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error(transparent)]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("no stream {0}")]
    NoStream(String),
}

async fn serve(
    stream: TcpStream,
    token: &str,
    calls: watch::Receiver<Option<Call>>,
) -> Result<(), FrameError> {
    let mut ask = Ask::default();
    // The callback's type is tungstenite's, large error and all.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let origin = request
            .headers()
            .get("origin")
            .and_then(|o| o.to_str().ok())
            .unwrap_or("");
        if !ALLOWED_ORIGINS.contains(&origin) {
            return Err(refuse(StatusCode::FORBIDDEN));
        }
        let query = request.uri().query().unwrap_or("");
        let mut token_ok = false;
        for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            match key {
                "token" => token_ok = constant_time_eq(value.as_bytes(), token.as_bytes()),
                "stream" => ask.stream = value.chars().take(128).collect(),
                "w" => ask.size = value.parse().ok().map(|w| (w, ask.size.map_or(0, |s| s.1))),
                "h" => ask.size = value.parse().ok().map(|h| (ask.size.map_or(0, |s| s.0), h)),
                _ => {}
            }
        }
        if !token_ok {
            return Err(refuse(StatusCode::UNAUTHORIZED));
        }
        Ok(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, check).await?;
    let Some(latest) = find_stream(&calls, &ask.stream).await else {
        let _closed = ws.close(None).await;
        return Err(FrameError::NoStream(ask.stream));
    };
    latest.set_size(ask.size);
    let mut frames = latest.subscribe();
    // The newest frame goes out at once, not only the next one.
    frames.mark_changed();
    let mut wanted = false;
    let mut published = latest.frames_published();
    let mut buffer = Vec::new();
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == "next" {
                        wanted = true;
                    } else if let Ok(resize) = serde_json::from_str::<Resize>(text.as_str()) {
                        latest.set_size(Some((resize.width, resize.height)));
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
            },
            changed = frames.changed(), if wanted => {
                if changed.is_err() {
                    // The engine stopped (profile or server changed).
                    let _closed = ws.close(None).await;
                    return Ok(());
                }
                let frame = frames.borrow_and_update().clone();
                if let Some(frame) = frame {
                    let now = latest.frames_published();
                    let skipped = now.saturating_sub(published).saturating_sub(1);
                    published = now;
                    encode(&frame, skipped, &mut buffer);
                    ws.send(Message::Binary(std::mem::take(&mut buffer).into())).await?;
                    wanted = false;
                }
            }
        }
    }
}

/// The stream's frames: `self` is our camera, anything else a peer's session id.
async fn find_stream(calls: &watch::Receiver<Option<Call>>, stream: &str) -> Option<LatestFrame> {
    let deadline = tokio::time::Instant::now() + STREAM_WAIT;
    loop {
        let call = calls.borrow().clone()?;
        if stream == "self" {
            return call.preview();
        }
        if let Ok(participants) = call.participants().await
            && let Some(found) = participants
                .into_iter()
                .find(|p| p.session.as_str() == stream)
        {
            return Some(found.media.video);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn encode(frame: &VideoFrame, skipped: u64, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER_BYTES + frame.data.len());
    let (chroma_width, _) = VideoFrame::chroma_size(frame.width, frame.height);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&frame.width.to_le_bytes());
    out.extend_from_slice(&frame.height.to_le_bytes());
    out.extend_from_slice(&frame.width.to_le_bytes());
    out.extend_from_slice(&chroma_width.to_le_bytes());
    out.extend_from_slice(&u32::try_from(skipped).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&frame.capture_us.to_le_bytes());
    out.extend_from_slice(&frame.data);
}

fn refuse(status: StatusCode) -> ErrorResponse {
    let mut response = ErrorResponse::new(None);
    *response.status_mut() = status;
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_header_says_size_strides_and_capture_time() {
        let frame = VideoFrame {
            width: 5,
            height: 3,
            data: vec![7; VideoFrame::byte_len(5, 3)],
            capture_us: 0x0102_0304_0506_0708,
        };
        let mut out = Vec::new();
        encode(&frame, 2, &mut out);
        assert_eq!(&out[0..4], b"KFR1");
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 5);
        assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(out[16..20].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(out[20..24].try_into().unwrap()), 2);
        assert_eq!(
            u64::from_le_bytes(out[24..32].try_into().unwrap()),
            frame.capture_us
        );
        assert_eq!(out.len(), HEADER_BYTES + 15 + 2 * 3 * 2);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
