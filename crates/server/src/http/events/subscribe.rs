//! Catch-up subscriptions as Server-Sent Events: `GET /v1/events/subscribe`.
//!
//! A subscription reads `$all` from its start position in order, filtered to one stream or by
//! prefixes, then waits at the end for what comes next. Catching up and following live are
//! the same read of the same log, so the switch can neither skip nor repeat an event. Each
//! event is `event: event`, `id:` its position, `data:` the event as JSON (the read shape); a
//! client that reconnects with `Last-Event-ID` resumes after that position. A comment line
//! every 15 s keeps idle connections open through proxies.

use super::wire::{EventBody, SubscribeQuery};
use crate::{
    http::{
        extract::{Query, ResumeAfter},
        AppState, Problem, ProblemCode,
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
    broker::eventstore::{CatchUpFrom, EventFilter, RecordedEvent},
    eventstore::{check_prefix, check_stream_id},
    Engine,
};

const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Events read from `$all` at a time.
const SUBSCRIBE_BATCH: usize = 500;

#[utoipa::path(
    get,
    path = "/v1/events/subscribe",
    tag = "events",
    params(SubscribeQuery),
    responses(
        (status = 200, description = "text/event-stream: `event: event`, `id:` the event's position, `data:` the event as JSON", body = EventBody, content_type = "text/event-stream"),
        (status = 400, description = "Bad stream id, prefix or `from`, or a `Last-Event-ID` this stream did not send", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Query(query): Query<SubscribeQuery>,
    ResumeAfter(resume): ResumeAfter,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    for (field, value) in [
        ("stream", &query.stream),
        ("type_prefix", &query.type_prefix),
        ("stream_prefix", &query.stream_prefix),
    ] {
        if let Some(value) = value {
            check_prefix(field, value).map_err(wharf_engine::error::EngineError::from)?;
        }
    }
    // A system projection's events keep their own stream ids: subscribe by prefix instead.
    if let Some(stream) = &query.stream {
        check_stream_id("stream", stream).map_err(wharf_engine::error::EngineError::from)?;
    }
    let position = match resume {
        Some(position) => position,
        None => start_position(&state.engine, &query)?,
    };
    let filter = EventFilter {
        type_prefix: query.type_prefix,
        stream_prefix: query.stream_prefix,
        stream: query.stream,
    };
    let follower = Follower {
        engine: state.engine.clone(),
        readiness: state.readiness.clone(),
        filter,
        position,
        pending: VecDeque::new(),
    };
    let events = stream::unfold(follower, |mut follower| async move {
        let event = follower.next_event().await?;
        Some((Ok(sse_event(event)), follower))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

/// The position of `$all` the subscription starts reading at.
fn start_position(engine: &Engine, query: &SubscribeQuery) -> Result<u64, Problem> {
    let from = match query.from.as_deref() {
        None | Some("start") => CatchUpFrom::Start,
        Some("end") => CatchUpFrom::End,
        Some(number) => CatchUpFrom::At(number.parse().map_err(|_| {
            let detail = "give start, end, or a number (a version with stream, else a position)";
            Problem::new(ProblemCode::InvalidField)
                .with_field("from")
                .with_detail(detail)
        })?),
    };
    Ok(engine.catch_up_position(query.stream.as_deref(), from))
}

struct Follower {
    engine: Engine,
    readiness: Arc<Readiness>,
    filter: EventFilter,
    /// Where the next read of `$all` starts.
    position: u64,
    pending: VecDeque<RecordedEvent>,
}

impl Follower {
    /// The next event; `None` ends the stream (shutdown, a read failed).
    async fn next_event(&mut self) -> Option<RecordedEvent> {
        // Ends: each turn returns an event, moves the position, or waits for the log to grow,
        // and shutdown or an error ends the stream.
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.readiness.is_shutting_down() {
                return None;
            }
            let page = (self.engine)
                .read_all_events(self.position, SUBSCRIBE_BATCH, &self.filter)
                .await;
            match page {
                Ok(page) if page.next > self.position => {
                    self.position = page.next;
                    self.pending.extend(page.events);
                }
                Ok(_) => {
                    let grown = tokio::select! {
                        biased;
                        () = self.readiness.shutdown_begun() => false,
                        grown = self.engine.wait_for_events(self.position) => grown,
                    };
                    if !grown {
                        return None;
                    }
                }
                Err(error) => {
                    tracing::info!(%error, "ending an event subscription");
                    return None;
                }
            }
        }
    }
}

fn sse_event(event: RecordedEvent) -> Event {
    let id = event.position.to_string();
    let data = serde_json::to_string(&EventBody::from(event)).expect("an event serializes");
    Event::default().event("event").id(id).data(data)
}
