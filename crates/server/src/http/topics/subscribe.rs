//! Live subscriptions as Server-Sent Events: `GET /v1/topics/{name}/subscribe`.
//!
//! The engine's [`Subscription`] is the whole state: retained matches first, read from the
//! topic's log one batch at a time as the client takes them, then each published match.
//! Dropping the stream (the client went away, or the server shuts down) drops the
//! subscription, which unregisters it. Delivery is at most once: a client too slow to drain the
//! engine's buffer misses messages, as with any live subscriber.

use super::wire::SubscribeQuery;
use crate::{
    http::{
        extract::{Path, Query},
        queues::wire::{message_body, MessageBody},
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
use wharf_engine::broker::Subscription;
use wharf_model::message::Message;

/// A comment this often keeps proxies and load balancers from closing an idle stream (many
/// cut idle connections after 30 to 60 s).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Streams matching messages until the client disconnects.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}/subscribe",
    tag = "topics",
    params(("name" = String, Path, description = "Topic name"), SubscribeQuery),
    responses(
        (status = 200, description = "text/event-stream: `event: message`, `id:` the message id, `data:` the message as JSON (the queue receive shape without lease fields)", body = MessageBody, content_type = "text/event-stream"),
        (status = 400, description = "Bad pattern, syntax or filter; `field` names it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<SubscribeQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let subscription = state.engine.subscribe(
        &name,
        &query.pattern,
        query.syntax.unwrap_or_default(),
        query.filter.as_deref(),
    )?;
    let events = subscription_events(subscription, state.readiness.clone());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

struct SubscriptionState {
    /// The batch of retained messages being sent; the next is read once it is empty.
    batch: VecDeque<Message>,
    subscription: Subscription,
    readiness: Arc<Readiness>,
}

/// Retained messages, then live ones; ends when the server begins to shut down, so an open
/// stream never holds graceful shutdown.
fn subscription_events(
    subscription: Subscription,
    readiness: Arc<Readiness>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = SubscriptionState {
        batch: VecDeque::new(),
        subscription,
        readiness,
    };
    stream::unfold(state, |mut state| async move {
        let message = next_message(&mut state).await?;
        Some((Ok(message_event(message)), state))
    })
}

/// The next message to send: from the retained batch, the next retained batch, or live.
/// `None` ends the stream.
async fn next_message(state: &mut SubscriptionState) -> Option<Message> {
    // Ends: each turn sends a message, or reads the next retained batch; the walk over
    // retained messages ends, and then the loop is left for the live wait.
    loop {
        if let Some(message) = state.batch.pop_front() {
            return Some(message);
        }
        if state.readiness.is_shutting_down() {
            return None;
        }
        if state.subscription.retained_done() {
            break;
        }
        match state.subscription.next_retained().await {
            Ok(Some(batch)) => state.batch.extend(batch.into_iter().map(|(_, m)| m)),
            Ok(None) => break,
            Err(error) => {
                // Mid-stream there is no status left to send: end it, the client reconnects.
                tracing::warn!(%error, "reading retained messages failed; ending the stream");
                return None;
            }
        }
        // A batch may be empty (no key of it matched): let other tasks run between batches.
        tokio::task::yield_now().await;
    }
    tokio::select! {
        biased;
        () = state.readiness.shutdown_begun() => None,
        live = state.subscription.messages.recv() => live.map(|live| Arc::unwrap_or_clone(live.message)),
    }
}

fn message_event(message: Message) -> Event {
    let id = message.id.clone();
    let body = message_body(message);
    let data = serde_json::to_string(&body).expect("a message body serializes");
    Event::default().event("message").id(id).data(data)
}
