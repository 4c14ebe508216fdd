//! `wharf publish TOPIC KEY [BODY|-]`: one message onto a topic.
//!
//! The body and message options are those of `wharf send` (see `send.rs`). Prints one JSON
//! line: `{"id":...,"routed":N}`, where `routed` 0 means no binding, rule or alternate took it.

use super::{print_json_line, send::MessageArgs, topic_path, Client, ClientError};
use clap::Args;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Topic name.
    topic: String,
    /// Routing key (`orders.eu.created`, `sensors/kitchen/temp`).
    key: String,
    #[command(flatten)]
    message: MessageArgs,
}

pub fn run(args: PublishArgs, client: &Client) -> Result<(), ClientError> {
    let mut message = super::send::message(&args.message)?;
    message.insert("routing_key".into(), Value::from(args.key.as_str()));
    let reply = client.post(
        &topic_path(&args.topic, "/publish"),
        &json!({ "messages": [message] }),
    )?;
    for published in reply["messages"].as_array().into_iter().flatten() {
        print_json_line(published)?;
    }
    Ok(())
}
