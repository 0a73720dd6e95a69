//! A protocol client written from protocol.md alone (raw JSON, no kith-proto
//! types), and helpers to start real servers on loopback.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use signaling_dev::{Server, ServerConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Long enough for a busy 2-core machine; only reached when something is wrong.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

pub fn test_config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    }
}

pub async fn start(config: ServerConfig) -> Server {
    Server::start(config).await.expect("server starts")
}

pub async fn start_default() -> Server {
    start(test_config()).await
}

/// A WebSocket client that speaks protocol v1 as JSON values.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session: String,
    pub welcome: Value,
}

/// How a connection ended, as seen by the client.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16),
    NoFrame,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(PATIENCE, connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Client {
            ws,
            session: String::new(),
            welcome: Value::Null,
        }
    }

    /// Connects and says hello; keeps the welcome.
    pub async fn hello(url: &str, user: &str) -> Client {
        Self::hello_with(
            url,
            json!({"type":"hello","user":user,"name":user.to_uppercase()}),
        )
        .await
    }

    pub async fn hello_with(url: &str, hello: Value) -> Client {
        let mut client = Client::connect(url).await;
        client.send(hello).await;
        let welcome = client.recv_type("welcome").await;
        client.session = welcome["session"].as_str().unwrap().to_owned();
        client.welcome = welcome;
        client
    }

    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next protocol message; fails on close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a message in time")
                .expect("connection open")
                .expect("valid frame");
            match frame {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next message, which must have this `type`.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(message["type"], kind, "unexpected message {message}");
        message
    }

    /// The next message, which must be an error with this code.
    pub async fn recv_error(&mut self, code: &str) -> Value {
        let message = self.recv_type("error").await;
        assert_eq!(message["code"], code, "unexpected error {message}");
        assert!(
            message["message"].as_str().is_some_and(|m| !m.is_empty()),
            "errors explain themselves: {message}"
        );
        message
    }

    /// Asserts nothing but pings arrives for a little while.
    pub async fn expect_quiet(&mut self) {
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn expect_close(&mut self) -> Closed {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("close in time");
            match frame {
                Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => {
                    return Closed::Code(code.into());
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Closed::NoFrame,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type":"join","room":room})).await;
        self.recv_type("joined").await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server's close arrives so the server sees a clean close.
        let _ = tokio::time::timeout(PATIENCE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
