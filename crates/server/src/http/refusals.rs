//! `wharf_limit_refusals_total{limit}`: requests refused because a configured limit was
//! reached (429) or passed (413: a body or batch over its size), by the setting's name, so an operator sees which limit bites and how often.
//! One process-wide family, registered once with the server's registry: the door maps errors
//! to problems far from any state.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use std::sync::LazyLock;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: String,
}

static REFUSALS: LazyLock<Family<LimitLabel, Counter>> = LazyLock::new(Family::default);

/// Counts one refusal by `limit`.
pub fn count(limit: &str) {
    let label = LimitLabel {
        limit: limit.to_string(),
    };
    REFUSALS.get_or_create(&label).inc();
}

/// Adds the family to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "wharf_limit_refusals",
        "Requests refused because a configured limit was reached, by limit",
        REFUSALS.clone(),
    );
}
