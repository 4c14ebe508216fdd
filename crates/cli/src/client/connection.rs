//! `wharf connection list|get|close`: the client connections of the server's doors (AMQP)
//! (`/v1/connections`).
//!
//! Output: `list` prints a table (ID, DOOR, PEER, USER, CHANNELS, CONSUMERS, CLIENT), or one
//! JSON line per connection with `--json`; `get` prints the connection with its channels and
//! consumers as pretty JSON; `close` prints nothing. Administrators see every connection,
//! others their own; only administrators close one.

use super::{print_json_line, print_json_pretty, Client, ClientError};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// List open connections with their channels and consumers.
    List(ListArgs),
    /// Show one connection, its channels and their consumers.
    Get(IdArgs),
    /// Close a connection (AMQP: 320 CONNECTION_FORCED); its unsettled deliveries go back to
    /// their queues.
    Close(IdArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only connections of this door.
    #[arg(long, value_enum)]
    door: Option<Door>,
    /// One JSON line per connection instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Door {
    Amqp,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Connection id (the ID column of `wharf connection list`).
    id: u64,
}

pub fn run(command: ConnectionCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        ConnectionCommand::List(args) => {
            let connections = list_all(&args, client)?;
            if args.json {
                return connections.iter().try_for_each(print_json_line);
            }
            print_table(&connections);
            Ok(())
        }
        ConnectionCommand::Get(args) => {
            print_json_pretty(&client.get(&format!("/v1/connections/{}", args.id))?)
        }
        ConnectionCommand::Close(args) => client
            .delete(&format!("/v1/connections/{}", args.id))
            .map(drop),
    }
}

/// Every page of `GET /v1/connections`, one after another.
fn list_all(args: &ListArgs, client: &Client) -> Result<Vec<Value>, ClientError> {
    let door = args.door.map(|door| match door {
        Door::Amqp => "amqp",
    });
    let mut connections = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut query = Vec::new();
        query.extend(door.map(|door| format!("door={door}")));
        query.extend(after.map(|after| format!("after={after}")));
        let path = match query.is_empty() {
            true => "/v1/connections".to_string(),
            false => format!("/v1/connections?{}", query.join("&")),
        };
        let page = client.get(&path)?;
        connections.extend(page["connections"].as_array().cloned().unwrap_or_default());
        // Ids only grow from page to page, so the walk ends.
        match page["next"].as_u64() {
            Some(next) if after.is_none_or(|after| next > after) => after = Some(next),
            _ => return Ok(connections),
        }
    }
}

fn print_table(connections: &[Value]) {
    let rows: Vec<[String; 7]> = connections.iter().map(row).collect();
    let headers = [
        "ID",
        "DOOR",
        "PEER",
        "USER",
        "CHANNELS",
        "CONSUMERS",
        "CLIENT",
    ];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 7]| {
        let [id, door, peer, user, channels, consumers, client] = cells;
        let [w0, w1, w2, w3, w4, w5, _] = widths;
        println!(
            "{id:<w0$}  {door:<w1$}  {peer:<w2$}  {user:<w3$}  {channels:>w4$}  {consumers:>w5$}  {client}"
        );
    };
    line(headers);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
}

/// A connection's cells: the client is its product and version, and its connection name.
fn row(connection: &Value) -> [String; 7] {
    let text = |value: &Value| value.as_str().unwrap_or("-").to_string();
    let number = |value: &Value| value.as_u64().unwrap_or(0).to_string();
    let client = &connection["client"];
    let mut described: Vec<&str> = ["product", "version"]
        .iter()
        .filter_map(|key| client[*key].as_str())
        .collect();
    let name = client["connection_name"]
        .as_str()
        .map(|name| format!("({name})"));
    described.extend(name.as_deref());
    let user = match (connection["user"].as_str(), connection["token"].as_str()) {
        (Some(user), _) => user.to_string(),
        (None, Some(token)) => format!("token:{token}"),
        (None, None) => "-".to_string(),
    };
    [
        number(&connection["id"]),
        text(&connection["door"]),
        text(&connection["peer"]),
        user,
        number(&connection["channel_count"]),
        number(&connection["consumer_count"]),
        match described.is_empty() {
            true => "-".to_string(),
            false => described.join(" "),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_names_the_client_and_the_user() {
        let connection = json!({
            "id": 3, "door": "amqp", "peer": "127.0.0.1:5000", "user": "alice",
            "client": {"product": "pika", "version": "1.3.2", "connection_name": "worker"},
            "channel_count": 2, "consumer_count": 1,
        });
        assert_eq!(
            row(&connection),
            [
                "3",
                "amqp",
                "127.0.0.1:5000",
                "alice",
                "2",
                "1",
                "pika 1.3.2 (worker)"
            ]
            .map(String::from)
        );
        let anonymous = json!({"id": 4, "door": "amqp", "peer": "x", "user": null, "client": {}});
        assert_eq!(row(&anonymous)[3], "-");
        assert_eq!(row(&anonymous)[6], "-");
    }
}
