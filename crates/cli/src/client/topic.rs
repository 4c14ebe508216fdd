//! `wharf topic create|list|stats|bindings|unbind|delete` and `wharf bind`: managing topics
//! and their bindings.
//!
//! Output: `create` and `stats` print the topic document as pretty JSON; `list` prints a table;
//! `bindings` prints one JSON line per binding; `bind` prints the new binding as a JSON line;
//! `unbind` and `delete` print nothing.
//!
//! A destination on the command line is `queue:NAME` or `topic:NAME` (`stream:NAME` is refused
//! by the server until streams exist).

use super::{print_json_line, print_json_pretty, topic_path, Client, ClientError};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic, or replace the definition of an existing one.
    Create(CreateArgs),
    /// List every topic with its counters.
    List,
    /// Show a topic's definition and statistics.
    Stats(NameArgs),
    /// Print a topic's bindings, one JSON line each.
    Bindings(NameArgs),
    /// Remove one binding by id.
    Unbind(UnbindArgs),
    /// Delete a topic with its bindings and retained messages (its queues stay).
    Delete(NameArgs),
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Topic name.
    name: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    name: String,
    /// How bindings match.
    #[arg(long, value_enum, default_value_t = Kind::Topic)]
    kind: Kind,
    /// Keep the last message per routing key for new bindings and subscriptions.
    #[arg(long)]
    retain: bool,
    /// Where messages that match nothing go: `queue:NAME` or `topic:NAME`.
    #[arg(long, value_name = "DEST", value_parser = parse_destination)]
    alternate: Option<(String, String)>,
    /// A routing rule `DEST=FILTER` (`queue:vip=headers.tier == 'gold'`); repeat for more,
    /// in order.
    #[arg(long = "rule", value_name = "DEST=FILTER", value_parser = parse_rule)]
    rules: Vec<((String, String), String)>,
    /// Route by the first matching rule only (default: every matching rule).
    #[arg(long)]
    first_rule_only: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// Patterns with wildcards.
    Topic,
    /// The pattern must equal the routing key.
    Direct,
    /// Every binding gets every message.
    Fanout,
    /// Bindings match header values.
    Headers,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Syntax {
    /// `.` between words, `*` one word, `#` any number.
    Amqp,
    /// `/` between levels, `+` one level, `#` the rest.
    Mqtt,
    /// `.` between tokens, `*` one token, `>` the rest.
    Nats,
}

#[derive(Debug, Args)]
pub struct UnbindArgs {
    /// Topic name.
    name: String,
    /// Binding id, as `bind` or `topic bindings` printed it.
    id: String,
}

/// `wharf bind TOPIC PATTERN --queue Q`: one binding.
#[derive(Debug, Args)]
pub struct BindArgs {
    /// Topic name.
    topic: String,
    /// Routing-key pattern (`orders.*.created`); the exact key for direct topics; any word for
    /// fanout and headers topics.
    pattern: String,
    /// Destination queue.
    #[arg(
        long,
        value_name = "QUEUE",
        conflicts_with = "to_topic",
        required_unless_present = "to_topic"
    )]
    queue: Option<String>,
    /// Destination topic.
    #[arg(long = "topic", id = "to_topic", value_name = "TOPIC")]
    to_topic: Option<String>,
    /// Pattern syntax.
    #[arg(long, value_enum, default_value_t = Syntax::Amqp)]
    syntax: Syntax,
    /// Only messages passing this filter (see docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// For headers topics: a required header, as NAME=VALUE; repeat for more.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_pair)]
    headers: Vec<(String, String)>,
    /// For headers topics: one matching header is enough (default: all must match).
    #[arg(long)]
    any_header: bool,
}

pub fn run(command: TopicCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        TopicCommand::Create(args) => {
            let topic = client.put(&topic_path(&args.name, ""), &definition(&args))?;
            print_json_pretty(&topic)
        }
        TopicCommand::List => print_list(&client.get_all("/v1/topics", "topics")?),
        TopicCommand::Stats(args) => print_json_pretty(&client.get(&topic_path(&args.name, ""))?),
        TopicCommand::Bindings(args) => {
            let reply = client.get(&topic_path(&args.name, "/bindings"))?;
            for binding in reply["bindings"].as_array().into_iter().flatten() {
                print_json_line(binding)?;
            }
            Ok(())
        }
        TopicCommand::Unbind(args) => {
            let tail = format!("/bindings/{}", super::percent_encode(&args.id));
            client.delete(&topic_path(&args.name, &tail))?;
            Ok(())
        }
        TopicCommand::Delete(args) => {
            client.delete(&topic_path(&args.name, ""))?;
            Ok(())
        }
    }
}

pub fn run_bind(args: BindArgs, client: &Client) -> Result<(), ClientError> {
    let mut binding = Map::new();
    binding.insert("pattern".into(), Value::from(args.pattern.as_str()));
    binding.insert("syntax".into(), Value::from(syntax_name(args.syntax)));
    if let Some(filter) = &args.filter {
        binding.insert("filter".into(), Value::from(filter.as_str()));
    }
    if !args.headers.is_empty() {
        let values: Map<String, Value> = args
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
            .collect();
        let mode = if args.any_header { "any" } else { "all" };
        binding.insert("headers".into(), json!({"match": mode, "values": values}));
    }
    match (&args.queue, &args.to_topic) {
        (Some(queue), _) => binding.insert("queue".into(), Value::from(queue.as_str())),
        (None, Some(topic)) => binding.insert("topic".into(), Value::from(topic.as_str())),
        (None, None) => None,
    };
    let reply = client.post(
        &topic_path(&args.topic, "/bindings"),
        &Value::Object(binding),
    )?;
    print_json_line(&reply)
}

fn definition(args: &CreateArgs) -> Value {
    let kind = match args.kind {
        Kind::Topic => "topic",
        Kind::Direct => "direct",
        Kind::Fanout => "fanout",
        Kind::Headers => "headers",
    };
    let rules: Vec<Value> = args
        .rules
        .iter()
        .map(|((kind, name), filter)| json!({ "filter": filter, kind.as_str(): name }))
        .collect();
    let alternate = args
        .alternate
        .as_ref()
        .map(|(kind, name)| json!({ kind.as_str(): name }));
    json!({
        "kind": kind,
        "retain": args.retain,
        "alternate": alternate,
        "rules_mode": if args.first_rule_only { "first" } else { "all" },
        "rules": rules,
    })
}

fn print_list(reply: &Value) -> Result<(), ClientError> {
    let topics = reply["topics"].as_array().cloned().unwrap_or_default();
    let name_width = topics
        .iter()
        .filter_map(|topic| topic["name"].as_str())
        .map(str::len)
        .chain([4])
        .max()
        .unwrap_or(4);
    println!(
        "{:<name_width$}  {:<7}  {:>10}  {:>10}  {:>10}  {:>8}",
        "NAME", "KIND", "PUBLISHED", "ROUTED", "UNROUTABLE", "BINDINGS"
    );
    for topic in &topics {
        let stats = &topic["stats"];
        let count = |key: &str| stats[key].as_u64().unwrap_or(0);
        println!(
            "{:<name_width$}  {:<7}  {:>10}  {:>10}  {:>10}  {:>8}",
            topic["name"].as_str().unwrap_or("?"),
            topic["kind"].as_str().unwrap_or("?"),
            count("published"),
            count("routed"),
            count("unroutable"),
            count("bindings"),
        );
    }
    Ok(())
}

fn syntax_name(syntax: Syntax) -> &'static str {
    match syntax {
        Syntax::Amqp => "amqp",
        Syntax::Mqtt => "mqtt",
        Syntax::Nats => "nats",
    }
}

/// `queue:NAME`, `topic:NAME` or `stream:NAME` as (kind, name).
fn parse_destination(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((kind @ ("queue" | "topic" | "stream"), name)) if !name.is_empty() => {
            Ok((kind.to_string(), name.to_string()))
        }
        _ => Err(format!("`{text}` is not queue:NAME or topic:NAME")),
    }
}

fn parse_rule(text: &str) -> Result<((String, String), String), String> {
    let (destination, filter) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not DEST=FILTER"))?;
    Ok((parse_destination(destination)?, filter.to_string()))
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_split_at_the_first_equals_sign() {
        let rule = parse_rule("queue:vip=headers.tier == 'gold'").expect("rule");
        assert_eq!(rule.0, ("queue".to_string(), "vip".to_string()));
        assert_eq!(rule.1, "headers.tier == 'gold'");
        assert!(parse_rule("vip=a == 1").is_err());
        assert!(parse_destination("queue:").is_err());
    }
}
