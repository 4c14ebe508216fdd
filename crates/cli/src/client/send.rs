//! `wharf send QUEUE [BODY|-]`: one message onto a queue.
//!
//! The body, as a user typing it means it:
//! - BODY that parses as JSON (`'{"a":1}'`, `42`, `'"text"'`) is sent as JSON (`body`), and the
//!   server stores it as a JSON document;
//! - any other BODY (`hello world`) is sent as its UTF-8 bytes (`body_base64`) labelled
//!   `text/plain; charset=utf-8`, so the message holds exactly `hello world`, not a quoted string;
//! - `-` or no BODY reads standard input and sends the bytes as they are (`body_base64`),
//!   labelled `application/octet-stream`.
//!
//! `--content-type` overrides the label in every case; a non-JSON type (`text/csv`) sends even
//! a JSON-looking BODY as its bytes, since the server keeps `body` for JSON content only.
//! Prints one JSON line per sent message:
//! `{"id":...,"duplicate":false}`.
//!
//! `--file PATH` (`-`: standard input) sends every line of a file instead, in batches: see
//! [`super::send_file`].

use super::{print_json_line, queue_path, Client, ClientError};
use base64::Engine as _;
use clap::Args;
use serde_json::{json, Map, Value};
use std::{io::Read, path::PathBuf};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Queue name.
    queue: String,
    /// Send every line of this file (`-`: standard input) as one message, in batches; a line
    /// is a body as BODY would be (JSON as JSON, other text as its bytes). Blank lines are
    /// skipped. Prints `sent N messages (D duplicates)`.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["body", "id"])]
    file: Option<PathBuf>,
    #[command(flatten)]
    message: MessageArgs,
}

/// A message's body and fields, shared by `send`, `publish` and `request`.
#[derive(Debug, Args)]
pub struct MessageArgs {
    /// Message body: JSON is sent as JSON, other text as its bytes; `-` or none reads stdin.
    body: Option<String>,
    /// Message id; a repeated id inside the queue's dedup window is dropped as a duplicate.
    #[arg(long)]
    id: Option<String>,
    /// Higher is delivered first.
    #[arg(long)]
    priority: Option<u8>,
    /// Deliver no earlier than this many milliseconds from now.
    #[arg(long, value_name = "MS")]
    delay_ms: Option<u64>,
    /// Expire the message if it is not delivered within this many milliseconds.
    #[arg(long, value_name = "MS")]
    ttl_ms: Option<u64>,
    /// FIFO group: messages of one group are delivered one at a time, in order.
    #[arg(long)]
    group: Option<String>,
    /// Header, as NAME=VALUE; repeat for more.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Content type of the body (see above for the default).
    #[arg(long)]
    content_type: Option<String>,
    /// Correlation id, for request-reply.
    #[arg(long)]
    correlation_id: Option<String>,
    /// Where replies should go, for request-reply.
    #[arg(long, value_name = "QUEUE")]
    reply_to: Option<String>,
}

pub fn run(args: SendArgs, client: &Client) -> Result<(), ClientError> {
    if let Some(path) = &args.file {
        return super::send_file::run(&args.queue, path, &args.message, client);
    }
    let message = message(&args.message)?;
    let reply = client
        .post(
            &queue_path(&args.queue, "/messages"),
            &json!({ "messages": [message] }),
        )
        .map_err(|error| error.about_queue(&args.queue))?;
    for sent in reply["messages"].as_array().into_iter().flatten() {
        print_json_line(sent)?;
    }
    Ok(())
}

/// The message as the API's JSON (`body` or `body_base64` and the fields given).
pub fn message(args: &MessageArgs) -> Result<Map<String, Value>, ClientError> {
    let mut message = Map::new();
    let content_type = match args.body.as_deref() {
        None | Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(ClientError::Stdin)?;
            message.insert("body_base64".into(), base64_value(&bytes));
            Some("application/octet-stream")
        }
        Some(text) => insert_text_body(&mut message, text, args),
    };
    insert_fields(&mut message, args, content_type);
    Ok(message)
}

/// Inserts `text` as the body the way BODY is taken: JSON as `body` (unless a non-JSON
/// `--content-type` was given), other text as its bytes. Returns the content type to label it
/// with when `--content-type` is not given.
pub fn insert_text_body(
    message: &mut Map<String, Value>,
    text: &str,
    args: &MessageArgs,
) -> Option<&'static str> {
    let json_allowed = args.content_type.as_deref().is_none_or(is_json_type);
    match serde_json::from_str::<Value>(text) {
        Ok(document) if json_allowed => {
            message.insert("body".into(), document);
            None
        }
        _ => {
            message.insert("body_base64".into(), base64_value(text.as_bytes()));
            Some("text/plain; charset=utf-8")
        }
    }
}

/// Inserts the optional fields given on the command line; `content_type` is the body's label
/// when `--content-type` is not given.
pub fn insert_fields(
    message: &mut Map<String, Value>,
    args: &MessageArgs,
    content_type: Option<&str>,
) {
    let content_type = args.content_type.as_deref().or(content_type);
    let optional = [
        ("id", args.id.clone().map(Value::from)),
        ("content_type", content_type.map(Value::from)),
        ("priority", args.priority.map(Value::from)),
        ("delay_ms", args.delay_ms.map(Value::from)),
        ("ttl_ms", args.ttl_ms.map(Value::from)),
        ("group", args.group.clone().map(Value::from)),
        (
            "correlation_id",
            args.correlation_id.clone().map(Value::from),
        ),
        ("reply_to", args.reply_to.clone().map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            message.insert(key.into(), value);
        }
    }
    if !args.headers.is_empty() {
        let headers: Map<String, Value> = args
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
            .collect();
        message.insert("headers".into(), Value::Object(headers));
    }
}

/// `application/json` or any `+json` type, parameters ignored (what the server calls JSON).
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .split_once('/')
            .is_some_and(|(_, subtype)| subtype.to_ascii_lowercase().ends_with("+json"))
}

pub fn base64_value(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SendArgs,
    }

    fn built(arguments: &[&str]) -> Value {
        let wrapper = Wrapper::try_parse_from(["send"].iter().chain(arguments)).expect("parse");
        Value::Object(message(&wrapper.args.message).expect("message"))
    }

    #[test]
    fn json_argument_is_sent_as_json() {
        let sent = built(&[
            "q",
            r#"{"a":[1,2]}"#,
            "--header",
            "k=v=w",
            "--priority",
            "3",
        ]);
        assert_eq!(sent["body"], json!({"a": [1, 2]}));
        assert!(sent.get("content_type").is_none(), "{sent}");
        assert_eq!(sent["headers"], json!({"k": "v=w"}));
        assert_eq!(sent["priority"], 3);
    }

    #[test]
    fn plain_text_is_sent_as_its_bytes() {
        let sent = built(&["q", "hello world"]);
        assert_eq!(sent["body_base64"], "aGVsbG8gd29ybGQ=");
        assert_eq!(sent["content_type"], "text/plain; charset=utf-8");
    }

    #[test]
    fn a_non_json_content_type_sends_json_text_as_bytes() {
        let sent = built(&["q", "[1,2]", "--content-type", "text/csv"]);
        assert_eq!(sent["body_base64"], "WzEsMl0=");
        assert_eq!(sent["content_type"], "text/csv");
        let sent = built(&[
            "q",
            "[1,2]",
            "--content-type",
            "application/cloudevents+json",
        ]);
        assert_eq!(sent["body"], json!([1, 2]));
    }

    #[test]
    fn headers_need_a_name_and_an_equals_sign() {
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=v").is_err());
        assert_eq!(
            parse_header("a=").unwrap(),
            ("a".to_string(), String::new())
        );
    }
}
