//! The records of a queue's log: what happened to its messages, in order.
//!
//! Every record type carries a format version (the rule for changing a format is in
//! docs/architecture.md, "Record versions"). A record is `tag | version | fields group | rest`
//! (see `codec`):
//!
//! ```text
//! enqueued   0x11 | 1 | group { dedup bool | message (see `message`) } | body
//! delivered  0x12 | 2 | group { count varint | count x (seq varint | delivery_count varint |
//!                               at varint) }
//! settled    0x13 | 1 | group { seqs varints | reason code }
//! relocated  0x14 | 1 | group { seq varint | delivery_count varint | first_delivered_at
//!                               varint | last_delivered_at varint | dedup bool | message }
//!                   | body
//! ```
//!
//! `relocated` copies a live message forward in its WAL, so the segment holding its `enqueued`
//! record can be deleted: the message keeps its seq (its identity, order and receipts), and
//! the copy's offset becomes where its body is read.
//!
//! `delivered` version 1 held one delivery (`group { seq | delivery_count | at }`); version 2
//! holds the deliveries of one receive or dispatch, so a batch of a hundred costs one record.
//!
//! Tags 0x01-0x03 are the same records in the released layout (version 0, no version byte),
//! decoded forever and never written again; see `legacy.rs`.
//!
//! A message's sequence number is the offset of its `enqueued` record. The body sits last and
//! raw, so a delivery reads it as a slice of the record without copying or decoding it.
//!
//! Settle reason codes: 0 acked, 1 dead-lettered, 2 dropped, 3 purged, 4 redriven.

pub(crate) mod codec;
pub(crate) mod legacy;
pub(crate) mod message;

use bytes::Bytes;
use codec::{encode_record_after, read_version, DecodeError, Reader};
use wharf_model::message::Message;

const ENQUEUED: u8 = 0x11;
const DELIVERED: u8 = 0x12;
const SETTLED: u8 = 0x13;
const RELOCATED: u8 = 0x14;

/// The newest version of each record type: the one written, and the highest one read.
const ENQUEUED_VERSION: u8 = 1;
const DELIVERED_VERSION: u8 = 2;
const SETTLED_VERSION: u8 = 1;
const RELOCATED_VERSION: u8 = 1;

/// Why a message left the queue for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SettleReason {
    Acked,
    /// Moved to the dead-letter queue (the copy there carries the details).
    DeadLettered,
    /// Expired or overflowed with no dead-letter queue to take it.
    Dropped,
    Purged,
    /// Moved back from a dead-letter queue to its source queue.
    Redriven,
}

#[derive(Debug, Clone, PartialEq)]
// Records are built one at a time and encoded at once; boxing the message buys nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum QueueRecord {
    /// `dedup`: the id was given by the client and enters the dedup window.
    Enqueued { message: Message, dedup: bool },
    /// Delivery counts, one or more.
    Delivered { deliveries: Vec<DeliveryCount> },
    Settled {
        seqs: Vec<u64>,
        reason: SettleReason,
    },
    /// A live message copied forward: see the module header.
    Relocated {
        seq: u64,
        delivery_count: u32,
        first_delivered_at: u64,
        last_delivered_at: u64,
        dedup: bool,
        message: Message,
    },
}

/// A message's delivery count after a delivery at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeliveryCount {
    pub seq: u64,
    pub delivery_count: u32,
    pub at: u64,
}

/// A record that could not be decoded: a bug or damage, never user input.
#[derive(Debug, thiserror::Error)]
#[error("queue record at offset {offset} is invalid: {reason}")]
pub struct RecordError {
    pub offset: u64,
    pub reason: String,
}

impl RecordError {
    pub(crate) fn decode(offset: u64, error: DecodeError) -> RecordError {
        RecordError {
            offset,
            reason: error.to_string(),
        }
    }
}

impl QueueRecord {
    /// Encodes the record in the newest version of its type, alone (the engine writes
    /// records in their WAL envelope: [`QueueRecord::encode_after`]).
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Bytes {
        self.encode_after(&[])
    }

    /// [`QueueRecord::encode`] after `prefix` (the WAL envelope) in one buffer.
    pub(crate) fn encode_after(&self, prefix: &[u8]) -> Bytes {
        match self {
            QueueRecord::Enqueued { message, dedup } => {
                encode_enqueued_after(prefix, message, *dedup)
            }
            QueueRecord::Delivered { deliveries } => encode_record_after(
                prefix,
                DELIVERED,
                DELIVERED_VERSION,
                // Up to 5 bytes a seq, 5 a count and 6 a time in ms (below 2^42).
                8 + 16 * deliveries.len(),
                |w| {
                    w.varint(deliveries.len() as u64);
                    for delivery in deliveries {
                        w.varint(delivery.seq);
                        w.varint(delivery.delivery_count.into());
                        w.varint(delivery.at);
                    }
                },
                &[],
            ),
            QueueRecord::Settled { seqs, reason } => encode_record_after(
                prefix,
                SETTLED,
                SETTLED_VERSION,
                // A seq is a log offset: up to 5 bytes as a varint below 2^35.
                16 + 5 * seqs.len(),
                |w| {
                    w.varints(seqs);
                    w.varint(settle_reason_code(*reason));
                },
                &[],
            ),
            QueueRecord::Relocated {
                seq,
                delivery_count,
                first_delivered_at,
                last_delivered_at,
                dedup,
                message,
            } => encode_record_after(
                prefix,
                RELOCATED,
                RELOCATED_VERSION,
                48 + message::fields_bytes(message),
                |w| {
                    w.varint(*seq);
                    w.varint((*delivery_count).into());
                    w.varint(*first_delivered_at);
                    w.varint(*last_delivered_at);
                    w.bool(*dedup);
                    message::write(w, message);
                },
                &message.body,
            ),
        }
    }

    /// Decodes the record stored at `offset`, of any version; an enqueued body is a slice of
    /// `payload`.
    pub(crate) fn decode(offset: u64, payload: &Bytes) -> Result<QueueRecord, RecordError> {
        decode_any_version(payload).map_err(|e| RecordError::decode(offset, e))
    }
}

/// The `enqueued` record of `message` after `prefix`, without an owned [`QueueRecord`]: a send
/// encodes from the message it holds.
pub(crate) fn encode_enqueued_after(prefix: &[u8], message: &Message, dedup: bool) -> Bytes {
    encode_record_after(
        prefix,
        ENQUEUED,
        ENQUEUED_VERSION,
        1 + message::fields_bytes(message),
        |w| {
            w.bool(dedup);
            message::write(w, message);
        },
        &message.body,
    )
}

fn decode_any_version(payload: &Bytes) -> Result<QueueRecord, DecodeError> {
    let mut reader = Reader::new(payload);
    let tag = reader.u8("tag")?;
    match tag {
        ENQUEUED => {
            read_version(&mut reader, tag, ENQUEUED_VERSION)?;
            let mut fields = reader.group("enqueued")?;
            let dedup = fields.bool("dedup")?;
            let mut message = message::read(&mut fields)?;
            message.body = payload.slice(reader.position()..);
            Ok(QueueRecord::Enqueued { message, dedup })
        }
        DELIVERED => {
            let version = read_version(&mut reader, tag, DELIVERED_VERSION)?;
            let mut fields = reader.group("delivered")?;
            let count = match version {
                1 => 1,
                _ => fields.count("deliveries", 3)?,
            };
            let deliveries = (0..count)
                .map(|_| {
                    Ok(DeliveryCount {
                        seq: fields.varint("seq")?,
                        delivery_count: fields.u32("delivery_count")?,
                        at: fields.varint("at")?,
                    })
                })
                .collect::<Result<_, DecodeError>>()?;
            Ok(QueueRecord::Delivered { deliveries })
        }
        SETTLED => {
            read_version(&mut reader, tag, SETTLED_VERSION)?;
            let mut fields = reader.group("settled")?;
            Ok(QueueRecord::Settled {
                seqs: fields.varints("seqs")?,
                reason: settle_reason(fields.varint("reason")?)?,
            })
        }
        RELOCATED => {
            read_version(&mut reader, tag, RELOCATED_VERSION)?;
            let mut fields = reader.group("relocated")?;
            let seq = fields.varint("seq")?;
            let delivery_count = fields.u32("delivery_count")?;
            let first_delivered_at = fields.varint("first_delivered_at")?;
            let last_delivered_at = fields.varint("last_delivered_at")?;
            let dedup = fields.bool("dedup")?;
            let mut message = message::read(&mut fields)?;
            message.body = payload.slice(reader.position()..);
            Ok(QueueRecord::Relocated {
                seq,
                delivery_count,
                first_delivered_at,
                last_delivered_at,
                dedup,
                message,
            })
        }
        tag => legacy::decode_queue_record(tag, reader, payload),
    }
}

/// The code table is part of the format: codes are never renumbered or reused, and a new
/// reason needs a new code and a new `settled` version (an older reader cannot skip it).
fn settle_reason_code(reason: SettleReason) -> u64 {
    match reason {
        SettleReason::Acked => 0,
        SettleReason::DeadLettered => 1,
        SettleReason::Dropped => 2,
        SettleReason::Purged => 3,
        SettleReason::Redriven => 4,
    }
}

fn settle_reason(code: u64) -> Result<SettleReason, DecodeError> {
    match code {
        0 => Ok(SettleReason::Acked),
        1 => Ok(SettleReason::DeadLettered),
        2 => Ok(SettleReason::Dropped),
        3 => Ok(SettleReason::Purged),
        4 => Ok(SettleReason::Redriven),
        code => Err(DecodeError::UnknownCode {
            field: "settled.reason",
            code,
        }),
    }
}

// Test-only modules sit with the tests, below the code the tidy test checks.
#[cfg(test)]
mod released_encoder;
#[cfg(test)]
pub(crate) mod strategies;

#[cfg(test)]
mod tests {
    use super::*;
    use codec::encode_record;
    use proptest::prelude::*;
    use strategies::{message, queue_record};

    fn decode(bytes: &[u8]) -> Result<QueueRecord, RecordError> {
        QueueRecord::decode(0, &Bytes::copy_from_slice(bytes))
    }

    fn sample_message() -> Message {
        Message {
            id: "m-1".into(),
            body: Bytes::from_static(b"{\"a\":1}"),
            content_type: "application/json".into(),
            headers: [("region".to_string(), "eu".to_string())].into(),
            priority: 7,
            group: Some("g".into()),
            correlation_id: None,
            reply_to: Some("replies".into()),
            sent_at: 1_700_000_000_000,
            deliver_at: Some(1_700_000_005_000),
            expires_at: None,
            dead_letter: Some(wharf_model::message::DeadLetter {
                reason: wharf_model::message::DeadLetterReason::Rejected,
                source_queue: "orders".into(),
                at: 1,
                delivery_count: 3,
                last_error: Some("boom".into()),
            }),
        }
    }

    /// The current layout, byte for byte. A change here is a format change: follow the
    /// upgrade rule (docs/architecture.md, "Record versions") and keep old bytes readable.
    #[test]
    fn current_layout_is_pinned() {
        let enqueued = QueueRecord::Enqueued {
            message: sample_message(),
            dedup: true,
        };
        let expected: &[u8] = b"\x11\x01P\x01N\
            \x03m-1\x10application/json\x01\x06region\x02eu\x07\x01\x01g\x00\x01\x07replies\
            \x80\xd0\x95\xff\xbc1\x01\x88\xf7\x95\xff\xbc1\x00\
            \x01\x10\x02\x06orders\x01\x03\x01\x04boom\
            {\"a\":1}";
        assert_eq!(enqueued.encode().as_ref(), expected);
        let delivered = QueueRecord::Delivered {
            deliveries: vec![
                DeliveryCount {
                    seq: 300,
                    delivery_count: 2,
                    at: 5,
                },
                DeliveryCount {
                    seq: 301,
                    delivery_count: 1,
                    at: 6,
                },
            ],
        };
        let expected = b"\x12\x02\x09\x02\xac\x02\x02\x05\xad\x02\x01\x06";
        assert_eq!(delivered.encode().as_ref(), expected);
        // Version 1, one delivery a record, as written up to this layout: decoded forever.
        let version_1 = QueueRecord::Delivered {
            deliveries: vec![DeliveryCount {
                seq: 300,
                delivery_count: 2,
                at: 5,
            }],
        };
        let written = Bytes::from_static(b"\x12\x01\x04\xac\x02\x02\x05");
        assert_eq!(decode(&written).unwrap(), version_1);
        let settled = QueueRecord::Settled {
            seqs: vec![1, 2],
            reason: SettleReason::Redriven,
        };
        assert_eq!(settled.encode().as_ref(), b"\x13\x01\x04\x02\x01\x02\x04");
    }

    #[test]
    fn every_settle_reason_round_trips() {
        for reason in [
            SettleReason::Acked,
            SettleReason::DeadLettered,
            SettleReason::Dropped,
            SettleReason::Purged,
            SettleReason::Redriven,
        ] {
            let record = QueueRecord::Settled {
                seqs: vec![u64::MAX, 0],
                reason,
            };
            assert_eq!(decode(&record.encode()).unwrap(), record);
        }
    }

    #[test]
    fn a_newer_writers_appended_fields_are_skipped() {
        // What a later writer of the same versions may write: a field appended to each group.
        let delivered = encode_record(
            DELIVERED,
            1,
            |w| {
                w.varint(9);
                w.varint(2);
                w.varint(77);
                w.str("appended");
            },
            &[],
        );
        let expected = QueueRecord::Delivered {
            deliveries: vec![DeliveryCount {
                seq: 9,
                delivery_count: 2,
                at: 77,
            }],
        };
        assert_eq!(decode(&delivered).unwrap(), expected);
        let delivered = encode_record(
            DELIVERED,
            2,
            |w| {
                w.varint(1);
                w.varint(9);
                w.varint(2);
                w.varint(77);
                w.str("appended");
            },
            &[],
        );
        assert_eq!(decode(&delivered).unwrap(), expected);

        let message = sample_message();
        let dead_letter = message.dead_letter.clone().unwrap();
        let enqueued = encode_record(
            ENQUEUED,
            1,
            |w| {
                w.bool(true);
                w.group(|w| {
                    w.str(&message.id);
                    w.str(&message.content_type);
                    w.map(&message.headers);
                    w.u8(message.priority);
                    w.opt_str(message.group.as_deref());
                    w.opt_str(message.correlation_id.as_deref());
                    w.opt_str(message.reply_to.as_deref());
                    w.varint(message.sent_at);
                    w.opt_varint(message.deliver_at);
                    w.opt_varint(message.expires_at);
                    w.opt(Some(&dead_letter), |w, d| {
                        w.group(|w| {
                            w.varint(2);
                            w.str(&d.source_queue);
                            w.varint(d.at);
                            w.varint(d.delivery_count.into());
                            w.opt_str(d.last_error.as_deref());
                            w.varint(123_456);
                        })
                    });
                    w.opt_str(Some("appended to the message"));
                });
                w.map(&message.headers);
            },
            &message.body,
        );
        let expected = QueueRecord::Enqueued {
            message,
            dedup: true,
        };
        assert_eq!(decode(&enqueued).unwrap(), expected);
    }

    #[test]
    fn versions_this_build_does_not_know_are_refused_by_name() {
        for bytes in [
            &b"\x12\x03\x03\x01\x01\x01"[..],
            b"\x12\x00\x03\x01\x01\x01",
        ] {
            let error = decode(bytes).unwrap_err();
            assert!(
                error.reason.contains("reads versions 1 to 2"),
                "{}",
                error.reason
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x01\x00\xff\xff\xff\xff",
            b"\x09",
            b"\x02\xff",
            b"\x11",
            b"\x11\x01",
            b"\x11\x01\x05\x01",
            b"\x13\x01\x02\x01\x01",
            b"\x13\x01\x02\x00\x09",
        ] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
    }

    proptest! {
        #[test]
        fn every_record_round_trips(record in queue_record()) {
            let bytes = record.encode();
            prop_assert_eq!(QueueRecord::decode(0, &bytes).unwrap(), record);
        }

        #[test]
        fn an_enqueued_body_is_a_slice_of_the_record(message in message(), dedup in any::<bool>()) {
            let bytes = QueueRecord::Enqueued { message, dedup }.encode();
            let QueueRecord::Enqueued { message, .. } = QueueRecord::decode(0, &bytes).unwrap() else {
                panic!("not an enqueued record");
            };
            let start = bytes.len() - message.body.len();
            prop_assert_eq!(message.body.as_ptr(), bytes[start..].as_ptr());
        }

        /// The buffer of a record with a message is sized once: its fields fit the room
        /// `fields_bytes` makes for them, so the body is never copied twice.
        #[test]
        fn a_message_record_fits_the_room_made_for_it(message in message(), dedup in any::<bool>()) {
            let bytes = QueueRecord::Enqueued { message: message.clone(), dedup }.encode();
            let fields = bytes.len() - message.body.len() - 2;
            prop_assert!(fields <= 1 + message::fields_bytes(&message), "{} fields bytes", fields);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = decode(&bytes);
        }
    }
}
