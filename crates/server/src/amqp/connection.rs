//! One AMQP connection: the protocol header, the handshake (SASL PLAIN or AMQPLAIN, tuning,
//! open), then frames both ways until a close. Deliveries of push consumers arrive from their
//! tasks on a channel and are written between the frames read.

use super::{
    channel::{Channel, Event},
    publisher::{self, Report},
    Admission, Exclusive, Failure,
};
use crate::{
    connections::{ClientProperties, Connections, Door, NewConnection, Registration},
    door::PublishBudget,
    tls::Transport,
};
use bytes::BytesMut;
use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};
use wharf_codec_amqp::{
    decode_protocol_header,
    method::{basic, channel as chan, connection as conn},
    Assembled, FieldTable, FieldValue, Frame, FrameDecoder, Method, ReplyCode, ShortString,
    FRAME_MIN_SIZE, PROTOCOL_HEADER,
};
use wharf_engine::{
    security::{Credentials, Principal},
    Engine,
};

/// Largest frame the server takes and sends: RabbitMQ's default.
pub const FRAME_MAX: u32 = 131_072;
/// Most channels per connection: RabbitMQ's default.
pub const CHANNEL_MAX: u16 = 2_047;
/// Heartbeat the server proposes, in seconds.
pub const HEARTBEAT_S: u16 = 60;
/// Time a client has from connecting to `connection.open`: RabbitMQ's default.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries queued between consumer tasks and the connection's writer.
const EVENTS_BUFFER: usize = 1_024;
/// How long a connection closed for an error still reads what its client sends.
const LINGER: Duration = Duration::from_secs(2);
/// Room made in the input buffer before a read: it starts small, so an idle connection holds
/// little, doubles while reads fill it (a busy publisher), and comes back down when they don't.
const READ_CHUNK_MIN: usize = 4 * 1024;
const READ_CHUNK_MAX: usize = 64 * 1024;
/// An output buffer grown past this by a burst is let go once written, so an idle connection
/// does not keep it.
const OUT_KEEP_BYTES: usize = 64 * 1024;
/// Output gathered from waiting deliveries before it is written.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// The connection's state once open.
pub(super) struct Connection {
    pub engine: Engine,
    pub principal: Principal,
    pub frame_max: u32,
    /// Heartbeat period agreed at tune-ok, in seconds; 0: none.
    pub heartbeat: u16,
    pub out: BytesMut,
    pub channels: HashMap<u16, Channel>,
    pub events: mpsc::Sender<Event>,
    /// Publishes on their way to the engine, in order (see [`publisher`]), and what became of
    /// them; `in_flight` counts jobs not reported yet.
    pub publisher: mpsc::Sender<publisher::Budgeted>,
    /// The bytes of publishes handed to `publisher` and not yet stored.
    pub publish_budget: PublishBudget,
    pub reports: mpsc::UnboundedReceiver<Report>,
    pub in_flight: usize,
    /// Settles (acks, nacks) being written, which nothing answers.
    pub settling: Vec<tokio::task::JoinHandle<()>>,
    /// A connection error was sent: the connection ends once the output is written.
    pub ended: bool,
    /// The incarnation the next opened channel gets: reports for an earlier one are dropped.
    pub next_epoch: u64,
    /// Exclusive and auto-delete queues this connection declared: deleted when it ends.
    pub temporary: Vec<String>,
    /// The door's exclusive queues; this connection's claims are its exclusive `temporary`.
    pub exclusive: Arc<Exclusive>,
    pub claimed: Vec<String>,
    /// Auto-delete queues this connection declared: deleted when their last consumer goes.
    pub auto_delete: std::collections::HashSet<String>,
    /// The connection's entry in the server's list; dropped with the connection.
    pub listed: Registration,
}

impl Connection {
    pub fn send(&mut self, channel: u16, method: impl Into<Method>) {
        let frame = Frame::Method {
            channel,
            method: method.into(),
        };
        frame.encode(&mut self.out);
    }
}

/// Where an open connection is listed, the client's address, and the door's exclusive
/// queues.
pub struct Listing {
    pub connections: Arc<Connections>,
    pub peer: SocketAddr,
    pub exclusive: Arc<Exclusive>,
}

/// Serves `stream` until the client closes or fails; every error ends only this connection.
pub async fn serve(mut stream: Transport, engine: Engine, admission: Admission, listing: Listing) {
    // A client that connects and never finishes the handshake is dropped, so idle sockets
    // cannot pile up holding tasks and descriptors.
    let handshake = handshake(&mut stream, &engine, &admission, listing);
    let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
    match opened {
        Ok(Ok(Some((open, rest)))) => {
            // The permit is held until the connection ends.
            let _admitted = admission;
            if let Err(error) = run(stream, open, rest).await {
                tracing::debug!(%error, "amqp connection ended");
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => tracing::debug!(%error, "amqp handshake failed"),
        Err(_) => tracing::debug!("amqp handshake timed out"),
    }
}

/// The handshake: protocol header, start/start-ok, tune/tune-ok, open/open-ok. `None` when
/// the client was refused (it has been told why).
async fn handshake(
    stream: &mut Transport,
    engine: &Engine,
    admission: &Admission,
    listing: Listing,
) -> std::io::Result<Option<(Connection, BytesMut)>> {
    let mut input = BytesMut::with_capacity(READ_CHUNK_MIN);
    if !read_protocol_header(stream, &mut input).await? {
        return Ok(None);
    }
    write_method(stream, start()).await?;
    let decoder = FrameDecoder::new(FRAME_MIN_SIZE);
    let Some(conn::Method::StartOk(start_ok)) =
        read_connection_method(stream, &decoder, &mut input).await?
    else {
        return Ok(None);
    };
    let Some(principal) = admit(stream, engine, admission, &start_ok).await? else {
        return Ok(None);
    };
    let tune = conn::Tune {
        channel_max: CHANNEL_MAX,
        frame_max: FRAME_MAX,
        heartbeat: HEARTBEAT_S,
    };
    write_method(stream, tune).await?;
    let Some(conn::Method::TuneOk(tune_ok)) =
        read_connection_method(stream, &decoder, &mut input).await?
    else {
        return Ok(None);
    };
    let frame_max = match tune_ok.frame_max {
        0 => FRAME_MAX,
        asked => asked.clamp(FRAME_MIN_SIZE, FRAME_MAX),
    };
    let Some(conn::Method::Open(open)) =
        read_connection_method(stream, &decoder, &mut input).await?
    else {
        return Ok(None);
    };
    let open_ok = conn::OpenOk {
        reserved_1: ShortString::default(),
    };
    write_method(stream, open_ok).await?;
    let exclusive = listing.exclusive.clone();
    let listed = register(listing, &principal, &start_ok, &open);
    let heartbeat = tune_ok.heartbeat.min(HEARTBEAT_S);
    let open = Connection::new(engine, principal, (frame_max, heartbeat), listed, exclusive);
    Ok(Some((open, input)))
}

/// Whether the client may in: under the connection cap, and logged in. `None` when refused
/// (the client has been told why).
async fn admit(
    stream: &mut Transport,
    engine: &Engine,
    admission: &Admission,
    start_ok: &conn::StartOk,
) -> std::io::Result<Option<Principal>> {
    if let Admission::Full(max) = admission {
        let text = format!("connection limit reached: the server takes {max} AMQP connections (limits.amqp_connections_max)");
        refuse(stream, ReplyCode::NotAllowed, &text).await?;
        return Ok(None);
    }
    let principal = authenticate(engine, start_ok).await;
    if principal.is_none() {
        let text = "login refused: bad user name, password or token";
        refuse(stream, ReplyCode::AccessRefused, text).await?;
    }
    Ok(principal)
}

impl Connection {
    /// An open connection with `(frame_max, heartbeat)` as tuned; its channels to the
    /// publisher task and consumer tasks are made when it runs.
    fn new(
        engine: &Engine,
        principal: Principal,
        (frame_max, heartbeat): (u32, u16),
        listed: Registration,
        exclusive: Arc<Exclusive>,
    ) -> Connection {
        let (events, _) = mpsc::channel(1);
        let (publisher, _) = mpsc::channel(1);
        let (_, reports) = mpsc::unbounded_channel();
        Connection {
            engine: engine.clone(),
            principal,
            frame_max,
            heartbeat,
            out: BytesMut::new(),
            channels: HashMap::new(),
            events,
            publisher,
            publish_budget: PublishBudget::new(),
            reports,
            in_flight: 0,
            settling: Vec::new(),
            ended: false,
            next_epoch: 1,
            temporary: Vec::new(),
            exclusive,
            claimed: Vec::new(),
            auto_delete: Default::default(),
            listed,
        }
    }
}

/// Lists the connection whose handshake just finished in the server's list.
fn register(
    Listing {
        connections, peer, ..
    }: Listing,
    principal: &Principal,
    start_ok: &conn::StartOk,
    open: &conn::Open,
) -> Registration {
    connections.register(NewConnection {
        door: Door::Amqp,
        peer,
        identity: principal.identity.clone(),
        virtual_host: Some(open.virtual_host.as_str().to_string()),
        client: client_properties(&start_ok.client_properties),
    })
}

/// What a client's `client_properties` say of it that is worth showing.
fn client_properties(table: &FieldTable) -> ClientProperties {
    let text = |name: &str| match table.get(name)? {
        FieldValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        _ => None,
    };
    ClientProperties {
        product: text("product"),
        version: text("version"),
        platform: text("platform"),
        connection_name: text("connection_name"),
    }
}

/// Writes one method on channel 0 (the handshake's).
async fn write_method(stream: &mut Transport, method: impl Into<Method>) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    let method = method.into();
    Frame::Method { channel: 0, method }.encode(&mut out);
    stream.write_all(&out).await
}

/// Reads the protocol header; false when the client spoke another protocol (it has been told
/// which one we speak, as the spec asks) or went away.
async fn read_protocol_header(
    stream: &mut Transport,
    input: &mut BytesMut,
) -> std::io::Result<bool> {
    loop {
        match decode_protocol_header(input) {
            Ok(Some(())) => return Ok(true),
            Ok(None) => {
                if stream.read_buf(input).await? == 0 {
                    return Ok(false);
                }
            }
            Err(_) => {
                stream.write_all(&PROTOCOL_HEADER).await?;
                return Ok(false);
            }
        }
    }
}

/// `connection.start`: what the server is and can do.
fn start() -> conn::Start {
    let mut capabilities = FieldTable::new();
    for capability in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "per_consumer_qos",
        "authentication_failure_close",
    ] {
        if let Ok(name) = ShortString::try_from(capability) {
            capabilities.insert(name, FieldValue::Bool(true));
        }
    }
    let mut properties = FieldTable::new();
    let mut put = |name: &str, value: FieldValue| {
        if let Ok(name) = ShortString::try_from(name) {
            properties.insert(name, value);
        }
    };
    put("product", FieldValue::LongString("Wharf".into()));
    put(
        "version",
        FieldValue::LongString(env!("CARGO_PKG_VERSION").into()),
    );
    put("capabilities", FieldValue::Table(capabilities));
    conn::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: properties,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    }
}

/// The caller a `start-ok` names: PLAIN (`\0user\0password`) or AMQPLAIN (a table with LOGIN
/// and PASSWORD). An empty user name takes the password as a token. On a server without
/// users or tokens everyone is the anonymous administrator, whatever they send (pika sends
/// guest/guest by default).
async fn authenticate(engine: &Engine, start_ok: &conn::StartOk) -> Option<Principal> {
    if engine.security_open() {
        return engine.authenticate(None).await.ok();
    }
    let response = start_ok.response.as_bytes();
    let (user, password) = match start_ok.mechanism.as_str() {
        "PLAIN" => {
            let mut parts = response.split(|byte| *byte == 0).skip(1);
            let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
            let password = String::from_utf8(parts.next()?.to_vec()).ok()?;
            (user, password)
        }
        "AMQPLAIN" => {
            // The response is a table's contents, without the table's length.
            let mut whole = BytesMut::with_capacity(4 + response.len());
            whole.extend_from_slice(&u32::try_from(response.len()).ok()?.to_be_bytes());
            whole.extend_from_slice(response);
            let table = FieldTable::decode(whole.freeze()).ok()?;
            let text = |name: &str| match table.get(name)? {
                FieldValue::LongString(text) => String::from_utf8(text.as_bytes().to_vec()).ok(),
                _ => None,
            };
            (text("LOGIN")?, text("PASSWORD")?)
        }
        _ => return None,
    };
    let credentials = Credentials::Password { user, password };
    engine.authenticate(Some(&credentials)).await.ok()
}

/// Reads the next frame of the handshake, which must be a `connection` method on channel 0.
async fn read_connection_method(
    stream: &mut Transport,
    decoder: &FrameDecoder,
    input: &mut BytesMut,
) -> std::io::Result<Option<conn::Method>> {
    loop {
        match decoder.decode(input) {
            Ok(Some(Frame::Method {
                channel: 0,
                method: Method::Connection(method),
            })) => return Ok(Some(method)),
            Ok(Some(Frame::Heartbeat)) => continue,
            Ok(Some(_)) | Err(_) => {
                refuse(
                    stream,
                    ReplyCode::CommandInvalid,
                    "expected the connection handshake",
                )
                .await?;
                return Ok(None);
            }
            Ok(None) => {
                if stream.read_buf(input).await? == 0 {
                    return Ok(None);
                }
            }
        }
    }
}

/// Closes the connection with `code` and `text`, without waiting for the client's close-ok.
async fn refuse(stream: &mut Transport, code: ReplyCode, text: &str) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    Frame::Method {
        channel: 0,
        method: close(code, text, 0, 0).into(),
    }
    .encode(&mut out);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

pub(super) fn close(code: ReplyCode, text: &str, class_id: u16, method_id: u16) -> conn::Close {
    conn::Close {
        reply_code: code.code(),
        reply_text: reply_text(text),
        class_id,
        method_id,
    }
}

/// `text` as a reply text: cut to a short string's 255 bytes at a character boundary.
pub(super) fn reply_text(text: &str) -> ShortString {
    let mut end = text.len().min(wharf_codec_amqp::SHORT_STRING_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_from(&text[..end]).unwrap_or_default()
}

/// The open connection: frames read are handled in order, deliveries written as they come,
/// heartbeats both ways.
async fn run(
    stream: Transport,
    mut connection: Connection,
    mut input: BytesMut,
) -> std::io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut events = connection.start_tasks();
    let mut decoder = FrameDecoder::new(connection.frame_max);
    decoder.set_frame_max(connection.frame_max);
    // The heartbeat the client accepted; 0 turns heartbeats off both ways.
    let heartbeat = connection.heartbeat;
    let period = Duration::from_secs(u64::from(heartbeat.max(1)));
    let mut heartbeats = tokio::time::interval(period / 2);
    let mut silent_beats = 0u32;
    let mut sizing = ReadSizing {
        chunk: READ_CHUNK_MIN,
    };
    let ended = loop {
        let mut closing = false;
        let spare = sizing.prepare(&mut input);
        tokio::select! {
            read = reader.read_buf(&mut input) => match read {
                Ok(0) => break Ok(()),
                Ok(read) => {
                    sizing.read(read, spare);
                    silent_beats = 0;
                    closing = handle_input(&mut connection, &decoder, &mut input).await;
                }
                Err(error) => break Err(error),
            },
            Some(event) = events.recv() => connection.handle_events(event, &mut events).await,
            Some(report) = connection.reports.recv() => {
                connection.handle_report(report);
                while let Ok(report) = connection.reports.try_recv() {
                    connection.handle_report(report);
                }
            }
            () = connection.listed.close_requested() => {
                // As RabbitMQ closes a connection from its management API or at shutdown: the
                // client hears why.
                let text = match connection.listed.server_stopping() {
                    true => "CONNECTION_FORCED - the server is shutting down",
                    false => "CONNECTION_FORCED - closed by an operator",
                };
                connection.send(0, close(ReplyCode::ConnectionForced, text, 0, 0));
                closing = true;
            }
            _ = heartbeats.tick(), if heartbeat > 0 => {
                Frame::Heartbeat.encode(&mut connection.out);
                silent_beats += 1;
                // Two heartbeat periods (four ticks) without a byte from the client: it is gone.
                if silent_beats > 4 {
                    break Ok(());
                }
            }
        }
        if let Err(error) = connection.write_out(&mut writer).await {
            break Err(error);
        }
        if closing || connection.ended {
            break Ok(());
        }
    };
    // However it ended, consumers stop and unsettled deliveries go back to their queues.
    connection.close_all();
    if connection.ended {
        linger(&mut reader).await;
    }
    ended
}

/// After the server closed the connection for an error: reads and drops what the client still
/// sends, for up to [`LINGER`], so that closing the socket does not reset it before the client
/// has read the close and its reason (a client in the middle of a too-large body would
/// otherwise see only "connection reset").
async fn linger(reader: &mut (impl AsyncReadExt + Unpin)) {
    let mut sink = [0u8; 16 * 1024];
    let drain = async {
        while let Ok(read) = reader.read(&mut sink).await {
            if read == 0 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// How much room the input buffer gets before a read. A client with a window of publishes in
/// flight sends many frames at once, and each read takes all that arrived; an idle one keeps
/// a small buffer.
struct ReadSizing {
    chunk: usize,
}

impl ReadSizing {
    /// Makes room in `input`; returns the room there is.
    fn prepare(&self, input: &mut BytesMut) -> usize {
        if input.is_empty() && input.capacity() > 2 * self.chunk {
            *input = BytesMut::new();
        }
        if input.capacity() - input.len() < self.chunk / 4 {
            input.reserve(self.chunk);
        }
        input.capacity() - input.len()
    }

    /// A read of `read` bytes into `spare` of room: a full one doubles the next chunk, a small
    /// one halves it.
    fn read(&mut self, read: usize, spare: usize) {
        self.chunk = match read {
            read if read >= spare => (self.chunk * 2).min(READ_CHUNK_MAX),
            read if read < self.chunk / 4 => (self.chunk / 2).max(READ_CHUNK_MIN),
            _ => self.chunk,
        };
    }
}

impl Connection {
    /// Writes what is waiting to go out; a buffer a burst grew is let go once written.
    async fn write_out(
        &mut self,
        writer: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        writer.write_all(&self.out).await?;
        self.out.clear();
        if self.out.capacity() > OUT_KEEP_BYTES {
            self.out = BytesMut::new();
        }
        Ok(())
    }

    /// Connects the channels of the consumer tasks and of the publisher task; returns where
    /// the consumers' events arrive. Dropping the publisher's sender when the connection ends
    /// lets its task store what it holds, then end.
    fn start_tasks(&mut self) -> mpsc::Receiver<Event> {
        let (events_tx, events) = mpsc::channel(EVENTS_BUFFER);
        self.events = events_tx;
        let (publisher, reports, _task) = publisher::spawn(self.engine.clone());
        self.publisher = publisher;
        self.reports = reports;
        events
    }

    /// `first` and the events waiting behind it, so that they go out in one write.
    async fn handle_events(&mut self, first: Event, events: &mut mpsc::Receiver<Event>) {
        self.handle_event(first).await;
        while self.out.len() < WRITE_BATCH_BYTES {
            let Ok(event) = events.try_recv() else { break };
            self.handle_event(event).await;
        }
    }
}

/// Handles every whole frame in `input`; true when the connection is to end.
async fn handle_input(
    connection: &mut Connection,
    decoder: &FrameDecoder,
    input: &mut BytesMut,
) -> bool {
    loop {
        let frame = match decoder.decode(input) {
            Ok(Some(frame)) => frame,
            Ok(None) => return false,
            Err(error) => {
                let code = error.reply_code();
                connection.send(0, close(code, &error.to_string(), 0, 0));
                return true;
            }
        };
        match handle_frame(connection, frame).await {
            Ok(false) => {}
            Ok(true) => return true,
            Err(failure) => connection.fail(failure),
        }
        if connection.ended {
            return true;
        }
    }
}

impl Connection {
    /// Answers a failure: a channel error closes the channel (the client's close-ok is
    /// awaited), a connection error the connection (`ended`).
    pub fn fail(&mut self, failure: Failure) {
        match failure {
            Failure::Connection {
                code,
                text,
                class_id,
                method_id,
            } => {
                self.send(0, close(code, &text, class_id, method_id));
                self.ended = true;
            }
            Failure::Channel {
                channel,
                code,
                text,
                class_id,
                method_id,
            } => {
                self.fail_channel(channel);
                let close = chan::Close {
                    reply_code: code.code(),
                    reply_text: reply_text(&text),
                    class_id,
                    method_id,
                };
                self.send(channel, close);
            }
        }
    }

    /// Waits until every publish handed to the publisher task is stored and answered, and
    /// every settle written. Methods that read or change queues wait for it, so that they see
    /// the connection's earlier publishes and acks, as on RabbitMQ (a publish, then a
    /// `basic.get` of it, on one channel).
    pub async fn catch_up(&mut self) {
        for task in std::mem::take(&mut self.settling) {
            let _ = task.await;
        }
        while self.in_flight > 0 && !self.ended {
            match self.reports.recv().await {
                Some(report) => self.handle_report(report),
                None => self.in_flight = 0,
            }
        }
    }
}

/// Methods that need not wait for the connection's publishes to be stored: publishes
/// themselves (the task keeps their order), settles of deliveries made already, and settings
/// of the channel.
fn independent_of_publishes(method: &Method) -> bool {
    matches!(
        method,
        Method::Basic(
            basic::Method::Publish(_)
                | basic::Method::Ack(_)
                | basic::Method::Nack(_)
                | basic::Method::Reject(_)
                | basic::Method::Qos(_)
        ) | Method::Channel(chan::Method::Flow(_) | chan::Method::FlowOk(_))
            | Method::Tx(_)
    )
}

/// One frame; true when the connection is to end.
async fn handle_frame(connection: &mut Connection, frame: Frame) -> Result<bool, Failure> {
    match frame {
        Frame::Heartbeat => Ok(false),
        Frame::Method { channel: 0, method } => match method {
            Method::Connection(conn::Method::Close(_)) => {
                connection.catch_up().await;
                connection.send(0, conn::CloseOk {});
                Ok(true)
            }
            Method::Connection(conn::Method::CloseOk(_)) => Ok(true),
            other => Err(Failure::connection(
                ReplyCode::CommandInvalid,
                &format!("{} on channel 0", other.name()),
                &other,
            )),
        },
        frame => {
            let channel = frame.channel();
            connection.channel_frame(channel, frame).await?;
            Ok(false)
        }
    }
}

impl Connection {
    /// A frame of channel `channel`: opens it, or goes through its content assembler to its
    /// handler.
    async fn channel_frame(&mut self, channel: u16, frame: Frame) -> Result<(), Failure> {
        if let Frame::Method {
            method: Method::Channel(chan::Method::Open(_)),
            ..
        } = frame
        {
            if self.channels.contains_key(&channel) || channel > CHANNEL_MAX {
                return Err(Failure::connection(
                    ReplyCode::ChannelError,
                    "channel already open or above channel_max",
                    &Method::Channel(chan::Method::Open(chan::Open::default())),
                ));
            }
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            self.channels.insert(channel, Channel::new(epoch));
            self.listed.channel_opened(channel);
            self.send(channel, chan::OpenOk::default());
            return Ok(());
        }
        let Some(state) = self.channels.get_mut(&channel) else {
            return Err(Failure::Connection {
                code: ReplyCode::ChannelError,
                text: format!("channel {channel} is not open"),
                class_id: 0,
                method_id: 0,
            });
        };
        if state.closing {
            match frame {
                Frame::Method {
                    method: Method::Channel(chan::Method::CloseOk(_)),
                    ..
                } => self.close_channel(channel),
                Frame::Method {
                    method: Method::Channel(chan::Method::Close(_)),
                    ..
                } => {
                    self.close_channel(channel);
                    self.send(channel, chan::CloseOk {});
                }
                _ => {}
            }
            return Ok(());
        }
        let assembled = state.assembler.push(frame).map_err(|error| {
            Failure::connection(
                error.reply_code(),
                &error.to_string(),
                &Method::Channel(chan::Method::CloseOk(chan::CloseOk {})),
            )
        })?;
        match assembled {
            None => Ok(()),
            Some(Assembled::Frame(Frame::Method { method, .. })) => {
                if !independent_of_publishes(&method) {
                    self.catch_up().await;
                }
                self.method(channel, method).await
            }
            Some(Assembled::Frame(_)) => Ok(()),
            Some(Assembled::Content(content)) => self.publish(channel, content).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::net::{TcpListener, TcpStream};
    use wharf_engine::{clock::SystemClock, EngineConfig};
    use wharf_storage::{Store, StoreConfig};

    /// A client that connects and sends nothing is dropped once the handshake time is up;
    /// the clock is tokio's paused one, so the test waits for nothing.
    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).expect("store"));
        let engine = Engine::open(store, Arc::new(SystemClock), EngineConfig::default())
            .await
            .expect("engine");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let permit = Arc::new(tokio::sync::Semaphore::new(1))
                .try_acquire_owned()
                .expect("permit");
            let listing = Listing {
                connections: crate::connections::Connections::new(),
                peer: address,
                exclusive: Arc::default(),
            };
            let admitted = Admission::Admitted { _permit: permit };
            serve(Transport::Plain(stream), engine, admitted, listing).await;
        });
        let mut client = TcpStream::connect(address).await.expect("connect");
        let started = tokio::time::Instant::now();
        let mut buffer = [0u8; 16];
        let read = client.read(&mut buffer).await.expect("read");
        assert_eq!(read, 0, "the server closed the connection");
        assert!(started.elapsed() >= HANDSHAKE_TIMEOUT);
        server.await.expect("the connection task ends");
    }
}
