//! [`JsonBody`]: the request-body extractor of the `/v1` API, whose every failure is a
//! [`Problem`] that says where the body went wrong.
//!
//! axum's own `Json` answers plain text and drops the path of a type error; clients of this API
//! get problem+json naming the field (`messages[0].priority`) with line and column.

use super::{refusals, Problem, ProblemCode, RequestBodyLimit, REQUEST_BODY_BYTES_MAX_DEFAULT};
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
};
use serde::de::DeserializeOwned;

/// A JSON request body parsed into `T`. An empty body (or `null`) counts as `{}`, so endpoints
/// whose fields are all optional can be called without one; but only when it comes with no Content-Type or a
/// JSON one, so that an empty form or text post (which browsers send from any site) is refused
/// here too, not only by the browser rules (`super::browser`).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(header::CONTENT_TYPE);
        let untyped = content_type.is_none();
        let json_content = content_type
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json_content_type);
        let bytes = request_bytes(request, state).await?;
        // No body, or a JSON `null` (what clients send for an absent optional body), counts
        // as `{}`.
        let absent = bytes.is_empty() || bytes.trim_ascii() == b"null";
        if absent && (untyped || json_content) {
            return parse_json_body(b"{}").map(JsonBody);
        }
        if !json_content {
            return Err(Problem::new(ProblemCode::UnsupportedMediaType).with_detail(
                "the request body must be JSON, sent as Content-Type: application/json",
            ));
        }
        // Every body of this API is a JSON object; serde would also read a struct from an
        // array of its fields in order, which no client means.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(Problem::new(ProblemCode::InvalidBody)
                .with_detail("the request body must be a JSON object"));
        }
        parse_json_body(&bytes).map(JsonBody)
    }
}

/// The whole request body, within the door's body limit (413 `too_large` over it, naming
/// the limit).
pub(crate) async fn request_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, Problem> {
    let body_limit = (request.extensions().get::<RequestBodyLimit>())
        .map_or(REQUEST_BODY_BYTES_MAX_DEFAULT, |limit| limit.0);
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let status = rejection.status();
            let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                refusals::count("request_body_bytes_max");
                format!(
                    "the request body is over the limit of {body_limit} bytes \
                     (request_body_bytes_max)"
                )
            } else {
                rejection.body_text()
            };
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                ProblemCode::TooLarge
            } else {
                ProblemCode::InvalidBody
            };
            Problem::new(code).with_detail(detail)
        })
}

/// True for `application/json` and any `*/*+json` type, parameters (`; charset=utf-8`) aside.
pub fn is_json_content_type(content_type: &str) -> bool {
    // Called per message delivered: no lowercased copy.
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.split_once('/').is_some_and(|(_, subtype)| {
            let subtype = subtype.as_bytes();
            subtype.len() >= 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json")
        })
}

/// Parses `bytes` as `T`; the problem's `field` is the JSON path at fault, its detail the
/// parser's message with line and column.
///
/// JSON has one number type: `3.0` is the integer 3 to JSON Schema, and to clients that hold
/// every number as a float. When a body fails to parse, and writing its integral floats as
/// integers makes it parse, it is taken that way; a body that parses at once is never touched.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let problem = match parse_exactly(bytes) {
        Ok(value) => return Ok(value),
        Err(problem) => problem,
    };
    let Ok(mut document) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(problem);
    };
    if !integral_floats_to_integers(&mut document) {
        return Err(problem);
    }
    let rewritten = serde_json::to_vec(&document).map_err(|_| problem.clone())?;
    parse_exactly(&rewritten).map_err(|_| problem)
}

fn parse_exactly<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Most bodies parse: tracking the path of every value costs a fifth of a parse, so the
    // path is traced only for a body that failed, to say where.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = json_wording(&inner.to_string());
        // The path ends at the field at fault, an unknown field included. A syntax error has
        // no field (its path would end in `?`); line and column locate it.
        let is_data_error = inner.classify() == serde_json::error::Category::Data;
        let field = (is_data_error && path != ".").then_some(path);
        let detail = match &field {
            Some(field) => format!("invalid request body at {field}: {message}"),
            None => format!("invalid request body: {message}"),
        };
        let problem = Problem::new(ProblemCode::InvalidBody).with_detail(detail);
        match field {
            Some(field) => problem.with_field(field),
            None => problem,
        }
    })?;
    deserializer.end().map_err(|error| {
        let message = json_wording(&error.to_string());
        Problem::new(ProblemCode::InvalidBody)
            .with_detail(format!("invalid request body: {message}"))
    })?;
    Ok(value)
}

/// Rewrites each float with no fractional part that a double holds exactly (|x| <= 2^53) as an
/// integer; true when any was rewritten.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            if float.fract() != 0.0 || float.abs() > EXACT {
                return false;
            }
            *number = if float < 0.0 {
                (float as i64).into()
            } else {
                (float as u64).into()
            };
            true
        }
        // Every member is visited, not only up to the first change.
        Value::Array(items) => items
            .iter_mut()
            .map(integral_floats_to_integers)
            .fold(false, |any, changed| any | changed),
        Value::Object(members) => members
            .values_mut()
            .map(integral_floats_to_integers)
            .fold(false, |any, changed| any | changed),
        _ => false,
    }
}

/// A message of serde's in JSON's words. serde says what it expected in Rust's (`expected u64`,
/// `expected struct QueueOptions`): type names of this server's code, which mean nothing to a
/// client and change with it. Everything else is kept.
pub(crate) fn json_wording(message: &str) -> String {
    const EXPECTED: &str = "expected ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(EXPECTED) {
        let (before, after) = rest.split_at(at + EXPECTED.len());
        out.push_str(before);
        let word_end = |text: &str| {
            text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len())
        };
        let word = &after[..word_end(after)];
        let (wording, used) = match word {
            // `struct Name` and `enum Name`: the name goes too.
            "struct" | "enum" => {
                let name_at = (word.len() + 1).min(after.len());
                let used = name_at + word_end(&after[name_at..]);
                let wording = match word {
                    "struct" => "a JSON object",
                    _ => "one of the documented values",
                };
                (wording, used)
            }
            "u8" => ("a whole number from 0 to 255", word.len()),
            "u16" => ("a whole number from 0 to 65535", word.len()),
            "u32" => ("a whole number from 0 to 4294967295", word.len()),
            "u64" | "usize" => ("a whole number from 0 to 18446744073709551615", word.len()),
            "i8" | "i16" | "i32" | "i64" | "isize" => ("a whole number", word.len()),
            "f32" | "f64" => ("a number", word.len()),
            _ => ("", 0),
        };
        out.push_str(wording);
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn json_content_types_are_told_apart_in_any_case() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/problem+json ",
            "application/vnd.api+JSON",
        ] {
            assert!(is_json_content_type(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/jsonx",
            "json",
            "a/+jsoné",
            "a/é",
            "+json",
            "",
        ] {
            assert!(!is_json_content_type(other), "{other}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        priority: u8,
    }

    #[test]
    fn integral_floats_count_as_integers_and_fractions_do_not() {
        let outer =
            parse_json_body::<Outer>(br#"{"items": [{"priority": 3.0}, {"priority": -0.0}]}"#)
                .unwrap();
        assert_eq!(outer.items[1].priority, 0);
        let problem = parse_json_body::<Outer>(br#"{"items": [{"priority": 3.5}]}"#).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("items[0].priority"));
        let problem = parse_json_body::<Outer>(br#"{"items": [{"priority": 300.0}]}"#).unwrap_err();
        assert!(
            problem.detail.unwrap().contains("300.0"),
            "the first error is reported"
        );
    }

    #[test]
    fn a_valid_body_parses() {
        let outer = parse_json_body::<Outer>(br#"{"items": [{"priority": 3}]}"#).unwrap();
        assert_eq!(outer.items[0].priority, 3);
    }

    #[test]
    fn a_type_error_names_its_path_and_position() {
        let problem = parse_json_body::<Outer>(br#"{"items": [{"priority": 300}]}"#).unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.field.as_deref(), Some("items[0].priority"));
        let detail = problem.detail.unwrap();
        assert!(detail.contains("line 1 column"), "{detail}");
    }

    /// serde's Rust words (`u8`, `struct Outer`) never reach a client.
    #[test]
    fn type_errors_are_worded_in_json_terms() {
        let problem = parse_json_body::<Outer>(br#"{"items": [{"priority": "x"}]}"#).unwrap_err();
        let detail = problem.detail.unwrap();
        assert!(
            detail.contains("expected a whole number from 0 to 255"),
            "{detail}"
        );
        let problem = parse_json_body::<Outer>(br#""x""#).unwrap_err();
        let detail = problem.detail.unwrap();
        assert!(
            detail.contains("expected a JSON object at line 1"),
            "{detail}"
        );
        assert!(!detail.contains("Outer"), "{detail}");
        assert_eq!(
            json_wording("invalid type: string \"a\", expected enum Syntax"),
            "invalid type: string \"a\", expected one of the documented values"
        );
        assert_eq!(
            json_wording("expected i64 or expected f64, expected a string"),
            "expected a whole number or expected a number, expected a string"
        );
        assert_eq!(json_wording("expected "), "expected ");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let problem = parse_json_body::<Outer>(br#"{"items": [], "colour": 1}"#).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("colour"));
        let problem =
            parse_json_body::<Outer>(br#"{"items": [{"priority": 1, "x": 2}]}"#).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("items[0].x"));
    }

    #[test]
    fn broken_json_reports_line_and_column() {
        let problem = parse_json_body::<Outer>(b"{\"items\": [\n  {").unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.field, None);
        assert!(problem.detail.unwrap().contains("line 2"));
        assert!(parse_json_body::<Outer>(br#"{"items": []} trailing"#).is_err());
    }

    #[tokio::test]
    async fn an_empty_or_null_body_counts_as_empty_json_only_untyped_or_typed_json() {
        let cases = [
            (None, "", true),
            (Some("application/json"), "", true),
            (Some("application/json"), " null ", true),
            (Some("application/x-www-form-urlencoded"), "", false),
            (Some("text/plain"), "", false),
            (Some("text/plain"), "null", false),
        ];
        for (content_type, body, accepted) in cases {
            let mut request = Request::builder().method("POST").uri("/");
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let request = request.body(axum::body::Body::from(body)).expect("request");
            let parsed =
                JsonBody::<serde_json::Map<String, serde_json::Value>>::from_request(request, &())
                    .await;
            match parsed {
                Ok(JsonBody(map)) => assert!(accepted && map.is_empty(), "{content_type:?}"),
                Err(problem) => assert!(!accepted && problem.status == 415, "{content_type:?}"),
            }
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/cloudevents+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/jsonx"));
    }
}
