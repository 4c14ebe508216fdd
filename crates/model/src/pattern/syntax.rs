//! The three door syntaxes: parsing patterns, splitting routing keys, writing patterns back.
//!
//! Each syntax follows its protocol's rules; where a protocol leaves a choice, the rule below
//! says which one Wharf makes and why.

use super::{PatternError, Segment, PATTERN_BYTES_MAX, PATTERN_LEVELS_MAX};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The syntax a pattern is written in. Over HTTP a binding names it; AMQP style is the default.
///
/// - `amqp`: AMQP 0-9-1 topic exchange (exchange class, `queue.bind` routing-key; RabbitMQ's
///   topic exchange). Words separated by `.`; `*` is one word, `#` zero or more, anywhere.
///   Empty words are allowed (`a..b`, `a.`) and the empty string is the key or pattern of
///   zero words, which only `""` and patterns made of `#` match. A word is a wildcard only
///   when it is exactly `*` or `#`; `a*` is the literal word `a*`, as in RabbitMQ.
/// - `mqtt`: MQTT 5 §4.7. Levels separated by `/`; `+` is one level [MQTT-4.7.1-2], `#` zero
///   or more levels and only as the last level [MQTT-4.7.1-1]; a wildcard that shares its
///   level with other characters is an error, as is any wildcard in a topic name
///   [MQTT-4.7.0-1]. At least one character [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2]; empty
///   levels are allowed (`/finance` has two levels).
/// - `nats`: NATS subjects. Tokens separated by `.`; `*` is one token, `>` one or more tokens
///   and only last. No empty tokens, no empty subject, no whitespace (the NATS protocol
///   separates fields with it). A token is a wildcard only when it is exactly `*` or `>`, as
///   in nats-server; a subject published to may hold neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    #[default]
    Amqp,
    Mqtt,
    Nats,
}

impl Syntax {
    pub fn separator(self) -> char {
        match self {
            Syntax::Amqp | Syntax::Nats => '.',
            Syntax::Mqtt => '/',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Syntax::Amqp => "amqp",
            Syntax::Mqtt => "mqtt",
            Syntax::Nats => "nats",
        }
    }

    /// Splits a routing key (AMQP routing key, MQTT topic name, NATS subject) into `words`,
    /// which is cleared first; the caller keeps the buffer across publishes.
    pub fn split_key<'k>(self, key: &'k str, words: &mut Vec<&'k str>) -> Result<(), PatternError> {
        words.clear();
        check_text(key, self)?;
        if key.is_empty() {
            // Only AMQP gets here: its empty key is the key of zero words.
            return Ok(());
        }
        words.extend(key.split(self.separator()));
        for (level, word) in words.iter().enumerate() {
            let wildcard = match self {
                Syntax::Amqp => false,
                Syntax::Mqtt => word.contains(['+', '#']),
                Syntax::Nats => *word == "*" || *word == ">",
            };
            if wildcard {
                return Err(PatternError::WildcardInKey {
                    syntax: self,
                    level,
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Syntax {
    type Err = PatternError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "amqp" => Ok(Syntax::Amqp),
            "mqtt" => Ok(Syntax::Mqtt),
            "nats" => Ok(Syntax::Nats),
            _ => Err(PatternError::UnknownSyntax {
                name: name.to_owned(),
            }),
        }
    }
}

/// The segments of `text` in `syntax`; `Pattern::parse` wraps them.
pub(super) fn parse(text: &str, syntax: Syntax) -> Result<Vec<Segment>, PatternError> {
    check_text(text, syntax)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let levels = text.split(syntax.separator()).count();
    let mut segments = Vec::with_capacity(levels + 1);
    for (level, word) in text.split(syntax.separator()).enumerate() {
        let last = level + 1 == levels;
        match (syntax, word) {
            (Syntax::Amqp, "#") => segments.push(Segment::Many),
            (Syntax::Amqp | Syntax::Nats, "*") | (Syntax::Mqtt, "+") => segments.push(Segment::One),
            (Syntax::Mqtt, "#") | (Syntax::Nats, ">") if !last => {
                return Err(PatternError::ManyNotLast { syntax, level });
            }
            (Syntax::Mqtt, "#") => segments.push(Segment::Many),
            (Syntax::Nats, ">") => segments.extend([Segment::One, Segment::Many]),
            (Syntax::Mqtt, _) if word.contains(['+', '#']) => {
                return Err(PatternError::WildcardInWord { syntax, level });
            }
            _ => segments.push(Segment::Literal(word.to_owned())),
        }
    }
    Ok(segments)
}

/// `segments` written in `syntax`, or `None` where the syntax has no way to say a segment.
/// The result may still be unparseable (a literal holding the separator); `to_text` checks.
pub(super) fn format(segments: &[Segment], syntax: Syntax) -> Option<String> {
    let mut words: Vec<&str> = Vec::with_capacity(segments.len());
    let mut at = 0;
    while let Some(segment) = segments.get(at) {
        let word = match (syntax, segment) {
            (_, Segment::Literal(word)) => word.as_str(),
            (Syntax::Amqp, Segment::One) => "*",
            (Syntax::Mqtt, Segment::One) => "+",
            (Syntax::Nats, Segment::One) if segments.get(at + 1) == Some(&Segment::Many) => {
                at += 1;
                ">"
            }
            (Syntax::Nats, Segment::One) => "*",
            (Syntax::Amqp | Syntax::Mqtt, Segment::Many) => "#",
            (Syntax::Nats, Segment::Many) => return None,
        };
        words.push(word);
        at += 1;
    }
    Some(words.join(&syntax.separator().to_string()))
}

/// Rules shared by patterns and keys: length, level count, characters, empty words.
fn check_text(text: &str, syntax: Syntax) -> Result<(), PatternError> {
    if text.len() > PATTERN_BYTES_MAX {
        return Err(PatternError::TooLong { length: text.len() });
    }
    if text.is_empty() {
        return match syntax {
            Syntax::Amqp => Ok(()),
            Syntax::Mqtt | Syntax::Nats => Err(PatternError::Empty { syntax }),
        };
    }
    let levels = text.matches(syntax.separator()).count() + 1;
    if levels > PATTERN_LEVELS_MAX {
        return Err(PatternError::TooManyLevels { levels });
    }
    let forbidden = |c: char| match syntax {
        Syntax::Amqp => false,
        Syntax::Mqtt => c == '\0',
        Syntax::Nats => c.is_whitespace(),
    };
    if let Some((position, character)) = text.char_indices().find(|&(_, c)| forbidden(c)) {
        return Err(PatternError::InvalidCharacter {
            syntax,
            character,
            position,
        });
    }
    if syntax == Syntax::Nats {
        if let Some(level) = text.split('.').position(str::is_empty) {
            return Err(PatternError::EmptyWord { syntax, level });
        }
    }
    Ok(())
}
