//! The filter language: one small expression language for every place Wharf filters or routes
//! messages (bindings, subscriptions, routing rules).
//!
//! `Filter::parse` turns text like `eventType == 'OrderCreated' and amount > 1000` into a
//! checked tree once, when the binding or subscription is made; `Filter::matches` then runs
//! per message with no parsing and no allocation (beyond the `regex` crate's warm-up caches).
//! This module owns the syntax, the limits and the meaning of each operator; it knows nothing
//! of where filters are stored or which door sent them. The grammar and the rules for types
//! and missing fields are in docs/filters.md.

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use ast::{CompareOperator, CompiledRegex, Expr, Literal, Number, Path, Root, Segment};
pub use error::{FilterError, FilterErrorKind};

/// Longest filter text in bytes. A filter is kept with every binding and a topic may have
/// 100,000 bindings; 4 KiB fits any rule a person writes and bounds parse time and storage.
/// The canonical form must fit too, so a stored canonical filter always parses again.
pub const FILTER_BYTES_MAX: usize = 4096;

/// Deepest nesting of parentheses and `not`. The parser, `Display` and `matches` recurse once
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

    /// Whether a message with these headers and body passes the filter. `body` is `None` when
    /// the body is not JSON; every body path is then missing.
    pub fn matches(
        &self,
        headers: &BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
    ) -> bool {
        eval::evaluate(&self.expr, &eval::Message { headers, body })
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
