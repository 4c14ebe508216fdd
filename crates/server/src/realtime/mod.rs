//! Real-time fan-out to browsers and apps: the hub behind `/v1/ws` and `/v1/sse`
//! (docs/realtime.md).
//!
//! A channel is a topic some client subscribed to. The hub takes each channel's messages
//! once, through one engine subscription of its own (the channel's keeper), keeps the newest
//! in the channel's [`history`], and hands each to the local subscribers that want it. A
//! keeper, its history and its subscriber list share one lock, so a client that resumes
//! gets the history and then the live messages with nothing missed or repeated between them.
//!
//! Each connection has one bounded [`Outbox`]. A keeper never waits on one: when a client's
//! outbox is full, the client is disconnected (or, by option, the messages it cannot take
//! are counted and dropped), so a slow client never slows the others.
//!
//! A keeper ends when its topic is deleted, when the server shuts down, or once its channel has
//! had no subscriber for the history's age: a client that reconnects within that time still
//! finds what it missed.

pub mod frame;
pub mod history;
pub mod metrics;
pub mod session;
pub mod sse;
pub mod token;
pub mod ws;

use axum::extract::ws::Utf8Bytes;
use history::{Entry, History, Limits, Resume};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::Duration,
};
use tokio::sync::{mpsc, Notify};
use wharf_engine::{
    broker::{
        json_body, FeedSubscription, Interested, LiveFeed, LiveInterest, LiveMessage, MissedCounter,
    },
    Engine, EngineError,
};
use wharf_model::pattern::Syntax;

/// Messages a keeper's own engine feed holds before it misses some: far more than a keeper,
/// which only copies pointers, ever lags.
const KEEPER_BUFFER: usize = 8_192;
/// When a subscription resumes from a time (an event stream of several topics resumes all of
/// them from one message id, seen in one topic), messages that reached the hub this long
/// before that time are sent again: order across topics is by arrival, and a repeat (same id)
/// is better than a hole.
const RESUME_MARGIN_MS: u64 = 100;
/// How often a keeper trims its history by age and checks whether its channel may end: a
/// thirtieth of the history's age, between 1 and 10 seconds, so that 100,000 channels wake
/// 10,000 times a second, not 100,000 (a subscribe trims the history itself before reading
/// it, so a resume never gets more than the age).
fn keeper_tick(age_ms: u64) -> Duration {
    Duration::from_millis(age_ms / 30).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// What a client does when its outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlowPolicy {
    /// Tell the client and close the connection (the default): it reconnects and resumes.
    #[default]
    Disconnect,
    /// Drop what does not fit and count it; the client is told how many it missed.
    Drop,
}

/// The hub's settings (`[realtime]` in the configuration file).
#[derive(Debug, Clone)]
pub struct Settings {
    pub history: Limits,
    /// Messages a connection's outbox holds.
    pub buffer_messages: usize,
    pub slow: SlowPolicy,
    /// Subscriptions (rooms included) one connection may hold.
    pub subscriptions_max: usize,
    /// Requests one connection may have waiting for replies.
    pub requests_max: usize,
    /// The key browser tokens are signed with; `None`: browser tokens are refused.
    pub token_secret: Option<Vec<u8>>,
    /// How often the server pings an idle WebSocket (and comments an idle event stream).
    pub ping_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            history: Limits {
                messages: 100,
                age_ms: 300_000,
                bytes: 1 << 20,
            },
            buffer_messages: 1_024,
            slow: SlowPolicy::Disconnect,
            subscriptions_max: 100,
            requests_max: 100,
            token_secret: None,
            ping_interval: Duration::from_secs(15),
        }
    }
}

/// What the hub sends a connection.
#[derive(Debug)]
pub enum Outgoing {
    /// A channel's message.
    Message(Arc<Entry>),
    /// Any other frame (presence, gap), JSON text.
    Frame(Utf8Bytes),
}

/// A connection's bounded queue of frames, which keepers fill without waiting.
#[derive(Debug)]
pub struct Outbox {
    sender: mpsc::Sender<Outgoing>,
    policy: SlowPolicy,
    /// Frames dropped under [`SlowPolicy::Drop`].
    dropped: AtomicU64,
    /// Set when the outbox filled under [`SlowPolicy::Disconnect`]; the connection ends.
    overflowed: AtomicBool,
    overflow: Notify,
}

impl Outbox {
    fn new(buffer: usize, policy: SlowPolicy) -> (Arc<Outbox>, mpsc::Receiver<Outgoing>) {
        let (sender, receiver) = mpsc::channel(buffer.max(1));
        let outbox = Outbox {
            sender,
            policy,
            dropped: AtomicU64::new(0),
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
        };
        (Arc::new(outbox), receiver)
    }

    /// Queues `item` if there is room; otherwise applies the slow-client policy.
    pub fn offer(&self, item: Outgoing) {
        match self.sender.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => match self.policy {
                SlowPolicy::Drop => {
                    self.dropped.fetch_add(1, Ordering::AcqRel);
                    metrics::dropped();
                }
                SlowPolicy::Disconnect => {
                    if !self.overflowed.swap(true, Ordering::AcqRel) {
                        metrics::slow_disconnect();
                    }
                    self.overflow.notify_one();
                }
            },
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Waits until the outbox overflows under [`SlowPolicy::Disconnect`].
    pub async fn overflow(&self) {
        if self.overflowed() {
            return;
        }
        self.overflow.notified().await;
    }
}

/// One connection's place in a channel.
#[derive(Debug)]
struct Member {
    outbox: Arc<Outbox>,
    /// Its subscriptions to the channel, by name.
    subs: Vec<(String, LiveInterest)>,
    /// Its name in the room, when it joined the channel as a room.
    presence: Option<String>,
}

#[derive(Debug)]
struct ChannelState {
    history: History,
    members: HashMap<u64, Member>,
    /// When the last member left (engine clock, ms); `None` while there are members.
    idle_since: Option<u64>,
    /// The keeper ended: the hub makes a new channel for the next subscriber.
    closed: bool,
}

#[derive(Debug)]
struct Channel {
    topic: Arc<str>,
    state: Mutex<ChannelState>,
}

/// The hub: channels by topic, and the connections' shared settings.
#[derive(Debug)]
pub struct Hub {
    engine: Engine,
    pub settings: Settings,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    next_connection: AtomicU64,
    /// Set when the server shuts down: keepers end, and no new channel starts.
    closing: tokio::sync::watch::Sender<bool>,
}

/// A subscription as a connection asks for it.
pub struct Subscribe<'a> {
    pub topic: &'a str,
    pub sub: &'a str,
    pub interested: Interested<'a>,
    /// Resume after this message id; see [`Resume`].
    pub last_id: Option<&'a str>,
    /// Resume from this time (ms) when `last_id` is in another channel (an event stream of
    /// several topics resumes all of them from one id).
    pub since_ms: Option<u64>,
}

/// What a subscription found in the history when it began.
pub enum CatchUp {
    /// Nothing was asked.
    None,
    /// The messages that followed the position, filtered by the subscription.
    After(Vec<Arc<Entry>>),
    /// The position is older than the history.
    Gap,
}

impl Hub {
    pub fn new(engine: Engine, settings: Settings) -> Arc<Hub> {
        Arc::new(Hub {
            engine,
            settings,
            channels: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Ends every keeper; called when the server begins to shut down.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A new connection's id and outbox.
    pub fn connect(&self, slow: SlowPolicy) -> (u64, Arc<Outbox>, mpsc::Receiver<Outgoing>) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (outbox, receiver) = Outbox::new(self.settings.buffer_messages, slow);
        metrics::connected();
        (id, outbox, receiver)
    }

    /// Channels with a keeper now.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().expect("channels lock").len()
    }

    /// Adds subscription `sub` of connection `connection` to the topic's channel, starting the
    /// channel if needed; returns what the history holds for its resume.
    pub fn subscribe(
        self: &Arc<Self>,
        connection: u64,
        outbox: &Arc<Outbox>,
        request: Subscribe<'_>,
    ) -> Result<CatchUp, EngineError> {
        let interest = LiveInterest::parse(request.interested)?;
        // Ends: a channel found closed was removed from the map by its keeper, so the next
        // turn finds none or a newer one.
        loop {
            let channel = self.channel(request.topic)?;
            let mut state = channel.state.lock().expect("channel lock");
            if state.closed {
                // Its keeper is removing it; remove it here too, so the next turn starts anew.
                drop(state);
                let mut channels = self.channels.lock().expect("channels lock");
                if (channels.get(request.topic)).is_some_and(|c| Arc::ptr_eq(c, &channel)) {
                    channels.remove(request.topic);
                }
                continue;
            }
            if request.last_id.is_some() || request.since_ms.is_some() {
                state.history.expire(self.engine.now());
            }
            let resume = match (request.last_id, request.since_ms) {
                (Some(id), _) => Some(state.history.after_id(id)),
                (None, Some(at)) => Some(state.history.since(at, RESUME_MARGIN_MS)),
                (None, None) => None,
            };
            let member = state.members.entry(connection).or_insert_with(|| Member {
                outbox: outbox.clone(),
                subs: Vec::new(),
                presence: None,
            });
            member.subs.retain(|(name, _)| name != request.sub);
            member
                .subs
                .push((request.sub.to_string(), interest.clone()));
            state.idle_since = None;
            return Ok(match resume {
                None => CatchUp::None,
                Some(Resume::Gap) => CatchUp::Gap,
                Some(Resume::After(entries)) => {
                    let wanted = entries.into_iter().filter(|e| wants(&interest, e));
                    CatchUp::After(wanted.collect())
                }
            });
        }
    }

    /// Where message `id` is in the histories of `topics`: the time it reached the hub.
    pub fn seen_at(&self, topics: &[String], id: &str) -> Option<(String, u64)> {
        let channels = self.channels.lock().expect("channels lock");
        topics.iter().find_map(|topic| {
            let channel = channels.get(topic)?;
            let state = channel.state.lock().expect("channel lock");
            let at = state.history.find(id)?.at_ms;
            Some((topic.clone(), at))
        })
    }

    /// Removes subscription `sub` (every one when `None`) of `connection` from `topic`.
    pub fn unsubscribe(&self, topic: &str, connection: u64, sub: Option<&str>) {
        let Some(channel) = self
            .channels
            .lock()
            .expect("channels lock")
            .get(topic)
            .cloned()
        else {
            return;
        };
        let left = {
            let mut state = channel.state.lock().expect("channel lock");
            let Some(member) = state.members.get_mut(&connection) else {
                return;
            };
            member
                .subs
                .retain(|(name, _)| sub.is_some_and(|s| s != name));
            if !member.subs.is_empty() {
                return;
            }
            let left = state.members.remove(&connection).and_then(|m| m.presence);
            if state.members.is_empty() {
                state.idle_since = Some(self.engine.now());
            }
            left
        };
        if let Some(member) = left {
            self.announce(&channel, "leave", &member);
        }
    }

    /// Marks `connection` present in the room `topic` (it must have subscribed to it) as
    /// `member`; others in the room are told. Returns the room's members.
    pub fn join(&self, topic: &str, connection: u64, member: &str) -> Vec<String> {
        let Some(channel) = self
            .channels
            .lock()
            .expect("channels lock")
            .get(topic)
            .cloned()
        else {
            return Vec::new();
        };
        {
            let mut state = channel.state.lock().expect("channel lock");
            if let Some(me) = state.members.get_mut(&connection) {
                me.presence = Some(member.to_string());
            }
        }
        self.announce(&channel, "join", member);
        self.members(topic)
    }

    /// Marks `connection` no longer present in room `topic`; others there are told.
    pub fn leave(&self, topic: &str, connection: u64) {
        let Some(channel) = self
            .channels
            .lock()
            .expect("channels lock")
            .get(topic)
            .cloned()
        else {
            return;
        };
        let left = {
            let mut state = channel.state.lock().expect("channel lock");
            (state.members.get_mut(&connection)).and_then(|me| me.presence.take())
        };
        if let Some(member) = left {
            self.announce(&channel, "leave", &member);
        }
    }

    /// The names present in room `topic`, sorted, each once.
    pub fn members(&self, topic: &str) -> Vec<String> {
        let Some(channel) = self
            .channels
            .lock()
            .expect("channels lock")
            .get(topic)
            .cloned()
        else {
            return Vec::new();
        };
        let state = channel.state.lock().expect("channel lock");
        let mut names: Vec<String> = (state.members.values())
            .filter_map(|m| m.presence.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Tells the room's present members that `member` joined or left.
    fn announce(&self, channel: &Channel, event: &str, member: &str) {
        let frame = serde_json::json!({
            "op": "presence",
            "room": &*channel.topic,
            "event": event,
            "member": member,
        });
        let frame = Utf8Bytes::from(frame.to_string());
        let state = channel.state.lock().expect("channel lock");
        for present in state.members.values().filter(|m| m.presence.is_some()) {
            present.outbox.offer(Outgoing::Frame(frame.clone()));
        }
    }

    /// The topic's channel, started when there is none.
    fn channel(self: &Arc<Self>, topic: &str) -> Result<Arc<Channel>, EngineError> {
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(channel) = channels.get(topic) {
            return Ok(channel.clone());
        }
        if *self.closing.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let (feed, messages) = LiveFeed::new(KEEPER_BUFFER);
        let every = Interested {
            pattern: "#",
            syntax: Syntax::Amqp,
            filter: None,
        };
        let missed = feed.missed_counter();
        let subscription = self.engine.subscribe_feed(topic, every, feed, 0)?;
        let channel = Arc::new(Channel {
            topic: Arc::from(topic),
            state: Mutex::new(ChannelState {
                history: History::new(self.settings.history, self.engine.now()),
                members: HashMap::new(),
                idle_since: Some(self.engine.now()),
                closed: false,
            }),
        });
        channels.insert(topic.to_string(), channel.clone());
        let keeper = Keeper {
            hub: Arc::downgrade(self),
            channel: channel.clone(),
            feed: missed,
            missed: 0,
        };
        tokio::spawn(keeper.run(subscription, messages, self.closing.subscribe()));
        metrics::channels_changed(channels.len());
        Ok(channel)
    }
}

fn wants(interest: &LiveInterest, entry: &Entry) -> bool {
    let body = (interest.reads_body())
        .then(|| json_body(&entry.message))
        .flatten();
    interest.wants(&entry.routing_key, &entry.message, body.as_ref())
}

/// The task that takes a channel's messages from the engine.
struct Keeper {
    hub: Weak<Hub>,
    channel: Arc<Channel>,
    /// How many messages the engine dropped on their way to the keeper.
    feed: MissedCounter,
    /// The feed's missed count last seen.
    missed: u64,
}

impl Keeper {
    async fn run(
        mut self,
        subscription: FeedSubscription,
        mut messages: mpsc::Receiver<LiveMessage>,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) {
        let age_ms = (self.hub.upgrade()).map_or(0, |hub| hub.settings.history.age_ms);
        let mut tick = tokio::time::interval(keeper_tick(age_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Ends: when the topic is deleted (the engine drops the feed's sender), when the hub
        // closes, when the hub is gone, or when the channel stayed idle past the history age.
        loop {
            tokio::select! {
                biased;
                _ = closing.wait_for(|closing| *closing) => break,
                live = messages.recv() => match live {
                    Some(live) => self.deliver(live),
                    None => break,
                },
                _ = tick.tick() => {
                    if self.expired() {
                        break;
                    }
                }
            }
        }
        drop(subscription);
        self.close();
    }

    fn deliver(&mut self, live: LiveMessage) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let now = hub.engine.now();
        let entry = Arc::new(Entry::new(
            self.channel.topic.clone(),
            live.routing_key,
            Arc::unwrap_or_clone(live.message),
            now,
        ));
        let mut state = self.channel.state.lock().expect("channel lock");
        let missed = self.feed.get();
        if missed != self.missed {
            // The engine dropped messages on their way here: a resume across them is a gap.
            self.missed = missed;
            state.history.break_at(now);
        }
        state.history.push(entry.clone());
        let mut body = None;
        for member in state.members.values() {
            let wanted = member.subs.iter().any(|(_, interest)| {
                if !interest.reads_body() {
                    return interest.wants(&entry.routing_key, &entry.message, None);
                }
                let body = body.get_or_insert_with(|| json_body(&entry.message));
                interest.wants(&entry.routing_key, &entry.message, body.as_ref())
            });
            if wanted {
                member.outbox.offer(Outgoing::Message(entry.clone()));
            }
        }
        metrics::fanned_out();
    }

    /// Whether the channel has had no member for the history's age.
    fn expired(&self) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return true;
        };
        let now = hub.engine.now();
        let mut state = self.channel.state.lock().expect("channel lock");
        state.history.expire(now);
        let age = hub.settings.history.age_ms;
        state
            .idle_since
            .is_some_and(|since| now.saturating_sub(since) >= age)
    }

    /// Removes the channel; members still in it are told their subscriptions ended.
    fn close(self) {
        let members = {
            let mut state = self.channel.state.lock().expect("channel lock");
            state.closed = true;
            std::mem::take(&mut state.members)
        };
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut channels = hub.channels.lock().expect("channels lock");
        if channels
            .get(&*self.channel.topic)
            .is_some_and(|current| Arc::ptr_eq(current, &self.channel))
        {
            channels.remove(&*self.channel.topic);
        }
        metrics::channels_changed(channels.len());
        drop(channels);
        for member in members.values() {
            for (sub, _) in &member.subs {
                let frame = serde_json::json!({
                    "op": "unsubscribed",
                    "sub": sub,
                    "topic": &*self.channel.topic,
                    "reason": "the topic was deleted or the server is shutting down",
                });
                member
                    .outbox
                    .offer(Outgoing::Frame(Utf8Bytes::from(frame.to_string())));
            }
        }
    }
}

#[cfg(test)]
mod tests;
