//! What a server is started with.

use std::net::SocketAddr;
use std::time::Duration;

/// Every setting of a signaling server. `Default` is the protocol's defaults on
/// `127.0.0.1:8787`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// When set, `hello` must carry this token.
    pub token: Option<String>,
    /// Most sessions in one room (the mesh limit).
    pub room_limit: usize,
    /// STUN URLs handed out in `welcome`.
    pub stun_urls: Vec<String>,
    /// TURN URLs handed out in `welcome`, with REST credentials when `turn_secret` is set.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub turn_secret: Option<String>,
    /// How long TURN credentials stay valid.
    pub turn_ttl: Duration,
    /// How often the server pings each session.
    pub ping_interval: Duration,
    /// A session silent for this long is dropped.
    pub dead_after: Duration,
    /// Messages per second one session may send, refilled continuously.
    pub rate_per_second: f64,
    /// How many messages one session may send in a burst.
    pub rate_burst: f64,
    /// Messages queued for one session before it counts as too slow and is dropped.
    pub outbound_queue: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            token: None,
            room_limit: 8,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(24 * 3600),
            ping_interval: Duration::from_secs(20),
            dead_after: Duration::from_secs(60),
            rate_per_second: 50.0,
            rate_burst: 200.0,
            outbound_queue: 1024,
        }
    }
}
