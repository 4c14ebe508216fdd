//! Alert rules: conditions on a metric of a queue, a topic or the node that fire and resolve
//! as events published to a Wharf topic (`EngineConfig::alerts_topic`), so they reach bindings,
//! subscribers and the dashboard like any message.
//!
//! Rules come from the configuration file (fixed for the process; the API cannot change them)
//! or from the API (kept in the metadata store under `alerts/rule/NAME`, so they survive a
//! restart). States are the process's: after a restart every alert starts `ok` and fires again
//! if its condition still holds, which tells subscribers the truth after a gap.
//!
//! The engine evaluates when asked ([`Engine::evaluate_alerts`]); the server asks on a timer
//! and passes what only it knows (the disk's free space, the process's memory). The time is
//! the engine's clock, so tests drive every transition without waiting.

mod rule;

pub use rule::{
    AlertMetric, AlertOp, AlertRule, AlertState, AlertStatus, MetricScope, Transition,
    ALERT_FOR_MAX,
};

use crate::{
    broker::{PublishMessage, SendMessage},
    error::{DefinitionError, EngineError, NameProblem, ResourceKind},
    topic::TopicOptions,
    Engine,
};
use bytes::Bytes;
use std::{collections::BTreeMap, str::FromStr, sync::Mutex};
use wharf_model::QueueName;
use wharf_storage::MetaOp;

/// Where rules made over the API are kept.
pub const ALERT_META_PREFIX: &str = "alerts/rule/";

/// Default of `EngineConfig::alerts_topic`.
pub const ALERTS_TOPIC_DEFAULT: &str = "wharf.alerts";

/// Most alert rules at once: each is evaluated on every tick.
pub const ALERT_RULES_MAX: usize = 1_000;

/// What the server measures for node metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeSample {
    pub disk_free_bytes: Option<u64>,
    pub resident_memory_bytes: Option<u64>,
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    Config,
    Api,
}

/// A rule and where it stands, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInfo {
    pub name: String,
    pub rule: AlertRule,
    pub source: RuleSource,
    pub status: AlertStatus,
}

/// An alert that began or stopped firing, as published.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub name: String,
    pub transition: Transition,
    pub rule: AlertRule,
    pub value: Option<f64>,
    pub at_ms: u64,
}

#[derive(Debug)]
struct Entry {
    rule: AlertRule,
    source: RuleSource,
    status: AlertStatus,
}

/// Every rule and its state.
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Alerts {
    /// The configuration's rules, then those kept in `store`; a kept rule that no longer
    /// decodes is returned as damaged and left out.
    pub(crate) fn load(
        store: &dyn wharf_storage::Storage,
        configured: &[(String, AlertRule)],
    ) -> Result<(Alerts, Vec<EngineError>), EngineError> {
        let mut entries = BTreeMap::new();
        for (name, rule) in configured {
            check_name(name)?;
            rule.validate()?;
            let entry = Entry {
                rule: rule.clone(),
                source: RuleSource::Config,
                status: AlertStatus::default(),
            };
            entries.insert(name.clone(), entry);
        }
        let mut damaged = Vec::new();
        for (key, value) in store.meta_list(ALERT_META_PREFIX) {
            let name = key[ALERT_META_PREFIX.len()..].to_string();
            let rule = serde_json::from_value::<AlertRule>(value)
                .map_err(DefinitionError::Decode)
                .and_then(|rule| {
                    rule.validate()
                        .map(|()| rule)
                        .map_err(|e| DefinitionError::Refused(Box::new(e)))
                });
            match rule {
                // The configuration wins over a rule the API stored before it was configured.
                Ok(_) if entries.contains_key(&name) => {}
                Ok(rule) => {
                    let source = RuleSource::Api;
                    let status = AlertStatus::default();
                    entries.insert(
                        name,
                        Entry {
                            rule,
                            source,
                            status,
                        },
                    );
                }
                Err(source) => damaged.push(EngineError::CorruptDefinition { key, source }),
            }
        }
        let alerts = Alerts {
            entries: Mutex::new(entries),
        };
        Ok((alerts, damaged))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // Nothing panics while holding it, and a map of plain data stays whole if it did.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn check_name(name: &str) -> Result<(), EngineError> {
    QueueName::from_str(name)
        .map(drop)
        .map_err(|source| EngineError::InvalidName {
            kind: ResourceKind::Alert,
            name: name.to_string(),
            problem: NameProblem::Rules { source },
        })
}

impl Engine {
    /// Creates or replaces the API rule `name`; returns whether it was created. A replaced
    /// rule starts again from `ok`. Its queue or topic must exist.
    pub async fn put_alert_rule(&self, name: &str, rule: AlertRule) -> Result<bool, EngineError> {
        self.check_open()?;
        check_name(name)?;
        rule.validate()?;
        match rule.resource() {
            (MetricScope::Queue, Some(queue)) => drop(self.queue_info(queue)?),
            (MetricScope::Topic, Some(topic)) => drop(self.topic_info(topic)?),
            _ => {}
        }
        let _admin = self.inner.admin.lock().await;
        {
            let entries = self.inner.alerts.entries();
            match entries.get(name) {
                Some(entry) if entry.source == RuleSource::Config => {
                    return Err(EngineError::AlertConfigured {
                        name: name.to_string(),
                    })
                }
                None if entries.len() >= ALERT_RULES_MAX => {
                    return Err(EngineError::LimitReached {
                        limit: "alert rules",
                        max: ALERT_RULES_MAX,
                    })
                }
                _ => {}
            }
        }
        let value = serde_json::to_value(&rule).map_err(|e| EngineError::Internal {
            operation: if e.is_data() {
                "encode alert rule"
            } else {
                "alert rule"
            },
        })?;
        let put = MetaOp::Put(format!("{ALERT_META_PREFIX}{name}"), value);
        self.inner.store.meta_apply(vec![put]).await?;
        let entry = Entry {
            rule,
            source: RuleSource::Api,
            status: AlertStatus::default(),
        };
        let replaced = self.inner.alerts.entries().insert(name.to_string(), entry);
        Ok(replaced.is_none())
    }

    /// Deletes the API rule `name`.
    pub async fn delete_alert_rule(&self, name: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let _admin = self.inner.admin.lock().await;
        match self
            .inner
            .alerts
            .entries()
            .get(name)
            .map(|entry| entry.source)
        {
            None => {
                return Err(EngineError::AlertNotFound {
                    name: name.to_string(),
                })
            }
            Some(RuleSource::Config) => {
                return Err(EngineError::AlertConfigured {
                    name: name.to_string(),
                })
            }
            Some(RuleSource::Api) => {}
        }
        let delete = MetaOp::Delete(format!("{ALERT_META_PREFIX}{name}"));
        crate::broker::space::meta_apply_freeing(self.inner.store.as_ref(), vec![delete]).await?;
        self.inner.alerts.entries().remove(name);
        Ok(())
    }

    /// Every rule with its state, by name.
    pub fn alerts(&self) -> Vec<AlertInfo> {
        (self.inner.alerts.entries().iter())
            .map(|(name, entry)| AlertInfo {
                name: name.clone(),
                rule: entry.rule.clone(),
                source: entry.source,
                status: entry.status.clone(),
            })
            .collect()
    }

    pub fn alert(&self, name: &str) -> Result<AlertInfo, EngineError> {
        (self.alerts().into_iter())
            .find(|info| info.name == name)
            .ok_or_else(|| EngineError::AlertNotFound {
                name: name.to_string(),
            })
    }

    /// Names of the firing alerts whose rules hold readiness.
    pub fn alerts_failing_readiness(&self) -> Vec<String> {
        (self.inner.alerts.entries().iter())
            .filter(|(_, entry)| entry.rule.readiness && entry.status.state == AlertState::Firing)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Reads every rule's metric, moves its state, and publishes each alert that began or
    /// stopped firing to the alerts topic (created with default options when missing).
    /// Returns those events. A publish that fails is logged; the states move all the same, so
    /// a broken topic cannot make an alert fire twice.
    pub async fn evaluate_alerts(&self, node: NodeSample) -> Vec<AlertEvent> {
        let now = self.now();
        let rules: Vec<(String, AlertRule)> = (self.inner.alerts.entries().iter())
            .map(|(name, entry)| (name.clone(), entry.rule.clone()))
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        let samples: Vec<Option<f64>> = (rules.iter())
            .map(|(_, rule)| self.sample(rule, node))
            .collect();
        let mut events = Vec::new();
        {
            let mut entries = self.inner.alerts.entries();
            for ((name, rule), sample) in rules.into_iter().zip(samples) {
                // Skip a rule replaced or deleted since it was read.
                let Some(entry) = entries.get_mut(&name).filter(|entry| entry.rule == rule) else {
                    continue;
                };
                if let Some(transition) = entry.status.step(&rule, sample, now) {
                    let value = entry.status.value;
                    events.push(AlertEvent {
                        name,
                        transition,
                        rule,
                        value,
                        at_ms: now,
                    });
                }
            }
        }
        if !events.is_empty() {
            if let Err(error) = self.publish_alert_events(&events).await {
                tracing::warn!(%error, topic = %self.inner.config.alerts_topic, "publishing alert events failed");
            }
        }
        events
    }

    fn sample(&self, rule: &AlertRule, node: NodeSample) -> Option<f64> {
        use AlertMetric::*;
        let metric = rule.metric;
        match rule.resource() {
            (MetricScope::Queue, Some(queue)) => {
                let stats = self.queue_info(queue).ok()?.stats;
                let counters = stats.counters;
                let value = match metric {
                    Ready => stats.ready,
                    Delayed => stats.delayed,
                    Leased => stats.leased,
                    OldestReadyAgeMs => stats.oldest_ready_age_ms.unwrap_or(0),
                    Consumers => stats.consumers,
                    Sent => counters.sent,
                    Delivered => counters.delivered,
                    Acked => counters.acked,
                    Nacked => counters.nacked,
                    Expired => counters.expired,
                    DeadLettered => counters.dead_lettered,
                    Dropped => counters.dropped,
                    Redriven => counters.redriven,
                    Purged => counters.purged,
                    _ => return None,
                };
                Some(value as f64)
            }
            (MetricScope::Topic, Some(topic)) => {
                let stats = self.topic_info(topic).ok()?.stats;
                let value = match metric {
                    Published => stats.published,
                    Routed => stats.routed,
                    Unroutable => stats.unroutable,
                    Subscribers => stats.subscribers,
                    Bindings => stats.bindings,
                    _ => return None,
                };
                Some(value as f64)
            }
            _ => {
                let value = match metric {
                    DiskFreeBytes => node.disk_free_bytes?,
                    ResidentMemoryBytes => node.resident_memory_bytes?,
                    Queues => self.queue_count() as u64,
                    Topics => self.topic_count() as u64,
                    _ => return None,
                };
                Some(value as f64)
            }
        }
    }

    async fn publish_alert_events(&self, events: &[AlertEvent]) -> Result<(), EngineError> {
        let topic = self.inner.config.alerts_topic.clone();
        if self.topic_info(&topic).is_err() {
            self.put_topic(&topic, TopicOptions::default()).await?;
        }
        let batch = events.iter().map(alert_message).collect();
        self.publish(&topic, batch).await?;
        Ok(())
    }
}

/// One event as a message: routing key `alert.STATE.NAME`, a JSON body.
fn alert_message(event: &AlertEvent) -> PublishMessage {
    let state = match event.transition {
        Transition::Fired => "firing",
        Transition::Resolved => "resolved",
    };
    let body = serde_json::json!({
        "alert": event.name,
        "state": state,
        "rule": event.rule,
        "value": event.value,
        "at_ms": event.at_ms,
    });
    PublishMessage {
        routing_key: format!("alert.{state}.{}", event.name),
        message: SendMessage {
            body: Bytes::from(body.to_string()),
            content_type: Some("application/json".to_string()),
            ..SendMessage::default()
        },
        retain: false,
    }
}

#[cfg(test)]
mod tests;
