//! Stream options: partitions, retention, cleanup and compression, with defaults that work
//! when a stream is created with nothing but its partition count.

use super::StreamError;
use serde::{Deserialize, Serialize};
use std::fmt;
use wharf_model::record_batch::Compression;

/// Most partitions one stream may have. Each partition is a log of its own (a directory, an
/// open segment file and a few hundred bytes of memory while idle); 10,000 is what one node
/// is measured to serve (docs/benchmarks.md), and far past what a stream's consumers use.
pub const PARTITIONS_MAX: u32 = 10_000;

/// Default of [`StreamOptions::tombstone_retention_ms`]: one day, as Kafka's
/// `delete.retention.ms`, so a consumer that reads at least daily sees every deletion.
pub const TOMBSTONE_RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

/// What happens to records of a partition as it grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    /// Whole segments past `retention_ms` or `retention_bytes` are deleted, oldest first.
    #[default]
    Delete,
    /// Each key keeps its latest record; older records of the key go. A record with a null
    /// value (a tombstone) removes its key, and is itself removed `tombstone_retention_ms`
    /// after its timestamp. Retention limits do not apply.
    Compact,
}

impl fmt::Display for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cleanup::Delete => "delete",
            Cleanup::Compact => "compact",
        })
    }
}

/// The policy of one stream. Every field is optional in JSON; the doc of each gives its
/// default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamOptions {
    /// Default 1: how many partitions (logs) the stream has, 1..=[`PARTITIONS_MAX`]. It can
    /// grow, never shrink: keys hash onto the partition count, and a partition's offsets are
    /// its consumers' positions.
    pub partitions: u32,
    /// Default `None` (forever): with cleanup `delete`, records older than this (by their
    /// batch's newest timestamp) are deleted a whole segment at a time. At least 1.
    pub retention_ms: Option<u64>,
    /// Default `None` (unbounded): with cleanup `delete`, the most bytes each partition keeps;
    /// the oldest segments go first. At least 1.
    pub retention_bytes: Option<u64>,
    /// Default `delete`.
    pub cleanup: Cleanup,
    /// Default `none`: how produced batches are compressed on disk (`lz4`, `zstd`). Fetches
    /// return records decompressed.
    pub compression: Compression,
    /// Default [`TOMBSTONE_RETENTION_MS_DEFAULT`]: with cleanup `compact`, how long a
    /// tombstone stays readable after its timestamp.
    pub tombstone_retention_ms: u64,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            cleanup: Cleanup::Delete,
            compression: Compression::None,
            tombstone_retention_ms: TOMBSTONE_RETENTION_MS_DEFAULT,
        }
    }
}

/// One field of [`StreamOptions`], for errors that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOptionField {
    Partitions,
    RetentionMs,
    RetentionBytes,
    TombstoneRetentionMs,
}

impl StreamOptionField {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamOptionField::Partitions => "partitions",
            StreamOptionField::RetentionMs => "retention_ms",
            StreamOptionField::RetentionBytes => "retention_bytes",
            StreamOptionField::TombstoneRetentionMs => "tombstone_retention_ms",
        }
    }
}

impl fmt::Display for StreamOptionField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StreamOptions {
    /// Checks every field against its range.
    pub fn check(&self) -> Result<(), StreamError> {
        let out_of_range = |field, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(StreamError::OptionOutOfRange {
                    field,
                    value,
                    min,
                    max,
                })
            }
        };
        let partitions = u64::from(self.partitions);
        out_of_range(
            StreamOptionField::Partitions,
            partitions,
            1,
            u64::from(PARTITIONS_MAX),
        )?;
        if let Some(retention) = self.retention_ms {
            out_of_range(StreamOptionField::RetentionMs, retention, 1, u64::MAX)?;
        }
        if let Some(retention) = self.retention_bytes {
            out_of_range(StreamOptionField::RetentionBytes, retention, 1, u64::MAX)?;
        }
        Ok(())
    }

    /// Checks that `self` may replace `current`: partitions never shrink.
    pub fn check_change(&self, stream: &str, current: &StreamOptions) -> Result<(), StreamError> {
        self.check()?;
        if self.partitions < current.partitions {
            return Err(StreamError::PartitionsShrink {
                stream: stream.to_string(),
                current: current.partitions,
                requested: self.partitions,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_one_partition_kept_forever() {
        let options: StreamOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(options, StreamOptions::default());
        assert_eq!(options.partitions, 1);
        assert_eq!(options.cleanup, Cleanup::Delete);
        options.check().unwrap();
    }

    #[test]
    fn partitions_out_of_range_are_refused_naming_the_field() {
        for partitions in [0, PARTITIONS_MAX + 1] {
            let options = StreamOptions {
                partitions,
                ..StreamOptions::default()
            };
            let error = options.check().unwrap_err();
            assert!(
                matches!(
                    error,
                    StreamError::OptionOutOfRange {
                        field: StreamOptionField::Partitions,
                        ..
                    }
                ),
                "{error:?}"
            );
        }
    }

    #[test]
    fn partitions_grow_but_never_shrink() {
        let four = StreamOptions {
            partitions: 4,
            ..StreamOptions::default()
        };
        let two = StreamOptions {
            partitions: 2,
            ..StreamOptions::default()
        };
        four.check_change("s", &two).unwrap();
        let error = two.check_change("s", &four).unwrap_err();
        assert_eq!(
            error.to_string(),
            "stream \"s\" has 4 partitions; partitions can grow but never shrink (asked for 2)"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<StreamOptions>(r#"{"partition": 3}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `partition`"),
            "{error}"
        );
    }
}
