//! Match cost of the topic trie with 1, 100 and 100,000 bindings of mixed wildcard patterns.
//!
//! `cargo run --release -p wharf-model --example trie_bench` prints ns per match for each size
//! and two mixes. `wild`: every level may be `*` or `#`, so with 100,000 bindings over a small
//! vocabulary thousands match each key and the cost follows the result size. `scoped`: the
//! first level is a literal namespace (as in `tenant.orders.#`), the rest mixed as before; the
//! cost should stay nearly flat as bindings grow, since a match follows key depth.

use std::hint::black_box;
use std::time::Instant;
use wharf_model::pattern::{Pattern, Syntax, Trie};

/// Words per level: enough distinct words that 100,000 bindings mostly differ.
const VOCABULARY: usize = 40;
const KEY_LEVELS: usize = 5;
/// First-level literals of the `scoped` mix (tenants, services).
const NAMESPACES: usize = 1_000;
const KEYS: usize = 1_000;
const ROUNDS: usize = 200;

fn main() {
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let keys: Vec<String> = (0..KEYS)
        .map(|_| format!("n{}.{}", random.below(NAMESPACES), key(&mut random)))
        .collect();
    let split: Vec<Vec<&str>> = keys.iter().map(|key| key.split('.').collect()).collect();
    println!("mix     bindings  ns/match  matches/key");
    for (mix, scoped) in [("wild", false), ("scoped", true)] {
        for bindings in [1, 100, 100_000] {
            measure(mix, scoped, bindings, &split, &mut random);
        }
    }
}

fn measure(mix: &str, scoped: bool, bindings: usize, split: &[Vec<&str>], random: &mut XorShift) {
    let mut trie = Trie::new();
    while trie.len() < bindings {
        let mut text = pattern(random);
        if scoped {
            text = format!("n{}.{text}", random.below(NAMESPACES));
        }
        let pattern = Pattern::parse(&text, Syntax::Amqp).expect("valid pattern");
        trie.insert(&pattern, trie.len());
    }
    let mut out = Vec::new();
    let mut matched = 0;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for words in split {
            out.clear();
            trie.matches(black_box(words), &mut out);
            matched += out.len();
        }
    }
    let calls = (ROUNDS * split.len()) as f64;
    println!(
        "{mix:<6}  {bindings:>8}  {:>8.0}  {:>11.2}",
        started.elapsed().as_nanos() as f64 / calls,
        matched as f64 / calls
    );
}

/// A pattern of 2 to 6 levels: mostly literal words, some `*`, a few `#` (about 1 in 8 levels).
fn pattern(random: &mut XorShift) -> String {
    let levels = 2 + random.below(5);
    let words: Vec<String> = (0..levels)
        .map(|_| match random.below(16) {
            0..=1 => "#".to_owned(),
            2..=4 => "*".to_owned(),
            _ => word(random),
        })
        .collect();
    words.join(".")
}

fn key(random: &mut XorShift) -> String {
    let words: Vec<String> = (0..KEY_LEVELS).map(|_| word(random)).collect();
    words.join(".")
}

fn word(random: &mut XorShift) -> String {
    format!("w{}", random.below(VOCABULARY))
}

/// Deterministic and dependency-free; quality is beside the point here.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}
