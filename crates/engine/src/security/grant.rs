//! Grants: which actions a user or token may take on which resources.
//!
//! A grant is a set of [`Action`]s on a [`ResourcePattern`], written `kind:pattern`
//! (`queue:orders.*`, `topic:events`, `stream:*`). Names are matched in the engine's pattern
//! syntax, the AMQP one topics use: names split on `.`, `*` stands for one word and `#` for any
//! number. So `queue:orders.*` is `orders.eu` but not `orders.eu.late`, and `queue:orders.#` is
//! both. A pattern that is `*` alone stands for every name (what people write when they mean
//! "all"), and the kind may be `*` too (`*:*` is every resource). Actions do not imply each
//! other, except `admin`, which allows everything, users and tokens included.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};
use wharf_model::pattern::{Pattern, Syntax};

/// Longest resource pattern accepted, in bytes (a queue name's limit and room for the kind).
pub const RESOURCE_PATTERN_BYTES_MAX: usize = 300;

/// Most grants one user or token holds: each call checks them in order.
pub const GRANTS_MAX: usize = 100;

/// What a caller does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Consume: receive, ack, nack, peek, subscribe.
    Read,
    /// Send and publish.
    Write,
    /// Create, change, delete, purge, redrive, bind.
    Manage,
    /// Everything, including users, tokens and the audit log.
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Manage => "manage",
            Action::Admin => "admin",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of resources grants name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Queue,
    Topic,
    Stream,
    Events,
    Webhook,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Queue => "queue",
            ResourceKind::Topic => "topic",
            ResourceKind::Stream => "stream",
            ResourceKind::Events => "events",
            ResourceKind::Webhook => "webhook",
        }
    }

    fn parse(text: &str) -> Option<ResourceKind> {
        [
            ResourceKind::Queue,
            ResourceKind::Topic,
            ResourceKind::Stream,
            ResourceKind::Events,
            ResourceKind::Webhook,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One resource a call touches: `queue:orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: ResourceKind,
    pub name: &'a str,
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.name)
    }
}

/// Resources named by kind and pattern; see the module doc.
#[derive(Debug, Clone)]
pub struct ResourcePattern {
    text: String,
    kind: Option<ResourceKind>,
    names: Names,
}

#[derive(Debug, Clone)]
enum Names {
    All,
    Matching(Pattern),
}

/// Why a resource pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourcePatternError {
    #[error("expected KIND:PATTERN, such as queue:orders.* (kinds: queue, topic, stream, events, webhook, *)")]
    NoKind,
    #[error("unknown resource kind {0:?} (kinds: queue, topic, stream, events, webhook, *)")]
    UnknownKind(String),
    #[error("longer than {RESOURCE_PATTERN_BYTES_MAX} bytes")]
    TooLong,
    #[error("invalid name pattern: {0}")]
    Pattern(String),
}

impl ResourcePattern {
    /// True when `resource` is one of the resources this pattern names.
    pub fn matches(&self, resource: Resource<'_>) -> bool {
        if self.kind.is_some_and(|kind| kind != resource.kind) {
            return false;
        }
        match &self.names {
            Names::All => true,
            Names::Matching(pattern) => {
                let words: Vec<&str> = resource.name.split('.').collect();
                pattern.matches(&words)
            }
        }
    }

    /// True when this pattern names resources of `kind` at all.
    pub fn covers_kind(&self, kind: ResourceKind) -> bool {
        self.kind.is_none_or(|own| own == kind)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ResourcePattern {
    type Err = ResourcePatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > RESOURCE_PATTERN_BYTES_MAX {
            return Err(ResourcePatternError::TooLong);
        }
        let (kind, names) = text.split_once(':').ok_or(ResourcePatternError::NoKind)?;
        let kind = match kind {
            "*" => None,
            kind => Some(
                ResourceKind::parse(kind)
                    .ok_or_else(|| ResourcePatternError::UnknownKind(kind.to_string()))?,
            ),
        };
        let names = match names {
            "*" => Names::All,
            names => Names::Matching(
                Pattern::parse(names, Syntax::Amqp)
                    .map_err(|e| ResourcePatternError::Pattern(e.to_string()))?,
            ),
        };
        Ok(ResourcePattern {
            text: text.to_string(),
            kind,
            names,
        })
    }
}

impl PartialEq for ResourcePattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ResourcePattern {}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ResourcePattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ResourcePattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Actions on the resources a pattern names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub actions: Vec<Action>,
    pub resource: ResourcePattern,
}

impl Grant {
    /// Every action on every resource.
    pub fn admin() -> Grant {
        Grant {
            actions: vec![Action::Admin],
            resource: "*:*".parse().expect("a valid pattern"),
        }
    }

    /// True when this grant allows `action` on `resource`.
    pub fn allows(&self, action: Action, resource: Resource<'_>) -> bool {
        self.resource.matches(resource)
            && self
                .actions
                .iter()
                .any(|granted| *granted == action || *granted == Action::Admin)
    }

    /// True when this grant holds the `admin` action on every resource.
    pub fn is_admin(&self) -> bool {
        self.actions.contains(&Action::Admin)
            && self.resource.kind.is_none()
            && matches!(self.resource.names, Names::All)
    }

    /// True when `self` allows everything `other` allows: same pattern (or `*:*`), and every
    /// action of `other` among ours (or ours include admin).
    pub fn includes(&self, other: &Grant) -> bool {
        let pattern = self.resource == other.resource
            || (self.resource.kind.is_none() && matches!(self.resource.names, Names::All));
        let actions = self.actions.contains(&Action::Admin)
            || other.actions.iter().all(|a| self.actions.contains(a));
        pattern && actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> ResourcePattern {
        text.parse().unwrap()
    }

    fn queue(name: &str) -> Resource<'_> {
        Resource {
            kind: ResourceKind::Queue,
            name,
        }
    }

    #[test]
    fn patterns_match_names_by_words() {
        let orders = pattern("queue:orders.*");
        assert!(orders.matches(queue("orders.eu")));
        assert!(!orders.matches(queue("orders.eu.late")));
        assert!(!orders.matches(queue("orders")));
        assert!(pattern("queue:orders.#").matches(queue("orders.eu.late")));
        assert!(
            pattern("queue:*").matches(queue("a.b.c")),
            "* alone is every name"
        );
        assert!(pattern("*:*").matches(Resource {
            kind: ResourceKind::Topic,
            name: "events"
        }));
        let topic = Resource {
            kind: ResourceKind::Topic,
            name: "orders.eu",
        };
        assert!(!orders.matches(topic), "another kind");
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let no_kind = "orders".parse::<ResourcePattern>().unwrap_err();
        assert_eq!(no_kind, ResourcePatternError::NoKind);
        let unknown = "exchange:x".parse::<ResourcePattern>().unwrap_err();
        assert!(unknown.to_string().contains("exchange"), "{unknown}");
        let long = format!("queue:{}", "a".repeat(400));
        assert_eq!(
            long.parse::<ResourcePattern>().unwrap_err(),
            ResourcePatternError::TooLong
        );
    }

    #[test]
    fn grants_allow_their_actions_and_admin_allows_all() {
        let grant = Grant {
            actions: vec![Action::Read, Action::Write],
            resource: pattern("queue:orders.*"),
        };
        assert!(grant.allows(Action::Read, queue("orders.eu")));
        assert!(!grant.allows(Action::Manage, queue("orders.eu")));
        assert!(!grant.allows(Action::Read, queue("billing")));
        assert!(Grant::admin().allows(Action::Manage, queue("anything")));
        assert!(Grant::admin().is_admin() && !grant.is_admin());
        let read = Grant {
            actions: vec![Action::Read],
            resource: pattern("queue:orders.*"),
        };
        assert!(grant.includes(&read) && !read.includes(&grant));
        assert!(Grant::admin().includes(&grant));
        let json = serde_json::to_string(&grant).unwrap();
        assert_eq!(
            json,
            r#"{"actions":["read","write"],"resource":"queue:orders.*"}"#
        );
        assert_eq!(serde_json::from_str::<Grant>(&json).unwrap(), grant);
    }
}
