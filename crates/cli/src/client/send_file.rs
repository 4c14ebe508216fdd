//! `wharf send QUEUE --file PATH`: every line of a file (or of standard input, `-`) as one
//! message, sent in batches.
//!
//! A line is a body as `wharf send`'s BODY is (JSON as JSON, other text as its bytes; a line
//! that is not UTF-8 as its bytes, `application/octet-stream`); blank lines are skipped and a
//! line's `\n` or `\r\n` is not part of it. The send options apply to every message (`--id`
//! cannot: every message would be a duplicate of the first). The file is read as it is sent,
//! a batch at a time, so its size does not matter.
//!
//! Each batch is stored whole or not at all. On a failure the command stops, says which lines
//! were not sent and how many messages before them were, and exits 1: sending the file again
//! from that line sends each message once.
//!
//! Prints `sent N messages (D duplicates)`; a progress bar on a terminal's stderr while it runs.

use super::{queue_path, send, send::MessageArgs, Client, ClientError};
use crate::progress::Progress;
use serde_json::{json, Map, Value};
use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
};

/// Messages in one batch: the server's default `limits.batch_messages_max`.
const BATCH_MESSAGES_MAX: usize = 1_000;
/// Body bytes in one batch: the server's default `limits.batch_bytes_max`. As base64 inside
/// JSON that is about 10.7 MiB, under the server's 12 MiB request limit.
const BATCH_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Sends every line of `path` to `queue`.
pub fn run(
    queue: &str,
    path: &Path,
    args: &MessageArgs,
    client: &Client,
) -> Result<(), ClientError> {
    let (mut input, progress, label) = open(path)?;
    let mut batch = Batch::default();
    let mut totals = Totals::default();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|source| ClientError::FileRead {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            break;
        }
        number += 1;
        progress.add(read as u64);
        let body = trim_line_end(&line);
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if body.len() > BATCH_BODY_BYTES_MAX {
            return Err(ClientError::LineTooLong {
                line: number,
                bytes: body.len(),
                max: BATCH_BODY_BYTES_MAX,
                sent: totals.sent,
            });
        }
        if !batch.has_room(body.len()) {
            batch.send(queue, client, &mut totals)?;
            progress.label(format!("{label}: {} sent", totals.sent));
        }
        batch.push(number, message(body, args), body.len());
    }
    batch.send(queue, client, &mut totals)?;
    drop(progress);
    println!(
        "sent {} messages ({} duplicates)",
        totals.sent, totals.duplicates
    );
    Ok(())
}

/// The input, and a bar over its bytes when its size is known (a spinner for a pipe), with
/// its label.
fn open(path: &Path) -> Result<(Box<dyn BufRead>, Progress, String), ClientError> {
    if path == Path::new("-") {
        let label = "sending standard input".to_string();
        let progress = Progress::spinner(&label);
        return Ok((Box::new(std::io::stdin().lock()), progress, label));
    }
    let file = File::open(path).map_err(|source| ClientError::FileRead {
        path: path.to_path_buf(),
        source,
    })?;
    let size = file
        .metadata()
        .ok()
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len());
    let label = format!("sending {}", path.display());
    let progress = match size {
        Some(size) => Progress::bytes_bar(&label, size),
        None => Progress::spinner(&label),
    };
    Ok((Box::new(BufReader::new(file)), progress, label))
}

/// Counts over the batches sent so far.
#[derive(Default)]
struct Totals {
    sent: u64,
    duplicates: u64,
}

/// The messages of the next request and the file lines they came from.
#[derive(Default)]
struct Batch {
    messages: Vec<Value>,
    body_bytes: usize,
    first_line: usize,
    last_line: usize,
}

impl Batch {
    fn has_room(&self, body_bytes: usize) -> bool {
        self.messages.len() < BATCH_MESSAGES_MAX
            && self.body_bytes + body_bytes <= BATCH_BODY_BYTES_MAX
    }

    fn push(&mut self, line: usize, message: Value, body_bytes: usize) {
        if self.messages.is_empty() {
            self.first_line = line;
        }
        self.last_line = line;
        self.messages.push(message);
        self.body_bytes += body_bytes;
    }

    /// Sends the batch (if any) and empties it.
    fn send(
        &mut self,
        queue: &str,
        client: &Client,
        totals: &mut Totals,
    ) -> Result<(), ClientError> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let messages = std::mem::take(&mut self.messages);
        let count = messages.len() as u64;
        let reply = client
            .post(
                &queue_path(queue, "/messages"),
                &json!({ "messages": messages }),
            )
            .map_err(|error| ClientError::BatchRefused {
                first_line: self.first_line,
                last_line: self.last_line,
                sent: totals.sent,
                source: Box::new(error.about_queue(queue)),
            })?;
        let duplicates = reply["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|sent| sent["duplicate"] == true)
            .count() as u64;
        totals.sent += count;
        totals.duplicates += duplicates;
        self.body_bytes = 0;
        Ok(())
    }
}

/// One line as a message: the body as BODY would be taken, the fields of the options.
fn message(line: &[u8], args: &MessageArgs) -> Value {
    let mut message = Map::new();
    let content_type = match std::str::from_utf8(line) {
        Ok(text) => send::insert_text_body(&mut message, text, args),
        Err(_) => {
            message.insert("body_base64".into(), send::base64_value(line));
            Some("application/octet-stream")
        }
    };
    send::insert_fields(&mut message, args, content_type);
    Value::Object(message)
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_not_part_of_the_body() {
        assert_eq!(trim_line_end(b"a\r\n"), b"a");
        assert_eq!(trim_line_end(b"a\n"), b"a");
        assert_eq!(trim_line_end(b"a"), b"a");
        assert_eq!(trim_line_end(b"a\r"), b"a");
    }

    #[test]
    fn a_batch_is_cut_at_the_message_and_byte_limits() {
        let mut batch = Batch::default();
        for line in 0..BATCH_MESSAGES_MAX {
            assert!(batch.has_room(1));
            batch.push(line + 1, Value::Null, 1);
        }
        assert!(!batch.has_room(1));
        let mut batch = Batch::default();
        batch.push(1, Value::Null, BATCH_BODY_BYTES_MAX - 1);
        assert!(batch.has_room(1));
        assert!(!batch.has_room(2));
    }
}
