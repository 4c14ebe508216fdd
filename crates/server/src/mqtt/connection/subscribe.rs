//! SUBSCRIBE and UNSUBSCRIBE, and the subscriptions of a restored session.

use super::{consume, interested, session_credit_of, Connection, Source, Sub};
use crate::mqtt::{
    names::Filter,
    session::{self, Document, Stored},
};
use wharf_codec_mqtt::{
    Packet, ProtocolVersion, ReasonCode, Suback, Subscribe, Subscription, Unsuback, Unsubscribe,
};
use wharf_engine::{
    security::{Action, Resource, ResourceKind},
    topic::{BindingSpec, Destination},
    EngineError,
};
use wharf_model::pattern::Syntax;

/// Most subscriptions one session holds: a clean session's each cost every publish to the
/// topic a check, so one client cannot make every publish slow.
pub const SUBSCRIPTIONS_MAX: usize = 1_000;

impl Connection {
    pub(super) async fn subscribe(&mut self, subscribe: Subscribe) {
        let id = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        for subscription in &subscribe.subscriptions {
            let stored = Stored::new(
                subscription.topic_filter.as_str(),
                &subscription.options,
                id,
            );
            codes.push(match self.add(stored, subscription).await {
                Ok(()) => granted(subscription),
                Err(code) => code,
            });
        }
        if self.expiry_s > 0 {
            self.store_session().await;
        }
        let codes = codes
            .into_iter()
            .map(|code| match (self.version, code.is_error()) {
                (ProtocolVersion::V311, true) => ReasonCode::UNSPECIFIED_ERROR,
                _ => code,
            })
            .collect();
        let suback = Suback {
            packet_id: subscribe.packet_id,
            properties: Default::default(),
            reason_codes: codes,
        };
        self.send(&Packet::Suback(suback));
    }

    /// Adds (or replaces) one subscription and sends the retained messages it asks for.
    async fn add(
        &mut self,
        mut stored: Stored,
        subscription: &Subscription,
    ) -> Result<(), ReasonCode> {
        let filter = Filter::parse(&stored.filter).map_err(|_| ReasonCode::TOPIC_FILTER_INVALID)?;
        if filter.share.is_some() && stored.no_local {
            return Err(ReasonCode::TOPIC_FILTER_INVALID);
        }
        let resource = Resource {
            kind: ResourceKind::Topic,
            name: &self.door.settings.topic,
        };
        if self
            .engine
            .authorize(&self.principal, Action::Read, resource)
            .is_err()
        {
            return Err(ReasonCode::NOT_AUTHORIZED);
        }
        if !self.subs.contains_key(&stored.filter) && self.subs.len() >= SUBSCRIPTIONS_MAX {
            return Err(ReasonCode::QUOTA_EXCEEDED);
        }
        let existed = self.subs.remove(&stored.filter);
        let source = match (&filter.share, self.expiry_s) {
            (Some(group), _) => self.shared(group, &filter).await,
            (None, 0) => {
                self.live_subscription(&filter, &stored, subscription, existed.is_some())
                    .await
            }
            (None, _) => {
                let bound = existed.and_then(|sub| sub.stored.binding);
                self.session(&filter, &mut stored, bound).await
            }
        }
        .map_err(|error| {
            tracing::debug!(%error, "an MQTT subscription failed");
            ReasonCode::UNSPECIFIED_ERROR
        })?;
        let key = stored.filter.clone();
        self.subs.insert(
            key,
            Sub {
                stored,
                filter,
                source,
            },
        );
        Ok(())
    }

    /// A clean session's subscription: live, and the retained messages it matches now.
    async fn live_subscription(
        &mut self,
        filter: &Filter,
        stored: &Stored,
        subscription: &Subscription,
        existed: bool,
    ) -> Result<Source, EngineError> {
        let tag = self.take_tag();
        let topic = self.door.settings.topic.clone();
        let live = self.feed();
        let mut feed =
            (self.engine).subscribe_feed(&topic, interested(&filter.pattern), live, tag)?;
        if session::sends_retained(subscription.options.retain_handling, existed) {
            // Ends: each batch moves through the topic's retained keys, which are finitely many.
            while let Some(batch) = feed.next_retained().await? {
                for (key, message) in batch {
                    if filter.matches(&crate::mqtt::names::name_of(&key)) {
                        self.retained(&key, &message, stored.qos(), stored.subscription_id());
                    }
                }
            }
        }
        Ok(Source::Live {
            tag,
            _subscription: feed,
        })
    }

    /// A persistent session's subscription: a binding to its queue (kept, with when it was
    /// made, when the filter was subscribed before), and the session's consumer.
    async fn session(
        &mut self,
        filter: &Filter,
        stored: &mut Stored,
        bound: Option<String>,
    ) -> Result<Source, EngineError> {
        let queue = session::queue_of(&self.client_id);
        let binding = match bound {
            Some(binding) => binding,
            None => {
                let spec = BindingSpec {
                    pattern: filter.pattern.clone(),
                    syntax: Syntax::Amqp,
                    filter: None,
                    headers: None,
                    destination: Destination::Queue(queue.clone()),
                };
                self.engine.bind(&self.door.settings.topic, spec).await?
            }
        };
        stored.binding = Some(binding);
        self.attach_session_consumer().await?;
        Ok(Source::Session)
    }

    pub(super) async fn attach_session_consumer(&mut self) -> Result<(), EngineError> {
        if self.session_consumer.is_none() {
            let queue = session::queue_of(&self.client_id);
            let credit = session_credit_of(self.client_receive_maximum);
            let to = self.queued_sender();
            self.session_consumer = Some(consume(&self.engine, &queue, credit, to).await?);
        }
        Ok(())
    }

    /// A shared subscription: the group's queue, bound once, and a consumer of it.
    async fn shared(&mut self, group: &str, filter: &Filter) -> Result<Source, EngineError> {
        let queue = session::shared_queue(group, &filter.mqtt);
        let topic = self.door.settings.topic.clone();
        if self.engine.queue_info(&queue).is_err() {
            self.engine
                .put_queue(&queue, session::shared_queue_options())
                .await?;
        }
        let bound = (self.engine.list_bindings(&topic)?.into_iter())
            .any(|binding| binding.spec.destination == Destination::Queue(queue.clone()));
        if !bound {
            let spec = BindingSpec {
                pattern: filter.pattern.clone(),
                syntax: Syntax::Amqp,
                filter: None,
                headers: None,
                destination: Destination::Queue(queue.clone()),
            };
            self.engine.bind(&topic, spec).await?;
        }
        let credit = session_credit_of(self.client_receive_maximum);
        let to = self.queued_sender();
        let forward = consume(&self.engine, &queue, credit, to).await?;
        Ok(Source::Shared {
            queue,
            _forward: forward,
        })
    }

    pub(super) async fn unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut codes = Vec::with_capacity(unsubscribe.topic_filters.len());
        for filter in &unsubscribe.topic_filters {
            codes.push(match self.subs.remove(filter.as_str()) {
                Some(sub) => {
                    if let Some(binding) = &sub.stored.binding {
                        let topic = &self.door.settings.topic;
                        if let Err(error) = self.engine.unbind(topic, binding).await {
                            tracing::debug!(%error, "unbinding an MQTT subscription failed");
                        }
                    }
                    ReasonCode::SUCCESS
                }
                None => ReasonCode::NO_SUBSCRIPTION_EXISTED,
            });
        }
        if self.expiry_s > 0 {
            self.store_session().await;
        }
        let unsuback = Unsuback {
            packet_id: unsubscribe.packet_id,
            properties: Default::default(),
            reason_codes: match self.version {
                ProtocolVersion::V311 => Vec::new(),
                ProtocolVersion::V5 => codes,
            },
        };
        self.send(&Packet::Unsuback(unsuback));
    }

    /// Takes up a restored session's subscriptions: their bindings are still there.
    pub(super) async fn resume(&mut self, document: Document) {
        for stored in document.subscriptions {
            let Some(filter) = stored.parsed() else {
                continue;
            };
            let source = match &filter.share {
                Some(group) => match self.shared(&group.clone(), &filter).await {
                    Ok(source) => source,
                    Err(_) => continue,
                },
                None => Source::Session,
            };
            let key = stored.filter.clone();
            self.subs.insert(
                key,
                Sub {
                    stored,
                    filter,
                    source,
                },
            );
        }
        if let Err(error) = self.attach_session_consumer().await {
            tracing::debug!(%error, "attaching to an MQTT session's queue failed");
        }
    }

    async fn store_session(&mut self) {
        let document = Document {
            client_id: self.client_id.clone(),
            expiry_s: self.expiry_s,
            subscriptions: self.subs.values().map(|sub| sub.stored.clone()).collect(),
        };
        if let Err(error) = session::store(&self.engine, &document).await {
            tracing::warn!(%error, "storing an MQTT session failed");
        }
    }

    fn take_tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }
}

/// The Reason Code of a subscription granted at the QoS it asked for (all three are served).
fn granted(subscription: &Subscription) -> ReasonCode {
    ReasonCode(subscription.options.qos.level())
}
