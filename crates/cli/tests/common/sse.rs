//! A raw Server-Sent Events reader for tests: one GET over a plain socket, then events read
//! line by line, so a test sees exactly what a browser's `EventSource` would.

use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// How long a test waits for an event that should come at once.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// One event: its name (`event:`), id (`id:`) and JSON data (`data:`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub id: String,
    pub data: Value,
}

pub struct EventStream {
    reader: BufReader<TcpStream>,
}

impl EventStream {
    /// Opens `path` (with `Last-Event-ID` when given); panics unless the answer is 200.
    pub fn open(address: SocketAddr, path: &str, last_event_id: Option<&str>) -> EventStream {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(EVENT_DEADLINE))
            .expect("read timeout");
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )
        .expect("send request");
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header line");
            if line == "\r\n" {
                break;
            }
            if line.to_ascii_lowercase().starts_with("content-type:") {
                assert!(line.contains("text/event-stream"), "{line}");
            }
        }
        EventStream { reader }
    }

    /// Opens `path` with `Last-Event-ID: {last_event_id}` expecting a refusal: its status and
    /// its problem+json body.
    pub fn refused(address: SocketAddr, path: &str, last_event_id: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(EVENT_DEADLINE))
            .expect("read timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\
             Last-Event-ID: {last_event_id}\r\nConnection: close\r\n\r\n"
        )
        .expect("send request");
        let mut answer = String::new();
        BufReader::new(stream)
            .read_to_string(&mut answer)
            .expect("answer");
        let status = (answer.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer}"));
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let body = serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {answer}"));
        (status, body)
    }

    /// The next event with data (comments and keep-alives skipped); panics when the stream
    /// ends or nothing comes within [`EVENT_DEADLINE`].
    pub fn next_event(&mut self) -> Event {
        let (mut name, mut id, mut data) = (String::new(), String::new(), String::new());
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line).expect("event line");
            assert!(read > 0, "the stream ended");
            let line = line.trim_end();
            if let Some(value) = line.strip_prefix("event: ") {
                name = value.to_string();
            } else if let Some(value) = line.strip_prefix("id: ") {
                id = value.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = value.to_string();
            } else if line.is_empty() && !data.is_empty() {
                let data = serde_json::from_str(&data).expect("data is JSON");
                return Event { name, id, data };
            }
        }
    }
}
