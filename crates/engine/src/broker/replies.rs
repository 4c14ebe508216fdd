//! Request-reply and scatter-gather through temporary reply addresses.
//!
//! A request gets a reply address `_reply.<id>` (a valid queue name, so a responder can answer
//! by sending to it like to any queue) and a correlation id. The address lives in memory only
//! as long as its requester waits: the reply, the timeout or a dropped request removes it, so
//! nothing is left behind.

use super::{
    api::{SendMessage, Sent},
    topics::PublishMessage,
    Engine,
};
use crate::error::{EngineError, Field, FieldProblem, MessageField};
use std::{collections::HashMap, time::Duration};
use tokio::sync::mpsc;
use wharf_model::message::Message;

/// Reply addresses start with this; no queue may be created with it.
pub const REPLY_ADDRESS_PREFIX: &str = "_reply.";
/// Most replies one scatter collects: bounds the memory a request can hold.
pub const SCATTER_EXPECT_MAX: usize = 1_000;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTarget {
    Queue(String),
    Topic { name: String, routing_key: String },
}

/// The replies a scatter collected.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterResult {
    pub replies: Vec<Message>,
    pub expected: usize,
    pub received: usize,
}

/// Pending requests by reply address.
#[derive(Debug, Default)]
pub(super) struct Registry {
    pending: HashMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    /// The request's correlation id, which every reply must carry; `None` for an inbox, which
    /// takes replies to any number of requests.
    correlation_id: Option<String>,
    replies: mpsc::Sender<Message>,
}

/// A reply address that takes any number of replies, whatever their correlation ids: what
/// AMQP's direct reply-to (`amq.rabbitmq.reply-to`) needs. Like a request's address it lives
/// in memory only, and is removed when the inbox is dropped. Replies that find its buffer full
/// are dropped, as RabbitMQ drops direct replies nobody reads.
#[derive(Debug)]
pub struct ReplyInbox {
    engine: Engine,
    address: String,
    replies: mpsc::Receiver<Message>,
}

impl ReplyInbox {
    /// The address to give as `reply_to`; a responder sends to it like to a queue.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The next reply; `None` never comes while the inbox lives.
    pub async fn next(&mut self) -> Option<Message> {
        self.replies.recv().await
    }
}

impl Drop for ReplyInbox {
    fn drop(&mut self) {
        if let Ok(mut registry) = self.engine.inner.replies.lock() {
            registry.pending.remove(&self.address);
        }
    }
}

/// Removes a reply address when its requester stops waiting, however that happens.
struct PendingGuard<'a> {
    engine: &'a Engine,
    reply_to: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut registry) = self.engine.inner.replies.lock() {
            registry.pending.remove(&self.reply_to);
        }
    }
}

impl Engine {
    /// Sends a request and waits for its reply (or fails with `Timeout` after `timeout`).
    pub async fn request(
        &self,
        target: RequestTarget,
        message: SendMessage,
        timeout: Duration,
    ) -> Result<Message, EngineError> {
        let mut result = self.gather(target, message, 1, timeout).await?;
        result.replies.pop().ok_or(EngineError::Timeout {
            waited_ms: timeout.as_millis() as u64,
        })
    }

    /// Publishes once and collects replies until `expect` arrive or `timeout` passes.
    pub async fn scatter(
        &self,
        topic: &str,
        routing_key: &str,
        message: SendMessage,
        expect: usize,
        timeout: Duration,
    ) -> Result<ScatterResult, EngineError> {
        let target = RequestTarget::Topic {
            name: topic.to_string(),
            routing_key: routing_key.to_string(),
        };
        self.gather(target, message, expect, timeout).await
    }

    /// Answers a request: the same as sending to its reply address.
    pub async fn reply(
        &self,
        reply_to: &str,
        correlation_id: &str,
        mut message: SendMessage,
    ) -> Result<Sent, EngineError> {
        if !reply_to.starts_with(REPLY_ADDRESS_PREFIX) {
            return Err(EngineError::invalid_field(
                Field::ReplyTo,
                FieldProblem::NotAReplyAddress,
            ));
        }
        message.correlation_id = Some(correlation_id.to_string());
        let mut sent = self.send(reply_to, vec![message]).await?;
        Ok(sent.remove(0))
    }

    /// Opens a [`ReplyInbox`] holding up to `buffer` unread replies; it counts against
    /// `requests_pending_max` like a waiting request.
    pub fn open_reply_inbox(&self, buffer: usize) -> Result<ReplyInbox, EngineError> {
        self.check_open()?;
        let address = format!("{REPLY_ADDRESS_PREFIX}{}", self.generate_id(self.now()));
        let (sender, replies) = mpsc::channel(buffer.max(1));
        self.register_pending(&address, None, sender)?;
        Ok(ReplyInbox {
            engine: self.clone(),
            address,
            replies,
        })
    }

    /// Delivers messages sent to a reply address to the request waiting on it.
    pub(super) fn send_reply(
        &self,
        reply_to: &str,
        batch: Vec<SendMessage>,
    ) -> Result<Vec<Sent>, EngineError> {
        let now = self.now();
        let messages = self.messages_from_batch(batch, now)?;
        let registry = self.inner.replies.lock().expect("replies lock");
        let pending = registry
            .pending
            .get(reply_to)
            .ok_or_else(|| EngineError::ReplyNotFound {
                reply_to: reply_to.to_string(),
            })?;
        let mut sent = Vec::with_capacity(messages.len());
        for (index, (message, _)) in messages.into_iter().enumerate() {
            let expected = pending.correlation_id.as_deref();
            if expected.is_some() && message.correlation_id.as_deref() != expected {
                return Err(EngineError::invalid_message_field(
                    index,
                    MessageField::CorrelationId,
                    FieldProblem::CorrelationMismatch,
                ));
            }
            // A full buffer means the requester already has all it asked for.
            let _ = pending.replies.try_send(message.clone());
            sent.push(Sent {
                id: message.id,
                duplicate: false,
            });
        }
        Ok(sent)
    }

    /// Registers a waiting request under its reply address, within `requests_pending_max`.
    fn register_pending(
        &self,
        reply_to: &str,
        correlation_id: Option<&str>,
        replies: mpsc::Sender<Message>,
    ) -> Result<(), EngineError> {
        let mut registry = self.inner.replies.lock().expect("replies lock");
        let max = self.inner.config.requests_pending_max;
        if registry.pending.len() >= max {
            return Err(EngineError::LimitReached {
                limit: "requests_pending_max",
                max,
            });
        }
        let pending = Pending {
            correlation_id: correlation_id.map(str::to_string),
            replies,
        };
        registry.pending.insert(reply_to.to_string(), pending);
        Ok(())
    }

    async fn gather(
        &self,
        target: RequestTarget,
        mut message: SendMessage,
        expect: usize,
        timeout: Duration,
    ) -> Result<ScatterResult, EngineError> {
        self.check_open()?;
        if expect == 0 || expect > SCATTER_EXPECT_MAX {
            let problem = FieldProblem::OutOfRange {
                value: expect as u64,
                min: 1,
                max: SCATTER_EXPECT_MAX as u64,
            };
            return Err(EngineError::invalid_field(Field::Expect, problem));
        }
        let now = self.now();
        let reply_to = format!("{REPLY_ADDRESS_PREFIX}{}", self.generate_id(now));
        let correlation_id = message
            .correlation_id
            .clone()
            .unwrap_or_else(|| self.generate_id(now));
        let (sender, mut replies) = mpsc::channel(expect);
        self.register_pending(&reply_to, Some(&correlation_id), sender)?;
        let _guard = PendingGuard {
            engine: self,
            reply_to: reply_to.clone(),
        };
        message.reply_to = Some(reply_to);
        message.correlation_id = Some(correlation_id);
        // Nobody waits for an answer after the timeout: the request message expires with it,
        // so abandoned requests do not pile up in a queue no responder drains.
        let expiry = timeout.max(Duration::from_millis(1));
        message.ttl = Some(message.ttl.map_or(expiry, |ttl| ttl.min(expiry)));
        match target {
            RequestTarget::Queue(queue) => {
                self.send(&queue, vec![message]).await?;
            }
            RequestTarget::Topic { name, routing_key } => {
                let published = PublishMessage {
                    routing_key,
                    message,
                    retain: false,
                };
                self.publish(&name, vec![published]).await?;
            }
        }
        let deadline = now.saturating_add(timeout.as_millis() as u64);
        let mut collected = Vec::with_capacity(expect);
        while collected.len() < expect {
            tokio::select! {
                // Replies that already arrived count even when the deadline is also due.
                biased;
                reply = replies.recv() => match reply {
                    Some(reply) => collected.push(reply),
                    None => break,
                },
                _ = self.inner.clock.sleep_until(deadline) => break,
            }
        }
        Ok(ScatterResult {
            received: collected.len(),
            replies: collected,
            expected: expect,
        })
    }
}
