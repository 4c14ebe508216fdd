//! Why a filter did not parse, and where.

use super::{
    FILTER_BYTES_MAX, FILTER_DEPTH_MAX, FILTER_LIST_LENGTH_MAX, FILTER_REGEX_BYTES_MAX,
    FILTER_REGEX_COUNT_MAX,
};

/// A filter that did not parse: what went wrong and where. Doors answer it with a 400 that
/// quotes the message; the message names the column, `offset` is there for tools that
/// underline the source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} at column {column}")]
pub struct FilterError {
    /// Byte offset into the filter text where the problem starts (always a char boundary).
    pub offset: usize,
    /// 1-based column of `offset`, counted in characters from the start of the filter.
    pub column: usize,
    pub kind: FilterErrorKind,
}

/// What went wrong; `FilterError` adds the position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterErrorKind {
    #[error("filter is {length} bytes long; at most {max} are allowed", max = FILTER_BYTES_MAX)]
    TooLong { length: usize },
    /// The canonical form (what `Display` prints) must fit the same limit, so that a stored
    /// canonical filter always parses again.
    #[error(
        "filter is {length} bytes long when written canonically; at most {max} are allowed",
        max = FILTER_BYTES_MAX
    )]
    CanonicalTooLong { length: usize },
    #[error("expected {expected}, found {found}")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error("unexpected character {character:?}")]
    InvalidCharacter { character: char },
    #[error("string is not closed")]
    UnterminatedString,
    #[error("invalid escape in string; `\\u` takes 1 to 6 hex digits in braces, like `\\u{{e9}}`")]
    InvalidEscape,
    #[error("number is too large")]
    NumberOutOfRange,
    #[error("a header path names exactly one header, like `headers.region` or `headers['a.b']`")]
    HeaderPath,
    #[error("filter nests deeper than {max} parentheses and `not`s", max = FILTER_DEPTH_MAX)]
    TooDeep,
    #[error("list has more than {max} values", max = FILTER_LIST_LENGTH_MAX)]
    ListTooLong,
    #[error("filter has more than {max} `matches`", max = FILTER_REGEX_COUNT_MAX)]
    TooManyRegexes,
    #[error(
        "regular expression is {length} bytes long; at most {max} are allowed",
        max = FILTER_REGEX_BYTES_MAX
    )]
    RegexTooLong { length: usize },
    #[error("invalid regular expression: {source}")]
    InvalidRegex {
        #[source]
        source: regex::Error,
    },
}

impl FilterError {
    pub(super) fn new(input: &str, offset: usize, kind: FilterErrorKind) -> FilterError {
        debug_assert!(input.is_char_boundary(offset));
        let column = input[..offset].chars().count() + 1;
        FilterError {
            offset,
            column,
            kind,
        }
    }
}
