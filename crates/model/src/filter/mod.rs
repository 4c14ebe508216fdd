//! The filter language: one small expression language for every place Wharf filters or routes
//! messages (bindings, subscriptions, routing rules).
//!
//! `Filter::parse` turns text like `eventType == 'OrderCreated' and amount > 1000` into a
//! checked tree once, when the binding or subscription is made; `Filter::evaluate` then runs
//! per message with no parsing and no allocation (beyond the `regex` crate's warm-up caches),
//! within a cost budget, so that no message can make a filter run long. This module owns the
//! syntax, the limits and the meaning of each operator; it knows nothing of where filters are
//! stored or which door sent them, and leaves counting the evaluations that hit a limit to the
//! caller. The grammar, the rules for types and missing fields, and the limits are in
//! docs/filters.md.

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cost_tests;

#[cfg(test)]
mod proptests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use ast::{CompareOperator, CompiledRegex, Expr, Literal, Number, Path, Root, Segment};
pub use error::{FilterError, FilterErrorKind};
pub use eval::{Evaluation, EvaluationLimit};

/// Longest filter text in bytes. A filter is kept with every binding and a topic may have
/// 100,000 bindings; 4 KiB fits any rule a person writes and bounds parse time and storage.
/// The canonical form must fit too, so a stored canonical filter always parses again.
pub const FILTER_BYTES_MAX: usize = 4096;

/// Deepest nesting of parentheses and `not`. The parser, `Display` and evaluation recurse once
/// per level; 32 is far beyond any readable filter and keeps every recursion a few KiB of
/// stack, so hostile input (10,000 `(`) is an error, not a stack overflow.
pub const FILTER_DEPTH_MAX: usize = 32;

/// Most values in one `in [...]` list. Membership is a linear scan per message; 256 keeps it
/// cheap, and longer lists belong in routing keys or separate bindings.
pub const FILTER_LIST_LENGTH_MAX: usize = 256;

/// Longest `matches` pattern in bytes, before compilation. Patterns in filters check formats
/// (ids, prefixes, e-mail shapes); 256 bytes is plenty and keeps compile time small.
pub const FILTER_REGEX_BYTES_MAX: usize = 256;

/// Memory one compiled pattern may use, passed to the `regex` crate both as the program size
/// limit and as the lazy DFA cache limit. A short pattern can still compile large
/// (`\w{100}` over Unicode classes); this stops it at parse time instead of in memory.
pub const FILTER_REGEX_COMPILED_BYTES_MAX: usize = 256 * 1024;

/// Most `matches` in one filter, so one filter holds at most 8 x 256 KiB of compiled patterns
/// however its 4 KiB are spent.
pub const FILTER_REGEX_COUNT_MAX: usize = 8;

/// Longest text one `matches` reads, in bytes; a longer text stops the evaluation with no match
/// (`EvaluationLimit::MatchTextTooLong`). Patterns in filters check ids, codes, addresses and
/// subjects, all far shorter; a longer text is a document, and searching documents is the
/// consumer's job. The `regex` crate falls back from its lazy DFA to the much slower PikeVM for
/// some patterns and texts (a Unicode `\b` over non-ASCII text, a DFA cache that thrashes), and
/// MiB-sized texts there took seconds per message; 64 KiB keeps one such scan to a small
/// fraction of that while staying far above any field a pattern should route on.
pub const FILTER_MATCH_TEXT_BYTES_MAX: usize = 64 * 1024;

/// Cost units one evaluation may spend: one per node visited, one per array element `contains`
/// compares, and one per byte of message text that `contains`, `starts_with` and `matches` read.
/// The next step that would pass it stops the evaluation with no match
/// (`EvaluationLimit::BudgetExhausted`). The tree itself costs next to nothing (a 4 KiB filter
/// has a few thousand nodes at most), so the budget is about message text: 256 Ki units let a
/// filter run four `matches` over texts at `FILTER_MATCH_TEXT_BYTES_MAX`, or search a 256 KiB
/// string, on the order of a millisecond of work with substring search and the lazy DFA; and
/// however the eight `matches` of a filter are spent, the PikeVM fallback never reads more than
/// 256 KiB per evaluation either.
pub const FILTER_EVALUATION_COST_MAX: usize = 256 * 1024;

/// A parsed, checked filter expression.
///
/// Built only by parsing, so every `Filter` is within the limits above. `Display` prints the
/// canonical form: it parses back to an equal `Filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses and checks `text`. Errors carry the position of the problem.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > FILTER_BYTES_MAX {
            let mut offset = FILTER_BYTES_MAX;
            while !text.is_char_boundary(offset) {
                offset -= 1;
            }
            let length = text.len();
            return Err(FilterError::new(
                text,
                offset,
                FilterErrorKind::TooLong { length },
            ));
        }
        let filter = Filter {
            expr: parser::parse(text)?,
        };
        let length = canonical_length(&filter);
        if length > FILTER_BYTES_MAX {
            let kind = FilterErrorKind::CanonicalTooLong { length };
            return Err(FilterError::new(text, 0, kind));
        }
        Ok(filter)
    }

    /// Whether a message with these headers and body passes the filter, and whether a limit
    /// stopped the evaluation (then it does not pass). `body` is `None` when the body is not
    /// JSON; every body path is then missing. The cost is bounded by
    /// [`FILTER_EVALUATION_COST_MAX`] whatever the message holds.
    pub fn evaluate(
        &self,
        headers: &BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
    ) -> Evaluation {
        eval::evaluate(&self.expr, &eval::Message { headers, body })
    }

    /// `evaluate(..).matched`, for callers with nowhere to count an evaluation a limit stopped.
    pub fn matches(
        &self,
        headers: &BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
    ) -> bool {
        self.evaluate(headers, body).matched
    }

    /// The parsed tree, for callers that inspect a filter (for example to index header tests).
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Filter::parse(text)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

/// Serialized as its canonical text, so a filter in JSON is the string a person writes.
impl serde::Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Filter::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Bytes `Display` would write, counted without building the string.
fn canonical_length(filter: &Filter) -> usize {
    struct Counter(usize);
    impl fmt::Write for Counter {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0 += text.len();
            Ok(())
        }
    }
    let mut counter = Counter(0);
    fmt::write(&mut counter, format_args!("{filter}")).expect("counting never fails");
    counter.0
}
