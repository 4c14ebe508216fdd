//! The cost limits of one evaluation: the text cap of `matches`, the budget, and that both fail
//! closed and say so. Every test asserts on what `evaluate` reports, never on wall time: the
//! budget is charged before the work it pays for, so a reported stop means the work was not done.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

const MIB: usize = 1024 * 1024;

fn evaluate(filter: &str, body: &Value) -> Evaluation {
    let filter = Filter::parse(filter).unwrap_or_else(|error| panic!("{filter}: {error}"));
    filter.evaluate(&BTreeMap::new(), Some(body))
}

fn matched() -> Evaluation {
    Evaluation {
        matched: true,
        stopped_by: None,
    }
}

fn not_matched() -> Evaluation {
    Evaluation {
        matched: false,
        stopped_by: None,
    }
}

fn stopped(limit: EvaluationLimit) -> Evaluation {
    Evaluation {
        matched: false,
        stopped_by: Some(limit),
    }
}

/// The shape of the publish that held an HTTP worker for 20 s: a JSON body of a few MiB, parsed
/// the way the engine parses it, and a binding filter of several `matches`, each with a pattern
/// that is slow for a backtracking engine and none of which matches.
#[test]
fn hostile_patterns_over_a_4_mib_body_stop_at_the_text_cap() {
    let text = "a".repeat(4 * MIB);
    let raw = serde_json::to_vec(&json!({ "kind": "log", "text": text })).expect("serializes");
    let body: Value = serde_json::from_slice(&raw).expect("parses");
    let filter = [
        r"body.text matches '(a|aa)*b'",
        r"body.text matches '\w+\d+x'",
        r"body.text matches '(\w+\s?)*!'",
        r"body.text matches '^(a+)+b'",
    ]
    .join(" or ");
    let too_long = EvaluationLimit::MatchTextTooLong { length: 4 * MIB };
    assert_eq!(evaluate(&filter, &body), stopped(too_long));
    assert_eq!(
        evaluate(&format!("kind == 'log' and ({filter})"), &body),
        stopped(too_long)
    );
}

#[test]
fn hostile_patterns_under_the_text_cap_stop_when_the_budget_runs_out() {
    // Eight fields just under the cap: four scans fit the budget, the fifth does not.
    let length = FILTER_MATCH_TEXT_BYTES_MAX - 1024;
    assert!(4 * length < FILTER_EVALUATION_COST_MAX && 5 * length > FILTER_EVALUATION_COST_MAX);
    let fields: serde_json::Map<String, Value> = (0..FILTER_REGEX_COUNT_MAX)
        .map(|index| (format!("t{index}"), json!("a".repeat(length))))
        .collect();
    let body = Value::Object(fields);
    let clauses: Vec<String> = (0..FILTER_REGEX_COUNT_MAX)
        .map(|index| format!(r"body.t{index} matches '(a|aa)*b'"))
        .collect();

    assert_eq!(evaluate(&clauses[..4].join(" or "), &body), not_matched());
    assert_eq!(
        evaluate(&clauses.join(" or "), &body),
        stopped(EvaluationLimit::BudgetExhausted)
    );
}

#[test]
fn a_text_at_the_cap_is_matched_and_one_byte_more_fails_closed() {
    let at_cap = format!("{}b", "a".repeat(FILTER_MATCH_TEXT_BYTES_MAX - 1));
    assert_eq!(
        evaluate("s matches 'ab$'", &json!({ "s": at_cap })),
        matched()
    );

    let over_cap = format!("{at_cap}b");
    let too_long = EvaluationLimit::MatchTextTooLong {
        length: FILTER_MATCH_TEXT_BYTES_MAX + 1,
    };
    let body = json!({ "s": over_cap });
    assert_eq!(evaluate("s matches 'b$'", &body), stopped(too_long));
    // Other operators read the same text as before: the cap is about `matches` only.
    assert_eq!(evaluate("s starts_with 'aaa'", &body), matched());
    assert_eq!(evaluate("s contains 'bb'", &body), matched());
}

/// A limit stops the whole filter, so a message the filter could not judge never passes, not
/// even through `not`. Operands are evaluated left to right and stop at the first deciding one,
/// so an operand that decides before the limit is reached still decides.
#[test]
fn a_limit_fails_the_whole_filter_even_under_not() {
    let body = json!({ "small": 1, "text": "a".repeat(FILTER_MATCH_TEXT_BYTES_MAX + 1) });
    let too_long = EvaluationLimit::MatchTextTooLong {
        length: FILTER_MATCH_TEXT_BYTES_MAX + 1,
    };
    assert_eq!(evaluate("not text matches 'x'", &body), stopped(too_long));
    assert_eq!(
        evaluate("not (small == 2 or text matches 'x')", &body),
        stopped(too_long)
    );
    assert_eq!(
        evaluate("text matches 'x' or small == 1", &body),
        stopped(too_long)
    );
    assert_eq!(evaluate("small == 1 or text matches 'x'", &body), matched());
    assert_eq!(
        evaluate("small == 2 and text matches 'x'", &body),
        not_matched()
    );
}

#[test]
fn contains_over_a_long_string_spends_the_budget() {
    let body = json!({ "text": format!("{}needle", "a".repeat(4 * MIB)) });
    assert_eq!(
        evaluate("text contains 'needle'", &body),
        stopped(EvaluationLimit::BudgetExhausted)
    );
    // Comparisons and prefixes read no more than their literal, whatever the text's length.
    assert_eq!(evaluate("text starts_with 'aaa'", &body), matched());
    assert_eq!(evaluate("text == 'aaa'", &body), not_matched());
    assert_eq!(evaluate("text > 'aaa'", &body), matched());

    let within = json!({ "text": format!("{}needle", "a".repeat(FILTER_EVALUATION_COST_MAX / 2)) });
    assert_eq!(evaluate("text contains 'needle'", &within), matched());
}

#[test]
fn contains_over_a_long_array_pays_per_element_compared() {
    let numbers: Vec<usize> = (0..FILTER_EVALUATION_COST_MAX).collect();
    let body = json!({ "numbers": numbers });
    assert_eq!(evaluate("numbers contains 5", &body), matched());
    assert_eq!(
        evaluate("numbers contains -1", &body),
        stopped(EvaluationLimit::BudgetExhausted)
    );
}

/// `matches` is `evaluate(..).matched`: a stopped evaluation is false there too.
#[test]
fn matches_is_false_when_a_limit_stops_the_evaluation() {
    let filter = Filter::parse("not text matches 'x'").expect("parses");
    let long = json!({ "text": "a".repeat(FILTER_MATCH_TEXT_BYTES_MAX + 1) });
    assert!(!filter.matches(&BTreeMap::new(), Some(&long)));
    assert!(filter.matches(&BTreeMap::new(), Some(&json!({ "text": "a" }))));
}
