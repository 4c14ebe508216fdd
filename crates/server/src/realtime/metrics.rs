//! `wharf_realtime_*`: open real-time connections and channels, messages the hub took from
//! topics, and slow clients (disconnected, or frames dropped for them).

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use std::sync::LazyLock;

static CONNECTIONS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
static CHANNELS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
static MESSAGES: LazyLock<Counter> = LazyLock::new(Counter::default);
static SLOW_DISCONNECTS: LazyLock<Counter> = LazyLock::new(Counter::default);
static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Adds the families to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "wharf_realtime_connections",
        "Open WebSocket and event-stream connections",
        CONNECTIONS.clone(),
    );
    registry.register(
        "wharf_realtime_channels",
        "Topics the real-time hub follows (with subscribers, or history still kept)",
        CHANNELS.clone(),
    );
    registry.register(
        "wharf_realtime_messages",
        "Messages the real-time hub took from topics and handed to subscribers",
        MESSAGES.clone(),
    );
    registry.register(
        "wharf_realtime_slow_disconnects",
        "Connections closed because their buffer filled (realtime.slow_client = disconnect)",
        SLOW_DISCONNECTS.clone(),
    );
    registry.register(
        "wharf_realtime_dropped",
        "Frames dropped for connections whose buffer was full (slow_client = drop)",
        DROPPED.clone(),
    );
}

pub(super) fn connected() {
    CONNECTIONS.inc();
}

pub(super) fn disconnected() {
    CONNECTIONS.dec();
}

pub(super) fn channels_changed(count: usize) {
    CHANNELS.set(count as i64);
}

pub(super) fn fanned_out() {
    MESSAGES.inc();
}

pub(super) fn slow_disconnect() {
    SLOW_DISCONNECTS.inc();
}

pub(super) fn dropped() {
    DROPPED.inc();
}
