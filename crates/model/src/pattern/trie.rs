//! The topic matcher: a trie of patterns, walked by a routing key's words.
//!
//! One node per distinct pattern prefix; each edge is a literal word, `One` or `Many`. A
//! match follows, for each key word, the literal edge for that word (one hash lookup) and the
//! `One` edge, and lets each `Many` node swallow words one at a time. The work is bounded by
//! key depth x the wildcard edges met on the way, never by how many bindings hang below.
//!
//! A `Many` node can be reached with several word positions (`#.a.#` against `a.a.a`), and
//! nodes below it once per position, which would report an entry twice and, for `#.#.#.#.a`,
//! blow up combinatorially. Every path that reaches a node at a given position passes the
//! node's deepest `Many` ancestor at one position (only single-word edges follow it), so the
//! search remembers, per `Many` node, the lowest position already expanded from it and
//! expands each (node, position) once: entries are reported at most once, and the cost per
//! `Many` node is O(key depth).

use super::{starts_reserved, Pattern, Segment};
use std::collections::{BTreeSet, HashMap};

/// Patterns with values bound to them (a value is typically a destination id).
///
/// An entry is a (pattern, value) pair; binding the same value with the same pattern twice
/// keeps one entry. A value bound with two patterns that both match a key is reported twice,
/// once per entry: AMQP delivers one copy per queue (RabbitMQ tutorial 5, `lazy.pink.rabbit`)
/// while NATS delivers one per subscription, so that choice stays with the engine.
///
/// Values are kept ordered (`T: Ord`) rather than hashed so a match reports them in the same
/// order on every run, which a seeded simulation needs, and so binding many destinations with
/// one pattern (`broadcast/#` for every session) costs O(log n) per binding, not O(n).
#[derive(Debug, Clone)]
pub struct Trie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    /// Hashed with std's randomly keyed SipHash: words come from clients, who must not be able
    /// to pick colliding ones.
    literals: HashMap<String, Node<T>>,
    one: Option<Box<Node<T>>>,
    many: Option<Box<Node<T>>>,
    values: BTreeSet<T>,
}

impl<T: Ord> Trie<T> {
    pub fn new() -> Self {
        Trie {
            root: Node::new(),
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Binds `value` with `pattern`; false if that entry was already there.
    pub fn insert(&mut self, pattern: &Pattern, value: T) -> bool {
        let mut node = &mut self.root;
        for segment in pattern.segments() {
            node = match segment {
                // Binding is rare next to matching: the key clone on an existing word is fine.
                Segment::Literal(word) => {
                    node.literals.entry(word.clone()).or_insert_with(Node::new)
                }
                Segment::One => node.one.get_or_insert_with(|| Box::new(Node::new())),
                Segment::Many => node.many.get_or_insert_with(|| Box::new(Node::new())),
            };
        }
        let inserted = node.values.insert(value);
        self.len += usize::from(inserted);
        inserted
    }

    /// Unbinds `value` from `pattern`, dropping nodes left empty; false if it was not bound.
    pub fn remove(&mut self, pattern: &Pattern, value: &T) -> bool {
        let removed = remove_below(&mut self.root, pattern.segments(), value);
        self.len -= usize::from(removed);
        removed
    }

    /// Appends to `out` every entry whose pattern matches the routing key `words` (from
    /// [`Syntax::split_key`](super::Syntax::split_key)), each at most once.
    pub fn matches<'t>(&'t self, words: &[&str], out: &mut Vec<&'t T>) {
        let mut search = Search {
            words,
            out,
            many_expanded_from: HashMap::new(),
        };
        match words.first() {
            // MQTT 5 §4.7.2 [MQTT-4.7.2-1]: no wildcard at the first level matches `$` topics.
            Some(first) if starts_reserved(words) => {
                if let Some(child) = self.root.literals.get(*first) {
                    search.descend(child, 1);
                }
            }
            _ => search.descend(&self.root, 0),
        }
    }
}

impl<T> Trie<T> {
    /// Whether removals left no node behind but the root.
    #[cfg(test)]
    pub(super) fn is_pruned(&self) -> bool {
        self.root.is_empty()
    }
}

impl<T: Ord> Default for Trie<T> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            literals: HashMap::new(),
            one: None,
            many: None,
            values: BTreeSet::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.literals.is_empty()
            && self.one.is_none()
            && self.many.is_none()
    }
}

/// Recursion depth is the pattern's depth, bounded by `PATTERN_LEVELS_MAX`.
fn remove_below<T: Ord>(node: &mut Node<T>, segments: &[Segment], value: &T) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return node.values.remove(value);
    };
    match first {
        Segment::Literal(word) => {
            let Some(child) = node.literals.get_mut(word) else {
                return false;
            };
            let removed = remove_below(child, rest, value);
            if child.is_empty() {
                node.literals.remove(word);
            }
            removed
        }
        Segment::One => remove_below_boxed(&mut node.one, rest, value),
        Segment::Many => remove_below_boxed(&mut node.many, rest, value),
    }
}

fn remove_below_boxed<T: Ord>(
    slot: &mut Option<Box<Node<T>>>,
    segments: &[Segment],
    value: &T,
) -> bool {
    let Some(child) = slot else {
        return false;
    };
    let removed = remove_below(child, segments, value);
    if child.is_empty() {
        *slot = None;
    }
    removed
}

/// One match call's state.
struct Search<'t, 's, T> {
    words: &'s [&'s str],
    out: &'s mut Vec<&'t T>,
    /// Per `Many` node (by address, valid while the trie is borrowed): the lowest word
    /// position expanded from it so far; every higher position has been expanded too.
    /// Allocates only when the key meets a `Many` node.
    many_expanded_from: HashMap<*const Node<T>, usize>,
}

impl<'t, T> Search<'t, '_, T> {
    /// `node` has consumed the first `at` words.
    fn descend(&mut self, node: &'t Node<T>, at: usize) {
        match self.words.get(at) {
            None => self.out.extend(node.values.iter()),
            Some(word) => {
                if let Some(child) = node.literals.get(*word) {
                    self.descend(child, at + 1);
                }
                if let Some(child) = &node.one {
                    self.descend(child, at + 1);
                }
            }
        }
        if let Some(child) = &node.many {
            self.expand_many(child, at);
        }
    }

    /// `node` is a `Many` node entered at `from`: it may swallow any number of the words
    /// from `from` on, so its children are tried at every position from `from` to the end.
    fn expand_many(&mut self, node: &'t Node<T>, from: usize) {
        let key: *const Node<T> = node;
        let done_from = self.many_expanded_from.get(&key).copied();
        let end = done_from.unwrap_or(self.words.len() + 1);
        if from >= end {
            return;
        }
        self.many_expanded_from.insert(key, from);
        for at in from..end {
            self.descend(node, at);
        }
    }
}
