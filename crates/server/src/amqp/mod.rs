//! The AMQP 0-9-1 door: RabbitMQ's clients (pika, kombu, aio-pika, lapin, ...) talk to the
//! engine's queues and topics. See docs/doors/amqp.md for the mapping and what is not there
//! yet. `connection` owns the socket and the handshake; `channel` keeps each channel's state
//! and translates its methods into engine calls; `convert` maps message properties.

mod channel;
mod connection;
mod convert;
mod publisher;

pub use crate::door::Listeners;
use crate::{
    connections::{ConnectionId, Connections},
    door::Admission,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use wharf_codec_amqp::{Method, ReplyCode, Scope};
use wharf_engine::{
    topic::{TopicKind, TopicOptions},
    Engine, EngineError,
};

/// Why a method failed: the channel or the whole connection closes with this reply.
#[derive(Debug)]
pub(crate) enum Failure {
    Connection {
        code: ReplyCode,
        text: String,
        class_id: u16,
        method_id: u16,
    },
    Channel {
        channel: u16,
        code: ReplyCode,
        text: String,
        class_id: u16,
        method_id: u16,
    },
}

impl Failure {
    fn connection(code: ReplyCode, text: &str, method: &Method) -> Failure {
        Failure::Connection {
            code,
            text: text.to_string(),
            class_id: method.class_id(),
            method_id: method.method_id(),
        }
    }

    /// A method the door does not implement: `540 NOT_IMPLEMENTED`, which closes the
    /// connection.
    fn not_implemented(method: &Method) -> Failure {
        let text = format!("{} is not supported by Wharf's AMQP door", method.name());
        Failure::connection(ReplyCode::NotImplemented, &text, method)
    }

    fn channel(channel: u16, code: ReplyCode, text: &str, method: &Method) -> Failure {
        Failure::Channel {
            channel,
            code,
            text: text.to_string(),
            class_id: method.class_id(),
            method_id: method.method_id(),
        }
    }

    /// An engine error as AMQP's reply: a missing resource is 404, a refusal 403, a bad
    /// name or argument 406 (as is deleting a queue, binding or exchange that a webhook
    /// endpoint or a persistent subscription needs), a limit 506, a stopping server 320, anything else 541. The
    /// reply's scope (channel or connection) is the spec's for its code.
    fn engine(channel: u16, error: EngineError, method: &Method) -> Failure {
        let code = match &error {
            EngineError::QueueNotFound { .. }
            | EngineError::TopicNotFound { .. }
            | EngineError::DestinationNotFound { .. }
            | EngineError::BindingNotFound { .. }
            | EngineError::Stream(wharf_engine::stream::StreamError::NotFound { .. }) => {
                ReplyCode::NotFound
            }
            // Deleting a predeclared exchange is refused as RabbitMQ refuses it.
            EngineError::Forbidden { .. }
            | EngineError::Unauthenticated { .. }
            | EngineError::TopicKept { .. } => ReplyCode::AccessRefused,
            EngineError::InvalidName { .. }
            | EngineError::InvalidField { .. }
            | EngineError::TooLarge { .. }
            | EngineError::QueueFull { .. }
            | EngineError::WebhookQueue { .. }
            | EngineError::WebhookResourceExists { .. }
            | EngineError::WebhookBinding { .. }
            | EngineError::WebhookTopic { .. }
            | EngineError::SubscriptionQueue { .. } => ReplyCode::PreconditionFailed,
            EngineError::LimitReached { .. } => ReplyCode::ResourceError,
            EngineError::ShuttingDown => ReplyCode::ConnectionForced,
            _ => ReplyCode::InternalError,
        };
        let text = format!("{}: {error}", code.name());
        match code.scope() {
            Scope::Connection => Failure::connection(code, &text, method),
            Scope::Channel | Scope::Success => Failure::channel(channel, code, &text, method),
        }
    }
}

/// Serves the AMQP door on `listeners` until the task is aborted; each connection is served
/// on a task of its own and listed in `connections` once open.
pub async fn serve(listeners: Listeners, engine: Engine, connections: Arc<Connections>) {
    predeclare(&engine).await;
    let exclusive: Arc<Exclusive> = Arc::default();
    let serve = move |transport, peer, admission| {
        let listing = connection::Listing {
            connections: connections.clone(),
            peer,
            exclusive: exclusive.clone(),
        };
        let engine = engine.clone();
        tokio::spawn(connection::serve(transport, engine, admission, listing));
    };
    listeners.serve(serve).await;
}

/// Exclusive queues and the connection that declared each: no other connection may use one.
/// Kept by the door, for AMQP's notion of exclusivity is a connection's.
#[derive(Debug, Default)]
pub(crate) struct Exclusive {
    owners: Mutex<HashMap<String, ConnectionId>>,
}

impl Exclusive {
    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConnectionId>> {
        // Nothing panics while holding the lock; a poisoned one still holds a whole map.
        self.owners
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Makes `id` the owner of `queue`.
    pub fn claim(&self, queue: &str, id: ConnectionId) {
        self.owners().insert(queue.to_string(), id);
    }

    /// The connection `queue` is exclusive to, if any.
    pub fn owner(&self, queue: &str) -> Option<ConnectionId> {
        self.owners().get(queue).copied()
    }

    /// Forgets the claims of `id` on `queues` (its connection ended).
    pub fn release(&self, id: ConnectionId, queues: &[String]) {
        let mut owners = self.owners();
        for queue in queues {
            if owners.get(queue) == Some(&id) {
                owners.remove(queue);
            }
        }
    }
}

/// The exchanges every RabbitMQ broker has, by type: made (as topics) when the door starts.
const PREDECLARED: [(&str, TopicKind); 4] = [
    ("amq.direct", TopicKind::Direct),
    ("amq.fanout", TopicKind::Fanout),
    ("amq.topic", TopicKind::Topic),
    ("amq.headers", TopicKind::Headers),
];

async fn predeclare(engine: &Engine) {
    for (name, kind) in PREDECLARED {
        if engine.topic_info(name).is_err() {
            let options = TopicOptions {
                kind,
                ..TopicOptions::default()
            };
            if let Err(error) = engine.put_topic(name, options).await {
                tracing::warn!(%error, exchange = name, "declaring a predeclared exchange failed");
            }
        }
        engine.keep_topic(name, "AMQP");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_codec_amqp::method::queue;

    #[test]
    fn a_reply_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(200);
        let text = connection::reply_text(&long);
        assert_eq!(text.as_str().len(), 254);
        assert!(text.as_str().chars().all(|c| c == 'é'));
        assert_eq!(connection::reply_text("short").as_str(), "short");
    }

    #[test]
    fn engine_errors_close_the_channel_or_the_connection_as_the_spec_says() {
        let method = Method::from(queue::Purge::default());
        let missing = EngineError::QueueNotFound { name: "q".into() };
        let failure = Failure::engine(7, missing, &method);
        assert!(matches!(
            failure,
            Failure::Channel {
                channel: 7,
                code: ReplyCode::NotFound,
                class_id: 50,
                method_id: 30,
                ..
            }
        ));
        let stopping = Failure::engine(7, EngineError::ShuttingDown, &method);
        assert!(matches!(
            stopping,
            Failure::Connection {
                code: ReplyCode::ConnectionForced,
                ..
            }
        ));
        let internal = Failure::engine(7, EngineError::Internal { operation: "x" }, &method);
        assert!(matches!(
            internal,
            Failure::Connection {
                code: ReplyCode::InternalError,
                ..
            }
        ));
    }
}
