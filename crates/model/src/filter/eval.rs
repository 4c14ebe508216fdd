//! Evaluates a parsed filter against one message's headers and JSON body, within a cost budget.
//!
//! The rules (docs/filters.md, "Types" and "Missing fields"): a missing field makes every
//! predicate false except `not`, which negates as usual; `!=` is true only for a present
//! field whose value differs; values of different types are never equal or ordered; a header
//! is a string, read as a number when compared with a number.
//!
//! The cost rules (docs/filters.md, "Cost of one evaluation"): a `matches` refuses a text longer
//! than [`FILTER_MATCH_TEXT_BYTES_MAX`], and the whole evaluation may spend at most
//! [`FILTER_EVALUATION_COST_MAX`] units. Either limit stops the evaluation as a whole with "no
//! match", so a message a filter could not judge is never let through, not even under `not`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

use super::ast::{CompareOperator, CompiledRegex, Expr, Literal, Number, Path, Root, Segment};
use super::lexer::parse_number_text;
use super::{FILTER_EVALUATION_COST_MAX, FILTER_MATCH_TEXT_BYTES_MAX};

/// What evaluating a filter against one message gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether the message passes. Always false when `stopped_by` is set: a filter that could
    /// not finish fails closed.
    pub matched: bool,
    /// The limit that stopped the evaluation, if one did. Callers count these, because each is
    /// a message that a filter refused without reading it through.
    pub stopped_by: Option<EvaluationLimit>,
}

/// A limit that stops an evaluation before it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationLimit {
    /// A `matches` met a text of `length` bytes, more than [`FILTER_MATCH_TEXT_BYTES_MAX`].
    MatchTextTooLong { length: usize },
    /// The next step would have spent more than [`FILTER_EVALUATION_COST_MAX`] in total.
    BudgetExhausted,
}

/// The message as a filter sees it.
pub(super) struct Message<'a> {
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a Value>,
}

pub(super) fn evaluate(expr: &Expr, message: &Message<'_>) -> Evaluation {
    let mut budget = Budget {
        remaining: FILTER_EVALUATION_COST_MAX,
    };
    match evaluate_node(expr, message, &mut budget) {
        Ok(matched) => Evaluation {
            matched,
            stopped_by: None,
        },
        Err(limit) => Evaluation {
            matched: false,
            stopped_by: Some(limit),
        },
    }
}

/// A field a path found.
#[derive(Clone, Copy)]
enum Field<'a> {
    Header(&'a str),
    Json(&'a Value),
}

/// Cost units an evaluation may still spend.
struct Budget {
    remaining: usize,
}

impl Budget {
    /// Takes `cost` before the work it pays for, so no work past the budget ever starts.
    fn spend(&mut self, cost: usize) -> Result<(), EvaluationLimit> {
        self.remaining = self
            .remaining
            .checked_sub(cost)
            .ok_or(EvaluationLimit::BudgetExhausted)?;
        Ok(())
    }
}

/// One unit per node; `contains`, `starts_with` and `matches` also pay for the message text
/// they read. Comparisons and `in` read at most the bytes of their literals (which
/// `FILTER_BYTES_MAX` bounds) or a header (which doors bound), so the node pays for them.
fn evaluate_node(
    expr: &Expr,
    message: &Message<'_>,
    budget: &mut Budget,
) -> Result<bool, EvaluationLimit> {
    budget.spend(1)?;
    let matched = match expr {
        Expr::Or(operands) => {
            for operand in operands {
                if evaluate_node(operand, message, budget)? {
                    return Ok(true);
                }
            }
            false
        }
        Expr::And(operands) => {
            for operand in operands {
                if !evaluate_node(operand, message, budget)? {
                    return Ok(false);
                }
            }
            true
        }
        Expr::Not(operand) => !evaluate_node(operand, message, budget)?,
        Expr::Exists(path) => resolve(path, message).is_some(),
        Expr::Compare {
            path,
            operator,
            value,
        } => resolve(path, message).is_some_and(|field| compare(field, *operator, value)),
        Expr::In { path, values } => resolve(path, message)
            .is_some_and(|field| values.iter().any(|value| equals(field, value))),
        Expr::Contains { path, value } => match resolve(path, message) {
            Some(field) => contains(field, value, budget)?,
            None => false,
        },
        Expr::StartsWith { path, prefix } => match resolve(path, message).and_then(text) {
            Some(text) => {
                budget.spend(prefix.len().min(text.len()))?;
                text.starts_with(prefix.as_str())
            }
            None => false,
        },
        Expr::Matches { path, regex } => match resolve(path, message).and_then(text) {
            Some(text) => regex_matches(regex, text, budget)?,
            None => false,
        },
    };
    Ok(matched)
}

/// The text cap comes before the budget: a text too long for any `matches` is reported as
/// such, whatever budget is left.
fn regex_matches(
    regex: &CompiledRegex,
    text: &str,
    budget: &mut Budget,
) -> Result<bool, EvaluationLimit> {
    if text.len() > FILTER_MATCH_TEXT_BYTES_MAX {
        return Err(EvaluationLimit::MatchTextTooLong { length: text.len() });
    }
    budget.spend(text.len())?;
    Ok(regex.is_match(text))
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

/// An array pays one unit per element compared, a string one per byte searched.
fn contains(
    field: Field<'_>,
    literal: &Literal,
    budget: &mut Budget,
) -> Result<bool, EvaluationLimit> {
    match (field, literal) {
        (Field::Json(Value::Array(elements)), literal) => {
            for element in elements {
                budget.spend(1)?;
                if equals(Field::Json(element), literal) {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        (field, Literal::String(needle)) => match text(field) {
            Some(text) => {
                budget.spend(text.len())?;
                Ok(text.contains(needle.as_str()))
            }
            None => Ok(false),
        },
        _ => Ok(false),
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
