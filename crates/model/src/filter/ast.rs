//! The parsed form of a filter and its canonical printing.
//!
//! `Display` here is the inverse of the parser: it prints every root explicitly, quotes strings
//! with single quotes and adds only the parentheses precedence needs, so printing and parsing
//! again gives an equal tree.

use std::fmt;

/// One node of a filter. `And` and `Or` hold two or more operands; the parser flattens chains
/// (`a and b and c` is one `And` of three), so the depth of the tree is the nesting of
/// parentheses and `not`, which the parser bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// `exists path`: the field is present (a JSON `null` is present).
    Exists(Path),
    /// `path == value`, `path < value`, ...
    Compare {
        path: Path,
        operator: CompareOperator,
        value: Literal,
    },
    /// `path in [v1, v2, ...]`.
    In {
        path: Path,
        values: Vec<Literal>,
    },
    /// `path contains value`: substring of a string, or element of an array.
    Contains {
        path: Path,
        value: Literal,
    },
    /// `path starts_with 'prefix'`.
    StartsWith {
        path: Path,
        prefix: String,
    },
    /// `path matches 'regex'`.
    Matches {
        path: Path,
        regex: CompiledRegex,
    },
}

/// Where a path starts looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The message headers: a flat map of strings, so a header path has exactly one `Key`.
    Headers,
    /// The JSON body.
    Body,
}

/// A field path: a root and the steps into it. `body.items[0].sku` is
/// `Body, [Key("items"), Index(0), Key("sku")]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub root: Root,
    pub segments: Vec<Segment>,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object member (`.name` or `['any name']`) or, under `headers`, a header name.
    Key(String),
    /// An array element, counted from 0 (`[3]`).
    Index(usize),
}

/// The comparison operators, printed as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOperator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A scalar value written in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
}

/// A number written in a filter or found in a message.
///
/// Integers stay exact (ids beyond 2^53 compare correctly); anything with a decimal point, and
/// integers beyond the 64-bit range, are `f64`. Two integers compare exactly, any other pair as
/// `f64`. A `Decimal` is always finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// Always within `i64::MIN..=u64::MAX`, the range JSON numbers have in `serde_json`.
    Integer(i128),
    Decimal(f64),
}

/// The pattern of a `matches`, compiled once at parse time. Equal when the sources are equal.
#[derive(Debug, Clone)]
pub struct CompiledRegex {
    regex: regex::Regex,
}

impl CompiledRegex {
    pub(super) fn new(regex: regex::Regex) -> CompiledRegex {
        CompiledRegex { regex }
    }

    /// The pattern as written (after string escapes).
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for CompiledRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl CompareOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOperator::Equal => "==",
            CompareOperator::NotEqual => "!=",
            CompareOperator::Less => "<",
            CompareOperator::LessOrEqual => "<=",
            CompareOperator::Greater => ">",
            CompareOperator::GreaterOrEqual => ">=",
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(operands) => write_operands(f, operands, " or ", |e| matches!(e, Expr::Or(_))),
            Expr::And(operands) => write_operands(f, operands, " and ", |e| {
                matches!(e, Expr::Or(_) | Expr::And(_))
            }),
            Expr::Not(operand) => {
                f.write_str("not ")?;
                write_grouped(f, operand, matches!(**operand, Expr::Or(_) | Expr::And(_)))
            }
            Expr::Exists(path) => write!(f, "exists {path}"),
            Expr::Compare {
                path,
                operator,
                value,
            } => write!(f, "{path} {} {value}", operator.as_str()),
            Expr::In { path, values } => {
                write!(f, "{path} in [")?;
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str("]")
            }
            Expr::Contains { path, value } => write!(f, "{path} contains {value}"),
            Expr::StartsWith { path, prefix } => {
                write!(f, "{path} starts_with ")?;
                write_string(f, prefix)
            }
            Expr::Matches { path, regex } => {
                write!(f, "{path} matches ")?;
                write_string(f, regex.as_str())
            }
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.root {
            Root::Headers => "headers",
            Root::Body => "body",
        })?;
        for segment in &self.segments {
            match segment {
                Segment::Key(name) if is_identifier(name) => write!(f, ".{name}")?,
                Segment::Key(name) => {
                    f.write_str("[")?;
                    write_string(f, name)?;
                    f.write_str("]")?;
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(text) => write_string(f, text),
            Literal::Number(number) => write!(f, "{number}"),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Integer(value) => write!(f, "{value}"),
            Number::Decimal(value) => {
                // `f64`'s Display is the shortest text that reads back to the same value and
                // never uses an exponent, but drops `.0`; without it `1.0` would come back
                // as the integer 1.
                let text = value.to_string();
                f.write_str(&text)?;
                if !text.contains('.') {
                    f.write_str(".0")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `name` can be written after a `.` in a path; otherwise it is printed as `['name']`.
pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if is_identifier_start(c)) && chars.all(is_identifier_continue)
}

pub(super) fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// `-` is allowed after the first character because header names use it (`x-request-id`) and
/// the language has no arithmetic it could be confused with.
pub(super) fn is_identifier_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn write_operands(
    f: &mut fmt::Formatter<'_>,
    operands: &[Expr],
    separator: &str,
    needs_parentheses: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (index, operand) in operands.iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        write_grouped(f, operand, needs_parentheses(operand))?;
    }
    Ok(())
}

fn write_grouped(f: &mut fmt::Formatter<'_>, expr: &Expr, parenthesize: bool) -> fmt::Result {
    if parenthesize {
        write!(f, "({expr})")
    } else {
        write!(f, "{expr}")
    }
}

/// Single-quoted, escaping only what the lexer needs escaped; every other character, control
/// characters included, is printed as is so the canonical form is never much longer than
/// the input.
fn write_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in text.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}
