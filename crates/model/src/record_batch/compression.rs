//! The compression codecs a record batch may use, and the bounded inflation of its records.
//!
//! Kafka compresses a batch's records section as one block (KIP-98, "RecordBatch": the
//! records count stays outside it). Wharf writes and reads two of Kafka's codecs: LZ4 (the
//! LZ4 frame format, which Kafka uses since message format v1; KIP-57) and zstd (KIP-110).
//! gzip and snappy batches are refused by name: supporting them would add two more
//! decompressors to audit for a door that can ask producers to use another codec.

use super::BatchError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

/// Largest records section, after decompression, that this codec writes or inflates: 64 MiB.
/// Kafka's default `message.max.bytes` is about 1 MiB and deployments that raise it stay
/// within tens of MiB, while a few KiB of zstd can claim gigabytes, so inflation stops here.
pub const RECORDS_BYTES_MAX: usize = 64 * 1024 * 1024;

/// zstd level used when Wharf compresses: Kafka's default (`compression.zstd.level`, KIP-390).
const ZSTD_LEVEL: i32 = 3;

/// How a batch's records section is compressed (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Lz4,
    Zstd,
}

/// A compression name that is not one of "none", "lz4" or "zstd".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {name:?}; expected none, lz4 or zstd")]
pub struct CompressionNameError {
    pub name: String,
}

/// The attribute bits 0-2 of a batch, as Kafka numbers its codecs.
const CODE_NONE: i16 = 0;
const CODE_GZIP: i16 = 1;
const CODE_SNAPPY: i16 = 2;
const CODE_LZ4: i16 = 3;
const CODE_ZSTD: i16 = 4;
pub(super) const COMPRESSION_MASK: i16 = 0b111;

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub(super) fn attribute_code(self) -> i16 {
        match self {
            Compression::None => CODE_NONE,
            Compression::Lz4 => CODE_LZ4,
            Compression::Zstd => CODE_ZSTD,
        }
    }

    pub(super) fn from_attributes(attributes: i16) -> Result<Compression, BatchError> {
        match attributes & COMPRESSION_MASK {
            CODE_NONE => Ok(Compression::None),
            CODE_LZ4 => Ok(Compression::Lz4),
            CODE_ZSTD => Ok(Compression::Zstd),
            CODE_GZIP => Err(BatchError::UnsupportedCompression { name: "gzip" }),
            CODE_SNAPPY => Err(BatchError::UnsupportedCompression { name: "snappy" }),
            code => Err(BatchError::UnknownCompression { code: code as u8 }),
        }
    }

    /// Compresses a records section. Not called for [`Compression::None`].
    pub(super) fn compress(self, records: &[u8]) -> Result<Vec<u8>, BatchError> {
        let failed = |source| BatchError::CompressionFailed {
            compression: self,
            source,
        };
        match self {
            Compression::None => Ok(records.to_vec()),
            Compression::Lz4 => {
                // Independent blocks of at most 64 KiB without a content size, as Kafka's Java
                // writer (KafkaLZ4BlockOutputStream) frames them: its reader inflates each
                // block on its own, so linked blocks would not decode there.
                let frame_info = lz4_flex::frame::FrameInfo::new()
                    .block_mode(lz4_flex::frame::BlockMode::Independent)
                    .block_size(lz4_flex::frame::BlockSize::Max64KB);
                let mut encoder =
                    lz4_flex::frame::FrameEncoder::with_frame_info(frame_info, Vec::new());
                encoder.write_all(records).map_err(failed)?;
                encoder.finish().map_err(|error| failed(error.into()))
            }
            Compression::Zstd => zstd::bulk::compress(records, ZSTD_LEVEL).map_err(failed),
        }
    }

    /// Inflates a compressed records section, refusing output beyond [`RECORDS_BYTES_MAX`].
    ///
    /// Reads through a stream with a cap, so memory grows with what the input really inflates
    /// to, never with a size the input claims. The zstd decoder may reserve its window (at
    /// most 128 MiB, zstd's default `ZSTD_WINDOWLOG_LIMIT_DEFAULT`) as address space; pages
    /// are only touched as output is produced.
    pub(super) fn decompress(self, compressed: &[u8]) -> Result<Vec<u8>, BatchError> {
        let failed = |source| BatchError::DecompressionFailed {
            compression: self,
            source,
        };
        let mut records = Vec::new();
        let cap = RECORDS_BYTES_MAX as u64 + 1;
        match self {
            Compression::None => records.extend_from_slice(compressed),
            Compression::Lz4 => {
                let decoder = lz4_flex::frame::FrameDecoder::new(compressed);
                decoder
                    .take(cap)
                    .read_to_end(&mut records)
                    .map_err(failed)?;
            }
            Compression::Zstd => {
                let decoder =
                    zstd::stream::read::Decoder::with_buffer(compressed).map_err(failed)?;
                decoder
                    .take(cap)
                    .read_to_end(&mut records)
                    .map_err(failed)?;
            }
        }
        if records.len() > RECORDS_BYTES_MAX {
            return Err(BatchError::DecompressedTooLarge {
                limit: RECORDS_BYTES_MAX,
            });
        }
        Ok(records)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compression {
    type Err = CompressionNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(CompressionNameError {
                name: name.to_owned(),
            }),
        }
    }
}
