//! `wharf request TARGET [BODY|-]`, `wharf scatter TOPIC KEY [BODY|-]` and
//! `wharf reply REPLY_TO CORRELATION_ID [BODY|-]`: request-reply from the command line.
//!
//! TARGET is `queue:NAME`, or `topic:NAME:KEY` to publish the request with routing key KEY
//! (the key may itself hold `:`). Body and message options are those of `wharf send`.
//! `request` prints the reply as one JSON line (exit 1 with a timeout error when none came);
//! `scatter` prints each reply as a JSON line, then `received M of N` on stderr; `reply` prints
//! `{"id":...}`.

use super::{print_json_line, send::MessageArgs, Client, ClientError};
use clap::Args;
use serde_json::{Map, Value};

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// `queue:NAME` or `topic:NAME:KEY`.
    #[arg(value_parser = parse_target)]
    target: Target,
    #[command(flatten)]
    message: MessageArgs,
    /// Seconds to wait for the reply (fractions allowed; at most 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
pub struct ScatterArgs {
    /// Topic name.
    topic: String,
    /// Routing key.
    key: String,
    #[command(flatten)]
    message: MessageArgs,
    /// Replies to wait for.
    #[arg(long, value_name = "N")]
    expect: usize,
    /// Seconds to wait for them (fractions allowed; at most 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// The request's `reply_to`.
    #[arg(value_name = "REPLY_TO")]
    address: String,
    /// The request's `correlation_id`.
    #[arg(value_name = "CORRELATION_ID")]
    correlation: String,
    #[command(flatten)]
    message: MessageArgs,
}

#[derive(Debug, Clone)]
enum Target {
    Queue(String),
    Topic { name: String, key: String },
}

pub fn run_request(args: RequestArgs, client: &Client) -> Result<(), ClientError> {
    let mut request = message_object(&args.message)?;
    match args.target {
        Target::Queue(name) => {
            request.insert("queue".into(), Value::from(name));
        }
        Target::Topic { name, key } => {
            request.insert("topic".into(), Value::from(name));
            request.insert("routing_key".into(), Value::from(key));
        }
    }
    request.insert("timeout_ms".into(), timeout_ms(args.timeout));
    let reply = client.post("/v1/request", &Value::Object(request))?;
    print_json_line(&reply["reply"])
}

pub fn run_scatter(args: ScatterArgs, client: &Client) -> Result<(), ClientError> {
    let mut request = message_object(&args.message)?;
    request.insert("topic".into(), Value::from(args.topic));
    request.insert("routing_key".into(), Value::from(args.key));
    request.insert("expect".into(), Value::from(args.expect));
    request.insert("timeout_ms".into(), timeout_ms(args.timeout));
    let result = client.post("/v1/scatter", &Value::Object(request))?;
    for reply in result["replies"].as_array().into_iter().flatten() {
        print_json_line(reply)?;
    }
    eprintln!("received {} of {}", result["received"], result["expected"]);
    Ok(())
}

pub fn run_reply(args: ReplyArgs, client: &Client) -> Result<(), ClientError> {
    let mut reply = message_object(&args.message)?;
    reply.insert("reply_to".into(), Value::from(args.address));
    reply.insert("correlation_id".into(), Value::from(args.correlation));
    let sent = client.post("/v1/reply", &Value::Object(reply))?;
    print_json_line(&sent)
}

fn message_object(args: &MessageArgs) -> Result<Map<String, Value>, ClientError> {
    super::send::message(args)
}

/// Whole milliseconds; the server checks the range and names `timeout_ms` when it is out.
fn timeout_ms(seconds: f64) -> Value {
    Value::from((seconds * 1_000.0).round().max(0.0) as u64)
}

fn parse_target(text: &str) -> Result<Target, String> {
    let invalid = || format!("`{text}` is not queue:NAME or topic:NAME:KEY");
    match text.split_once(':') {
        Some(("queue", name)) if !name.is_empty() => Ok(Target::Queue(name.to_string())),
        Some(("topic", rest)) => match rest.split_once(':') {
            Some((name, key)) if !name.is_empty() => Ok(Target::Topic {
                name: name.to_string(),
                key: key.to_string(),
            }),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_queue_or_a_topic_and_key() {
        assert!(matches!(parse_target("queue:rpc"), Ok(Target::Queue(q)) if q == "rpc"));
        assert!(matches!(
            parse_target("topic:svc:a:b"),
            Ok(Target::Topic { name, key }) if name == "svc" && key == "a:b"
        ));
        assert!(parse_target("topic:svc").is_err());
        assert!(parse_target("rpc").is_err());
    }
}
