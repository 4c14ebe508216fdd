//! Routing patterns and the topic matcher.
//!
//! Owns the engine's one form of a pattern (a list of [`Segment`]s), the three door syntaxes
//! that parse into it ([`Syntax`]: AMQP, MQTT, NATS), routing-key splitting, and [`Trie`], the
//! matcher whose cost follows the depth of a key rather than the number of bindings. What a
//! match leads to (queues, streams, sessions) and whether one destination reached twice gets
//! one copy or two is the engine's business: the trie reports every matching entry once.
//!
//! How each syntax maps onto segments:
//!
//! | meaning                  | segments        | AMQP 0-9-1 topic | MQTT 5 filter | NATS subject |
//! |--------------------------|-----------------|------------------|---------------|--------------|
//! | this word                | `Literal(word)` | `word`           | `word`        | `word`       |
//! | exactly one word         | `One`           | `*`              | `+`           | `*`          |
//! | zero or more words       | `Many`          | `#` (anywhere)   | `#` (last)    | none         |
//! | one or more words        | `One, Many`     | `*.#`            | `+/#`         | `>` (last)   |
//!
//! MQTT's `#` also matches the parent level (`sport/#` matches `sport`, MQTT 5 §4.7.1.2), which
//! is exactly "zero or more levels" once `sport/#` is `[Literal("sport"), Many]`. NATS's `>`
//! needs at least one token (`foo.>` does not match `foo`), so it becomes `One, Many` rather
//! than a fourth segment kind: the matcher stays three-way and AMQP `a.*.#` and NATS `a.>` are
//! the same pattern.
//!
//! Topics whose first word starts with `$` are reserved for the broker (MQTT 5 §4.7.2,
//! [MQTT-4.7.2-1]): a pattern whose first segment is a wildcard never matches them, whichever
//! syntax it came from, so a `#` over AMQP or a `>` over NATS does not see broker topics
//! either. `$SYS/#` (first segment literal) matches them as usual.

mod syntax;
mod trie;

#[cfg(test)]
mod tests;

pub use syntax::Syntax;
pub use trie::Trie;

/// Longest pattern or routing key in bytes. 4 KiB holds AMQP's 255-byte `shortstr` routing
/// keys and NATS's default 4 KiB control line; MQTT allows 65,535 bytes, but a topic that long
/// is abuse, not a naming scheme, and every binding keeps its pattern in memory.
pub const PATTERN_BYTES_MAX: usize = 4096;

/// Most levels (words) in a pattern or routing key. The matcher recurses once per pattern
/// level and does work per key level on every publish, so this bounds both its stack and the
/// cost of one publish; real topic schemes use fewer than a dozen levels.
pub const PATTERN_LEVELS_MAX: usize = 128;

/// One level of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Exactly this word.
    Literal(String),
    /// Exactly one word, any word (including an empty one where the syntax allows them).
    One,
    /// Zero or more words.
    Many,
}

/// A routing pattern: the segments a routing key's words are matched against, in order.
///
/// Only [`Pattern::parse`] builds one, so every pattern respects [`PATTERN_LEVELS_MAX`] and the
/// matcher's recursion stays bounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    segments: Vec<Segment>,
}

/// Why a pattern, a routing key or a syntax name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{syntax} pattern or routing key is empty; at least one character is required")]
    Empty { syntax: Syntax },
    #[error("pattern or routing key is {length} bytes long; at most {max} are allowed", max = PATTERN_BYTES_MAX)]
    TooLong { length: usize },
    #[error("pattern or routing key has {levels} levels; at most {max} are allowed", max = PATTERN_LEVELS_MAX)]
    TooManyLevels { levels: usize },
    #[error("level {level} is empty; {syntax} does not allow empty words")]
    EmptyWord { syntax: Syntax, level: usize },
    #[error(
        "{character:?} at byte {position} is not allowed in a {syntax} pattern or routing key"
    )]
    InvalidCharacter {
        syntax: Syntax,
        character: char,
        position: usize,
    },
    #[error("level {level} mixes a wildcard with other characters; in {syntax} a wildcard must be the whole level")]
    WildcardInWord { syntax: Syntax, level: usize },
    #[error(
        "the multi-level wildcard at level {level} is not the last level, as {syntax} requires"
    )]
    ManyNotLast { syntax: Syntax, level: usize },
    #[error("level {level} of a {syntax} routing key is a wildcard; wildcards belong in patterns")]
    WildcardInKey { syntax: Syntax, level: usize },
    #[error("this pattern cannot be written in {syntax} syntax")]
    NotExpressible { syntax: Syntax },
    #[error("unknown pattern syntax {name:?}; expected \"amqp\", \"mqtt\" or \"nats\"")]
    UnknownSyntax { name: String },
}

impl Pattern {
    /// Parses `text` written in `syntax`. See [`Syntax`] for each syntax's rules.
    pub fn parse(text: &str, syntax: Syntax) -> Result<Pattern, PatternError> {
        let segments = syntax::parse(text, syntax)?;
        Ok(Pattern { segments })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Writes the pattern in `syntax`, such that `Pattern::parse(text, syntax)` gives it back.
    ///
    /// Fails when `syntax` cannot say it: zero-or-more anywhere in NATS, `#` before the last
    /// level in MQTT, a literal word holding the separator or a wildcard, an empty word in NATS.
    pub fn to_text(&self, syntax: Syntax) -> Result<String, PatternError> {
        let not_expressible = PatternError::NotExpressible { syntax };
        let text = syntax::format(&self.segments, syntax).ok_or(not_expressible.clone())?;
        match Pattern::parse(&text, syntax) {
            Ok(parsed) if parsed == *self => Ok(text),
            _ => Err(not_expressible),
        }
    }

    /// Whether this one pattern matches a routing key split into `words` (see
    /// [`Syntax::split_key`]). For many patterns at once use [`Trie`].
    ///
    /// Greedy matching that backtracks only to the last `Many`: O(segments x words) however
    /// many `Many`s the pattern has, so a hostile pattern cannot make a check exponential.
    pub fn matches(&self, words: &[&str]) -> bool {
        if starts_reserved(words) && starts_with_wildcard(&self.segments) {
            return false;
        }
        let segments = &self.segments;
        let (mut segment_at, mut word_at) = (0, 0);
        // After the last `Many` seen: the segment following it and the first word it has not
        // swallowed yet. On a mismatch that `Many` swallows one more word and matching resumes.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            match (segments.get(segment_at), words.get(word_at)) {
                (Some(Segment::Many), _) => {
                    segment_at += 1;
                    resume = Some((segment_at, word_at));
                    continue;
                }
                (Some(Segment::One), Some(_)) => {
                    segment_at += 1;
                    word_at += 1;
                    continue;
                }
                (Some(Segment::Literal(literal)), Some(word)) if literal == word => {
                    segment_at += 1;
                    word_at += 1;
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            match resume {
                Some((after_many, swallowed)) if swallowed < words.len() => {
                    resume = Some((after_many, swallowed + 1));
                    segment_at = after_many;
                    word_at = swallowed + 1;
                }
                _ => return false,
            }
        }
    }
}

/// The broker's reserved topics (MQTT 5 §4.7.2): first word starting with `$`.
fn starts_reserved(words: &[&str]) -> bool {
    words.first().is_some_and(|word| word.starts_with('$'))
}

fn starts_with_wildcard(segments: &[Segment]) -> bool {
    matches!(segments.first(), Some(Segment::One | Segment::Many))
}
