//! The JSON frames of the real-time protocol (docs/realtime.md): what a client sends over
//! `/v1/ws`, and what the server sends over it and over `/v1/sse`.
//!
//! A client frame is an object with an `op` and that op's fields, nothing else; `ref`, on any
//! op, is echoed on the answer so a client can match them. Publish, request and reply carry
//! the message fields of `POST /v1/queues/{name}/messages` (`body` or `body_base64`,
//! `headers`, ...), checked the same way.

use super::history::Entry;
use crate::http::{
    queues::wire::{render_body, NewMessage},
    topics::wire::{split_message, JsonObject},
    Problem, ProblemCode,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wharf_model::{message::Message, pattern::Syntax};

/// Longest `ref` a client may give: it is echoed, so it is bounded like an id.
const REF_BYTES_MAX: usize = 128;

/// One client frame: the op and its optional `ref`.
#[derive(Debug)]
pub struct ClientFrame {
    pub reference: Option<String>,
    pub op: Op,
}

#[derive(Debug)]
pub enum Op {
    Subscribe(SubscribeOp),
    Unsubscribe { sub: String },
    Publish(PublishOp),
    Join(JoinOp),
    Leave { room: String },
    Members { room: String },
    Ping,
    Request(RequestOp),
    Reply(ReplyOp),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeOp {
    pub topic: String,
    /// Default `#`: every routing key.
    #[serde(default = "every_key")]
    pub pattern: String,
    #[serde(default)]
    pub syntax: Syntax,
    pub filter: Option<String>,
    /// Names the subscription in `unsubscribe` and `gap`; default: the topic.
    pub sub: Option<String>,
    /// Resume: the id of the last message seen; what followed it is sent first.
    pub last_id: Option<String>,
}

fn every_key() -> String {
    "#".to_string()
}

#[derive(Debug)]
pub struct PublishOp {
    pub topic: String,
    pub routing_key: String,
    pub message: NewMessage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinOp {
    pub room: String,
    /// How others see this connection in the room; default: its connection name.
    pub member: Option<String>,
}

#[derive(Debug)]
pub struct RequestOp {
    pub topic: Option<String>,
    pub queue: Option<String>,
    pub routing_key: Option<String>,
    pub timeout_ms: Option<u64>,
    pub message: NewMessage,
}

#[derive(Debug)]
pub struct ReplyOp {
    pub reply_to: String,
    pub correlation_id: String,
    pub message: NewMessage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishFields {
    topic: String,
    #[serde(default)]
    routing_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFields {
    topic: Option<String>,
    queue: Option<String>,
    routing_key: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyFields {
    reply_to: String,
    correlation_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubField {
    sub: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomField {
    room: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// A client frame that cannot be acted on: the problem, and the frame's `ref` when it had one.
#[derive(Debug)]
pub struct Refused {
    pub reference: Option<String>,
    /// Boxed: a problem is large, and a refusal is the rare path.
    pub problem: Box<Problem>,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientFrame, Refused> {
    let refused = |reference: Option<String>, detail: String| Refused {
        reference,
        problem: Box::new(Problem::new(ProblemCode::InvalidBody).with_detail(detail)),
    };
    let mut object: JsonObject = serde_json::from_str(text).map_err(|error| {
        let wording = crate::http::json_body::json_wording(&error.to_string());
        refused(None, format!("a frame is one JSON object: {wording}"))
    })?;
    let reference = match object.remove("ref") {
        None => None,
        Some(serde_json::Value::String(text)) if text.len() <= REF_BYTES_MAX => Some(text),
        Some(_) => {
            let detail = format!("`ref` is a string of at most {REF_BYTES_MAX} bytes");
            return Err(refused(None, detail));
        }
    };
    let op = match object.remove("op") {
        Some(serde_json::Value::String(op)) => op,
        _ => return Err(refused(reference, "`op` (a string) is required".into())),
    };
    match parse_op(&op, object) {
        Ok(op) => Ok(ClientFrame { reference, op }),
        Err(detail) => Err(refused(reference, format!("op `{op}`: {detail}"))),
    }
}

fn parse_op(op: &str, object: JsonObject) -> Result<Op, String> {
    fn fields<T: for<'de> Deserialize<'de>>(object: JsonObject) -> Result<T, String> {
        T::deserialize(serde_json::Value::Object(object))
            .map_err(|error| crate::http::json_body::json_wording(&error.to_string()))
    }
    Ok(match op {
        "subscribe" => Op::Subscribe(fields(object)?),
        "unsubscribe" => Op::Unsubscribe {
            sub: fields::<SubField>(object)?.sub,
        },
        "publish" => {
            let (own, message) = split_message::<PublishFields>(object, &["topic", "routing_key"])?;
            Op::Publish(PublishOp {
                topic: own.topic,
                routing_key: own.routing_key,
                message,
            })
        }
        "join" => Op::Join(fields(object)?),
        "leave" => Op::Leave {
            room: fields::<RoomField>(object)?.room,
        },
        "members" => Op::Members {
            room: fields::<RoomField>(object)?.room,
        },
        "ping" => {
            fields::<NoFields>(object)?;
            Op::Ping
        }
        "request" => {
            let names = ["topic", "queue", "routing_key", "timeout_ms"];
            let (own, message) = split_message::<RequestFields>(object, &names)?;
            Op::Request(RequestOp {
                topic: own.topic,
                queue: own.queue,
                routing_key: own.routing_key,
                timeout_ms: own.timeout_ms,
                message,
            })
        }
        "reply" => {
            let names = ["reply_to", "correlation_id"];
            let (own, message) = split_message::<ReplyFields>(object, &names)?;
            Op::Reply(ReplyOp {
                reply_to: own.reply_to,
                correlation_id: own.correlation_id,
                message,
            })
        }
        other => {
            return Err(format!(
                "unknown op `{other}`; ops are subscribe, unsubscribe, publish, join, leave, \
                 members, ping, request and reply"
            ))
        }
    })
}

/// A message's fields as the protocol sends them.
#[derive(Serialize)]
struct MessageFields<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Box<serde_json::value::RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<Box<serde_json::value::RawValue>>,
    content_type: &'a str,
    headers: &'a BTreeMap<String, String>,
    /// When the message was published (ms since the epoch).
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
}

fn message_fields(message: &Message) -> MessageFields<'_> {
    let (body, body_base64) = render_body(&message.content_type, &message.body);
    MessageFields {
        id: &message.id,
        body,
        body_base64,
        content_type: &message.content_type,
        headers: &message.headers,
        timestamp: message.sent_at,
        correlation_id: message.correlation_id.as_deref(),
        reply_to: message.reply_to.as_deref(),
    }
}

/// `{"op": "message", "topic", "routing_key", "id", "body"|"body_base64", ...}`.
pub fn message(entry: &Entry) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        topic: &'a str,
        routing_key: &'a str,
        #[serde(flatten)]
        message: MessageFields<'a>,
    }
    let frame = Frame {
        op: "message",
        topic: &entry.topic,
        routing_key: &entry.routing_key,
        message: message_fields(&entry.message),
    };
    serde_json::to_string(&frame).expect("a message frame serializes")
}

/// `{"op": "reply", "ref", ...message}`: the answer to a client's request.
pub fn reply(reference: Option<&str>, message: &Message) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(flatten)]
        message: MessageFields<'a>,
    }
    let frame = Frame {
        op: "reply",
        reference,
        message: message_fields(message),
    };
    serde_json::to_string(&frame).expect("a reply frame serializes")
}

/// `{"op": "error", "ref", ...problem}`: an op that failed, with the problem fields of HTTP.
pub fn error(reference: Option<&str>, problem: &Problem) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        op: &'static str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(flatten)]
        problem: &'a Problem,
    }
    let frame = Frame {
        op: "error",
        reference,
        problem,
    };
    serde_json::to_string(&frame).expect("an error frame serializes")
}

/// Any other frame: `op`, `ref` when given, and the fields of `rest` (a JSON object).
pub fn reply_with(op: &str, reference: Option<&str>, rest: serde_json::Value) -> String {
    let mut object = match rest {
        serde_json::Value::Object(object) => object,
        _ => serde_json::Map::new(),
    };
    object.insert("op".into(), op.into());
    if let Some(reference) = reference {
        object.insert("ref".into(), reference.into());
    }
    serde_json::Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(text: &str) -> String {
        let refused = parse(text).unwrap_err();
        refused.problem.detail.unwrap_or_default()
    }

    #[test]
    fn ops_parse_with_their_fields_and_ref() {
        let frame = parse(r#"{"op":"subscribe","topic":"chat","ref":"1","last_id":"x"}"#).unwrap();
        assert_eq!(frame.reference.as_deref(), Some("1"));
        let Op::Subscribe(subscribe) = frame.op else {
            panic!("a subscribe")
        };
        assert_eq!(
            (subscribe.pattern.as_str(), subscribe.last_id.as_deref()),
            ("#", Some("x"))
        );
        let frame = parse(r#"{"op":"publish","topic":"t","routing_key":"k","body":{"a":1}}"#);
        assert!(matches!(frame.unwrap().op, Op::Publish(p) if p.routing_key == "k"));
        assert!(matches!(parse(r#"{"op":"ping"}"#).unwrap().op, Op::Ping));
    }

    #[test]
    fn bad_frames_are_refused_with_what_is_wrong() {
        assert!(detail("not json").contains("one JSON object"));
        assert!(detail(r#"{"topic":"t"}"#).contains("`op`"));
        assert!(detail(r#"{"op":"dance"}"#).contains("unknown op `dance`"));
        assert!(detail(r#"{"op":"subscribe"}"#).contains("topic"));
        assert!(detail(r#"{"op":"ping","extra":1}"#).contains("extra"));
        assert!(detail(r#"{"op":"publish","topic":"t","bogus":1}"#).contains("bogus"));
        let refused = parse(r#"{"op":"leave","ref":"r9"}"#).unwrap_err();
        assert_eq!(refused.reference.as_deref(), Some("r9"));
        assert!(detail(r#"{"op":"ping","ref":7}"#).contains("`ref`"));
    }

    #[test]
    fn a_message_frame_carries_the_contract_fields() {
        let message = super::super::history::test_message("m1", b"{\"n\":1}");
        let entry = Entry::new("chat".into(), "room.1".into(), message, 5);
        let frame: serde_json::Value = serde_json::from_str(entry.frame()).unwrap();
        assert_eq!(frame["op"], "message");
        assert_eq!(frame["topic"], "chat");
        assert_eq!(frame["routing_key"], "room.1");
        assert_eq!(frame["id"], "m1");
        assert_eq!(frame["body"]["n"], 1);
        assert!(frame["headers"].is_object());
    }
}
