//! One MQTT connection: CONNECT (authentication, session takeover, the session restored or
//! begun), then packets both ways until DISCONNECT, an error, a keep-alive timeout, a takeover
//! or the server's shutdown; then the will, when the client did not say goodbye.
//!
//! The connection's task reads packets and answers them, and writes what its subscriptions
//! deliver. Publishes go to a task of their own ([`publisher`]), which stores what queued up
//! during a commit together, so a client with many QoS 1 publishes in flight gets group commit;
//! its PUBACKs (PUBRECs) go out once the messages are durable, in order.

use super::{
    convert,
    names::{self, Filter},
    session::{self, Document, Stored},
    Client, Door,
};
use crate::{
    connections::{ClientProperties, NewConnection, Registration},
    door::Admission,
};
use bytes::BytesMut;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    num::NonZeroU16,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::mpsc,
    task::JoinHandle,
    time::Instant,
};
use wharf_codec_mqtt::{
    decode, encode, Connack, Connect, Disconnect, Packet, PacketId, Properties, ProtocolVersion,
    Publish, PublishAck, QoS, ReasonCode, Utf8String,
};
use wharf_engine::{
    broker::{ConsumeRequest, Delivery, Interested, LiveFeed, LiveMessage, PublishMessage},
    security::{Action, Credentials, Principal, Resource, ResourceKind},
    Engine, EngineError,
};
use wharf_model::pattern::Syntax;

mod deliver;
mod publisher;
mod subscribe;

/// The largest packet the server takes (and tells 5.0 clients in CONNACK).
pub const PACKET_SIZE_MAX: u32 = 16 << 20;
/// QoS 1 and 2 publishes a client may have unacknowledged towards the server.
pub const RECEIVE_MAXIMUM: u16 = 1_024;
/// Topic aliases a 5.0 client may use towards the server.
pub const TOPIC_ALIAS_MAXIMUM: u16 = 64;
/// Most Topic Aliases the server sets towards one client: the first topics it sends, each
/// name kept once per connection.
const SERVER_ALIASES_MAX: u16 = 256;
/// The longest keep-alive a 5.0 client gets: one asking for none or more is told this one
/// (Server Keep Alive), so a connection whose peer vanished is found within 1.5 hours.
const SERVER_KEEP_ALIVE_MAX_S: u16 = 3_600;
/// Time from connecting to CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection waits for the one it takes a session over from to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);
/// Messages a clean session's live subscriptions may hold before they miss some (a client
/// that cannot keep up loses what does not fit, whatever its QoS: a clean session promises
/// nothing past its connection). Room is taken as messages come, so an idle connection holds
/// none of it.
const LIVE_BUFFER: usize = 32_768;
/// Live deliveries waiting for a packet identifier (the client's Receive Maximum is reached):
/// past either bound a clean session misses them. Queue deliveries wait whatever these say
/// (the consumer's credit bounds them, and they are not lost: they go back to the queue).
const WAITING_MAX: usize = 4_096;
const WAITING_BYTES_MAX: usize = 64 << 20;
/// Room made in the input buffer before a read: small, so an idle connection holds little;
/// it doubles while reads fill it (a busy publisher), up to the most.
const READ_CHUNK_MIN: usize = 512;
const READ_CHUNK_MAX: usize = 64 * 1024;
/// Output gathered from waiting deliveries before it is written; a buffer grown past it by a
/// burst is let go once written.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

static SERIALS: AtomicU64 = AtomicU64::new(1);

/// Why the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT: no will (unless it asked for it).
    Goodbye { will: bool },
    /// Anything else: the will is published. With a reason a 5.0 client is told.
    Lost(Option<ReasonCode>),
}

/// Serves one accepted connection; every error ends only this connection.
pub async fn serve<S>(mut stream: S, door: Arc<Door>, peer: SocketAddr, admission: Admission)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut input = BytesMut::with_capacity(READ_CHUNK_MIN);
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut stream, &mut input));
    let Ok(Ok(Some(connect))) = connect.await else {
        return;
    };
    let Some(mut connection) = accept(&mut stream, &door, peer, &admission, *connect).await else {
        return;
    };
    let end = connection.run(&mut stream, &mut input).await;
    connection.finish(&mut stream, end).await;
}

/// Reads the first packet, which must be CONNECT. `None` when it is not (the connection is
/// closed without an answer [MQTT-3.1.0-1]) or the client went away.
async fn read_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    input: &mut BytesMut,
) -> std::io::Result<Option<Box<Connect>>> {
    loop {
        match decode(input, ProtocolVersion::V5, PACKET_SIZE_MAX) {
            Ok(Some((Packet::Connect(connect), _))) => return Ok(Some(connect)),
            Ok(Some(_)) => return Ok(None),
            Err(error) => {
                if error.reason_code() == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
                    // 3.1.1 answers an unknown level with return code 0x01 [MQTT-3.1.2-2].
                    let refusal = Connack {
                        session_present: false,
                        reason_code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                        properties: Properties::default(),
                    };
                    let mut out = BytesMut::new();
                    if encode(&Packet::Connack(refusal), ProtocolVersion::V311, &mut out).is_ok() {
                        let _ = stream.write_all(&out).await;
                    }
                }
                return Ok(None);
            }
            Ok(None) => {
                input.reserve(READ_CHUNK_MIN);
                if stream.read_buf(input).await? == 0 {
                    return Ok(None);
                }
            }
        }
    }
}

/// Refuses a CONNECT with `code` and closes.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, version: ProtocolVersion, code: ReasonCode) {
    let refusal = Connack {
        session_present: false,
        reason_code: code,
        properties: Properties::default(),
    };
    let mut out = BytesMut::new();
    if encode(&Packet::Connack(refusal), version, &mut out).is_ok() {
        let _ = stream.write_all(&out).await;
    }
    let _ = stream.shutdown().await;
}

/// The client's session as CONNECT asked for it.
struct Asked {
    client_id: String,
    assigned: bool,
    /// Seconds the session outlives the connection; 0: a clean session.
    expiry_s: u32,
    clean_start: bool,
}

fn asked(connect: &Connect) -> Result<Asked, ReasonCode> {
    let version = connect.protocol_version;
    let mut client_id = connect.client_id.as_str().to_string();
    let assigned = client_id.is_empty();
    if assigned {
        if version == ProtocolVersion::V311 && !connect.clean_start {
            return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let serial = SERIALS.fetch_add(1, Ordering::Relaxed);
        client_id = format!("wharf-{}-{serial}", now.map_or(0, |now| now.as_millis()));
    }
    let expiry_s = match version {
        ProtocolVersion::V311 if connect.clean_start => 0,
        ProtocolVersion::V311 => session::NEVER,
        ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
    };
    Ok(Asked {
        client_id,
        assigned,
        expiry_s,
        clean_start: connect.clean_start,
    })
}

/// Authenticates, takes the session over, restores or begins it and answers CONNACK. `None`
/// when the client was refused (it has been told why) or went away.
async fn accept<S: AsyncWrite + Unpin>(
    stream: &mut S,
    door: &Arc<Door>,
    peer: SocketAddr,
    admission: &Admission,
    connect: Connect,
) -> Option<Connection> {
    let version = connect.protocol_version;
    if let Admission::Full(_) = admission {
        refuse(stream, version, ReasonCode::SERVER_UNAVAILABLE).await;
        return None;
    }
    let asked = match asked(&connect) {
        Ok(asked) => asked,
        Err(code) => {
            refuse(stream, version, code).await;
            return None;
        }
    };
    let Some(principal) = authenticate(&door.engine, &connect).await else {
        refuse(stream, version, ReasonCode::BAD_USER_NAME_OR_PASSWORD).await;
        return None;
    };
    door.ensure_topic().await;
    let (client, held) = take_over(door, &asked.client_id).await;
    door.wills.cancel(&asked.client_id);
    let restored = match restore(door, &asked).await {
        Ok(restored) => restored,
        Err(error) => {
            tracing::warn!(%error, "restoring an MQTT session failed");
            door.clients.release(&asked.client_id, client.serial);
            refuse(stream, version, ReasonCode::SERVER_UNAVAILABLE).await;
            return None;
        }
    };
    let session_present = restored.is_some();
    let listed = register(door, peer, &principal, &connect, &asked.client_id);
    let mut connection = Connection::new(door, principal, &connect, asked, client, listed);
    connection.held = Some(held);
    let connack = connection.connack(session_present);
    connection.send(&Packet::Connack(connack));
    if let Some(document) = restored {
        connection.resume(document).await;
    }
    Some(connection)
}

/// An empty user name takes the password as a token. On a server without users or tokens
/// every client is the anonymous administrator, whatever it sends.
async fn authenticate(engine: &Engine, connect: &Connect) -> Option<Principal> {
    if engine.security_open() {
        return engine.authenticate(None).await.ok();
    }
    let password = connect.password.as_ref()?;
    let password = String::from_utf8(password.as_bytes().to_vec()).ok()?;
    let credentials = match connect.user_name.as_ref().map(|name| name.as_str()) {
        Some(user) if !user.is_empty() => Credentials::Password {
            user: user.to_string(),
            password,
        },
        _ => Credentials::Token(password),
    };
    engine.authenticate(Some(&credentials)).await.ok()
}

/// Claims `client_id` for a new connection: the connection that holds it is asked to end
/// (5.0: DISCONNECT 0x8E), and waited for until it has let go of the session.
async fn take_over(door: &Door, client_id: &str) -> (Client, tokio::sync::OwnedMutexGuard<()>) {
    let held = Arc::new(tokio::sync::Mutex::new(()));
    let guard = held.clone().lock_owned().await;
    let client = Client {
        serial: SERIALS.fetch_add(1, Ordering::Relaxed),
        kick: Arc::new(tokio::sync::Notify::new()),
        held,
    };
    if let Some(old) = door.clients.claim(client_id, client.clone()) {
        old.kick.notify_one();
        let _ = tokio::time::timeout(TAKEOVER_WAIT, old.held.lock()).await;
    }
    (client, guard)
}

/// The stored session to go on with, if the client asked for one and it exists; a clean
/// start discards it.
async fn restore(door: &Door, asked: &Asked) -> Result<Option<Document>, EngineError> {
    let engine = &door.engine;
    let stored = session::load(engine, &asked.client_id);
    if asked.clean_start || asked.expiry_s == 0 {
        if stored.is_some()
            || engine
                .queue_info(&session::queue_of(&asked.client_id))
                .is_ok()
        {
            session::discard(engine, &asked.client_id).await?;
        }
        if asked.expiry_s > 0 {
            let document = Document {
                client_id: asked.client_id.clone(),
                expiry_s: asked.expiry_s,
                subscriptions: Vec::new(),
            };
            session::ensure_queue(engine, &asked.client_id, asked.expiry_s).await?;
            session::store(engine, &document).await?;
        }
        return Ok(None);
    }
    // A session that goes on as it was stored costs no write.
    if stored
        .as_ref()
        .is_some_and(|stored| stored.expiry_s == asked.expiry_s)
    {
        return Ok(stored);
    }
    let present = stored.is_some();
    let document = Document {
        client_id: asked.client_id.clone(),
        expiry_s: asked.expiry_s,
        subscriptions: stored.map_or_else(Vec::new, |stored| stored.subscriptions),
    };
    session::ensure_queue(engine, &asked.client_id, asked.expiry_s).await?;
    session::store(engine, &document).await?;
    Ok(present.then_some(document))
}

fn register(
    door: &Door,
    peer: SocketAddr,
    principal: &Principal,
    connect: &Connect,
    client_id: &str,
) -> Registration {
    let version = match connect.protocol_version {
        ProtocolVersion::V311 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    };
    door.listed.register(NewConnection {
        door: crate::connections::Door::Mqtt,
        peer,
        identity: principal.identity.clone(),
        virtual_host: None,
        client: ClientProperties {
            product: Some(format!("MQTT {version}")),
            version: None,
            platform: None,
            connection_name: Some(client_id.to_string()),
        },
    })
}

/// A subscription of this connection.
pub(super) struct Sub {
    pub stored: Stored,
    pub filter: Filter,
    pub source: Source,
}

/// Where a subscription's messages come from.
pub(super) enum Source {
    /// A live subscription of a clean session (its tag on the connection's feed).
    Live {
        tag: u64,
        _subscription: wharf_engine::broker::FeedSubscription,
    },
    /// A binding to the persistent session's queue.
    Session,
    /// A shared subscription's queue, with this connection's consumer.
    Shared { queue: String, _forward: Forward },
}

/// A task that forwards a push consumer's deliveries to the connection; aborted with it.
pub(super) struct Forward(JoinHandle<()>);

impl Drop for Forward {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A delivery of a queue, as the connection receives it.
pub(super) struct Queued {
    pub queue: Arc<str>,
    /// Boxed as the engine hands it over: the channel's first block of 32 slots, held from
    /// the start, stays small on an idle connection.
    pub delivery: Box<Delivery>,
}

/// A message on its way to the client that waits for a packet identifier.
pub(super) struct Waiting {
    pub publish: Publish,
    pub settle: Option<(Arc<str>, String)>,
}

/// A QoS 1 or 2 PUBLISH sent and not yet acknowledged.
pub(super) struct Inflight {
    pub qos: QoS,
    /// PUBREC came; waiting for PUBCOMP.
    pub released: bool,
    /// The queue delivery acked once the client has the message.
    pub settle: Option<(Arc<str>, String)>,
}

pub(super) struct Connection {
    pub door: Arc<Door>,
    pub engine: Engine,
    pub principal: Principal,
    pub version: ProtocolVersion,
    pub client_id: String,
    assigned: bool,
    pub expiry_s: u32,
    /// The expiry the session's queue was made with: DISCONNECT may change `expiry_s`.
    queue_expiry_s: u32,
    keep_alive: Option<Duration>,
    /// The keep-alive the server set in place of the client's (5.0 Server Keep Alive).
    server_keep_alive: Option<u16>,
    will: Option<wharf_codec_mqtt::Will>,
    client: Client,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
    _listed: Registration,
    pub out: BytesMut,
    /// Limits the client set: its Receive Maximum and Maximum Packet Size.
    pub client_receive_maximum: u16,
    pub client_packet_size_max: u32,
    /// Topic Aliases the server may use towards a 5.0 client (its Topic Alias Maximum, within
    /// [`SERVER_ALIASES_MAX`]), and those it has set, by topic name.
    pub client_alias_max: u16,
    pub server_aliases: HashMap<String, NonZeroU16>,
    pub subs: HashMap<String, Sub>,
    /// The live subscriptions' feed and the queue consumers' deliveries: each channel is made
    /// at its first use (a channel's first block of slots, some 10 KiB, would otherwise cost
    /// every idle connection).
    feed: Option<(LiveFeed, mpsc::Receiver<LiveMessage>)>,
    next_tag: u64,
    queued: Option<(mpsc::Sender<Queued>, mpsc::Receiver<Queued>)>,
    /// The consumer of the persistent session's queue, while there are subscriptions.
    pub session_consumer: Option<Forward>,
    pub inflight: HashMap<u16, Inflight>,
    pub waiting: VecDeque<Waiting>,
    /// Payload bytes of `waiting`.
    pub waiting_bytes: usize,
    next_packet_id: u16,
    /// Receipts to ack, by queue, written after each round of events.
    pub to_ack: HashMap<Arc<str>, Vec<String>>,
    /// Topic aliases the client set, by alias.
    aliases: HashMap<u16, Utf8String>,
    /// QoS 2 publishes stored and answered with PUBREC, until PUBREL.
    received: HashSet<u16>,
    /// QoS 1 and 2 publishes not yet answered.
    unanswered: usize,
    /// Started at the first publish: a client that only subscribes never has one.
    publisher: Option<publisher::Handle>,
    /// The client may write to and read from the door's topic.
    may_write: Option<bool>,
}

impl Connection {
    fn new(
        door: &Arc<Door>,
        principal: Principal,
        connect: &Connect,
        asked: Asked,
        client: Client,
        listed: Registration,
    ) -> Connection {
        let receive_maximum = connect
            .properties
            .receive_maximum
            .map_or(u16::MAX, NonZeroU16::get);
        let properties = &connect.properties;
        let server_keep_alive = server_keep_alive(connect);
        let keep_alive_s = server_keep_alive.unwrap_or(connect.keep_alive);
        Connection {
            door: door.clone(),
            engine: door.engine.clone(),
            principal,
            version: connect.protocol_version,
            client_id: asked.client_id,
            assigned: asked.assigned,
            expiry_s: asked.expiry_s,
            queue_expiry_s: asked.expiry_s,
            keep_alive: (keep_alive_s > 0)
                .then(|| Duration::from_millis(u64::from(keep_alive_s) * 1500)),
            server_keep_alive,
            will: connect.will.clone(),
            client,
            held: None,
            _listed: listed,
            out: BytesMut::new(),
            client_receive_maximum: receive_maximum,
            client_alias_max: (properties.topic_alias_maximum)
                .unwrap_or(0)
                .min(SERVER_ALIASES_MAX),
            server_aliases: HashMap::new(),
            client_packet_size_max: properties
                .maximum_packet_size
                .map_or(PACKET_SIZE_MAX, |max| max.get()),
            subs: HashMap::new(),
            feed: None,
            next_tag: 1,
            queued: None,
            session_consumer: None,
            inflight: HashMap::new(),
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            next_packet_id: 1,
            to_ack: HashMap::new(),
            aliases: HashMap::new(),
            received: HashSet::new(),
            unanswered: 0,
            publisher: None,
            may_write: None,
        }
    }

    fn connack(&self, session_present: bool) -> Connack {
        let mut properties = Properties::default();
        if self.version == ProtocolVersion::V5 {
            properties.receive_maximum = NonZeroU16::new(RECEIVE_MAXIMUM);
            properties.topic_alias_maximum = Some(TOPIC_ALIAS_MAXIMUM);
            properties.maximum_packet_size = std::num::NonZeroU32::new(PACKET_SIZE_MAX);
            properties.retain_available = Some(true);
            properties.wildcard_subscription_available = Some(true);
            properties.subscription_identifier_available = Some(true);
            properties.shared_subscription_available = Some(true);
            properties.server_keep_alive = self.server_keep_alive;
            if self.assigned {
                properties.assigned_client_identifier =
                    Utf8String::try_from(self.client_id.as_str()).ok();
            }
        }
        Connack {
            session_present,
            reason_code: ReasonCode::SUCCESS,
            properties,
        }
    }

    /// Encodes `packet` into the output; a packet the codec refuses is a bug, logged.
    pub fn send(&mut self, packet: &Packet) {
        if let Err(error) = encode(packet, self.version, &mut self.out) {
            tracing::warn!(%error, "encoding an MQTT packet failed");
        }
    }

    /// The next free packet identifier, if the client's Receive Maximum allows one more.
    pub fn packet_id(&mut self) -> Option<PacketId> {
        if self.inflight.len() >= usize::from(self.client_receive_maximum) {
            return None;
        }
        // Ends: fewer than 65,535 identifiers are in flight (Receive Maximum is a u16).
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&id) {
                return PacketId::new(id);
            }
        }
    }

    /// Events until the connection ends.
    async fn run<S>(&mut self, stream: &mut S, input: &mut BytesMut) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let kick = self.client.kick.clone();
        let readiness = self.door.readiness.clone();
        let mut heard = Instant::now();
        let mut chunk = READ_CHUNK_MIN;
        // Ends: the socket, a keep-alive timeout, a takeover or a protocol error ends it.
        loop {
            if !self.out.is_empty() && self.flush(stream).await.is_err() {
                return End::Lost(None);
            }
            let deadline = self.keep_alive.map(|keep_alive| heard + keep_alive);
            if input.is_empty() && input.capacity() > READ_CHUNK_MAX {
                *input = BytesMut::new();
            }
            input.reserve(chunk);
            let room = input.capacity() - input.len();
            let step = tokio::select! {
                read = stream.read_buf(input) => match read {
                    Ok(0) | Err(_) => Some(End::Lost(None)),
                    Ok(read) => {
                        heard = Instant::now();
                        chunk = match read >= room {
                            true => (chunk * 2).min(READ_CHUNK_MAX),
                            false => READ_CHUNK_MIN,
                        };
                        self.packets(input).await
                    }
                },
                Some(message) = receive(&mut self.feed) => {
                    self.live(message);
                    // What else waits goes out in the same write.
                    while self.out.len() < WRITE_BATCH_BYTES {
                        let Some(message) = try_receive(&mut self.feed) else { break };
                        self.live(message);
                    }
                    None
                }
                Some(queued) = receive(&mut self.queued) => {
                    self.queued(queued);
                    while self.out.len() < WRITE_BATCH_BYTES {
                        let Some(queued) = try_receive(&mut self.queued) else { break };
                        self.queued(queued);
                    }
                    None
                }
                Some(reports) = publisher::reports(&mut self.publisher) => {
                    self.answered(reports)
                }
                () = kick.notified() => Some(End::Lost(Some(ReasonCode::SESSION_TAKEN_OVER))),
                () = readiness.shutdown_begun() => Some(End::Lost(Some(ReasonCode::SERVER_SHUTTING_DOWN))),
                () = sleep_until(deadline) => Some(End::Lost(Some(ReasonCode::KEEP_ALIVE_TIMEOUT))),
            };
            self.settle();
            if let Some(end) = step {
                return end;
            }
        }
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<()> {
        stream.write_all(&self.out).await?;
        match self.out.capacity() > WRITE_BATCH_BYTES {
            true => self.out = BytesMut::new(),
            false => self.out.clear(),
        }
        Ok(())
    }

    /// Handles every whole packet in `input`.
    async fn packets(&mut self, input: &mut BytesMut) -> Option<End> {
        // Ends: each round takes a packet off the buffer, or stops.
        loop {
            match decode(input, self.version, PACKET_SIZE_MAX) {
                Ok(Some((packet, _))) => {
                    if let Some(end) = self.packet(packet).await {
                        return Some(end);
                    }
                }
                Ok(None) => return None,
                Err(error) => return Some(End::Lost(Some(error.reason_code()))),
            }
        }
    }

    async fn packet(&mut self, packet: Packet) -> Option<End> {
        match packet {
            Packet::Publish(publish) => return self.publish(publish).await,
            Packet::Puback(ack) => self.acked(ack.packet_id, QoS::AtLeastOnce),
            Packet::Pubrec(ack) => self.recorded(ack),
            Packet::Pubrel(ack) => self.released(ack),
            Packet::Pubcomp(ack) => self.acked(ack.packet_id, QoS::ExactlyOnce),
            Packet::Subscribe(subscribe) => self.subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe).await,
            Packet::Pingreq => self.send(&Packet::Pingresp),
            Packet::Disconnect(disconnect) => return Some(self.goodbye(&disconnect)),
            // A second CONNECT, or a packet only a server sends [MQTT-3.1.0-2].
            _ => return Some(End::Lost(Some(ReasonCode::PROTOCOL_ERROR))),
        }
        None
    }

    fn goodbye(&mut self, disconnect: &Disconnect) -> End {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            // A session that began with none cannot get one at the end [MQTT-3.14.2-2].
            if self.expiry_s == 0 && expiry > 0 {
                return End::Lost(Some(ReasonCode::PROTOCOL_ERROR));
            }
            self.expiry_s = expiry;
        }
        End::Goodbye {
            will: disconnect.reason_code == ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        }
    }

    /// A PUBLISH from the client.
    async fn publish(&mut self, mut publish: Publish) -> Option<End> {
        if let Err(code) = self.resolve_alias(&mut publish) {
            return Some(End::Lost(Some(code)));
        }
        let key = match names::key_of(publish.topic_name.as_str()) {
            Ok(key) => key,
            Err(_) => return Some(End::Lost(Some(ReasonCode::TOPIC_NAME_INVALID))),
        };
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => publisher::Ack::None,
            (QoS::AtLeastOnce, Some(id)) => publisher::Ack::Puback(id),
            (QoS::ExactlyOnce, Some(id)) => {
                if self.received.contains(&id.get()) {
                    // Sent again before PUBREL: stored already, answered again [MQTT-4.3.3-10].
                    self.send(&Packet::Pubrec(PublishAck::new(id)));
                    return None;
                }
                publisher::Ack::Pubrec(id)
            }
        };
        if ack != publisher::Ack::None {
            if self.unanswered >= usize::from(RECEIVE_MAXIMUM) {
                return Some(End::Lost(Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)));
            }
            self.unanswered += 1;
        }
        if !self.may_write() {
            return self.refuse_publish(ack, ReasonCode::NOT_AUTHORIZED);
        }
        let message = PublishMessage {
            routing_key: key,
            message: convert::send_message(&publish, &self.client_id),
            retain: publish.retain,
        };
        let engine = &self.engine;
        let topic = &self.door.settings.topic;
        let publisher =
            (self.publisher).get_or_insert_with(|| publisher::spawn(engine.clone(), topic.clone()));
        publisher.send(message, ack).await;
        None
    }

    fn may_write(&mut self) -> bool {
        let engine = &self.engine;
        let principal = &self.principal;
        let topic = &self.door.settings.topic;
        *self.may_write.get_or_insert_with(|| {
            let resource = Resource {
                kind: ResourceKind::Topic,
                name: topic,
            };
            engine.authorize(principal, Action::Write, resource).is_ok()
        })
    }

    /// A publish that is not stored: 5.0 says why in its acknowledgement; 3.1.1 has no way to,
    /// so the connection ends [MQTT-3.3.5-2].
    fn refuse_publish(&mut self, ack: publisher::Ack, code: ReasonCode) -> Option<End> {
        if self.version == ProtocolVersion::V311 {
            return Some(End::Lost(None));
        }
        self.answer(ack, Some(code));
        None
    }

    /// Replaces a 5.0 Topic Alias by its topic name, or records a new one.
    fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), ReasonCode> {
        let Some(alias) = publish.properties.topic_alias.take() else {
            return match publish.topic_name.is_empty() {
                true => Err(ReasonCode::PROTOCOL_ERROR),
                false => Ok(()),
            };
        };
        if alias.get() > TOPIC_ALIAS_MAXIMUM {
            return Err(ReasonCode::TOPIC_ALIAS_INVALID);
        }
        if publish.topic_name.is_empty() {
            let name = self
                .aliases
                .get(&alias.get())
                .ok_or(ReasonCode::PROTOCOL_ERROR)?;
            publish.topic_name = name.clone();
        } else {
            self.aliases.insert(alias.get(), publish.topic_name.clone());
        }
        Ok(())
    }

    /// Outcomes of stored publishes, in order.
    fn answered(&mut self, reports: Vec<(publisher::Ack, Option<ReasonCode>)>) -> Option<End> {
        for (ack, failure) in reports {
            if failure.is_some()
                && self.version == ProtocolVersion::V311
                && ack != publisher::Ack::None
            {
                return Some(End::Lost(None));
            }
            self.answer(ack, failure);
        }
        None
    }

    fn answer(&mut self, ack: publisher::Ack, failure: Option<ReasonCode>) {
        let reply = |id: PacketId| PublishAck {
            packet_id: id,
            reason_code: failure.unwrap_or(ReasonCode::SUCCESS),
            properties: Properties::default(),
        };
        match ack {
            publisher::Ack::None => return,
            publisher::Ack::Puback(id) => self.send(&Packet::Puback(reply(id))),
            publisher::Ack::Pubrec(id) => {
                if failure.is_none() {
                    self.received.insert(id.get());
                }
                self.send(&Packet::Pubrec(reply(id)));
            }
        }
        self.unanswered = self.unanswered.saturating_sub(1);
    }

    fn released(&mut self, ack: PublishAck) {
        let known = self.received.remove(&ack.packet_id.get());
        let mut complete = PublishAck::new(ack.packet_id);
        if !known && self.version == ProtocolVersion::V5 {
            complete.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.send(&Packet::Pubcomp(complete));
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): the client has the message.
    fn acked(&mut self, id: PacketId, qos: QoS) {
        let Some(inflight) = self.inflight.get(&id.get()) else {
            return;
        };
        if inflight.qos != qos {
            return;
        }
        if let Some(inflight) = self.inflight.remove(&id.get()) {
            if let Some((queue, receipt)) = inflight.settle {
                self.to_ack.entry(queue).or_default().push(receipt);
            }
        }
        self.send_waiting();
    }

    /// PUBREC: the client stored a QoS 2 message; release it.
    fn recorded(&mut self, ack: PublishAck) {
        let Some(inflight) = self.inflight.get_mut(&ack.packet_id.get()) else {
            if self.version == ProtocolVersion::V5 {
                let mut release = PublishAck::new(ack.packet_id);
                release.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                self.send(&Packet::Pubrel(release));
            }
            return;
        };
        if ack.reason_code.is_error() {
            // The client refused the message: it is done with [MQTT-4.3.3-13].
            self.acked(ack.packet_id, QoS::ExactlyOnce);
            return;
        }
        inflight.released = true;
        self.send(&Packet::Pubrel(PublishAck::new(ack.packet_id)));
    }

    /// Writes the acks gathered this round, in a task: nothing the client waits for.
    fn settle(&mut self) {
        for (queue, receipts) in self.to_ack.drain() {
            let engine = self.engine.clone();
            tokio::spawn(async move {
                if let Err(error) = engine.ack(&queue, &receipts).await {
                    tracing::debug!(%error, %queue, "acking MQTT deliveries failed");
                }
            });
        }
    }

    /// After the loop: the will unless the client said goodbye, the session stored or
    /// dropped, a 5.0 client told why.
    async fn finish<S: AsyncWrite + Unpin>(mut self, stream: &mut S, end: End) {
        if let End::Lost(Some(code)) = end {
            if self.version == ProtocolVersion::V5 && code.is_error() {
                // With a Reason String: besides naming the problem, some clients (paho-mqtt
                // 2.1) read the Reason Code only from a DISCONNECT longer than two bytes.
                let properties = Properties {
                    reason_string: Utf8String::try_from(why(code)).ok(),
                    ..Properties::default()
                };
                let disconnect = Disconnect {
                    reason_code: code,
                    properties,
                };
                self.send(&Packet::Disconnect(disconnect));
            }
        }
        let _ = self.flush(stream).await;
        let _ = stream.shutdown().await;
        // What this connection held returns now: leases to the session's queue.
        self.subs.clear();
        self.session_consumer = None;
        self.settle();
        let will = match end {
            End::Goodbye { will } => will,
            End::Lost(_) => true,
        };
        if let (true, Some(will)) = (will, self.will.take()) {
            publisher::publish_will(&self, will);
        }
        if self.expiry_s == 0 {
            if let Err(error) = session::discard(&self.engine, &self.client_id).await {
                tracing::debug!(%error, "dropping an MQTT session failed");
            }
        } else if self.expiry_s != self.queue_expiry_s {
            let kept = session::ensure_queue(&self.engine, &self.client_id, self.expiry_s).await;
            if let Err(error) = kept {
                tracing::debug!(%error, "keeping an MQTT session failed");
            }
        }
        self.door
            .clients
            .release(&self.client_id, self.client.serial);
        drop(self.held.take());
    }
}

/// The keep-alive a 5.0 client is told to use instead of its own: none, or over the most.
fn server_keep_alive(connect: &Connect) -> Option<u16> {
    let asked = connect.keep_alive;
    let too_long = asked == 0 || asked > SERVER_KEEP_ALIVE_MAX_S;
    (connect.protocol_version == ProtocolVersion::V5 && too_long).then_some(SERVER_KEEP_ALIVE_MAX_S)
}

/// The Reason String of a DISCONNECT the server sends.
fn why(code: ReasonCode) -> &'static str {
    match code {
        ReasonCode::SESSION_TAKEN_OVER => {
            "another connection took this client identifier's session over"
        }
        ReasonCode::KEEP_ALIVE_TIMEOUT => "nothing came within one and a half keep-alive intervals",
        ReasonCode::TOPIC_NAME_INVALID => "a topic name must be non-empty and without + or #",
        ReasonCode::TOPIC_ALIAS_INVALID => {
            "a topic alias must be 1 to the Topic Alias Maximum of the CONNACK"
        }
        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED => {
            "more QoS 1 and 2 publishes unacknowledged than the CONNACK's Receive Maximum"
        }
        ReasonCode::PACKET_TOO_LARGE => "a packet over the CONNACK's Maximum Packet Size",
        ReasonCode::MALFORMED_PACKET => "a packet that does not decode",
        ReasonCode::SERVER_SHUTTING_DOWN => "the server is shutting down",
        _ => "a packet the protocol does not allow here",
    }
}

/// Credit of a queue consumer: the client's Receive Maximum, within the engine's bounds.
fn session_credit_of(receive_maximum: u16) -> usize {
    usize::from(receive_maximum).clamp(1, wharf_engine::broker::CONSUMER_CREDIT_MAX)
}

/// The next item of a channel made at first use; never, while there is none.
async fn receive<S, T>(channel: &mut Option<(S, mpsc::Receiver<T>)>) -> Option<T> {
    match channel {
        Some((_, receiver)) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

fn try_receive<S, T>(channel: &mut Option<(S, mpsc::Receiver<T>)>) -> Option<T> {
    channel.as_mut()?.1.try_recv().ok()
}

impl Connection {
    /// The live subscriptions' feed, made at the first.
    pub(super) fn feed(&mut self) -> LiveFeed {
        let (feed, _) = self.feed.get_or_insert_with(|| LiveFeed::new(LIVE_BUFFER));
        feed.clone()
    }

    /// Where queue consumers forward deliveries, made at the first consumer.
    pub(super) fn queued_sender(&mut self) -> mpsc::Sender<Queued> {
        let capacity = session_credit_of(self.client_receive_maximum) + 16;
        let (sender, _) = self.queued.get_or_insert_with(|| mpsc::channel(capacity));
        sender.clone()
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Wraps a push consumer of `queue` so that its deliveries reach the connection.
pub(super) fn forward(
    mut consumer: wharf_engine::broker::Consumer,
    queue: &str,
    to: mpsc::Sender<Queued>,
) -> Forward {
    let queue: Arc<str> = Arc::from(queue);
    Forward(tokio::spawn(async move {
        // Ends: when the consumer ends (its queue deleted) or the connection goes away.
        while let Some(delivery) = consumer.next_boxed().await {
            let queued = Queued {
                queue: queue.clone(),
                delivery,
            };
            if to.send(queued).await.is_err() {
                return;
            }
        }
    }))
}

/// Attaches a consumer to `queue` for a connection.
pub(super) async fn consume(
    engine: &Engine,
    queue: &str,
    credit: usize,
    to: mpsc::Sender<Queued>,
) -> Result<Forward, EngineError> {
    let request = ConsumeRequest {
        credit,
        lease: None,
    };
    let consumer = engine.consume(queue, request).await?;
    Ok(forward(consumer, queue, to))
}

/// What a live subscription of filter `pattern` asks of the topic.
pub(super) fn interested(pattern: &str) -> Interested<'_> {
    Interested {
        pattern,
        syntax: Syntax::Amqp,
        filter: None,
    }
}
