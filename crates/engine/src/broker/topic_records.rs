//! The records of a topic's log: its bindings and its retained messages, in order.
//!
//! ```text
//! binding added:   0x01 | postcard { id, spec }
//! binding removed: 0x02 | postcard { id }
//! retained:        0x03 | u32 LE meta length | postcard { key, message (body skipped) } | body
//! ```
//!
//! Replaying the log in order rebuilds the routing table and the retained messages (the last
//! record per key wins; an empty body clears the key).

use super::records::{put_meta_and_body, split_meta_and_body, RecordError};
use crate::topic::BindingSpec;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use wharf_model::message::Message;

const BINDING_ADDED: u8 = 1;
const BINDING_REMOVED: u8 = 2;
const RETAINED: u8 = 3;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TopicRecord {
    BindingAdded { id: String, spec: BindingSpec },
    BindingRemoved { id: String },
    Retained { key: String, message: Message },
}

#[derive(Serialize, Deserialize)]
struct Added {
    id: String,
    spec: BindingSpec,
}

#[derive(Serialize, Deserialize)]
struct Removed {
    id: String,
}

#[derive(Serialize, Deserialize)]
struct RetainedMeta {
    key: String,
    message: Message,
}

impl TopicRecord {
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            TopicRecord::BindingAdded { id, spec } => {
                out.put_u8(BINDING_ADDED);
                out.put_slice(&serialize(&Added {
                    id: id.clone(),
                    spec: spec.clone(),
                }));
            }
            TopicRecord::BindingRemoved { id } => {
                out.put_u8(BINDING_REMOVED);
                out.put_slice(&serialize(&Removed { id: id.clone() }));
            }
            TopicRecord::Retained { key, message } => {
                out.put_u8(RETAINED);
                let meta = RetainedMeta {
                    key: key.clone(),
                    message: message.clone(),
                };
                put_meta_and_body(&mut out, &meta, &message.body);
            }
        }
        out.freeze()
    }

    pub(crate) fn decode(offset: u64, payload: &Bytes) -> Result<TopicRecord, RecordError> {
        let invalid = |reason: String| RecordError { offset, reason };
        let (&tag, rest) = payload
            .split_first()
            .ok_or_else(|| invalid("empty record".into()))?;
        match tag {
            BINDING_ADDED => {
                let added: Added =
                    postcard::from_bytes(rest).map_err(|e| invalid(e.to_string()))?;
                Ok(TopicRecord::BindingAdded {
                    id: added.id,
                    spec: added.spec,
                })
            }
            BINDING_REMOVED => {
                let removed: Removed =
                    postcard::from_bytes(rest).map_err(|e| invalid(e.to_string()))?;
                Ok(TopicRecord::BindingRemoved { id: removed.id })
            }
            RETAINED => {
                let (mut retained, body): (RetainedMeta, _) =
                    split_meta_and_body(payload, 1).map_err(invalid)?;
                retained.message.body = body;
                Ok(TopicRecord::Retained {
                    key: retained.key,
                    message: retained.message,
                })
            }
            other => Err(invalid(format!("unknown record tag {other}"))),
        }
    }
}

fn serialize<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("topic records serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::Destination;
    use wharf_model::pattern::Syntax;

    #[test]
    fn every_record_kind_round_trips() {
        let message = Message {
            id: "m".into(),
            body: Bytes::from_static(b"{\"x\":1}"),
            content_type: "application/json".into(),
            headers: Default::default(),
            priority: 0,
            group: None,
            correlation_id: None,
            reply_to: None,
            sent_at: 5,
            deliver_at: None,
            expires_at: None,
            dead_letter: None,
        };
        let records = [
            TopicRecord::BindingAdded {
                id: "b1".into(),
                spec: BindingSpec {
                    pattern: "a.*".into(),
                    syntax: Syntax::Amqp,
                    filter: Some("x > 1".into()),
                    headers: None,
                    destination: Destination::Queue("q".into()),
                },
            },
            TopicRecord::BindingRemoved { id: "b1".into() },
            TopicRecord::Retained {
                key: "a.b".into(),
                message,
            },
        ];
        for record in records {
            assert_eq!(TopicRecord::decode(0, &record.encode()).unwrap(), record);
        }
        assert!(TopicRecord::decode(0, &Bytes::from_static(b"\x07")).is_err());
    }
}
