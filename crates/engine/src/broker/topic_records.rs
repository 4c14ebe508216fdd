//! The records of a topic's log: its bindings and its retained messages, in order.
//!
//! Every record type carries a format version (the rule for changing a format is in
//! docs/architecture.md, "Record versions"). A record is `tag | version | fields group | rest`
//! (see `records/codec.rs`):
//!
//! ```text
//! binding added    0x11 | 1 | group { id str | pattern str | syntax code | filter opt<str>
//!                                   | headers opt<group { mode code | values map }>
//!                                   | destination code | destination name str }
//! binding removed  0x12 | 1 | group { id str }
//! retained         0x13 | 1 | group { key str | message (see `records/message.rs`) } | body
//! binding copied   0x14 | 1 | the group of `binding added`
//! ```
//!
//! Tags 0x01-0x03 are the same records in the released layout (version 0, no version byte),
//! decoded forever and never written again; see `records/legacy.rs`.
//!
//! Replaying the log in order rebuilds the routing table and the retained messages (the last
//! record per key wins; an empty body clears the key).
//!
//! Compaction restates the live bindings and retained messages at the end of the log before it
//! drops the segments below them (`broker/topics/compaction.rs`). A retained message is
//! restated as an ordinary `retained` record: every build already keeps the last one per key.
//! A binding is restated as `binding copied`, which decodes as `binding added` with the same
//! id: replay replaces a binding by its copy. It has a tag of its own because builds before it
//! would add the binding twice; they refuse the tag, by name, instead.
//!
//! Codes: syntax 0 amqp, 1 mqtt, 2 nats; headers mode 0 all, 1 any; destination 0 queue,
//! 1 stream, 2 topic.

use super::records::{
    codec::{encode_record, read_version, DecodeError, Reader, Writer},
    legacy, message, RecordError,
};
use crate::topic::{BindingSpec, Destination, HeadersMatch, HeadersMode};
use bytes::Bytes;
use wharf_model::{message::Message, pattern::Syntax};

const BINDING_ADDED: u8 = 0x11;
const BINDING_REMOVED: u8 = 0x12;
const RETAINED: u8 = 0x13;
const BINDING_COPIED: u8 = 0x14;

/// The newest version of each record type: the one written, and the highest one read.
const BINDING_ADDED_VERSION: u8 = 1;
const BINDING_REMOVED_VERSION: u8 = 1;
const RETAINED_VERSION: u8 = 1;
const BINDING_COPIED_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TopicRecord {
    BindingAdded { id: String, spec: BindingSpec },
    BindingRemoved { id: String },
    Retained { key: String, message: Message },
}

impl TopicRecord {
    /// Encodes the record in the newest version of its type.
    pub(crate) fn encode(&self) -> Bytes {
        match self {
            TopicRecord::BindingAdded { id, spec } => encode_record(
                BINDING_ADDED,
                BINDING_ADDED_VERSION,
                |w| write_binding(w, id, spec),
                &[],
            ),
            TopicRecord::BindingRemoved { id } => {
                encode_record(BINDING_REMOVED, BINDING_REMOVED_VERSION, |w| w.str(id), &[])
            }
            TopicRecord::Retained { key, message } => encode_record(
                RETAINED,
                RETAINED_VERSION,
                |w| {
                    w.str(key);
                    message::write(w, message);
                },
                &message.body,
            ),
        }
    }

    /// Encodes a compaction copy of a binding: `binding copied`, which decodes as the
    /// `binding added` it restates.
    pub(crate) fn encode_binding_copied(id: &str, spec: &BindingSpec) -> Bytes {
        encode_record(
            BINDING_COPIED,
            BINDING_COPIED_VERSION,
            |w| write_binding(w, id, spec),
            &[],
        )
    }

    /// Decodes the record stored at `offset`, of any version; a retained body is a slice of
    /// `payload`.
    pub(crate) fn decode(offset: u64, payload: &Bytes) -> Result<TopicRecord, RecordError> {
        decode_any_version(payload).map_err(|e| RecordError::decode(offset, e))
    }
}

fn decode_any_version(payload: &Bytes) -> Result<TopicRecord, DecodeError> {
    let mut reader = Reader::new(payload);
    let tag = reader.u8("tag")?;
    match tag {
        BINDING_ADDED => {
            read_version(&mut reader, tag, BINDING_ADDED_VERSION)?;
            read_binding(&mut reader.group("binding added")?)
        }
        BINDING_REMOVED => {
            read_version(&mut reader, tag, BINDING_REMOVED_VERSION)?;
            let mut fields = reader.group("binding removed")?;
            Ok(TopicRecord::BindingRemoved {
                id: fields.str("id")?,
            })
        }
        RETAINED => {
            read_version(&mut reader, tag, RETAINED_VERSION)?;
            let mut fields = reader.group("retained")?;
            let key = fields.str("key")?;
            let mut message = message::read(&mut fields)?;
            message.body = payload.slice(reader.position()..);
            Ok(TopicRecord::Retained { key, message })
        }
        BINDING_COPIED => {
            read_version(&mut reader, tag, BINDING_COPIED_VERSION)?;
            read_binding(&mut reader.group("binding copied")?)
        }
        tag => legacy::decode_topic_record(tag, reader, payload),
    }
}

fn write_binding(w: &mut Writer<'_>, id: &str, spec: &BindingSpec) {
    w.str(id);
    w.str(&spec.pattern);
    w.varint(syntax_code(spec.syntax));
    w.opt_str(spec.filter.as_deref());
    w.opt(spec.headers.as_ref(), |w, headers| {
        w.group(|w| {
            w.varint(headers_mode_code(headers.mode));
            w.map(&headers.values);
        });
    });
    let (code, name) = destination_code(&spec.destination);
    w.varint(code);
    w.str(name);
}

fn read_binding(fields: &mut Reader<'_>) -> Result<TopicRecord, DecodeError> {
    let id = fields.str("id")?;
    let spec = BindingSpec {
        pattern: fields.str("pattern")?,
        syntax: syntax(fields.varint("syntax")?)?,
        filter: fields.opt_str("filter")?,
        headers: fields.opt("headers", |r| {
            let mut headers = r.group("headers")?;
            Ok(HeadersMatch {
                mode: headers_mode(headers.varint("headers.mode")?)?,
                values: headers.map("headers.values")?,
            })
        })?,
        destination: destination(fields.varint("destination")?, fields.str("destination")?)?,
    };
    Ok(TopicRecord::BindingAdded { id, spec })
}

// The code tables below are part of the format: codes are never renumbered or reused, and a new
// value needs a new code and a new `binding added` version (an older reader cannot skip it).

fn syntax_code(syntax: Syntax) -> u64 {
    match syntax {
        Syntax::Amqp => 0,
        Syntax::Mqtt => 1,
        Syntax::Nats => 2,
    }
}

pub(super) fn syntax(code: u64) -> Result<Syntax, DecodeError> {
    match code {
        0 => Ok(Syntax::Amqp),
        1 => Ok(Syntax::Mqtt),
        2 => Ok(Syntax::Nats),
        code => Err(DecodeError::UnknownCode {
            field: "syntax",
            code,
        }),
    }
}

fn headers_mode_code(mode: HeadersMode) -> u64 {
    match mode {
        HeadersMode::All => 0,
        HeadersMode::Any => 1,
    }
}

pub(super) fn headers_mode(code: u64) -> Result<HeadersMode, DecodeError> {
    match code {
        0 => Ok(HeadersMode::All),
        1 => Ok(HeadersMode::Any),
        code => Err(DecodeError::UnknownCode {
            field: "headers.mode",
            code,
        }),
    }
}

fn destination_code(destination: &Destination) -> (u64, &str) {
    match destination {
        Destination::Queue(name) => (0, name),
        Destination::Stream(name) => (1, name),
        Destination::Topic(name) => (2, name),
    }
}

pub(super) fn destination(code: u64, name: String) -> Result<Destination, DecodeError> {
    match code {
        0 => Ok(Destination::Queue(name)),
        1 => Ok(Destination::Stream(name)),
        2 => Ok(Destination::Topic(name)),
        code => Err(DecodeError::UnknownCode {
            field: "destination",
            code,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::records::strategies::topic_record;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<TopicRecord, RecordError> {
        TopicRecord::decode(0, &Bytes::copy_from_slice(bytes))
    }

    fn headers_binding() -> BindingSpec {
        BindingSpec {
            pattern: String::new(),
            syntax: Syntax::Nats,
            filter: Some("x > 1".into()),
            headers: Some(HeadersMatch {
                mode: HeadersMode::Any,
                values: [("tier".to_string(), "gold".to_string())].into(),
            }),
            destination: Destination::Stream("s".into()),
        }
    }

    /// The current layout, byte for byte. A change here is a format change: follow the
    /// upgrade rule (docs/architecture.md, "Record versions") and keep old bytes readable.
    #[test]
    fn current_layout_is_pinned() {
        let added = TopicRecord::BindingAdded {
            id: "b1".into(),
            spec: headers_binding(),
        };
        let expected: &[u8] = b"\x11\x01\x1d\x02b1\x00\x02\x01\x05x > 1\
            \x01\x0c\x01\x01\x04tier\x04gold\x01\x01s";
        assert_eq!(added.encode().as_ref(), expected);
        let removed = TopicRecord::BindingRemoved { id: "b1".into() };
        assert_eq!(removed.encode().as_ref(), b"\x12\x01\x03\x02b1");
        let message = Message {
            id: "m".into(),
            body: Bytes::from_static(b"21.5"),
            content_type: "text/plain".into(),
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
        let retained = TopicRecord::Retained {
            key: "a/b".into(),
            message,
        };
        let expected: &[u8] = b"\x13\x01\x1b\x03a/b\
            \x16\x01m\x0atext/plain\x00\x00\x00\x00\x00\x05\x00\x00\x00\
            21.5";
        assert_eq!(retained.encode().as_ref(), expected);
        let copied = TopicRecord::encode_binding_copied("b1", &headers_binding());
        let expected: &[u8] = b"\x14\x01\x1d\x02b1\x00\x02\x01\x05x > 1\
            \x01\x0c\x01\x01\x04tier\x04gold\x01\x01s";
        assert_eq!(copied.as_ref(), expected);
    }

    #[test]
    fn a_binding_copy_decodes_as_the_binding_it_restates() {
        let spec = headers_binding();
        let copied = TopicRecord::encode_binding_copied("b1", &spec);
        let added = TopicRecord::BindingAdded {
            id: "b1".into(),
            spec,
        };
        assert_eq!(decode(&copied).unwrap(), added);
        assert!(decode(b"\x14\x02\x00").is_err(), "an unknown version");
    }

    #[test]
    fn a_newer_writers_appended_fields_are_skipped() {
        let spec = headers_binding();
        let added = encode_record(
            BINDING_ADDED,
            1,
            |w| {
                write_binding(w, "b1", &spec);
                w.str("appended");
            },
            &[],
        );
        let expected = TopicRecord::BindingAdded {
            id: "b1".into(),
            spec,
        };
        assert_eq!(decode(&added).unwrap(), expected);
    }

    #[test]
    fn unknown_tags_versions_and_codes_are_errors() {
        for bytes in [
            &b"\x07"[..],
            b"\x11\x02\x00",
            b"\x12",
            b"\x12\x01\x05\x02b1",
            b"\x11\x01\x09\x02b1\x00\x07\x00\x00\x00\x00",
            b"\x11\x01\x09\x02b1\x00\x00\x00\x00\x09\x00",
        ] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
    }

    proptest! {
        #[test]
        fn every_record_round_trips(record in topic_record()) {
            prop_assert_eq!(decode(&record.encode()).unwrap(), record);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = decode(&bytes);
        }
    }
}
