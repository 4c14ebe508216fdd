//! The JSON shapes of the topic API and their translation to and from engine types.
//!
//! A destination is flat on the wire: exactly one of `queue`, `topic` or `stream` holds its
//! name, next to the other fields of a binding or rule (`{"filter": "...", "queue": "audit"}`).
//! The engine's `Destination` is an enum; [`DestinationBody`] translates, and names the field
//! at fault when zero or two are given. Messages reuse the queue API's shapes.

use crate::http::{queues::wire::NewMessage, Problem, ProblemCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use wharf_engine::{
    broker::{BindingInfo, PublishMessage, Published, TopicInfo, TopicStats},
    topic::{
        BindingSpec, Destination, DestinationKind, HeadersMatch, HeadersMode, RuleSpec, RulesMode,
        TopicKind, TopicOptions,
    },
};
use wharf_model::pattern::Syntax;

/// `PUT /v1/topics/{name}` body; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TopicBody {
    /// `topic` (default: patterns), `direct` (exact key), `fanout` (every binding) or
    /// `headers` (header values).
    #[schema(value_type = String, example = "topic")]
    pub kind: TopicKind,
    /// Keep the last message per routing key for new bindings and subscriptions.
    pub retain: bool,
    /// Where messages that match nothing go.
    pub alternate: Option<DestinationBody>,
    /// `all` (default): every matching rule routes; `first`: only the first.
    #[schema(value_type = String, example = "all")]
    pub rules_mode: RulesMode,
    /// Filter rules, applied in order next to the bindings.
    pub rules: Vec<RuleBody>,
}

/// A topic: its definition and statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicInfoBody {
    #[schema(example = "orders")]
    pub name: String,
    #[schema(value_type = String, example = "topic")]
    pub kind: TopicKind,
    pub retain: bool,
    pub alternate: Option<DestinationBody>,
    #[schema(value_type = String, example = "all")]
    pub rules_mode: RulesMode,
    pub rules: Vec<RuleBody>,
    pub stats: TopicStatsBody,
}

/// Counters since the server started (reset by a restart), and the binding count now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicStatsBody {
    pub published: u64,
    /// Deliveries to destinations: a message routed to three queues counts three.
    pub routed: u64,
    /// Messages that reached no destination.
    pub unroutable: u64,
    pub bindings: u64,
    /// Filter evaluations stopped by a cost limit (a text too long for `matches`, or the
    /// budget spent); each counted as no match.
    pub filters_stopped: u64,
    /// Routing keys with a retained message now (kept on disk, read back when delivered).
    pub retained: u64,
    /// Compaction passes of the topic's log since the server started.
    pub compactions: u64,
    /// Live subscriptions (`/subscribe` streams) now.
    pub subscribers: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicListBody {
    pub topics: Vec<TopicInfoBody>,
    /// More match: ask again with `after` set to this. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A destination: exactly one of its fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Not available yet: refused with 400.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// A rule: messages passing `filter` go to its destination.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(from = "RuleFields")]
pub struct RuleBody {
    #[schema(example = "headers.region == 'eu'")]
    pub filter: String,
    #[serde(flatten)]
    pub destination: DestinationBody,
}

/// [`RuleBody`] as it arrives: serde cannot refuse unknown fields next to a flattened
/// destination, so the fields are spelled out here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFields {
    filter: String,
    queue: Option<String>,
    topic: Option<String>,
    stream: Option<String>,
}

impl From<RuleFields> for RuleBody {
    fn from(fields: RuleFields) -> Self {
        RuleBody {
            filter: fields.filter,
            destination: DestinationBody {
                queue: fields.queue,
                topic: fields.topic,
                stream: fields.stream,
            },
        }
    }
}

/// Header values a binding of a `headers` topic requires.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersBody {
    /// `all` (default): every value must match; `any`: one is enough.
    #[serde(rename = "match", default)]
    #[schema(value_type = String, example = "all")]
    pub mode: HeadersMode,
    pub values: BTreeMap<String, String>,
}

/// `POST /v1/topics/{name}/bindings` body, with exactly one of `queue`, `topic`, `stream`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BindingBody {
    /// The pattern (topic kind), exact key (direct); ignored by fanout and headers topics.
    #[serde(default)]
    #[schema(example = "orders.*.created")]
    pub pattern: String,
    /// `amqp` (default: `.` separates words, `*` one word, `#` any), `mqtt` (`/`, `+`, `#`)
    /// or `nats` (`.`, `*`, `>`).
    #[serde(default)]
    #[schema(value_type = String, example = "amqp")]
    pub syntax: Syntax,
    /// Only messages passing this filter (docs/filters.md).
    pub filter: Option<String>,
    /// For headers topics.
    pub headers: Option<HeadersBody>,
    /// With a `queue` destination: create the queue (default options) if it does not exist, so
    /// one call makes a durable subscription.
    #[serde(default)]
    pub create_queue: bool,
    #[serde(flatten)]
    pub destination: DestinationBody,
}

/// A binding with its id and how many messages it matched since the server started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BindingInfoBody {
    pub id: String,
    pub pattern: String,
    #[schema(value_type = String, example = "amqp")]
    pub syntax: Syntax,
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeadersBody>,
    #[serde(flatten)]
    pub destination: DestinationBody,
    pub matched: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BindingListBody {
    pub bindings: Vec<BindingInfoBody>,
}

/// `POST /v1/topics/{name}/publish` body: 1 to 1,000 messages, at most 8 MiB of bodies (the
/// defaults of `limits.batch_messages_max` and `limits.batch_bytes_max`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    pub messages: Vec<PublishMessageBody>,
}

/// One message to publish: its routing key and the fields of a queue send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct PublishMessageBody {
    /// Words joined by the syntax's separator (`orders.eu.created`); ignored by fanout and
    /// headers topics. Default `""`.
    #[schema(required = false)]
    pub routing_key: String,
    #[serde(flatten)]
    pub message: NewMessage,
}

/// A request body object before it is split into its own fields and a message.
pub(crate) type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The fields of a publish besides the message's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishFields {
    #[serde(default)]
    routing_key: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublishedListBody {
    pub messages: Vec<PublishedBody>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublishedBody {
    pub id: String,
    /// Destinations that stored it; 0 means unroutable.
    pub routed: usize,
}

/// `GET /v1/topics/{name}/subscribe` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubscribeQuery {
    /// Which routing keys to receive, in `syntax`.
    pub pattern: String,
    /// `amqp` (default), `mqtt` or `nats`.
    #[param(value_type = Option<String>)]
    pub syntax: Option<Syntax>,
    /// Only messages passing this filter.
    pub filter: Option<String>,
}

impl TryFrom<JsonObject> for PublishMessageBody {
    type Error = String;

    fn try_from(object: JsonObject) -> Result<Self, Self::Error> {
        let (fields, message) = split_message::<PublishFields>(object, &["routing_key"])?;
        Ok(PublishMessageBody {
            routing_key: fields.routing_key,
            message,
        })
    }
}

/// Splits an object into `T` (the fields named in `names`) and a queue message (every other
/// field). serde's `flatten` would let unknown fields through silently and lose the path of a
/// type error; split, each part refuses unknown fields and names the field it failed on.
pub(crate) fn split_message<T: DeserializeOwned>(
    mut object: JsonObject,
    names: &[&str],
) -> Result<(T, NewMessage), String> {
    let own: JsonObject = names
        .iter()
        .filter_map(|name| object.remove_entry(*name))
        .collect();
    let wording =
        |error: serde_json::Error| crate::http::json_body::json_wording(&error.to_string());
    let own = T::deserialize(serde_json::Value::Object(own)).map_err(wording)?;
    let message = NewMessage::deserialize(serde_json::Value::Object(object)).map_err(wording)?;
    Ok((own, message))
}

impl TopicBody {
    /// The engine's options; rules and alternate checked for exactly one destination each.
    pub fn into_options(self) -> Result<TopicOptions, Problem> {
        let alternate = self
            .alternate
            .map(|destination| destination.into_destination("alternate."))
            .transpose()?;
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                Ok(RuleSpec {
                    destination: rule
                        .destination
                        .into_destination(&format!("rules[{index}]."))?,
                    filter: rule.filter,
                })
            })
            .collect::<Result<_, Problem>>()?;
        Ok(TopicOptions {
            kind: self.kind,
            retain: self.retain,
            alternate,
            rules_mode: self.rules_mode,
            rules,
        })
    }
}

/// The member of a [`DestinationBody`] that names a destination of this kind.
pub(crate) fn destination_member(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::Queue => "queue",
        DestinationKind::Topic => "topic",
        DestinationKind::Stream => "stream",
    }
}

impl DestinationBody {
    /// The one destination given; `prefix` locates the fields in the request for a problem.
    pub fn into_destination(self, prefix: &str) -> Result<Destination, Problem> {
        let given: Vec<Destination> = [
            self.queue.map(Destination::Queue),
            self.topic.map(Destination::Topic),
            self.stream.map(Destination::Stream),
        ]
        .into_iter()
        .flatten()
        .collect();
        let invalid = |field: &str, detail: &str| {
            Problem::new(ProblemCode::InvalidField)
                .with_detail(detail.to_string())
                .with_field(format!("{prefix}{field}"))
        };
        match given.as_slice() {
            [destination] => Ok(destination.clone()),
            [] => Err(invalid(
                "queue",
                "one of queue, topic or stream names the destination",
            )),
            [_, second, ..] => Err(invalid(
                destination_member(second.kind()),
                "give exactly one of queue, topic or stream",
            )),
        }
    }
}

impl From<Destination> for DestinationBody {
    fn from(destination: Destination) -> Self {
        match destination {
            Destination::Queue(name) => DestinationBody {
                queue: Some(name),
                ..DestinationBody::default()
            },
            Destination::Topic(name) => DestinationBody {
                topic: Some(name),
                ..DestinationBody::default()
            },
            Destination::Stream(name) => DestinationBody {
                stream: Some(name),
                ..DestinationBody::default()
            },
        }
    }
}

impl BindingBody {
    pub fn into_spec(self) -> Result<BindingSpec, Problem> {
        Ok(BindingSpec {
            destination: self.destination.into_destination("")?,
            pattern: self.pattern,
            syntax: self.syntax,
            filter: self.filter,
            headers: self.headers.map(|headers| HeadersMatch {
                mode: headers.mode,
                values: headers.values,
            }),
        })
    }
}

impl PublishMessageBody {
    pub fn into_publish(self, index: usize) -> Result<PublishMessage, Problem> {
        Ok(PublishMessage {
            routing_key: self.routing_key,
            message: self.message.into_send(index)?,
            retain: false,
        })
    }
}

impl From<TopicInfo> for TopicInfoBody {
    fn from(info: TopicInfo) -> Self {
        // Destructured, not `..`-ed: a new option or statistic breaks this until the API shows it.
        let TopicOptions {
            kind,
            retain,
            alternate,
            rules_mode,
            rules,
        } = info.options;
        let TopicStats {
            published,
            routed,
            unroutable,
            bindings,
            filters_stopped,
            retained,
            compactions,
            subscribers,
        } = info.stats;
        TopicInfoBody {
            name: info.name,
            kind,
            retain,
            alternate: alternate.map(Into::into),
            rules_mode,
            rules: rules
                .into_iter()
                .map(|rule| RuleBody {
                    filter: rule.filter,
                    destination: rule.destination.into(),
                })
                .collect(),
            stats: TopicStatsBody {
                published,
                routed,
                unroutable,
                bindings,
                filters_stopped,
                retained,
                compactions,
                subscribers,
            },
        }
    }
}

impl From<BindingInfo> for BindingInfoBody {
    fn from(info: BindingInfo) -> Self {
        let BindingSpec {
            pattern,
            syntax,
            filter,
            headers,
            destination,
        } = info.spec;
        BindingInfoBody {
            id: info.id,
            pattern,
            syntax,
            filter,
            headers: headers.map(|headers| HeadersBody {
                mode: headers.mode,
                values: headers.values,
            }),
            destination: destination.into(),
            matched: info.matched,
        }
    }
}

impl From<Published> for PublishedBody {
    fn from(published: Published) -> Self {
        PublishedBody {
            id: published.id,
            routed: published.routed,
        }
    }
}
