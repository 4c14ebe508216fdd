//! Channels: their state (delivery tags, consumers, confirms, prefetch) and the translation of
//! their methods into engine calls. docs/doors/amqp.md gives the mapping.

use super::{
    connection::Connection,
    convert,
    publisher::{self, Done, Job, Outcome, Publish, Report, Returned, Target},
    Failure,
};
use crate::connections::ConsumerInfo;
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};
use tokio::task::JoinHandle;
use wharf_codec_amqp::{
    method::{basic, channel as chan, confirm, exchange, queue, tx},
    Content, ContentAssembler, ContentFrames, Method, ReplyCode, ShortString,
};
use wharf_engine::{
    broker::CONSUMER_CREDIT_MAX,
    broker::{ConsumeRequest, Delivery, NackAction, QueueInfo, ReceiveRequest},
    queue::LEASE_MS_MAX,
    security::{Action, Resource, ResourceKind},
    topic::{BindingSpec, Destination, TopicKind, TopicOptions},
    EngineError,
};

/// What AMQP calls class `basic`, in content headers.
const BASIC_CLASS: u16 = 60;
/// Largest body a publish may carry: the engine's batch limit for one message.
const BODY_MAX: u64 = 8 << 20;

/// What a consumer task or the engine tells the connection.
#[derive(Debug)]
pub(super) enum Event {
    /// A delivery for consumer `consumer_tag` of `channel`.
    Deliver {
        channel: u16,
        consumer_tag: String,
        queue: String,
        delivery: Box<Delivery>,
    },
    /// The consumer's stream ended (its queue was deleted, or the engine is closing).
    Ended { channel: u16, consumer_tag: String },
    /// A settle of deliveries failed in the engine (the log could not be written).
    SettleFailed {
        channel: u16,
        epoch: u64,
        settled: Vec<Tagged>,
        error: EngineError,
    },
    /// A reply for the direct reply-to consumer `consumer_tag` of `channel`.
    Reply {
        channel: u16,
        consumer_tag: String,
        message: Box<wharf_model::message::Message>,
    },
}

/// The pseudo-queue of RabbitMQ's direct reply-to: a channel consumes it (without acks) and
/// publishes requests with it as `reply_to`; replies come straight to the consumer.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// How often, and how far apart, a consumer-less auto-delete queue is looked at.
const AUTO_DELETE_LOOKS: usize = 20;
const AUTO_DELETE_PAUSE: Duration = Duration::from_millis(10);
/// Replies a direct reply-to consumer may have unread before more are dropped.
const DIRECT_REPLIES_BUFFER: usize = 1_024;

/// A channel's direct reply-to consumer: its engine reply inbox lives in `task`.
struct ReplyConsumer {
    tag: String,
    address: String,
    task: JoinHandle<()>,
}

pub(super) struct Channel {
    /// This channel's incarnation on its connection: reports of the publisher for a channel
    /// of the same number closed since are dropped.
    pub epoch: u64,
    pub assembler: ContentAssembler,
    /// `basic.qos` prefetch for consumers started from now; 0: the engine's maximum.
    prefetch: u16,
    /// The next publish sequence number once `confirm.select` was received.
    confirm: Option<u64>,
    next_tag: u64,
    /// Deliveries not yet settled, by delivery tag: queue and receipt.
    unacked: BTreeMap<u64, (String, String)>,
    consumers: HashMap<String, Consumed>,
    next_consumer: u64,
    /// The server closed the channel and waits for the client's close-ok; other frames are
    /// dropped meanwhile, as the spec asks.
    pub closing: bool,
    /// After `tx.select`: publishes and settles held until `tx.commit`.
    tx: Option<TxBuffer>,
    /// The direct reply-to consumer, once the channel consumes `amq.rabbitmq.reply-to`.
    replies: Option<ReplyConsumer>,
}

/// What a `queue.bind`/`unbind` or `exchange.bind`/`unbind` asks for.
struct BindAsked<'a> {
    destination: Destination,
    source: &'a ShortString,
    key: &'a ShortString,
    arguments: &'a wharf_codec_amqp::FieldTable,
    unbind: bool,
    no_wait: bool,
}

impl<'a> BindAsked<'a> {
    fn of(method: &'a Method) -> Option<BindAsked<'a>> {
        let queue = |name: &ShortString| Destination::Queue(name.as_str().to_string());
        let topic = |name: &ShortString| Destination::Topic(name.as_str().to_string());
        let (destination, source, key, arguments, unbind, no_wait) = match method {
            Method::Queue(queue::Method::Bind(m)) => {
                let to = queue(&m.queue);
                (
                    to,
                    &m.exchange,
                    &m.routing_key,
                    &m.arguments,
                    false,
                    m.no_wait,
                )
            }
            Method::Queue(queue::Method::Unbind(m)) => {
                let to = queue(&m.queue);
                (to, &m.exchange, &m.routing_key, &m.arguments, true, false)
            }
            Method::Exchange(exchange::Method::Bind(m)) => {
                let to = topic(&m.destination);
                (
                    to,
                    &m.source,
                    &m.routing_key,
                    &m.arguments,
                    false,
                    m.no_wait,
                )
            }
            Method::Exchange(exchange::Method::Unbind(m)) => {
                let to = topic(&m.destination);
                (to, &m.source, &m.routing_key, &m.arguments, true, m.no_wait)
            }
            _ => return None,
        };
        Some(BindAsked {
            destination,
            source,
            key,
            arguments,
            unbind,
            no_wait,
        })
    }
}

/// An unsettled delivery by its tag: (tag, (queue, receipt)).
type Tagged = (u64, (String, String));

/// Message bodies a transaction may hold before `tx.commit`: the server keeps them in memory,
/// so a channel that never commits must not hold more.
const TX_BODY_BYTES_MAX: usize = 64 << 20;

/// What a transactional channel holds until `tx.commit` (or drops at `tx.rollback`).
#[derive(Default)]
struct TxBuffer {
    publishes: Vec<Publish>,
    /// Body bytes of `publishes`.
    bytes: usize,
    /// Settles by delivery tag, with (queue, receipt): put back as unacked at a rollback.
    settles: Vec<(Vec<Tagged>, Option<bool>)>,
}

impl TxBuffer {
    /// Holds `publish` until `tx.commit`, within [`TX_BODY_BYTES_MAX`].
    fn hold(&mut self, publish: Publish, method: &Method) -> Result<(), Failure> {
        let bytes = self.bytes + publish.message.body.len();
        if bytes > TX_BODY_BYTES_MAX {
            let text = format!(
                "the transaction holds {bytes} bytes of message bodies with this publish, more \
                 than {TX_BODY_BYTES_MAX}: commit (or roll back) more often"
            );
            let code = ReplyCode::PreconditionFailed;
            return Err(Failure::channel(publish.channel, code, &text, method));
        }
        self.bytes = bytes;
        self.publishes.push(publish);
        Ok(())
    }
}

struct Consumed {
    task: JoinHandle<()>,
    no_ack: bool,
    queue: String,
}

impl Channel {
    pub fn new(epoch: u64) -> Channel {
        Channel {
            epoch,
            assembler: ContentAssembler::new(BODY_MAX),
            prefetch: 0,
            confirm: None,
            next_tag: 1,
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            next_consumer: 1,
            closing: false,
            tx: None,
            replies: None,
        }
    }

    fn take_tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }
}

fn short(text: &str) -> ShortString {
    ShortString::try_from(text).unwrap_or_default()
}

impl Connection {
    fn channel_state(&mut self, channel: u16) -> Result<&mut Channel, Failure> {
        self.channels.get_mut(&channel).ok_or(Failure::Connection {
            code: ReplyCode::ChannelError,
            text: format!("channel {channel} is not open"),
            class_id: 0,
            method_id: 0,
        })
    }

    fn authorize(
        &self,
        action: Action,
        kind: ResourceKind,
        name: &str,
        channel: u16,
        method: &Method,
    ) -> Result<(), Failure> {
        (self
            .engine
            .authorize(&self.principal, action, Resource { kind, name }))
        .map_err(|error| Failure::engine(channel, error, method))
    }

    /// A method of an open channel.
    pub async fn method(&mut self, channel: u16, method: Method) -> Result<(), Failure> {
        match &method {
            Method::Channel(chan::Method::Close(_)) => {
                self.close_channel(channel);
                self.send(channel, chan::CloseOk {});
                Ok(())
            }
            Method::Channel(chan::Method::CloseOk(_)) => {
                self.close_channel(channel);
                Ok(())
            }
            Method::Channel(chan::Method::Flow(flow)) => {
                self.send(
                    channel,
                    chan::FlowOk {
                        active: flow.active,
                    },
                );
                Ok(())
            }
            Method::Queue(_) => self.queue_method(channel, method).await,
            Method::Exchange(_) => self.exchange_method(channel, method).await,
            Method::Basic(_) => self.basic_method(channel, method).await,
            Method::Confirm(confirm::Method::Select(select)) => {
                let state = self.channel_state(channel)?;
                if state.tx.is_some() {
                    let text = "a transactional channel cannot be put into confirm mode";
                    return Err(Failure::channel(
                        channel,
                        ReplyCode::PreconditionFailed,
                        text,
                        &method,
                    ));
                }
                state.confirm.get_or_insert(1);
                self.listed.confirm_selected(channel);
                if !select.nowait {
                    self.send(channel, confirm::SelectOk {});
                }
                Ok(())
            }
            Method::Tx(_) => self.tx_method(channel, &method).await,
            other => Err(Failure::not_implemented(other)),
        }
    }

    /// Ends a channel: its consumers stop (the engine takes back their leases), and messages
    /// got with `basic.get` and not settled go back to their queues.
    pub fn close_channel(&mut self, channel: u16) {
        self.listed.channel_closed(channel);
        if let Some(state) = self.channels.remove(&channel) {
            self.release(state);
        }
    }

    /// The server closes `channel`: its consumers and deliveries go as in
    /// [`Connection::close_channel`], and it stays, closing, until the client's close-ok.
    pub fn fail_channel(&mut self, channel: u16) {
        self.listed.channel_closed(channel);
        if let Some(state) = self.channels.insert(
            channel,
            Channel {
                closing: true,
                // No publish carries epoch 0: reports for the failed channel are dropped.
                ..Channel::new(0)
            },
        ) {
            self.release(state);
        }
    }

    fn release(&self, state: Channel) {
        for consumed in state.consumers.values() {
            consumed.task.abort();
        }
        let queues = state.consumers.values().map(|c| c.queue.clone()).collect();
        self.delete_if_unused(queues);
        if let Some(replies) = &state.replies {
            replies.task.abort();
        }
        let mut by_queue: HashMap<String, Vec<String>> = HashMap::new();
        for (queue, receipt) in state.unacked.into_values() {
            by_queue.entry(queue).or_default().push(receipt);
        }
        let engine = self.engine.clone();
        tokio::spawn(async move {
            for (queue, receipts) in by_queue {
                let requeue = NackAction::Requeue {
                    delay: Some(Duration::ZERO),
                    error: None,
                };
                // Receipts of consumers already ended are stale: nothing to do for them.
                let _ = engine.nack(&queue, &receipts, requeue).await;
            }
        });
    }

    /// Deletes those of `queues` that are auto-delete queues of this connection and have no
    /// consumer left, as RabbitMQ deletes one when its last consumer goes. A cancelled
    /// consumer detaches as its task ends, so each queue is looked at a few times, briefly.
    fn delete_if_unused(&self, queues: Vec<String>) {
        let queues: Vec<String> = queues
            .into_iter()
            .filter(|queue| self.auto_delete.contains(queue))
            .collect();
        if queues.is_empty() {
            return;
        }
        let engine = self.engine.clone();
        tokio::spawn(async move {
            for queue in queues {
                for _ in 0..AUTO_DELETE_LOOKS {
                    match engine.queue_info(&queue) {
                        Ok(info) if info.stats.consumers == 0 => {
                            // Deleted meanwhile by someone else is fine.
                            let _ = engine.delete_queue(&queue).await;
                            break;
                        }
                        Ok(_) => tokio::time::sleep(AUTO_DELETE_PAUSE).await,
                        Err(_) => break,
                    }
                }
            }
        });
    }

    /// Fails with `405 RESOURCE_LOCKED` when `queue` is another connection's exclusive queue.
    fn check_exclusive(&self, channel: u16, queue: &str, method: &Method) -> Result<(), Failure> {
        match self.exclusive.owner(queue) {
            Some(owner) if owner != self.listed.id() => Err(Failure::channel(
                channel,
                ReplyCode::ResourceLocked,
                &format!(
                    "cannot obtain exclusive access to locked queue {queue:?}: another \
                     connection declared it exclusive"
                ),
                method,
            )),
            _ => Ok(()),
        }
    }

    /// Closes every channel and deletes the connection's exclusive and auto-delete queues (the
    /// connection ends).
    pub fn close_all(&mut self) {
        let channels: Vec<u16> = self.channels.keys().copied().collect();
        for channel in channels {
            self.close_channel(channel);
        }
        self.exclusive
            .release(self.listed.id(), &std::mem::take(&mut self.claimed));
        let (engine, queues) = (self.engine.clone(), std::mem::take(&mut self.temporary));
        tokio::spawn(async move {
            for queue in queues {
                // Deleted already (by the client, or over HTTP) is fine.
                let _ = engine.delete_queue(&queue).await;
            }
        });
    }

    async fn queue_method(&mut self, channel: u16, method: Method) -> Result<(), Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, &method);
        match &method {
            Method::Queue(queue::Method::Declare(declare)) => {
                self.declare_queue(channel, declare, &method).await
            }
            Method::Queue(queue::Method::Bind(_) | queue::Method::Unbind(_)) => {
                self.bind(channel, &method).await
            }
            Method::Queue(queue::Method::Purge(purge)) => {
                self.check_exclusive(channel, purge.queue.as_str(), &method)?;
                self.authorize(
                    Action::Manage,
                    ResourceKind::Queue,
                    purge.queue.as_str(),
                    channel,
                    &method,
                )?;
                let purged = self
                    .engine
                    .purge(purge.queue.as_str())
                    .await
                    .map_err(fail)?;
                if !purge.no_wait {
                    let message_count = u32::try_from(purged).unwrap_or(u32::MAX);
                    self.send(channel, queue::PurgeOk { message_count });
                }
                Ok(())
            }
            Method::Queue(queue::Method::Delete(delete)) => {
                let name = delete.queue.as_str();
                self.check_exclusive(channel, name, &method)?;
                self.authorize(Action::Manage, ResourceKind::Queue, name, channel, &method)?;
                let ready = self.engine.queue_info(name).map_err(fail)?.stats.ready;
                self.engine.delete_queue(name).await.map_err(fail)?;
                if !delete.no_wait {
                    let message_count = u32::try_from(ready).unwrap_or(u32::MAX);
                    self.send(channel, queue::DeleteOk { message_count });
                }
                Ok(())
            }
            other => Err(Failure::not_implemented(other)),
        }
    }

    /// `queue.bind`/`unbind` and `exchange.bind`/`unbind`: a binding of the source exchange's
    /// topic, with the routing key as its pattern (and, for a headers exchange, the arguments
    /// as the header values to match), to the queue or the destination exchange's topic.
    /// Unbinding a binding that is not there is done already, as RabbitMQ answers.
    async fn bind(&mut self, channel: u16, method: &Method) -> Result<(), Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, method);
        let Some(asked) = BindAsked::of(method) else {
            return Ok(());
        };
        let source = asked.source.as_str();
        if let Destination::Queue(queue) = &asked.destination {
            self.check_exclusive(channel, queue, method)?;
        }
        self.authorize(Action::Manage, ResourceKind::Topic, source, channel, method)?;
        // Arguments are header values to match on a headers exchange; other kinds ignore
        // them, as RabbitMQ does.
        let kind = self.engine.topic_info(source).map_err(fail)?.options.kind;
        let headers = match kind {
            TopicKind::Headers => convert::headers_match(asked.arguments).map_err(|text| {
                Failure::channel(channel, ReplyCode::PreconditionFailed, &text, method)
            })?,
            _ => None,
        };
        let spec = BindingSpec {
            pattern: asked.key.as_str().to_string(),
            syntax: Default::default(),
            filter: None,
            headers,
            destination: asked.destination,
        };
        if asked.unbind {
            let bindings = self.engine.list_bindings(source).map_err(fail)?;
            let found = bindings.into_iter().find(|binding| {
                binding.spec.pattern == spec.pattern
                    && binding.spec.destination == spec.destination
                    && binding.spec.headers == spec.headers
            });
            if let Some(binding) = found {
                let unbound = self.engine.unbind(source, &binding.id).await;
                unbound.map_err(fail)?;
            }
        } else {
            self.engine.bind(source, spec).await.map_err(fail)?;
        }
        if !asked.no_wait {
            match (method, asked.unbind) {
                (Method::Exchange(_), false) => self.send(channel, exchange::BindOk {}),
                (Method::Exchange(_), true) => self.send(channel, exchange::UnbindOk {}),
                (_, false) => self.send(channel, queue::BindOk {}),
                (_, true) => self.send(channel, queue::UnbindOk {}),
            }
        }
        Ok(())
    }

    /// `queue.declare`: an existing queue is kept as it is (a different durability is refused,
    /// as RabbitMQ refuses different arguments); a missing one is created; an empty name gets
    /// a server-made `amq.gen-` name.
    async fn declare_queue(
        &mut self,
        channel: u16,
        declare: &queue::Declare,
        method: &Method,
    ) -> Result<(), Failure> {
        let name = match declare.queue.as_str() {
            "" => format!("amq.gen-{:016x}", random_suffix()),
            given => given.to_string(),
        };
        if name == DIRECT_REPLY_TO && declare.passive {
            // RabbitMQ answers a passive declare of the pseudo-queue, which clients use to
            // check that direct reply-to is there.
            let queue = short(&name);
            self.send(
                channel,
                queue::DeclareOk {
                    queue,
                    ..Default::default()
                },
            );
            return Ok(());
        }
        self.check_exclusive(channel, &name, method)?;
        let fail = |error: EngineError| Failure::engine(channel, error, method);
        let existing = self.engine.queue_info(&name);
        match (&existing, declare.passive) {
            (Err(_), true) | (Ok(_), true) => {
                self.authorize(Action::Read, ResourceKind::Queue, &name, channel, method)?;
            }
            _ => self.authorize(Action::Manage, ResourceKind::Queue, &name, channel, method)?,
        }
        let info = match existing {
            Ok(info) if info.options.durable != declare.durable && !declare.passive => {
                let text = format!(
                    "queue {name:?} exists with durable = {}",
                    info.options.durable
                );
                return Err(Failure::channel(
                    channel,
                    ReplyCode::PreconditionFailed,
                    &text,
                    method,
                ));
            }
            Ok(info) => {
                // A declare uses the queue (RabbitMQ's x-expires counts it).
                let _ = self.engine.touch_queue(&name);
                info
            }
            Err(error) if declare.passive => return Err(fail(error)),
            Err(_) => {
                self.create_declared(channel, &name, declare, method)
                    .await?
            }
        };
        if !declare.no_wait {
            let count = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
            self.send(
                channel,
                queue::DeclareOk {
                    queue: short(&name),
                    message_count: count(info.stats.ready),
                    consumer_count: count(info.stats.consumers),
                },
            );
        }
        Ok(())
    }

    /// Creates a declared queue that was missing, with the options its arguments give; an
    /// exclusive or auto-delete one is this connection's to remove.
    async fn create_declared(
        &mut self,
        channel: u16,
        name: &str,
        declare: &queue::Declare,
        method: &Method,
    ) -> Result<QueueInfo, Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, method);
        let options =
            convert::queue_options(declare.durable, &declare.arguments).map_err(|text| {
                Failure::channel(channel, ReplyCode::PreconditionFailed, &text, method)
            })?;
        self.engine.put_queue(name, options).await.map_err(fail)?;
        if declare.exclusive || declare.auto_delete {
            // Both end with this connection at the latest (see docs/doors/amqp.md).
            self.temporary.push(name.to_string());
        }
        if declare.exclusive {
            self.exclusive.claim(name, self.listed.id());
            self.claimed.push(name.to_string());
        }
        if declare.auto_delete {
            self.auto_delete.insert(name.to_string());
        }
        self.engine.queue_info(name).map_err(fail)
    }

    async fn exchange_method(&mut self, channel: u16, method: Method) -> Result<(), Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, &method);
        match &method {
            Method::Exchange(exchange::Method::Declare(declare)) => {
                self.declare_exchange(channel, declare, &method).await
            }
            Method::Exchange(exchange::Method::Bind(_) | exchange::Method::Unbind(_)) => {
                self.bind(channel, &method).await
            }
            Method::Exchange(exchange::Method::Delete(delete)) => {
                let name = delete.exchange.as_str();
                self.authorize(Action::Manage, ResourceKind::Topic, name, channel, &method)?;
                self.engine.delete_topic(name).await.map_err(fail)?;
                if !delete.no_wait {
                    self.send(channel, exchange::DeleteOk {});
                }
                Ok(())
            }
            other => Err(Failure::not_implemented(other)),
        }
    }

    /// `exchange.declare`: a topic of the exchange's type, created if missing; an existing one
    /// of another type is refused.
    async fn declare_exchange(
        &mut self,
        channel: u16,
        declare: &exchange::Declare,
        method: &Method,
    ) -> Result<(), Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, method);
        let name = declare.exchange.as_str();
        let kind = match declare.kind.as_str() {
            "direct" => TopicKind::Direct,
            "fanout" => TopicKind::Fanout,
            "topic" => TopicKind::Topic,
            "headers" => TopicKind::Headers,
            other => {
                let text = format!("unknown exchange type {other:?}");
                return Err(Failure::connection(
                    ReplyCode::CommandInvalid,
                    &text,
                    method,
                ));
            }
        };
        match self.engine.topic_info(name) {
            Ok(info) if info.options.kind != kind => {
                let text = format!("exchange {name:?} exists with another type");
                let code = ReplyCode::PreconditionFailed;
                return Err(Failure::channel(channel, code, &text, method));
            }
            Ok(_) => self.authorize(Action::Read, ResourceKind::Topic, name, channel, method)?,
            Err(error) if declare.passive => return Err(fail(error)),
            Err(_) => {
                self.authorize(Action::Manage, ResourceKind::Topic, name, channel, method)?;
                let options = TopicOptions {
                    kind,
                    ..TopicOptions::default()
                };
                self.engine.put_topic(name, options).await.map_err(fail)?;
            }
        }
        if !declare.no_wait {
            self.send(channel, exchange::DeclareOk {});
        }
        Ok(())
    }

    async fn basic_method(&mut self, channel: u16, method: Method) -> Result<(), Failure> {
        match &method {
            Method::Basic(basic::Method::Qos(qos)) => {
                self.channel_state(channel)?.prefetch = qos.prefetch_count;
                self.send(channel, basic::QosOk {});
                Ok(())
            }
            Method::Basic(basic::Method::Consume(consume)) => {
                self.consume(channel, consume, &method).await
            }
            Method::Basic(basic::Method::Cancel(cancel)) => self.cancel(channel, cancel),
            Method::Basic(basic::Method::Get(get)) => self.get(channel, get, &method).await,
            Method::Basic(basic::Method::Ack(ack)) => {
                self.settle(channel, ack.delivery_tag, ack.multiple, None, &method)
                    .await
            }
            Method::Basic(basic::Method::Nack(nack)) => {
                let requeue = Some(nack.requeue);
                self.settle(channel, nack.delivery_tag, nack.multiple, requeue, &method)
                    .await
            }
            Method::Basic(basic::Method::Reject(reject)) => {
                let requeue = Some(reject.requeue);
                self.settle(channel, reject.delivery_tag, false, requeue, &method)
                    .await
            }
            Method::Basic(basic::Method::Recover(_)) => {
                // Every unsettled delivery of the channel goes back to its queue, to be
                // delivered again (redelivered set); `requeue = false` is treated alike, as
                // RabbitMQ does.
                let state = self.channel_state(channel)?;
                let unacked: Vec<(String, String)> =
                    std::mem::take(&mut state.unacked).into_values().collect();
                publisher::settle_deliveries(&self.engine, unacked, Some(true))
                    .await
                    .map_err(|error| Failure::engine(channel, error, &method))?;
                self.send(channel, basic::RecoverOk {});
                Ok(())
            }
            other => Err(Failure::not_implemented(other)),
        }
    }

    /// `basic.cancel`: the consumer (or the direct reply-to consumer) stops; an auto-delete
    /// queue left without consumers goes.
    fn cancel(&mut self, channel: u16, cancel: &basic::Cancel) -> Result<(), Failure> {
        let tag = cancel.consumer_tag.as_str();
        let state = self.channel_state(channel)?;
        let cancelled = state.consumers.remove(tag);
        if let Some(consumed) = &cancelled {
            consumed.task.abort();
        }
        if state.replies.as_ref().is_some_and(|r| r.tag == tag) {
            if let Some(replies) = state.replies.take() {
                replies.task.abort();
            }
        }
        self.listed.consumer_cancelled(channel, tag);
        if let Some(consumed) = cancelled {
            self.delete_if_unused(vec![consumed.queue]);
        }
        if !cancel.no_wait {
            let consumer_tag = cancel.consumer_tag.clone();
            self.send(channel, basic::CancelOk { consumer_tag });
        }
        Ok(())
    }

    /// `tx.select`, `tx.commit`, `tx.rollback`. Publishes and settles of a transactional
    /// channel wait in the channel; a commit stores the publishes, then applies the settles,
    /// and answers once both are done.
    async fn tx_method(&mut self, channel: u16, method: &Method) -> Result<(), Failure> {
        let refuse = |text: &str| {
            Err(Failure::channel(
                channel,
                ReplyCode::PreconditionFailed,
                text,
                method,
            ))
        };
        let state = self.channel_state(channel)?;
        match method {
            Method::Tx(tx::Method::Select(_)) => {
                if state.confirm.is_some() {
                    return refuse("a channel in confirm mode cannot be made transactional");
                }
                state.tx.get_or_insert_with(TxBuffer::default);
                self.send(channel, tx::SelectOk {});
                Ok(())
            }
            Method::Tx(tx::Method::Commit(_)) => {
                let Some(buffer) = state.tx.as_mut() else {
                    return refuse("channel is not transactional: send tx.select first");
                };
                let TxBuffer {
                    publishes, settles, ..
                } = std::mem::take(buffer);
                let settles = settles
                    .into_iter()
                    .map(|(deliveries, requeue)| publisher::Settle {
                        deliveries: deliveries.into_iter().map(|(_, d)| d).collect(),
                        requeue,
                    })
                    .collect();
                let job = Job::Commit {
                    channel,
                    epoch: state.epoch,
                    publishes,
                    settles,
                };
                self.submit(job, method).await
            }
            Method::Tx(tx::Method::Rollback(_)) => {
                let Some(buffer) = state.tx.as_mut() else {
                    return refuse("channel is not transactional: send tx.select first");
                };
                // Settles rolled back leave their deliveries unsettled, as RabbitMQ does.
                for (deliveries, _) in std::mem::take(&mut buffer.settles) {
                    state.unacked.extend(deliveries);
                }
                buffer.publishes.clear();
                buffer.bytes = 0;
                self.send(channel, tx::RollbackOk {});
                Ok(())
            }
            other => Err(Failure::connection(
                ReplyCode::CommandInvalid,
                &format!("{} is the server's to send", other.name()),
                other,
            )),
        }
    }

    /// Hands a job to the connection's publisher task; waits while the task is behind (the
    /// task never waits for this loop, so this cannot deadlock).
    async fn submit(&mut self, job: Job, method: &Method) -> Result<(), Failure> {
        let stopped = || {
            Failure::connection(
                ReplyCode::InternalError,
                "the connection's publisher stopped",
                method,
            )
        };
        let permit = (self.publish_budget.take(job.body_bytes()).await).ok_or_else(stopped)?;
        (self.publisher.send((job, permit)).await).map_err(|_| stopped())?;
        self.in_flight += 1;
        Ok(())
    }

    async fn consume(
        &mut self,
        channel: u16,
        consume: &basic::Consume,
        method: &Method,
    ) -> Result<(), Failure> {
        let queue = consume.queue.as_str().to_string();
        self.check_exclusive(channel, &queue, method)?;
        self.authorize(Action::Read, ResourceKind::Queue, &queue, channel, method)?;
        let state = self.channel_state(channel)?;
        let tag = match consume.consumer_tag.as_str() {
            "" => {
                state.next_consumer += 1;
                format!("amq.ctag-{}-{}", channel, state.next_consumer - 1)
            }
            given => given.to_string(),
        };
        if state.consumers.contains_key(&tag)
            || state.replies.as_ref().is_some_and(|r| r.tag == tag)
        {
            return Err(Failure::connection(
                ReplyCode::NotAllowed,
                &format!("consumer tag {tag:?} is in use on this channel"),
                method,
            ));
        }
        if queue == DIRECT_REPLY_TO {
            return self.consume_replies(channel, tag, consume, method);
        }
        let credit = match state.prefetch {
            0 => CONSUMER_CREDIT_MAX,
            prefetch => usize::from(prefetch).min(CONSUMER_CREDIT_MAX),
        };
        let request = ConsumeRequest {
            credit,
            lease: Some(Duration::from_millis(LEASE_MS_MAX)),
        };
        let consumer = (self.engine.consume(&queue, request).await)
            .map_err(|error| Failure::engine(channel, error, method))?;
        let listed = ConsumerInfo {
            tag: tag.clone(),
            queue: queue.clone(),
            prefetch: self.channel_state(channel)?.prefetch,
            no_ack: consume.no_ack,
        };
        let queue_name = queue.clone();
        let task = spawn_consumer(self.events.clone(), channel, tag.clone(), queue, consumer);
        self.listed.consumer_added(channel, listed);
        let state = self.channel_state(channel)?;
        state.consumers.insert(
            tag.clone(),
            Consumed {
                task,
                no_ack: consume.no_ack,
                queue: queue_name,
            },
        );
        if !consume.no_wait {
            self.send(
                channel,
                basic::ConsumeOk {
                    consumer_tag: short(&tag),
                },
            );
        }
        Ok(())
    }

    /// `basic.consume` of `amq.rabbitmq.reply-to`: an engine reply inbox for the channel,
    /// whose address the channel's requests carry as `reply_to`.
    fn consume_replies(
        &mut self,
        channel: u16,
        tag: String,
        consume: &basic::Consume,
        method: &Method,
    ) -> Result<(), Failure> {
        let refuse = |text: &str| {
            Err(Failure::channel(
                channel,
                ReplyCode::PreconditionFailed,
                text,
                method,
            ))
        };
        if !consume.no_ack {
            return refuse(
                "reply consumer cannot acknowledge: consume amq.rabbitmq.reply-to with no_ack",
            );
        }
        let events = self.events.clone();
        let mut inbox = (self.engine.open_reply_inbox(DIRECT_REPLIES_BUFFER))
            .map_err(|error| Failure::engine(channel, error, method))?;
        let state = self.channel_state(channel)?;
        if state.replies.is_some() {
            return refuse("the channel has a direct reply-to consumer already");
        }
        let address = inbox.address().to_string();
        let consumer_tag = tag.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = inbox.next().await {
                let event = Event::Reply {
                    channel,
                    consumer_tag: consumer_tag.clone(),
                    message: Box::new(message),
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        });
        state.replies = Some(ReplyConsumer {
            tag: tag.clone(),
            address,
            task,
        });
        let listed = ConsumerInfo {
            tag: tag.clone(),
            queue: DIRECT_REPLY_TO.to_string(),
            prefetch: 0,
            no_ack: true,
        };
        self.listed.consumer_added(channel, listed);
        if !consume.no_wait {
            self.send(
                channel,
                basic::ConsumeOk {
                    consumer_tag: short(&tag),
                },
            );
        }
        Ok(())
    }

    async fn get(
        &mut self,
        channel: u16,
        get: &basic::Get,
        method: &Method,
    ) -> Result<(), Failure> {
        let queue = get.queue.as_str().to_string();
        self.check_exclusive(channel, &queue, method)?;
        self.authorize(Action::Read, ResourceKind::Queue, &queue, channel, method)?;
        let fail = |error: EngineError| Failure::engine(channel, error, method);
        let request = ReceiveRequest {
            max_messages: 1,
            wait: Duration::ZERO,
            lease: Some(Duration::from_millis(LEASE_MS_MAX)),
        };
        let mut deliveries = self.engine.receive(&queue, request).await.map_err(fail)?;
        let Some(delivery) = deliveries.pop() else {
            self.send(
                channel,
                basic::GetEmpty {
                    reserved_1: ShortString::default(),
                },
            );
            return Ok(());
        };
        let ready = self
            .engine
            .queue_info(&queue)
            .map_or(0, |info| info.stats.ready);
        let state = self.channel_state(channel)?;
        let tag = state.take_tag();
        if get.no_ack {
            self.engine
                .ack(&queue, std::slice::from_ref(&delivery.receipt))
                .await
                .map_err(fail)?;
        } else {
            state
                .unacked
                .insert(tag, (queue.clone(), delivery.receipt.clone()));
        }
        let (exchange, routing_key) = convert::routed_by(&delivery.message, &queue);
        let get_ok = basic::GetOk {
            delivery_tag: tag,
            redelivered: delivery.delivery_count > 1,
            exchange,
            routing_key,
            message_count: u32::try_from(ready).unwrap_or(u32::MAX),
        };
        self.send_content(channel, get_ok.into(), &delivery.message);
        Ok(())
    }

    /// The unacked deliveries a settle names: `tag`, or every one up to it with `multiple`
    /// (all when `tag` is 0). An unknown tag is a channel error, as in RabbitMQ.
    fn take_unacked(
        &mut self,
        channel: u16,
        tag: u64,
        multiple: bool,
        method: &Method,
    ) -> Result<Vec<Tagged>, Failure> {
        let state = self.channel_state(channel)?;
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let rest = state.unacked.split_off(&upto.saturating_add(1));
            let taken = std::mem::replace(&mut state.unacked, rest);
            return Ok(taken.into_iter().collect());
        }
        match state.unacked.remove(&tag) {
            Some(settled) => Ok(vec![(tag, settled)]),
            None => Err(Failure::channel(
                channel,
                ReplyCode::PreconditionFailed,
                &format!("unknown delivery tag {tag}"),
                method,
            )),
        }
    }

    /// `basic.ack` (`requeue` None), or `nack`/`reject` requeueing (Some(true)) or
    /// dead-lettering (Some(false)) the deliveries named; held until commit on a transactional
    /// channel.
    async fn settle(
        &mut self,
        channel: u16,
        tag: u64,
        multiple: bool,
        requeue: Option<bool>,
        method: &Method,
    ) -> Result<(), Failure> {
        let settled = self.take_unacked(channel, tag, multiple, method)?;
        let state = self.channel_state(channel)?;
        if let Some(buffer) = state.tx.as_mut() {
            buffer.settles.push((settled, requeue));
            return Ok(());
        }
        // Settles answer nothing, so the read loop does not wait for their commit: it goes on
        // delivering while the log writes. One that fails comes back as an event, which puts
        // the deliveries back as unsettled and closes the channel (so they are requeued).
        let epoch = state.epoch;
        let (engine, events) = (self.engine.clone(), self.events.clone());
        self.settling.retain(|task| !task.is_finished());
        self.settling.push(tokio::spawn(async move {
            let deliveries = settled
                .iter()
                .map(|(_, delivery)| delivery.clone())
                .collect();
            if let Err(error) = publisher::settle_deliveries(&engine, deliveries, requeue).await {
                let failed = Event::SettleFailed {
                    channel,
                    epoch,
                    settled,
                    error,
                };
                let _ = events.send(failed).await;
            }
        }));
        Ok(())
    }

    /// A delivery or the end of a consumer, from a consumer task.
    pub async fn handle_event(&mut self, event: Event) {
        match event {
            Event::Deliver {
                channel,
                consumer_tag,
                queue,
                delivery,
            } => {
                self.deliver(channel, &consumer_tag, &queue, &delivery)
                    .await
            }
            Event::SettleFailed {
                channel,
                epoch,
                settled,
                error,
            } => {
                let Some(state) = self.channels.get_mut(&channel) else {
                    return;
                };
                if state.epoch != epoch || state.closing {
                    return;
                }
                state.unacked.extend(settled);
                let method = Method::Basic(basic::Method::Ack(basic::Ack::default()));
                self.fail(Failure::engine(channel, error, &method));
            }
            Event::Reply {
                channel,
                consumer_tag,
                message,
            } => self.deliver_reply(channel, &consumer_tag, &message),
            Event::Ended {
                channel,
                consumer_tag,
            } => self.consumer_ended(channel, &consumer_tag),
        }
    }

    /// `basic.deliver` of a consumer's delivery; with `no_ack` it is acked at once.
    async fn deliver(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        queue: &str,
        delivery: &Delivery,
    ) {
        let Some(state) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(no_ack) = state.consumers.get(consumer_tag).map(|c| c.no_ack) else {
            return;
        };
        let tag = state.take_tag();
        if no_ack {
            let _ = self
                .engine
                .ack(queue, std::slice::from_ref(&delivery.receipt))
                .await;
        } else {
            state
                .unacked
                .insert(tag, (queue.to_string(), delivery.receipt.clone()));
        }
        let (exchange, routing_key) = convert::routed_by(&delivery.message, queue);
        let deliver = basic::Deliver {
            consumer_tag: short(consumer_tag),
            delivery_tag: tag,
            redelivered: delivery.delivery_count > 1,
            exchange,
            routing_key,
        };
        self.send_content(channel, deliver.into(), &delivery.message);
    }

    /// A reply for the channel's direct reply-to consumer.
    fn deliver_reply(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        message: &wharf_model::message::Message,
    ) {
        let Some(state) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(replies) = state.replies.as_ref().filter(|r| r.tag == consumer_tag) else {
            return;
        };
        let routing_key = short(&replies.address);
        let deliver = basic::Deliver {
            consumer_tag: short(consumer_tag),
            delivery_tag: state.take_tag(),
            redelivered: false,
            exchange: ShortString::default(),
            routing_key,
        };
        self.send_content(channel, deliver.into(), message);
    }

    /// A consumer's stream ended by itself (its queue was deleted): with
    /// `consumer_cancel_notify`, the client hears its consumer is gone.
    fn consumer_ended(&mut self, channel: u16, consumer_tag: &str) {
        let Some(state) = self.channels.get_mut(&channel) else {
            return;
        };
        if state.consumers.remove(consumer_tag).is_some() {
            self.listed.consumer_cancelled(channel, consumer_tag);
            self.send(
                channel,
                basic::Cancel {
                    consumer_tag: short(consumer_tag),
                    no_wait: true,
                },
            );
        }
    }

    /// A method with content (deliver, get-ok, return) and the message as header and bodies.
    fn send_content(
        &mut self,
        channel: u16,
        method: Method,
        message: &wharf_model::message::Message,
    ) {
        self.send(channel, method);
        let frames = ContentFrames::new(
            channel,
            BASIC_CLASS,
            convert::properties(message),
            message.body.clone(),
            self.frame_max,
        );
        for frame in frames {
            frame.encode(&mut self.out);
        }
    }

    /// A whole `basic.publish`: to a queue through the default exchange (`""`), or to the
    /// topic its exchange names. Stored by the connection's publisher task; its confirm follows
    /// the engine's answer, which comes once the message is durable. A transactional channel
    /// holds it until `tx.commit`.
    pub async fn publish(&mut self, channel: u16, content: Content) -> Result<(), Failure> {
        let Method::Basic(basic::Method::Publish(publish)) = &content.method else {
            return Err(Failure::connection(
                ReplyCode::UnexpectedFrame,
                "content after a method that takes none",
                &content.method,
            ));
        };
        let (exchange, key) = (publish.exchange.as_str(), publish.routing_key.as_str());
        let (kind, name) = match exchange {
            "" => (ResourceKind::Queue, key),
            exchange => (ResourceKind::Topic, exchange),
        };
        self.authorize(Action::Write, kind, name, channel, &content.method)?;
        let target = match exchange {
            "" => Target::Queue(key.to_string()),
            exchange => Target::Topic {
                exchange: exchange.to_string(),
                routing_key: key.to_string(),
            },
        };
        let returned = publish.mandatory.then(|| {
            Box::new(Returned {
                exchange: publish.exchange.clone(),
                routing_key: publish.routing_key.clone(),
                properties: content.header.properties.clone(),
                body: content.body.clone(),
            })
        });
        let mut message = convert::send_message(content.header.properties, content.body);
        let state = self.channel_state(channel)?;
        if message.reply_to.as_deref() == Some(DIRECT_REPLY_TO) {
            let Some(replies) = &state.replies else {
                return Err(Failure::channel(
                    channel,
                    ReplyCode::PreconditionFailed,
                    "fast reply consumer does not exist: consume amq.rabbitmq.reply-to first",
                    &content.method,
                ));
            };
            message.reply_to = Some(replies.address.clone());
        }
        let confirm = state.confirm.as_mut().map(|next| {
            *next += 1;
            *next - 1
        });
        let publish = Publish {
            channel,
            epoch: state.epoch,
            confirm,
            target,
            message,
            returned,
        };
        if let Some(buffer) = state.tx.as_mut() {
            return buffer.hold(publish, &content.method);
        }
        self.submit(Job::Publish(Box::new(publish)), &content.method)
            .await
    }

    /// Answers what the publisher task stored: returns of unroutable mandatory publishes,
    /// confirms (consecutive acks of a channel as one `multiple` ack), channel errors of
    /// refused publishes outside confirm mode, and commit-oks.
    pub fn handle_report(&mut self, report: Report) {
        match report {
            Report::Published(dones) => {
                self.in_flight = self.in_flight.saturating_sub(dones.len());
                self.answer_publishes(dones)
            }
            Report::Committed {
                channel,
                epoch,
                dones,
                result,
            } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                if !self.is_live(channel, epoch) {
                    return;
                }
                match result {
                    Ok(()) => {
                        self.answer_publishes(dones);
                        self.send(channel, tx::CommitOk {});
                    }
                    Err(error) => {
                        let method = Method::Tx(tx::Method::Commit(tx::Commit {}));
                        self.fail(Failure::engine(channel, error, &method))
                    }
                }
            }
        }
    }

    fn is_live(&self, channel: u16, epoch: u64) -> bool {
        self.channels
            .get(&channel)
            .is_some_and(|state| state.epoch == epoch && !state.closing)
    }

    fn answer_publishes(&mut self, dones: Vec<Done>) {
        // Per channel, the last confirm tag acked and not yet sent.
        let mut acks: BTreeMap<u16, u64> = BTreeMap::new();
        for done in dones {
            if !self.is_live(done.channel, done.epoch) {
                continue;
            }
            let channel = done.channel;
            match done.outcome {
                Outcome::Stored => {}
                Outcome::Unroutable => {
                    if let Some(returned) = done.returned {
                        self.return_content(channel, *returned);
                    }
                }
                Outcome::Refused(error) => {
                    if let Some(tag) = done.confirm {
                        if let Some(upto) = acks.remove(&channel) {
                            self.send(channel, ack_upto(upto));
                        }
                        tracing::debug!(%error, "amqp publish refused");
                        self.send(
                            channel,
                            basic::Nack {
                                delivery_tag: tag,
                                multiple: false,
                                requeue: false,
                            },
                        );
                    } else {
                        acks.remove(&channel);
                        let method =
                            Method::Basic(basic::Method::Publish(basic::Publish::default()));
                        self.fail(Failure::engine(channel, error, &method));
                    }
                    continue;
                }
            }
            if let Some(tag) = done.confirm {
                acks.insert(channel, tag);
            }
        }
        for (channel, upto) in acks {
            self.send(channel, ack_upto(upto));
        }
    }

    /// `basic.return` of an unroutable mandatory publish, with its content.
    fn return_content(&mut self, channel: u16, returned: Returned) {
        let method = basic::Return {
            reply_code: ReplyCode::NoRoute.code(),
            reply_text: short("NO_ROUTE"),
            exchange: returned.exchange,
            routing_key: returned.routing_key,
        };
        self.send(channel, method);
        let frames = ContentFrames::new(
            channel,
            BASIC_CLASS,
            returned.properties,
            returned.body,
            self.frame_max,
        );
        for frame in frames {
            frame.encode(&mut self.out);
        }
    }
}

/// A confirm of every publish up to `tag` not confirmed yet: the channel's confirms go out in
/// publish order, so the ones before it are answered already.
fn ack_upto(tag: u64) -> basic::Ack {
    basic::Ack {
        delivery_tag: tag,
        multiple: true,
    }
}

/// Forwards a consumer's deliveries to its connection until either ends; tells the
/// connection when the consumer's stream ended by itself.
fn spawn_consumer(
    events: tokio::sync::mpsc::Sender<Event>,
    channel: u16,
    consumer_tag: String,
    queue: String,
    mut consumer: wharf_engine::broker::Consumer,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            let delivery = Box::new(delivery);
            let (consumer_tag, queue) = (consumer_tag.clone(), queue.clone());
            let event = Event::Deliver {
                channel,
                consumer_tag,
                queue,
                delivery,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
        let _ = events
            .send(Event::Ended {
                channel,
                consumer_tag,
            })
            .await;
    })
}

/// 64 random bits for server-made names: the process's random hash keys over a counter and
/// the time, so two names never repeat within a process and hardly across processes.
fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |elapsed| elapsed.as_nanos()));
    hasher.finish()
}
