//! Evaluates a parsed filter against one message's headers and JSON body.
//!
//! The rules (docs/filters.md, "Types" and "Missing fields"): a missing field makes every
//! predicate false except `not`, which negates as usual; `!=` is true only for a present
//! field whose value differs; values of different types are never equal or ordered; a header
//! is a string, read as a number when compared with a number.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

use super::ast::{CompareOperator, Expr, Literal, Number, Path, Root, Segment};
use super::lexer::parse_number_text;

/// The message as a filter sees it.
pub(super) struct Message<'a> {
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a Value>,
}

/// A field a path found.
#[derive(Clone, Copy)]
enum Field<'a> {
    Header(&'a str),
    Json(&'a Value),
}

pub(super) fn evaluate(expr: &Expr, message: &Message<'_>) -> bool {
    match expr {
        Expr::Or(operands) => operands.iter().any(|operand| evaluate(operand, message)),
        Expr::And(operands) => operands.iter().all(|operand| evaluate(operand, message)),
        Expr::Not(operand) => !evaluate(operand, message),
        Expr::Exists(path) => resolve(path, message).is_some(),
        Expr::Compare {
            path,
            operator,
            value,
        } => resolve(path, message).is_some_and(|field| compare(field, *operator, value)),
        Expr::In { path, values } => resolve(path, message)
            .is_some_and(|field| values.iter().any(|value| equals(field, value))),
        Expr::Contains { path, value } => {
            resolve(path, message).is_some_and(|field| contains(field, value))
        }
        Expr::StartsWith { path, prefix } => resolve(path, message)
            .and_then(text)
            .is_some_and(|text| text.starts_with(prefix.as_str())),
        Expr::Matches { path, regex } => resolve(path, message)
            .and_then(text)
            .is_some_and(|text| regex.is_match(text)),
    }
}

fn resolve<'a>(path: &Path, message: &Message<'a>) -> Option<Field<'a>> {
    match path.root {
        Root::Headers => match path.segments.as_slice() {
            [Segment::Key(name)] => message.headers.get(name).map(|value| Field::Header(value)),
            // The parser only builds header paths of one key.
            _ => None,
        },
        Root::Body => {
            let mut value = message.body?;
            for segment in &path.segments {
                value = match segment {
                    Segment::Key(name) => value.as_object()?.get(name)?,
                    Segment::Index(index) => value.as_array()?.get(*index)?,
                };
            }
            Some(Field::Json(value))
        }
    }
}

fn compare(field: Field<'_>, operator: CompareOperator, literal: &Literal) -> bool {
    match operator {
        CompareOperator::Equal => equals(field, literal),
        CompareOperator::NotEqual => !equals(field, literal),
        CompareOperator::Less => order(field, literal) == Some(Ordering::Less),
        CompareOperator::LessOrEqual => {
            matches!(
                order(field, literal),
                Some(Ordering::Less | Ordering::Equal)
            )
        }
        CompareOperator::Greater => order(field, literal) == Some(Ordering::Greater),
        CompareOperator::GreaterOrEqual => {
            matches!(
                order(field, literal),
                Some(Ordering::Greater | Ordering::Equal)
            )
        }
    }
}

fn equals(field: Field<'_>, literal: &Literal) -> bool {
    match (field, literal) {
        (Field::Header(header), Literal::String(text)) => header == text,
        (Field::Header(header), Literal::Bool(value)) => {
            header == if *value { "true" } else { "false" }
        }
        (Field::Json(Value::String(found)), Literal::String(text)) => found == text,
        (Field::Json(Value::Bool(found)), Literal::Bool(value)) => found == value,
        (Field::Json(Value::Null), Literal::Null) => true,
        (field, Literal::Number(number)) => {
            field_number(field).and_then(|found| compare_numbers(found, *number))
                == Some(Ordering::Equal)
        }
        _ => false,
    }
}

/// Only numbers with numbers and strings with strings have an order.
fn order(field: Field<'_>, literal: &Literal) -> Option<Ordering> {
    match literal {
        Literal::Number(number) => compare_numbers(field_number(field)?, *number),
        Literal::String(literal) => Some(text(field)?.cmp(literal.as_str())),
        Literal::Bool(_) | Literal::Null => None,
    }
}

fn contains(field: Field<'_>, literal: &Literal) -> bool {
    match (field, literal) {
        (Field::Json(Value::Array(elements)), literal) => elements
            .iter()
            .any(|element| equals(Field::Json(element), literal)),
        (field, Literal::String(needle)) => {
            text(field).is_some_and(|text| text.contains(needle.as_str()))
        }
        _ => false,
    }
}

/// The field as text: a header, or a JSON string.
fn text(field: Field<'_>) -> Option<&str> {
    match field {
        Field::Header(header) => Some(header),
        Field::Json(Value::String(text)) => Some(text),
        Field::Json(_) => None,
    }
}

/// The field as a number: a JSON number, or a header that reads as one (surrounding ASCII
/// whitespace ignored). A JSON string is not read as a number: the body has types.
fn field_number(field: Field<'_>) -> Option<Number> {
    match field {
        Field::Header(header) => parse_number_text(header.trim_ascii()),
        Field::Json(Value::Number(number)) => Some(json_number(number)),
        Field::Json(_) => None,
    }
}

fn json_number(number: &serde_json::Number) -> Number {
    if let Some(value) = number.as_i64() {
        Number::Integer(i128::from(value))
    } else if let Some(value) = number.as_u64() {
        Number::Integer(i128::from(value))
    } else {
        // Without serde_json's `arbitrary_precision`, a number that is not an integer is an f64.
        Number::Decimal(number.as_f64().unwrap_or(f64::NAN))
    }
}

fn compare_numbers(left: Number, right: Number) -> Option<Ordering> {
    match (left, right) {
        (Number::Integer(left), Number::Integer(right)) => Some(left.cmp(&right)),
        (left, right) => as_f64(left).partial_cmp(&as_f64(right)),
    }
}

fn as_f64(number: Number) -> f64 {
    match number {
        // i128 -> f64 rounds to nearest, which is the best an f64 comparison can do.
        Number::Integer(value) => value as f64,
        Number::Decimal(value) => value,
    }
}
