//! The MQTT 3.1.1 and 5.0 door: devices and apps connect with any MQTT client and meet HTTP
//! and AMQP clients on the same topic. See docs/doors/mqtt.md for the mapping.
//!
//! - `names`: MQTT topic names and filters as routing keys and patterns of the door's topic;
//! - `convert`: PUBLISH to and from the engine's messages;
//! - `session`: what a client's session keeps, and where persistent ones are stored;
//! - `connection`: one connection, CONNECT to the end, and its will.
//!
//! A clean session's subscriptions are live subscriptions of the topic (nothing on disk). A
//! persistent session (3.1.1 clean session 0, 5.0 session expiry over 0) is a durable queue
//! bound to the topic once per filter, consumed while the client is connected through a push
//! consumer whose credit is the client's Receive Maximum; it expires with the queue's
//! `expires_ms`. A shared subscription `$share/{group}/{filter}` is a durable queue too, with
//! one consumer per subscriber.

mod connection;
mod convert;
mod names;
mod session;
pub mod websocket;

pub use crate::door::Listeners;
use crate::{connections::Connections, door::Admission, readiness::Readiness, tls::Transport};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::sync::Notify;
use wharf_engine::{
    topic::{TopicKind, TopicOptions},
    Engine,
};

/// The door's settings (`[mqtt]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Wharf topic MQTT topics live on.
    pub topic: String,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What every connection of the door shares.
pub struct Door {
    pub(crate) engine: Engine,
    pub(crate) settings: Settings,
    pub(crate) listed: Arc<Connections>,
    /// The connection of each connected client identifier, to take a session over.
    pub(crate) clients: Clients,
    /// Connections end (5.0: DISCONNECT 0x8B) when the server's shutdown begins.
    pub(crate) readiness: Arc<Readiness>,
    /// Wills waiting for their delay, by client id.
    pub(crate) wills: Arc<Wills>,
}

/// Serves the MQTT door on `listeners` until the task is aborted.
pub async fn serve(listeners: Listeners, door: Arc<Door>) {
    door.ensure_topic().await;
    let serve = move |transport: Transport, peer: SocketAddr, admission: Admission| {
        tokio::spawn(connection::serve(transport, door.clone(), peer, admission));
    };
    listeners.serve(serve).await;
}

/// The door's shared state. Its topic is made when the door starts listening, or at the first
/// CONNECT (over WebSocket with the MQTT port off), not before: a server that no MQTT client
/// uses has no `mqtt` topic.
pub fn open(
    engine: Engine,
    settings: Settings,
    connections: Arc<Connections>,
    readiness: Arc<Readiness>,
) -> Arc<Door> {
    Arc::new(Door {
        engine,
        settings,
        listed: connections,
        clients: Clients::default(),
        readiness,
        wills: Arc::default(),
    })
}

impl Door {
    /// Makes the door's topic when it does not exist (a plain `topic` kind topic).
    pub(crate) async fn ensure_topic(&self) {
        let topic = &self.settings.topic;
        self.engine.keep_topic(topic, "MQTT");
        if self.engine.topic_info(topic).is_ok() {
            return;
        }
        let options = TopicOptions {
            kind: TopicKind::Topic,
            ..TopicOptions::default()
        };
        if let Err(error) = self.engine.put_topic(topic, options).await {
            tracing::warn!(%error, topic, "making the MQTT topic failed");
        }
    }
}

/// Delayed wills, one per client id at most.
#[derive(Default)]
pub(crate) struct Wills {
    by_id: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Wills {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::AbortHandle>> {
        // Plain inserts and removes: whole even if a holder panicked.
        self.by_id
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Makes `will` the waiting will of `id`, cancelling the one before.
    pub fn replace(&self, id: &str, will: tokio::task::AbortHandle) {
        if let Some(earlier) = self.map().insert(id.to_string(), will) {
            earlier.abort();
        }
    }

    /// The client is back before its will's delay: the will is not sent [MQTT-3.1.3-9].
    pub fn cancel(&self, id: &str) {
        if let Some(waiting) = self.map().remove(id) {
            waiting.abort();
        }
    }

    /// The will of `id` run by task `task` is sent: it leaves the list, unless a newer will
    /// of the same id took its place meanwhile. So the list holds only waiting wills, and
    /// client ids that never come back leave nothing behind.
    pub fn sent(&self, id: &str, task: tokio::task::Id) {
        let mut map = self.map();
        if map.get(id).is_some_and(|will| will.id() == task) {
            map.remove(id);
        }
    }
}

/// Connected clients by client identifier.
#[derive(Default)]
pub(crate) struct Clients {
    by_id: Mutex<HashMap<String, Client>>,
}

/// One connected client: how to ask its connection to end, and how to wait until it has.
#[derive(Clone)]
pub(crate) struct Client {
    /// Tells the connection which one this is, so that it removes only itself.
    pub serial: u64,
    pub kick: Arc<Notify>,
    /// Held by the connection until it has let go of its session.
    pub held: Arc<tokio::sync::Mutex<()>>,
}

impl Clients {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        // Plain inserts and removes: whole even if a holder panicked.
        self.by_id
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Makes `client` the connection of `id`; returns the one it replaces.
    pub fn claim(&self, id: &str, client: Client) -> Option<Client> {
        self.map().insert(id.to_string(), client)
    }

    /// Forgets `id` if `serial` still holds it.
    pub fn release(&self, id: &str, serial: u64) {
        let mut map = self.map();
        if map.get(id).is_some_and(|client| client.serial == serial) {
            map.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sent_will_leaves_the_list_but_not_a_newer_one_of_its_id() {
        let wills = Arc::new(Wills::default());
        let sent = |wills: &Arc<Wills>| {
            let wills = wills.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                wills.sent("device", tokio::task::id());
            })
        };
        let first = sent(&wills);
        wills.replace("device", first.abort_handle());
        first.await.unwrap();
        assert!(wills.map().is_empty(), "a sent will stays listed");

        // An older will that finishes after a newer one replaced it leaves the newer listed.
        let newer = tokio::spawn(std::future::pending::<()>());
        wills.replace("device", newer.abort_handle());
        let older_id = tokio::spawn(async { tokio::task::id() }).await.unwrap();
        wills.sent("device", older_id);
        assert_eq!(wills.map().len(), 1);
        wills.cancel("device");
        assert!(newer.await.unwrap_err().is_cancelled());
    }
}
