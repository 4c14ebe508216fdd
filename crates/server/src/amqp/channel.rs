//! Channels: their state (delivery tags, consumers, confirms, prefetch) and the translation of
//! their methods into engine calls. docs/doors/amqp.md gives the mapping.

use super::{connection::Connection, convert, Failure};
use crate::connections::ConsumerInfo;
use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};
use tokio::task::JoinHandle;
use wharf_codec_amqp::{
    method::{basic, channel as chan, confirm, exchange, queue},
    Content, ContentAssembler, ContentFrames, Method, ReplyCode, ShortString,
};
use wharf_engine::{
    broker::CONSUMER_CREDIT_MAX,
    broker::{ConsumeRequest, Delivery, NackAction, PublishMessage, ReceiveRequest},
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
}

pub(super) struct Channel {
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
}

struct Consumed {
    task: JoinHandle<()>,
    no_ack: bool,
}

impl Channel {
    pub fn new() -> Channel {
        Channel {
            assembler: ContentAssembler::new(BODY_MAX),
            prefetch: 0,
            confirm: None,
            next_tag: 1,
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            next_consumer: 1,
            closing: false,
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
                self.channel_state(channel)?.confirm.get_or_insert(1);
                self.listed.confirm_selected(channel);
                if !select.nowait {
                    self.send(channel, confirm::SelectOk {});
                }
                Ok(())
            }
            other => Err(Failure::connection(
                ReplyCode::NotImplemented,
                &format!("{} is not supported by Wharf's AMQP door", other.name()),
                other,
            )),
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
                ..Channel::new()
            },
        ) {
            self.release(state);
        }
    }

    fn release(&self, state: Channel) {
        for consumed in state.consumers.values() {
            consumed.task.abort();
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

    /// Closes every channel and deletes the connection's exclusive and auto-delete queues (the
    /// connection ends).
    pub fn close_all(&mut self) {
        let channels: Vec<u16> = self.channels.keys().copied().collect();
        for channel in channels {
            self.close_channel(channel);
        }
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
                self.bind_queue(channel, &method).await
            }
            Method::Queue(queue::Method::Purge(purge)) => {
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
                self.authorize(Action::Manage, ResourceKind::Queue, name, channel, &method)?;
                let ready = self.engine.queue_info(name).map_err(fail)?.stats.ready;
                self.engine.delete_queue(name).await.map_err(fail)?;
                if !delete.no_wait {
                    let message_count = u32::try_from(ready).unwrap_or(u32::MAX);
                    self.send(channel, queue::DeleteOk { message_count });
                }
                Ok(())
            }
            other => Err(Failure::connection(
                ReplyCode::NotImplemented,
                &format!("{} is not supported by Wharf's AMQP door", other.name()),
                other,
            )),
        }
    }

    /// `queue.bind` and `queue.unbind`: a binding of the exchange's topic with the routing key
    /// as its pattern, to the queue. Unbinding a binding that is not there is done already, as
    /// RabbitMQ answers.
    async fn bind_queue(&mut self, channel: u16, method: &Method) -> Result<(), Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, method);
        let (queue, exchange, key, no_wait) = match method {
            Method::Queue(queue::Method::Bind(bind)) => {
                (&bind.queue, &bind.exchange, &bind.routing_key, bind.no_wait)
            }
            Method::Queue(queue::Method::Unbind(unbind)) => {
                (&unbind.queue, &unbind.exchange, &unbind.routing_key, false)
            }
            _ => return Ok(()),
        };
        let exchange = exchange.as_str();
        self.authorize(
            Action::Manage,
            ResourceKind::Topic,
            exchange,
            channel,
            method,
        )?;
        let destination = Destination::Queue(queue.as_str().to_string());
        if let Method::Queue(queue::Method::Unbind(_)) = method {
            let bindings = self.engine.list_bindings(exchange).map_err(fail)?;
            let found = bindings.into_iter().find(|binding| {
                binding.spec.pattern == key.as_str() && binding.spec.destination == destination
            });
            if let Some(binding) = found {
                self.engine
                    .unbind(exchange, &binding.id)
                    .await
                    .map_err(fail)?;
            }
            self.send(channel, queue::UnbindOk {});
            return Ok(());
        }
        let spec = BindingSpec {
            pattern: key.as_str().to_string(),
            syntax: Default::default(),
            filter: None,
            headers: None,
            destination,
        };
        self.engine.bind(exchange, spec).await.map_err(fail)?;
        if !no_wait {
            self.send(channel, queue::BindOk {});
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
            Ok(info) => info,
            Err(error) if declare.passive => return Err(fail(error)),
            Err(_) => {
                let options = convert::queue_options(declare.durable, &declare.arguments).map_err(
                    |text| Failure::channel(channel, ReplyCode::PreconditionFailed, &text, method),
                )?;
                self.engine.put_queue(&name, options).await.map_err(fail)?;
                if declare.exclusive || declare.auto_delete {
                    // Both end with this connection (see docs/doors/amqp.md).
                    self.temporary.push(name.clone());
                }
                self.engine.queue_info(&name).map_err(fail)?
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

    async fn exchange_method(&mut self, channel: u16, method: Method) -> Result<(), Failure> {
        let fail = |error: EngineError| Failure::engine(channel, error, &method);
        match &method {
            Method::Exchange(exchange::Method::Declare(declare)) => {
                let name = declare.exchange.as_str();
                let kind = match declare.kind.as_str() {
                    "direct" => TopicKind::Direct,
                    "fanout" => TopicKind::Fanout,
                    "topic" => TopicKind::Topic,
                    "headers" => TopicKind::Headers,
                    other => {
                        return Err(Failure::connection(
                            ReplyCode::CommandInvalid,
                            &format!("unknown exchange type {other:?}"),
                            &method,
                        ))
                    }
                };
                match self.engine.topic_info(name) {
                    Ok(info) if info.options.kind != kind => {
                        let text = format!("exchange {name:?} exists with another type");
                        return Err(Failure::channel(
                            channel,
                            ReplyCode::PreconditionFailed,
                            &text,
                            &method,
                        ));
                    }
                    Ok(_) => {
                        self.authorize(Action::Read, ResourceKind::Topic, name, channel, &method)?
                    }
                    Err(error) if declare.passive => return Err(fail(error)),
                    Err(_) => {
                        self.authorize(
                            Action::Manage,
                            ResourceKind::Topic,
                            name,
                            channel,
                            &method,
                        )?;
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
            Method::Exchange(exchange::Method::Delete(delete)) => {
                let name = delete.exchange.as_str();
                self.authorize(Action::Manage, ResourceKind::Topic, name, channel, &method)?;
                self.engine.delete_topic(name).await.map_err(fail)?;
                if !delete.no_wait {
                    self.send(channel, exchange::DeleteOk {});
                }
                Ok(())
            }
            other => Err(Failure::connection(
                ReplyCode::NotImplemented,
                &format!("{} is not supported by Wharf's AMQP door", other.name()),
                other,
            )),
        }
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
            Method::Basic(basic::Method::Cancel(cancel)) => {
                let state = self.channel_state(channel)?;
                if let Some(consumed) = state.consumers.remove(cancel.consumer_tag.as_str()) {
                    consumed.task.abort();
                }
                self.listed
                    .consumer_cancelled(channel, cancel.consumer_tag.as_str());
                if !cancel.no_wait {
                    self.send(
                        channel,
                        basic::CancelOk {
                            consumer_tag: cancel.consumer_tag.clone(),
                        },
                    );
                }
                Ok(())
            }
            Method::Basic(basic::Method::Get(get)) => self.get(channel, get, &method).await,
            Method::Basic(basic::Method::Ack(ack)) => {
                let settled =
                    self.take_unacked(channel, ack.delivery_tag, ack.multiple, &method)?;
                self.settle(channel, settled, None, &method).await
            }
            Method::Basic(basic::Method::Nack(nack)) => {
                let settled =
                    self.take_unacked(channel, nack.delivery_tag, nack.multiple, &method)?;
                self.settle(channel, settled, Some(nack.requeue), &method)
                    .await
            }
            Method::Basic(basic::Method::Reject(reject)) => {
                let settled = self.take_unacked(channel, reject.delivery_tag, false, &method)?;
                self.settle(channel, settled, Some(reject.requeue), &method)
                    .await
            }
            other => Err(Failure::connection(
                ReplyCode::NotImplemented,
                &format!("{} is not supported by Wharf's AMQP door", other.name()),
                other,
            )),
        }
    }

    async fn consume(
        &mut self,
        channel: u16,
        consume: &basic::Consume,
        method: &Method,
    ) -> Result<(), Failure> {
        let queue = consume.queue.as_str().to_string();
        self.authorize(Action::Read, ResourceKind::Queue, &queue, channel, method)?;
        let state = self.channel_state(channel)?;
        let tag = match consume.consumer_tag.as_str() {
            "" => {
                state.next_consumer += 1;
                format!("amq.ctag-{}-{}", channel, state.next_consumer - 1)
            }
            given => given.to_string(),
        };
        if state.consumers.contains_key(&tag) {
            return Err(Failure::connection(
                ReplyCode::NotAllowed,
                &format!("consumer tag {tag:?} is in use on this channel"),
                method,
            ));
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
        let task = spawn_consumer(self.events.clone(), channel, tag.clone(), queue, consumer);
        self.listed.consumer_added(channel, listed);
        let state = self.channel_state(channel)?;
        state.consumers.insert(
            tag.clone(),
            Consumed {
                task,
                no_ack: consume.no_ack,
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

    async fn get(
        &mut self,
        channel: u16,
        get: &basic::Get,
        method: &Method,
    ) -> Result<(), Failure> {
        let queue = get.queue.as_str().to_string();
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
        let get_ok = basic::GetOk {
            delivery_tag: tag,
            redelivered: delivery.delivery_count > 1,
            exchange: ShortString::default(),
            routing_key: short(&queue),
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
    ) -> Result<Vec<(String, String)>, Failure> {
        let state = self.channel_state(channel)?;
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let tags: Vec<u64> = state.unacked.range(..=upto).map(|(tag, _)| *tag).collect();
            return Ok(tags
                .into_iter()
                .filter_map(|tag| state.unacked.remove(&tag))
                .collect());
        }
        match state.unacked.remove(&tag) {
            Some(settled) => Ok(vec![settled]),
            None => Err(Failure::channel(
                channel,
                ReplyCode::PreconditionFailed,
                &format!("unknown delivery tag {tag}"),
                method,
            )),
        }
    }

    /// Acks (`requeue` None), requeues (Some(true)) or dead-letters (Some(false)) deliveries.
    async fn settle(
        &mut self,
        channel: u16,
        settled: Vec<(String, String)>,
        requeue: Option<bool>,
        method: &Method,
    ) -> Result<(), Failure> {
        let mut by_queue: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (queue, receipt) in settled {
            by_queue.entry(queue).or_default().push(receipt);
        }
        for (queue, receipts) in by_queue {
            let done = match requeue {
                None => self.engine.ack(&queue, &receipts).await,
                Some(true) => {
                    let action = NackAction::Requeue {
                        delay: Some(Duration::ZERO),
                        error: None,
                    };
                    self.engine.nack(&queue, &receipts, action).await
                }
                Some(false) => {
                    self.engine
                        .nack(&queue, &receipts, NackAction::DeadLetter { error: None })
                        .await
                }
            };
            done.map_err(|error| Failure::engine(channel, error, method))?;
        }
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
                let Some(state) = self.channels.get_mut(&channel) else {
                    return;
                };
                let Some(no_ack) = state.consumers.get(&consumer_tag).map(|c| c.no_ack) else {
                    return;
                };
                let tag = state.take_tag();
                if no_ack {
                    let _ = self
                        .engine
                        .ack(&queue, std::slice::from_ref(&delivery.receipt))
                        .await;
                } else {
                    state
                        .unacked
                        .insert(tag, (queue.clone(), delivery.receipt.clone()));
                }
                let deliver = basic::Deliver {
                    consumer_tag: short(&consumer_tag),
                    delivery_tag: tag,
                    redelivered: delivery.delivery_count > 1,
                    exchange: ShortString::default(),
                    routing_key: short(&queue),
                };
                self.send_content(channel, deliver.into(), &delivery.message);
            }
            Event::Ended {
                channel,
                consumer_tag,
            } => {
                let Some(state) = self.channels.get_mut(&channel) else {
                    return;
                };
                if state.consumers.remove(&consumer_tag).is_some() {
                    self.listed.consumer_cancelled(channel, &consumer_tag);
                    // consumer_cancel_notify: the client hears its consumer is gone.
                    self.send(
                        channel,
                        basic::Cancel {
                            consumer_tag: short(&consumer_tag),
                            no_wait: true,
                        },
                    );
                }
            }
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
    /// topic its exchange names. Confirms follow the engine's answer, which comes once the
    /// message is durable.
    pub async fn publish(&mut self, channel: u16, content: Content) -> Result<(), Failure> {
        let Method::Basic(basic::Method::Publish(publish)) = &content.method else {
            return Err(Failure::connection(
                ReplyCode::UnexpectedFrame,
                "content after a method that takes none",
                &content.method,
            ));
        };
        let publish = publish.clone();
        let routed = self.route(channel, &publish, &content).await?;
        let confirm = self.channel_state(channel)?.confirm.as_mut().map(|next| {
            *next += 1;
            *next - 1
        });
        let stored = routed.is_ok();
        match routed {
            Ok(false) if publish.mandatory => self.return_content(channel, &publish, content),
            Ok(_) => {}
            Err(error) if confirm.is_some() => tracing::debug!(%error, "amqp publish refused"),
            Err(error) => return Err(Failure::engine(channel, error, &content.method)),
        }
        if let Some(tag) = confirm {
            match stored {
                true => self.send(
                    channel,
                    basic::Ack {
                        delivery_tag: tag,
                        multiple: false,
                    },
                ),
                false => self.send(
                    channel,
                    basic::Nack {
                        delivery_tag: tag,
                        multiple: false,
                        requeue: false,
                    },
                ),
            }
        }
        Ok(())
    }

    /// Stores a publish: `Ok(true)` routed, `Ok(false)` unroutable (no such queue for the
    /// default exchange, or no binding matched).
    async fn route(
        &mut self,
        channel: u16,
        publish: &basic::Publish,
        content: &Content,
    ) -> Result<Result<bool, EngineError>, Failure> {
        let (exchange, key) = (publish.exchange.as_str(), publish.routing_key.as_str());
        let properties = content.header.properties.clone();
        let message = convert::send_message(properties, content.body.clone());
        if exchange.is_empty() {
            self.authorize(
                Action::Write,
                ResourceKind::Queue,
                key,
                channel,
                &content.method,
            )?;
            return Ok(match self.engine.send(key, vec![message]).await {
                Ok(_) => Ok(true),
                Err(EngineError::QueueNotFound { .. }) => Ok(false),
                Err(error) => Err(error),
            });
        }
        self.authorize(
            Action::Write,
            ResourceKind::Topic,
            exchange,
            channel,
            &content.method,
        )?;
        let batch = vec![PublishMessage {
            routing_key: key.to_string(),
            message,
        }];
        let published = self.engine.publish(exchange, batch).await;
        Ok(published.map(|published| published.iter().any(|p| p.routed > 0)))
    }

    /// `basic.return` of an unroutable mandatory publish, with its content.
    fn return_content(&mut self, channel: u16, publish: &basic::Publish, content: Content) {
        let returned = basic::Return {
            reply_code: ReplyCode::NoRoute.code(),
            reply_text: short("NO_ROUTE"),
            exchange: publish.exchange.clone(),
            routing_key: publish.routing_key.clone(),
        };
        self.send(channel, returned);
        let properties = content.header.properties;
        let frames = ContentFrames::new(
            channel,
            BASIC_CLASS,
            properties,
            content.body,
            self.frame_max,
        );
        for frame in frames {
            frame.encode(&mut self.out);
        }
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
