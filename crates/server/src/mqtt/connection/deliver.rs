//! Messages to the client: from live subscriptions (clean sessions), from the persistent
//! session's queue and from shared subscriptions' queues. Each goes out at the lower of the
//! QoS it was published with and the one its subscription was granted; QoS 1 and 2 take a
//! packet identifier, and wait for one while the client's Receive Maximum is reached.

use super::{Connection, Inflight, Queued, Source, Waiting, WAITING_BYTES_MAX, WAITING_MAX};
use crate::mqtt::{convert, names, session};
use std::sync::Arc;
use wharf_codec_mqtt::{Packet, Publish, QoS, SubscriptionId};
use wharf_engine::broker::{LiveMessage, ROUTING_KEY_HEADER};
use wharf_model::message::Message;

/// What the subscriptions that match a message ask for it.
struct Matched {
    qos: QoS,
    retain_as_published: bool,
    ids: Vec<SubscriptionId>,
    /// A retained message a subscription's binding copied into the session's queue: it goes
    /// out with RETAIN set, as retained messages sent for a new subscription do.
    copied_retained: bool,
}

impl Connection {
    /// A message of a live subscription.
    pub(super) fn live(&mut self, live: LiveMessage) {
        let Some(sub) = self
            .subs
            .values()
            .find(|sub| matches!(sub.source, Source::Live { tag, .. } if tag == live.tag))
        else {
            return;
        };
        let name = names::name_of(&live.routing_key);
        if !sub.filter.matches(&name)
            || (sub.stored.no_local && convert::published_by(&live.message, &self.client_id))
        {
            return;
        }
        let matched = Matched {
            qos: sub.stored.qos(),
            retain_as_published: sub.stored.retain_as_published,
            ids: sub.stored.subscription_id().into_iter().collect(),
            copied_retained: false,
        };
        let retain = matched.retain_as_published && convert::published_retained(&live.message);
        self.deliver(name, &live.message, matched, retain, None);
    }

    /// A retained message sent for a new subscription.
    pub(super) fn retained(
        &mut self,
        key: &str,
        message: &Message,
        qos: QoS,
        id: Option<SubscriptionId>,
    ) {
        let name = names::name_of(key);
        let matched = Matched {
            qos,
            retain_as_published: true,
            ids: id.into_iter().collect(),
            copied_retained: false,
        };
        self.deliver(name, message, matched, true, None);
    }

    /// A delivery of the session's queue or of a shared subscription's.
    pub(super) fn queued(&mut self, queued: Queued) {
        let Queued { queue, delivery } = queued;
        let settle = (queue.clone(), delivery.receipt.clone());
        let name = self.queued_name(&queue, &delivery.message);
        let matched = name
            .as_deref()
            .and_then(|name| self.matched_by_queue(&queue, name, &delivery.message));
        let (Some(name), Some(matched)) = (name, matched) else {
            // No subscription of this client wants it (No Local, or a `$` topic under a
            // wildcard), or its topic is unknown: it is done with.
            self.to_ack.entry(settle.0).or_default().push(settle.1);
            return;
        };
        let retain = matched.copied_retained
            || (matched.retain_as_published && convert::published_retained(&delivery.message));
        let dup = delivery.delivery_count > 1;
        self.deliver_dup(name, &delivery.message, matched, retain, Some(settle), dup);
    }

    /// The topic name of a queued message: as its MQTT publisher gave it; for a message another
    /// door published to the topic, its routing key (which the engine keeps in a header); for
    /// one sent to the queue itself, the filter of the one subscription behind the queue when
    /// it has no wildcard.
    fn queued_name(&self, queue: &str, message: &Message) -> Option<String> {
        if let Some(name) = convert::published_topic(message) {
            return Some(name.to_string());
        }
        if let Some(key) = message.headers.get(ROUTING_KEY_HEADER) {
            return Some(names::name_of(key));
        }
        let mut filters = (self.subs.values())
            .filter(|sub| match &sub.source {
                Source::Session => queue.starts_with("mqtt.session."),
                Source::Shared { queue: shared, .. } => shared == queue,
                Source::Live { .. } => false,
            })
            .map(|sub| sub.filter.mqtt.as_str());
        match (filters.next(), filters.next()) {
            (Some(filter), None) if !filter.contains(['+', '#']) => Some(filter.to_string()),
            _ => None,
        }
    }

    /// The subscriptions behind `queue` that match `name`, merged: the highest QoS, every
    /// subscription identifier.
    fn matched_by_queue(&self, queue: &str, name: &str, message: &Message) -> Option<Matched> {
        let mut matched: Option<Matched> = None;
        for sub in self.subs.values() {
            let from_queue = match &sub.source {
                Source::Session => queue.starts_with("mqtt.session."),
                Source::Shared { queue: shared, .. } => shared == queue,
                Source::Live { .. } => false,
            };
            if !from_queue || !sub.filter.matches(name) {
                continue;
            }
            if sub.stored.no_local && convert::published_by(message, &self.client_id) {
                continue;
            }
            let copied = matches!(sub.source, Source::Session) && session::copied_retained(message);
            if copied && sub.stored.skip_retained {
                // Retain Handling 2: the retained messages its binding copied are not sent.
                continue;
            }
            let entry = matched.get_or_insert(Matched {
                qos: QoS::AtMostOnce,
                retain_as_published: false,
                ids: Vec::new(),
                copied_retained: false,
            });
            entry.copied_retained |= copied;
            entry.qos = entry.qos.max(sub.stored.qos());
            entry.retain_as_published |= sub.stored.retain_as_published;
            entry.ids.extend(sub.stored.subscription_id());
        }
        matched
    }

    fn deliver(
        &mut self,
        name: String,
        message: &Message,
        matched: Matched,
        retain: bool,
        settle: Option<(Arc<str>, String)>,
    ) {
        self.deliver_dup(name, message, matched, retain, settle, false);
    }

    fn deliver_dup(
        &mut self,
        name: String,
        message: &Message,
        matched: Matched,
        retain: bool,
        settle: Option<(Arc<str>, String)>,
        dup: bool,
    ) {
        let now_ms = self.engine.now();
        if message.expires_at.is_some_and(|at| at <= now_ms) {
            if let Some((queue, receipt)) = settle {
                self.to_ack.entry(queue).or_default().push(receipt);
            }
            return;
        }
        let qos = convert::published_qos(message).min(matched.qos);
        let outgoing = convert::Outgoing {
            topic_name: name,
            qos,
            retain,
            dup: dup && qos != QoS::AtMostOnce,
            subscription_ids: matched.ids,
            message,
            now_ms,
        };
        let Some(publish) = convert::publish_of(outgoing, self.version) else {
            return;
        };
        if qos == QoS::AtMostOnce {
            self.send_publish(publish);
            if let Some((queue, receipt)) = settle {
                self.to_ack.entry(queue).or_default().push(receipt);
            }
            return;
        }
        if self.waiting.is_empty() {
            if let Some(id) = self.packet_id() {
                self.send_inflight(publish, id, settle);
                return;
            }
        }
        let bytes = publish.payload.len();
        let room = self.waiting.is_empty()
            || (self.waiting.len() < WAITING_MAX
                && self.waiting_bytes + bytes <= WAITING_BYTES_MAX);
        if room || settle.is_some() {
            self.waiting_bytes += bytes;
            self.waiting.push_back(Waiting { publish, settle });
        }
    }

    /// Sends what waited for a packet identifier, while there are free ones.
    pub(super) fn send_waiting(&mut self) {
        while !self.waiting.is_empty() {
            let Some(id) = self.packet_id() else {
                return;
            };
            if let Some(Waiting { publish, settle }) = self.waiting.pop_front() {
                self.waiting_bytes -= publish.payload.len();
                self.send_inflight(publish, id, settle);
            }
        }
    }

    fn send_inflight(
        &mut self,
        mut publish: Publish,
        id: wharf_codec_mqtt::PacketId,
        settle: Option<(Arc<str>, String)>,
    ) {
        publish.packet_id = Some(id);
        let inflight = Inflight {
            qos: publish.qos,
            released: false,
            settle,
        };
        self.inflight.insert(id.get(), inflight);
        self.send_publish(publish);
    }

    /// Replaces the topic name by a Topic Alias the client allows: the alias alone once it is
    /// set, the name and a new alias while there is room [MQTT-3.3.2-12].
    fn alias(&mut self, publish: &mut Publish) {
        if self.client_alias_max == 0 {
            return;
        }
        let name = publish.topic_name.as_str();
        if let Some(alias) = self.server_aliases.get(name) {
            publish.properties.topic_alias = Some(*alias);
            publish.topic_name = Default::default();
            return;
        }
        let next = u16::try_from(self.server_aliases.len() + 1).unwrap_or(u16::MAX);
        if next > self.client_alias_max {
            return;
        }
        if let Some(alias) = std::num::NonZeroU16::new(next) {
            self.server_aliases.insert(name.to_string(), alias);
            publish.properties.topic_alias = Some(alias);
        }
    }

    /// Sends `publish` unless it is over the client's Maximum Packet Size, which drops it
    /// [MQTT-3.1.2-25] (and settles it: the client will never have it).
    fn send_publish(&mut self, mut publish: Publish) {
        // Measured with the whole topic name: an alias set on a message the client never gets
        // would leave it unable to read the next one.
        let packet = Packet::Publish(publish);
        let size = wharf_codec_mqtt::encoded_len(&packet, self.version).unwrap_or(usize::MAX);
        let Packet::Publish(publish_back) = packet else {
            return;
        };
        publish = publish_back;
        if size > self.client_packet_size_max as usize {
            let inflight = (publish.packet_id).and_then(|id| self.inflight.remove(&id.get()));
            if let Some((queue, receipt)) = inflight.and_then(|inflight| inflight.settle) {
                self.to_ack.entry(queue).or_default().push(receipt);
            }
            return;
        }
        self.alias(&mut publish);
        self.send(&Packet::Publish(publish));
    }
}
