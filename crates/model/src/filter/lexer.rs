//! Splits filter text into tokens, one at a time, each with the byte offset it starts at.
//!
//! Keywords are not decided here: `and`, `in` or `true` come out as identifiers and the parser
//! reads them by position, so a field may be named `in` after a dot (`body.in`).

use super::ast::{is_identifier_continue, is_identifier_start, Number};
use super::error::{FilterError, FilterErrorKind};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind<'a> {
    Identifier(&'a str),
    String(String),
    Number(Number),
    LeftParenthesis,
    RightParenthesis,
    LeftBracket,
    RightBracket,
    Comma,
    Dot,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    EndOfInput,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'a> {
    pub kind: TokenKind<'a>,
    pub offset: usize,
}

pub(super) struct Lexer<'a> {
    input: &'a str,
    position: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str) -> Lexer<'a> {
        Lexer { input, position: 0 }
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
        self.skip_whitespace();
        let offset = self.position;
        let Some(c) = self.peek() else {
            return Ok(Token {
                kind: TokenKind::EndOfInput,
                offset,
            });
        };
        let kind = match c {
            '(' => self.single(TokenKind::LeftParenthesis),
            ')' => self.single(TokenKind::RightParenthesis),
            '[' => self.single(TokenKind::LeftBracket),
            ']' => self.single(TokenKind::RightBracket),
            ',' => self.single(TokenKind::Comma),
            '.' => self.single(TokenKind::Dot),
            '=' if self.rest().starts_with("==") => self.double(TokenKind::Equal),
            '!' if self.rest().starts_with("!=") => self.double(TokenKind::NotEqual),
            '<' if self.rest().starts_with("<=") => self.double(TokenKind::LessOrEqual),
            '<' => self.single(TokenKind::Less),
            '>' if self.rest().starts_with(">=") => self.double(TokenKind::GreaterOrEqual),
            '>' => self.single(TokenKind::Greater),
            '\'' | '"' => TokenKind::String(self.string(c)?),
            '-' | '0'..='9' => TokenKind::Number(self.number()?),
            c if is_identifier_start(c) => TokenKind::Identifier(self.identifier()),
            character => {
                return Err(self.error(offset, FilterErrorKind::InvalidCharacter { character }))
            }
        };
        Ok(Token { kind, offset })
    }

    fn rest(&self) -> &'a str {
        &self.input[self.position..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.position += c.len_utf8();
        Some(c)
    }

    fn single(&mut self, kind: TokenKind<'a>) -> TokenKind<'a> {
        self.position += 1;
        kind
    }

    fn double(&mut self, kind: TokenKind<'a>) -> TokenKind<'a> {
        self.position += 2;
        kind
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn identifier(&mut self) -> &'a str {
        let start = self.position;
        while self.peek().is_some_and(is_identifier_continue) {
            self.bump();
        }
        &self.input[start..self.position]
    }

    fn number(&mut self) -> Result<Number, FilterError> {
        let start = self.position;
        let length = number_prefix_length(self.rest());
        if length == 0 {
            // A lone `-`, or `-` not followed by a digit.
            return Err(self.error(start, FilterErrorKind::InvalidCharacter { character: '-' }));
        }
        self.position += length;
        if self.peek().is_some_and(is_identifier_continue) || self.peek() == Some('.') {
            // `12abc`, `1.2.3`, `1.`: not a number and not anything else either.
            let found = self.peek().unwrap_or(' ');
            return Err(self.error(
                self.position,
                FilterErrorKind::InvalidCharacter { character: found },
            ));
        }
        parse_number_text(&self.input[start..self.position])
            .ok_or_else(|| self.error(start, FilterErrorKind::NumberOutOfRange))
    }

    /// Reads a quoted string, the opening `quote` not yet consumed.
    fn string(&mut self, quote: char) -> Result<String, FilterError> {
        let start = self.position;
        self.bump();
        let mut text = String::new();
        loop {
            let escape_offset = self.position;
            match self.bump() {
                None => return Err(self.error(start, FilterErrorKind::UnterminatedString)),
                Some(c) if c == quote => return Ok(text),
                Some('\\') => match self.peek() {
                    Some('n' | 't' | 'r' | '0' | '\\' | '\'' | '"' | 'u') => {
                        let c = self.string_escape().ok_or_else(|| {
                            self.error(escape_offset, FilterErrorKind::InvalidEscape)
                        })?;
                        text.push(c);
                    }
                    // Any other backslash stays as written, so regular expressions read
                    // naturally: `'^ORD-\d+$'` is the pattern `^ORD-\d+$`.
                    _ => text.push('\\'),
                },
                Some(c) => text.push(c),
            }
        }
    }

    /// Reads a known escape after its backslash; `None` if a `\\u{...}` is malformed.
    fn string_escape(&mut self) -> Option<char> {
        match self.bump()? {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '0' => Some('\0'),
            c @ ('\\' | '\'' | '"') => Some(c),
            'u' => {
                if self.bump()? != '{' {
                    return None;
                }
                let rest = self.rest();
                let close = rest.find('}')?;
                let digits = &rest[..close];
                if digits.is_empty() || digits.len() > 6 {
                    return None;
                }
                let value = u32::from_str_radix(digits, 16).ok()?;
                self.position += close + 1;
                char::from_u32(value)
            }
            _ => None,
        }
    }

    fn error(&self, offset: usize, kind: FilterErrorKind) -> FilterError {
        FilterError::new(self.input, offset, kind)
    }
}

/// Reads `text` as a whole number in filter syntax (`-?digits(.digits)?`), as the lexer does.
/// Also used on header values compared with a number. `None` if it is anything else or does
/// not fit an `f64`.
pub(super) fn parse_number_text(text: &str) -> Option<Number> {
    if text.is_empty() || number_prefix_length(text) != text.len() {
        return None;
    }
    if !text.contains('.') {
        if let Ok(value) = text.parse::<i128>() {
            if (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&value) {
                return Some(Number::Integer(value));
            }
        }
    }
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(Number::Decimal(value))
}

/// Length of the longest prefix of `text` of the form `-?digits(.digits)?`; 0 if none.
fn number_prefix_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut length = usize::from(bytes.first() == Some(&b'-'));
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let integer_digits = digits(length);
    if integer_digits == 0 {
        return 0;
    }
    length += integer_digits;
    if bytes.get(length) == Some(&b'.') {
        let fraction_digits = digits(length + 1);
        if fraction_digits > 0 {
            length += 1 + fraction_digits;
        }
    }
    length
}
