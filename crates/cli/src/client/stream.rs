//! `wharf stream create|list|describe|delete`, `wharf produce` and `wharf consume`: streams from
//! the command line.
//!
//! Output: `create` and `describe` print the stream document as pretty JSON; `list` prints a
//! table; `produce` prints one JSON line per record (`{"partition":..,"offset":..}`);
//! `consume` prints one JSON line per record (the fetch shape plus `partition`).
//!
//! `consume --group G` is a member of consumer group G: it joins, reads its partitions from
//! the group's committed offsets (or `--from` where the group has none), commits after each
//! batch it printed, sends heartbeats, follows rebalances, and leaves when it stops. Without a
//! group it reads every partition (or `--partition`) from `--from` and commits nothing.

use super::{print_json_line, print_json_pretty, stream_path, Client, ClientError};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use std::{
    collections::BTreeMap,
    io::BufRead,
    time::{Duration, Instant},
};

/// Records `produce -` sends per request.
const PRODUCE_BATCH_RECORDS: usize = 500;
/// Records one fetch of `consume` asks for.
const CONSUME_FETCH_RECORDS: usize = 500;
/// How long `consume` long-polls when a pass over its partitions found nothing.
const CONSUME_WAIT_MS: u64 = 1_000;
/// How often a group member sends a heartbeat (its session timeout is 10 s by default).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream, or change an existing one's options (partitions only grow).
    Create(CreateArgs),
    /// List every stream with its size.
    List,
    /// Show a stream's options and each partition's offsets.
    Describe(NameArgs),
    /// Delete a stream with its records and its groups' offsets.
    Delete(NameArgs),
    /// Show a consumer group: members, committed offsets and lag.
    Group(GroupArgs),
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Stream name.
    name: String,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Stream name.
    name: String,
    /// Group name.
    group: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Stream name.
    name: String,
    /// Partitions (default 1; can grow, never shrink).
    #[arg(long)]
    partitions: Option<u32>,
    /// Delete records older than this many milliseconds (cleanup delete).
    #[arg(long, value_name = "MS")]
    retention_ms: Option<u64>,
    /// Keep at most this many bytes per partition (cleanup delete).
    #[arg(long, value_name = "BYTES")]
    retention_bytes: Option<u64>,
    /// `delete` (default) or `compact` (each key keeps its latest record).
    #[arg(long, value_enum)]
    cleanup: Option<Cleanup>,
    /// How batches are stored.
    #[arg(long, value_enum)]
    compression: Option<Compression>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Cleanup {
    Delete,
    Compact,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Compression {
    None,
    Lz4,
    Zstd,
}

/// `wharf produce STREAM [--key K] [VALUE|-]`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Stream name.
    stream: String,
    /// The value: JSON is stored as JSON, other text as its bytes. `-` (or nothing): each
    /// line of standard input is one record, sent in batches.
    value: Option<String>,
    /// The records' key (it picks the partition).
    #[arg(long)]
    key: Option<String>,
    /// Store in this partition instead of the key's.
    #[arg(long)]
    partition: Option<u32>,
    /// A header, as NAME=VALUE; repeat for more.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

/// `wharf consume STREAM [--group G] [--from earliest|latest|OFFSET]`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Stream name.
    stream: String,
    /// Read as a member of this consumer group, committing what was printed.
    #[arg(long)]
    group: Option<String>,
    /// Where to start: `earliest`, `latest` (default) or an offset. With a group, only where
    /// the group has no committed offset (`earliest` or `latest`).
    #[arg(long, default_value = "latest", value_parser = parse_from)]
    from: From,
    /// Read only this partition (without a group).
    #[arg(long, conflicts_with = "group")]
    partition: Option<u32>,
    /// Stop after printing this many records.
    #[arg(long, value_name = "N")]
    max_records: Option<u64>,
    /// Stop once every partition read is caught up, instead of waiting for more.
    #[arg(long)]
    exit_at_end: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Earliest,
    Latest,
    Offset(u64),
}

pub fn run(command: StreamCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        StreamCommand::Create(args) => {
            let stream = client.put(&stream_path(&args.name, ""), &definition(&args))?;
            print_json_pretty(&stream)
        }
        StreamCommand::List => print_list(&client.get_all("/v1/streams", "streams")?),
        StreamCommand::Describe(args) => {
            print_json_pretty(&client.get(&stream_path(&args.name, ""))?)
        }
        StreamCommand::Delete(args) => {
            client.delete(&stream_path(&args.name, ""))?;
            Ok(())
        }
        StreamCommand::Group(args) => {
            let tail = format!("/groups/{}", super::percent_encode(&args.group));
            print_json_pretty(&client.get(&stream_path(&args.name, &tail))?)
        }
    }
}

pub fn run_produce(args: ProduceArgs, client: &Client) -> Result<(), ClientError> {
    let path = stream_path(&args.stream, "/records");
    let send = |values: &[String]| -> Result<(), ClientError> {
        let records: Vec<Value> = values.iter().map(|value| record(&args, value)).collect();
        let reply = client.post(&path, &json!({ "records": records }))?;
        for produced in reply["records"].as_array().into_iter().flatten() {
            print_json_line(produced)?;
        }
        Ok(())
    };
    match args.value.as_deref() {
        Some(value) if value != "-" => send(&[value.to_string()]),
        _ => {
            let mut batch = Vec::with_capacity(PRODUCE_BATCH_RECORDS);
            for line in std::io::stdin().lock().lines() {
                batch.push(line.map_err(ClientError::Stdin)?);
                if batch.len() == PRODUCE_BATCH_RECORDS {
                    send(&batch)?;
                    batch.clear();
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            send(&batch)
        }
    }
}

pub fn run_consume(args: ConsumeArgs, client: &Client) -> Result<(), ClientError> {
    match args.group.clone() {
        Some(group) => consume_in_group(&args, &group, client),
        None => consume_alone(&args, client),
    }
}

/// One record of `produce`: JSON as `value`, other text as `value_base64`.
fn record(args: &ProduceArgs, value: &str) -> Value {
    let mut record = Map::new();
    match serde_json::from_str::<Value>(value) {
        Ok(document) if !document.is_null() => record.insert("value".into(), document),
        _ => record.insert(
            "value_base64".into(),
            super::send::base64_value(value.as_bytes()),
        ),
    };
    if let Some(key) = &args.key {
        record.insert("key".into(), Value::from(key.as_str()));
    }
    if let Some(partition) = args.partition {
        record.insert("partition".into(), Value::from(partition));
    }
    if !args.headers.is_empty() {
        let headers: Map<String, Value> = (args.headers.iter())
            .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
            .collect();
        record.insert("headers".into(), Value::Object(headers));
    }
    Value::Object(record)
}

/// Reads partitions without a group, from `--from`.
fn consume_alone(args: &ConsumeArgs, client: &Client) -> Result<(), ClientError> {
    let info = client.get(&stream_path(&args.stream, ""))?;
    let partitions: Vec<u32> = match args.partition {
        Some(partition) => vec![partition],
        None => (0..info["partitions"].as_u64().unwrap_or(1) as u32).collect(),
    };
    let mut positions = BTreeMap::new();
    for partition in partitions {
        let start = match args.from {
            From::Offset(offset) => offset,
            From::Earliest | From::Latest => {
                let at = if args.from == From::Earliest {
                    "earliest"
                } else {
                    "latest"
                };
                let tail = format!("/partitions/{partition}/offsets?at={at}");
                client.get(&stream_path(&args.stream, &tail))?["offset"]
                    .as_u64()
                    .unwrap_or(0)
            }
        };
        positions.insert(partition, start);
    }
    let mut reader = Reader {
        stream: &args.stream,
        client,
        printed: 0,
        max: args.max_records,
    };
    // Ends: every pass prints records or long-polls; --max-records and --exit-at-end stop it,
    // otherwise it runs until interrupted, as a tail does.
    loop {
        let (got, _) = reader.pass(&mut positions, args.exit_at_end)?;
        if reader.done() || (got == 0 && args.exit_at_end) {
            return Ok(());
        }
    }
}

/// Reads as a member of `group`: see the module doc.
fn consume_in_group(args: &ConsumeArgs, group: &str, client: &Client) -> Result<(), ClientError> {
    let group_path = stream_path(
        &args.stream,
        &format!("/groups/{}", super::percent_encode(group)),
    );
    let reset = if args.from == From::Earliest {
        "earliest"
    } else {
        "latest"
    };
    let joined = client.post(
        &format!("{group_path}/members"),
        &json!({ "auto_offset_reset": reset }),
    )?;
    let mut member = Member::from_reply(&joined);
    let mut reader = Reader {
        stream: &args.stream,
        client,
        printed: 0,
        max: args.max_records,
    };
    let mut last_heartbeat = Instant::now();
    let result = (|| loop {
        let (got, printed) = reader.pass(&mut member.positions, args.exit_at_end)?;
        if !printed.is_empty() {
            let offsets: Vec<Value> = (printed.iter())
                .map(|(partition, offset)| json!({ "partition": partition, "offset": offset }))
                .collect();
            let commit = json!({ "member_id": member.id, "generation": member.generation, "offsets": offsets });
            match client.post(&format!("{group_path}/commit"), &commit) {
                Ok(_) => {}
                // A rebalance: learn the new assignment; what was printed may be read again by
                // the partition's next owner (at least once).
                Err(ClientError::Problem {
                    code: Some(code), ..
                }) if code == "stale_generation" => {
                    last_heartbeat -= HEARTBEAT_INTERVAL;
                }
                Err(error) => return Err(error),
            }
        }
        if reader.done() || (got == 0 && args.exit_at_end) {
            return Ok(());
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            let path = format!(
                "{group_path}/members/{}/heartbeat",
                super::percent_encode(&member.id)
            );
            let reply = match client.post(
                &path,
                &json!({ "generation": member.generation, "auto_offset_reset": reset }),
            ) {
                Err(ClientError::Problem {
                    code: Some(code), ..
                }) if code == "unknown_member" => {
                    let body = json!({ "member_id": member.id, "auto_offset_reset": reset });
                    client.post(&format!("{group_path}/members"), &body)?
                }
                reply => reply?,
            };
            member.update(&reply);
            last_heartbeat = Instant::now();
        }
    })();
    let leave = format!("{group_path}/members/{}", super::percent_encode(&member.id));
    let left = client.delete(&leave);
    result.and(left.map(|_| ()))
}

/// A group member's id, generation and positions.
struct Member {
    id: String,
    generation: u64,
    positions: BTreeMap<u32, u64>,
}

impl Member {
    fn from_reply(reply: &Value) -> Member {
        let mut member = Member {
            id: reply["member_id"].as_str().unwrap_or_default().to_string(),
            generation: 0,
            positions: BTreeMap::new(),
        };
        member.update(reply);
        member
    }

    /// Takes a join or heartbeat reply: a new generation brings a new assignment and the
    /// positions to read it from; the same one keeps the positions read so far.
    fn update(&mut self, reply: &Value) {
        let generation = reply["generation"].as_u64().unwrap_or(0);
        if generation == self.generation && !self.positions.is_empty() {
            return;
        }
        self.generation = generation;
        self.positions = (reply["positions"].as_object().into_iter().flatten())
            .filter_map(|(partition, offset)| Some((partition.parse().ok()?, offset.as_u64()?)))
            .collect();
    }
}

struct Reader<'a> {
    stream: &'a str,
    client: &'a Client,
    printed: u64,
    max: Option<u64>,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.max.is_some_and(|max| self.printed >= max)
    }

    /// One fetch per partition from its position; long-polls the first partition when the
    /// others had nothing (unless `no_wait`). Returns the records printed and, per partition
    /// that advanced, its new position.
    fn pass(
        &mut self,
        positions: &mut BTreeMap<u32, u64>,
        no_wait: bool,
    ) -> Result<(u64, BTreeMap<u32, u64>), ClientError> {
        let mut got = 0;
        let mut advanced = BTreeMap::new();
        let partitions: Vec<u32> = positions.keys().copied().collect();
        for (turn, partition) in partitions.iter().enumerate() {
            let last = turn + 1 == partitions.len();
            let wait = if got == 0 && last && !no_wait {
                CONSUME_WAIT_MS
            } else {
                0
            };
            let offset = positions[partition];
            let remaining = self
                .max
                .map_or(CONSUME_FETCH_RECORDS as u64, |max| max - self.printed)
                .min(CONSUME_FETCH_RECORDS as u64);
            let tail = format!("/partitions/{partition}/records?offset={offset}&max_records={remaining}&wait_ms={wait}");
            let reply = self.client.get(&stream_path(self.stream, &tail))?;
            for record in reply["records"].as_array().into_iter().flatten() {
                let mut line = record.clone();
                line["partition"] = Value::from(*partition);
                print_json_line(&line)?;
                got += 1;
                self.printed += 1;
            }
            let next = reply["next_offset"].as_u64().unwrap_or(offset);
            if next != offset {
                positions.insert(*partition, next);
                advanced.insert(*partition, next);
            }
            if self.done() {
                break;
            }
        }
        Ok((got, advanced))
    }
}

fn definition(args: &CreateArgs) -> Value {
    let mut body = Map::new();
    if let Some(partitions) = args.partitions {
        body.insert("partitions".into(), Value::from(partitions));
    }
    if let Some(retention) = args.retention_ms {
        body.insert("retention_ms".into(), Value::from(retention));
    }
    if let Some(retention) = args.retention_bytes {
        body.insert("retention_bytes".into(), Value::from(retention));
    }
    if let Some(cleanup) = args.cleanup {
        let cleanup = match cleanup {
            Cleanup::Delete => "delete",
            Cleanup::Compact => "compact",
        };
        body.insert("cleanup".into(), Value::from(cleanup));
    }
    if let Some(compression) = args.compression {
        let compression = match compression {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        };
        body.insert("compression".into(), Value::from(compression));
    }
    Value::Object(body)
}

fn print_list(reply: &Value) -> Result<(), ClientError> {
    let streams = reply["streams"].as_array().cloned().unwrap_or_default();
    let name_width = (streams.iter())
        .filter_map(|stream| stream["name"].as_str())
        .map(str::len)
        .chain([4])
        .max()
        .unwrap_or(4);
    println!(
        "{:<name_width$}  {:>10}  {:>8}  {:>12}  {:>14}  {:>6}",
        "NAME", "PARTITIONS", "CLEANUP", "RECORDS", "BYTES", "GROUPS"
    );
    for stream in &streams {
        let stats = &stream["stats"];
        let count = |key: &str| stats[key].as_u64().unwrap_or(0);
        println!(
            "{:<name_width$}  {:>10}  {:>8}  {:>12}  {:>14}  {:>6}",
            stream["name"].as_str().unwrap_or("?"),
            stream["partitions"].as_u64().unwrap_or(0),
            stream["cleanup"].as_str().unwrap_or("?"),
            count("records"),
            count("bytes"),
            count("groups"),
        );
    }
    Ok(())
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

fn parse_from(text: &str) -> Result<From, String> {
    match text {
        "earliest" => Ok(From::Earliest),
        "latest" => Ok(From::Latest),
        offset => offset
            .parse()
            .map(From::Offset)
            .map_err(|_| format!("expected earliest, latest or an offset, got {text:?}")),
    }
}
