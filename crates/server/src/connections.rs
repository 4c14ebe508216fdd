//! The client connections of every door that keeps connections (AMQP today; MQTT and
//! WebSocket later): what `GET /v1/connections`, `wharf connection` and the dashboard show,
//! and the way an operator closes one.
//!
//! A door registers a connection once its handshake is done and gets a [`Registration`];
//! dropping it removes the entry, so no path out of a connection can leave a ghost behind.
//! The door reports structural changes only (a channel opened or closed, a consumer added or
//! cancelled, confirm mode): never a message. Registering and removing take the registry's
//! lock for one hash map operation; updates take the connection's own lock; a listing clones
//! the entries' handles under the registry's lock, then reads each entry under its own lock.
//! No code holds both, so there is no lock order to keep.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{SystemTime, UNIX_EPOCH},
};
use tokio::sync::Notify;
use wharf_engine::security::{Identity, Principal};

/// A connection's number: unique within the process, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ConnectionId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(ConnectionId)
    }
}

/// The door (protocol) a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Amqp,
    Mqtt,
}

/// What the client said of itself, when it did (AMQP: `connection.start-ok`'s
/// `client_properties`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientProperties {
    pub product: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
    /// The name the application gave the connection.
    pub connection_name: Option<String>,
}

/// A connection whose handshake is done, as its door registers it.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub door: Door,
    pub peer: SocketAddr,
    /// Who authenticated.
    pub identity: Identity,
    /// AMQP's virtual host, as the client named it.
    pub virtual_host: Option<String>,
    pub client: ClientProperties,
}

/// A consumer of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub tag: String,
    pub queue: String,
    /// Deliveries it may hold unsettled; 0: the engine's maximum.
    pub prefetch: u16,
    /// Deliveries are settled as they are sent.
    pub no_ack: bool,
}

/// A channel of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub number: u16,
    /// Publishes are confirmed (AMQP `confirm.select`).
    pub confirm: bool,
    /// By tag.
    pub consumers: Vec<ConsumerInfo>,
}

/// A snapshot of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub id: ConnectionId,
    pub door: Door,
    pub peer: SocketAddr,
    pub identity: Identity,
    pub virtual_host: Option<String>,
    pub client: ClientProperties,
    /// When the handshake finished, in ms since the Unix epoch.
    pub connected_at_ms: u64,
    /// By number.
    pub channels: Vec<ChannelInfo>,
}

impl ConnectionInfo {
    /// The user the connection acts for: the user that logged in, or the owner of the token;
    /// `None` for the anonymous caller and for tokens of no user.
    pub fn user(&self) -> Option<&str> {
        match &self.identity {
            Identity::User { name } => Some(name),
            Identity::Token { owner, .. } => owner.as_deref(),
            Identity::Anonymous | Identity::Browser { .. } => None,
        }
    }

    /// Whether `viewer` may see this connection (see [`visible`]).
    pub fn visible_to(&self, viewer: &Principal) -> bool {
        visible(&self.identity, viewer)
    }
}

/// Whether `viewer` may see a connection of `identity`: administrators see every one, others
/// those that act for the same user (or the same token, for a token of no user).
pub fn visible(identity: &Identity, viewer: &Principal) -> bool {
    viewer.is_admin() || (owner(identity).is_some() && owner(identity) == owner(&viewer.identity))
}

/// A page of [`Connections::list`].
#[derive(Debug, Clone)]
pub struct ConnectionPage {
    pub items: Vec<ConnectionInfo>,
    /// The last id of the page when more may follow.
    pub next: Option<ConnectionId>,
}

/// Every open connection of the process.
#[derive(Debug, Default)]
pub struct Connections {
    next_id: AtomicU64,
    entries: Mutex<HashMap<ConnectionId, Arc<Entry>>>,
    /// The server is stopping: closes asked from now on say so.
    stopping: std::sync::atomic::AtomicBool,
}

impl Connections {
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections::default())
    }

    /// Adds a connection; it stays listed until the returned registration drops.
    pub fn register(self: &Arc<Self>, new: NewConnection) -> Registration {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let connected_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            });
        let entry = Arc::new(Entry {
            id,
            new,
            connected_at_ms,
            channels: Mutex::default(),
            close: Notify::new(),
        });
        let replaced = self.entries().insert(id, entry.clone());
        assert!(replaced.is_none(), "connection id {id} given twice");
        Registration {
            entry,
            registry: self.clone(),
        }
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` connections, by id, after `after`, of those whose door and identity
    /// `keep` keeps (decided before a snapshot is taken, so a filter that keeps few of many
    /// connections copies only those).
    pub fn list(
        &self,
        after: Option<ConnectionId>,
        limit: usize,
        keep: impl Fn(Door, &Identity) -> bool,
    ) -> ConnectionPage {
        let mut handles: Vec<Arc<Entry>> = (self.entries().values())
            .filter(|entry| after.is_none_or(|after| entry.id > after))
            .cloned()
            .collect();
        handles.sort_unstable_by_key(|entry| entry.id);
        let mut items = Vec::new();
        let mut handles = handles.into_iter();
        for entry in handles.by_ref() {
            if keep(entry.new.door, &entry.new.identity) {
                items.push(entry.info());
                if items.len() == limit {
                    break;
                }
            }
        }
        let next = match handles.len() {
            0 => None,
            _ => items.last().map(|info| info.id),
        };
        ConnectionPage { items, next }
    }

    /// One connection.
    pub fn get(&self, id: ConnectionId) -> Option<ConnectionInfo> {
        let entry = self.entries().get(&id).cloned();
        entry.map(|entry| entry.info())
    }

    /// Asks the connection's door to close it; false when there is no such connection. The
    /// door closes it in its own time (AMQP: at its next turn of the loop) and then it leaves
    /// the list.
    pub fn close(&self, id: ConnectionId) -> bool {
        let entry = self.entries().get(&id).cloned();
        match entry {
            Some(entry) => {
                // A permit is stored if the door is not waiting right now.
                entry.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// The server is stopping: asks every door to close every connection, telling its client
    /// why (AMQP: `320 CONNECTION_FORCED`).
    pub fn close_all_for_shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let entries: Vec<Arc<Entry>> = self.entries().values().cloned().collect();
        for entry in entries {
            entry.close.notify_one();
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<ConnectionId, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's place in the registry: its door reports changes through it, and dropping
/// it removes the connection.
#[derive(Debug)]
pub struct Registration {
    entry: Arc<Entry>,
    registry: Arc<Connections>,
}

impl Registration {
    pub fn id(&self) -> ConnectionId {
        self.entry.id
    }

    pub fn channel_opened(&self, number: u16) {
        self.entry.channels().insert(
            number,
            ChannelInfo {
                number,
                confirm: false,
                consumers: Vec::new(),
            },
        );
    }

    /// The channel ended, with its consumers.
    pub fn channel_closed(&self, number: u16) {
        self.entry.channels().remove(&number);
    }

    pub fn confirm_selected(&self, channel: u16) {
        if let Some(state) = self.entry.channels().get_mut(&channel) {
            state.confirm = true;
        }
    }

    pub fn consumer_added(&self, channel: u16, consumer: ConsumerInfo) {
        if let Some(state) = self.entry.channels().get_mut(&channel) {
            let at = state
                .consumers
                .partition_point(|other| other.tag < consumer.tag);
            state.consumers.insert(at, consumer);
        }
    }

    /// The consumer was cancelled, by its client or because its queue went away.
    pub fn consumer_cancelled(&self, channel: u16, tag: &str) {
        if let Some(state) = self.entry.channels().get_mut(&channel) {
            state.consumers.retain(|consumer| consumer.tag != tag);
        }
    }

    /// Completes when an operator asked to close the connection ([`Connections::close`]), or
    /// the server is stopping ([`Registration::server_stopping`] tells which).
    pub async fn close_requested(&self) {
        self.entry.close.notified().await;
    }

    /// Whether the close asked is the server's shutdown rather than an operator's.
    pub fn server_stopping(&self) -> bool {
        self.registry.stopping.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.entries().remove(&self.entry.id);
    }
}

#[derive(Debug)]
struct Entry {
    id: ConnectionId,
    new: NewConnection,
    connected_at_ms: u64,
    channels: Mutex<BTreeMap<u16, ChannelInfo>>,
    close: Notify,
}

impl Entry {
    fn channels(&self) -> MutexGuard<'_, BTreeMap<u16, ChannelInfo>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn info(&self) -> ConnectionInfo {
        let NewConnection {
            door,
            peer,
            identity,
            virtual_host,
            client,
        } = self.new.clone();
        ConnectionInfo {
            id: self.id,
            door,
            peer,
            identity,
            virtual_host,
            client,
            connected_at_ms: self.connected_at_ms,
            channels: self.channels().values().cloned().collect(),
        }
    }
}

/// Whom a connection belongs to, for what non-administrators see: its user (a token counts as
/// the user it acts for), or the token itself when it has none.
fn owner(identity: &Identity) -> Option<(&'static str, &str)> {
    match identity {
        Identity::Anonymous => None,
        Identity::User { name } => Some(("user", name)),
        Identity::Token {
            owner: Some(user), ..
        } => Some(("user", user)),
        Identity::Token { id, .. } => Some(("token", id)),
        Identity::Browser { member } => Some(("browser", member)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_connection(user: &str) -> NewConnection {
        NewConnection {
            door: Door::Amqp,
            peer: "127.0.0.1:50000".parse().expect("address"),
            identity: Identity::User {
                name: user.to_string(),
            },
            virtual_host: Some("/".to_string()),
            client: ClientProperties {
                product: Some("pika".to_string()),
                ..ClientProperties::default()
            },
        }
    }

    fn consumer(tag: &str) -> ConsumerInfo {
        ConsumerInfo {
            tag: tag.to_string(),
            queue: "orders".to_string(),
            prefetch: 10,
            no_ack: false,
        }
    }

    #[test]
    fn a_registered_connection_is_listed_until_its_registration_drops() {
        let connections = Connections::new();
        let first = connections.register(new_connection("alice"));
        let second = connections.register(new_connection("bob"));
        assert_ne!(first.id(), second.id());
        let page = connections.list(None, 10, |_, _| true);
        let ids: Vec<ConnectionId> = page.items.iter().map(|info| info.id).collect();
        assert_eq!(ids, vec![first.id(), second.id()]);
        assert_eq!(page.next, None);
        assert_eq!(page.items[0].user(), Some("alice"));
        assert_eq!(page.items[0].client.product.as_deref(), Some("pika"));
        let gone = first.id();
        drop(first);
        assert!(connections.get(gone).is_none());
        assert_eq!(connections.len(), 1);
        drop(second);
        assert!(connections.is_empty());
    }

    #[test]
    fn channels_and_consumers_follow_the_doors_reports() {
        let connections = Connections::new();
        let registration = connections.register(new_connection("alice"));
        registration.channel_opened(2);
        registration.channel_opened(1);
        registration.confirm_selected(1);
        registration.consumer_added(1, consumer("b"));
        registration.consumer_added(1, consumer("a"));
        // A report for a channel that is not open changes nothing.
        registration.consumer_added(9, consumer("c"));
        let info = connections.get(registration.id()).expect("listed");
        let numbers: Vec<u16> = info.channels.iter().map(|c| c.number).collect();
        assert_eq!(numbers, vec![1, 2]);
        assert!(info.channels[0].confirm);
        assert!(!info.channels[1].confirm);
        let tags: Vec<&str> = (info.channels[0].consumers.iter())
            .map(|c| c.tag.as_str())
            .collect();
        assert_eq!(tags, vec!["a", "b"]);
        registration.consumer_cancelled(1, "a");
        registration.channel_closed(2);
        let info = connections.get(registration.id()).expect("listed");
        assert_eq!(info.channels.len(), 1);
        assert_eq!(info.channels[0].consumers, vec![consumer("b")]);
    }

    #[test]
    fn a_snapshot_does_not_change_with_the_connection() {
        let connections = Connections::new();
        let registration = connections.register(new_connection("alice"));
        registration.channel_opened(1);
        let before = connections.get(registration.id()).expect("listed");
        registration.channel_closed(1);
        assert_eq!(before.channels.len(), 1);
    }

    #[test]
    fn pages_follow_ids_and_the_filter() {
        let connections = Connections::new();
        let held: Vec<Registration> = ["a", "b", "a", "a", "b"]
            .into_iter()
            .map(|user| connections.register(new_connection(user)))
            .collect();
        let of_a = |_: Door, identity: &Identity| matches!(identity, Identity::User { name } if name == "a");
        let first = connections.list(None, 2, of_a);
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.next, Some(held[2].id()));
        let second = connections.list(first.next, 2, of_a);
        let ids: Vec<ConnectionId> = second.items.iter().map(|info| info.id).collect();
        assert_eq!(ids, vec![held[3].id()]);
        assert_eq!(second.next, None);
    }

    #[tokio::test]
    async fn close_wakes_the_door_even_when_it_was_not_waiting_yet() {
        let connections = Connections::new();
        let registration = connections.register(new_connection("alice"));
        assert!(connections.close(registration.id()));
        assert!(!connections.close(ConnectionId(u64::MAX)));
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            registration.close_requested(),
        )
        .await
        .expect("the request is kept until the door asks");
    }

    #[test]
    fn others_see_only_their_own_connections() {
        let connections = Connections::new();
        let registration = connections.register(new_connection("alice"));
        let info = connections.get(registration.id()).expect("listed");
        assert!(info.visible_to(&Principal::anonymous()), "an administrator");
        let mut anonymous = info.clone();
        anonymous.identity = Identity::Anonymous;
        assert_eq!(anonymous.user(), None);
    }
}
