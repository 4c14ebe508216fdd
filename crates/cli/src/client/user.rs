//! `wharf user add|list|delete|passwd`: users of the server (`/v1/users`).
//!
//! The new password comes from standard input (`--password-stdin`, one line; its newline is
//! dropped) or from `--new-password`; never a prompt, so scripts and tests drive it. The flag
//! is not `--password` because that global flag is the caller's own password. Output: `add`
//! prints the user (name, grants, created_at; never a password) as pretty JSON, `list` one
//! JSON line per user, `delete` and `passwd` nothing. Only administrators may do all of this,
//! except that a user may change its own password.

use super::{grant::grants_json, ClientError};
use super::{grant::GrantArg, percent_encode, print_json_line, print_json_pretty, Client};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::io::Read;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace an existing user's password and grants.
    Add(AddArgs),
    /// List every user with its grants.
    List,
    /// Delete a user and every token it owns.
    Delete(NameArgs),
    /// Change a user's password (an administrator's, or the caller's own).
    Passwd(PasswdArgs),
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// User name.
    name: String,
}

/// Where the new password comes from: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct NewPassword {
    /// Read the new password from standard input (one line).
    #[arg(long)]
    password_stdin: bool,
    /// The new password. Prefer --password-stdin: flags show in process lists.
    #[arg(long, value_name = "PASSWORD")]
    new_password: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// User name.
    name: String,
    #[command(flatten)]
    password: NewPassword,
    /// A grant, as ACTIONS@KIND:PATTERN (e.g. `read,write@queue:orders.*`); repeat for more.
    #[arg(long = "grant", value_name = "ACTIONS@RESOURCE")]
    grants: Vec<GrantArg>,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// User name.
    name: String,
    #[command(flatten)]
    password: NewPassword,
}

pub fn run(command: UserCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        UserCommand::Add(args) => {
            let body = json!({
                "password": new_password(args.password)?,
                "grants": grants_json(&args.grants),
            });
            print_json_pretty(&client.put(&user_path(&args.name), &body)?)
        }
        UserCommand::List => {
            let reply = client.get("/v1/users")?;
            for user in reply["users"].as_array().into_iter().flatten() {
                print_json_line(user)?;
            }
            Ok(())
        }
        UserCommand::Delete(args) => client.delete(&user_path(&args.name)).map(drop),
        UserCommand::Passwd(args) => {
            // Only the password: the server keeps the grants, and a user may send this for
            // itself without being an administrator.
            let mut body = Map::new();
            body.insert("password".into(), new_password(args.password)?.into());
            client
                .put(&user_path(&args.name), &Value::Object(body))
                .map(drop)
        }
    }
}

fn user_path(name: &str) -> String {
    format!("/v1/users/{}", percent_encode(name))
}

fn new_password(source: NewPassword) -> Result<String, ClientError> {
    match source.new_password {
        Some(password) => Ok(password),
        None => read_password_line(std::io::stdin().lock()),
    }
}

/// The first line of `input`, without its line ending.
fn read_password_line(mut input: impl Read) -> Result<String, ClientError> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(ClientError::Stdin)?;
    let line = text.lines().next().unwrap_or("");
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_from_stdin_loses_its_line_ending_only() {
        let read = |input: &str| read_password_line(input.as_bytes()).expect("reads");
        assert_eq!(read("s3cret pass\n"), "s3cret pass");
        assert_eq!(read("s3cret\r\n"), "s3cret");
        assert_eq!(read("s3cret"), "s3cret");
    }
}
