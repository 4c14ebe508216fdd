//! `wharf subscribe TOPIC PATTERN [--syntax S] [--filter EXPR]`: a live subscription.
//!
//! Prints retained matches, then each matching message as it is published, one JSON line each
//! (the shape of a received queue message without lease fields), until interrupted or the
//! server ends the stream. Live delivery is at most once: nothing is kept for a subscriber that
//! is not connected; bind a queue for that.

use super::{percent_encode, topic_path, Client, ClientError};
use clap::{Args, ValueEnum};
use std::io::{self, BufRead, BufReader, Write};

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Topic name.
    topic: String,
    /// Routing-key pattern, in `--syntax`.
    pattern: String,
    /// Pattern syntax.
    #[arg(long, value_enum, default_value_t = Syntax::Amqp)]
    syntax: Syntax,
    /// Only messages passing this filter (see docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Syntax {
    Amqp,
    Mqtt,
    Nats,
}

pub fn run(args: SubscribeArgs, client: &Client) -> Result<(), ClientError> {
    let syntax = match args.syntax {
        Syntax::Amqp => "amqp",
        Syntax::Mqtt => "mqtt",
        Syntax::Nats => "nats",
    };
    let mut query = format!("?pattern={}&syntax={syntax}", percent_encode(&args.pattern));
    if let Some(filter) = &args.filter {
        query.push_str(&format!("&filter={}", percent_encode(filter)));
    }
    let stream = client.get_stream(&topic_path(&args.topic, &format!("/subscribe{query}")))?;
    print_events(BufReader::new(stream))
}

/// Prints the `data` of each event as a line; comments (keep-alives) and other fields are
/// skipped. Every message event carries one `data` line of compact JSON.
pub(super) fn print_events(reader: impl BufRead) -> Result<(), ClientError> {
    let mut stdout = io::stdout().lock();
    for line in reader.lines() {
        let line = line.map_err(ClientError::Stream)?;
        if let Some(data) = line.strip_prefix("data:") {
            writeln!(stdout, "{}", data.trim_start())
                .and_then(|()| stdout.flush())
                .map_err(ClientError::Stdout)?;
        }
    }
    Ok(())
}
