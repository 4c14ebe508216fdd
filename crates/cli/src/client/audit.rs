//! `wharf audit [--after N] [--limit N]`: the server's audit log (`GET /v1/audit`), one JSON
//! line per entry (`offset`, `at`, `who`, `from`, `operation`, `resource`, `outcome`).
//!
//! Paging is the caller's: pass the last printed `offset` as `--after` for the next page. The
//! server bounds `--limit` (1 to 1,000) and names the field when it is out of range.

use super::{print_json_line, Client, ClientError};
use clap::Args;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Entries after this offset (the `offset` of the last entry already read).
    #[arg(long, value_name = "N")]
    after: Option<u64>,
    /// Most entries to print (the server's default is 100).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

pub fn run(args: &AuditArgs, client: &Client) -> Result<(), ClientError> {
    let reply = client.get(&audit_path(args))?;
    for entry in reply["entries"].as_array().into_iter().flatten() {
        print_json_line(entry)?;
    }
    Ok(())
}

fn audit_path(args: &AuditArgs) -> String {
    let mut query = Vec::new();
    if let Some(after) = args.after {
        query.push(format!("after={after}"));
    }
    if let Some(limit) = args.limit {
        query.push(format!("limit={limit}"));
    }
    match query.is_empty() {
        true => "/v1/audit".to_string(),
        false => format!("/v1/audit?{}", query.join("&")),
    }
}
