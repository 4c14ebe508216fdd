//! The released record layout (version 0): records without a version byte, written by every
//! build up to commit cf321b4 and still found in the logs of data directories they wrote.
//!
//! Frozen: these decoders read those bytes forever and must never change, even when a field
//! is added to `Message` or `BindingSpec`. The field encodings are the ones of `codec` (postcard
//! wrote them); `tests/fixtures/datadir-v0` holds a data directory of this layout.
//!
//! ```text
//! queue log
//! enqueued         0x01 | flags u8 (bit 0: dedup) | u32 LE length | message v0 | body
//! delivered        0x02 | seq varint | delivery_count varint | at varint
//! settled          0x03 | seqs varints | reason code
//! message v0       id str | content_type str | headers map | priority u8 | group opt<str>
//!                  | correlation_id opt<str> | reply_to opt<str> | sent_at varint
//!                  | deliver_at opt<varint> | expires_at opt<varint>
//!                  | dead_letter opt<reason code | source_queue str | at varint
//!                                   | delivery_count varint | last_error opt<str>>
//!
//! topic log
//! binding added    0x01 | id str | pattern str | syntax code | filter opt<str>
//!                  | headers opt<mode code | values map> | destination code | name str
//! binding removed  0x02 | id str
//! retained         0x03 | u32 LE length | key str | message v0 | body
//! ```
//!
//! The code tables are the current ones (codes are never renumbered).

use super::{
    codec::{DecodeError, Reader},
    message::dead_letter_reason,
    settle_reason, DeliveryCount, QueueRecord,
};
use crate::{
    broker::topic_records::{self, TopicRecord},
    topic::{BindingSpec, HeadersMatch},
};
use bytes::Bytes;
use wharf_model::message::{DeadLetter, Message};

const ENQUEUED: u8 = 0x01;
const DELIVERED: u8 = 0x02;
const SETTLED: u8 = 0x03;

const BINDING_ADDED: u8 = 0x01;
const BINDING_REMOVED: u8 = 0x02;
const RETAINED: u8 = 0x03;

/// Decodes a queue record of the released layout; `reader` has read the tag.
pub(crate) fn decode_queue_record(
    tag: u8,
    mut reader: Reader<'_>,
    payload: &Bytes,
) -> Result<QueueRecord, DecodeError> {
    match tag {
        ENQUEUED => {
            let flags = reader.u8("flags")?;
            let mut message = read_message(&mut reader.u32_le_framed("message")?)?;
            message.body = payload.slice(reader.position()..);
            Ok(QueueRecord::Enqueued {
                message,
                dedup: flags & 1 != 0,
            })
        }
        DELIVERED => Ok(QueueRecord::Delivered {
            deliveries: vec![DeliveryCount {
                seq: reader.varint("seq")?,
                delivery_count: reader.u32("delivery_count")?,
                at: reader.varint("at")?,
            }],
        }),
        SETTLED => Ok(QueueRecord::Settled {
            seqs: reader.varints("seqs")?,
            reason: settle_reason(reader.varint("reason")?)?,
        }),
        tag => Err(DecodeError::UnknownTag { tag }),
    }
}

/// Decodes a topic record of the released layout; `reader` has read the tag.
pub(crate) fn decode_topic_record(
    tag: u8,
    mut reader: Reader<'_>,
    payload: &Bytes,
) -> Result<TopicRecord, DecodeError> {
    match tag {
        BINDING_ADDED => {
            let id = reader.str("id")?;
            let spec = BindingSpec {
                pattern: reader.str("pattern")?,
                syntax: topic_records::syntax(reader.varint("syntax")?)?,
                filter: reader.opt_str("filter")?,
                headers: reader.opt("headers", |r| {
                    Ok(HeadersMatch {
                        mode: topic_records::headers_mode(r.varint("headers.mode")?)?,
                        values: r.map("headers.values")?,
                    })
                })?,
                destination: topic_records::destination(
                    reader.varint("destination")?,
                    reader.str("destination")?,
                )?,
            };
            Ok(TopicRecord::BindingAdded { id, spec })
        }
        BINDING_REMOVED => Ok(TopicRecord::BindingRemoved {
            id: reader.str("id")?,
        }),
        RETAINED => {
            let mut fields = reader.u32_le_framed("retained")?;
            let key = fields.str("key")?;
            let mut message = read_message(&mut fields)?;
            message.body = payload.slice(reader.position()..);
            Ok(TopicRecord::Retained { key, message })
        }
        tag => Err(DecodeError::UnknownTag { tag }),
    }
}

fn read_message(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(Message {
        id: r.str("id")?,
        body: Bytes::new(),
        content_type: r.str("content_type")?,
        headers: r.map("headers")?,
        priority: r.u8("priority")?,
        group: r.opt_str("group")?,
        correlation_id: r.opt_str("correlation_id")?,
        reply_to: r.opt_str("reply_to")?,
        sent_at: r.varint("sent_at")?,
        deliver_at: r.opt_varint("deliver_at")?,
        expires_at: r.opt_varint("expires_at")?,
        dead_letter: r.opt("dead_letter", |r| {
            Ok(DeadLetter {
                reason: dead_letter_reason(r.varint("dead_letter.reason")?)?,
                source_queue: r.str("dead_letter.source_queue")?,
                at: r.varint("dead_letter.at")?,
                delivery_count: r.u32("dead_letter.delivery_count")?,
                last_error: r.opt_str("dead_letter.last_error")?,
            })
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::{super::released_encoder, super::strategies, *};
    use crate::topic::{Destination, HeadersMode};
    use proptest::prelude::*;
    use wharf_model::{message::DeadLetterReason, pattern::Syntax};

    fn queue(bytes: &[u8]) -> QueueRecord {
        QueueRecord::decode(7, &Bytes::copy_from_slice(bytes)).unwrap()
    }

    fn topic(bytes: &[u8]) -> TopicRecord {
        TopicRecord::decode(7, &Bytes::copy_from_slice(bytes)).unwrap()
    }

    fn json(id: &str, body: &'static str, sent_at: u64) -> Message {
        Message {
            id: id.into(),
            body: Bytes::from_static(body.as_bytes()),
            content_type: "application/json".into(),
            headers: Default::default(),
            priority: 0,
            group: None,
            correlation_id: None,
            reply_to: None,
            sent_at,
            deliver_at: None,
            expires_at: None,
            dead_letter: None,
        }
    }

    // Golden bytes: record payloads copied from tests/fixtures/datadir-v0 (log, offset).

    #[test]
    fn released_enqueued_records_decode() {
        // queue-orders, 6
        let bytes = b"\x01\x01W\x00\x00\x00\x07order-1\x10application/json\x02\x06region\x02eu\
            \x06tenant\x04acme\x05\x01\ncustomer-7\x01\x06corr-1\x01\x07replies\x8d\x99\xd0\x9c\
            \xa34\x00\x00\x00{\"amount\":250,\"order\":1}";
        let expected = Message {
            headers: [("region", "eu"), ("tenant", "acme")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            priority: 5,
            group: Some("customer-7".into()),
            correlation_id: Some("corr-1".into()),
            reply_to: Some("replies".into()),
            ..json("order-1", "{\"amount\":250,\"order\":1}", 1_796_161_670_285)
        };
        let record = QueueRecord::Enqueued {
            message: expected,
            dedup: true,
        };
        assert_eq!(queue(bytes), record);
        assert_eq!(
            released_encoder::encode_queue_record(&record).as_ref(),
            bytes
        );
        // queue-orders, 8: delayed
        let bytes = b"\x01\x011\x00\x00\x00\x0border-later\x10application/json\x00\x00\x00\x00\
            \x00\x8d\x99\xd0\x9c\xa34\x01\x80\xb0\x8f\xe6\xb2w\x00\x00{\"order\":3}";
        let QueueRecord::Enqueued { message, .. } = queue(bytes) else {
            panic!("not enqueued");
        };
        assert_eq!(message.deliver_at, Some(4_102_444_800_000));
        // queue-jobs, 0: binary body
        let bytes = b"\x01\x01-\x00\x00\x00\x05job-1\x18application/octet-stream\x00\x00\x00\x00\
            \x00\xa4\x99\xd0\x9c\xa34\x00\x00\x00\x00\x01\x02\x03\x04\xff";
        let QueueRecord::Enqueued { message, .. } = queue(bytes) else {
            panic!("not enqueued");
        };
        assert_eq!(message.body.as_ref(), [0, 1, 2, 3, 4, 0xff]);
    }

    #[test]
    fn released_dead_letters_decode() {
        // queue-orders.dead, 0
        let bytes = b"\x01\x00S\x00\x00\x00\torder-bad\x10application/json\x00\x08\x00\x00\x00\
            \x95\x98\xd0\x9c\xa34\x00\x00\x01\x02\x06orders\x80\x99\xd0\x9c\xa34\x01\x01\x19\
            cannot parse amount: oops{\"order\":\"oops\"}";
        let expected = Message {
            priority: 8,
            dead_letter: Some(DeadLetter {
                reason: DeadLetterReason::Rejected,
                source_queue: "orders".into(),
                at: 1_796_161_670_272,
                delivery_count: 1,
                last_error: Some("cannot parse amount: oops".into()),
            }),
            ..json("order-bad", "{\"order\":\"oops\"}", 1_796_161_670_165)
        };
        let record = QueueRecord::Enqueued {
            message: expected,
            dedup: false,
        };
        assert_eq!(queue(bytes), record);
        assert_eq!(
            released_encoder::encode_queue_record(&record).as_ref(),
            bytes
        );
    }

    #[test]
    fn released_delivered_and_settled_records_decode() {
        // queue-orders, 11, 4 and 5
        assert_eq!(
            queue(b"\x02\n\x01\x99\x99\xd0\x9c\xa34"),
            QueueRecord::Delivered {
                deliveries: vec![DeliveryCount {
                    seq: 10,
                    delivery_count: 1,
                    at: 1_796_161_670_297
                }]
            }
        );
        assert_eq!(
            queue(b"\x03\x01\x00\x00"),
            QueueRecord::Settled {
                seqs: vec![0],
                reason: crate::broker::records::SettleReason::Acked
            }
        );
        assert_eq!(
            queue(b"\x03\x01\x01\x01"),
            QueueRecord::Settled {
                seqs: vec![1],
                reason: crate::broker::records::SettleReason::DeadLettered
            }
        );
    }

    #[test]
    fn released_topic_records_decode() {
        // topic-events, 0
        let bytes = b"\x01$01a23394-0cbf-7000-8070-86aeffe84a56\x0borders.eu.*\x00\x01\x0c\
            amount >= 10\x00\x00\x06orders";
        let spec = BindingSpec {
            pattern: "orders.eu.*".into(),
            syntax: Syntax::Amqp,
            filter: Some("amount >= 10".into()),
            headers: None,
            destination: Destination::Queue("orders".into()),
        };
        let id = "01a23394-0cbf-7000-8070-86aeffe84a56".to_string();
        let record = TopicRecord::BindingAdded { id, spec };
        assert_eq!(topic(bytes), record);
        assert_eq!(
            released_encoder::encode_topic_record(&record).as_ref(),
            bytes
        );
        // topic-billing, 0
        let bytes = b"\x01$01a23394-0dc5-7000-9955-363ff9f25214\x00\x00\x00\x01\x01\x02\x06region\
            \x02eu\x04tier\x04gold\x00\x04jobs";
        let record = topic(bytes);
        assert_eq!(
            released_encoder::encode_topic_record(&record).as_ref(),
            bytes
        );
        let TopicRecord::BindingAdded { spec, .. } = record else {
            panic!("not a binding");
        };
        assert_eq!(
            spec.headers.map(|h| (h.mode, h.values.len())),
            Some((HeadersMode::Any, 2))
        );
        // topic-events, 3
        let bytes = b"\x02$01a23394-0cdb-7000-a056-c284e967f313";
        assert_eq!(
            topic(bytes),
            TopicRecord::BindingRemoved {
                id: "01a23394-0cdb-7000-a056-c284e967f313".into()
            }
        );
        // topic-sensors, 3 and 4 (an empty body clears the key)
        let bytes = b"\x03Z\x00\x00\x00\x0esensors/a/temp$01a23394-0dee-7000-9170-c974467779fe\
            \x10application/json\x01\x04unit\x01C\x00\x00\x00\x00\xee\x9b\xd0\x9c\xa34\x00\x00\x00\
            {\"c\":22.0}";
        let record = topic(bytes);
        assert_eq!(
            released_encoder::encode_topic_record(&record).as_ref(),
            bytes
        );
        let TopicRecord::Retained { key, message } = record else {
            panic!("not retained");
        };
        assert_eq!(
            (key.as_str(), message.body.as_ref()),
            ("sensors/a/temp", &b"{\"c\":22.0}"[..])
        );
        assert_eq!(message.headers.get("unit").map(String::as_str), Some("C"));
        let bytes = b"\x03[\x00\x00\x00\x0esensors/c/temp$01a23394-0dee-7001-b962-8ff47a9b03ec\
            \x18application/octet-stream\x00\x00\x00\x00\x00\xee\x9b\xd0\x9c\xa34\x00\x00\x00";
        let TopicRecord::Retained { message, .. } = topic(bytes) else {
            panic!("not retained");
        };
        assert!(message.body.is_empty());
    }

    #[test]
    fn unknown_released_tags_are_errors() {
        for bytes in [&b"\x04"[..], b"\x00", b"\x10"] {
            let bytes = Bytes::copy_from_slice(bytes);
            assert!(QueueRecord::decode(0, &bytes).is_err());
            assert!(TopicRecord::decode(0, &bytes).is_err());
        }
    }

    proptest! {
        /// The released encoder (kept, frozen, in `released_encoder.rs`) against these decoders,
        /// for values the fixture does not hold.
        #[test]
        fn what_the_released_encoder_wrote_decodes(
            queue_record in strategies::released_queue_record(),
            topic_record in strategies::topic_record(),
        ) {
            let bytes = released_encoder::encode_queue_record(&queue_record);
            prop_assert_eq!(QueueRecord::decode(0, &bytes).unwrap(), queue_record);
            let bytes = released_encoder::encode_topic_record(&topic_record);
            prop_assert_eq!(TopicRecord::decode(0, &bytes).unwrap(), topic_record);
        }
    }
}
