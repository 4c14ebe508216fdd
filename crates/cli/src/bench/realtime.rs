//! `wharf bench realtime`: what real-time clients cost and how fast they hear.
//!
//! The bench starts a child `wharf serve` (with `limits.http_connections_max` raised for the
//! connections it opens) and runs four phases against it, its clients in this process:
//!
//! 1. **Idle WebSockets**: `--connections` sockets, each subscribed to one topic, answering
//!    pings; the server's resident memory before and after, per connection.
//! 2. **Idle event streams**: as many `GET /v1/sse` streams, the same way.
//! 3. **Fan-out**: `--subscribers` sockets on one topic; `--publishes` messages published over
//!    HTTP one at a time; the delay from each publish call's start to each subscriber's receipt
//!    (this process's clock), p50/p99 over every delivery.
//! 4. **Request-reply**: a responder socket answers `--requests` sequential requests from a
//!    requester socket; then the same round trips over HTTP (`POST /v1/request`, answered by
//!    the same responder), the path of `wharf bench request`, as the in-run reference.
//!    `bench/realtime-vs-nats.sh` puts NATS core request-reply beside it.

use super::{
    http1::{Connection, Endpoint},
    server_process::{ServerOptions, ServerProcess},
    topic::percentile_ms,
    BenchError,
};
use bytes::Bytes;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    task::JoinSet,
};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// How long a phase may wait for frames it expects before it fails.
const PHASE_DEADLINE: Duration = Duration::from_secs(120);
/// Connections opened at once while a phase sets up.
const OPENING_AT_ONCE: usize = 200;

#[derive(Debug, Args)]
pub struct RealtimeArgs {
    /// Idle WebSocket connections (and as many event streams) of the memory phases.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Subscribers of the fan-out phase.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Messages of the fan-out phase, published one at a time.
    #[arg(long, default_value_t = 200)]
    publishes: usize,
    /// Pause between two publishes of the fan-out phase, in ms.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Sequential round trips of the request-reply phase (each way: WebSocket and HTTP).
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Size of each published message and request body.
    #[arg(long, default_value_t = 128)]
    body_bytes: usize,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn run(args: &RealtimeArgs) -> Result<(), BenchError> {
    if args.connections == 0 || args.subscribers == 0 || args.publishes == 0 || args.requests == 0 {
        return Err(BenchError::Usage(
            "--connections, --subscribers, --publishes and --requests must be positive".into(),
        ));
    }
    let connections_max = args.connections.max(args.subscribers) + 1_000;
    let config = format!("[limits]\nhttp_connections_max = {connections_max}\n");
    let server = ServerProcess::start_with(&ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let result = runtime.block_on(drive(args, &server));
    if result.is_err() {
        eprintln!("{}", server.log_tail());
    }
    server.stop();
    result
}

async fn drive(args: &RealtimeArgs, server: &ServerProcess) -> Result<(), BenchError> {
    let endpoint = Endpoint::new(server.address, None)?;
    let mut admin = Connection::open(&endpoint).await?;
    for topic in ["idle", "fan", "rpc"] {
        let path = format!("/v1/topics/{topic}");
        (admin.request_ok(Method::PUT, &path, Bytes::from_static(b"{}"))).await?;
    }
    println!(
        "wharf bench realtime: {} idle connections, fan-out to {} subscribers, {} B bodies",
        args.connections, args.subscribers, args.body_bytes
    );
    let ws_kib = idle_websockets(args, server).await?;
    let sse_kib = idle_event_streams(args, server).await?;
    // A connection of its own per phase: the one above sat idle past the server's idle
    // timeout while the memory phases ran.
    let mut admin = Connection::open(&endpoint).await?;
    let fan_out = fan_out(args, server.address, &mut admin).await?;
    let mut admin = Connection::open(&endpoint).await?;
    let (ws_rtt, http_rtt) = request_reply(args, server.address, &mut admin).await?;
    let summary = json!({
        "idle_websocket_kib_per_connection": ws_kib,
        "idle_event_stream_kib_per_connection": sse_kib,
        "fan_out_subscribers": args.subscribers,
        "fan_out_p50_ms": percentile_ms(&fan_out, 50),
        "fan_out_p99_ms": percentile_ms(&fan_out, 99),
        "websocket_request_p50_ms": percentile_ms(&ws_rtt, 50),
        "websocket_request_p99_ms": percentile_ms(&ws_rtt, 99),
        "http_request_p50_ms": percentile_ms(&http_rtt, 50),
        "http_request_p99_ms": percentile_ms(&http_rtt, 99),
    });
    println!("{summary}");
    Ok(())
}

/// A WebSocket to the server, subscribed to `topic` (the `subscribed` answer read).
async fn subscribed(address: SocketAddr, topic: &str) -> Result<Socket, BenchError> {
    let failed = |detail: String| BenchError::Http {
        request: format!("WebSocket subscribe to {topic}"),
        detail,
    };
    let url = format!("ws://{address}/v1/ws");
    let (mut socket, _) =
        (tokio_tungstenite::connect_async(url).await).map_err(|error| failed(error.to_string()))?;
    let subscribe = json!({"op": "subscribe", "topic": topic}).to_string();
    (socket.send(Message::text(subscribe)).await).map_err(|error| failed(error.to_string()))?;
    match next_json(&mut socket).await {
        Some(frame) if frame["op"] == "subscribed" => Ok(socket),
        other => Err(failed(format!("answered {other:?}"))),
    }
}

/// The next text frame as JSON; `None` when the socket ends. Pings are answered by the
/// library as frames are read.
async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Opens `count` of what `open` makes, [`OPENING_AT_ONCE`] at a time.
async fn open_many<T: Send + 'static, F>(
    count: usize,
    open: impl Fn() -> F,
) -> Result<Vec<T>, BenchError>
where
    F: std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
{
    let mut opened = Vec::with_capacity(count);
    while opened.len() < count {
        let mut batch = JoinSet::new();
        for _ in 0..OPENING_AT_ONCE.min(count - opened.len()) {
            batch.spawn(open());
        }
        while let Some(result) = batch.join_next().await {
            opened.push(result.map_err(|error| BenchError::Server(error.to_string()))??);
        }
    }
    Ok(opened)
}

fn resident_kib(server: &ServerProcess) -> Result<u64, BenchError> {
    Ok(server.memory()?.resident_kib)
}

/// The server's resident memory once it stops moving (the allocator gives freed memory back
/// to the system a little later): two readings 500 ms apart within 1%, or the last after 10 s.
async fn settled_kib(server: &ServerProcess) -> Result<u64, BenchError> {
    let mut last = resident_kib(server)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = resident_kib(server)?;
        if now.abs_diff(last) * 100 <= last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Phase 1: KiB of server memory per idle, subscribed WebSocket.
async fn idle_websockets(args: &RealtimeArgs, server: &ServerProcess) -> Result<f64, BenchError> {
    // One first, so that the channel and the door's fixed costs are not counted per socket.
    let warm = subscribed(server.address, "idle").await?;
    let before = settled_kib(server).await?;
    let address = server.address;
    let sockets = open_many(args.connections, || subscribed(address, "idle")).await?;
    // Each socket idles in a task of its own that reads it, as a client does (pongs included).
    let mut idle = JoinSet::new();
    for mut socket in sockets.into_iter().chain([warm]) {
        idle.spawn(async move { while next_json(&mut socket).await.is_some() {} });
    }
    let after = settled_kib(server).await?;
    let per = (after.saturating_sub(before)) as f64 / args.connections as f64;
    println!(
        "idle WebSockets: {} subscribed, server resident {} -> {} KiB  {per:.1} KiB/connection",
        args.connections, before, after
    );
    idle.shutdown().await;
    Ok(per)
}

/// An event stream of `topic`, its response head read.
async fn event_stream(
    address: SocketAddr,
    topic: &str,
) -> Result<BufReader<TcpStream>, BenchError> {
    let failed = |detail: String| BenchError::Http {
        request: format!("GET /v1/sse?topics={topic}"),
        detail,
    };
    let mut stream = (TcpStream::connect(address).await).map_err(|e| failed(e.to_string()))?;
    let request = format!(
        "GET /v1/sse?topics={topic} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    );
    (stream.write_all(request.as_bytes()).await).map_err(|e| failed(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    (reader.read_line(&mut line).await).map_err(|e| failed(e.to_string()))?;
    if !line.starts_with("HTTP/1.1 200") {
        return Err(failed(line));
    }
    // Ends: the head ends with an empty line, or the stream ends (an error).
    loop {
        line.clear();
        let read = (reader.read_line(&mut line).await).map_err(|e| failed(e.to_string()))?;
        if read == 0 {
            return Err(failed("the stream ended in its head".into()));
        }
        if line == "\r\n" {
            return Ok(reader);
        }
    }
}

/// Phase 2: KiB of server memory per idle event stream.
async fn idle_event_streams(
    args: &RealtimeArgs,
    server: &ServerProcess,
) -> Result<f64, BenchError> {
    let warm = event_stream(server.address, "idle").await?;
    let before = settled_kib(server).await?;
    let address = server.address;
    let streams = open_many(args.connections, || event_stream(address, "idle")).await?;
    let after = settled_kib(server).await?;
    let per = (after.saturating_sub(before)) as f64 / args.connections as f64;
    println!(
        "idle event streams: {}, server resident {} -> {} KiB  {per:.1} KiB/connection",
        args.connections, before, after
    );
    drop((streams, warm));
    Ok(per)
}

/// Phase 3: publish-to-receipt delays of every delivery, in µs, sorted.
async fn fan_out(
    args: &RealtimeArgs,
    address: SocketAddr,
    admin: &mut Connection,
) -> Result<Vec<u64>, BenchError> {
    let sockets = open_many(args.subscribers, || subscribed(address, "fan")).await?;
    let receipts: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let mut listening = JoinSet::new();
    for mut socket in sockets {
        let (receipts, publishes) = (receipts.clone(), args.publishes);
        listening.spawn(async move {
            let mut mine = Vec::with_capacity(publishes);
            while mine.len() < publishes {
                let Some(frame) = next_json(&mut socket).await else {
                    break;
                };
                if let Some(seq) = frame["body"]["seq"].as_u64() {
                    mine.push((seq as usize, Instant::now()));
                }
            }
            receipts.lock().expect("receipts lock").extend(mine);
        });
    }
    let pad = "x".repeat(args.body_bytes.saturating_sub(24));
    let mut published = Vec::with_capacity(args.publishes);
    for seq in 0..args.publishes {
        let body = json!({"messages": [{"routing_key": "k", "body": {"seq": seq, "pad": pad}}]});
        published.push(Instant::now());
        let request = Bytes::from(body.to_string());
        (admin.request_ok(Method::POST, "/v1/topics/fan/publish", request)).await?;
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    let waited = tokio::time::timeout(PHASE_DEADLINE, async {
        while listening.join_next().await.is_some() {}
    });
    waited
        .await
        .map_err(|_| BenchError::Server("fan-out deliveries did not all arrive".into()))?;
    let receipts = std::mem::take(&mut *receipts.lock().expect("receipts lock"));
    let expected = args.publishes * args.subscribers;
    let mut delays: Vec<u64> = (receipts.iter())
        .map(|(seq, at)| at.duration_since(published[*seq]).as_micros() as u64)
        .collect();
    delays.sort_unstable();
    println!(
        "fan-out: {} publishes x {} subscribers, {} of {expected} delivered, publish to receipt  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        args.publishes,
        args.subscribers,
        receipts.len(),
        percentile_ms(&delays, 50),
        percentile_ms(&delays, 99),
        percentile_ms(&delays, 100),
    );
    if receipts.len() != expected {
        return Err(BenchError::Server(format!(
            "{} of {expected} fan-out deliveries arrived",
            receipts.len()
        )));
    }
    Ok(delays)
}

/// Answers every request arriving on `socket` with its own body, until the socket ends.
async fn respond(mut socket: Socket) {
    while let Some(request) = next_json(&mut socket).await {
        if request["op"] != "message" {
            continue;
        }
        let reply = json!({
            "op": "reply",
            "reply_to": request["reply_to"],
            "correlation_id": request["correlation_id"],
            "body": request["body"],
        });
        if socket.send(Message::text(reply.to_string())).await.is_err() {
            return;
        }
    }
}

/// Phase 4: sequential round-trip times over a WebSocket, then over HTTP, in µs, sorted.
async fn request_reply(
    args: &RealtimeArgs,
    address: SocketAddr,
    admin: &mut Connection,
) -> Result<(Vec<u64>, Vec<u64>), BenchError> {
    let responder = subscribed(address, "rpc").await?;
    let responding = tokio::spawn(respond(responder));
    let failed = |detail: String| BenchError::Http {
        request: "a WebSocket request".into(),
        detail,
    };
    let url = format!("ws://{address}/v1/ws");
    let (mut requester, _) =
        (tokio_tungstenite::connect_async(url).await).map_err(|error| failed(error.to_string()))?;
    let pad = "x".repeat(args.body_bytes.saturating_sub(16));
    let mut over_ws = Vec::with_capacity(args.requests);
    for n in 0..args.requests {
        let request = json!({"op": "request", "topic": "rpc", "ref": n.to_string(),
                             "body": {"n": n, "pad": pad}, "timeout_ms": 10_000});
        let started = Instant::now();
        (requester.send(Message::text(request.to_string())).await)
            .map_err(|error| failed(error.to_string()))?;
        match next_json(&mut requester).await {
            Some(reply) if reply["op"] == "reply" => {}
            other => return Err(failed(format!("answered {other:?}"))),
        }
        over_ws.push(started.elapsed().as_micros() as u64);
    }
    let mut over_http = Vec::with_capacity(args.requests);
    for n in 0..args.requests {
        let request = json!({"topic": "rpc", "body": {"n": n, "pad": pad}, "timeout_ms": 10_000});
        let started = Instant::now();
        let body = Bytes::from(request.to_string());
        admin.request_ok(Method::POST, "/v1/request", body).await?;
        over_http.push(started.elapsed().as_micros() as u64);
    }
    responding.abort();
    over_ws.sort_unstable();
    over_http.sort_unstable();
    for (door, times) in [("WebSocket", &over_ws), ("HTTP (reference)", &over_http)] {
        println!(
            "request-reply over {door}: {} sequential round trips  p50 {:.3} ms  p99 {:.3} ms",
            args.requests,
            percentile_ms(times, 50),
            percentile_ms(times, 99),
        );
    }
    Ok((over_ws, over_http))
}
