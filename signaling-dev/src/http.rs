//! The HTTP side of the port: `/ws`, `/healthz`, `/metrics` and `/`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::server::Shared;

/// Read buffer per connection. Signaling frames are small, and 10,000 idle
/// sessions must fit in little memory; larger frames still arrive, in pieces.
const READ_BUFFER_BYTES: usize = 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/", get(index))
        .route("/client/{file}", get(client_file))
        .with_state(shared)
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The WebSocket handshake (RFC 6455 §4.2), done here rather than by axum's
/// `ws` extractor so the connection keeps access to its raw stream: after
/// refusing an oversized frame the server must drain what the client already
/// sent, or closing resets the connection and the error reply is lost.
async fn upgrade(State(shared): State<Arc<Shared>>, mut request: Request) -> Response {
    let headers = request.headers();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_websocket = has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>();
    let (Some(key), Some(on_upgrade), true) = (key, on_upgrade, is_websocket) else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            "this endpoint speaks WebSocket (Kith signaling protocol v1)",
        )
            .into_response();
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .write_buffer_size(0)
                    .max_message_size(Some(kith_proto::MAX_FRAME_BYTES))
                    .max_frame_size(Some(kith_proto::MAX_FRAME_BYTES));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                crate::connection::run(socket, shared).await;
            }
            Err(err) => tracing::debug!("WebSocket upgrade failed: {err}"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(accept) = header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

/// The browser client, bundled into the binary: no build step, no CDN.
const CLIENT_FILES: &[(&str, &str, &str)] = &[
    ("main.js", JAVASCRIPT, include_str!("web/main.js")),
    ("signaling.js", JAVASCRIPT, include_str!("web/signaling.js")),
    ("peer.js", JAVASCRIPT, include_str!("web/peer.js")),
    ("chat.js", JAVASCRIPT, include_str!("web/chat.js")),
    ("media.js", JAVASCRIPT, include_str!("web/media.js")),
    ("strip.js", JAVASCRIPT, include_str!("web/strip.js")),
    ("stats.js", JAVASCRIPT, include_str!("web/stats.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("web/style.css"),
    ),
];
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Only this origin's scripts and styles; WebSocket to any signaling server
/// (the page may be pointed at another one with `?server=`).
const CLIENT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    connect-src 'self' ws: wss:; img-src 'self' data: blob:; media-src 'self' blob:; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, CLIENT_CSP)],
        Html(include_str!("web/index.html")),
    )
}

async fn client_file(Path(file): Path<String>) -> Response {
    match CLIENT_FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_SECURITY_POLICY, CLIENT_CSP),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::CLIENT_FILES;

    /// Every module the page imports is served: a missing one would break
    /// the page in the browser and nowhere else.
    #[test]
    fn every_imported_client_module_is_served() {
        let index = include_str!("web/index.html");
        let mut wanted: Vec<String> = index
            .split(['"', '\''])
            .filter_map(|part| part.strip_prefix("/client/"))
            .map(str::to_owned)
            .collect();
        for (_, _, body) in CLIENT_FILES {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let module = line.rsplit(['"', '\'']).nth(1).unwrap_or_default();
                wanted.push(module.trim_start_matches("./").to_owned());
            }
        }
        assert!(wanted.len() > 3, "{wanted:?}");
        for file in wanted {
            assert!(
                CLIENT_FILES.iter().any(|(name, _, _)| *name == file),
                "{file} is imported but not served"
            );
        }
    }
}
