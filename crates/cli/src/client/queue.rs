//! `wharf queue create|list|stats|peek|purge|redrive|delete`: managing queues.
//!
//! Output: `create` and `stats` print the queue document (name, options, stats) as pretty JSON;
//! `list` prints a table; `peek` prints one JSON line per message; `purge` and `redrive` print
//! the count; `delete` prints nothing.

use super::{print_json_line, print_json_pretty, queue_path, Client, ClientError};
use crate::progress::Progress;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue, or change the given options of an existing one (the others stay).
    Create(CreateArgs),
    /// List every queue with its message and consumer counts.
    List,
    /// Show a queue's options and statistics.
    Stats(NameArgs),
    /// Print ready messages without receiving them (no lease, no delivery count).
    Peek(PeekArgs),
    /// Drop every ready message of a queue.
    Purge(NameArgs),
    /// Move the messages of a dead-letter queue back to the queues they came from.
    Redrive(RedriveArgs),
    /// Delete a queue and its messages.
    Delete(NameArgs),
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Queue name.
    name: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Queue name.
    name: String,
    /// How long a received message stays invisible before it is delivered again.
    #[arg(long, value_name = "MS")]
    lease_ms: Option<u64>,
    /// Deliveries after which a message is dead-lettered (or dropped without a dead-letter queue).
    #[arg(long, value_name = "N")]
    max_deliveries: Option<u32>,
    /// Queue that receives messages which exhausted their deliveries or were nacked as dead.
    #[arg(long, value_name = "QUEUE")]
    dead_letter_queue: Option<String>,
    /// Delay before a nacked or expired delivery is retried (doubles per attempt).
    #[arg(long, value_name = "MS")]
    retry_backoff_ms: Option<u64>,
    /// Upper bound of the retry delay.
    #[arg(long, value_name = "MS")]
    retry_backoff_max_ms: Option<u64>,
    /// Time after which an undelivered message expires.
    #[arg(long, value_name = "MS")]
    message_ttl_ms: Option<u64>,
    /// Most ready messages the queue holds.
    #[arg(long, value_name = "N")]
    max_length: Option<u64>,
    /// Delete the queue once it has been unused (no consumer, no receive) this long.
    #[arg(long, value_name = "MS")]
    expires_ms: Option<u64>,
    /// What a full queue does with a new message.
    #[arg(long, value_enum)]
    overflow: Option<Overflow>,
    /// How long a message id is remembered to drop duplicate sends.
    #[arg(long, value_name = "MS")]
    dedup_window_ms: Option<u64>,
    /// Keep messages in memory only: faster, lost on restart (queues are durable by default).
    #[arg(long)]
    transient: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Overflow {
    /// Refuse the send.
    Reject,
    /// Drop the oldest ready message to make room.
    DropOldest,
}

#[derive(Debug, Args)]
pub struct PeekArgs {
    /// Queue name.
    name: String,
    /// Most messages to show.
    #[arg(long, value_name = "N")]
    max: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Name of the dead-letter queue to empty.
    name: String,
    /// Most messages to move; all when absent.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
}

pub fn run(command: QueueCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        QueueCommand::Create(args) => {
            let queue = create(&args, client).map_err(|error| error.about_queue(&args.name))?;
            print_json_pretty(&queue)
        }
        QueueCommand::List => print_list(&client.get_all("/v1/queues", "queues")?),
        QueueCommand::Stats(args) => {
            let queue = client
                .get(&queue_path(&args.name, ""))
                .map_err(|error| error.about_queue(&args.name))?;
            print_json_pretty(&queue)
        }
        QueueCommand::Peek(args) => peek(&args, client),
        QueueCommand::Purge(args) => {
            let spinner = Progress::spinner(&format!("purging queue `{}`", args.name));
            let reply = client
                .post(&queue_path(&args.name, "/purge"), &json!({}))
                .map_err(|error| error.about_queue(&args.name))?;
            drop(spinner);
            println!("purged {}", count(&reply, "purged"));
            Ok(())
        }
        QueueCommand::Redrive(args) => {
            let mut body = Map::new();
            insert_some(&mut body, "max_messages", args.max);
            let spinner = Progress::spinner(&format!("redriving dead letters of `{}`", args.name));
            let reply = client
                .post(&queue_path(&args.name, "/redrive"), &Value::Object(body))
                .map_err(|error| error.about_queue(&args.name))?;
            drop(spinner);
            println!("redriven {}", count(&reply, "redriven"));
            let not_dead_letters = count(&reply, "skipped_not_dead_letter");
            let source_missing = count(&reply, "skipped_source_missing");
            if not_dead_letters + source_missing > 0 {
                println!(
                    "skipped {not_dead_letters} not dead letters, {source_missing} whose source queue is gone"
                );
            }
            Ok(())
        }
        QueueCommand::Delete(args) => {
            client
                .delete(&queue_path(&args.name, ""))
                .map_err(|error| error.about_queue(&args.name))?;
            Ok(())
        }
    }
}

/// Creates the queue with the options given, or changes only those on an existing one.
///
/// `PUT /v1/queues/{name}` replaces the whole option set (fields left out return to their
/// defaults), so on an existing queue the current options are read first and the flags laid
/// over them: `wharf queue create jobs --lease-ms 5000` must not drop the dead-letter queue
/// set earlier. There is no conditional PUT: a change made by someone else between the GET and
/// the PUT is overwritten (last writer wins, as with any PUT).
fn create(args: &CreateArgs, client: &Client) -> Result<Value, ClientError> {
    let path = queue_path(&args.name, "");
    let given = create_options(args);
    let options = match client.get(&path) {
        Ok(current) => merge_options(&current["options"], given),
        Err(ClientError::Problem { status: 404, .. }) => given,
        Err(error) => return Err(error),
    };
    client.put(&path, &Value::Object(options))
}

/// `given` laid over `current`. Null (unset) current options are left out: absent means the
/// same to the server, and the body stays as small as what a person would write.
fn merge_options(current: &Value, given: Map<String, Value>) -> Map<String, Value> {
    let mut merged: Map<String, Value> = current
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    merged.extend(given);
    merged
}

/// Only the options given on the command line.
fn create_options(args: &CreateArgs) -> Map<String, Value> {
    let mut options = Map::new();
    if args.transient {
        options.insert("durable".into(), Value::Bool(false));
    }
    insert_some(&mut options, "lease_ms", args.lease_ms);
    insert_some(&mut options, "max_deliveries", args.max_deliveries);
    insert_some(
        &mut options,
        "dead_letter_queue",
        args.dead_letter_queue.clone(),
    );
    insert_some(&mut options, "retry_backoff_ms", args.retry_backoff_ms);
    insert_some(
        &mut options,
        "retry_backoff_max_ms",
        args.retry_backoff_max_ms,
    );
    insert_some(&mut options, "message_ttl_ms", args.message_ttl_ms);
    insert_some(&mut options, "max_length", args.max_length);
    insert_some(&mut options, "expires_ms", args.expires_ms);
    let overflow = args.overflow.map(|overflow| match overflow {
        Overflow::Reject => "reject",
        Overflow::DropOldest => "drop_oldest",
    });
    insert_some(&mut options, "overflow", overflow);
    insert_some(&mut options, "dedup_window_ms", args.dedup_window_ms);
    options
}

fn peek(args: &PeekArgs, client: &Client) -> Result<(), ClientError> {
    let mut path = queue_path(&args.name, "/messages");
    if let Some(max) = args.max {
        path.push_str(&format!("?max={max}"));
    }
    let reply = client
        .get(&path)
        .map_err(|error| error.about_queue(&args.name))?;
    for message in reply["messages"].as_array().into_iter().flatten() {
        print_json_line(message)?;
    }
    Ok(())
}

fn print_list(reply: &Value) -> Result<(), ClientError> {
    let queues = reply["queues"].as_array().cloned().unwrap_or_default();
    let name_width = queues
        .iter()
        .filter_map(|queue| queue["name"].as_str())
        .map(str::len)
        .chain([4])
        .max()
        .unwrap_or(4);
    println!(
        "{:<name_width$}  {:>10}  {:>10}  {:>10}  {:>9}  {:>8}",
        "NAME", "READY", "DELAYED", "LEASED", "CONSUMERS", "DURABLE"
    );
    for queue in &queues {
        let stats = &queue["stats"];
        let durable = queue["options"]["durable"].as_bool().unwrap_or(true);
        println!(
            "{:<name_width$}  {:>10}  {:>10}  {:>10}  {:>9}  {:>8}",
            queue["name"].as_str().unwrap_or("?"),
            count(stats, "ready"),
            count(stats, "delayed"),
            count(stats, "leased"),
            count(stats, "consumers"),
            if durable { "yes" } else { "no" },
        );
    }
    Ok(())
}

fn count(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

fn insert_some<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        map.insert(key.to_string(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_options_override_and_the_rest_stay() {
        let current = json!({"durable": false, "lease_ms": 30000, "dead_letter_queue": "dead",
                             "max_length": null});
        let given = json!({"lease_ms": 5000})
            .as_object()
            .cloned()
            .expect("object");
        let merged = merge_options(&current, given);
        assert_eq!(
            Value::Object(merged),
            json!({"durable": false, "lease_ms": 5000, "dead_letter_queue": "dead"})
        );
    }
}
