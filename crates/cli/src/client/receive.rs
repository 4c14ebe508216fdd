//! `wharf receive QUEUE`: lease messages and print them, one JSON line each, exactly as the
//! server returns them (`id`, `body` or `body_base64`, `receipt`, `delivery_count`, ...).
//!
//! Without `--ack` the messages stay leased until their lease ends and then come back, so a
//! script can ack or nack the printed receipts itself. With `--ack` they are acked after all of
//! them were printed and flushed: a crash in between redelivers rather than loses them.

use super::{print_json_line, queue_path, Client, ClientError};
use clap::Args;
use serde_json::{json, Map, Value};

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Queue name.
    queue: String,
    /// Most messages to receive.
    #[arg(long, default_value_t = 1, value_name = "N")]
    max: u32,
    /// Seconds to wait for a first message when none is ready (long polling).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    wait: f64,
    /// Lease length for these messages instead of the queue's default.
    #[arg(long, value_name = "MS")]
    lease_ms: Option<u64>,
    /// Acknowledge the printed messages, so they are not delivered again.
    #[arg(long)]
    ack: bool,
}

pub fn run(args: ReceiveArgs, client: &Client) -> Result<(), ClientError> {
    let mut request = Map::new();
    request.insert("max_messages".into(), args.max.into());
    let wait_ms = (args.wait.max(0.0) * 1000.0).round() as u64;
    request.insert("wait_ms".into(), wait_ms.into());
    if let Some(lease_ms) = args.lease_ms {
        request.insert("lease_ms".into(), lease_ms.into());
    }
    let reply = client
        .post(
            &queue_path(&args.queue, "/receive"),
            &Value::Object(request),
        )
        .map_err(|error| error.about_queue(&args.queue))?;
    let messages = reply["messages"].as_array().cloned().unwrap_or_default();
    let mut receipts = Vec::with_capacity(messages.len());
    for message in &messages {
        print_json_line(message)?;
        if let Some(receipt) = message.get("receipt") {
            receipts.push(receipt.clone());
        }
    }
    if args.ack && !receipts.is_empty() {
        ack(&args.queue, receipts, client)?;
    }
    Ok(())
}

fn ack(queue: &str, receipts: Vec<Value>, client: &Client) -> Result<(), ClientError> {
    let reply = client
        .post(&queue_path(queue, "/ack"), &json!({ "receipts": receipts }))
        .map_err(|error| error.about_queue(queue))?;
    let failed: Vec<String> = reply["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|result| result["ok"].as_bool() != Some(true))
        .map(|result| {
            let error = result["error"].as_str().unwrap_or("refused");
            format!("{}: {error}", result["receipt"])
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(ClientError::Problem {
        status: 200,
        detail: format!(
            "queue `{queue}`: {} of the printed messages were not acked ({})",
            failed.len(),
            failed.join("; ")
        ),
        field: None,
        code: None,
    })
}
