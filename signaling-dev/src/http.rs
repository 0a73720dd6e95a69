//! The HTTP side of the port: `/ws`, `/healthz`, `/metrics` and `/`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::server::Shared;

/// Read buffer per connection. Signaling frames are small, and 10,000 idle
/// sessions must fit in little memory; larger frames still arrive, in pieces.
const READ_BUFFER_BYTES: usize = 4 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/", get(index))
        .with_state(shared)
}

async fn upgrade(upgrade: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    upgrade
        .max_message_size(kith_proto::MAX_FRAME_BYTES)
        .max_frame_size(kith_proto::MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| crate::connection::run(socket, shared))
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

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}
