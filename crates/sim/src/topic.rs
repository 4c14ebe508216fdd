//! The topic: bindings from AMQP patterns to source queues, and publishes checked against the
//! routes the model computes on its own.

use crate::{
    model::{violation, CopyKey, Extra, Stored, Violation},
    ops,
    queue_ops::{draft_ids, send_message},
    sim::Sim,
};
use std::collections::BTreeSet;
use wharf_engine::{
    broker::PublishMessage,
    topic::{BindingSpec, Destination, TopicOptions},
};
use wharf_model::pattern::Syntax;

pub(crate) const TOPIC: &str = "events";

/// Routing keys publishes use.
pub(crate) const KEYS: &[&str] = &[
    "orders.new",
    "orders.old",
    "users.new",
    "users.old",
    "audit.log.eu",
];

/// Binding patterns: exact words, `*` (one word) and `#` (any number of words).
pub(crate) const PATTERNS: &[&str] = &[
    "orders.*",
    "*.new",
    "#",
    "users.old",
    "audit.#",
    "*.*",
    "orders.#.eu",
];

/// A binding the engine acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) id: String,
    pub(crate) pattern: &'static str,
    pub(crate) queue: usize,
}

pub(crate) async fn create(sim: &mut Sim) -> Result<(), Violation> {
    sim.note(format!("create topic {TOPIC}"));
    match sim
        .call(sim.engine().put_topic(TOPIC, TopicOptions::default()))
        .await?
    {
        Ok(true) => {
            sim.outcome("ok");
            Ok(())
        }
        other => Err(violation(
            "the simulator can set up",
            format!("creating the topic answered {other:?}"),
        )),
    }
}

pub(crate) async fn bind(
    sim: &mut Sim,
    pattern: &'static str,
    queue: usize,
) -> Result<(), Violation> {
    let name = sim.name(queue);
    sim.note(format!("bind {pattern} -> {name}"));
    let spec = BindingSpec {
        pattern: pattern.to_string(),
        syntax: Syntax::Amqp,
        filter: None,
        headers: None,
        destination: Destination::Queue(name),
    };
    match sim.call(sim.engine().bind(TOPIC, spec)).await? {
        Ok(id) => {
            sim.outcome("ok");
            sim.bindings.push(Binding { id, pattern, queue });
            Ok(())
        }
        Err(error) => sim.expect_error(&error, false).map(|_| ()),
    }
}

pub(crate) async fn unbind(sim: &mut Sim, index: usize) -> Result<(), Violation> {
    let binding = sim.bindings[index].clone();
    let name = sim.name(binding.queue);
    sim.note(format!("unbind {} -> {name}", binding.pattern));
    match sim.call(sim.engine().unbind(TOPIC, &binding.id)).await? {
        Ok(()) => {
            sim.outcome("ok");
            sim.bindings.remove(index);
            Ok(())
        }
        Err(error) => sim.expect_error(&error, false).map(|_| ()),
    }
}

/// Publishes one new message per key; each must reach exactly the queues the model routes it
/// to (a queue once, however many bindings lead there).
pub(crate) async fn publish(sim: &mut Sim, keys: Vec<&'static str>) -> Result<(), Violation> {
    let drafts: Vec<_> = (keys.iter())
        .map(|_| ops::draft(&mut sim.rng, &mut sim.model))
        .collect();
    sim.note(format!("publish {} keys {keys:?}", draft_ids(&drafts)));
    let batch = (keys.iter().zip(&drafts))
        .map(|(key, draft)| PublishMessage {
            routing_key: key.to_string(),
            message: send_message(draft),
            retain: false,
        })
        .collect();
    let routes: Vec<BTreeSet<usize>> = keys.iter().map(|key| route(sim, key)).collect();
    let result = sim.call(sim.engine().publish(TOPIC, batch)).await?;
    let stored = match result {
        Ok(published) => {
            sim.outcome("ok");
            check_routes(&drafts, &routes, &published)?;
            Stored::Confirmed
        }
        Err(error) => {
            let full_ok = (routes.iter().flatten())
                .any(|queue| sim.model.queues[*queue].options.max_length.is_some());
            sim.expect_error(&error, full_ok)?;
            Stored::Unknown
        }
    };
    for (draft, route) in drafts.iter().zip(&routes) {
        for queue in route {
            add_published(sim, *queue, draft, stored);
        }
    }
    Ok(())
}

/// The queues a key reaches through the model's bindings.
pub(crate) fn route(sim: &Sim, key: &str) -> BTreeSet<usize> {
    let words: Vec<&str> = key.split('.').collect();
    (sim.bindings.iter())
        .filter(|b| matches(&b.pattern.split('.').collect::<Vec<_>>(), &words))
        .map(|b| b.queue)
        .collect()
}

pub(crate) fn add_published(sim: &mut Sim, queue: usize, draft: &ops::Draft, stored: Stored) {
    let key = CopyKey {
        home: queue,
        id: draft.id,
    };
    let extra = Extra {
        ttl: draft.ttl_ms.is_some(),
        deduplicated: false,
        group: draft.group.clone(),
    };
    sim.model.add_copy(key, draft.body.clone(), stored, extra);
    if stored == Stored::Confirmed {
        sim.model.queues[queue].expected.sent += 1;
    } else {
        // Some destinations may have stored it: their counts are unknown for this lifetime.
        sim.model.queues[queue].exact = false;
    }
}

fn check_routes(
    drafts: &[ops::Draft],
    routes: &[BTreeSet<usize>],
    published: &[wharf_engine::broker::Published],
) -> Result<(), Violation> {
    for ((draft, route), published) in drafts.iter().zip(routes).zip(published) {
        if published.routed != route.len() || published.id != format!("m{}", draft.id) {
            return Err(violation(
                "routing follows the acknowledged bindings",
                format!(
                    "m{} reached {} queues, the bindings lead to {route:?}",
                    draft.id, published.routed
                ),
            ));
        }
    }
    Ok(())
}

/// AMQP topic matching: `*` is one word, `#` zero or more.
fn matches(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && matches(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && matches(rest, &key[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn check(pattern: &str, key: &str) -> bool {
        let pattern: Vec<&str> = pattern.split('.').collect();
        let key: Vec<&str> = key.split('.').collect();
        matches(&pattern, &key)
    }

    #[test]
    fn amqp_wildcards_match_words() {
        assert!(check("orders.*", "orders.new"));
        assert!(!check("orders.*", "audit.log.eu"));
        assert!(check("#", "audit.log.eu"));
        assert!(check("audit.#", "audit.log.eu"));
        assert!(check("orders.#.eu", "orders.eu"));
        assert!(!check("*.*", "audit.log.eu"));
        assert!(check("*.new", "users.new"));
    }
}
