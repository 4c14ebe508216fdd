//! A topic's live subscribers, indexed by pattern: a publish looks only at the subscribers
//! whose pattern matches its key (a trie walk bounded by the key's depth), not at every
//! subscriber of the topic. 10,000 clients each subscribed to their own device's key cost a
//! publish one walk, not 10,000 pattern checks.
//!
//! Patterns of the AMQP and NATS syntaxes share the trie of `.`-separated words, MQTT's has its
//! own, as in the topic's routing table.

use super::{Subscriber, Syntax};
use std::collections::BTreeMap;
use wharf_model::pattern::Trie;

#[derive(Debug)]
pub(in crate::broker) struct Subscribers {
    by_id: BTreeMap<u64, Subscriber>,
    dotted: Trie<u64>,
    slashed: Trie<u64>,
    /// Subscribers with a filter: while there is one, routing parses bodies.
    filtered: usize,
}

impl Default for Subscribers {
    fn default() -> Self {
        Subscribers {
            by_id: BTreeMap::new(),
            dotted: Trie::new(),
            slashed: Trie::new(),
            filtered: 0,
        }
    }
}

impl Subscribers {
    pub fn add(&mut self, subscriber: Subscriber) {
        let interest = &subscriber.interest;
        let trie = self.trie_mut(interest.syntax);
        trie.insert(&interest.pattern, subscriber.id);
        self.filtered += usize::from(interest.filter.is_some());
        self.by_id.insert(subscriber.id, subscriber);
    }

    pub fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.by_id.remove(&id) else {
            return;
        };
        let interest = subscriber.interest;
        self.trie_mut(interest.syntax)
            .remove(&interest.pattern, &id);
        self.filtered -= usize::from(interest.filter.is_some());
    }

    pub fn clear(&mut self) {
        *self = Subscribers::default();
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether a subscriber's filter may read message bodies.
    pub fn any_filtered(&self) -> bool {
        self.filtered > 0
    }

    /// The subscribers whose pattern matches `key`, in subscription order.
    pub fn matching(&self, key: &str) -> Vec<&Subscriber> {
        let mut ids = Vec::new();
        let mut words = Vec::new();
        for (syntax, trie) in [(Syntax::Amqp, &self.dotted), (Syntax::Mqtt, &self.slashed)] {
            if !trie.is_empty() && syntax.split_key(key, &mut words).is_ok() {
                trie.matches(&words, &mut ids);
            }
        }
        let mut ids: Vec<u64> = ids.into_iter().copied().collect();
        ids.sort_unstable();
        ids.iter().filter_map(|id| self.by_id.get(id)).collect()
    }

    fn trie_mut(&mut self, syntax: Syntax) -> &mut Trie<u64> {
        match syntax {
            Syntax::Amqp | Syntax::Nats => &mut self.dotted,
            Syntax::Mqtt => &mut self.slashed,
        }
    }
}
