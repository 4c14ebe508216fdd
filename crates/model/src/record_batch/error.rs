//! Why a record batch could not be encoded or decoded.

use super::{Compression, RecordField, RecordProblem};

/// A record batch that cannot be read, or records that cannot be written as one.
///
/// Decoding reads untrusted bytes, so every variant here is an operating error for the
/// caller to reply to (a Kafka door maps them to CORRUPT_MESSAGE, INVALID_RECORD or
/// UNSUPPORTED_COMPRESSION_TYPE), never a reason to crash.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    // Decoding: the batch's frame and header.
    #[error("record batch needs at least {need} bytes; {have} are there")]
    TooShort { need: usize, have: usize },
    #[error("record batch's batchLength says {declared} bytes follow it; {actual} do")]
    LengthMismatch { declared: i64, actual: usize },
    #[error("record batch has magic {found}; only message format v2 (magic 2) is supported")]
    BadMagic { found: i8 },
    /// `expected` is the batch's crc field; `found` is the CRC-32C of its bytes.
    #[error("record batch's crc is {expected:#010x} but its bytes checksum to {found:#010x}")]
    ChecksumMismatch { expected: u32, found: u32 },
    #[error("record batch's {field} is {value}, which is out of range")]
    HeaderFieldOutOfRange { field: &'static str, value: i64 },
    #[error("record batch is compressed with {name}, which Wharf does not support; use lz4, zstd or none")]
    UnsupportedCompression { name: &'static str },
    #[error("record batch names compression code {code}, which Kafka does not define")]
    UnknownCompression { code: u8 },

    // Decoding: the records section.
    #[error("record batch's {compression} records could not be decompressed")]
    DecompressionFailed {
        compression: Compression,
        #[source]
        source: std::io::Error,
    },
    #[error("record batch's records decompress to more than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("record {index} of the batch is malformed: {problem}")]
    RecordMalformed {
        index: usize,
        problem: RecordProblem,
    },
    #[error("record {index} of the batch has an overlong varint in its {field}")]
    VarintOverflow { index: usize, field: RecordField },
    #[error("record {index} of the batch has header {header} whose key is not UTF-8")]
    HeaderKeyNotUtf8 {
        index: usize,
        header: usize,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("record batch has {bytes} bytes left after its {record_count} records")]
    RecordsTrailingBytes { record_count: u32, bytes: usize },

    // Encoding: records that a batch cannot hold.
    #[error("a batch holds at most {max} records; {count} were given", max = i32::MAX)]
    TooManyRecords { count: usize },
    #[error("lastOffsetDelta {last_offset_delta} does not fit an i32")]
    LastOffsetDeltaOutOfRange { last_offset_delta: u32 },
    #[error(
        "base offset {base_offset} plus lastOffsetDelta {last_offset_delta} does not fit an i64"
    )]
    BaseOffsetOutOfRange {
        base_offset: u64,
        last_offset_delta: u32,
    },
    #[error("record {index} has offset delta {offset_delta}, beyond lastOffsetDelta {last_offset_delta}")]
    OffsetDeltaOutOfRange {
        index: usize,
        offset_delta: u32,
        last_offset_delta: u32,
    },
    #[error("record {index} has offset delta {offset_delta}, not above the previous record's {previous}")]
    OffsetDeltasNotIncreasing {
        index: usize,
        offset_delta: u32,
        previous: u32,
    },
    #[error("record {index} has timestamp {timestamp}, too far from the batch's base timestamp {base_timestamp}")]
    TimestampOutOfRange {
        index: usize,
        timestamp: i64,
        base_timestamp: i64,
    },
    #[error("records take {bytes} bytes; a batch holds at most {limit}")]
    RecordsTooLarge { bytes: usize, limit: usize },
    #[error("records could not be compressed with {compression}")]
    CompressionFailed {
        compression: Compression,
        #[source]
        source: std::io::Error,
    },
}
