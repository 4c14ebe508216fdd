//! Translation tests: flat destinations, bindings and published messages into engine types,
//! and the topic endpoints' place in the OpenAPI document.

use super::wire::{BindingBody, PublishBody, TopicBody};
use crate::http::{json_body::parse_json_body, ApiDoc};
use serde_json::json;
use utoipa::OpenApi;
use wharf_engine::topic::{Destination, HeadersMode, RulesMode, TopicKind};

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    parse_json_body(value.to_string().as_bytes()).expect("parses")
}

#[test]
fn rules_and_alternate_take_one_flat_destination_each() {
    let body: TopicBody = parse(json!({
        "kind": "fanout",
        "rules_mode": "first",
        "rules": [{"filter": "a == 1", "topic": "audit"}],
        "alternate": {"queue": "rest"},
    }));
    let options = body.into_options().expect("valid");
    assert_eq!(options.kind, TopicKind::Fanout);
    assert_eq!(options.rules_mode, RulesMode::First);
    assert_eq!(
        options.rules[0].destination,
        Destination::Topic("audit".into())
    );
    assert_eq!(options.alternate, Some(Destination::Queue("rest".into())));

    let two: TopicBody = parse(
        json!({"rules": [{"filter": "a == 1"}, {"filter": "b == 1", "queue": "q", "stream": "s"}]}),
    );
    let problem = two
        .into_options()
        .expect_err("the first rule has no destination");
    assert_eq!(problem.field.as_deref(), Some("rules[0].queue"));
    let alternate: TopicBody = parse(json!({"alternate": {"queue": "q", "topic": "t"}}));
    let problem = alternate.into_options().expect_err("two destinations");
    assert_eq!(problem.status, 400);
    assert_eq!(problem.field.as_deref(), Some("alternate.topic"));
}

#[test]
fn a_binding_defaults_to_amqp_and_translates_headers() {
    let binding: BindingBody = parse(json!({
        "headers": {"match": "any", "values": {"region": "eu"}},
        "queue": "vip",
    }));
    let spec = binding.into_spec().expect("valid");
    assert_eq!(spec.syntax.as_str(), "amqp");
    assert_eq!(spec.pattern, "");
    let headers = spec.headers.expect("headers");
    assert_eq!(headers.mode, HeadersMode::Any);
    assert_eq!(headers.values["region"], "eu");
    assert_eq!(spec.destination, Destination::Queue("vip".into()));
}

#[test]
fn published_messages_carry_their_key_and_queue_message_fields() {
    let body: PublishBody = parse(json!({"messages": [
        {"routing_key": "a.b", "body": {"x": 1}, "headers": {"h": "v"}, "priority": 3},
        {"body_base64": "aGk="},
    ]}));
    let mut messages = body.messages.into_iter();
    let first = messages
        .next()
        .expect("first")
        .into_publish(0)
        .expect("valid");
    assert_eq!(first.routing_key, "a.b");
    assert_eq!(first.message.priority, Some(3));
    assert_eq!(first.message.headers["h"], "v");
    let second = messages
        .next()
        .expect("second")
        .into_publish(1)
        .expect("valid");
    assert_eq!(second.routing_key, "");
    assert_eq!(&second.message.body[..], b"hi");

    let no_body: PublishBody = parse(json!({"messages": [{"routing_key": "k"}]}));
    let problem = no_body
        .messages
        .into_iter()
        .next()
        .expect("one")
        .into_publish(0)
        .expect_err("no body");
    assert_eq!(problem.field.as_deref(), Some("messages[0].body"));
}

#[test]
fn openapi_lists_every_topic_and_request_route() {
    let document = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
    for (path, method) in [
        ("/v1/topics", "get"),
        ("/v1/topics/{name}", "put"),
        ("/v1/topics/{name}", "get"),
        ("/v1/topics/{name}", "delete"),
        ("/v1/topics/{name}/bindings", "post"),
        ("/v1/topics/{name}/bindings", "get"),
        ("/v1/topics/{name}/bindings/{id}", "delete"),
        ("/v1/topics/{name}/publish", "post"),
        ("/v1/topics/{name}/subscribe", "get"),
        ("/v1/request", "post"),
        ("/v1/scatter", "post"),
        ("/v1/reply", "post"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    for schema in ["TopicInfoBody", "BindingBody", "PublishBody", "RequestBody"] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
}

#[test]
fn message_fields_next_to_the_key_are_still_checked() {
    let unknown: Result<PublishBody, _> = parse_json_body(
        json!({"messages": [{"routing_key": "k", "body": 1, "bogus": 1}]})
            .to_string()
            .as_bytes(),
    );
    let problem = unknown.expect_err("an unknown field is refused");
    assert_eq!(problem.field.as_deref(), Some("messages[0]"));
    assert!(problem.detail.expect("detail").contains("bogus"));
    let key: Result<PublishBody, _> = parse_json_body(
        json!({"messages": [{"routing_key": 7, "body": 1}]})
            .to_string()
            .as_bytes(),
    );
    assert!(key.is_err(), "a routing key is a string");
}
