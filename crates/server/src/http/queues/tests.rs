//! Translation tests: request messages into engine sends, and stored bodies back into JSON.

use super::wire::{render_body, NewMessage, SendBody};
use crate::http::json_body::parse_json_body;
use serde_json::json;

fn parse_message(value: serde_json::Value) -> NewMessage {
    let body = json!({ "messages": [value] }).to_string();
    let mut request: SendBody = parse_json_body(body.as_bytes()).expect("parses");
    request.messages.remove(0)
}

#[test]
fn a_json_body_is_stored_as_its_json_text() {
    let send = parse_message(json!({"body": {"order": 7, "items": ["a"]}}))
        .into_send(0)
        .expect("valid");
    assert_eq!(send.content_type.as_deref(), Some("application/json"));
    let stored: serde_json::Value = serde_json::from_slice(&send.body).expect("json bytes");
    assert_eq!(stored, json!({"order": 7, "items": ["a"]}));
}

#[test]
fn a_null_json_body_is_a_body() {
    let send = parse_message(json!({"body": null}))
        .into_send(0)
        .expect("valid");
    assert_eq!(&send.body[..], b"null");
}

#[test]
fn a_base64_body_is_decoded_with_its_content_type() {
    let send = parse_message(json!({"body_base64": "aGVsbG8=", "content_type": "text/plain"}))
        .into_send(0)
        .expect("valid");
    assert_eq!(&send.body[..], b"hello");
    assert_eq!(send.content_type.as_deref(), Some("text/plain"));
    let untyped = parse_message(json!({"body_base64": ""}))
        .into_send(0)
        .expect("valid");
    assert_eq!(untyped.content_type, None, "the engine's default applies");
    // Text with an escape is decoded from serde's copy, not from the request's bytes.
    let escaped = br#"{"messages":[{"body_base64":"a\/8="}]}"#;
    let mut request: SendBody = parse_json_body(escaped).expect("parses");
    let send = request.messages.remove(0).into_send(0).expect("valid");
    assert_eq!(&send.body[..], &[0x6b, 0xff]);
    let not_text = parse_json_body::<SendBody>(br#"{"messages":[{"body_base64":7}]}"#);
    let problem = not_text.map(drop).unwrap_err();
    assert_eq!(problem.field.as_deref(), Some("messages[0].body_base64"));
    let detail = problem.detail.unwrap_or_default();
    assert!(detail.contains("expected a string"), "{detail}");
}

#[test]
fn body_mistakes_name_the_field() {
    let both = parse_message(json!({"body": 1, "body_base64": "AA=="}))
        .into_send(3)
        .unwrap_err();
    assert_eq!(both.status, 400);
    assert_eq!(both.field.as_deref(), Some("messages[3].body_base64"));
    let neither = parse_message(json!({"id": "x"})).into_send(0).unwrap_err();
    assert_eq!(neither.field.as_deref(), Some("messages[0].body"));
    let not_base64 = parse_message(json!({"body_base64": "***"}))
        .into_send(0)
        .unwrap_err();
    assert_eq!(not_base64.field.as_deref(), Some("messages[0].body_base64"));
    let not_json_type = parse_message(json!({"body": "x", "content_type": "text/plain"}))
        .into_send(0)
        .unwrap_err();
    assert_eq!(
        not_json_type.field.as_deref(),
        Some("messages[0].content_type")
    );
}

#[test]
fn a_priority_beyond_a_byte_is_refused_at_its_path() {
    let body = json!({"messages": [{"body": 1, "priority": 300}]}).to_string();
    let problem = parse_json_body::<SendBody>(body.as_bytes()).unwrap_err();
    assert_eq!(problem.field.as_deref(), Some("messages[0].priority"));
}

/// The JSON text of each half of a rendered body.
fn rendered(content_type: &str, body: &[u8]) -> (Option<String>, Option<String>) {
    let (json, base64) = render_body(content_type, body);
    let text = |raw: Option<Box<serde_json::value::RawValue>>| raw.map(|raw| raw.get().to_string());
    (text(json), text(base64))
}

#[test]
fn json_bodies_render_as_json_and_others_as_base64() {
    assert_eq!(
        rendered("application/json", br#"{"a": 1}"#),
        (Some(r#"{"a": 1}"#.to_string()), None),
        "a JSON body is written as it is"
    );
    assert_eq!(
        rendered("application/cloudevents+json; charset=utf-8", b" [1,2] "),
        (Some("[1,2]".to_string()), None)
    );
    assert_eq!(
        rendered("application/json", b"{\n  \"a\": [1,\r\n 2]\n}"),
        (Some(r#"{"a":[1,2]}"#.to_string()), None),
        "a JSON body on several lines is written on one"
    );
    assert_eq!(
        rendered("text/plain", b"hello"),
        (None, Some(r#""aGVsbG8=""#.to_string()))
    );
    assert_eq!(
        rendered("application/json", b"not json"),
        (None, Some(r#""bm90IGpzb24=""#.to_string())),
        "a mislabelled body still arrives byte for byte"
    );
}
