//! The records of the event store's log. Every record starts with a kind byte; integers are
//! little-endian; the log's own CRC-32C covers each record whole.
//!
//! ```text
//! event:    | 1 | flags u8 | version u64 | time_ms u64 | id [16] | stream len u16 | stream |
//!           | type len u16 | type | metadata len u32 | metadata (JSON) | data (rest) |
//!           flags bit 0: data is JSON text (else bytes)
//! metadata: | 2 | stream len u16 | stream | StreamMetadata as JSON (rest) |
//! delete:   | 3 | hard u8 | stream len u16 | stream | visible_from u64 |
//! ```
//!
//! The events of one append are consecutive records written in one atomic log append, so an
//! append is all there or not at all after any crash.

use super::{index::StreamMetadata, EventStoreError};
use bytes::{BufMut, Bytes, BytesMut};

const KIND_EVENT: u8 = 1;
const KIND_METADATA: u8 = 2;
const KIND_DELETE: u8 = 3;
const FLAG_JSON: u8 = 1;

/// An event's id: a UUID, 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId(pub [u8; 16]);

impl EventId {
    /// Parses the text form (`8-4-4-4-12` hex digits, any case).
    pub fn parse(text: &str) -> Option<EventId> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut id = [0u8; 16];
        let mut digits = bytes.iter().enumerate().filter_map(|(at, &byte)| {
            let dash = matches!(at, 8 | 13 | 18 | 23);
            if dash {
                return (byte != b'-').then_some(None);
            }
            Some((byte as char).to_digit(16))
        });
        for slot in id.iter_mut() {
            let high = digits.next()??;
            let low = digits.next()??;
            *slot = (high * 16 + low) as u8;
        }
        digits.next().is_none().then_some(EventId(id))
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (at, byte) in self.0.iter().enumerate() {
            if matches!(at, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// What an event record holds besides its data and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader<'a> {
    pub version: u64,
    pub time_ms: u64,
    pub id: EventId,
    pub stream: &'a str,
    pub event_type: &'a str,
    pub data_is_json: bool,
}

/// One record of the log, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredRecord<'a> {
    Event {
        header: EventHeader<'a>,
        /// JSON text (an object or null).
        metadata: &'a [u8],
        data: &'a [u8],
    },
    Metadata {
        stream: &'a str,
        metadata: StreamMetadata,
    },
    Delete {
        stream: &'a str,
        hard: bool,
        /// Versions below this are gone (soft delete); the next append continues after them.
        visible_from: u64,
    },
}

/// Encodes an event record.
pub fn encode_event(header: &EventHeader<'_>, metadata: &[u8], data: &[u8]) -> Bytes {
    encode_unstamped(header, metadata, data).freeze()
}

/// Writes `version` and `time_ms` into an event record encoded before they were known.
pub fn stamp_event(event: &mut BytesMut, version: u64, time_ms: u64) {
    event[2..10].copy_from_slice(&version.to_le_bytes());
    event[10..18].copy_from_slice(&time_ms.to_le_bytes());
}

/// Encodes an event record, mutable so that [`stamp_event`] can fill in version and time.
pub fn encode_unstamped(header: &EventHeader<'_>, metadata: &[u8], data: &[u8]) -> BytesMut {
    let length = 1 + 1 + 8 + 8 + 16 + 2 + header.stream.len() + 2 + header.event_type.len();
    let mut out = BytesMut::with_capacity(length + 4 + metadata.len() + data.len());
    out.put_u8(KIND_EVENT);
    out.put_u8(if header.data_is_json { FLAG_JSON } else { 0 });
    out.put_u64_le(header.version);
    out.put_u64_le(header.time_ms);
    out.put_slice(&header.id.0);
    put_str(&mut out, header.stream);
    put_str(&mut out, header.event_type);
    out.put_u32_le(metadata.len() as u32);
    out.put_slice(metadata);
    out.put_slice(data);
    out
}

/// Encodes a stream-metadata record.
pub fn encode_metadata(stream: &str, metadata: &StreamMetadata) -> Bytes {
    let json = serde_json::to_vec(metadata).expect("stream metadata is plain data");
    let mut out = BytesMut::with_capacity(3 + stream.len() + json.len());
    out.put_u8(KIND_METADATA);
    put_str(&mut out, stream);
    out.put_slice(&json);
    out.freeze()
}

/// Encodes a delete record.
pub fn encode_delete(stream: &str, hard: bool, visible_from: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(12 + stream.len());
    out.put_u8(KIND_DELETE);
    out.put_u8(u8::from(hard));
    put_str(&mut out, stream);
    out.put_u64_le(visible_from);
    out.freeze()
}

/// Names are at most [`super::NAME_BYTES_MAX`] bytes, checked before encoding.
fn put_str(out: &mut BytesMut, text: &str) {
    out.put_u16_le(text.len() as u16);
    out.put_slice(text.as_bytes());
}

/// Decodes a record; `position` only words the error.
pub fn decode(position: u64, bytes: &[u8]) -> Result<StoredRecord<'_>, EventStoreError> {
    let mut reader = Reader { bytes, at: 0 };
    decode_from(&mut reader).ok_or_else(|| EventStoreError::Damaged {
        position,
        problem: format!("record of {} bytes does not decode", bytes.len()),
    })
}

fn decode_from<'a>(reader: &mut Reader<'a>) -> Option<StoredRecord<'a>> {
    match reader.u8()? {
        KIND_EVENT => {
            let flags = reader.u8()?;
            let version = reader.u64()?;
            let time_ms = reader.u64()?;
            let id = EventId(reader.take(16)?.try_into().ok()?);
            let stream = reader.str()?;
            let event_type = reader.str()?;
            let metadata_length = reader.u32()? as usize;
            let metadata = reader.take(metadata_length)?;
            let data = reader.rest();
            let header = EventHeader {
                version,
                time_ms,
                id,
                stream,
                event_type,
                data_is_json: flags & FLAG_JSON != 0,
            };
            Some(StoredRecord::Event {
                header,
                metadata,
                data,
            })
        }
        KIND_METADATA => {
            let stream = reader.str()?;
            let metadata = serde_json::from_slice(reader.rest()).ok()?;
            Some(StoredRecord::Metadata { stream, metadata })
        }
        KIND_DELETE => {
            let hard = reader.u8()? != 0;
            let stream = reader.str()?;
            let visible_from = reader.u64()?;
            reader.rest().is_empty().then_some(StoredRecord::Delete {
                stream,
                hard,
                visible_from,
            })
        }
        _ => None,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(length)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let length = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        std::str::from_utf8(self.take(length)?).ok()
    }
    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn event_ids_round_trip_through_text() {
        let text = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
        let id = EventId::parse(text).expect("valid");
        assert_eq!(id.to_string(), text);
        assert_eq!(EventId::parse(&text.to_uppercase()), Some(id));
        for bad in [
            "",
            "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a",
            "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a67",
            "0192f3a45b6c-7d8e-9fa0-b1c2d3e4f5a6-",
            "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5ag",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_event_record_has_the_documented_layout() {
        let header = EventHeader {
            version: 2,
            time_ms: 3,
            id: EventId([7; 16]),
            stream: "s",
            event_type: "T",
            data_is_json: true,
        };
        let bytes = encode_event(&header, b"{}", b"[1]");
        let mut expected = vec![1u8, 1];
        expected.extend(2u64.to_le_bytes());
        expected.extend(3u64.to_le_bytes());
        expected.extend([7; 16]);
        expected.extend([1, 0, b's', 1, 0, b'T']);
        expected.extend(2u32.to_le_bytes());
        expected.extend(b"{}[1]");
        assert_eq!(&bytes[..], &expected[..]);
    }

    proptest! {
        #[test]
        fn events_round_trip(version: u64, time_ms: u64, id: [u8; 16], stream in "[a-z0-9-]{1,40}",
                             event_type in "[A-Za-z]{1,20}", json: bool,
                             metadata in proptest::collection::vec(any::<u8>(), 0..64),
                             data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let header = EventHeader { version, time_ms, id: EventId(id), stream: &stream, event_type: &event_type, data_is_json: json };
            let bytes = encode_event(&header, &metadata, &data);
            let decoded = decode(0, &bytes).expect("decodes");
            prop_assert_eq!(decoded, StoredRecord::Event { header: header.clone(), metadata: &metadata, data: &data });
        }

        #[test]
        fn deletes_round_trip(stream in "[a-z0-9-]{1,40}", hard: bool, visible_from: u64) {
            let bytes = encode_delete(&stream, hard, visible_from);
            prop_assert_eq!(decode(0, &bytes).expect("decodes"), StoredRecord::Delete { stream: &stream, hard, visible_from });
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode(0, &bytes);
        }
    }

    #[test]
    fn stamping_sets_version_and_time() {
        let header = EventHeader {
            version: 0,
            time_ms: 0,
            id: EventId([1; 16]),
            stream: "order-1",
            event_type: "Created",
            data_is_json: false,
        };
        let mut event = encode_unstamped(&header, b"", b"x");
        stamp_event(&mut event, 41, 99);
        let stamped = EventHeader {
            version: 41,
            time_ms: 99,
            ..header
        };
        assert_eq!(&event[..], &encode_event(&stamped, b"", b"x")[..]);
    }

    #[test]
    fn metadata_round_trips() {
        let metadata = StreamMetadata {
            max_age_ms: Some(5),
            max_count: None,
        };
        let bytes = encode_metadata("s", &metadata);
        assert_eq!(
            decode(0, &bytes).expect("decodes"),
            StoredRecord::Metadata {
                stream: "s",
                metadata
            }
        );
    }
}
