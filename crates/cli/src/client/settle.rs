//! `wharf ack|nack|lease QUEUE [RECEIPT...]`: settle or extend the leases `wharf receive`
//! printed, for scripts that process messages themselves:
//!
//! ```text
//! wharf receive jobs --max 10 | jq -r .receipt | wharf ack jobs
//! ```
//!
//! Receipts come from the arguments or, when there are none, from standard input, one per
//! line. Output: the server's per-receipt results, one JSON line each (`receipt`, `ok`, and
//! `error` and `code` when it failed). A receipt that fails does not stop the others; the
//! command then exits 1 with an error naming each failed receipt and why.

use super::{print_json_line, queue_path, Client, ClientError};
use clap::Args;
use serde_json::{json, Value};
use std::{
    fmt,
    io::{self, BufRead, IsTerminal},
};

/// Receipts per request. Stdin may carry any number; a few hundred KiB of receipts per request
/// stays far below the server's request body limit and still makes a long list quick.
const RECEIPTS_PER_REQUEST_MAX: usize = 1_000;

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// Queue name.
    queue: String,
    /// Receipts printed by `wharf receive`; read from standard input, one per line, when none
    /// are given.
    #[arg(value_name = "RECEIPT")]
    receipts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    #[command(flatten)]
    target: ReceiptArgs,
}

#[derive(Debug, Args)]
pub struct NackArgs {
    #[command(flatten)]
    target: ReceiptArgs,
    /// Make the messages ready again after this long instead of after the queue's retry backoff.
    #[arg(long, value_name = "MS")]
    delay_ms: Option<u64>,
    /// Send the messages straight to the queue's dead-letter queue, without a retry.
    #[arg(long, conflicts_with = "delay_ms")]
    dead_letter: bool,
    /// Why processing failed; kept as the messages' last error, shown once dead-lettered.
    #[arg(long, value_name = "TEXT")]
    error: Option<String>,
}

#[derive(Debug, Args)]
pub struct LeaseArgs {
    #[command(flatten)]
    target: ReceiptArgs,
    /// New lease length, counted from now.
    #[arg(long, value_name = "MS")]
    lease_ms: u64,
}

/// One receipt the server did not settle or extend.
#[derive(Debug)]
pub struct ReceiptFailure {
    pub receipt: String,
    /// The server's reason for a person.
    pub reason: String,
    /// The server's reason for a program (`stale_receipt`, `lease_expired`, ...).
    pub code: Option<String>,
}

impl fmt::Display for ReceiptFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.receipt, self.reason)?;
        match &self.code {
            Some(code) => write!(formatter, " ({code})"),
            None => Ok(()),
        }
    }
}

pub fn run_ack(args: AckArgs, client: &Client) -> Result<(), ClientError> {
    settle(args.target, "ack", json!({}), client)
}

pub fn run_nack(args: NackArgs, client: &Client) -> Result<(), ClientError> {
    let mut body = json!({ "dead_letter": args.dead_letter });
    if let Some(delay_ms) = args.delay_ms {
        body["delay_ms"] = delay_ms.into();
    }
    if let Some(error) = args.error {
        body["error"] = error.into();
    }
    settle(args.target, "nack", body, client)
}

pub fn run_lease(args: LeaseArgs, client: &Client) -> Result<(), ClientError> {
    settle(
        args.target,
        "lease",
        json!({ "lease_ms": args.lease_ms }),
        client,
    )
}

/// Posts the receipts to `/v1/queues/{queue}/{action}` with the rest of `body`, in requests of
/// at most [`RECEIPTS_PER_REQUEST_MAX`], printing each result as it comes.
fn settle(
    target: ReceiptArgs,
    action: &'static str,
    mut body: Value,
    client: &Client,
) -> Result<(), ClientError> {
    let receipts = if !target.receipts.is_empty() {
        target.receipts
    } else {
        // A terminal is not read: waiting on one would look like a hang.
        let stdin = io::stdin().lock();
        match stdin.is_terminal() {
            true => Vec::new(),
            false => read_receipts(stdin)?,
        }
    };
    if receipts.is_empty() {
        return Err(ClientError::NoReceipts);
    }
    let path = queue_path(&target.queue, &format!("/{action}"));
    let mut failures = Vec::new();
    for chunk in receipts.chunks(RECEIPTS_PER_REQUEST_MAX) {
        body["receipts"] = json!(chunk);
        let reply = client
            .post(&path, &body)
            .map_err(|error| error.about_queue(&target.queue))?;
        for result in reply["results"].as_array().into_iter().flatten() {
            print_json_line(result)?;
            if result["ok"].as_bool() != Some(true) {
                failures.push(settle_failure(result));
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(ClientError::ReceiptsRefused {
        queue: target.queue,
        action,
        total: receipts.len(),
        failures,
    })
}

/// Non-empty lines, trimmed: a receipt has no spaces, and files may end lines with `\r\n`.
fn read_receipts(input: impl BufRead) -> Result<Vec<String>, ClientError> {
    let mut receipts = Vec::new();
    for line in input.lines() {
        let line = line.map_err(ClientError::ReceiptsInput)?;
        let receipt = line.trim();
        if !receipt.is_empty() {
            receipts.push(receipt.to_string());
        }
    }
    Ok(receipts)
}

fn settle_failure(result: &Value) -> ReceiptFailure {
    let text = |key: &str| result[key].as_str().map(str::to_string);
    ReceiptFailure {
        receipt: text("receipt").unwrap_or_else(|| "?".to_string()),
        reason: text("error").unwrap_or_else(|| "refused".to_string()),
        code: text("code"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_the_non_empty_trimmed_lines() {
        let input: &[u8] = b"r1\n\n  r2 \r\nr3";
        let receipts = read_receipts(input).expect("read");
        assert_eq!(receipts, ["r1", "r2", "r3"]);
    }

    #[test]
    fn a_failure_names_the_receipt_the_reason_and_the_code() {
        let result =
            json!({"receipt": "r1", "ok": false, "error": "stale", "code": "stale_receipt"});
        assert_eq!(
            settle_failure(&result).to_string(),
            "r1: stale (stale_receipt)"
        );
    }
}
