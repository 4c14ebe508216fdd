//! Streams as plain state: options, the batch index of a partition, idempotent producers'
//! progress and consumer-group membership ([`group::Group`]: who is in a group, which
//! partitions each member reads, in which generation). No I/O here; `broker::streams` runs
//! them over the partitions' logs, with the committed offsets, the clock and the timer that
//! expires silent members.
//!
//! A stream is N partitions; a partition is a log of record batches (Kafka's RecordBatch v2,
//! `wharf_model::record_batch`), one batch per log record; an offset is a record's place in its
//! partition, and a consumer group is a membership with an assignment plus committed offsets.

pub mod group;
pub mod index;
pub mod options;
pub mod producers;

pub use options::{Cleanup, StreamOptionField, StreamOptions, PARTITIONS_MAX};

use group::GroupError;
use wharf_model::record_batch::BatchError;

/// What went wrong with a stream call, in the engine's terms; doors word it.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream {stream:?} does not exist")]
    NotFound { stream: String },
    /// The history of a webhook endpoint: it goes with the endpoint, not on its own.
    #[error("stream {stream:?} keeps the history of webhook endpoint {endpoint:?} for replay: only the endpoint writes it, and it goes with the endpoint")]
    WebhookHistory { stream: String, endpoint: String },
    #[error("stream {stream:?} has no partition {partition} (it has {partitions})")]
    PartitionNotFound {
        stream: String,
        partition: u32,
        partitions: u32,
    },
    #[error("stream {stream:?} has {current} partitions; partitions can grow but never shrink (asked for {requested})")]
    PartitionsShrink {
        stream: String,
        current: u32,
        requested: u32,
    },
    #[error("invalid {field}: {value} is outside {min}..={max}")]
    OptionOutOfRange {
        field: StreamOptionField,
        value: u64,
        min: u64,
        max: u64,
    },
    /// A fetch below what retention kept, or past the end.
    #[error("offset {offset} is out of range for partition {partition} of stream {stream:?}: it holds offsets {earliest} to {latest} (the end)")]
    OffsetOutOfRange {
        stream: String,
        partition: u32,
        offset: u64,
        earliest: u64,
        latest: u64,
    },
    #[error("a produce needs at least one record")]
    NoRecords,
    /// Creating or growing a stream would pass the node's partition limit.
    #[error("{requested} more partitions would make {total} on this node, over the limit of {max} (limits.stream_partitions_max)")]
    PartitionsLimit {
        requested: u32,
        total: usize,
        max: usize,
    },
    /// Compaction asked of a stream whose cleanup is `delete`: it would drop records that
    /// retention is meant to keep.
    #[error(
        "stream {stream:?} has cleanup delete; only streams with cleanup compact are compacted"
    )]
    NotCompacted { stream: String },
    /// A retry of a request stored before the stream grew: its records now hash to other
    /// partitions, so it cannot be answered with the first offsets, and storing it again would
    /// duplicate it.
    #[error("producer {producer_id}: sequence {sequence} was stored in partition {partition} before the stream grew; it is not stored again")]
    SequenceMoved {
        producer_id: i64,
        sequence: i32,
        partition: u32,
    },
    /// Record `index` of a produce names a partition the stream does not have.
    #[error(
        "record {index}: stream {stream:?} has no partition {partition} (it has {partitions})"
    )]
    RecordPartition {
        stream: String,
        index: usize,
        partition: u32,
        partitions: u32,
    },
    /// A compacted stream keeps the latest record per key, so every record needs one.
    #[error("record {index}: stream {stream:?} has cleanup compact, so every record needs a key")]
    KeyRequired { stream: String, index: usize },
    #[error("producer_id {producer_id} is negative; producer ids are 0..={max}", max = i64::MAX)]
    ProducerIdNegative { producer_id: i64 },
    #[error("sequence {sequence} is negative; sequences are 0..={max}", max = i32::MAX)]
    SequenceNegative { sequence: i64 },
    /// The producer skipped a request: it must send `expected` next.
    #[error("producer {producer_id}: sequence {given} skips ahead; the next request must use sequence {expected}")]
    SequenceGap {
        producer_id: i64,
        given: i32,
        expected: i32,
    },
    /// A retry older than the requests remembered: whether it was stored cannot be told.
    #[error("producer {producer_id}: sequence {given} is older than the requests remembered for partition {partition} (the newest is {last})")]
    SequenceTooOld {
        producer_id: i64,
        partition: u32,
        given: i32,
        last: i32,
    },
    /// A sequence stored before with another number of records in this partition: not a retry.
    #[error("producer {producer_id}: sequence {sequence} was stored with {stored} records in partition {partition}, and this request has {given} there")]
    SequenceReused {
        producer_id: i64,
        sequence: i32,
        partition: u32,
        stored: u32,
        given: u32,
    },
    #[error("group {group:?} of stream {stream:?}: {source}")]
    Group {
        stream: String,
        group: String,
        #[source]
        source: GroupError,
    },
    /// A commit without a member of a group that has members: only its members commit.
    #[error("group {group:?} of stream {stream:?} has members; commit as one of them (member_id and generation)")]
    MemberRequired { stream: String, group: String },
    /// A produce or a record could not be encoded as a batch (too many records or headers).
    #[error("the records cannot be stored as one batch: {source}")]
    Encode {
        #[source]
        source: BatchError,
    },
    /// A stored batch failed its checks when read back: damage on disk.
    #[error("partition {partition} of stream {stream:?}: the batch at log position {position} is damaged: {source}")]
    Damaged {
        stream: String,
        partition: u32,
        position: u64,
        #[source]
        source: BatchError,
    },
}
