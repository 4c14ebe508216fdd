//! The records of a queue's log: what happened to its messages, in order.
//!
//! ```text
//! enqueued:  0x01 | flags u8 (bit 0: dedup) | u32 LE meta length | meta (postcard Message,
//!            body skipped) | body bytes
//! delivered: 0x02 | postcard { seq, delivery_count, at }
//! settled:   0x03 | postcard { seqs, reason }
//! ```
//!
//! A message's sequence number is the offset of its `enqueued` record. The body sits last and
//! raw, so a delivery reads it as a slice of the record without copying or decoding it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use wharf_model::message::Message;

const ENQUEUED: u8 = 1;
const DELIVERED: u8 = 2;
const SETTLED: u8 = 3;

/// Why a message left the queue for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    Delivered {
        seq: u64,
        delivery_count: u32,
        at: u64,
    },
    Settled {
        seqs: Vec<u64>,
        reason: SettleReason,
    },
}

#[derive(Serialize, Deserialize)]
struct DeliveredFields {
    seq: u64,
    delivery_count: u32,
    at: u64,
}

#[derive(Serialize, Deserialize)]
struct SettledFields {
    seqs: Vec<u64>,
    reason: SettleReason,
}

/// A record that could not be decoded: a bug or damage, never user input.
#[derive(Debug, thiserror::Error)]
#[error("queue record at offset {offset} is invalid: {reason}")]
pub struct RecordError {
    pub offset: u64,
    pub reason: String,
}

impl QueueRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            QueueRecord::Enqueued { message, dedup } => {
                out.put_u8(ENQUEUED);
                out.put_u8(u8::from(*dedup));
                put_meta_and_body(&mut out, message, &message.body);
            }
            QueueRecord::Delivered {
                seq,
                delivery_count,
                at,
            } => {
                out.put_u8(DELIVERED);
                let fields = DeliveredFields {
                    seq: *seq,
                    delivery_count: *delivery_count,
                    at: *at,
                };
                out.put_slice(&postcard::to_stdvec(&fields).expect("fields serialize"));
            }
            QueueRecord::Settled { seqs, reason } => {
                out.put_u8(SETTLED);
                let fields = SettledFields {
                    seqs: seqs.clone(),
                    reason: *reason,
                };
                out.put_slice(&postcard::to_stdvec(&fields).expect("fields serialize"));
            }
        }
        out.freeze()
    }

    /// Decodes the record stored at `offset`; an enqueued body is a slice of `payload`.
    pub(crate) fn decode(offset: u64, payload: &Bytes) -> Result<QueueRecord, RecordError> {
        let invalid = |reason: String| RecordError { offset, reason };
        let (&tag, rest) = payload
            .split_first()
            .ok_or_else(|| invalid("empty record".into()))?;
        match tag {
            ENQUEUED => {
                let (&flags, rest) = rest
                    .split_first()
                    .ok_or_else(|| invalid("truncated flags".into()))?;
                let (mut message, body): (Message, _) =
                    split_meta_and_body(payload, payload.len() - rest.len()).map_err(invalid)?;
                message.body = body;
                Ok(QueueRecord::Enqueued {
                    message,
                    dedup: flags & 1 != 0,
                })
            }
            DELIVERED => {
                let fields: DeliveredFields =
                    postcard::from_bytes(rest).map_err(|e| invalid(e.to_string()))?;
                Ok(QueueRecord::Delivered {
                    seq: fields.seq,
                    delivery_count: fields.delivery_count,
                    at: fields.at,
                })
            }
            SETTLED => {
                let fields: SettledFields =
                    postcard::from_bytes(rest).map_err(|e| invalid(e.to_string()))?;
                Ok(QueueRecord::Settled {
                    seqs: fields.seqs,
                    reason: fields.reason,
                })
            }
            other => Err(invalid(format!("unknown record tag {other}"))),
        }
    }
}

/// Writes `u32 LE meta length | meta (postcard) | body`: the body last and raw, so a reader
/// slices it out of the record without copying.
pub(crate) fn put_meta_and_body(out: &mut BytesMut, meta: &impl Serialize, body: &[u8]) {
    let meta = postcard::to_stdvec(meta).expect("record fields serialize");
    out.reserve(4 + meta.len() + body.len());
    out.put_u32_le(meta.len() as u32);
    out.put_slice(&meta);
    out.put_slice(body);
}

/// Reads what [`put_meta_and_body`] wrote, starting at byte `at` of `payload`.
pub(crate) fn split_meta_and_body<T: serde::de::DeserializeOwned>(
    payload: &Bytes,
    at: usize,
) -> Result<(T, Bytes), String> {
    let rest = &payload[at..];
    let length = rest
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or("truncated meta length")?;
    let meta = rest.get(4..4 + length).ok_or("truncated meta")?;
    let meta = postcard::from_bytes(meta).map_err(|e| e.to_string())?;
    Ok((meta, payload.slice(at + 4 + length..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_model::message::{DeadLetter, DeadLetterReason};

    fn message() -> Message {
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
            dead_letter: Some(DeadLetter {
                reason: DeadLetterReason::Rejected,
                source_queue: "orders".into(),
                at: 1,
                delivery_count: 3,
                last_error: Some("boom".into()),
            }),
        }
    }

    #[test]
    fn every_record_kind_round_trips() {
        let records = [
            QueueRecord::Enqueued {
                message: message(),
                dedup: true,
            },
            QueueRecord::Delivered {
                seq: 9,
                delivery_count: 2,
                at: 77,
            },
            QueueRecord::Settled {
                seqs: vec![1, 2, 3],
                reason: SettleReason::Acked,
            },
        ];
        for record in records {
            let bytes = record.encode();
            assert_eq!(QueueRecord::decode(0, &bytes).unwrap(), record);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x01\x00\xff\xff\xff\xff", b"\x09", b"\x02\xff"] {
            assert!(QueueRecord::decode(5, &Bytes::copy_from_slice(bytes)).is_err());
        }
    }
}
