//! The field codec of every engine record: the record header, fields and groups. Which fields a
//! record holds, and in which order, is the business of `records.rs` and `topic_records.rs`.
//!
//! A versioned record:
//!
//! ```text
//! +---------+-------------+--------------------------------------+--------------------+
//! | tag u8  | version u8  | fields: group (varint length, bytes) | rest: raw bytes    |
//! +---------+-------------+--------------------------------------+--------------------+
//!                                                                  a message body, or
//!                                                                  empty
//! ```
//!
//! Field encodings (the same as postcard's, which wrote the released records, so one reader
//! serves both layouts):
//!
//! ```text
//! u8, bool         one byte (a bool is 0 or 1)
//! varint           unsigned LEB128, at most 10 bytes; u32 fields refuse larger values
//! code             varint naming an enum value; tables beside each record, never reused
//! str              varint byte length | UTF-8 bytes
//! opt<T>           0 (absent) | 1 T
//! map              varint count | (str key | str value) ...
//! varints          varint count | varint ...
//! group            varint byte length | fields
//! ```
//!
//! A group is what lets a format gain fields: its reader reads the fields it knows, and the
//! bytes after them (fields a newer writer appended) are skipped with the group.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// Why a record could not be decoded: damage or a bug, since checksums guard the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("{field} is cut short: it needs {need} bytes, {have} are left")]
    Truncated {
        field: &'static str,
        need: u64,
        have: usize,
    },
    #[error("{field} is not a valid varint")]
    BadVarint { field: &'static str },
    #[error("{field} is {value}, above its largest value {max}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("{field} has the unknown code {code}")]
    UnknownCode { field: &'static str, code: u64 },
    #[error("unknown record tag {tag}")]
    UnknownTag { tag: u8 },
    #[error("record tag {tag} has version {version}; this build reads versions 1 to {newest}")]
    UnsupportedVersion { tag: u8, version: u8, newest: u8 },
}

/// Encodes a versioned record: `tag | version | fields group | rest`.
pub(crate) fn encode_record(
    tag: u8,
    version: u8,
    fields: impl FnOnce(&mut Writer<'_>),
    rest: &[u8],
) -> Bytes {
    encode_record_after(&[], tag, version, FIELDS_BYTES_GUESS, fields, rest)
}

/// Room for a record's fields when the caller does not say (bodies travel in `rest`).
const FIELDS_BYTES_GUESS: usize = 64;

/// [`encode_record`] after `prefix` (an envelope) in the same buffer: the body is copied once.
/// The buffer is sized for `fields_bytes` of fields; more makes it grow, which copies what was
/// written so far and, worse, the body after it.
pub(crate) fn encode_record_after(
    prefix: &[u8],
    tag: u8,
    version: u8,
    fields_bytes: usize,
    fields: impl FnOnce(&mut Writer<'_>),
    rest: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(prefix.len() + 2 + fields_bytes + rest.len());
    out.put_slice(prefix);
    out.put_u8(tag);
    out.put_u8(version);
    Writer { out: &mut out }.group(fields);
    out.put_slice(rest);
    out.freeze()
}

/// Reads the version byte of a versioned record and checks this build knows it.
pub(crate) fn read_version(
    reader: &mut Reader<'_>,
    tag: u8,
    newest: u8,
) -> Result<u8, DecodeError> {
    let version = reader.u8("version")?;
    if !(1..=newest).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            tag,
            version,
            newest,
        });
    }
    Ok(version)
}

/// Appends fields to a record being encoded.
pub(crate) struct Writer<'a> {
    out: &'a mut BytesMut,
}

impl Writer<'_> {
    pub(crate) fn u8(&mut self, value: u8) {
        self.out.put_u8(value);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.out.put_u8(u8::from(value));
    }

    pub(crate) fn varint(&mut self, value: u64) {
        let (bytes, length) = varint_bytes(value);
        self.out.put_slice(&bytes[..length]);
    }

    pub(crate) fn str(&mut self, value: &str) {
        self.varint(value.len() as u64);
        self.out.put_slice(value.as_bytes());
    }

    pub(crate) fn opt<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.out.put_u8(0),
            Some(value) => {
                self.out.put_u8(1);
                write(self, value);
            }
        }
    }

    pub(crate) fn opt_str(&mut self, value: Option<&str>) {
        self.opt(value, |w, v| w.str(v));
    }

    pub(crate) fn opt_varint(&mut self, value: Option<u64>) {
        self.opt(value, Writer::varint);
    }

    pub(crate) fn map(&mut self, map: &BTreeMap<String, String>) {
        self.varint(map.len() as u64);
        for (key, value) in map {
            self.str(key);
            self.str(value);
        }
    }

    pub(crate) fn varints(&mut self, values: &[u64]) {
        self.varint(values.len() as u64);
        for value in values {
            self.varint(*value);
        }
    }

    /// Writes `fields` as a group. The length is written after the fields, in front of them:
    /// one byte is reserved, and the fields move right only when they take 128 bytes or more
    /// (a copy of the fields alone; bodies are never inside a group).
    pub(crate) fn group(&mut self, fields: impl FnOnce(&mut Writer<'_>)) {
        let start = self.out.len();
        self.out.put_u8(0);
        fields(&mut Writer {
            out: &mut *self.out,
        });
        let end = self.out.len();
        let (length, width) = varint_bytes((end - start - 1) as u64);
        if width > 1 {
            self.out.resize(end + width - 1, 0);
            self.out.copy_within(start + 1..end, start + width);
        }
        self.out[start..start + width].copy_from_slice(&length[..width]);
    }
}

/// Reads fields from a record or a group; every read checks that its bytes are there.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// How many bytes were read: where the raw rest of a record starts.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(field, 1)?[0])
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            code => Err(DecodeError::UnknownCode {
                field,
                code: code.into(),
            }),
        }
    }

    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for index in 0..10 {
            let byte = self.u8(field)?;
            // The tenth byte holds bit 63 only.
            if index == 9 && byte > 1 {
                return Err(DecodeError::BadVarint { field });
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint { field })
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let value = self.varint(field)?;
        u32::try_from(value).map_err(|_| DecodeError::OutOfRange {
            field,
            value,
            max: u32::MAX.into(),
        })
    }

    pub(crate) fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let length = self.varint(field)?;
        let bytes = self.take(field, length)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotUtf8 { field })
    }

    pub(crate) fn opt<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => read(self).map(Some),
            code => Err(DecodeError::UnknownCode {
                field,
                code: code.into(),
            }),
        }
    }

    pub(crate) fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        self.opt(field, |r| r.str(field))
    }

    pub(crate) fn opt_varint(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        self.opt(field, |r| r.varint(field))
    }

    pub(crate) fn map(
        &mut self,
        field: &'static str,
    ) -> Result<BTreeMap<String, String>, DecodeError> {
        let count = self.count(field, 2)?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key = self.str(field)?;
            let value = self.str(field)?;
            map.insert(key, value);
        }
        Ok(map)
    }

    pub(crate) fn varints(&mut self, field: &'static str) -> Result<Vec<u64>, DecodeError> {
        let count = self.count(field, 1)?;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(self.varint(field)?);
        }
        Ok(values)
    }

    /// A group's fields; the caller reads the ones it knows and drops the reader, which skips
    /// the rest.
    pub(crate) fn group(&mut self, field: &'static str) -> Result<Reader<'a>, DecodeError> {
        let length = self.varint(field)?;
        Ok(Reader::new(self.take(field, length)?))
    }

    /// The released layout's `u32 LE length | fields` framing of a message's fields.
    pub(crate) fn u32_le_framed(&mut self, field: &'static str) -> Result<Reader<'a>, DecodeError> {
        let length = self.take(field, 4)?;
        let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]);
        Ok(Reader::new(self.take(field, length.into())?))
    }

    /// A collection's element count, checked against the bytes left (each element takes at
    /// least `element_bytes_min`), so damage cannot make the reader reserve a huge buffer.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        element_bytes_min: u64,
    ) -> Result<usize, DecodeError> {
        let count = self.varint(field)?;
        let need = count.saturating_mul(element_bytes_min);
        self.check_left(field, need)?;
        usize::try_from(count).map_err(|_| DecodeError::OutOfRange {
            field,
            value: count,
            max: usize::MAX as u64,
        })
    }

    fn take(&mut self, field: &'static str, length: u64) -> Result<&'a [u8], DecodeError> {
        self.check_left(field, length)?;
        // check_left proved `length` fits in what is left, hence in usize.
        let end = self.at + length as usize;
        let bytes = &self.bytes[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn check_left(&self, field: &'static str, need: u64) -> Result<(), DecodeError> {
        let have = self.bytes.len() - self.at;
        if need > have as u64 {
            return Err(DecodeError::Truncated { field, need, have });
        }
        Ok(())
    }
}

/// `value` as LEB128: the bytes and how many of them are used.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut length = 0;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes[length] = low;
            return (bytes, length + 1);
        }
        bytes[length] = low | 0x80;
        length += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(write: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut out = BytesMut::new();
        write(&mut Writer { out: &mut out });
        out.to_vec()
    }

    #[test]
    fn varints_are_leb128() {
        assert_eq!(written(|w| w.varint(0)), [0]);
        assert_eq!(written(|w| w.varint(127)), [0x7f]);
        assert_eq!(written(|w| w.varint(128)), [0x80, 0x01]);
        assert_eq!(written(|w| w.varint(300)), [0xac, 0x02]);
        let max = written(|w| w.varint(u64::MAX));
        assert_eq!(max.len(), 10);
        assert_eq!(Reader::new(&max).varint("v"), Ok(u64::MAX));
    }

    #[test]
    fn varints_past_64_bits_are_refused() {
        let mut eleven = vec![0xffu8; 10];
        eleven.push(0);
        assert!(Reader::new(&eleven).varint("v").is_err());
        let mut tenth_too_big = vec![0xffu8; 9];
        tenth_too_big.push(0x02);
        assert_eq!(
            Reader::new(&tenth_too_big).varint("v"),
            Err(DecodeError::BadVarint { field: "v" })
        );
    }

    #[test]
    fn group_length_moves_the_fields_when_it_needs_two_bytes() {
        for size in [0usize, 1, 127, 128, 300, 20_000] {
            let text = "x".repeat(size);
            let bytes = written(|w| {
                w.u8(7);
                w.group(|g| g.str(&text));
                w.u8(9);
            });
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.u8("a"), Ok(7));
            let mut group = reader.group("g").unwrap();
            assert_eq!(group.str("s").unwrap(), text);
            assert_eq!(group.position(), group.bytes.len());
            assert_eq!(reader.u8("b"), Ok(9));
        }
    }

    #[test]
    fn a_group_reader_skips_fields_it_does_not_know() {
        let bytes = written(|w| {
            w.group(|g| {
                g.varint(5);
                g.str("appended by a newer writer");
                g.opt_varint(Some(1));
            });
            w.str("after");
        });
        let mut reader = Reader::new(&bytes);
        let mut group = reader.group("g").unwrap();
        assert_eq!(group.varint("known"), Ok(5));
        assert_eq!(reader.str("after").unwrap(), "after");
    }

    #[test]
    fn damage_is_an_error_with_the_field_named() {
        assert_eq!(
            Reader::new(&[5, b'a']).str("id"),
            Err(DecodeError::Truncated {
                field: "id",
                need: 5,
                have: 1
            })
        );
        assert_eq!(
            Reader::new(&[2]).opt_str("group"),
            Err(DecodeError::UnknownCode {
                field: "group",
                code: 2
            })
        );
        assert_eq!(
            Reader::new(&[1, 0xff]).str("id"),
            Err(DecodeError::NotUtf8 { field: "id" })
        );
        let huge_count = written(|w| w.varint(u64::MAX));
        assert!(matches!(
            Reader::new(&huge_count).varints("seqs"),
            Err(DecodeError::Truncated { .. })
        ));
        let too_big = written(|w| w.varint(u64::from(u32::MAX) + 1));
        assert!(matches!(
            Reader::new(&too_big).u32("count"),
            Err(DecodeError::OutOfRange { .. })
        ));
    }

    proptest! {
        #[test]
        fn fields_round_trip(
            number in any::<u64>(),
            text in ".{0,40}",
            maybe in proptest::option::of(any::<u64>()),
            map in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
            list in proptest::collection::vec(any::<u64>(), 0..8),
            padding in ".{0,200}",
        ) {
            let bytes = written(|w| {
                w.group(|g| {
                    g.varint(number);
                    g.str(&text);
                    g.str(&padding);
                });
                w.opt_varint(maybe);
                w.map(&map);
                w.varints(&list);
                w.bool(true);
            });
            let mut reader = Reader::new(&bytes);
            let mut group = reader.group("g").unwrap();
            prop_assert_eq!(group.varint("n").unwrap(), number);
            prop_assert_eq!(group.str("t").unwrap(), text);
            prop_assert_eq!(group.str("p").unwrap(), padding);
            prop_assert_eq!(reader.opt_varint("m").unwrap(), maybe);
            prop_assert_eq!(reader.map("map").unwrap(), map);
            prop_assert_eq!(reader.varints("list").unwrap(), list);
            prop_assert!(reader.bool("b").unwrap());
            prop_assert_eq!(reader.position(), bytes.len());
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut reader = Reader::new(&bytes);
            let _ = reader.group("g").and_then(|mut g| {
                g.map("m")?;
                g.varints("v")?;
                g.opt_str("s")
            });
        }
    }
}
