//! The JSON shapes of the stream endpoints and their translation to and from engine types.
//!
//! Keys and header values are strings when they are UTF-8, base64 otherwise (`key_base64`,
//! `headers_base64`). A value is any JSON document (`value`), stored as the JSON text sent, or
//! other bytes as `value_base64`; a record with neither (or `"value": null`) has a null value,
//! a tombstone. A fetch answers `value` when the stored bytes are a JSON document other than
//! `null`, `value_base64` otherwise, so bytes come back as they went in.

use crate::http::{Problem, ProblemCode};
use base64_simd::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use wharf_engine::{
    broker::{
        Fetched, GroupInfo, MemberState, OffsetReset, PartitionLag, ProduceRecord, ProduceRequest,
        Produced, ProducerSequence, StreamInfo,
    },
    stream::{group::AssignmentStrategy, Cleanup, StreamOptions},
};
use wharf_model::record_batch::{Compression, Header, Record};

/// `PUT /v1/streams/{name}` body: the stream's options, every one optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StreamBody {
    /// Default 1; 1 to 10,000. Can grow, never shrink.
    pub partitions: Option<u32>,
    /// Default none (forever): with cleanup `delete`, records older than this go, a segment at
    /// a time.
    pub retention_ms: Option<u64>,
    /// Default none: with cleanup `delete`, the most bytes each partition keeps.
    pub retention_bytes: Option<u64>,
    /// `delete` (default) or `compact` (each key keeps its latest record).
    #[schema(value_type = Option<String>, example = "delete")]
    pub cleanup: Option<Cleanup>,
    /// `none` (default), `lz4` or `zstd`: how batches are stored.
    #[schema(value_type = Option<String>, example = "none")]
    pub compression: Option<Compression>,
    /// Default 86,400,000 (one day): with cleanup `compact`, how long a tombstone stays.
    pub tombstone_retention_ms: Option<u64>,
}

impl StreamBody {
    /// The options this body asks for; absent fields keep `current` (an update) or the
    /// defaults (a create).
    pub fn into_options(self, current: Option<StreamOptions>) -> StreamOptions {
        let base = current.unwrap_or_default();
        StreamOptions {
            partitions: self.partitions.unwrap_or(base.partitions),
            retention_ms: self.retention_ms.or(base.retention_ms),
            retention_bytes: self.retention_bytes.or(base.retention_bytes),
            cleanup: self.cleanup.unwrap_or(base.cleanup),
            compression: self.compression.unwrap_or(base.compression),
            tombstone_retention_ms: self
                .tombstone_retention_ms
                .unwrap_or(base.tombstone_retention_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamInfoBody {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    #[schema(value_type = String)]
    pub cleanup: Cleanup,
    #[schema(value_type = String)]
    pub compression: Compression,
    pub tombstone_retention_ms: u64,
    pub stats: StreamStatsBody,
    /// Each partition's offsets and size.
    pub partition_stats: Vec<PartitionBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamStatsBody {
    /// Records produced since the server started.
    pub produced: u64,
    /// Records stored now, in every partition.
    pub records: u64,
    pub bytes: u64,
    /// Consumer groups with members or committed offsets.
    pub groups: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionBody {
    pub partition: u32,
    /// The first offset still stored.
    pub earliest: u64,
    /// The offset the next record gets.
    pub latest: u64,
    pub records: u64,
    pub bytes: u64,
}

impl From<StreamInfo> for StreamInfoBody {
    fn from(info: StreamInfo) -> Self {
        let options = info.options;
        let records = info.partitions.iter().map(|p| p.records).sum();
        let bytes = info.partitions.iter().map(|p| p.bytes).sum();
        StreamInfoBody {
            name: info.name,
            partitions: options.partitions,
            retention_ms: options.retention_ms,
            retention_bytes: options.retention_bytes,
            cleanup: options.cleanup,
            compression: options.compression,
            tombstone_retention_ms: options.tombstone_retention_ms,
            stats: StreamStatsBody {
                produced: info.produced,
                records,
                bytes,
                groups: info.groups,
            },
            partition_stats: (info.partitions.into_iter())
                .map(|p| PartitionBody {
                    partition: p.partition,
                    earliest: p.earliest,
                    latest: p.latest,
                    records: p.records,
                    bytes: p.bytes,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamListBody {
    pub streams: Vec<StreamInfoBody>,
    /// The cursor of the next page (`after=`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /v1/streams/{name}/records` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    pub records: Vec<NewRecord>,
    /// An idempotent producer's id (0 or more): with `sequence`, a retried request is stored
    /// once.
    pub producer_id: Option<i64>,
    /// This request's number: the producer's first request any number, each next one the
    /// previous plus one.
    pub sequence: Option<i64>,
}

/// One record to produce.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// The key, as text; it picks the partition (Kafka's murmur2) unless `partition` is given.
    pub key: Option<String>,
    /// A key that is not text, base64.
    pub key_base64: Option<String>,
    /// Any JSON document, stored as the JSON text sent. Null or absent (with no
    /// `value_base64`): a null value, a tombstone.
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Box<RawValue>>,
    /// Bytes that are not JSON, base64.
    pub value_base64: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub partition: Option<u32>,
    /// Milliseconds since the epoch; default now.
    pub timestamp: Option<i64>,
}

impl ProduceBody {
    pub fn into_request(self) -> Result<ProduceRequest, Problem> {
        let producer = match (self.producer_id, self.sequence) {
            (Some(producer_id), Some(sequence)) => Some(ProducerSequence {
                producer_id,
                sequence,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "sequence",
                    "an idempotent produce needs sequence with producer_id",
                ))
            }
            (None, Some(_)) => return Err(invalid("producer_id", "sequence needs producer_id")),
        };
        let records = (self.records.into_iter().enumerate())
            .map(|(index, record)| record.into_record(index))
            .collect::<Result<_, _>>()?;
        Ok(ProduceRequest { records, producer })
    }
}

impl NewRecord {
    fn into_record(self, index: usize) -> Result<ProduceRecord, Problem> {
        let field = |name: &str| format!("records[{index}].{name}");
        let key = match (self.key, self.key_base64) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &field("key_base64"),
                    "give key or key_base64, not both",
                ))
            }
            (Some(key), None) => Some(Bytes::from(key)),
            (None, Some(encoded)) => Some(decode_base64(&encoded, &field("key_base64"))?),
            (None, None) => None,
        };
        let value = match (self.value, self.value_base64) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &field("value_base64"),
                    "give value or value_base64, not both",
                ))
            }
            (Some(json), None) => Some(Bytes::from(String::from(Box::<str>::from(json)))),
            (None, Some(encoded)) => Some(decode_base64(&encoded, &field("value_base64"))?),
            (None, None) => None,
        };
        let headers = (self.headers.into_iter())
            .map(|(key, value)| Header {
                key,
                value: Some(Bytes::from(value)),
            })
            .collect();
        Ok(ProduceRecord {
            key,
            value,
            headers,
            partition: self.partition,
            timestamp: self.timestamp,
        })
    }
}

fn decode_base64(encoded: &str, field: &str) -> Result<Bytes, Problem> {
    (BASE64.decode_to_vec(encoded.as_bytes()))
        .map(Bytes::from)
        .map_err(|_| invalid(field, "not base64 (standard alphabet, padded)"))
}

fn invalid(field: &str, detail: &str) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_detail(format!("invalid {field}: {detail}"))
        .with_field(field)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducedListBody {
    /// Where each record went, in request order.
    pub records: Vec<ProducedBody>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ProducedBody {
    pub partition: u32,
    pub offset: u64,
}

impl From<Produced> for ProducedBody {
    fn from(produced: Produced) -> Self {
        ProducedBody {
            partition: produced.partition,
            offset: produced.offset,
        }
    }
}

/// `GET .../partitions/{p}/records` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FetchQuery {
    /// The first offset to read; default the partition's earliest.
    pub offset: Option<u64>,
    /// 1 to 10,000; default 100.
    #[param(minimum = 1, maximum = 10000)]
    pub max_records: Option<usize>,
    /// Key and value bytes; default 1 MiB, at most 64 MiB. The first record comes whatever
    /// its size.
    #[param(minimum = 1, maximum = 67108864)]
    pub max_bytes: Option<usize>,
    /// Long poll: wait up to this long (at most 30,000) for a record when `offset` is the end.
    #[param(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
}

/// Records read from a partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordListBody {
    pub records: Vec<RecordBody>,
    /// Where the next fetch continues (past the records and any compacted gap).
    pub next_offset: u64,
    pub earliest: u64,
    /// The partition's end: the offset the next record gets.
    pub latest: u64,
}

/// One stored record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordBody {
    pub offset: u64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// The value when it is a JSON document; null for a tombstone or a value given in
    /// `value_base64`.
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Header values that are not text (or null), base64.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_base64: BTreeMap<String, String>,
}

impl From<Record> for RecordBody {
    fn from(record: Record) -> Self {
        let (key, key_base64) = match record.key {
            None => (None, None),
            Some(key) => match String::from_utf8(key.to_vec()) {
                Ok(text) => (Some(text), None),
                Err(_) => (None, Some(BASE64.encode_to_string(&key))),
            },
        };
        let (value, value_base64) = match record.value {
            None => (None, None),
            Some(value) => match json_document(&value) {
                Some(json) => (Some(json), None),
                None => (None, Some(BASE64.encode_to_string(&value))),
            },
        };
        let mut headers = BTreeMap::new();
        let mut headers_base64 = BTreeMap::new();
        for header in record.headers {
            let value = header.value.unwrap_or_default();
            match std::str::from_utf8(&value) {
                Ok(text) => headers.insert(header.key, text.to_string()),
                Err(_) => headers_base64.insert(header.key, BASE64.encode_to_string(&value)),
            };
        }
        RecordBody {
            offset: record.offset,
            timestamp: record.timestamp,
            key,
            key_base64,
            value,
            value_base64,
            headers,
            headers_base64,
        }
    }
}

/// The bytes as a JSON document, unless they are not one or are `null` (which would read as
/// a tombstone).
fn json_document(bytes: &[u8]) -> Option<Box<RawValue>> {
    let raw: Box<RawValue> = serde_json::from_slice(bytes).ok()?;
    (raw.get().trim() != "null").then_some(raw)
}

impl From<Fetched> for RecordListBody {
    fn from(fetched: Fetched) -> Self {
        RecordListBody {
            records: fetched.records.into_iter().map(RecordBody::from).collect(),
            next_offset: fetched.next_offset,
            earliest: fetched.earliest,
            latest: fetched.latest,
        }
    }
}

/// `GET .../partitions/{p}/offsets` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OffsetQuery {
    /// `earliest`, `latest` (default) or a time in ms since the epoch: the first record at or
    /// after it (the end when there is none).
    pub at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffsetBody {
    pub partition: u32,
    pub offset: u64,
}

/// `GET .../partitions/{p}/tail` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TailQuery {
    /// The first offset to send; default the partition's end (new records only). A
    /// `Last-Event-ID` header (the last offset received) takes precedence: the tail resumes
    /// after it.
    pub offset: Option<u64>,
}

/// `POST .../groups/{group}/members` body: join.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JoinBody {
    /// Join again under this id; by default the server makes one.
    pub member_id: Option<String>,
    /// 1,000 to 300,000; default 10,000: silent longer, the member is removed.
    pub session_timeout_ms: Option<u64>,
    /// `range` (default), `round_robin` or `sticky`; the first member's choice holds.
    #[schema(value_type = Option<String>)]
    pub strategy: Option<AssignmentStrategy>,
    /// Where partitions the group never committed start: `latest` (default) or `earliest`.
    #[schema(value_type = Option<String>)]
    pub auto_offset_reset: Option<ResetBody>,
}

/// `auto_offset_reset` values.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetBody {
    Earliest,
    Latest,
}

impl ResetBody {
    /// The engine's reset for an optional `auto_offset_reset` (default `latest`).
    pub fn reset(reset: Option<ResetBody>) -> OffsetReset {
        match reset {
            Some(ResetBody::Earliest) => OffsetReset::Earliest,
            Some(ResetBody::Latest) | None => OffsetReset::Latest,
        }
    }
}

/// `POST .../members/{member}/heartbeat` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The generation the member last learned.
    pub generation: u64,
    #[schema(value_type = Option<String>)]
    pub auto_offset_reset: Option<ResetBody>,
}

/// A member's assignment, after a join or heartbeat.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberBody {
    pub member_id: String,
    /// Commits must carry it; it changes at every rebalance.
    pub generation: u64,
    /// The partitions this member reads.
    pub assignment: Vec<u32>,
    /// For each assigned partition, the offset to read from: the group's committed offset,
    /// or by `auto_offset_reset` when it has none. Keys are partition numbers.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub positions: BTreeMap<u32, u64>,
    /// Members in the group.
    pub members: usize,
}

impl From<MemberState> for MemberBody {
    fn from(state: MemberState) -> Self {
        MemberBody {
            member_id: state.view.member_id,
            generation: state.view.generation,
            assignment: state.view.assignment,
            positions: state.positions,
            members: state.view.members,
        }
    }
}

/// `POST .../groups/{group}/commit` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    /// The committing member and its generation; both absent for a group without members.
    pub member_id: Option<String>,
    pub generation: Option<u64>,
    /// The next offset to read, per partition.
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    pub partition: u32,
    pub offset: u64,
}

/// A group: its members and each partition's committed offset and lag.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupBody {
    pub name: String,
    pub generation: u64,
    pub members: Vec<GroupMemberBody>,
    pub partitions: Vec<PartitionLagBody>,
    /// Records behind, over the partitions with a committed offset.
    pub lag: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupMemberBody {
    pub member_id: String,
    pub assignment: Vec<u32>,
    /// When it last joined or sent a heartbeat (ms since the epoch).
    pub last_heartbeat: u64,
    pub session_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionLagBody {
    pub partition: u32,
    pub committed: Option<u64>,
    pub latest: u64,
    pub lag: Option<u64>,
    /// The member reading it now.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupListBody {
    pub groups: Vec<GroupBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffsetsBody {
    pub partitions: Vec<PartitionLagBody>,
    pub lag: u64,
}

impl From<PartitionLag> for PartitionLagBody {
    fn from(lag: PartitionLag) -> Self {
        PartitionLagBody {
            partition: lag.partition,
            committed: lag.committed,
            latest: lag.latest,
            lag: lag.lag,
            owner: lag.owner,
        }
    }
}

impl From<GroupInfo> for GroupBody {
    fn from(info: GroupInfo) -> Self {
        GroupBody {
            name: info.name,
            generation: info.generation,
            members: (info.members.into_iter())
                .map(|m| GroupMemberBody {
                    member_id: m.member_id,
                    assignment: m.assignment,
                    last_heartbeat: m.last_heartbeat,
                    session_timeout_ms: m.session_timeout_ms,
                })
                .collect(),
            partitions: info
                .partitions
                .into_iter()
                .map(PartitionLagBody::from)
                .collect(),
            lag: info.lag,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompactedBody {
    /// Records kept, over every partition.
    pub kept: u64,
}
