//! What a session keeps: its subscriptions, and for a persistent session where it lives.
//!
//! A persistent session is stored as a document of the door's state (`doors/mqtt/{digest}`),
//! naming its client identifier, expiry and subscriptions, beside its queue
//! `mqtt.session.{digest}`, whose bindings carry the filters. The queue expires with the session
//! (`expires_ms`: unused that long, it is deleted with its messages), so a document whose queue
//! is gone is a session that expired.

use super::names::Filter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use wharf_codec_mqtt::{QoS, RetainHandling, SubscriptionId, SubscriptionOptions};
use wharf_engine::{
    broker::RETAINED_COPY_HEADER,
    queue::{QueueOptions, LEASE_MS_MAX},
    Engine, EngineError,
};
use wharf_model::message::Message;

/// The door's name in the engine's door state.
pub const DOOR: &str = "mqtt";
/// A session expiry of 0xFFFFFFFF seconds never ends (MQTT 5.0 section 3.1.2.11.2).
pub const NEVER: u32 = u32::MAX;

/// One subscription as the session keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The filter as the client sent it (with `$share/{group}/` when shared).
    pub filter: String,
    pub qos: u8,
    #[serde(default)]
    pub no_local: bool,
    #[serde(default)]
    pub retain_as_published: bool,
    #[serde(default)]
    pub id: Option<u32>,
    /// The binding that routes to the session's queue (persistent, not shared).
    #[serde(default)]
    pub binding: Option<String>,
    /// Retain Handling 2: the retained copies are not sent.
    #[serde(default)]
    pub skip_retained: bool,
}

impl Stored {
    pub fn new(filter: &str, options: &SubscriptionOptions, id: Option<SubscriptionId>) -> Stored {
        Stored {
            filter: filter.to_string(),
            qos: options.qos.level(),
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            id: id.map(SubscriptionId::get),
            binding: None,
            skip_retained: options.retain_handling == RetainHandling::DoNotSend,
        }
    }

    pub fn qos(&self) -> QoS {
        QoS::try_from(self.qos).unwrap_or(QoS::AtLeastOnce)
    }

    pub fn subscription_id(&self) -> Option<SubscriptionId> {
        self.id.and_then(SubscriptionId::new)
    }

    pub fn parsed(&self) -> Option<Filter> {
        Filter::parse(&self.filter).ok()
    }
}

/// A persistent session's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub client_id: String,
    /// Seconds; [`NEVER`] for none.
    pub expiry_s: u32,
    pub subscriptions: Vec<Stored>,
}

/// The digest that names a client's session queue and document.
pub fn digest(client_id: &str) -> String {
    let hash = Sha256::digest(client_id.as_bytes());
    hash[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub fn queue_of(client_id: &str) -> String {
    format!("mqtt.session.{}", digest(client_id))
}

/// The queue of shared subscription `filter` of `group`.
pub fn shared_queue(group: &str, filter: &str) -> String {
    format!("mqtt.share.{}", digest(&format!("{group}\0{filter}")))
}

/// Options of a session queue that expires `expiry_s` after its client left: leases as long
/// as they go (a delivery waits for its client's PUBACK, and returns when the client leaves),
/// no dead letters, no dedup (a topic's message reaches the queue once).
pub fn queue_options(expiry_s: u32) -> QueueOptions {
    QueueOptions {
        lease_ms: LEASE_MS_MAX,
        dedup_window_ms: 0,
        retry_backoff_ms: 0,
        expires_ms: (expiry_s != NEVER).then(|| u64::from(expiry_s.max(1)) * 1000),
        ..QueueOptions::default()
    }
}

/// Options of a shared subscription's queue: as a session's, and kept while unused for a day.
pub fn shared_queue_options() -> QueueOptions {
    queue_options(24 * 60 * 60)
}

/// The stored session of `client_id`, if there is one whose queue still exists.
pub fn load(engine: &Engine, client_id: &str) -> Option<Document> {
    let value = engine.door_state_get(DOOR, &digest(client_id))?;
    let document = serde_json::from_value::<Document>(value).ok()?;
    (document.client_id == client_id && engine.queue_info(&queue_of(client_id)).is_ok())
        .then_some(document)
}

/// Stores `document` (before it returns).
pub async fn store(engine: &Engine, document: &Document) -> Result<(), EngineError> {
    let value = serde_json::to_value(document).map_err(|_| EngineError::Internal {
        operation: "encode an MQTT session",
    })?;
    let key = digest(&document.client_id);
    engine.put_door_state(DOOR, &key, Some(value)).await
}

/// Ends the stored session of `client_id`: its document and its queue (bindings go with it).
pub async fn discard(engine: &Engine, client_id: &str) -> Result<(), EngineError> {
    match engine.delete_queue(&queue_of(client_id)).await {
        Ok(()) | Err(EngineError::QueueNotFound { .. }) => {}
        Err(error) => return Err(error),
    }
    engine.put_door_state(DOOR, &digest(client_id), None).await
}

/// Makes (or keeps) the queue of a persistent session.
pub async fn ensure_queue(
    engine: &Engine,
    client_id: &str,
    expiry_s: u32,
) -> Result<(), EngineError> {
    engine
        .put_queue(&queue_of(client_id), queue_options(expiry_s))
        .await
        .map(|_| ())
}

/// When a new subscription gets the retained messages it matches.
pub fn sends_retained(handling: RetainHandling, existed: bool) -> bool {
    match handling {
        RetainHandling::SendAtSubscribe => true,
        RetainHandling::SendAtSubscribeIfNew => !existed,
        RetainHandling::DoNotSend => false,
    }
}

/// How long a will waits: its delay, but no longer than the session lasts.
pub fn will_delay(delay_s: u32, session_expiry_s: u32) -> Duration {
    Duration::from_secs(u64::from(delay_s.min(session_expiry_s)))
}

/// Whether `message`, found in a session's queue, is a retained message that making a binding
/// copied there (the engine marks those copies): it goes out with RETAIN set, or not at all
/// under Retain Handling 2.
pub fn copied_retained(message: &Message) -> bool {
    message.headers.contains_key(RETAINED_COPY_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_digests_of_the_client_identifier() {
        assert_eq!(digest("a").len(), 32);
        assert_ne!(queue_of("a"), queue_of("b"));
        assert!(queue_of("a/b c").starts_with("mqtt.session."));
        assert_ne!(shared_queue("g", "a/b"), shared_queue("g/a", "b"));
    }

    #[test]
    fn a_session_queue_expires_with_the_session() {
        assert_eq!(queue_options(NEVER).expires_ms, None);
        assert_eq!(queue_options(60).expires_ms, Some(60_000));
        assert_eq!(will_delay(30, 10), Duration::from_secs(10));
        assert!(!sends_retained(RetainHandling::SendAtSubscribeIfNew, true));
        assert!(sends_retained(RetainHandling::SendAtSubscribeIfNew, false));
    }
}
