//! Topics: definitions, bindings and the routing table, as plain data with no I/O.
//!
//! A topic routes each published message to destinations (queues, other topics, later streams)
//! through its bindings (pattern and optional filter), its ordered rules, and its alternate
//! destination. The broker persists definitions and bindings and delivers; this module decides.
//! It also indexes the retained messages by routing key (offsets into the topic's log, no
//! bodies).

mod retained;
pub(crate) mod router;

pub(crate) use retained::{RetainedEntry, RetainedIndex};
pub use router::{canonical_options, canonical_spec, Route, Router};

use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, fmt};
use wharf_model::pattern::Syntax;

/// How a topic matches routing keys to bindings (RabbitMQ's exchange types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicKind {
    /// Routing keys are words; bindings are patterns with wildcards.
    #[default]
    Topic,
    /// A binding's pattern must equal the routing key exactly.
    Direct,
    /// Every binding matches, whatever the key.
    Fanout,
    /// Bindings match header values (all or any of them); the key is ignored.
    Headers,
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicKind::Topic => "topic",
            TopicKind::Direct => "direct",
            TopicKind::Fanout => "fanout",
            TopicKind::Headers => "headers",
        })
    }
}

/// Where routed messages go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    Queue(String),
    Stream(String),
    Topic(String),
}

/// What kind of resource a [`Destination`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    Queue,
    Stream,
    Topic,
}

impl fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DestinationKind::Queue => "queue",
            DestinationKind::Stream => "stream",
            DestinationKind::Topic => "topic",
        })
    }
}

impl Destination {
    pub fn kind(&self) -> DestinationKind {
        match self {
            Destination::Queue(_) => DestinationKind::Queue,
            Destination::Stream(_) => DestinationKind::Stream,
            Destination::Topic(_) => DestinationKind::Topic,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Destination::Queue(name) | Destination::Stream(name) | Destination::Topic(name) => name,
        }
    }
}

/// Whether every matching rule routes (`all`) or only the first (`first`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RulesMode {
    #[default]
    All,
    First,
}

/// One routing rule: messages passing `filter` go to `destination`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub filter: String,
    pub destination: Destination,
}

/// A topic's definition. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicOptions {
    pub kind: TopicKind,
    /// Keep the last message per routing key; new subscriptions receive matching ones first.
    pub retain: bool,
    /// Where messages that match nothing go; without one they are counted as unroutable.
    pub alternate: Option<Destination>,
    pub rules_mode: RulesMode,
    pub rules: Vec<RuleSpec>,
}

/// How a `headers` binding compares header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadersMode {
    #[default]
    All,
    Any,
}

/// Header values a binding of a `headers` topic requires.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeadersMatch {
    pub mode: HeadersMode,
    pub values: BTreeMap<String, String>,
}

/// A binding as a client declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// The pattern (topic), exact key (direct); ignored by fanout and headers topics.
    pub pattern: String,
    pub syntax: Syntax,
    pub filter: Option<String>,
    pub headers: Option<HeadersMatch>,
    pub destination: Destination,
}
