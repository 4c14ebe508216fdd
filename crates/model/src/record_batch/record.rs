//! One record inside a batch's records section: its encoding, and the reader that decodes a
//! whole section into [`Record`]s.
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused, written 0, ignored on read
//! timestampDelta  varlong  timestamp - batch baseTimestamp
//! offsetDelta     varint   offset - batch baseOffset
//! keyLength       varint   -1 = null key
//! key             bytes
//! valueLength     varint   -1 = null value (a tombstone)
//! value           bytes
//! headerCount     varint
//! headers         headerKeyLength varint, headerKey UTF-8,
//!                 headerValueLength varint (-1 = null), headerValue bytes
//! ```
//! (KIP-82 and KIP-98; Kafka's protocol guide, "Record" and "Record Header".)

use super::varint::{self, VarintError};
use super::BatchError;
use bytes::{BufMut, Bytes};
use std::fmt;

/// A record header: Kafka's headers are an ordered list in which keys may repeat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One decoded record, with its absolute offset and timestamp.
///
/// `key`, `value` and header values are slices of the batch's bytes when the batch is not
/// compressed, and of one inflated buffer per batch when it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    pub offset: u64,
    /// Milliseconds since the Unix epoch: the producer's create time, or the batch's
    /// maxTimestamp when the batch carries log-append time (attributes bit 3), as Kafka's
    /// readers do.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    /// `None` is a tombstone: compaction removes the key's earlier records.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A record to encode, placed by its offset delta from the batch's base offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordInput {
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A field of a record, named as in Kafka's protocol guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordField {
    Length,
    Attributes,
    TimestampDelta,
    OffsetDelta,
    KeyLength,
    Key,
    ValueLength,
    Value,
    HeaderCount,
    HeaderKeyLength,
    HeaderKey,
    HeaderValueLength,
    HeaderValue,
}

/// What is wrong with one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("the bytes end inside its {field}")]
    Truncated { field: RecordField },
    #[error("its {field} is {length}")]
    NegativeLength { field: RecordField, length: i32 },
    #[error("its length says {declared} bytes but its fields take {used}")]
    LengthMismatch { declared: usize, used: usize },
    #[error("its offsetDelta {offset_delta} is outside 0..={last_offset_delta}")]
    OffsetDeltaOutOfRange {
        offset_delta: i32,
        last_offset_delta: u32,
    },
    #[error("its offsetDelta {offset_delta} does not follow the previous record's {previous}")]
    OffsetDeltaNotIncreasing { offset_delta: u32, previous: u32 },
    #[error("its timestampDelta {timestamp_delta} takes the timestamp out of range")]
    TimestampOutOfRange { timestamp_delta: i64 },
}

impl fmt::Display for RecordField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordField::Length => "length",
            RecordField::Attributes => "attributes",
            RecordField::TimestampDelta => "timestampDelta",
            RecordField::OffsetDelta => "offsetDelta",
            RecordField::KeyLength => "keyLength",
            RecordField::Key => "key",
            RecordField::ValueLength => "valueLength",
            RecordField::Value => "value",
            RecordField::HeaderCount => "headerCount",
            RecordField::HeaderKeyLength => "headerKeyLength",
            RecordField::HeaderKey => "headerKey",
            RecordField::HeaderValueLength => "headerValueLength",
            RecordField::HeaderValue => "headerValue",
        })
    }
}

/// Smallest encoded record: a one-byte length, then attributes, timestampDelta, offsetDelta,
/// keyLength, valueLength and headerCount at one byte each. Bounds how many records a
/// section of a given size can hold, so a forged count cannot make the reader reserve more.
pub(super) const RECORD_BYTES_MIN: usize = 7;

/// Bytes of a record's fields after its length prefix. Lengths are computed in `usize` and
/// bounded by the caller against [`super::RECORDS_BYTES_MAX`] before anything is written.
pub(super) fn encoded_body_len(record: &RecordInput, timestamp_delta: i64) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|header| {
            nullable_len(Some(header.key.as_bytes())) + nullable_len(header.value.as_deref())
        })
        .sum();
    1 + varint::varlong_len(timestamp_delta)
        + varint::varlong_len(i64::from(record.offset_delta))
        + nullable_len(record.key.as_deref())
        + nullable_len(record.value.as_deref())
        + varint::varlong_len(record.headers.len() as i64)
        + headers
}

/// Bytes of a whole record, length prefix included.
pub(super) fn encoded_len(body_len: usize) -> usize {
    varint::varlong_len(body_len as i64) + body_len
}

/// Writes one record. The caller has checked that every length fits an `i32` (the whole
/// section is at most [`super::RECORDS_BYTES_MAX`]) and that the offset delta does too.
pub(super) fn encode(
    buffer: &mut impl BufMut,
    record: &RecordInput,
    timestamp_delta: i64,
    body_len: usize,
) {
    write_length(buffer, body_len);
    buffer.put_i8(0);
    varint::write_varlong(buffer, timestamp_delta);
    let offset_delta =
        i32::try_from(record.offset_delta).expect("checked against lastOffsetDelta, an i32");
    varint::write_varint(buffer, offset_delta);
    write_nullable(buffer, record.key.as_deref());
    write_nullable(buffer, record.value.as_deref());
    write_length(buffer, record.headers.len());
    for header in &record.headers {
        write_nullable(buffer, Some(header.key.as_bytes()));
        write_nullable(buffer, header.value.as_deref());
    }
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 1,
        Some(bytes) => varint::varlong_len(bytes.len() as i64) + bytes.len(),
    }
}

fn write_nullable(buffer: &mut impl BufMut, bytes: Option<&[u8]>) {
    match bytes {
        None => varint::write_varint(buffer, -1),
        Some(bytes) => {
            write_length(buffer, bytes.len());
            buffer.put_slice(bytes);
        }
    }
}

fn write_length(buffer: &mut impl BufMut, length: usize) {
    varint::write_varint(buffer, to_i32(length));
}

fn to_i32(length: usize) -> i32 {
    i32::try_from(length).expect("record lengths are bounded by RECORDS_BYTES_MAX")
}

/// Where a section's records are placed: the batch fields every record is relative to.
#[derive(Debug, Clone, Copy)]
pub(super) struct SectionFrame {
    pub base_offset: u64,
    pub base_timestamp: i64,
    pub last_offset_delta: u32,
    pub record_count: u32,
}

/// Decodes every record of a records section held in `section`, starting at `start`.
///
/// Keys, values and header values are slices of `section`. Records come out with the
/// timestamp they were written with (`baseTimestamp + timestampDelta`); the caller swaps in
/// log-append time where the batch asks for it.
pub(super) fn decode_section(
    section: &Bytes,
    start: usize,
    frame: SectionFrame,
) -> Result<Vec<Record>, BatchError> {
    let available = section.len().saturating_sub(start);
    let capacity = (frame.record_count as usize).min(available / RECORD_BYTES_MIN);
    let mut records = Vec::with_capacity(capacity);
    let mut reader = Reader {
        bytes: section,
        position: start,
        end: section.len(),
    };
    let mut previous_offset_delta: Option<u32> = None;
    for index in 0..frame.record_count as usize {
        let (record, offset_delta) = decode_record(&mut reader, frame, previous_offset_delta)
            .map_err(|failure| failure.at(index))?;
        previous_offset_delta = Some(offset_delta);
        records.push(record);
    }
    if reader.position != reader.end {
        return Err(BatchError::RecordsTrailingBytes {
            record_count: frame.record_count,
            bytes: reader.end - reader.position,
        });
    }
    Ok(records)
}

/// A record's failure before the caller knows its index.
enum RecordFailure {
    Problem(RecordProblem),
    VarintOverflow(RecordField),
    HeaderKeyNotUtf8 {
        header: usize,
        source: std::str::Utf8Error,
    },
}

impl RecordFailure {
    fn at(self, index: usize) -> BatchError {
        match self {
            RecordFailure::Problem(problem) => BatchError::RecordMalformed { index, problem },
            RecordFailure::VarintOverflow(field) => BatchError::VarintOverflow { index, field },
            RecordFailure::HeaderKeyNotUtf8 { header, source } => BatchError::HeaderKeyNotUtf8 {
                index,
                header,
                source,
            },
        }
    }
}

impl From<RecordProblem> for RecordFailure {
    fn from(problem: RecordProblem) -> Self {
        RecordFailure::Problem(problem)
    }
}

fn decode_record(
    reader: &mut Reader<'_>,
    frame: SectionFrame,
    previous_offset_delta: Option<u32>,
) -> Result<(Record, u32), RecordFailure> {
    let declared = reader.length(RecordField::Length)?;
    if declared > reader.end - reader.position {
        return Err(RecordProblem::Truncated {
            field: RecordField::Length,
        }
        .into());
    }
    // Read the body inside its declared length, so a record can never reach into the next.
    let outer_end = reader.end;
    let body_start = reader.position;
    reader.end = body_start + declared;
    let body = decode_body(reader, frame, previous_offset_delta);
    let used = reader.position - body_start;
    reader.end = outer_end;
    let decoded = body?;
    if used != declared {
        return Err(RecordProblem::LengthMismatch { declared, used }.into());
    }
    Ok(decoded)
}

fn decode_body(
    reader: &mut Reader<'_>,
    frame: SectionFrame,
    previous_offset_delta: Option<u32>,
) -> Result<(Record, u32), RecordFailure> {
    reader.byte(RecordField::Attributes)?;
    let timestamp_delta = reader.varlong(RecordField::TimestampDelta)?;
    let offset_delta = reader.varint(RecordField::OffsetDelta)?;
    let offset_delta = u32::try_from(offset_delta)
        .ok()
        .filter(|delta| *delta <= frame.last_offset_delta)
        .ok_or(RecordProblem::OffsetDeltaOutOfRange {
            offset_delta,
            last_offset_delta: frame.last_offset_delta,
        })?;
    if let Some(previous) = previous_offset_delta.filter(|previous| offset_delta <= *previous) {
        return Err(RecordProblem::OffsetDeltaNotIncreasing {
            offset_delta,
            previous,
        }
        .into());
    }
    let timestamp = frame
        .base_timestamp
        .checked_add(timestamp_delta)
        .ok_or(RecordProblem::TimestampOutOfRange { timestamp_delta })?;
    let key = reader.nullable(RecordField::KeyLength, RecordField::Key)?;
    let value = reader.nullable(RecordField::ValueLength, RecordField::Value)?;
    let header_count = reader.length(RecordField::HeaderCount)?;
    // Each header takes at least two bytes (its two lengths): bound the reservation by them.
    let mut headers = Vec::with_capacity(header_count.min((reader.end - reader.position) / 2));
    for header in 0..header_count {
        let key_length = reader.length(RecordField::HeaderKeyLength)?;
        let key = reader.slice(key_length, RecordField::HeaderKey)?;
        let key = std::str::from_utf8(&key)
            .map_err(|source| RecordFailure::HeaderKeyNotUtf8 { header, source })?
            .to_owned();
        let value = reader.nullable(RecordField::HeaderValueLength, RecordField::HeaderValue)?;
        headers.push(Header { key, value });
    }
    let record = Record {
        offset: frame.base_offset + u64::from(offset_delta),
        timestamp,
        key,
        value,
        headers,
    };
    Ok((record, offset_delta))
}

/// A cursor over part of a buffer; `slice` hands out zero-copy sub-`Bytes`.
struct Reader<'a> {
    bytes: &'a Bytes,
    position: usize,
    end: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> &[u8] {
        &self.bytes[self.position..self.end]
    }

    fn byte(&mut self, field: RecordField) -> Result<u8, RecordFailure> {
        let byte = *self
            .remaining()
            .first()
            .ok_or(RecordProblem::Truncated { field })?;
        self.position += 1;
        Ok(byte)
    }

    fn varint(&mut self, field: RecordField) -> Result<i32, RecordFailure> {
        let (value, used) =
            varint::read_varint(self.remaining()).map_err(|error| varint_failure(error, field))?;
        self.position += used;
        Ok(value)
    }

    fn varlong(&mut self, field: RecordField) -> Result<i64, RecordFailure> {
        let (value, used) =
            varint::read_varlong(self.remaining()).map_err(|error| varint_failure(error, field))?;
        self.position += used;
        Ok(value)
    }

    /// A length that may not be null.
    fn length(&mut self, field: RecordField) -> Result<usize, RecordFailure> {
        let length = self.varint(field)?;
        usize::try_from(length).map_err(|_| RecordProblem::NegativeLength { field, length }.into())
    }

    /// A length-prefixed byte string where length -1 means null.
    fn nullable(
        &mut self,
        length_field: RecordField,
        field: RecordField,
    ) -> Result<Option<Bytes>, RecordFailure> {
        match self.varint(length_field)? {
            -1 => Ok(None),
            length => {
                let length =
                    usize::try_from(length).map_err(|_| RecordProblem::NegativeLength {
                        field: length_field,
                        length,
                    })?;
                self.slice(length, field).map(Some)
            }
        }
    }

    fn slice(&mut self, length: usize, field: RecordField) -> Result<Bytes, RecordFailure> {
        if length > self.end - self.position {
            return Err(RecordProblem::Truncated { field }.into());
        }
        let slice = self.bytes.slice(self.position..self.position + length);
        self.position += length;
        Ok(slice)
    }
}

fn varint_failure(error: VarintError, field: RecordField) -> RecordFailure {
    match error {
        VarintError::Truncated => RecordFailure::Problem(RecordProblem::Truncated { field }),
        VarintError::Overflow => RecordFailure::VarintOverflow(field),
    }
}
