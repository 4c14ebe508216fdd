//! `wharf token create|list|revoke`: tokens (`/v1/tokens`).
//!
//! `create` prints the server's answer as pretty JSON: `token` (the secret, shown this once
//! and never again), `id` (what `revoke` takes), `expires_at` (milliseconds since the Unix
//! epoch, or null) and the grants; a reminder to store the secret goes to stderr. `list`
//! prints one JSON line per token, without secrets; `revoke` prints nothing. A token's grants
//! must be held by its creator; an administrator may give any.

use super::{grant::grants_json, grant::GrantArg, percent_encode, print_json_line};
use super::{print_json_pretty, Client, ClientError};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (once).
    Create(CreateArgs),
    /// List the caller's tokens (every token, for an administrator); never their secrets.
    List,
    /// Revoke a token at once.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name to recognise the token by, e.g. `ci-deploy`.
    name: String,
    /// A grant, as ACTIONS@KIND:PATTERN (e.g. `read@queue:orders.*`); repeat for more.
    #[arg(long = "grant", value_name = "ACTIONS@RESOURCE")]
    grants: Vec<GrantArg>,
    /// Lifetime: a number with `s`, `m`, `h` or `d` (`3600s`, `12h`, `30d`); without it the
    /// token lasts until revoked.
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
    expires_in: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token's id (from `token create` or `token list`), not its secret.
    id: String,
}

pub fn run(command: TokenCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        TokenCommand::Create(args) => {
            let body = json!({
                "name": args.name,
                "grants": grants_json(&args.grants),
                "expires_in_s": args.expires_in.map(|lifetime| lifetime.as_secs()),
            });
            let created = client.post("/v1/tokens", &body)?;
            print_json_pretty(&created)?;
            eprintln!("store the token now: the server does not show it again");
            Ok(())
        }
        TokenCommand::List => {
            let reply = client.get("/v1/tokens")?;
            for token in reply["tokens"].as_array().into_iter().flatten() {
                print_json_line(&without_secret(token))?;
            }
            Ok(())
        }
        TokenCommand::Revoke(args) => client
            .delete(&format!("/v1/tokens/{}", percent_encode(&args.id)))
            .map(drop),
    }
}

/// A listed token as printed: the server never lists secrets, and neither do we if one did.
fn without_secret(token: &Value) -> Value {
    let mut token = token.clone();
    if let Some(object) = token.as_object_mut() {
        object.remove("token");
    }
    token
}

/// `30d`, `12h`, `15m`, `3600s` to a duration; a whole number of seconds.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a lifetime like 3600s, 15m, 12h or 30d");
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at_checked(split).ok_or_else(invalid)?;
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    match number.checked_mul(unit_seconds) {
        Some(0) => Err(format!("`{text}`: a token must live at least one second")),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(format!("`{text}` is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_take_a_unit() {
        assert_eq!(parse_lifetime("3600s"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_lifetime("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_lifetime("30d"), Ok(Duration::from_secs(2_592_000)));
        for bad in [
            "",
            "30",
            "d",
            "0s",
            "-1h",
            "1w",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
