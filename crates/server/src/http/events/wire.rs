//! The JSON shapes of the event-store endpoints and their translation to engine types.
//!
//! An event's `data` is any JSON document, stored as the JSON text sent and given back
//! verbatim, or other bytes as `data_base64`; `metadata` is a JSON object (correlation and
//! causation ids by convention), `{}` when absent.

use crate::http::{Problem, ProblemCode};
use base64_simd::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use wharf_engine::{
    broker::eventstore::{
        AllEvents, Appended, NewEvent, Projection, RecordedEvent, Snapshot, StreamAppend,
        StreamEvents, SubscriptionDelivery, SubscriptionInfo, SubscriptionSettings,
    },
    eventstore::{ExpectedVersion, ReadDirection, StreamMetadata},
};

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(ProblemCode::InvalidField)
        .with_field(field.to_string())
        .with_detail(detail.into())
}

/// `POST /v1/events/streams/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    /// `"any"` (the default), `"no_stream"`, `"exists"`, or the version (0 or more) of the
    /// stream's last event.
    #[schema(value_type = Option<serde_json::Value>)]
    pub expected_version: Option<serde_json::Value>,
    /// 1 to 1,000 events, appended atomically in this order.
    pub events: Vec<NewEventBody>,
}

/// One event to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEventBody {
    /// A UUID; generated when absent. Re-sending the same ids with the same expected version
    /// is answered as the first append was (an idempotent retry).
    pub id: Option<String>,
    /// The event type, 1 to 256 bytes.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON document.
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<Box<RawValue>>,
    /// Bytes that are not JSON, base64 (instead of `data`).
    pub data_base64: Option<String>,
    /// A JSON object: correlation_id, causation_id and anything else.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
}

impl AppendBody {
    pub fn into_parts(self) -> Result<(ExpectedVersion, Vec<NewEvent>), Problem> {
        let expected = expected_version(self.expected_version.as_ref())?;
        let events = (self.events.into_iter().enumerate())
            .map(|(index, event)| event.into_event(index))
            .collect::<Result<_, _>>()?;
        Ok((expected, events))
    }
}

fn expected_version(value: Option<&serde_json::Value>) -> Result<ExpectedVersion, Problem> {
    let problem = || {
        let detail = "give \"any\", \"no_stream\", \"exists\" or a version (an integer, 0 or more)";
        invalid("expected_version", detail)
    };
    match value {
        None | Some(serde_json::Value::Null) => Ok(ExpectedVersion::Any),
        Some(serde_json::Value::String(text)) => match text.as_str() {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::Exists),
            _ => Err(problem()),
        },
        // JSON has one number type: an integral float (7.0) is the integer too.
        Some(serde_json::Value::Number(number)) => (number.as_u64())
            .or_else(|| {
                let float = number.as_f64()?;
                (float >= 0.0 && float.fract() == 0.0 && float < 9_007_199_254_740_992.0)
                    .then_some(float as u64)
            })
            .map(ExpectedVersion::Exact)
            .ok_or_else(problem),
        Some(_) => Err(problem()),
    }
}

impl NewEventBody {
    fn into_event(self, index: usize) -> Result<NewEvent, Problem> {
        let field = |name: &str| format!("events[{index}].{name}");
        let (data, data_is_json) = match (self.data, self.data_base64) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &field("data_base64"),
                    "give data or data_base64, not both",
                ))
            }
            (Some(json), None) => (Bytes::from(json.get().to_string()), true),
            (None, Some(encoded)) => {
                let bytes = BASE64.decode_to_vec(encoded.as_bytes()).map_err(|_| {
                    invalid(
                        &field("data_base64"),
                        "not base64 (standard alphabet, padded)",
                    )
                })?;
                (Bytes::from(bytes), false)
            }
            (None, None) => (Bytes::from_static(b"null"), true),
        };
        let metadata = match self.metadata {
            None => Bytes::new(),
            Some(raw) if raw.get().trim_start().starts_with('{') => {
                Bytes::from(raw.get().to_string())
            }
            Some(_) => return Err(invalid(&field("metadata"), "must be a JSON object")),
        };
        Ok(NewEvent {
            id: self.id,
            event_type: self.event_type,
            data,
            data_is_json,
            metadata,
        })
    }
}

/// `POST /v1/events/appends` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendBatchBody {
    /// 1 to 1,000 appends, each atomic on its own with its own expected version; those to the
    /// same stream are applied in this order.
    pub appends: Vec<StreamAppendBody>,
}

/// One append of a batch: `POST /v1/events/streams/{stream}`'s body and its stream.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamAppendBody {
    /// The stream's id.
    pub stream: String,
    /// `"any"` (the default), `"no_stream"`, `"exists"`, or the version (0 or more) of the
    /// stream's last event.
    #[schema(value_type = Option<serde_json::Value>)]
    pub expected_version: Option<serde_json::Value>,
    /// 1 to 1,000 events, appended atomically in this order.
    pub events: Vec<NewEventBody>,
}

impl AppendBatchBody {
    /// The engine's appends; a problem names its field within the batch
    /// (`appends[2].events[0].data_base64`).
    pub fn into_appends(self) -> Result<Vec<StreamAppend>, Problem> {
        (self.appends.into_iter().enumerate())
            .map(|(at, append)| {
                let body = AppendBody {
                    expected_version: append.expected_version,
                    events: append.events,
                };
                let (expected, events) = body.into_parts().map_err(|mut problem| {
                    let field = match problem.field.take() {
                        Some(field) => format!("appends[{at}].{field}"),
                        None => format!("appends[{at}]"),
                    };
                    problem.with_field(field)
                })?;
                Ok(StreamAppend {
                    stream: append.stream,
                    expected,
                    events,
                })
            })
            .collect()
    }
}

/// What a batch of appends came to: one result per append, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendBatchResultsBody {
    pub results: Vec<AppendResultBody>,
}

/// One append's outcome: what it stored, or the problem that refused it (nothing of it
/// written).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendResultBody {
    pub stream: String,
    /// As the single append would answer: 201 (created the stream), 200 (appended, or an
    /// idempotent retry), or the problem's status (409 `wrong_expected_version`, 404
    /// `stream_deleted`, ...).
    pub status: u16,
    /// The version of the first event appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_version: Option<u64>,
    /// The stream's version now: its last event's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The position of the first event in `$all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_position: Option<u64>,
    /// The position of the last event in `$all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Why this append was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

impl AppendResultBody {
    pub fn new(stream: String, outcome: Result<Appended, Problem>) -> Self {
        match outcome {
            Ok(appended) => AppendResultBody {
                stream,
                status: if appended.created { 201 } else { 200 },
                first_version: Some(appended.first_version),
                version: Some(appended.version),
                first_position: Some(appended.first_position),
                position: Some(appended.position),
                error: None,
            },
            Err(problem) => AppendResultBody {
                stream,
                status: problem.status,
                first_version: None,
                version: None,
                first_position: None,
                position: None,
                error: Some(problem),
            },
        }
    }
}

/// What an append stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendedBody {
    pub stream: String,
    /// The version of the first event appended.
    pub first_version: u64,
    /// The stream's version now: its last event's.
    pub version: u64,
    /// The position of the first event in `$all`.
    pub first_position: u64,
    /// The position of the last event in `$all`.
    pub position: u64,
}

impl AppendedBody {
    pub fn new(stream: String, appended: Appended) -> Self {
        AppendedBody {
            stream,
            first_version: appended.first_version,
            version: appended.version,
            first_position: appended.first_position,
            position: appended.position,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectionParam {
    Forward,
    Backward,
}

/// `GET /v1/events/streams/{name}` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// The first version to read; default the first (forward) or the last (backward).
    pub from: Option<u64>,
    /// Default `forward`.
    pub direction: Option<DirectionParam>,
    /// 1 to 1,000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

impl ReadQuery {
    pub fn direction(&self) -> ReadDirection {
        match self.direction {
            Some(DirectionParam::Backward) => ReadDirection::Backward,
            _ => ReadDirection::Forward,
        }
    }
}

pub fn limit(limit: Option<usize>) -> Result<usize, Problem> {
    match limit {
        None => Ok(100),
        Some(limit @ 1..=1000) => Ok(limit),
        Some(_) => Err(invalid("limit", "must be 1 to 1000")),
    }
}

/// One stored event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBody {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub stream: String,
    /// Its place in its stream, from 0.
    pub version: u64,
    /// Its place in `$all`.
    pub position: u64,
    /// When it was appended, milliseconds since the epoch.
    pub time_ms: u64,
    /// The data when it is JSON; absent when it is in `data_base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Box<RawValue>,
}

impl From<RecordedEvent> for EventBody {
    fn from(event: RecordedEvent) -> Self {
        let raw = |bytes: &Bytes| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            RawValue::from_string(text).ok()
        };
        let (data, data_base64) = match event.data_is_json {
            true => (raw(&event.data), None),
            false => (None, Some(BASE64.encode_to_string(&event.data))),
        };
        let metadata = raw(&event.metadata).unwrap_or_else(|| {
            RawValue::from_string("{}".to_string()).expect("an empty object is JSON")
        });
        EventBody {
            id: event.id.to_string(),
            event_type: event.event_type,
            stream: event.stream,
            version: event.version,
            position: event.position,
            time_ms: event.time_ms,
            data,
            data_base64,
            metadata,
        }
    }
}

/// A page of a stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEventsBody {
    pub stream: String,
    /// The version of the stream's last event.
    pub version: Option<u64>,
    /// The `from` of the next page, when there is more to read now.
    pub next: Option<u64>,
    pub events: Vec<EventBody>,
}

impl StreamEventsBody {
    pub fn new(stream: String, page: StreamEvents) -> Self {
        StreamEventsBody {
            stream,
            version: page.current,
            next: page.next,
            events: page.events.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /v1/events/all` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AllQuery {
    /// The first position to read; default 0.
    pub from: Option<u64>,
    /// 1 to 1,000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only events whose type starts with this.
    pub type_prefix: Option<String>,
    /// Only events whose stream id starts with this.
    pub stream_prefix: Option<String>,
}

/// A page of `$all`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllEventsBody {
    pub events: Vec<EventBody>,
    /// Where the next read continues: past everything this one looked at, matching or not.
    pub next: u64,
}

impl From<AllEvents> for AllEventsBody {
    fn from(page: AllEvents) -> Self {
        AllEventsBody {
            events: page.events.into_iter().map(Into::into).collect(),
            next: page.next,
        }
    }
}

/// `GET /v1/events/subscribe` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscribeQuery {
    /// One stream: `from` is then a version of it.
    pub stream: Option<String>,
    /// `$all` filtered to event types starting with this.
    pub type_prefix: Option<String>,
    /// `$all` filtered to stream ids starting with this.
    pub stream_prefix: Option<String>,
    /// `start` (the default), `end` (only what comes next), or a version (with `stream`) or
    /// position (without) to start at.
    pub from: Option<String>,
}

/// `PUT /v1/events/streams/{name}/metadata` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    /// Events older than this are no longer read from the stream.
    #[schema(minimum = 1)]
    pub max_age_ms: Option<u64>,
    /// Only the newest this many events are read from the stream.
    #[schema(minimum = 1)]
    pub max_count: Option<u64>,
}

impl From<MetadataBody> for StreamMetadata {
    fn from(body: MetadataBody) -> Self {
        StreamMetadata {
            max_age_ms: body.max_age_ms,
            max_count: body.max_count,
        }
    }
}

/// A stream's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetadataInfoBody {
    pub stream: String,
    /// The version of the stream's last event, if it has any.
    pub version: Option<u64>,
    pub max_age_ms: Option<u64>,
    pub max_count: Option<u64>,
}

impl MetadataInfoBody {
    pub fn new(stream: String, metadata: StreamMetadata, version: Option<u64>) -> Self {
        MetadataInfoBody {
            stream,
            version,
            max_age_ms: metadata.max_age_ms,
            max_count: metadata.max_count,
        }
    }
}

/// `DELETE /v1/events/streams/{name}` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// True: a tombstone, the stream is never written or read again. Default false: a soft
    /// delete, the stream can be written again (its versions continue).
    pub hard: Option<bool>,
}

/// `PUT /v1/events/streams/{name}/snapshot` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotBody {
    /// The version of the last event the state includes.
    pub version: u64,
    /// The aggregate's state, any JSON document.
    #[schema(value_type = serde_json::Value)]
    pub state: Box<RawValue>,
}

/// A stored snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotInfoBody {
    pub stream: String,
    pub version: u64,
    /// When it was saved, milliseconds since the epoch.
    pub time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub state: Option<Box<RawValue>>,
}

impl SnapshotInfoBody {
    pub fn new(snapshot: Snapshot, with_state: bool) -> Self {
        let state = with_state
            .then(|| {
                RawValue::from_string(String::from_utf8_lossy(&snapshot.state).into_owned()).ok()
            })
            .flatten();
        SnapshotInfoBody {
            stream: snapshot.stream,
            version: snapshot.version,
            time_ms: snapshot.time_ms,
            state,
        }
    }
}

/// `PUT /v1/events/projections/{name}` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectionBody {
    /// Only events whose type starts with this.
    pub type_prefix: Option<String>,
    /// Only events whose stream id starts with this.
    pub stream_prefix: Option<String>,
}

/// A projection and its lag.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionInfoBody {
    pub name: String,
    pub type_prefix: Option<String>,
    pub stream_prefix: Option<String>,
    /// The position of the last event the read model applied; null before the first.
    pub checkpoint: Option<u64>,
    /// The last position of `$all`.
    pub head: Option<u64>,
    /// Positions of `$all` after the checkpoint.
    pub lag_events: u64,
    /// How long ago the first event after the checkpoint was appended; 0 when caught up.
    pub lag_ms: u64,
}

impl From<Projection> for ProjectionInfoBody {
    fn from(projection: Projection) -> Self {
        ProjectionInfoBody {
            name: projection.name,
            type_prefix: projection.filter.type_prefix,
            stream_prefix: projection.filter.stream_prefix,
            checkpoint: projection.checkpoint,
            head: projection.head,
            lag_events: projection.lag_events,
            lag_ms: projection.lag_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionListBody {
    pub projections: Vec<ProjectionInfoBody>,
    /// More match: ask again with `after` set to this. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /v1/events/projections/{name}/checkpoint` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointBody {
    /// The position of the last event the read model applied.
    pub position: u64,
}

/// A query with only a limit.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1 to 1,000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStart {
    Start,
    End,
}

/// `PUT /v1/events/subscriptions/{name}` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    /// One stream's events.
    pub stream: Option<String>,
    /// Events whose type starts with this.
    pub type_prefix: Option<String>,
    /// Events whose stream id starts with this.
    pub stream_prefix: Option<String>,
    /// `start` (the default): every event that matches; `end`: those appended from now on.
    pub from: Option<SubscriptionStart>,
    /// Deliveries of an event before it is parked; default 10.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_deliveries: Option<u32>,
    /// How long a delivery stays with one consumer before it is retried; default 30,000.
    #[schema(minimum = 1, maximum = 43200000)]
    pub lease_ms: Option<u64>,
}

impl SubscriptionBody {
    pub fn into_settings(self) -> Result<SubscriptionSettings, Problem> {
        let max_deliveries = self.max_deliveries.unwrap_or(10);
        if !(1..=1000).contains(&max_deliveries) {
            return Err(invalid("max_deliveries", "must be 1 to 1000"));
        }
        let lease_ms = self.lease_ms.unwrap_or(30_000);
        if !(1..=43_200_000).contains(&lease_ms) {
            return Err(invalid("lease_ms", "must be 1 to 43200000 (12 hours)"));
        }
        Ok(SubscriptionSettings {
            stream: self.stream,
            type_prefix: self.type_prefix,
            stream_prefix: self.stream_prefix,
            from_end: matches!(self.from, Some(SubscriptionStart::End)),
            max_deliveries,
            lease_ms,
        })
    }
}

/// A persistent subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionInfoBody {
    pub group: String,
    pub stream: Option<String>,
    pub type_prefix: Option<String>,
    pub stream_prefix: Option<String>,
    pub max_deliveries: u32,
    pub lease_ms: u64,
    /// The last position of `$all` handed to the group's queue.
    pub checkpoint: Option<u64>,
    /// The queue the group consumes (the queue API works on it too).
    pub queue: String,
    /// Where events that were delivered `max_deliveries` times go.
    pub parked_queue: String,
}

impl From<SubscriptionInfo> for SubscriptionInfoBody {
    fn from(info: SubscriptionInfo) -> Self {
        SubscriptionInfoBody {
            group: info.group,
            stream: info.settings.stream,
            type_prefix: info.settings.type_prefix,
            stream_prefix: info.settings.stream_prefix,
            max_deliveries: info.settings.max_deliveries,
            lease_ms: info.settings.lease_ms,
            checkpoint: info.checkpoint,
            queue: info.queue,
            parked_queue: info.parked_queue,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionListBody {
    pub subscriptions: Vec<SubscriptionInfoBody>,
    /// More match: ask again with `after` set to this. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `POST /v1/events/subscriptions/{name}/receive` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiveQuery {
    /// 1 to 100; default 10.
    #[param(minimum = 1, maximum = 100)]
    pub max: Option<usize>,
    /// Long poll: wait up to this long (at most 20,000) for a first event.
    #[param(minimum = 0, maximum = 20000)]
    pub wait_ms: Option<u64>,
}

/// An event leased to this consumer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveredEventBody {
    #[serde(flatten)]
    pub event: EventBody,
    /// Ack or nack with it.
    pub receipt: String,
    /// 1 for the first delivery.
    pub delivery_count: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveredEventsBody {
    pub events: Vec<DeliveredEventBody>,
}

impl From<Vec<SubscriptionDelivery>> for DeliveredEventsBody {
    fn from(deliveries: Vec<SubscriptionDelivery>) -> Self {
        let events = (deliveries.into_iter())
            .map(|delivery| DeliveredEventBody {
                event: delivery.event.into(),
                receipt: delivery.receipt,
                delivery_count: delivery.delivery_count,
            })
            .collect();
        DeliveredEventsBody { events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_parse_or_name_the_field() {
        let parse = |json: &str| expected_version(Some(&serde_json::from_str(json).unwrap()));
        assert_eq!(parse("\"any\"").unwrap(), ExpectedVersion::Any);
        assert_eq!(parse("\"no_stream\"").unwrap(), ExpectedVersion::NoStream);
        assert_eq!(parse("\"exists\"").unwrap(), ExpectedVersion::Exists);
        assert_eq!(parse("7").unwrap(), ExpectedVersion::Exact(7));
        assert_eq!(expected_version(None).unwrap(), ExpectedVersion::Any);
        assert_eq!(parse("7.0").unwrap(), ExpectedVersion::Exact(7));
        for bad in ["-1", "1.5", "-2.0", "\"7\"", "\"none\"", "[]", "{}"] {
            let problem = parse(bad).unwrap_err();
            assert_eq!(problem.field.as_deref(), Some("expected_version"), "{bad}");
        }
    }
}
