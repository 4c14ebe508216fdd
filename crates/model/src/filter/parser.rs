//! Recursive-descent parser from tokens to `Expr`, one token of lookahead.
//!
//! The grammar is in docs/filters.md; each function below is one of its rules. Recursion
//! happens only through `(` and `not`, and `depth` bounds both, so no input can overflow the
//! stack.

use super::ast::{CompareOperator, CompiledRegex, Expr, Literal, Number, Path, Root, Segment};
use super::error::{FilterError, FilterErrorKind};
use super::lexer::{Lexer, Token, TokenKind};
use super::{
    FILTER_DEPTH_MAX, FILTER_LIST_LENGTH_MAX, FILTER_REGEX_BYTES_MAX,
    FILTER_REGEX_COMPILED_BYTES_MAX, FILTER_REGEX_COUNT_MAX,
};

/// Words with a meaning where an operand or operator is expected. They may still name a field
/// after a dot or in brackets (`body.in`, `body['not']`).
const KEYWORDS: [&str; 11] = [
    "and",
    "or",
    "not",
    "exists",
    "in",
    "contains",
    "starts_with",
    "matches",
    "true",
    "false",
    "null",
];

const EXPECTED_OPERAND: &str = "a field path, `not`, `exists` or `(`";
const EXPECTED_SEGMENT: &str = "an index from 0 or a quoted name after `[`";

/// Parses `input`, which the caller has checked against `FILTER_BYTES_MAX`.
pub(super) fn parse(input: &str) -> Result<Expr, FilterError> {
    let mut parser = Parser::new(input)?;
    let expr = parser.or_expression()?;
    if parser.current.kind != TokenKind::EndOfInput {
        return Err(parser.unexpected("`and`, `or` or the end of the filter"));
    }
    Ok(expr)
}

struct Parser<'a> {
    input: &'a str,
    lexer: Lexer<'a>,
    current: Token<'a>,
    /// Open parentheses and `not`s around the current token.
    depth: usize,
    regex_count: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Parser<'a>, FilterError> {
        let mut lexer = Lexer::new(input);
        let current = lexer.next_token()?;
        Ok(Parser {
            input,
            lexer,
            current,
            depth: 0,
            regex_count: 0,
        })
    }

    fn advance(&mut self) -> Result<Token<'a>, FilterError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.current, next))
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.current.kind == TokenKind::Identifier(keyword)
    }

    /// `or_expression = and_expression { "or" and_expression }`
    fn or_expression(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.and_expression()?];
        while self.at_keyword("or") {
            self.advance()?;
            operands.push(self.and_expression()?);
        }
        Ok(collapse(operands, Expr::Or))
    }

    /// `and_expression = unary { "and" unary }`
    fn and_expression(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.unary()?];
        while self.at_keyword("and") {
            self.advance()?;
            operands.push(self.unary()?);
        }
        Ok(collapse(operands, Expr::And))
    }

    /// `unary = "not" unary | primary`
    fn unary(&mut self) -> Result<Expr, FilterError> {
        if !self.at_keyword("not") {
            return self.primary();
        }
        self.enter()?;
        self.advance()?;
        let operand = self.unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(operand)))
    }

    /// `primary = "(" or_expression ")" | "exists" path | predicate`
    fn primary(&mut self) -> Result<Expr, FilterError> {
        match self.current.kind {
            TokenKind::LeftParenthesis => {
                self.enter()?;
                self.advance()?;
                let expr = self.or_expression()?;
                if self.current.kind != TokenKind::RightParenthesis {
                    return Err(self.unexpected("`)`, `and` or `or`"));
                }
                self.advance()?;
                self.depth -= 1;
                Ok(expr)
            }
            TokenKind::Identifier("exists") => {
                self.advance()?;
                Ok(Expr::Exists(self.path("a field path after `exists`")?))
            }
            _ => self.predicate(),
        }
    }

    /// Counts one more level of nesting, refusing to pass `FILTER_DEPTH_MAX`.
    fn enter(&mut self) -> Result<(), FilterError> {
        if self.depth == FILTER_DEPTH_MAX {
            return Err(self.error_at_current(FilterErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// `predicate = path ( compare_operator value | "in" list | "contains" value
    ///              | "starts_with" string | "matches" string )`
    fn predicate(&mut self) -> Result<Expr, FilterError> {
        let path = self.path(EXPECTED_OPERAND)?;
        let operator = match self.current.kind {
            TokenKind::Equal => CompareOperator::Equal,
            TokenKind::NotEqual => CompareOperator::NotEqual,
            TokenKind::Less => CompareOperator::Less,
            TokenKind::LessOrEqual => CompareOperator::LessOrEqual,
            TokenKind::Greater => CompareOperator::Greater,
            TokenKind::GreaterOrEqual => CompareOperator::GreaterOrEqual,
            TokenKind::Identifier("in") => {
                self.advance()?;
                let values = self.list()?;
                return Ok(Expr::In { path, values });
            }
            TokenKind::Identifier("contains") => {
                self.advance()?;
                let value = self.value("a value after `contains`")?;
                return Ok(Expr::Contains { path, value });
            }
            TokenKind::Identifier("starts_with") => {
                self.advance()?;
                let (prefix, _) = self.string("a string after `starts_with`")?;
                return Ok(Expr::StartsWith { path, prefix });
            }
            TokenKind::Identifier("matches") => {
                self.advance()?;
                let regex = self.regex()?;
                return Ok(Expr::Matches { path, regex });
            }
            _ => {
                return Err(self.unexpected(
                    "an operator (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `contains`, \
                     `starts_with` or `matches`)",
                ))
            }
        };
        self.advance()?;
        let value = self.value(match operator {
            CompareOperator::Equal => "a value after `==`",
            CompareOperator::NotEqual => "a value after `!=`",
            CompareOperator::Less => "a value after `<`",
            CompareOperator::LessOrEqual => "a value after `<=`",
            CompareOperator::Greater => "a value after `>`",
            CompareOperator::GreaterOrEqual => "a value after `>=`",
        })?;
        Ok(Expr::Compare {
            path,
            operator,
            value,
        })
    }

    /// `path = identifier { "." name | "[" ( integer | string ) "]" }`; the first identifier
    /// is `headers`, `body` or the first field of the body.
    fn path(&mut self, expected: &'static str) -> Result<Path, FilterError> {
        let start = self.current.offset;
        let (root, mut segments) = match self.current.kind {
            TokenKind::Identifier(name) if !KEYWORDS.contains(&name) => match name {
                "headers" => (Root::Headers, Vec::new()),
                "body" => (Root::Body, Vec::new()),
                field => (Root::Body, vec![Segment::Key(field.to_owned())]),
            },
            _ => return Err(self.unexpected(expected)),
        };
        self.advance()?;
        loop {
            let segment_offset = self.current.offset;
            match self.current.kind {
                TokenKind::Dot => {
                    self.advance()?;
                    let TokenKind::Identifier(name) = self.current.kind else {
                        return Err(self.unexpected("a field name after `.`"));
                    };
                    segments.push(Segment::Key(name.to_owned()));
                    self.advance()?;
                }
                TokenKind::LeftBracket => {
                    self.advance()?;
                    segments.push(self.bracket_segment()?);
                }
                _ => break,
            }
            if root == Root::Headers && !matches!(segments[..], [Segment::Key(_)]) {
                return Err(self.error_at(segment_offset, FilterErrorKind::HeaderPath));
            }
        }
        if root == Root::Headers && segments.is_empty() {
            return Err(self.error_at(start, FilterErrorKind::HeaderPath));
        }
        Ok(Path { root, segments })
    }

    /// What follows `[` in a path: `0]` or `'name']`.
    fn bracket_segment(&mut self) -> Result<Segment, FilterError> {
        let segment = match &self.current.kind {
            TokenKind::Number(Number::Integer(index)) => match usize::try_from(*index) {
                Ok(index) => Segment::Index(index),
                Err(_) => return Err(self.unexpected(EXPECTED_SEGMENT)),
            },
            TokenKind::String(name) => Segment::Key(name.clone()),
            _ => return Err(self.unexpected(EXPECTED_SEGMENT)),
        };
        self.advance()?;
        if self.current.kind != TokenKind::RightBracket {
            return Err(self.unexpected("`]`"));
        }
        self.advance()?;
        Ok(segment)
    }

    /// `value = string | number | "true" | "false" | "null"`
    fn value(&mut self, expected: &'static str) -> Result<Literal, FilterError> {
        let literal = match &self.current.kind {
            TokenKind::String(text) => Literal::String(text.clone()),
            TokenKind::Number(number) => Literal::Number(*number),
            TokenKind::Identifier("true") => Literal::Bool(true),
            TokenKind::Identifier("false") => Literal::Bool(false),
            TokenKind::Identifier("null") => Literal::Null,
            _ => return Err(self.unexpected(expected)),
        };
        self.advance()?;
        Ok(literal)
    }

    /// `list = "[" [ value { "," value } ] "]"`
    fn list(&mut self) -> Result<Vec<Literal>, FilterError> {
        if self.current.kind != TokenKind::LeftBracket {
            return Err(self.unexpected("`[` after `in`"));
        }
        self.advance()?;
        let mut values = Vec::new();
        if self.current.kind == TokenKind::RightBracket {
            self.advance()?;
            return Ok(values);
        }
        loop {
            if values.len() == FILTER_LIST_LENGTH_MAX {
                return Err(self.error_at_current(FilterErrorKind::ListTooLong));
            }
            values.push(self.value("a value in the list")?);
            match self.current.kind {
                TokenKind::Comma => {
                    self.advance()?;
                }
                TokenKind::RightBracket => {
                    self.advance()?;
                    return Ok(values);
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    /// A string token; returns its text and offset.
    fn string(&mut self, expected: &'static str) -> Result<(String, usize), FilterError> {
        let TokenKind::String(text) = &self.current.kind else {
            return Err(self.unexpected(expected));
        };
        let text = text.clone();
        let offset = self.advance()?.offset;
        Ok((text, offset))
    }

    /// The pattern after `matches`, compiled with size limits; errors point at the pattern.
    fn regex(&mut self) -> Result<CompiledRegex, FilterError> {
        let (pattern, offset) = self.string("a quoted regular expression after `matches`")?;
        if self.regex_count == FILTER_REGEX_COUNT_MAX {
            return Err(self.error_at(offset, FilterErrorKind::TooManyRegexes));
        }
        self.regex_count += 1;
        if pattern.len() > FILTER_REGEX_BYTES_MAX {
            let length = pattern.len();
            return Err(self.error_at(offset, FilterErrorKind::RegexTooLong { length }));
        }
        regex::RegexBuilder::new(&pattern)
            .size_limit(FILTER_REGEX_COMPILED_BYTES_MAX)
            .dfa_size_limit(FILTER_REGEX_COMPILED_BYTES_MAX)
            .build()
            .map(CompiledRegex::new)
            .map_err(|source| self.error_at(offset, FilterErrorKind::InvalidRegex { source }))
    }

    fn unexpected(&self, expected: &'static str) -> FilterError {
        let found = match &self.current.kind {
            TokenKind::Identifier(name) => format!("`{name}`"),
            TokenKind::String(_) => "a string".to_owned(),
            TokenKind::Number(_) => "a number".to_owned(),
            TokenKind::LeftParenthesis => "`(`".to_owned(),
            TokenKind::RightParenthesis => "`)`".to_owned(),
            TokenKind::LeftBracket => "`[`".to_owned(),
            TokenKind::RightBracket => "`]`".to_owned(),
            TokenKind::Comma => "`,`".to_owned(),
            TokenKind::Dot => "`.`".to_owned(),
            TokenKind::Equal => "`==`".to_owned(),
            TokenKind::NotEqual => "`!=`".to_owned(),
            TokenKind::Less => "`<`".to_owned(),
            TokenKind::LessOrEqual => "`<=`".to_owned(),
            TokenKind::Greater => "`>`".to_owned(),
            TokenKind::GreaterOrEqual => "`>=`".to_owned(),
            TokenKind::EndOfInput => "end of input".to_owned(),
        };
        self.error_at_current(FilterErrorKind::Unexpected { expected, found })
    }

    fn error_at_current(&self, kind: FilterErrorKind) -> FilterError {
        self.error_at(self.current.offset, kind)
    }

    fn error_at(&self, offset: usize, kind: FilterErrorKind) -> FilterError {
        FilterError::new(self.input, offset, kind)
    }
}

/// One operand stands for itself; more become an `And` or `Or`.
fn collapse(mut operands: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    if operands.len() == 1 {
        operands.pop().expect("one operand")
    } else {
        combine(operands)
    }
}
