//! Record batches: the unit in which a stream stores, replicates and serves records.
//!
//! The layout is Kafka's RecordBatch v2 (message format v2, KIP-98), byte for byte, so that a
//! Kafka door can store a producer's batch as it arrived, rewriting only baseOffset (which
//! the CRC does not cover, [`set_base_offset`]), and serve it back without re-encoding. This
//! module is the pure codec: it checks and decodes bytes and encodes records; where batches
//! live, how offsets are assigned and which batches a fetch returns are the engine's and
//! storage's business.
//!
//! ```text
//! offset  bytes  field                 notes (integers big-endian)
//!      0      8  baseOffset            offset of the first record; stamped by the broker
//!      8      4  batchLength           bytes after this field
//!     12      4  partitionLeaderEpoch  Wharf writes -1 (no epoch, as producers do); ignored
//!     16      1  magic                 2
//!     17      4  crc                   CRC-32C (Castagnoli) of bytes 21.. to the end
//!     21      2  attributes            bits 0-2 compression (0 none, 1 gzip, 2 snappy,
//!                                      3 lz4, 4 zstd), 3 log-append time, 4 transactional,
//!                                      5 control, 6 baseTimestamp is a delete horizon
//!     23      4  lastOffsetDelta       last offset the batch covers - baseOffset
//!     27      8  baseTimestamp         timestamp deltas are relative to it
//!     35      8  maxTimestamp
//!     43      8  producerId            -1 = no idempotent producer
//!     51      2  producerEpoch         -1 = none
//!     53      4  baseSequence          -1 = none
//!     57      4  recordsCount          never compressed
//!     61      -  records               compressed as one block when bits 0-2 say so
//! ```
//!
//! Each record's own layout is drawn in `record.rs`. Decoding never panics and never
//! reserves memory beyond what its input can hold: it reads bytes from the network.

mod compression;
mod encode;
mod error;
mod record;
mod varint;

#[cfg(test)]
mod tests;

pub use compression::{Compression, CompressionNameError, RECORDS_BYTES_MAX};
pub use encode::encode;
pub use error::BatchError;
pub use record::{Header, Record, RecordField, RecordInput, RecordProblem};

use bytes::{Bytes, BytesMut};
use record::SectionFrame;

/// Bytes of a batch before its records.
pub const HEADER_BYTES: usize = 61;

/// Kafka's "no timestamp" (`RecordBatch.NO_TIMESTAMP`): the base and max timestamps of a
/// batch without records.
pub const NO_TIMESTAMP: i64 = -1;

/// Bytes before batchLength's count starts: baseOffset and batchLength themselves (Kafka's
/// `LOG_OVERHEAD`).
const LOG_OVERHEAD: usize = 12;
const MAGIC: i8 = 2;
/// What Wharf writes as partitionLeaderEpoch: Kafka's "no epoch", what producers send.
/// Outside the CRC, so a replicated log can stamp its epoch in place later.
const PARTITION_LEADER_EPOCH_NONE: i32 = -1;

const ATTRIBUTE_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTRIBUTE_TRANSACTIONAL: i16 = 1 << 4;
const ATTRIBUTE_CONTROL: i16 = 1 << 5;
const ATTRIBUTE_DELETE_HORIZON: i16 = 1 << 6;

/// Where each header field starts (see the layout above).
mod position {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
}

/// The idempotent producer that wrote a batch (KIP-98): the broker deduplicates retries by
/// (id, epoch, sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl Producer {
    /// No idempotent producer: what plain producers and Wharf's own doors write.
    pub const NONE: Producer = Producer {
        id: -1,
        epoch: -1,
        base_sequence: -1,
    };
}

/// A batch's header fields, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// The whole batch in bytes, header included (batchLength + 12).
    pub batch_length: u32,
    pub last_offset_delta: u32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer: Producer,
    pub record_count: u32,
    pub compression: Compression,
    /// The raw attributes, compression bits included; see the accessors for the flags.
    pub attributes: i16,
}

impl BatchHeader {
    /// The last offset the batch covers. After compaction its last records may be gone, but
    /// the batch still covers their offsets, so the next batch starts after this.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// The offset the next batch in the log starts at.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// Record timestamps are the broker's append time (maxTimestamp), not the producer's.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTRIBUTE_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    /// Holds a transaction marker, not application records.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }

    /// baseTimestamp holds the time after which compaction may drop the batch's tombstones.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTRIBUTE_DELETE_HORIZON != 0
    }
}

/// One batch in its stored bytes, checked on [`RecordBatch::parse`]: length, magic, CRC and
/// header fields. Its records are decoded on demand by [`RecordBatch::records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
    header: BatchHeader,
}

impl RecordBatch {
    /// Checks that `bytes` hold exactly one batch. Records are not decoded here: a broker
    /// that stores and serves batches verbatim never needs them.
    pub fn parse(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        let header = parse_header(&bytes)?;
        Ok(RecordBatch { bytes, header })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch as stored and sent: the bytes `parse` was given.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The batch's records, with absolute offsets and timestamps. Uncompressed batches hand
    /// out slices of their own bytes; compressed ones are inflated once, up to
    /// [`RECORDS_BYTES_MAX`].
    pub fn records(&self) -> Result<Vec<Record>, BatchError> {
        let mut records = self.records_as_written()?;
        if self.header.is_log_append_time() {
            for record in &mut records {
                record.timestamp = self.header.max_timestamp;
            }
        }
        Ok(records)
    }

    /// Re-encodes the batch keeping only the records `keep` accepts: what compaction does.
    ///
    /// The new batch keeps the base offset, lastOffsetDelta (it still covers the offsets of
    /// removed records, so offsets never go back), base timestamp, producer, compression and
    /// attribute flags, and each kept record keeps its offset and timestamp. maxTimestamp is
    /// that of the kept records (the batch's append time under log-append time; unchanged when
    /// none is kept, so the batch's place in time-based retention does not move).
    pub fn with_records(&self, mut keep: impl FnMut(&Record) -> bool) -> Result<Bytes, BatchError> {
        let header = &self.header;
        let mut kept = Vec::new();
        for mut record in self.records_as_written()? {
            let timestamp_written = record.timestamp;
            if header.is_log_append_time() {
                record.timestamp = header.max_timestamp;
            }
            if keep(&record) {
                kept.push(RecordInput {
                    offset_delta: (record.offset - header.base_offset) as u32,
                    timestamp: timestamp_written,
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
                });
            }
        }
        let max_timestamp = match kept.iter().map(|record| record.timestamp).max() {
            Some(max) if !header.is_log_append_time() => max,
            _ => header.max_timestamp,
        };
        let fields = encode::BatchFields {
            base_offset: header.base_offset,
            last_offset_delta: header.last_offset_delta,
            base_timestamp: header.base_timestamp,
            max_timestamp,
            producer: header.producer,
            compression: header.compression,
            attribute_flags: header.attributes & !compression::COMPRESSION_MASK,
        };
        encode::encode_batch(&fields, &kept)
    }

    /// A copy of the batch moved to `base_offset`, as a broker appends a producer's batch.
    pub fn with_base_offset(&self, base_offset: u64) -> Result<RecordBatch, BatchError> {
        let last_offset_delta = self.header.last_offset_delta;
        check_offset_range(base_offset, last_offset_delta)?;
        let mut bytes = BytesMut::from(&self.bytes[..]);
        set_base_offset(&mut bytes, base_offset);
        Ok(RecordBatch {
            bytes: bytes.freeze(),
            header: BatchHeader {
                base_offset,
                ..self.header
            },
        })
    }

    fn records_as_written(&self) -> Result<Vec<Record>, BatchError> {
        let frame = SectionFrame {
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            last_offset_delta: self.header.last_offset_delta,
            record_count: self.header.record_count,
        };
        match self.header.compression {
            Compression::None => record::decode_section(&self.bytes, HEADER_BYTES, frame),
            compression => {
                let inflated = compression.decompress(&self.bytes[HEADER_BYTES..])?;
                record::decode_section(&Bytes::from(inflated), 0, frame)
            }
        }
    }
}

/// Rewrites a batch's baseOffset in place. The CRC stays valid: it starts at attributes.
///
/// # Panics
/// If `batch` is shorter than a batch header or `base_offset` exceeds `i64::MAX`: the caller
/// passes a batch it has parsed and an offset from its own log.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    assert!(batch.len() >= HEADER_BYTES, "not a record batch");
    let base_offset = i64::try_from(base_offset).expect("offsets fit an i64");
    batch[position::BASE_OFFSET..position::BATCH_LENGTH]
        .copy_from_slice(&base_offset.to_be_bytes());
}

/// Splits concatenated batches, as a log segment or a Kafka fetch holds them.
///
/// Every byte must belong to a whole batch: a cut-off last batch is an error, because the
/// callers (a produce request, a segment read at batch boundaries) never legitimately end
/// mid-batch.
pub fn split(mut bytes: Bytes) -> Result<Vec<RecordBatch>, BatchError> {
    let mut batches = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < LOG_OVERHEAD {
            return Err(BatchError::TooShort {
                need: LOG_OVERHEAD,
                have: bytes.len(),
            });
        }
        let batch_length = read_i32(&bytes, position::BATCH_LENGTH);
        let need = usize::try_from(batch_length)
            .ok()
            .filter(|length| *length >= HEADER_BYTES - LOG_OVERHEAD)
            .ok_or(BatchError::HeaderFieldOutOfRange {
                field: "batchLength",
                value: batch_length.into(),
            })?
            + LOG_OVERHEAD;
        if bytes.len() < need {
            return Err(BatchError::TooShort {
                need,
                have: bytes.len(),
            });
        }
        batches.push(RecordBatch::parse(bytes.split_to(need))?);
    }
    Ok(batches)
}

fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    parse_header_check_frame(bytes)?;
    let attributes = read_i16(bytes, position::ATTRIBUTES);
    let compression = Compression::from_attributes(attributes)?;
    let base_offset = non_negative("baseOffset", read_i64(bytes, position::BASE_OFFSET))?;
    let last_offset_delta = non_negative(
        "lastOffsetDelta",
        read_i32(bytes, position::LAST_OFFSET_DELTA).into(),
    )?;
    let record_count = non_negative(
        "recordsCount",
        read_i32(bytes, position::RECORD_COUNT).into(),
    )?;
    check_offset_range(base_offset, last_offset_delta as u32).map_err(|_| {
        BatchError::HeaderFieldOutOfRange {
            field: "lastOffsetDelta",
            value: last_offset_delta as i64,
        }
    })?;
    // Offsets within a batch are distinct and at most lastOffsetDelta apart.
    if record_count > last_offset_delta + 1 {
        return Err(BatchError::HeaderFieldOutOfRange {
            field: "recordsCount",
            value: record_count as i64,
        });
    }
    Ok(BatchHeader {
        base_offset,
        batch_length: bytes.len() as u32,
        last_offset_delta: last_offset_delta as u32,
        base_timestamp: read_i64(bytes, position::BASE_TIMESTAMP),
        max_timestamp: read_i64(bytes, position::MAX_TIMESTAMP),
        producer: Producer {
            id: read_i64(bytes, position::PRODUCER_ID),
            epoch: read_i16(bytes, position::PRODUCER_EPOCH),
            base_sequence: read_i32(bytes, position::BASE_SEQUENCE),
        },
        record_count: record_count as u32,
        compression,
        attributes,
    })
}

/// Checks what makes the bytes one intact v2 batch, before any field is trusted: the
/// length, the magic and the CRC.
fn parse_header_check_frame(bytes: &[u8]) -> Result<(), BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::TooShort {
            need: HEADER_BYTES,
            have: bytes.len(),
        });
    }
    let batch_length = read_i32(bytes, position::BATCH_LENGTH);
    if i64::from(batch_length) != (bytes.len() - LOG_OVERHEAD) as i64 {
        return Err(BatchError::LengthMismatch {
            declared: batch_length.into(),
            actual: bytes.len() - LOG_OVERHEAD,
        });
    }
    // Kafka's readers check magic before the CRC: the CRC's place depends on the version.
    let magic = bytes[position::MAGIC] as i8;
    if magic != MAGIC {
        return Err(BatchError::BadMagic { found: magic });
    }
    let expected = read_u32(bytes, position::CRC);
    let found = crc32c::crc32c(&bytes[position::ATTRIBUTES..]);
    if expected != found {
        return Err(BatchError::ChecksumMismatch { expected, found });
    }
    Ok(())
}

/// Offsets are i64 on the wire: the last one a batch covers must fit.
fn check_offset_range(base_offset: u64, last_offset_delta: u32) -> Result<(), BatchError> {
    match base_offset.checked_add(last_offset_delta.into()) {
        Some(last) if last <= i64::MAX as u64 => Ok(()),
        _ => Err(BatchError::BaseOffsetOutOfRange {
            base_offset,
            last_offset_delta,
        }),
    }
}

fn non_negative(field: &'static str, value: i64) -> Result<u64, BatchError> {
    u64::try_from(value).map_err(|_| BatchError::HeaderFieldOutOfRange { field, value })
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("two bytes"))
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}
