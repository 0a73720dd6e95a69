//! `signaling-dev`: Kith's bundled signaling server, speaking protocol v1
//! (`shared/protocol.md`) over WebSocket, with `/healthz`, `/metrics` and a
//! browser page on the same port. Start one in-process with [`Server::start`].

mod config;
mod connection;
mod http;
pub mod hub;
mod metrics;
mod rate;
mod server;

pub use config::ServerConfig;
pub use hub::{Hub, HubConfig, Outbound, SessionKey};
pub use metrics::Metrics;
pub use server::{Server, ServerError};
