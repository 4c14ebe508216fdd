//! Reading the event store: a stream by its versions through the index, `$all` by position
//! straight from the log, and waiting at the end of `$all` for what comes next.

use super::EventStoreState;
use crate::{
    error::EngineError,
    eventstore::{
        index::Slice,
        record::{self, EventId, StoredRecord},
        EventStoreError,
    },
};
use bytes::Bytes;
use wharf_storage::Offset;

/// Records `$all` reads scan in one call at most, matching or not.
const SCAN_RECORDS_MAX: usize = 4_096;
/// Bytes `$all` reads scan in one call at most.
const SCAN_BYTES_MAX: usize = 4 << 20;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub id: EventId,
    pub event_type: String,
    pub stream: String,
    pub version: u64,
    pub position: u64,
    pub time_ms: u64,
    /// JSON text when `data_is_json`, bytes otherwise.
    pub data: Bytes,
    pub data_is_json: bool,
    /// JSON text of an object.
    pub metadata: Bytes,
    /// The whole record as stored.
    pub record: Bytes,
}

impl RecordedEvent {
    /// The event stored at `position` as `payload`; `None` for the log's other records.
    pub(crate) fn decode(position: u64, payload: &Bytes) -> Result<Option<Self>, EventStoreError> {
        let StoredRecord::Event {
            header,
            metadata,
            data,
        } = record::decode(position, payload)?
        else {
            return Ok(None);
        };
        Ok(Some(RecordedEvent {
            id: header.id,
            event_type: header.event_type.to_string(),
            stream: header.stream.to_string(),
            version: header.version,
            position,
            time_ms: header.time_ms,
            data: payload.slice_ref(data),
            data_is_json: header.data_is_json,
            metadata: payload.slice_ref(metadata),
            record: payload.clone(),
        }))
    }
}

/// Which events of `$all` a read or subscription wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub type_prefix: Option<String>,
    pub stream_prefix: Option<String>,
    /// Exactly this stream.
    pub stream: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        let prefix = |prefix: &Option<String>, value: &str| {
            prefix.as_deref().is_none_or(|p| value.starts_with(p))
        };
        prefix(&self.type_prefix, &event.event_type)
            && prefix(&self.stream_prefix, &event.stream)
            && self.stream.as_deref().is_none_or(|s| s == event.stream)
    }
}

/// A page of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvents {
    pub events: Vec<RecordedEvent>,
    /// The `from` of the next page, when more is readable now.
    pub next: Option<u64>,
    /// The stream's last version.
    pub current: Option<u64>,
}

/// A page of `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllEvents {
    pub events: Vec<RecordedEvent>,
    /// Where the next read continues: past everything scanned, matching or not.
    pub next: u64,
}

impl EventStoreState {
    /// The events at the positions of `slice`, in its order, without those older than
    /// `max_age_ms`.
    pub(crate) async fn events_of(
        &self,
        slice: Slice,
        max_age_ms: Option<u64>,
    ) -> Result<StreamEvents, EngineError> {
        let positions: Vec<Offset> = slice.entries.iter().map(|e| Offset(e.1)).collect();
        let records = self.log.read_many(&positions).await?;
        let oldest = max_age_ms.map(|age| self.clock.now().saturating_sub(age));
        let mut events = Vec::with_capacity(records.len());
        for (record, position) in records.into_iter().zip(positions) {
            let Some(record) = record else {
                let problem = "an indexed event is not readable".to_string();
                let position = position.0;
                return Err(EventStoreError::Damaged { position, problem }.into());
            };
            let event = RecordedEvent::decode(position.0, &record.payload)?;
            let event = event.ok_or_else(|| EventStoreError::Damaged {
                position: position.0,
                problem: "an indexed position holds no event".to_string(),
            })?;
            if oldest.is_none_or(|oldest| event.time_ms >= oldest) {
                events.push(event);
            }
        }
        Ok(StreamEvents {
            events,
            next: slice.next,
            current: slice.current,
        })
    }

    /// Up to `limit` events of `$all` from position `from` that pass `filter`.
    pub(crate) async fn read_all(
        &self,
        from: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<AllEvents, EngineError> {
        let mut at = from.max(self.log.start_offset().0);
        let mut events = Vec::new();
        let mut scanned = 0;
        while events.len() < limit && scanned < SCAN_RECORDS_MAX {
            let batch = self
                .log
                .read_batch(Offset(at), SCAN_RECORDS_MAX - scanned, SCAN_BYTES_MAX)
                .await?;
            let Some(last) = batch.last() else { break };
            let end = last.offset.0 + 1;
            scanned += batch.len();
            for record in batch {
                let position = record.offset.0;
                at = position + 1;
                let Some(event) = RecordedEvent::decode(position, &record.payload)? else {
                    continue;
                };
                if filter.matches(&event) {
                    events.push(event);
                    if events.len() == limit {
                        break;
                    }
                }
            }
            if events.len() == limit || at < end {
                break;
            }
        }
        Ok(AllEvents { events, next: at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstore::record::{encode_event, EventHeader};

    #[test]
    fn filters_match_prefixes_and_streams() {
        let header = EventHeader {
            version: 0,
            time_ms: 0,
            id: EventId([0; 16]),
            stream: "order-1",
            event_type: "OrderPaid",
            data_is_json: true,
        };
        let payload = encode_event(&header, b"{}", b"{}");
        let event = RecordedEvent::decode(3, &payload).unwrap().unwrap();
        assert_eq!(event.position, 3);
        assert_eq!(&event.data[..], b"{}");
        let filter = |t: Option<&str>, s: Option<&str>, exact: Option<&str>| EventFilter {
            type_prefix: t.map(String::from),
            stream_prefix: s.map(String::from),
            stream: exact.map(String::from),
        };
        assert!(filter(None, None, None).matches(&event));
        assert!(filter(Some("Order"), Some("order-"), Some("order-1")).matches(&event));
        assert!(!filter(Some("Paid"), None, None).matches(&event));
        assert!(!filter(None, Some("cart-"), None).matches(&event));
        assert!(!filter(None, None, Some("order-10")).matches(&event));
    }
}
