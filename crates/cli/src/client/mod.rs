//! Client subcommands: `wharf queue ...`, `wharf send`, `wharf receive`, `wharf topic ...`,
//! `wharf bind`, `wharf publish`, `wharf subscribe`, `wharf request`, `wharf scatter`,
//! `wharf reply`, `wharf ack`, `wharf nack`, `wharf lease`, and the security ones:
//! `wharf user ...`, `wharf token ...`, `wharf whoami`, `wharf audit`, and
//! `wharf connection ...`.
//!
//! Each talks to a running server over its HTTP API (`/v1`) with one blocking request or a few;
//! this module owns the HTTP plumbing (with the caller's `Authorization`, worked out in
//! [`credentials`]) and turns problem+json replies into [`ClientError`]. Each command group has
//! its file; output formats are described there and in docs.

pub mod audit;
pub mod connection;
pub mod credentials;
pub mod events;
pub mod grant;
pub mod publish;
pub mod queue;
pub mod receive;
pub mod request;
pub mod send;
pub mod send_file;
pub mod server_url;
pub mod settle;
pub mod stream;
pub mod subscribe;
pub mod token;
pub mod topic;
pub mod user;
pub mod whoami;

use clap::Subcommand;
use credentials::Authorization;
use serde_json::Value;
use std::{
    io::{self, Read},
    time::Duration,
};

/// Connecting to a local or nearby server takes milliseconds; this only stops a hung command.
/// There is no overall timeout because `receive --wait` may hold a request open on purpose.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A reply larger than this is not something a command prints (a receive of 1,000 messages of
/// 64 KiB is 64 MiB as base64); ureq's 10 MB default is too small for big batches.
const REPLY_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// A client command failed; `main` prints it as `error: ...` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to the server; the library's error is summed up in `reason`.
    #[error("cannot connect to {server}: {reason} ({})", reason.hint())]
    Unreachable { server: String, reason: Unreachable },
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The server refused the request with a problem+json document (RFC 9457).
    #[error("{}", describe_problem(detail, field.as_deref()))]
    Problem {
        status: u16,
        detail: String,
        field: Option<String>,
        /// The problem's machine-readable `code` (`stale_generation`), when it had one.
        code: Option<String>,
    },
    #[error("unexpected reply from {url} (HTTP {status}): {reason}")]
    Reply {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("cannot read the message body from standard input: {0}")]
    Stdin(#[source] io::Error),
    #[error("cannot read {}: {source}", path.display())]
    FileRead {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of `send --file` that no batch can carry.
    #[error("line {line} is {bytes} bytes, over the {max} bytes of bodies a batch may carry; {sent} messages of the lines before it were sent")]
    LineTooLong {
        line: usize,
        bytes: usize,
        max: usize,
        sent: u64,
    },
    /// A batch of `send --file` failed; the batches before it were stored.
    #[error("lines {first_line} to {last_line} were not sent ({source}); {sent} messages of the lines before them were sent")]
    BatchRefused {
        first_line: usize,
        last_line: usize,
        sent: u64,
        #[source]
        source: Box<ClientError>,
    },
    #[error("cannot read receipts from standard input: {0}")]
    ReceiptsInput(#[source] io::Error),
    #[error("no receipts given: pass them as arguments or on standard input, one per line")]
    NoReceipts,
    /// Some receipts of an ack, nack or lease failed; the others took effect.
    #[error(
        "queue `{queue}`: {} of {total} receipts failed to {action}: {}",
        failures.len(),
        failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ReceiptsRefused {
        queue: String,
        action: &'static str,
        total: usize,
        failures: Vec<settle::ReceiptFailure>,
    },
    #[error("the event stream from the server broke: {0}")]
    Stream(#[source] io::Error),
    #[error("cannot write the output: {0}")]
    Stdout(#[source] io::Error),
    /// An argument the command itself refuses before asking the server.
    #[error("{0}")]
    Usage(String),
}

/// Added to a 401 when the command sent no credentials at all.
const NO_CREDENTIALS_HINT: &str =
    "no credentials were given: use --token or WHARF_TOKEN, --user with --password, or a cli.toml";

impl ClientError {
    /// Appends `hint` to a problem's detail.
    fn hint(self, hint: &str) -> ClientError {
        match self {
            ClientError::Problem {
                status,
                detail,
                field,
                code,
            } => ClientError::Problem {
                status,
                detail: format!("{detail} ({hint})"),
                field,
                code,
            },
            other => other,
        }
    }

    /// Makes sure a problem about a queue names the queue, whatever the server's wording.
    pub fn about_queue(self, queue: &str) -> ClientError {
        match self {
            ClientError::Problem {
                status,
                detail,
                field,
                code,
            } if !detail.contains(queue) => ClientError::Problem {
                status,
                detail: format!("queue `{queue}`: {detail}"),
                field,
                code,
            },
            other => other,
        }
    }
}

/// Every command that talks to a running server; `main` flattens these into `wharf`'s list.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, inspect and manage queues.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Send a message to a queue.
    Send(send::SendArgs),
    /// Receive messages from a queue and print them as JSON lines.
    Receive(receive::ReceiveArgs),
    /// Acknowledge received messages by receipt: they are done and not delivered again.
    Ack(settle::AckArgs),
    /// Return received messages by receipt, for a retry or to the dead-letter queue.
    Nack(settle::NackArgs),
    /// Extend the leases of received messages by receipt.
    Lease(settle::LeaseArgs),
    /// Create, inspect and manage topics and their bindings.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Bind a queue or topic to a topic with a pattern.
    Bind(topic::BindArgs),
    /// Publish a message to a topic with a routing key.
    Publish(publish::PublishArgs),
    /// Print messages published to a topic as JSON lines, as they arrive.
    Subscribe(subscribe::SubscribeArgs),
    /// Send a request to a queue or topic and print its reply.
    Request(request::RequestArgs),
    /// Publish a request to a topic and print every reply that comes in time.
    Scatter(request::ScatterArgs),
    /// Answer a request.
    Reply(request::ReplyArgs),
    /// Create, list and delete users; change passwords (administrators).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Create, list and revoke tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show who the server takes these credentials for, and their grants.
    Whoami,
    /// Print the server's audit log as JSON lines (administrators).
    Audit(audit::AuditArgs),
    /// List, show and close client connections (AMQP).
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// Create, inspect and delete streams; show consumer groups.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Produce records to a stream.
    Produce(stream::ProduceArgs),
    /// Print a stream's records as JSON lines, alone or as a member of a consumer group.
    Consume(stream::ConsumeArgs),
    /// Append, read and follow the event store's streams.
    #[command(subcommand)]
    Events(events::EventsCommand),
}

/// Runs one client command against `client`'s server.
pub fn run(command: ClientCommand, client: &Client) -> Result<(), ClientError> {
    match command {
        ClientCommand::Queue(command) => queue::run(command, client),
        ClientCommand::Send(args) => send::run(args, client),
        ClientCommand::Receive(args) => receive::run(args, client),
        ClientCommand::Ack(args) => settle::run_ack(args, client),
        ClientCommand::Nack(args) => settle::run_nack(args, client),
        ClientCommand::Lease(args) => settle::run_lease(args, client),
        ClientCommand::Topic(command) => topic::run(command, client),
        ClientCommand::Bind(args) => topic::run_bind(args, client),
        ClientCommand::Publish(args) => publish::run(args, client),
        ClientCommand::Subscribe(args) => subscribe::run(args, client),
        ClientCommand::Request(args) => request::run_request(args, client),
        ClientCommand::Scatter(args) => request::run_scatter(args, client),
        ClientCommand::Reply(args) => request::run_reply(args, client),
        ClientCommand::User(command) => user::run(command, client),
        ClientCommand::Token(command) => token::run(command, client),
        ClientCommand::Whoami => whoami::run(client),
        ClientCommand::Audit(args) => audit::run(&args, client),
        ClientCommand::Connection(command) => connection::run(command, client),
        ClientCommand::Stream(command) => stream::run(command, client),
        ClientCommand::Produce(args) => stream::run_produce(args, client),
        ClientCommand::Consume(args) => stream::run_consume(args, client),
        ClientCommand::Events(command) => events::run(command, client),
    }
}

/// The server that client commands talk to, with one reusable connection pool.
pub struct Client {
    agent: ureq::Agent,
    server: String,
    authorization: Option<Authorization>,
}

impl Client {
    pub fn new(server: &str, authorization: Option<Authorization>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .proxy(None)
            .build()
            .into();
        Client {
            agent,
            server: server.trim_end_matches('/').to_string(),
            authorization,
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let result = self.authorize(self.agent.get(&url)).call();
        self.finish(url, result)
    }

    /// Every item of a paged list (`GET /v1/queues`, `GET /v1/topics`): the pages one after
    /// another, each asked `after` the last one's `next`, as one reply holding every item under
    /// `key`. Names only grow from page to page, so the walk ends.
    pub fn get_all(&self, path: &str, key: &str) -> Result<Value, ClientError> {
        let mut reply = self.get(path)?;
        let mut after = reply["next"].as_str().map(str::to_string);
        while let Some(cursor) = after.take() {
            let page = self.get(&format!("{path}?after={cursor}"))?;
            let items = page[key].as_array().cloned().unwrap_or_default();
            if let Some(all) = reply[key].as_array_mut() {
                all.extend(items);
            }
            after = (page["next"].as_str())
                .filter(|next| *next > cursor.as_str())
                .map(str::to_string);
        }
        Ok(reply)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = self.url(path);
        let result = self
            .authorize(self.agent.post(&url))
            .header("content-type", "application/json")
            .send(body.to_string());
        self.finish(url, result)
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = self.url(path);
        let result = self
            .authorize(self.agent.put(&url))
            .header("content-type", "application/json")
            .send(body.to_string());
        self.finish(url, result)
    }

    /// DELETE; success replies carry no body, so `Value::Null` comes back.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let result = self.authorize(self.agent.delete(&url)).call();
        self.finish(url, result)
    }

    /// GET a streaming reply (Server-Sent Events) and return its body as it arrives. An error
    /// status is read whole and returned as the problem it carries.
    pub fn get_stream(&self, path: &str) -> Result<impl Read, ClientError> {
        let url = self.url(path);
        let response = self
            .authorize(self.agent.get(&url))
            .header("accept", "text/event-stream")
            .call()
            .map_err(|source| self.transport_error(url.clone(), source))?;
        if response.status().is_success() {
            return Ok(response.into_body().into_reader());
        }
        Err(self
            .finish(url.clone(), Ok(response))
            .err()
            .unwrap_or_else(|| ClientError::Reply {
                url,
                status: 0,
                reason: "an error status with a success body".to_string(),
            }))
    }

    /// Adds the caller's `Authorization`, when there is one.
    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(authorization) => request.header("authorization", authorization.header_value()),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn finish(
        &self,
        url: String,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut response = result.map_err(|source| self.transport_error(url.clone(), source))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(REPLY_BYTES_MAX)
            .read_to_string()
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|error| ClientError::Reply {
                url: url.clone(),
                status,
                reason: format!("not JSON ({error}): {}", excerpt(&text)),
            })?
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let error = problem_error(url, status, &value);
        match (status, &self.authorization) {
            (401, None) => Err(error.hint(NO_CREDENTIALS_HINT)),
            _ => Err(error),
        }
    }

    fn transport_error(&self, url: String, source: ureq::Error) -> ClientError {
        match Unreachable::classify(&source) {
            Some(reason) => ClientError::Unreachable {
                server: self.server.clone(),
                reason,
            },
            None => ClientError::Transport { url, source },
        }
    }
}

/// Why no connection to the server could be made, in words for the error line (the library's
/// own text is `io: Connection refused (os error 111)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("connection refused")]
    Refused,
    #[error("connection reset")]
    Reset,
    #[error("the host name was not found")]
    HostNotFound,
    #[error("no answer within {} s", CONNECT_TIMEOUT.as_secs())]
    TimedOut,
    #[error("the address is not available")]
    AddressNotAvailable,
    #[error("the connection failed")]
    Failed,
}

impl Unreachable {
    /// What to check next: a name that does not resolve is a typo more often than a stopped
    /// server.
    fn hint(self) -> &'static str {
        match self {
            Unreachable::HostNotFound | Unreachable::AddressNotAvailable => {
                "check --server or WHARF_SERVER"
            }
            Unreachable::Refused
            | Unreachable::Reset
            | Unreachable::TimedOut
            | Unreachable::Failed => "is `wharf serve` running there? set --server or WHARF_SERVER",
        }
    }

    /// The reason when `error` means the server could not be reached; `None` for any other
    /// transport failure.
    fn classify(error: &ureq::Error) -> Option<Unreachable> {
        match error {
            ureq::Error::ConnectionFailed => Some(Unreachable::Failed),
            ureq::Error::HostNotFound => Some(Unreachable::HostNotFound),
            ureq::Error::Timeout(_) => Some(Unreachable::TimedOut),
            ureq::Error::Io(error) => match error.kind() {
                io::ErrorKind::ConnectionRefused => Some(Unreachable::Refused),
                io::ErrorKind::ConnectionReset => Some(Unreachable::Reset),
                io::ErrorKind::AddrNotAvailable => Some(Unreachable::AddressNotAvailable),
                io::ErrorKind::TimedOut => Some(Unreachable::TimedOut),
                // A failed name lookup has no kind of its own in std (`Uncategorized`, not
                // matchable); its message is the one stable mark.
                _ if error.to_string().contains("failed to lookup address") => {
                    Some(Unreachable::HostNotFound)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// `/v1/queues/{name}{tail}` with the name percent-encoded, so any name reaches the server
/// intact and the server alone decides which names are valid.
pub fn queue_path(name: &str, tail: &str) -> String {
    format!("/v1/queues/{}{tail}", percent_encode(name))
}

/// `/v1/streams/{name}{tail}`, the name percent-encoded like [`queue_path`]'s.
pub fn stream_path(name: &str, tail: &str) -> String {
    format!("/v1/streams/{}{tail}", percent_encode(name))
}

/// `/v1/topics/{name}{tail}`, the name percent-encoded like [`queue_path`]'s.
pub fn topic_path(name: &str, tail: &str) -> String {
    format!("/v1/topics/{}{tail}", percent_encode(name))
}

/// Writes one compact JSON document per line to stdout.
pub fn print_json_line(value: &Value) -> Result<(), ClientError> {
    use std::io::Write;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{value}")
        .and_then(|()| stdout.flush())
        .map_err(ClientError::Stdout)
}

pub fn print_json_pretty(value: &Value) -> Result<(), ClientError> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}").map_err(ClientError::Stdout)
}

fn problem_error(url: String, status: u16, value: &Value) -> ClientError {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    match text("detail").or_else(|| text("title")) {
        Some(detail) => ClientError::Problem {
            status,
            detail,
            field: text("field"),
            code: text("code"),
        },
        None => ClientError::Reply {
            url,
            status,
            reason: excerpt(&value.to_string()),
        },
    }
}

fn describe_problem(detail: &str, field: Option<&str>) -> String {
    match field {
        Some(field) => format!("{detail} (field `{field}`)"),
        None => detail.to_string(),
    }
}

/// A reply body cut to a length that fits an error line.
fn excerpt(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 200;
    let mut shown: String = text.chars().take(SHOWN_CHARS_MAX).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    shown
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_path_encodes_reserved_characters() {
        assert_eq!(queue_path("orders", "/ack"), "/v1/queues/orders/ack");
        assert_eq!(queue_path("a b/c", ""), "/v1/queues/a%20b%2Fc");
    }

    #[test]
    fn problem_names_field_and_queue() {
        let value =
            serde_json::json!({"title": "Not Found", "status": 404, "detail": "no such queue"});
        let error = problem_error("u".into(), 404, &value).about_queue("orders");
        assert_eq!(error.to_string(), "queue `orders`: no such queue");
        let value = serde_json::json!({"detail": "must be positive", "field": "lease_ms"});
        let error = problem_error("u".into(), 400, &value);
        assert_eq!(error.to_string(), "must be positive (field `lease_ms`)");
    }
}
