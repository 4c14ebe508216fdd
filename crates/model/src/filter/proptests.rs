//! Property tests: printing any tree and parsing it back gives the same tree, and no input,
//! random or a mutation of a valid filter, makes the parser or evaluator panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;

const REGEXES: [&str; 4] = ["^a", "b+c?$", "(?i)order-\\d+", "[x-z]{2,3}"];

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<String>().prop_map(Literal::String),
        (i128::from(i64::MIN)..=i128::from(u64::MAX))
            .prop_map(|value| Literal::Number(Number::Integer(value))),
        (-1e6f64..1e6).prop_map(|value| Literal::Number(Number::Decimal(value))),
        any::<f64>()
            .prop_filter("finite", |value| value.is_finite())
            .prop_map(|value| Literal::Number(Number::Decimal(value))),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_-]{0,6}",
        Just("and".to_owned()),
        any::<String>()
    ]
}

fn path() -> impl Strategy<Value = Path> {
    let segment = prop_oneof![
        key().prop_map(Segment::Key),
        (0usize..1000).prop_map(Segment::Index),
    ];
    prop_oneof![
        key().prop_map(|name| Path {
            root: Root::Headers,
            segments: vec![Segment::Key(name)],
        }),
        prop::collection::vec(segment, 0..4).prop_map(|segments| Path {
            root: Root::Body,
            segments,
        }),
    ]
}

fn operator() -> impl Strategy<Value = CompareOperator> {
    prop_oneof![
        Just(CompareOperator::Equal),
        Just(CompareOperator::NotEqual),
        Just(CompareOperator::Less),
        Just(CompareOperator::LessOrEqual),
        Just(CompareOperator::Greater),
        Just(CompareOperator::GreaterOrEqual),
    ]
}

fn predicate() -> impl Strategy<Value = Expr> {
    prop_oneof![
        path().prop_map(Expr::Exists),
        (path(), operator(), literal()).prop_map(|(path, operator, value)| Expr::Compare {
            path,
            operator,
            value,
        }),
        (path(), prop::collection::vec(literal(), 0..4))
            .prop_map(|(path, values)| Expr::In { path, values }),
        (path(), literal()).prop_map(|(path, value)| Expr::Contains { path, value }),
        (path(), any::<String>()).prop_map(|(path, prefix)| Expr::StartsWith { path, prefix }),
        (path(), prop::sample::select(&REGEXES[..])).prop_map(|(path, pattern)| {
            let regex = CompiledRegex::new(regex::Regex::new(pattern).expect("valid pattern"));
            Expr::Matches { path, regex }
        }),
    ]
}

/// Trees of depth at most 4, far inside `FILTER_DEPTH_MAX`; `And`/`Or` get two or more
/// operands as the parser builds them.
fn expr() -> impl Strategy<Value = Expr> {
    predicate().prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            inner.prop_map(|operand| Expr::Not(Box::new(operand))),
        ]
    })
}

/// Valid filters to mutate; between them they use every token kind.
const SEEDS: [&str; 6] = [
    "eventType == 'OrderCreated' and amount > 1000",
    "not (headers.region in ['eu', \"us\"] or exists body.items[0].sku)",
    "body.order.total >= -12.5 and tags contains 7 or paid != false",
    "headers['x-id'] starts_with 'a\\u{e9}\\n' and s matches '^\\d{2,}$'",
    "coupon == null and (a < 1 or b <= 2.25) and body['odd key'] != true",
    "not not x.y[3] == 'z\\'' or headers.h == 1",
];

/// Strings of filter characters, or of whole tokens, which reach further into the parser than
/// arbitrary Unicode does.
const FILTER_ALPHABET: &str = "[a-z0-9 ()\\[\\]'\".,=!<>\\\\{}_-]{0,48}\
     |(not |and |or |in |exists |matches |a|==|'|\\(|\\)|\\[|\\]|1|, ){0,24}";

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Characters the grammar cares about, so mutations reach deep into the parser.
    let character = prop_oneof![
        prop::sample::select(
            &[
                '(', ')', '[', ']', '\'', '"', '\\', '.', ',', '=', '!', '<', '>', '-', '0', '9',
                ' ', 'a', '_', '{', '}', 'u', 'é'
            ][..]
        ),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), character.clone()).prop_map(|(at, c)| Edit::Insert(at, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), character).prop_map(|(at, c)| Edit::Replace(at, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        match *edit {
            Edit::Insert(at, c) => chars.insert(at % (chars.len() + 1), c),
            Edit::Delete(_) | Edit::Replace(..) if chars.is_empty() => {}
            Edit::Delete(at) => {
                chars.remove(at % chars.len());
            }
            Edit::Replace(at, c) => {
                let at = at % chars.len();
                chars[at] = c;
            }
        }
    }
    chars.into_iter().collect()
}

/// Parses `text` without panicking; a success must print canonically, reparse to an equal
/// filter and evaluate within the cost limits; a failure must point inside the input.
fn check_any_input(text: &str) {
    match Filter::parse(text) {
        Ok(filter) => {
            let canonical = filter.to_string();
            assert!(canonical.len() <= FILTER_BYTES_MAX);
            let reparsed = Filter::parse(&canonical)
                .unwrap_or_else(|error| panic!("{canonical:?} from {text:?}: {error}"));
            assert_eq!(reparsed, filter, "{canonical:?} from {text:?}");
            let headers = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
            let body = json!({"amount": 5, "a": [1, "x", {"b": null}], "s": "text"});
            // No filter the parser accepts reaches a cost limit on a small message.
            let evaluation = filter.evaluate(&headers, Some(&body));
            assert_eq!(evaluation.stopped_by, None, "{text:?}");
            assert_eq!(filter.matches(&headers, Some(&body)), evaluation.matched);
            assert_eq!(filter.evaluate(&headers, None).stopped_by, None, "{text:?}");
        }
        Err(error) => {
            assert!(error.offset <= text.len(), "{text:?}: {error:?}");
            assert!(text.is_char_boundary(error.offset), "{text:?}: {error:?}");
            assert_eq!(error.column, text[..error.offset].chars().count() + 1);
            assert!(!error.to_string().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn display_then_parse_gives_an_equal_filter(expr in expr()) {
        let filter = Filter { expr };
        let text = filter.to_string();
        prop_assume!(text.len() <= FILTER_BYTES_MAX);
        let parsed = Filter::parse(&text)
            .map_err(|error| TestCaseError::fail(format!("{text:?}: {error}")))?;
        prop_assert_eq!(parsed, filter);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_any_input(&text);
    }

    #[test]
    fn filter_alphabet_strings_never_panic(text in FILTER_ALPHABET) {
        check_any_input(&text);
    }

    #[test]
    fn mutated_filters_never_panic(
        seed in prop::sample::select(&SEEDS[..]),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        check_any_input(&apply(seed, &edits));
    }
}

#[test]
fn seeds_are_valid() {
    for seed in SEEDS {
        Filter::parse(seed).unwrap_or_else(|error| panic!("{seed:?}: {error}"));
    }
}
