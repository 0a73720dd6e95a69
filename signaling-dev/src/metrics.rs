//! The counters behind `GET /metrics`, in Prometheus text format.

use kith_proto::ErrorCode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    code: CodeLabel,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
struct CodeLabel(ErrorCode);

impl EncodeLabelValue for CodeLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.as_str())
    }
}

/// Shared handles to the server's metrics; cloning shares the same values.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    sessions: Gauge,
    rooms: Gauge,
    connections: Gauge,
    relayed: Counter,
    received: Counter,
    slow_dropped: Counter,
    errors: Family<ErrorLabels, Counter>,
}

impl Metrics {
    pub(crate) fn set_sessions(&self, count: usize) {
        self.sessions.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_rooms(&self, count: usize) {
        self.rooms.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.dec();
    }

    pub(crate) fn relayed(&self) {
        self.relayed.inc();
    }

    pub(crate) fn received(&self) {
        self.received.inc();
    }

    pub(crate) fn slow_dropped(&self) {
        self.slow_dropped.inc();
    }

    pub(crate) fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&ErrorLabels {
                code: CodeLabel(code),
            })
            .inc();
    }

    /// How many errors with `code` the server has sent.
    pub fn errors_sent(&self, code: ErrorCode) -> u64 {
        self.errors
            .get_or_create(&ErrorLabels {
                code: CodeLabel(code),
            })
            .get()
    }

    /// Sessions that have said hello and are still connected.
    pub fn sessions(&self) -> i64 {
        self.sessions.get()
    }

    /// The whole set in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("kith_signaling");
        registry.register(
            "sessions",
            "Sessions that have said hello",
            self.sessions.clone(),
        );
        registry.register(
            "connections",
            "Open WebSocket connections, with or without hello",
            self.connections.clone(),
        );
        registry.register(
            "rooms",
            "Rooms with at least one member",
            self.rooms.clone(),
        );
        registry.register(
            "messages_relayed",
            "Offers, answers and candidates forwarded between sessions",
            self.relayed.clone(),
        );
        registry.register(
            "messages_received",
            "Text frames received from clients",
            self.received.clone(),
        );
        registry.register(
            "slow_sessions_dropped",
            "Sessions dropped because they did not read their messages",
            self.slow_dropped.clone(),
        );
        registry.register(
            "errors",
            "Error messages sent, by code",
            self.errors.clone(),
        );
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}
