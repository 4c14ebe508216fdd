//! `wharf_webhook_attempts_total{outcome}`, `wharf_webhook_attempt_duration_seconds` and
//! `wharf_webhook_endpoints_disabled_total`: what the dispatcher did, for dashboards and alerts
//! (a rising `retry_scheduled` or `dead_lettered` rate is a receiver in trouble). By outcome
//! only, not by endpoint: endpoints may be thousands; the delivery log has them one by one.

use super::attempts::Outcome;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};
use std::{sync::LazyLock, time::Duration};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    outcome: &'static str,
}

static ATTEMPTS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);

static DURATIONS: LazyLock<Histogram> = LazyLock::new(|| {
    // 1 ms to ~32 s: a local receiver lands low, a response timeout at the top.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 16,
    ))
});

static DISABLED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Adds the families to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "wharf_webhook_attempts",
        "Webhook delivery attempts, by what came of them",
        ATTEMPTS.clone(),
    );
    registry.register_with_unit(
        "wharf_webhook_attempt_duration",
        "Time of one webhook delivery attempt, connecting included",
        Unit::Seconds,
        DURATIONS.clone(),
    );
    registry.register(
        "wharf_webhook_endpoints_disabled",
        "Webhook endpoints the dispatcher disabled (410 Gone, failing too long)",
        DISABLED.clone(),
    );
}

pub(super) fn attempt(outcome: Outcome, took: Duration) {
    let outcome = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::RetryScheduled => "retry_scheduled",
        Outcome::DeadLettered => "dead_lettered",
        Outcome::EndpointDisabled => "endpoint_disabled",
    };
    ATTEMPTS.get_or_create(&Labels { outcome }).inc();
    DURATIONS.observe(took.as_secs_f64());
}

pub(super) fn disabled() {
    DISABLED.inc();
}
