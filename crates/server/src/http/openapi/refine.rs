//! What the derived document cannot say by itself, written into its JSON before it is served:
//! the ranges the engine enforces (from the engine's own constants), the name rules of path
//! parameters, the one-of rules between fields (`body` or `body_base64`, `queue` or `topic`),
//! and flat schemas where serde's `flatten` made `allOf` combinations that no request could
//! satisfy (each part refusing the other's fields).
//!
//! A client generated from the document, or a fuzzer, then meets exactly the rules the server
//! applies: whatever the document allows is accepted, whatever it forbids is refused.

use serde_json::{json, Map, Value};
use wharf_engine::stream::{
    group::{SESSION_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MIN},
    PARTITIONS_MAX,
};
use wharf_engine::{
    alerts::{AlertMetric, MetricScope, ALERT_FOR_MAX},
    broker::{
        PRIORITY_MAX, RECEIVE_MESSAGES_MAX, RECEIVE_WAIT_MAX, REPLY_ADDRESS_PREFIX,
        SCATTER_EXPECT_MAX, SEND_BATCH_MESSAGES_MAX,
    },
    queue::{DEDUP_WINDOW_MS_MAX, LEASE_MS_MAX, RETRY_BACKOFF_MS_MAX},
    security::{PASSWORD_BYTES_MAX, PASSWORD_BYTES_MIN, TOKEN_EXPIRES_IN_MAX},
};
use wharf_model::{MESSAGE_ID_BYTES_MAX, QUEUE_NAME_BYTES_MAX};

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = !c.is_ascii_alphanumeric() && c != '_';
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// A UUID in its text form.
const UUID: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// A prefix of resource names: 1-255 of their characters.
const PREFIX: &str = "^[A-Za-z0-9._@-]{1,255}$";

/// Queue and topic names: 1-255 of `A-Z a-z 0-9 . - _`, and not `.` or `..`.
fn resource_name_pattern() -> String {
    name_pattern(QUEUE_NAME_BYTES_MAX)
}

/// Names by the resource-name rule, at most `max` bytes.
fn name_pattern(max: usize) -> String {
    format!(
        "^([A-Za-z0-9_@-][A-Za-z0-9._@-]{{0,{}}}|\\.[A-Za-z0-9_@-][A-Za-z0-9._@-]{{0,{}}}|\\.\\.[A-Za-z0-9._@-]{{1,{}}})$",
        max - 1,
        max - 2,
        max - 2
    )
}

/// User and token names (`security::accounts`): 1-64 of letters, digits and `. _ @ -`.
const ACCOUNT_NAME: &str = "^[A-Za-z0-9._@-]{1,64}$";

/// Canonical standard base64 with padding, as the doors decode it: the bits past the last
/// byte are zero, so the character before `==` is one of `AQgw`, before `=` one of 16.
const BASE64: &str =
    "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";

/// The message schemas: a queue send, a publish, a request, a scatter, a reply.
const MESSAGE_SCHEMAS: [&str; 5] = [
    "NewMessage",
    "PublishMessageBody",
    "RequestBody",
    "ScatterBody",
    "ReplyBody",
];

/// Schemas naming one destination: exactly one of `queue` or `topic`.
const DESTINATION_SCHEMAS: [&str; 3] = ["DestinationBody", "BindingBody", "RuleBody"];

/// Refines `document`, the derived OpenAPI document as JSON.
pub(super) fn refine(document: &mut Value) {
    add_reply_body(document);
    add_queue_options(document);
    add_message_frames(document);
    flatten_all_of(document);
    if let Some(schemas) = document.pointer_mut("/components/schemas") {
        refine_schemas(schemas);
    }
    refine_parameters(document);
    bound_unsigned_integers(document);
    add_links(document);
}

/// A link: from the answer with `status` to `method path`, to the operation `target`, with its
/// parameters taken from the request or the answer (OpenAPI runtime expressions).
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// What a client does next with what it made: these links let client generators and
/// schemathesis's stateful phase chain create, read, use and delete.
const LINKS: &[LinkSpec] = &[
    (
        "put",
        "/v1/queues/{name}",
        "201",
        "get_queue",
        &[("name", "$request.path.name")],
    ),
    (
        "put",
        "/v1/queues/{name}",
        "201",
        "send_messages",
        &[("name", "$request.path.name")],
    ),
    (
        "put",
        "/v1/queues/{name}",
        "201",
        "delete_queue",
        &[("name", "$request.path.name")],
    ),
    (
        "post",
        "/v1/queues/{name}/messages",
        "201",
        "get_message",
        &[
            ("name", "$request.path.name"),
            ("id", "$response.body#/messages/0/id"),
        ],
    ),
    (
        "post",
        "/v1/queues/{name}/messages",
        "201",
        "delete_message",
        &[
            ("name", "$request.path.name"),
            ("id", "$response.body#/messages/0/id"),
        ],
    ),
    (
        "post",
        "/v1/queues/{name}/messages",
        "201",
        "receive_messages",
        &[("name", "$request.path.name")],
    ),
    (
        "put",
        "/v1/topics/{name}",
        "201",
        "get_topic",
        &[("name", "$request.path.name")],
    ),
    (
        "put",
        "/v1/topics/{name}",
        "201",
        "publish_messages",
        &[("name", "$request.path.name")],
    ),
    (
        "put",
        "/v1/topics/{name}",
        "201",
        "delete_topic",
        &[("name", "$request.path.name")],
    ),
    (
        "post",
        "/v1/topics/{name}/bindings",
        "201",
        "delete_binding",
        &[("name", "$request.path.name"), ("id", "$response.body#/id")],
    ),
    (
        "put",
        "/v1/alerts/{name}",
        "201",
        "get_alert",
        &[("name", "$request.path.name")],
    ),
    (
        "put",
        "/v1/alerts/{name}",
        "201",
        "delete_alert",
        &[("name", "$request.path.name")],
    ),
    (
        "post",
        "/v1/tokens",
        "201",
        "revoke_token",
        &[("id", "$response.body#/id")],
    ),
    (
        "put",
        "/v1/users/{name}",
        "201",
        "delete_user",
        &[("name", "$request.path.name")],
    ),
];

fn add_links(document: &mut Value) {
    for (method, path, status, target, parameters) in LINKS {
        let pointer = format!(
            "/paths/{}/{method}/responses/{status}",
            path.replace('~', "~0").replace('/', "~1")
        );
        let Some(Value::Object(response)) = document.pointer_mut(&pointer) else {
            continue;
        };
        let parameters: Map<String, Value> = (parameters.iter())
            .map(|(name, expression)| (name.to_string(), json!(expression)))
            .collect();
        let links = response.entry("links").or_insert_with(|| json!({}));
        links[*target] = json!({"operationId": target, "parameters": parameters});
    }
}

/// The values of the enumerations the wire types carry as strings.
const ENUMS: [(&str, &str, &[&str]); 13] = [
    (
        "TopicBody",
        "kind",
        &["topic", "direct", "fanout", "headers"],
    ),
    ("TopicBody", "rules_mode", &["all", "first"]),
    ("BindingBody", "syntax", &["amqp", "mqtt", "nats"]),
    ("HeadersBody", "match", &["all", "any"]),
    ("QueueOptions", "overflow", &["reject", "drop_oldest"]),
    ("AlertRuleBody", "op", &[">", ">=", "<", "<="]),
    ("AlertBody", "source", &["config", "api"]),
    ("AlertBody", "state", &["ok", "pending", "firing"]),
    ("StreamBody", "cleanup", &["delete", "compact"]),
    ("StreamBody", "compression", &["none", "lz4", "zstd"]),
    ("JoinBody", "strategy", &["range", "round_robin", "sticky"]),
    ("JoinBody", "auto_offset_reset", &["earliest", "latest"]),
    (
        "HeartbeatBody",
        "auto_offset_reset",
        &["earliest", "latest"],
    ),
];

/// `PUT /v1/queues/{name}` takes the engine's `QueueOptions`, every field optional; the
/// schema is written here from its fields (a test holds it to them) and the engine's ranges.
fn add_queue_options(document: &mut Value) {
    let name = json!({"type": ["string", "null"], "pattern": resource_name_pattern()});
    let at_least_one = json!({"type": ["integer", "null"], "minimum": 1});
    let options = json!({
        "type": "object",
        "description": "Queue options; every field optional, defaults in docs/queues.md.",
        "additionalProperties": false,
        "properties": {
            "durable": {"type": "boolean"},
            "lease_ms": {"type": "integer"},
            "max_deliveries": {"type": ["integer", "null"], "minimum": 1, "maximum": u32::MAX},
            "dead_letter_queue": name,
            "retry_backoff_ms": {"type": "integer"},
            "retry_backoff_max_ms": {"type": "integer"},
            "message_ttl_ms": at_least_one,
            "expires_ms": at_least_one,
            "max_length": at_least_one,
            "overflow": {"type": "string"},
            "dedup_window_ms": {"type": "integer"},
            "single_active_consumer": {"type": "boolean"},
        },
    });
    document["components"]["schemas"]["QueueOptions"] = options;
    for method in ["put", "patch"] {
        let body = format!("/paths/~1v1~1queues~1{{name}}/{method}/requestBody");
        if let Some(request_body) = document.pointer_mut(&body) {
            // Optional, and `null` counts as absent, like the other optional bodies.
            request_body["content"]["application/json"]["schema"] = json!({"oneOf": [
                {"type": "null"},
                {"$ref": "#/components/schemas/QueueOptions"},
            ]});
        }
    }
}

/// Sends take, and receives give (when `Accept` asks), the binary batch type beside JSON
/// (`wharf_model::frames`; docs/queues.md).
fn add_message_frames(document: &mut Value) {
    use wharf_model::frames::BATCH_CONTENT_TYPE;
    let frames = |what: &str| {
        json!({"schema": {"type": "string", "format": "binary", "description": format!(
            "{what} as frames back to back: a big-endian u32 length, the message's fields but \
             its body as a JSON object (or nothing), a big-endian u32 length, the body's bytes. \
             See docs/queues.md."
        )}})
    };
    let send = "/paths/~1v1~1queues~1{name}~1messages/post/requestBody/content";
    if let Some(content) = document.pointer_mut(send) {
        content[BATCH_CONTENT_TYPE] = frames("The messages");
    }
    let receive = "/paths/~1v1~1queues~1{name}~1receive/post/responses/200/content";
    if let Some(content) = document.pointer_mut(receive) {
        content[BATCH_CONTENT_TYPE] = frames("The leased messages, when Accept names this type,");
    }
}

/// `POST /v1/reply` takes a message whose `reply_to` and `correlation_id` are required.
fn add_reply_body(document: &mut Value) {
    let Some(schemas) = document.pointer_mut("/components/schemas") else {
        return;
    };
    let Some(mut reply) = schemas.get("NewMessage").cloned() else {
        return;
    };
    for field in ["reply_to", "correlation_id"] {
        if let Some(property) = reply.pointer_mut(&format!("/properties/{field}")) {
            property["type"] = json!("string");
        }
    }
    reply["required"] = json!(["reply_to", "correlation_id"]);
    reply["description"] =
        json!("`POST /v1/reply` body: the reply message; `reply_to` and `correlation_id` copied from the request.");
    schemas["ReplyBody"] = reply;
    let body = "/paths/~1v1~1reply/post/requestBody/content/application~1json/schema";
    if let Some(schema) = document.pointer_mut(body) {
        *schema = json!({"$ref": "#/components/schemas/ReplyBody"});
    }
}

/// Replaces each `allOf` of objects by one object holding every part's properties, so that
/// `additionalProperties: false` on a part no longer forbids the other parts' fields.
fn flatten_all_of(document: &mut Value) {
    let Some(Value::Object(schemas)) = document.pointer("/components/schemas").cloned() else {
        return;
    };
    for (name, schema) in &schemas {
        let Some(Value::Array(parts)) = schema.get("allOf") else {
            continue;
        };
        let mut properties = Map::new();
        let mut required: Vec<Value> = Vec::new();
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let target = reference.trim_start_matches("#/components/schemas/");
                    schemas.get(target).cloned().unwrap_or_default()
                }
                None => part.clone(),
            };
            if let Some(Value::Object(more)) = part.get("properties") {
                properties.extend(more.clone());
            }
            if let Some(Value::Array(more)) = part.get("required") {
                for field in more {
                    if !required.contains(field) {
                        required.push(field.clone());
                    }
                }
            }
        }
        let mut flat = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        if let Some(description) = schema.get("description") {
            flat["description"] = description.clone();
        }
        document["components"]["schemas"][name] = flat;
    }
}

fn refine_schemas(schemas: &mut Value) {
    for (schema, property, range) in ranges() {
        merge_property(schemas, schema, property, range);
    }
    for (schema, property, values) in ENUMS {
        merge_property(schemas, schema, property, json!({"enum": values}));
    }
    refine_messages(schemas);
    refine_destinations(schemas);
    refine_texts(schemas);
    refine_alerts(schemas);
    refine_streams(schemas);
    refine_version_conflict(schemas);
    refine_events(schemas);
    refine_webhooks(schemas);
}

/// An endpoint's URL, secret, headers, subscriptions and rate, as the engine checks them
/// (`wharf_engine::webhooks`).
fn refine_webhooks(schemas: &mut Value) {
    use wharf_engine::webhooks::SUBSCRIPTIONS_MAX;
    let body = "WebhookEndpointBody";
    // Absolute http(s) URLs without credentials or fragment.
    let url = "^https?://[a-z][a-z0-9-]{0,30}(\\.[a-z][a-z0-9-]{0,30}){0,3}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]{0,30}){0,4}$";
    merge_property(
        schemas,
        body,
        "url",
        json!({"pattern": url, "maxLength": 2048}),
    );
    // `whsec_` + standard base64 of 24 to 48 bytes (the server takes up to 64).
    let secret = "^whsec_([A-Za-z0-9+/]{4}){8,16}$";
    merge_property(schemas, body, "secret", json!({"pattern": secret}));
    let headers = json!({
        "maxProperties": 32,
        "propertyNames": {"pattern": "^[Xx]-[A-Za-z0-9-]{1,30}$"},
        "additionalProperties": {"type": "string", "pattern": "^[!-~]([ -~]{0,98}[!-~])?$"},
    });
    merge_property(schemas, body, "headers", headers);
    let rate = json!({"minimum": 1, "maximum": wharf_engine::webhooks::RATE_LIMIT_PER_S_MAX});
    merge_property(schemas, body, "rate_limit_per_s", rate);
    let subscriptions = json!({"minItems": 1, "maxItems": SUBSCRIPTIONS_MAX});
    merge_property(schemas, body, "subscriptions", subscriptions);
    let subscription = "WebhookSubscriptionBody";
    merge_property(
        schemas,
        subscription,
        "topic",
        json!({"pattern": resource_name_pattern()}),
    );
    merge_property(
        schemas,
        subscription,
        "pattern",
        json!({"format": "wharf-pattern"}),
    );
    merge_property(
        schemas,
        subscription,
        "filter",
        json!({"format": "wharf-filter"}),
    );
}

/// Event-store names and prefixes follow the resource-name rule; an expected version is one of
/// three words or a version; an event's data comes as JSON or as base64, not both.
fn refine_events(schemas: &mut Value) {
    let expected = json!({"oneOf": [
        {"type": "null"},
        {"type": "string", "enum": ["any", "no_stream", "exists"]},
        {"type": "integer", "minimum": 0},
    ]});
    let name = json!({"pattern": resource_name_pattern()});
    for schema in ["AppendBody", "StreamAppendBody"] {
        merge_property(schemas, schema, "expected_version", expected.clone());
        merge_property(
            schemas,
            schema,
            "events",
            json!({"minItems": 1, "maxItems": 1000}),
        );
    }
    merge_property(schemas, "StreamAppendBody", "stream", name.clone());
    merge_property(
        schemas,
        "AppendBatchBody",
        "appends",
        json!({"minItems": 1, "maxItems": 1000}),
    );
    merge_property(schemas, "NewEventBody", "type", name.clone());
    merge_property(schemas, "SubscriptionBody", "stream", name);
    merge_property(schemas, "NewEventBody", "id", json!({"pattern": UUID}));
    merge_property(
        schemas,
        "NewEventBody",
        "data_base64",
        json!({"pattern": BASE64}),
    );
    let not_both = json!({"not": {"required": ["data", "data_base64"], "properties": {
        "data": {"not": {"type": "null"}}, "data_base64": {"not": {"type": "null"}}}}});
    add_rules(schemas, "NewEventBody", vec![not_both]);
    for schema in ["ProjectionBody", "SubscriptionBody"] {
        for property in ["type_prefix", "stream_prefix"] {
            merge_property(schemas, schema, property, json!({"pattern": PREFIX}));
        }
    }
}

/// A `wrong_expected_version` problem carries `VersionConflict`'s members beside the RFC's
/// (flattened and boxed in the type, which the generator leaves out of `Problem`).
fn refine_version_conflict(schemas: &mut Value) {
    let members = schemas["VersionConflict"]["properties"].clone();
    if let (Some(members), Some(properties)) = (
        members.as_object(),
        schemas["Problem"]["properties"].as_object_mut(),
    ) {
        for (name, schema) in members {
            properties.insert(name.clone(), schema.clone());
        }
    }
}

/// A produce's idempotent pair and a commit's member pair come together or not at all; a
/// record's key and value each come as text (or JSON) or as base64, not both.
fn refine_streams(schemas: &mut Value) {
    let both_or_neither = |first: &str, second: &str, kind: &str| {
        json!({"oneOf": [
            {"required": [first, second], "properties": {first: {"type": kind}, second: {"type": "integer"}}},
            {"properties": {first: {"type": "null"}, second: {"type": "null"}}},
        ]})
    };
    add_rules(
        schemas,
        "ProduceBody",
        vec![both_or_neither("producer_id", "sequence", "integer")],
    );
    add_rules(
        schemas,
        "CommitBody",
        vec![both_or_neither("member_id", "generation", "string")],
    );
    let not_both = |first: &str, second: &str| {
        json!({"not": {"required": [first, second], "properties": {
            first: {"not": {"type": "null"}}, second: {"not": {"type": "null"}}}}})
    };
    let record_rules = vec![
        not_both("key", "key_base64"),
        not_both("value", "value_base64"),
    ];
    add_rules(schemas, "NewRecord", record_rules);
    for property in ["key_base64", "value_base64"] {
        merge_property(schemas, "NewRecord", property, json!({"pattern": BASE64}));
    }
    let member = json!({"pattern": resource_name_pattern()});
    merge_property(schemas, "JoinBody", "member_id", member.clone());
    merge_property(schemas, "CommitBody", "member_id", member);
}

/// An alert rule names a queue with a queue metric, a topic with a topic metric, neither with
/// a node metric; the metric names come from the engine. `for_ms` has the engine's range.
fn refine_alerts(schemas: &mut Value) {
    let metrics = |scope: MetricScope| -> Vec<&'static str> {
        (AlertMetric::ALL.iter())
            .filter(|metric| metric.scope() == scope)
            .map(|metric| metric.name())
            .collect()
    };
    let string = json!({"type": "string"});
    let absent = json!({"type": "null"});
    let scopes = json!({"oneOf": [
        {"required": ["queue"], "properties": {"queue": string, "topic": absent,
            "metric": {"enum": metrics(MetricScope::Queue)}}},
        {"required": ["topic"], "properties": {"topic": string, "queue": absent,
            "metric": {"enum": metrics(MetricScope::Topic)}}},
        {"properties": {"queue": absent, "topic": absent,
            "metric": {"enum": metrics(MetricScope::Node)}}},
    ]});
    add_rules(schemas, "AlertRuleBody", vec![scopes]);
    let name = json!({"pattern": resource_name_pattern()});
    merge_property(schemas, "AlertRuleBody", "queue", name.clone());
    merge_property(schemas, "AlertRuleBody", "topic", name);
    let for_max = ALERT_FOR_MAX.as_millis() as u64;
    merge_property(
        schemas,
        "AlertRuleBody",
        "for_ms",
        json!({"minimum": 0, "maximum": for_max}),
    );
}

/// The ranges the engine enforces on numbers and lists, from its constants.
fn ranges() -> Vec<(&'static str, &'static str, Value)> {
    let ms = |duration: std::time::Duration| duration.as_millis() as u64;
    let range = |min: u64, max: u64| json!({"minimum": min, "maximum": max});
    let batch = json!({"minItems": 1, "maxItems": SEND_BATCH_MESSAGES_MAX});
    let batch_records = batch.clone();
    vec![
        (
            "ReceiveBody",
            "max_messages",
            range(1, RECEIVE_MESSAGES_MAX as u64),
        ),
        ("ReceiveBody", "wait_ms", range(0, ms(RECEIVE_WAIT_MAX))),
        ("ReceiveBody", "lease_ms", range(1, LEASE_MS_MAX)),
        ("LeaseBody", "lease_ms", range(0, LEASE_MS_MAX)),
        ("SendBody", "messages", batch.clone()),
        ("PublishBody", "messages", batch),
        (
            "TokenBody",
            "expires_in_s",
            range(1, TOKEN_EXPIRES_IN_MAX.as_secs()),
        ),
        ("RequestBody", "timeout_ms", range(1, 300_000)),
        ("ScatterBody", "timeout_ms", range(1, 300_000)),
        ("ScatterBody", "expect", range(1, SCATTER_EXPECT_MAX as u64)),
        ("QueueOptions", "lease_ms", range(1, LEASE_MS_MAX)),
        (
            "StreamBody",
            "partitions",
            range(1, u64::from(PARTITIONS_MAX)),
        ),
        ("StreamBody", "retention_ms", json!({"minimum": 1})),
        ("StreamBody", "retention_bytes", json!({"minimum": 1})),
        ("ProduceBody", "records", batch_records.clone()),
        ("ProduceBody", "producer_id", range(0, i64::MAX as u64)),
        ("ProduceBody", "sequence", range(0, i32::MAX as u64)),
        (
            "JoinBody",
            "session_timeout_ms",
            range(SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX),
        ),
        (
            "QueueOptions",
            "retry_backoff_ms",
            range(0, RETRY_BACKOFF_MS_MAX),
        ),
        (
            "QueueOptions",
            "retry_backoff_max_ms",
            range(0, RETRY_BACKOFF_MS_MAX),
        ),
        (
            "QueueOptions",
            "dedup_window_ms",
            range(0, DEDUP_WINDOW_MS_MAX),
        ),
    ]
}

fn refine_messages(schemas: &mut Value) {
    for schema in MESSAGE_SCHEMAS {
        let priority = json!({"minimum": 0, "maximum": PRIORITY_MAX});
        merge_property(schemas, schema, "priority", priority);
        merge_property(schemas, schema, "ttl_ms", json!({"minimum": 1}));
        // Control characters would let an id forge log lines (wharf_model::MessageId).
        let id = json!({
            "minLength": 1,
            "maxLength": MESSAGE_ID_BYTES_MAX,
            "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
        });
        merge_property(schemas, schema, "id", id);
        merge_property(schemas, schema, "group", json!({"minLength": 1}));
        merge_property(schemas, schema, "body_base64", json!({"pattern": BASE64}));
        add_rules(schemas, schema, message_rules());
    }
    let reply_to = json!({"pattern": format!("^{}", regex_escape(REPLY_ADDRESS_PREFIX))});
    merge_property(schemas, "ReplyBody", "reply_to", reply_to);
}

/// Exactly one destination, named by the name rules; a binding creates only a queue.
fn refine_destinations(schemas: &mut Value) {
    let name = json!({"pattern": resource_name_pattern()});
    for schema in DESTINATION_SCHEMAS.into_iter().chain(["RequestBody"]) {
        remove_property(schemas, schema, "stream");
        add_rules(schemas, schema, vec![exactly_one_of("queue", "topic")]);
        merge_property(schemas, schema, "queue", name.clone());
        merge_property(schemas, schema, "topic", name.clone());
    }
    merge_property(schemas, "ScatterBody", "topic", name);
    let topic_given = json!({"required": ["topic"], "properties": {"topic": {"type": "string"}}});
    let no_creation = json!({"properties": {"create_queue": {"enum": [false]}}});
    let rule = json!({"if": topic_given, "then": no_creation});
    add_rules(schemas, "BindingBody", vec![rule]);
}

/// Texts in a language of their own carry a format: a filter (docs/filters.md), a routing
/// pattern, a grant's `KIND:PATTERN`; their grammar is no regular expression. Account names
/// and passwords carry their rules.
fn refine_texts(schemas: &mut Value) {
    for (schema, property, format) in [
        ("BindingBody", "filter", "wharf-filter"),
        ("RuleBody", "filter", "wharf-filter"),
        ("BindingBody", "pattern", "wharf-pattern"),
        ("GrantBody", "resource", "wharf-resource"),
    ] {
        merge_property(schemas, schema, property, json!({"format": format}));
    }
    merge_property(schemas, "GrantBody", "actions", json!({"minItems": 1}));
    merge_property(
        schemas,
        "TokenBody",
        "name",
        json!({"pattern": ACCOUNT_NAME}),
    );
    let password = json!({"minLength": PASSWORD_BYTES_MIN, "maxLength": PASSWORD_BYTES_MAX});
    merge_property(schemas, "UserBody", "password", password);
}

/// A message has `body` (any JSON value, null too; then its content type, if given, is a JSON
/// one) or `body_base64`, not both; and not both `delay_ms` and `deliver_at`.
fn message_rules() -> Vec<Value> {
    // `application/json` or `TYPE/SUBTYPE+json`, any case, parameters after `;`.
    let json_type = "^\\s*([Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn]/[Jj][Ss][Oo][Nn]|[^/;]+/[^;]*\\+[Jj][Ss][Oo][Nn])\\s*(;.*)?$";
    vec![
        json!({"oneOf": [
            {"required": ["body"], "properties": {
                "body_base64": {"type": "null"},
                "content_type": {"type": ["string", "null"], "pattern": json_type},
            }},
            {"required": ["body_base64"], "properties": {"body_base64": {"type": "string"}},
             "not": {"required": ["body"]}},
        ]}),
        json!({"not": {
            "required": ["delay_ms", "deliver_at"],
            "properties": {"delay_ms": {"type": "integer"}, "deliver_at": {"type": "integer"}},
        }}),
    ]
}

/// Exactly one of two nullable fields is a string; the other absent or null.
fn exactly_one_of(first: &str, second: &str) -> Value {
    json!({"oneOf": [
        {"required": [first], "properties": {first: {"type": "string"}, second: {"type": "null"}}},
        {"required": [second], "properties": {second: {"type": "string"}, first: {"type": "null"}}},
    ]})
}

fn merge_property(schemas: &mut Value, schema: &str, property: &str, extra: Value) {
    let Some(Value::Object(target)) =
        schemas.pointer_mut(&format!("/{schema}/properties/{property}"))
    else {
        return;
    };
    if let Value::Object(extra) = extra {
        target.extend(extra);
    }
}

fn remove_property(schemas: &mut Value, schema: &str, property: &str) {
    if let Some(Value::Object(properties)) = schemas.pointer_mut(&format!("/{schema}/properties")) {
        properties.remove(property);
    }
}

/// Adds `rules` to `schema` as an `allOf` of constraint-only schemas.
fn add_rules(schemas: &mut Value, schema: &str, rules: Vec<Value>) {
    let Some(Value::Object(target)) = schemas.get_mut(schema) else {
        return;
    };
    let all_of = target.entry("allOf").or_insert_with(|| json!([]));
    if let Value::Array(all_of) = all_of {
        all_of.extend(rules);
    }
}

/// Rust's unsigned integers travel as JSON integers up to their type's maximum; the derived
/// schema says `int64`/`int32`, whose upper ends differ from `u64`/`u32`. Each unbounded
/// non-negative integer gets its real maximum instead of the format.
fn bound_unsigned_integers(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let integer = match object.get("type") {
                Some(Value::String(kind)) => kind == "integer",
                Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "integer"),
                _ => false,
            };
            let unsigned = object.get("minimum").and_then(Value::as_f64) >= Some(0.0);
            if integer && unsigned && !object.contains_key("maximum") {
                let maximum = match object.get("format").and_then(Value::as_str) {
                    Some("int32") => json!(u32::MAX),
                    _ => json!(u64::MAX),
                };
                object.remove("format");
                object.insert("maximum".to_string(), maximum);
            }
            object.values_mut().for_each(bound_unsigned_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_unsigned_integers),
        _ => {}
    }
}

/// Path names follow the name rules; `syntax` is one of three; texts with a grammar of their
/// own carry its format.
fn refine_parameters(document: &mut Value) {
    let Some(Value::Object(paths)) = document.get_mut("paths") else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Value::Object(operations) = item else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let Some(Value::Array(parameters)) = operation.get_mut("parameters") else {
                continue;
            };
            // Reads of a stream take the server's projections too: `$ce-NAME`, `$et-NAME`.
            let projections = path == "/v1/events/streams/{name}" && method == "get";
            // Projection and persistent-subscription names: at most 128 bytes.
            let short = path.starts_with("/v1/events/projections/")
                || path.starts_with("/v1/events/subscriptions/")
                || path.starts_with("/v1/webhooks/endpoints/");
            for parameter in parameters {
                let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
                let schema = match (name, path.starts_with("/v1/users")) {
                    ("name", false) if projections => json!({
                        "type": "string",
                        "pattern": format!("^\\$(ce|et)-[A-Za-z0-9._@-]{{1,251}}$|{}", resource_name_pattern()),
                    }),
                    ("name", false) if short => {
                        json!({"type": "string", "pattern": name_pattern(128)})
                    }
                    ("type_prefix" | "stream_prefix", _) => {
                        json!({"type": ["string", "null"], "pattern": PREFIX})
                    }
                    ("stream", _) => {
                        json!({"type": ["string", "null"], "pattern": resource_name_pattern()})
                    }
                    ("name", false) => json!({
                        "type": "string",
                        "pattern": resource_name_pattern(),
                    }),
                    ("name", true) => {
                        json!({"type": "string", "pattern": ACCOUNT_NAME})
                    }
                    ("filter", _) => json!({"type": ["string", "null"], "format": "wharf-filter"}),
                    ("pattern", _) => json!({"type": "string", "format": "wharf-pattern"}),
                    ("state", _) => {
                        json!({"type": ["string", "null"], "enum": ["ready", "delayed", "leased", null]})
                    }
                    ("syntax", _) => {
                        json!({"type": ["string", "null"], "enum": ["amqp", "mqtt", "nats", null]})
                    }
                    ("group" | "member", _) => json!({
                        "type": "string",
                        "pattern": resource_name_pattern(),
                    }),
                    ("at", _) => json!({
                        "type": ["string", "null"],
                        "pattern": "^(earliest|latest|-?[0-9]{1,18})$",
                    }),
                    _ => continue,
                };
                parameter["schema"] = schema;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_pattern_takes_exactly_the_names_the_model_takes() {
        let pattern = regex::Regex::new(&resource_name_pattern()).expect("a valid regex");
        let long = "x".repeat(255);
        let too_long = "x".repeat(256);
        let dots_too_long = format!("..{}", "x".repeat(254));
        for name in [
            "a",
            "orders.eu",
            ".a",
            "..a",
            "...",
            "-_",
            &long,
            "",
            ".",
            "..",
            "a b",
            "é",
            &too_long,
            &dots_too_long,
        ] {
            let model = name.parse::<wharf_model::QueueName>().is_ok();
            assert_eq!(pattern.is_match(name), model, "{name:?}");
        }
    }

    #[test]
    fn the_queue_options_schema_has_exactly_the_engine_s_fields() {
        let mut document = json!({"components": {"schemas": {}}, "paths": {}});
        add_queue_options(&mut document);
        let schema = &document["components"]["schemas"]["QueueOptions"]["properties"];
        let mut documented: Vec<&String> = schema.as_object().expect("properties").keys().collect();
        let defaults = serde_json::to_value(wharf_engine::queue::QueueOptions::default())
            .expect("options serialize");
        let mut fields: Vec<&String> = defaults.as_object().expect("an object").keys().collect();
        documented.sort();
        fields.sort();
        assert_eq!(documented, fields);
    }

    #[test]
    fn every_link_starts_at_a_response_and_reaches_an_operation() {
        use utoipa::OpenApi;
        let mut document = serde_json::to_value(crate::http::ApiDoc::openapi()).expect("json");
        refine(&mut document);
        let operations: Vec<&str> = (document["paths"].as_object().expect("paths").values())
            .flat_map(|item| item.as_object().expect("an item").values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        for (method, path, status, target, parameters) in LINKS {
            let response = &document["paths"][path][method]["responses"][status];
            let link = &response["links"][target];
            assert_eq!(link["operationId"], *target, "{method} {path} {status}");
            assert!(operations.contains(target), "no operation {target}");
            for (name, _) in *parameters {
                let target_path = (document["paths"].as_object().expect("paths").iter())
                    .find(|(_, item)| {
                        (item.as_object().expect("an item").values())
                            .any(|operation| operation["operationId"] == *target)
                    })
                    .map(|(path, _)| path.clone())
                    .expect("the target's path");
                assert!(
                    target_path.contains(&format!("{{{name}}}")),
                    "{target} has no {name}"
                );
            }
        }
    }

    #[test]
    fn every_enumerated_value_is_one_the_server_reads() {
        use wharf_engine::alerts::{AlertOp, AlertState, RuleSource};
        use wharf_engine::topic::{RulesMode, TopicKind};
        use wharf_model::pattern::Syntax;
        for (schema, property, values) in ENUMS {
            for value in values {
                let value = json!(value);
                let shown = value.to_string();
                let read = match (schema, property) {
                    (_, "kind") => serde_json::from_value::<TopicKind>(value).is_ok(),
                    (_, "rules_mode") => serde_json::from_value::<RulesMode>(value).is_ok(),
                    (_, "syntax") => serde_json::from_value::<Syntax>(value).is_ok(),
                    (_, "overflow") => {
                        serde_json::from_value::<wharf_engine::queue::Overflow>(value).is_ok()
                    }
                    (_, "match") => {
                        serde_json::from_value::<wharf_engine::topic::HeadersMode>(value).is_ok()
                    }
                    (_, "op") => serde_json::from_value::<AlertOp>(value).is_ok(),
                    (_, "cleanup") => {
                        serde_json::from_value::<wharf_engine::stream::Cleanup>(value).is_ok()
                    }
                    (_, "compression") => {
                        serde_json::from_value::<wharf_model::record_batch::Compression>(value)
                            .is_ok()
                    }
                    (_, "strategy") => serde_json::from_value::<
                        wharf_engine::stream::group::AssignmentStrategy,
                    >(value)
                    .is_ok(),
                    (_, "auto_offset_reset") => {
                        serde_json::from_value::<crate::http::streams::wire::ResetBody>(value)
                            .is_ok()
                    }
                    // Written, never read: held to what the server writes.
                    (_, "source") => [RuleSource::Config, RuleSource::Api]
                        .iter()
                        .any(|source| serde_json::to_value(source).ok() == Some(value.clone())),
                    (_, "state") => [AlertState::Ok, AlertState::Pending, AlertState::Firing]
                        .iter()
                        .any(|state| serde_json::to_value(state).ok() == Some(value.clone())),
                    _ => false,
                };
                assert!(read, "{schema}.{property} = {shown}");
            }
        }
    }

    #[test]
    fn the_base64_pattern_takes_what_the_door_decodes() {
        let pattern = regex::Regex::new(BASE64).expect("a valid regex");
        for length in 0..=5 {
            for seed in 0..=255u8 {
                let bytes: Vec<u8> = (0..length)
                    .map(|i| seed.wrapping_mul(31).wrapping_add(i))
                    .collect();
                let text = base64_simd::STANDARD.encode_to_string(&bytes);
                assert!(pattern.is_match(&text), "{text:?}");
            }
        }
        for text in ["AB==", "AAB=", "A===", "AAAA=", "AA", "A A="] {
            let decoded = base64_simd::STANDARD.decode_to_vec(text).is_ok();
            assert!(!pattern.is_match(text) && !decoded, "{text:?}");
        }
    }

    #[test]
    fn unsigned_integers_get_their_maximum_and_bounded_ones_keep_theirs() {
        let mut schema = json!({
            "a": {"type": "integer", "format": "int64", "minimum": 0},
            "b": {"type": ["integer", "null"], "format": "int32", "minimum": 0},
            "c": {"type": "integer", "minimum": 1, "maximum": 9},
            "d": {"type": "integer", "format": "int64"},
        });
        bound_unsigned_integers(&mut schema);
        assert_eq!(
            schema["a"],
            json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
        );
        assert_eq!(schema["b"]["maximum"], json!(u32::MAX));
        assert_eq!(schema["c"]["maximum"], 9);
        assert_eq!(schema["d"]["format"], "int64");
    }
}
