//! Property-test strategies for records: every field takes its edge values (empty, absent,
//! long enough for two-byte lengths, u64::MAX) often enough to matter.

use super::{DeliveryCount, QueueRecord, SettleReason};
use crate::{
    broker::topic_records::TopicRecord,
    topic::{BindingSpec, Destination, HeadersMatch, HeadersMode},
};
use bytes::Bytes;
use proptest::{collection, option, prelude::*};
use wharf_model::{
    message::{DeadLetter, DeadLetterReason, Message},
    pattern::Syntax,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", ".{120,140}"]
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(u64::MAX),
        any::<u64>(),
        1_700_000_000_000..1_900_000_000_000u64
    ]
}

fn dead_letter() -> impl Strategy<Value = DeadLetter> {
    let reason = prop_oneof![
        Just(DeadLetterReason::MaxDeliveries),
        Just(DeadLetterReason::Expired),
        Just(DeadLetterReason::Rejected),
        Just(DeadLetterReason::Overflow),
    ];
    (reason, text(), time(), any::<u32>(), option::of(text())).prop_map(
        |(reason, source_queue, at, delivery_count, last_error)| DeadLetter {
            reason,
            source_queue,
            at,
            delivery_count,
            last_error,
        },
    )
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    let ids = (text(), collection::vec(any::<u8>(), 0..300), text());
    let headers = collection::btree_map(text(), text(), 0..4);
    let routing = (
        any::<u8>(),
        option::of(text()),
        option::of(text()),
        option::of(text()),
    );
    let times = (time(), option::of(time()), option::of(time()));
    (ids, headers, routing, times, option::of(dead_letter())).prop_map(
        |(
            (id, body, content_type),
            headers,
            (priority, group, correlation_id, reply_to),
            (sent_at, deliver_at, expires_at),
            dead_letter,
        )| Message {
            id,
            body: Bytes::from(body),
            content_type,
            headers,
            priority,
            group,
            correlation_id,
            reply_to,
            sent_at,
            deliver_at,
            expires_at,
            dead_letter,
        },
    )
}

/// Every queue record kind.
pub(crate) fn queue_record() -> BoxedStrategy<QueueRecord> {
    prop_oneof![released_queue_record(), relocated_record(), delivered(0..5)].boxed()
}

/// A `delivered` record of `count` deliveries (the released layout held one).
fn delivered(count: std::ops::Range<usize>) -> impl Strategy<Value = QueueRecord> {
    collection::vec((time(), any::<u32>(), time()), count).prop_map(|deliveries| {
        let deliveries = (deliveries.into_iter())
            .map(|(seq, delivery_count, at)| DeliveryCount {
                seq,
                delivery_count,
                at,
            })
            .collect();
        QueueRecord::Delivered { deliveries }
    })
}

/// The record kinds the released layout had.
pub(crate) fn released_queue_record() -> BoxedStrategy<QueueRecord> {
    let reason = prop_oneof![
        Just(SettleReason::Acked),
        Just(SettleReason::DeadLettered),
        Just(SettleReason::Dropped),
        Just(SettleReason::Purged),
        Just(SettleReason::Redriven),
    ];
    prop_oneof![
        (message(), any::<bool>())
            .prop_map(|(message, dedup)| QueueRecord::Enqueued { message, dedup }),
        delivered(1..2),
        (collection::vec(time(), 0..40), reason)
            .prop_map(|(seqs, reason)| QueueRecord::Settled { seqs, reason }),
    ]
    .boxed()
}

fn relocated_record() -> BoxedStrategy<QueueRecord> {
    let delivered = (any::<u32>(), time(), time());
    (time(), delivered, any::<bool>(), message())
        .prop_map(
            |(seq, (delivery_count, first, last), dedup, message)| QueueRecord::Relocated {
                seq,
                delivery_count,
                first_delivered_at: first,
                last_delivered_at: last,
                dedup,
                message,
            },
        )
        .boxed()
}

fn binding_spec() -> impl Strategy<Value = BindingSpec> {
    let syntax = prop_oneof![Just(Syntax::Amqp), Just(Syntax::Mqtt), Just(Syntax::Nats)];
    let mode = prop_oneof![Just(HeadersMode::All), Just(HeadersMode::Any)];
    let headers = (mode, collection::btree_map(text(), text(), 0..4))
        .prop_map(|(mode, values)| HeadersMatch { mode, values });
    let destination = prop_oneof![
        text().prop_map(Destination::Queue),
        text().prop_map(Destination::Stream),
        text().prop_map(Destination::Topic),
    ];
    (
        text(),
        syntax,
        option::of(text()),
        option::of(headers),
        destination,
    )
        .prop_map(
            |(pattern, syntax, filter, headers, destination)| BindingSpec {
                pattern,
                syntax,
                filter,
                headers,
                destination,
            },
        )
}

pub(crate) fn topic_record() -> impl Strategy<Value = TopicRecord> {
    prop_oneof![
        (text(), binding_spec()).prop_map(|(id, spec)| TopicRecord::BindingAdded { id, spec }),
        text().prop_map(|id| TopicRecord::BindingRemoved { id }),
        (text(), message()).prop_map(|(key, message)| TopicRecord::Retained { key, message }),
    ]
}
