//! Example-based tests: each operator, precedence, the type and missing-field rules, limits and
//! error positions.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn order() -> Value {
    json!({
        "eventType": "OrderCreated",
        "amount": 1500,
        "price": 19.99,
        "big": 18446744073709551615u64,
        "paid": true,
        "coupon": null,
        "tags": ["new", "vip", 7],
        "order": { "total": 42.5, "id": "ORD-123", "lines": [{ "sku": "A-1" }, { "sku": "B-2" }] },
        "odd key": "yes",
        "in": 1
    })
}

/// Evaluates `filter` against headers `region=eu, retries=3, x-trace-id=abc` and `order()`.
fn check(filter: &str) -> bool {
    let headers = headers(&[("region", "eu"), ("retries", " 3 "), ("x-trace-id", "abc")]);
    let filter = Filter::parse(filter).unwrap_or_else(|error| panic!("{filter}: {error}"));
    filter.matches(&headers, Some(&order()))
}

fn parse_error(filter: &str) -> FilterError {
    match Filter::parse(filter) {
        Ok(parsed) => panic!("{filter:?} parsed as {parsed}"),
        Err(error) => error,
    }
}

#[test]
fn issue_example_matches() {
    assert!(check("eventType == 'OrderCreated' and amount > 1000"));
    assert!(!check("eventType == 'OrderCreated' and amount > 2000"));
}

#[test]
fn equality_by_type() {
    assert!(check("body.eventType == \"OrderCreated\""));
    assert!(check("amount == 1500"));
    assert!(check("amount == 1500.0"));
    assert!(check("price == 19.99"));
    assert!(check("paid == true"));
    assert!(!check("paid == false"));
    assert!(check("coupon == null"));
    assert!(check("big == 18446744073709551615"));
    assert!(!check("big == 18446744073709551614"));
    // Different types are never equal: no coercion inside the body.
    assert!(!check("amount == '1500'"));
    assert!(!check("paid == 'true'"));
    assert!(!check("order == 1"));
}

#[test]
fn not_equal_needs_a_present_field() {
    assert!(check("amount != 1"));
    assert!(!check("amount != 1500"));
    assert!(check("amount != 'text'"));
    assert!(!check("missing != 1"));
    assert!(check("not missing == 1"));
    assert!(!check("coupon != null"));
}

#[test]
fn ordering_numbers_and_strings() {
    assert!(check("amount > 1000"));
    assert!(check("amount >= 1500"));
    assert!(!check("amount < 1500"));
    assert!(check("amount <= 1500"));
    assert!(check("price < 20"));
    assert!(check("price > -1"));
    assert!(check("order.total >= 42.5"));
    assert!(check("eventType > 'Order'"));
    assert!(check("eventType < 'P'"));
    // No order across types, nor for booleans and null.
    assert!(!check("eventType > 1"));
    assert!(!check("amount > 'a'"));
    assert!(!check("paid > false"));
    assert!(!check("coupon >= null"));
}

#[test]
fn headers_are_strings_read_as_numbers_against_numbers() {
    assert!(check("headers.region == 'eu'"));
    assert!(check("headers['region'] == 'eu'"));
    assert!(check("headers.x-trace-id == 'abc'"));
    assert!(check("headers.retries == 3"));
    assert!(check("headers.retries > 2.5"));
    assert!(!check("headers.region > 2"));
    assert!(!check("headers.region == null"));
    assert!(!check("headers.missing == 'eu'"));
    let flags = headers(&[("debug", "true")]);
    assert!(Filter::parse("headers.debug == true")
        .unwrap()
        .matches(&flags, None));
}

#[test]
fn in_lists() {
    assert!(check("headers.region in ['us', 'eu']"));
    assert!(!check("headers.region in ['us']"));
    assert!(check("amount in [1, 1500]"));
    assert!(!check("amount in []"));
    assert!(!check("missing in [null]"));
    assert!(check("coupon in [null]"));
}

#[test]
fn contains_substrings_and_elements() {
    assert!(check("eventType contains 'Created'"));
    assert!(check("headers.x-trace-id contains 'b'"));
    assert!(check("tags contains 'vip'"));
    assert!(check("tags contains 7"));
    assert!(!check("tags contains 'vi'"));
    assert!(!check("amount contains 1"));
    assert!(!check("order contains 'total'"));
}

#[test]
fn starts_with_and_matches() {
    assert!(check("order.id starts_with 'ORD-'"));
    assert!(!check("order.id starts_with 'ord'"));
    assert!(check("headers.region starts_with 'e'"));
    assert!(!check("amount starts_with '1'"));
    assert!(check("order.id matches '^ORD-\\d+$'"));
    assert!(check("order.id matches 'D-1'"), "unanchored search");
    assert!(!check("order.id matches '^\\d'"));
    assert!(!check("amount matches '1'"));
}

#[test]
fn exists_is_presence_including_null() {
    assert!(check("exists headers.region"));
    assert!(!check("exists headers.nope"));
    assert!(check("exists coupon"));
    assert!(check("exists body"));
    assert!(check("not exists order.nope"));
    let filter = Filter::parse("exists body").unwrap();
    assert!(!filter.matches(&BTreeMap::new(), None));
}

#[test]
fn paths_with_indexes_and_quoted_names() {
    assert!(check("order.lines[1].sku == 'B-2'"));
    assert!(check("body.order.lines[0]['sku'] == 'A-1'"));
    assert!(!check("exists order.lines[2]"));
    assert!(!check("exists order[0]"));
    assert!(check("body['odd key'] == 'yes'"));
    assert!(check("body.in == 1"), "a keyword names a field after a dot");
    assert!(check("tags[2] == 7"));
}

#[test]
fn body_absent_or_not_json_makes_body_paths_missing() {
    let filter = Filter::parse("amount > 1 or headers.region == 'eu'").unwrap();
    assert!(filter.matches(&headers(&[("region", "eu")]), None));
    assert!(!filter.matches(&BTreeMap::new(), None));
    assert!(!filter.matches(&BTreeMap::new(), Some(&json!([1, 2]))));
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    // and before or: true or (false and false).
    assert!(check("amount == 1500 or amount == 1 and paid == false"));
    assert!(!check("(amount == 1500 or amount == 1) and paid == false"));
    // not applies to the next predicate only.
    assert!(check("not amount == 1 and paid == true"));
    assert!(!check("not (amount == 1 or paid == true)"));
    assert!(check("not not paid == true"));
}

#[test]
fn display_is_canonical() {
    let cases = [
        ("amount>1000", "body.amount > 1000"),
        (
            "a==1 or b==2 and not (c==3 or d==4)",
            "body.a == 1 or body.b == 2 and not (body.c == 3 or body.d == 4)",
        ),
        (
            "(a==1 and b==2) and c==3",
            "(body.a == 1 and body.b == 2) and body.c == 3",
        ),
        (
            "x in [1,-2.50,\"s\",true,null]",
            "body.x in [1, -2.5, 's', true, null]",
        ),
        ("headers['x y']==\"it's\"", "headers['x y'] == 'it\\'s'"),
        (
            "items[0].sku starts_with 'A'",
            "body.items[0].sku starts_with 'A'",
        ),
        ("exists body", "exists body"),
        (
            "a==1 or (b==2 and c==3)",
            "body.a == 1 or body.b == 2 and body.c == 3",
        ),
        ("p == 3.0", "body.p == 3.0"),
        ("s matches \"^a\\\\d\"", "body.s matches '^a\\\\d'"),
        ("s == '\\u{e9}\\n'", "body.s == 'é\\n'"),
    ];
    for (input, canonical) in cases {
        let filter = Filter::parse(input).unwrap();
        assert_eq!(filter.to_string(), canonical, "from {input:?}");
        assert_eq!(Filter::parse(canonical).unwrap(), filter);
    }
}

#[test]
fn serde_uses_canonical_text() {
    let filter: Filter = serde_json::from_value(json!("amount>1")).unwrap();
    assert_eq!(
        serde_json::to_value(&filter).unwrap(),
        json!("body.amount > 1")
    );
    assert!(serde_json::from_value::<Filter>(json!("amount >")).is_err());
}

#[test]
fn error_points_at_missing_value() {
    let error = parse_error("eventType == ");
    assert_eq!((error.offset, error.column), (13, 14));
    assert_eq!(
        error.to_string(),
        "expected a value after `==`, found end of input at column 14"
    );
}

#[test]
fn error_columns_count_characters() {
    let error = parse_error("'é' == 1");
    assert_eq!(error.column, 1);
    let error = parse_error("body['é'] === 1");
    assert_eq!(
        (error.offset, error.column),
        (13, 13),
        "é is two bytes, one column"
    );
    assert!(matches!(
        error.kind,
        FilterErrorKind::InvalidCharacter { character: '=' }
    ));
}

#[test]
fn errors_name_what_was_expected() {
    let cases = [
        (
            "",
            1,
            "expected a field path, `not`, `exists` or `(`, found end of input",
        ),
        ("amount", 7, "expected an operator"),
        ("amount = 1", 8, "unexpected character '='"),
        (
            "(a == 1",
            8,
            "expected `)`, `and` or `or`, found end of input",
        ),
        (
            "a == 1)",
            7,
            "expected `and`, `or` or the end of the filter, found `)`",
        ),
        ("a == 1 b == 2", 8, "found `b`"),
        ("a == foo", 6, "expected a value after `==`, found `foo`"),
        ("true == a", 1, "found `true`"),
        ("a in 1", 6, "expected `[` after `in`"),
        ("a in [1 2]", 9, "expected `,` or `]`"),
        ("a starts_with 1", 15, "a string after `starts_with`"),
        ("a matches x", 11, "a quoted regular expression"),
        ("a. == 1", 4, "a field name after `.`"),
        ("a[-1] == 1", 3, "an index from 0"),
        ("a[0 == 1", 5, "expected `]`"),
        ("headers == 1", 1, "a header path names exactly one header"),
        (
            "headers.a.b == 1",
            10,
            "a header path names exactly one header",
        ),
        (
            "headers.a[0] == 1",
            10,
            "a header path names exactly one header",
        ),
        ("a == 'open", 6, "string is not closed"),
        ("a == 'x\\u{zz}'", 8, "invalid escape"),
        ("a == 'x\\u{}'", 8, "invalid escape"),
        ("a == '\\u{110000}'", 7, "invalid escape"),
        ("a == 12abc", 8, "unexpected character 'a'"),
        ("a == 1.", 7, "unexpected character '.'"),
        ("a == - 1", 6, "unexpected character '-'"),
        ("a # 1", 3, "unexpected character '#'"),
        ("a matches '('", 11, "invalid regular expression"),
        ("a AND b", 3, "found `AND`"),
    ];
    for (input, column, message) in cases {
        let error = parse_error(input);
        assert_eq!(error.column, column, "{input:?}: {error}");
        assert!(error.to_string().contains(message), "{input:?}: {error}");
    }
}

#[test]
fn unknown_escapes_keep_their_backslash() {
    let filter = Filter::parse(r"s == 'a\d\'\\'").unwrap();
    let Expr::Compare { value, .. } = filter.expr() else {
        panic!("{filter:?}");
    };
    assert_eq!(value, &Literal::String(r"a\d'\".to_owned()));
    assert_eq!(filter.to_string(), r"body.s == 'a\\d\'\\'");
}

#[test]
fn number_beyond_f64_is_an_error() {
    let input = format!("a == {}", "9".repeat(400));
    assert_eq!(parse_error(&input).kind, FilterErrorKind::NumberOutOfRange);
    // Beyond 64 bits but within f64: read as a decimal.
    let filter = Filter::parse("a == 100000000000000000000000").unwrap();
    assert_eq!(filter.to_string(), "body.a == 100000000000000000000000.0");
}

#[test]
fn length_limit() {
    let fits = format!("a == '{}'", "x".repeat(FILTER_BYTES_MAX - 20));
    assert!(Filter::parse(&fits).is_ok());
    let input = format!("a == '{}'", "x".repeat(FILTER_BYTES_MAX));
    let error = parse_error(&input);
    assert_eq!(
        error.kind,
        FilterErrorKind::TooLong {
            length: input.len()
        }
    );
    assert_eq!(error.offset, FILTER_BYTES_MAX);
    // Short input whose canonical form (`body.` added to each path) is over the limit.
    let input = vec!["a==1"; FILTER_BYTES_MAX / 8].join(" or ");
    assert!(input.len() <= FILTER_BYTES_MAX);
    assert!(matches!(
        parse_error(&input).kind,
        FilterErrorKind::CanonicalTooLong { .. }
    ));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let parentheses = "(".repeat(10_000);
    let error = parse_error(&parentheses);
    assert_eq!(error.kind, FilterErrorKind::TooLong { length: 10_000 });
    let parentheses = "(".repeat(FILTER_BYTES_MAX);
    let error = parse_error(&parentheses);
    assert_eq!(
        (error.kind, error.offset),
        (FilterErrorKind::TooDeep, FILTER_DEPTH_MAX)
    );
    let nots = format!("{}a == 1", "not ".repeat(1000));
    assert_eq!(parse_error(&nots).kind, FilterErrorKind::TooDeep);
    let deepest = format!(
        "{}a == 1{}",
        "(".repeat(FILTER_DEPTH_MAX - 1),
        ")".repeat(FILTER_DEPTH_MAX - 1)
    );
    assert!(Filter::parse(&format!("not {deepest}")).is_ok());
    assert_eq!(
        parse_error(&format!("not not {deepest}")).kind,
        FilterErrorKind::TooDeep
    );
}

#[test]
fn list_and_regex_limits() {
    let values = vec!["1"; FILTER_LIST_LENGTH_MAX].join(",");
    assert!(Filter::parse(&format!("a in [{values}]")).is_ok());
    let error = parse_error(&format!("a in [{values},1]"));
    assert_eq!(error.kind, FilterErrorKind::ListTooLong);
    assert_eq!(error.offset, 6 + 2 * FILTER_LIST_LENGTH_MAX);

    let long = "a".repeat(FILTER_REGEX_BYTES_MAX + 1);
    let error = parse_error(&format!("s matches '{long}'"));
    assert_eq!((error.offset, error.column), (10, 11));
    assert!(matches!(error.kind, FilterErrorKind::RegexTooLong { .. }));

    let error = parse_error("s matches '\\w{100}\\w{100}\\w{100}'");
    assert_eq!(error.offset, 10);
    assert!(
        matches!(error.kind, FilterErrorKind::InvalidRegex { .. }),
        "{error}"
    );

    let many = ["s matches 'a'"; FILTER_REGEX_COUNT_MAX].join(" and ");
    assert!(Filter::parse(&many).is_ok());
    let error = parse_error(&format!("{many} or t matches 'b'"));
    assert_eq!(error.kind, FilterErrorKind::TooManyRegexes);
}

#[test]
fn realistic_regexes_fit_the_size_limit() {
    for pattern in [
        "^[A-Z]{2}-\\d{4,10}$",
        "^[\\w.+-]+@[\\w-]+\\.[\\w.]+$",
        "(?i)^(error|warn|fatal)",
        "^\\d{4}-\\d{2}-\\d{2}T",
    ] {
        let text = format!("s matches '{}'", pattern.replace('\\', "\\\\"));
        assert!(Filter::parse(&text).is_ok(), "{pattern}");
    }
}

/// The examples in docs/filters.md, "Errors", word for word.
#[test]
fn documented_error_messages() {
    let cases = [
        (
            "eventType == ",
            "expected a value after `==`, found end of input at column 14",
        ),
        (
            "amount > 1000 and",
            "expected a field path, `not`, `exists` or `(`, found end of input at column 18",
        ),
        (
            "status == done",
            "expected a value after `==`, found `done` at column 11",
        ),
        ("region = 'eu'", "unexpected character '=' at column 8"),
        (
            "(a == 1",
            "expected `)`, `and` or `or`, found end of input at column 8",
        ),
        (
            "a == 1 AND b == 2",
            "expected `and`, `or` or the end of the filter, found `AND` at column 8",
        ),
        (
            "headers.a.b == 1",
            "a header path names exactly one header, like `headers.region` or `headers['a.b']` \
             at column 10",
        ),
        (
            "a in [1 2]",
            "expected `,` or `]`, found a number at column 9",
        ),
        ("name == 'Ann", "string is not closed at column 9"),
    ];
    for (input, message) in cases {
        assert_eq!(parse_error(input).to_string(), message, "{input:?}");
    }
    let error = parse_error("id matches '(ab'");
    assert_eq!(error.column, 12);
    assert!(error
        .to_string()
        .starts_with("invalid regular expression: "));
}
