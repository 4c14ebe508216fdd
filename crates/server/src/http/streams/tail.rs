//! A partition's records as Server-Sent Events: `GET /v1/streams/{name}/partitions/{p}/tail`.
//!
//! Each event is one record (`id:` its offset, `data:` the fetch shape of a record). The tail
//! reads from its offset as a fetch would, then waits for new records; a client that
//! reconnects with `Last-Event-ID` resumes after the last offset it received, so no record is
//! missed or repeated while the partition keeps it. A comment line every 15 s keeps idle
//! connections open through proxies.

use super::wire::{RecordBody, TailQuery};
use crate::{
    http::{
        extract::{Path, Query, ResumeAfter},
        AppState, Problem,
    },
    readiness::Readiness,
};
use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::stream::{self, Stream};
use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};
use wharf_engine::{
    broker::{FetchRequest, OffsetAt},
    Engine,
};
use wharf_model::record_batch::Record;

const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Records read per fetch, and how long each waits at the end before looking again.
const TAIL_RECORDS: usize = 500;
const TAIL_BYTES: usize = 1 << 20;
const TAIL_WAIT: Duration = Duration::from_secs(10);

#[utoipa::path(
    get,
    path = "/v1/streams/{name}/partitions/{partition}/tail",
    tag = "streams",
    params(("name" = String, Path, description = "Stream name"), ("partition" = u32, Path, description = "Partition number, from 0"), TailQuery),
    responses(
        (status = 200, description = "text/event-stream: `event: record`, `id:` the record's offset, `data:` the record as JSON (the fetch shape)", body = RecordBody, content_type = "text/event-stream"),
        (status = 400, description = "A `Last-Event-ID` this stream did not send (not an offset, or the largest number)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream or partition", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`offset_out_of_range`: the offset is below what retention kept, or past the end", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn tail(
    State(state): State<AppState>,
    Path((name, partition)): Path<(String, u32)>,
    Query(query): Query<TailQuery>,
    ResumeAfter(resume): ResumeAfter,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let offset = match resume.or(query.offset) {
        Some(offset) => offset,
        None => {
            state
                .engine
                .offset_at(&name, partition, OffsetAt::Latest)
                .await?
        }
    };
    // Checked now, so a bad offset is a status rather than an empty stream.
    let first = FetchRequest {
        offset,
        max_records: TAIL_RECORDS,
        max_bytes: TAIL_BYTES,
        wait: Duration::ZERO,
    };
    let fetched = state.engine.fetch(&name, partition, first).await?;
    let tail = Tail {
        engine: state.engine.clone(),
        readiness: state.readiness.clone(),
        stream: name,
        partition,
        offset: fetched.next_offset,
        pending: fetched.records.into(),
    };
    let events = stream::unfold(tail, |mut tail| async move {
        let record = tail.next_record().await?;
        Some((Ok(record_event(record)), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

struct Tail {
    engine: Engine,
    readiness: Arc<Readiness>,
    stream: String,
    partition: u32,
    /// Where the next fetch starts.
    offset: u64,
    pending: VecDeque<Record>,
}

impl Tail {
    /// The next record; `None` ends the stream (shutdown, the stream gone, a read failed).
    async fn next_record(&mut self) -> Option<Record> {
        // Ends: each turn returns a record, or waits at most TAIL_WAIT, and a shutdown or an
        // error ends the stream.
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(record);
            }
            if self.readiness.is_shutting_down() {
                return None;
            }
            let request = FetchRequest {
                offset: self.offset,
                max_records: TAIL_RECORDS,
                max_bytes: TAIL_BYTES,
                wait: TAIL_WAIT,
            };
            let fetched = tokio::select! {
                biased;
                () = self.readiness.shutdown_begun() => return None,
                fetched = self.engine.fetch(&self.stream, self.partition, request) => fetched,
            };
            match fetched {
                Ok(fetched) => {
                    self.offset = fetched.next_offset;
                    self.pending.extend(fetched.records);
                }
                Err(error) => {
                    // Mid-stream there is no status left to send: end it, the client resumes.
                    tracing::info!(stream = %self.stream, partition = self.partition, %error, "ending a stream tail");
                    return None;
                }
            }
        }
    }
}

fn record_event(record: Record) -> Event {
    let id = record.offset.to_string();
    let data = serde_json::to_string(&RecordBody::from(record)).expect("a record serializes");
    Event::default().event("record").id(id).data(data)
}
