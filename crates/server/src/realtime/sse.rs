//! One event stream of `/v1/sse`: the catch-up a resume found, then what the hub queues.
//!
//! Events: `message` (the same object as a WebSocket `message` frame, with the message id as
//! the event id, which a browser's `EventSource` sends back as `Last-Event-ID` when it
//! reconnects), `gap` (a resume found the history too short), `dropped`, `unsubscribed`, and
//! `error` (the stream's buffer filled; the stream ends). Keep-alive comments come from the
//! handler.

use super::{history::Entry, session::Session, Outgoing};
use crate::{
    http::{Problem, ProblemCode},
    readiness::Readiness,
};
use axum::response::sse::Event;
use futures_util::stream::{self, Stream};
use std::{collections::VecDeque, convert::Infallible, sync::Arc};
use tokio::sync::mpsc;

/// An event to send first: a message of the catch-up, or a gap.
pub enum Early {
    Message(Arc<Entry>),
    Gap { topic: String, last_id: String },
}

struct StreamState {
    early: VecDeque<Early>,
    session: Session,
    outgoing: mpsc::Receiver<Outgoing>,
    readiness: Arc<Readiness>,
    dropped_told: u64,
    /// An `error` event was sent: the stream ends after it.
    over: bool,
}

/// The stream's events until the client goes away, the buffer overflows or the server shuts
/// down.
pub fn events(
    session: Session,
    outgoing: mpsc::Receiver<Outgoing>,
    early: Vec<Early>,
    readiness: Arc<Readiness>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = StreamState {
        early: early.into(),
        session,
        outgoing,
        readiness,
        dropped_told: 0,
        over: false,
    };
    stream::unfold(state, |mut state| async move {
        let event = next_event(&mut state).await?;
        Some((Ok(event), state))
    })
}

async fn next_event(state: &mut StreamState) -> Option<Event> {
    if state.over {
        return None;
    }
    if let Some(early) = state.early.pop_front() {
        return Some(match early {
            Early::Message(entry) => message_event(&entry),
            Early::Gap { topic, last_id } => {
                let data = serde_json::json!({"op": "gap", "topic": topic, "last_id": last_id});
                Event::default().event("gap").data(data.to_string())
            }
        });
    }
    let dropped = state.session.outbox().dropped();
    if dropped != state.dropped_told {
        state.dropped_told = dropped;
        let data = serde_json::json!({"op": "dropped", "dropped": dropped});
        return Some(Event::default().event("dropped").data(data.to_string()));
    }
    let outbox = state.session.outbox().clone();
    tokio::select! {
        biased;
        () = state.readiness.shutdown_begun() => None,
        () = outbox.overflow() => {
            state.over = true;
            let problem = Problem::new(ProblemCode::LimitReached).with_detail(
                "this stream's buffer filled: the client reads too slowly; it reconnects and \
                 resumes with Last-Event-ID",
            );
            let data = super::frame::error(None, &problem);
            Some(Event::default().event("error").data(data))
        }
        item = state.outgoing.recv() => match item? {
            Outgoing::Message(entry) => Some(message_event(&entry)),
            Outgoing::Frame(text) => Some(Event::default().event(frame_op(&text)).data(text.as_str())),
        },
    }
}

fn message_event(entry: &Entry) -> Event {
    (Event::default().event("message"))
        .id(entry.message.id.as_str())
        .data(entry.frame().as_str())
}

/// The `op` of a frame, as its event name.
fn frame_op(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| value["op"].as_str().map(str::to_string))
        .unwrap_or_else(|| "frame".to_string())
}
