//! An alert rule and the one step that moves its state: plain data and a pure function, so
//! every transition is tested without a clock or a server.

use crate::error::{AlertField, EngineError, Field, FieldProblem};
use serde::{Deserialize, Serialize};
use std::{fmt, time::Duration};

/// Longest `for_ms`: a condition held for a week is no longer news.
pub const ALERT_FOR_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// A condition on one metric of a queue, a topic or the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The queue whose metric is watched (queue metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The topic whose metric is watched (topic metrics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub metric: AlertMetric,
    /// Compare the metric's change per second (over the last evaluation interval) instead of
    /// its value: `dead_lettered` with `rate` is "dead letters per second".
    #[serde(default)]
    pub rate: bool,
    pub op: AlertOp,
    pub threshold: f64,
    /// How long the condition must hold before the alert fires; 0 fires at once.
    #[serde(default)]
    pub for_ms: u64,
    /// While firing, `/readyz` answers 503 naming this alert.
    #[serde(default)]
    pub readiness: bool,
}

/// What an alert may watch. Queue metrics read the queue's statistics, topic metrics the
/// topic's, node metrics the whole server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    Ready,
    Delayed,
    Leased,
    OldestReadyAgeMs,
    Consumers,
    Sent,
    Delivered,
    Acked,
    Nacked,
    Expired,
    DeadLettered,
    Dropped,
    Redriven,
    Purged,
    Published,
    Routed,
    Unroutable,
    Subscribers,
    Bindings,
    DiskFreeBytes,
    ResidentMemoryBytes,
    Queues,
    Topics,
}

/// What a metric belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricScope {
    Queue,
    Topic,
    Node,
}

impl fmt::Display for MetricScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricScope::Queue => "queue",
            MetricScope::Topic => "topic",
            MetricScope::Node => "node",
        })
    }
}

impl AlertMetric {
    pub const ALL: [AlertMetric; 23] = [
        AlertMetric::Ready,
        AlertMetric::Delayed,
        AlertMetric::Leased,
        AlertMetric::OldestReadyAgeMs,
        AlertMetric::Consumers,
        AlertMetric::Sent,
        AlertMetric::Delivered,
        AlertMetric::Acked,
        AlertMetric::Nacked,
        AlertMetric::Expired,
        AlertMetric::DeadLettered,
        AlertMetric::Dropped,
        AlertMetric::Redriven,
        AlertMetric::Purged,
        AlertMetric::Published,
        AlertMetric::Routed,
        AlertMetric::Unroutable,
        AlertMetric::Subscribers,
        AlertMetric::Bindings,
        AlertMetric::DiskFreeBytes,
        AlertMetric::ResidentMemoryBytes,
        AlertMetric::Queues,
        AlertMetric::Topics,
    ];

    pub fn scope(self) -> MetricScope {
        use AlertMetric::*;
        match self {
            Ready | Delayed | Leased | OldestReadyAgeMs | Consumers | Sent | Delivered | Acked
            | Nacked | Expired | DeadLettered | Dropped | Redriven | Purged => MetricScope::Queue,
            Published | Routed | Unroutable | Subscribers | Bindings => MetricScope::Topic,
            DiskFreeBytes | ResidentMemoryBytes | Queues | Topics => MetricScope::Node,
        }
    }

    /// The name in rules and events.
    pub fn name(self) -> &'static str {
        use AlertMetric::*;
        match self {
            Ready => "ready",
            Delayed => "delayed",
            Leased => "leased",
            OldestReadyAgeMs => "oldest_ready_age_ms",
            Consumers => "consumers",
            Sent => "sent",
            Delivered => "delivered",
            Acked => "acked",
            Nacked => "nacked",
            Expired => "expired",
            DeadLettered => "dead_lettered",
            Dropped => "dropped",
            Redriven => "redriven",
            Purged => "purged",
            Published => "published",
            Routed => "routed",
            Unroutable => "unroutable",
            Subscribers => "subscribers",
            Bindings => "bindings",
            DiskFreeBytes => "disk_free_bytes",
            ResidentMemoryBytes => "resident_memory_bytes",
            Queues => "queues",
            Topics => "topics",
        }
    }
}

impl fmt::Display for AlertMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the value compares with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertOp {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl AlertOp {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            AlertOp::Above => value > threshold,
            AlertOp::AtLeast => value >= threshold,
            AlertOp::Below => value < threshold,
            AlertOp::AtMost => value <= threshold,
        }
    }
}

impl AlertRule {
    /// The rule's resource: `(scope, name)`.
    pub fn resource(&self) -> (MetricScope, Option<&str>) {
        match (&self.queue, &self.topic) {
            (Some(queue), _) => (MetricScope::Queue, Some(queue)),
            (None, Some(topic)) => (MetricScope::Topic, Some(topic)),
            (None, None) => (MetricScope::Node, None),
        }
    }

    /// Checks what serde cannot: the resource fits the metric, the numbers are usable.
    pub fn validate(&self) -> Result<(), EngineError> {
        let scope = self.metric.scope();
        let given = match (&self.queue, &self.topic) {
            (Some(_), Some(_)) => None,
            _ => Some(self.resource().0),
        };
        if given != Some(scope) {
            let problem = FieldProblem::MetricScope {
                metric: self.metric.name(),
                scope,
            };
            return Err(EngineError::invalid_field(
                Field::Alert(AlertField::Metric),
                problem,
            ));
        }
        if !self.threshold.is_finite() {
            return Err(EngineError::invalid_field(
                Field::Alert(AlertField::Threshold),
                FieldProblem::NotFinite,
            ));
        }
        let for_time = Duration::from_millis(self.for_ms);
        if for_time > ALERT_FOR_MAX {
            let problem = FieldProblem::DurationOutOfRange {
                value: for_time,
                min: Duration::ZERO,
                max: ALERT_FOR_MAX,
            };
            return Err(EngineError::invalid_field(
                Field::Alert(AlertField::For),
                problem,
            ));
        }
        Ok(())
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold (or the metric has no value: a missing resource).
    #[default]
    Ok,
    /// The condition holds, for less than `for_ms` so far.
    Pending,
    /// The condition has held for `for_ms`.
    Firing,
}

/// An alert's state and what it last saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertStatus {
    pub state: AlertState,
    /// When the current state began (pending or firing); `None` while ok.
    pub since_ms: Option<u64>,
    /// The compared value at the last evaluation (the rate for rate rules).
    pub value: Option<f64>,
    /// The raw metric and when it was read, for the next rate.
    last_sample: Option<(u64, f64)>,
}

/// A change worth telling: the alert began or stopped firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired,
    Resolved,
}

impl AlertStatus {
    /// Moves the status to what `sample` (the metric now, `None` when its resource is gone)
    /// says at `now`; returns the transition to announce, if any.
    pub fn step(&mut self, rule: &AlertRule, sample: Option<f64>, now: u64) -> Option<Transition> {
        let value = match (rule.rate, sample) {
            (false, sample) => sample,
            (true, Some(raw)) => {
                let previous = self.last_sample.replace((now, raw));
                previous.and_then(|(at, before)| {
                    (now > at).then(|| (raw - before) * 1000.0 / (now - at) as f64)
                })
            }
            (true, None) => {
                self.last_sample = None;
                None
            }
        };
        self.value = value;
        let holds = value.is_some_and(|value| rule.op.holds(value, rule.threshold));
        match (self.state, holds) {
            (AlertState::Ok, true) if rule.for_ms == 0 => {
                self.enter(AlertState::Firing, now);
                Some(Transition::Fired)
            }
            (AlertState::Ok, true) => {
                self.enter(AlertState::Pending, now);
                None
            }
            (AlertState::Pending, true) => {
                let since = self.since_ms.unwrap_or(now);
                if now.saturating_sub(since) >= rule.for_ms {
                    self.enter(AlertState::Firing, now);
                    return Some(Transition::Fired);
                }
                None
            }
            (AlertState::Firing, true) | (AlertState::Ok, false) => None,
            (AlertState::Pending, false) => {
                self.state = AlertState::Ok;
                self.since_ms = None;
                None
            }
            (AlertState::Firing, false) => {
                self.state = AlertState::Ok;
                self.since_ms = None;
                Some(Transition::Resolved)
            }
        }
    }

    fn enter(&mut self, state: AlertState, now: u64) {
        self.state = state;
        self.since_ms = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn backlog(for_ms: u64) -> AlertRule {
        AlertRule {
            queue: Some("orders".into()),
            topic: None,
            metric: AlertMetric::Ready,
            rate: false,
            op: AlertOp::Above,
            threshold: 10.0,
            for_ms,
            readiness: false,
        }
    }

    #[test]
    fn fires_at_once_without_a_duration_and_resolves() {
        let (rule, mut status) = (backlog(0), AlertStatus::default());
        assert_eq!(status.step(&rule, Some(5.0), 0), None);
        assert_eq!(status.step(&rule, Some(11.0), 10), Some(Transition::Fired));
        assert_eq!(
            (status.state, status.since_ms),
            (AlertState::Firing, Some(10))
        );
        assert_eq!(status.step(&rule, Some(12.0), 20), None);
        assert_eq!(
            status.step(&rule, Some(10.0), 30),
            Some(Transition::Resolved)
        );
        assert_eq!((status.state, status.since_ms), (AlertState::Ok, None));
    }

    #[test]
    fn waits_out_its_duration_while_pending() {
        let (rule, mut status) = (backlog(300_000), AlertStatus::default());
        assert_eq!(status.step(&rule, Some(20.0), 1_000), None);
        assert_eq!(status.state, AlertState::Pending);
        assert_eq!(status.step(&rule, Some(20.0), 300_999), None);
        assert_eq!(
            status.step(&rule, Some(20.0), 301_000),
            Some(Transition::Fired)
        );
    }

    #[test]
    fn a_dip_while_pending_starts_the_wait_again() {
        let (rule, mut status) = (backlog(100), AlertStatus::default());
        status.step(&rule, Some(20.0), 0);
        assert_eq!(status.step(&rule, Some(1.0), 50), None);
        assert_eq!(status.state, AlertState::Ok);
        status.step(&rule, Some(20.0), 60);
        assert_eq!(status.step(&rule, Some(20.0), 120), None);
        assert_eq!(status.step(&rule, Some(20.0), 160), Some(Transition::Fired));
    }

    #[test]
    fn a_rate_compares_change_per_second() {
        let rule = AlertRule {
            metric: AlertMetric::DeadLettered,
            rate: true,
            threshold: 0.0,
            ..backlog(0)
        };
        let mut status = AlertStatus::default();
        assert_eq!(
            status.step(&rule, Some(7.0), 0),
            None,
            "no rate from one sample"
        );
        assert_eq!(status.value, None);
        assert_eq!(status.step(&rule, Some(7.0), 1_000), None);
        assert_eq!(status.value, Some(0.0));
        assert_eq!(
            status.step(&rule, Some(9.0), 2_000),
            Some(Transition::Fired)
        );
        assert_eq!(status.value, Some(2.0));
    }

    #[test]
    fn a_missing_resource_never_fires_and_resolves_a_firing_alert() {
        let (rule, mut status) = (backlog(0), AlertStatus::default());
        assert_eq!(status.step(&rule, None, 0), None);
        status.step(&rule, Some(50.0), 1);
        assert_eq!(status.step(&rule, None, 2), Some(Transition::Resolved));
    }

    #[test]
    fn metrics_need_their_own_kind_of_resource() {
        let node = AlertRule {
            metric: AlertMetric::DiskFreeBytes,
            ..backlog(0)
        };
        assert!(node.validate().is_err(), "a queue with a node metric");
        let node = AlertRule {
            queue: None,
            ..node
        };
        node.validate().expect("a node metric alone");
        let both = AlertRule {
            topic: Some("t".into()),
            ..backlog(0)
        };
        assert!(both.validate().is_err());
        let topic_metric = AlertRule {
            metric: AlertMetric::Published,
            ..backlog(0)
        };
        let error = topic_metric.validate().unwrap_err().to_string();
        assert!(
            error.contains("published") && error.contains("topic"),
            "{error}"
        );
        assert!(AlertRule {
            threshold: f64::NAN,
            ..backlog(0)
        }
        .validate()
        .is_err());
        assert!(AlertRule {
            for_ms: u64::MAX,
            ..backlog(0)
        }
        .validate()
        .is_err());
    }

    #[test]
    fn every_metric_name_round_trips_through_serde() {
        for metric in AlertMetric::ALL {
            let json = serde_json::to_value(metric).expect("serializes");
            assert_eq!(json, metric.name());
            assert_eq!(
                serde_json::from_value::<AlertMetric>(json).ok(),
                Some(metric)
            );
        }
    }

    proptest! {
        /// Whatever the samples, fired and resolved alternate, starting with fired, and the
        /// state is firing exactly when more fired than resolved.
        #[test]
        fn transitions_alternate(
            samples in prop::collection::vec(prop::option::of(0u32..30), 0..60),
            for_ms in 0u64..50,
        ) {
            let (rule, mut status) = (backlog(for_ms), AlertStatus::default());
            let mut firing = false;
            for (i, sample) in samples.into_iter().enumerate() {
                match status.step(&rule, sample.map(f64::from), i as u64 * 10) {
                    Some(Transition::Fired) => { prop_assert!(!firing); firing = true; }
                    Some(Transition::Resolved) => { prop_assert!(firing); firing = false; }
                    None => {}
                }
                prop_assert_eq!(status.state == AlertState::Firing, firing);
            }
        }
    }
}
