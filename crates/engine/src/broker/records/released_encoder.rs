//! The encoder of the released layout (version 0) of commit cf321b4, re-created for tests only:
//! the reference that `legacy.rs` decodes. It serializes with postcard, as that encoder did,
//! through types that mirror the released serde types field for field and variant for variant,
//! so that later changes to `Message` or `BindingSpec` cannot change what it writes. The golden
//! tests in `legacy.rs` check it writes the fixture's bytes. Frozen, like the layout.

use super::{DeliveryCount, QueueRecord, SettleReason};
use crate::{
    broker::topic_records::TopicRecord,
    topic::{BindingSpec, Destination, HeadersMode},
};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use std::collections::BTreeMap;
use wharf_model::{
    message::{DeadLetterReason, Message},
    pattern::Syntax,
};

pub(crate) fn encode_queue_record(record: &QueueRecord) -> Bytes {
    let mut out = BytesMut::new();
    match record {
        QueueRecord::Enqueued { message, dedup } => {
            out.put_u8(1);
            out.put_u8(u8::from(*dedup));
            put_meta_and_body(&mut out, &ReleasedMessage::from(message), &message.body);
        }
        // The released layout held one delivery a record: the first stands for the record.
        QueueRecord::Delivered { deliveries } => {
            let DeliveryCount {
                seq,
                delivery_count,
                at,
            } = deliveries[0];
            out.put_u8(2);
            out.put_slice(&serialize(&(seq, delivery_count, at)));
        }
        QueueRecord::Settled { seqs, reason } => {
            out.put_u8(3);
            let reason = match reason {
                SettleReason::Acked => ReleasedSettleReason::Acked,
                SettleReason::DeadLettered => ReleasedSettleReason::DeadLettered,
                SettleReason::Dropped => ReleasedSettleReason::Dropped,
                SettleReason::Purged => ReleasedSettleReason::Purged,
                SettleReason::Redriven => ReleasedSettleReason::Redriven,
            };
            out.put_slice(&serialize(&(seqs, reason)));
        }
        QueueRecord::Relocated { .. } => {
            unreachable!("the released layout has no relocated records; callers pass the others")
        }
    }
    out.freeze()
}

pub(crate) fn encode_topic_record(record: &TopicRecord) -> Bytes {
    let mut out = BytesMut::new();
    match record {
        TopicRecord::BindingAdded { id, spec } => {
            out.put_u8(1);
            out.put_slice(&serialize(&(id, ReleasedBindingSpec::from(spec))));
        }
        TopicRecord::BindingRemoved { id } => {
            out.put_u8(2);
            out.put_slice(&serialize(&(id,)));
        }
        TopicRecord::Retained { key, message } => {
            out.put_u8(3);
            let meta = (key, ReleasedMessage::from(message));
            put_meta_and_body(&mut out, &meta, &message.body);
        }
    }
    out.freeze()
}

fn serialize(value: &impl Serialize) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap()
}

fn put_meta_and_body(out: &mut BytesMut, meta: &impl Serialize, body: &[u8]) {
    let meta = serialize(meta);
    out.put_u32_le(meta.len() as u32);
    out.put_slice(&meta);
    out.put_slice(body);
}

#[derive(Serialize)]
enum ReleasedSettleReason {
    Acked,
    DeadLettered,
    Dropped,
    Purged,
    Redriven,
}

#[derive(Serialize)]
struct ReleasedMessage {
    id: String,
    content_type: String,
    headers: BTreeMap<String, String>,
    priority: u8,
    group: Option<String>,
    correlation_id: Option<String>,
    reply_to: Option<String>,
    sent_at: u64,
    deliver_at: Option<u64>,
    expires_at: Option<u64>,
    dead_letter: Option<ReleasedDeadLetter>,
}

#[derive(Serialize)]
struct ReleasedDeadLetter {
    reason: ReleasedDeadLetterReason,
    source_queue: String,
    at: u64,
    delivery_count: u32,
    last_error: Option<String>,
}

#[derive(Serialize)]
enum ReleasedDeadLetterReason {
    MaxDeliveries,
    Expired,
    Rejected,
    Overflow,
}

#[derive(Serialize)]
struct ReleasedBindingSpec {
    pattern: String,
    syntax: ReleasedSyntax,
    filter: Option<String>,
    headers: Option<(ReleasedHeadersMode, BTreeMap<String, String>)>,
    destination: ReleasedDestination,
}

#[derive(Serialize)]
enum ReleasedSyntax {
    Amqp,
    Mqtt,
    Nats,
}

#[derive(Serialize)]
enum ReleasedHeadersMode {
    All,
    Any,
}

#[derive(Serialize)]
enum ReleasedDestination {
    Queue(String),
    Stream(String),
    Topic(String),
}

impl From<&Message> for ReleasedMessage {
    fn from(m: &Message) -> Self {
        ReleasedMessage {
            id: m.id.clone(),
            content_type: m.content_type.clone(),
            headers: m.headers.clone(),
            priority: m.priority,
            group: m.group.clone(),
            correlation_id: m.correlation_id.clone(),
            reply_to: m.reply_to.clone(),
            sent_at: m.sent_at,
            deliver_at: m.deliver_at,
            expires_at: m.expires_at,
            dead_letter: m.dead_letter.as_ref().map(|d| ReleasedDeadLetter {
                reason: match d.reason {
                    DeadLetterReason::MaxDeliveries => ReleasedDeadLetterReason::MaxDeliveries,
                    DeadLetterReason::Expired => ReleasedDeadLetterReason::Expired,
                    DeadLetterReason::Rejected => ReleasedDeadLetterReason::Rejected,
                    DeadLetterReason::Overflow => ReleasedDeadLetterReason::Overflow,
                },
                source_queue: d.source_queue.clone(),
                at: d.at,
                delivery_count: d.delivery_count,
                last_error: d.last_error.clone(),
            }),
        }
    }
}

impl From<&BindingSpec> for ReleasedBindingSpec {
    fn from(spec: &BindingSpec) -> Self {
        ReleasedBindingSpec {
            pattern: spec.pattern.clone(),
            syntax: match spec.syntax {
                Syntax::Amqp => ReleasedSyntax::Amqp,
                Syntax::Mqtt => ReleasedSyntax::Mqtt,
                Syntax::Nats => ReleasedSyntax::Nats,
            },
            filter: spec.filter.clone(),
            headers: spec.headers.as_ref().map(|h| {
                let mode = match h.mode {
                    HeadersMode::All => ReleasedHeadersMode::All,
                    HeadersMode::Any => ReleasedHeadersMode::Any,
                };
                (mode, h.values.clone())
            }),
            destination: match &spec.destination {
                Destination::Queue(name) => ReleasedDestination::Queue(name.clone()),
                Destination::Stream(name) => ReleasedDestination::Stream(name.clone()),
                Destination::Topic(name) => ReleasedDestination::Topic(name.clone()),
            },
        }
    }
}
