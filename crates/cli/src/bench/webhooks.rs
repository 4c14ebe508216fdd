//! `wharf bench webhooks`: deliveries/s and delivery latency from a publish over HTTP to a
//! local receiver, beside the receiver's own rate for plain POSTs in the same run.
//!
//! The bench starts a child `wharf serve --webhooks-allow-private` and a receiver in its own
//! process (a hyper server on loopback that answers 204 and notes each `webhook-id` and the
//! delay since the message's publish time). Reference first: the same number of concurrent
//! senders POST the same bodies straight to the receiver, a kept-alive connection each, as
//! the dispatcher keeps its connections to an endpoint's address. Then a
//! flat-out phase publishes `--messages` through a topic in batches and times the last
//! delivery; then a fixed-rate phase publishes one message at a time at `--rate` for the
//! latency from publish to receipt (the payload's `timestamp` is the publish time, in ms).

use super::{
    http1::{Connection, Endpoint},
    server_process::{ServerOptions, ServerProcess},
    topic::percentile_ms,
    BenchError,
};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Messages of the flat-out phase.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Messages per publish request in the flat-out phase.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Size of each message body (JSON).
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Publishes a second in the latency phase.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Length of the latency phase in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent senders of the reference phase: the dispatcher's attempts in flight per
    /// endpoint (`webhooks.concurrency`, 8 by default).
    #[arg(long, default_value_t = 8)]
    senders: u64,
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct Received {
    ids: HashSet<String>,
    requests: u64,
    /// Publish-to-receipt delays of first receipts, in microseconds (ms resolution).
    delays_us: Vec<u64>,
    last_at: Option<Instant>,
}

type Shared = Arc<Mutex<Received>>;

pub fn run(args: &WebhooksArgs) -> Result<(), BenchError> {
    if [
        args.messages,
        args.batch,
        args.rate,
        args.seconds,
        args.senders,
    ]
    .contains(&0)
    {
        return Err(BenchError::Usage(
            "--messages, --batch, --rate, --seconds and --senders must be positive".into(),
        ));
    }
    let server = ServerProcess::start_with(&ServerOptions {
        allow_private_webhooks: true,
        ..ServerOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let endpoint = Endpoint::new(server.address, None)?;
    let result = runtime.block_on(drive(args, &endpoint, &server));
    if result.is_err() {
        eprintln!("{}", server.log_tail());
    }
    server.stop();
    result
}

async fn drive(
    args: &WebhooksArgs,
    endpoint: &Endpoint,
    server: &ServerProcess,
) -> Result<(), BenchError> {
    let received: Shared = Arc::default();
    let receiver = start_receiver(received.clone()).await?;
    let body = json!({ "text": "x".repeat(args.body_bytes.saturating_sub(11)) });
    println!(
        "wharf bench webhooks: {} B bodies, receiver on {receiver}, one endpoint",
        args.body_bytes
    );
    let reference = reference(receiver, args, &body).await?;
    println!(
        "reference: plain POSTs to the receiver, {} senders, a kept-alive connection each  {reference:>8.0} /s",
        args.senders
    );
    *received.lock().expect("receiver lock") = Received::default();
    let mut admin = Connection::open(endpoint).await?;
    create_endpoint(&mut admin, receiver).await?;
    let cpu = server.cpu_time()?;
    let started = Instant::now();
    publish_batches(&mut admin, args, &body).await?;
    wait_for(&received, args.messages).await?;
    let last = received
        .lock()
        .expect("receiver lock")
        .last_at
        .unwrap_or_else(Instant::now);
    let elapsed = last.duration_since(started).as_secs_f64();
    let cpu = server.cpu_time()? - cpu;
    let rate = args.messages as f64 / elapsed;
    let cpu_us = cpu.as_secs_f64() * 1e6 / args.messages as f64;
    println!(
        "webhooks: {} messages published in batches of {}, all delivered  {rate:>8.0} /s  {:.2}x reference  {cpu_us:.1} us server CPU/delivery",
        args.messages,
        args.batch,
        rate / reference
    );

    *received.lock().expect("receiver lock") = Received::default();
    let count = args.rate * args.seconds;
    publish_paced(&mut admin, args, &body, count).await?;
    wait_for(&received, count).await?;
    let mut delays = std::mem::take(&mut received.lock().expect("receiver lock").delays_us);
    delays.sort_unstable();
    println!(
        "latency at {} publishes/s for {} s (publish to receipt): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        args.rate,
        args.seconds,
        percentile_ms(&delays, 50),
        percentile_ms(&delays, 99),
        percentile_ms(&delays, 100),
    );
    let summary = json!({
        "reference_posts_per_s": reference,
        "deliveries_per_s": rate,
        "server_cpu_us_per_delivery": cpu_us,
        "latency_p50_ms": percentile_ms(&delays, 50),
        "latency_p99_ms": percentile_ms(&delays, 99),
    });
    println!("{summary}");
    Ok(())
}

async fn create_endpoint(admin: &mut Connection, receiver: SocketAddr) -> Result<(), BenchError> {
    let topic = Bytes::from_static(b"{}");
    (admin.request_ok(Method::PUT, "/v1/topics/bench-hooks", topic)).await?;
    let spec = json!({
        "url": format!("http://{receiver}/hook"),
        "subscriptions": [{"topic": "bench-hooks"}],
    });
    let path = "/v1/webhooks/endpoints/bench";
    (admin.request_ok(Method::PUT, path, Bytes::from(spec.to_string()))).await?;
    Ok(())
}

async fn publish_batches(
    admin: &mut Connection,
    args: &WebhooksArgs,
    body: &Value,
) -> Result<(), BenchError> {
    let mut sent = 0;
    while sent < args.messages {
        let count = args.batch.min(args.messages - sent);
        let messages: Vec<Value> = (0..count)
            .map(|_| json!({"routing_key": "bench", "body": body}))
            .collect();
        let request = Bytes::from(json!({ "messages": messages }).to_string());
        (admin.request_ok(Method::POST, "/v1/topics/bench-hooks/publish", request)).await?;
        sent += count;
    }
    Ok(())
}

async fn publish_paced(
    admin: &mut Connection,
    args: &WebhooksArgs,
    body: &Value,
    count: u64,
) -> Result<(), BenchError> {
    let request =
        Bytes::from(json!({"messages": [{"routing_key": "bench", "body": body}]}).to_string());
    let interval = Duration::from_secs(1) / args.rate as u32;
    let mut ticks = tokio::time::interval(interval);
    for _ in 0..count {
        ticks.tick().await;
        (admin.request_ok(
            Method::POST,
            "/v1/topics/bench-hooks/publish",
            request.clone(),
        ))
        .await?;
    }
    Ok(())
}

/// Waits until `count` distinct messages arrived; fails when deliveries stop for 30 s.
async fn wait_for(received: &Shared, count: u64) -> Result<(), BenchError> {
    let mut seen = 0;
    let mut progress_at = Instant::now();
    loop {
        let now = received.lock().expect("receiver lock").ids.len() as u64;
        if now >= count {
            return Ok(());
        }
        if now > seen {
            (seen, progress_at) = (now, Instant::now());
        }
        if progress_at.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::Server(format!(
                "deliveries stopped at {now} of {count}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// POSTs as many bodies as 3 s allow from `senders` tasks, a kept-alive connection each.
async fn reference(
    receiver: SocketAddr,
    args: &WebhooksArgs,
    body: &Value,
) -> Result<f64, BenchError> {
    let payload = Bytes::from(
        json!({"id": "reference", "type": "message", "timestamp": "", "data": body}).to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.senders {
        let payload = payload.clone();
        tasks.push(tokio::spawn(post_until(receiver, payload, deadline)));
    }
    let mut posts = 0;
    for task in tasks {
        posts += task
            .await
            .map_err(|error| BenchError::Server(error.to_string()))??;
    }
    Ok(posts as f64 / started.elapsed().as_secs_f64())
}

/// POSTs `payload` over one kept-alive connection until `deadline`; how many it sent.
async fn post_until(
    receiver: SocketAddr,
    payload: Bytes,
    deadline: Instant,
) -> Result<u64, BenchError> {
    let failed = |detail: String| BenchError::Http {
        request: format!("POST http://{receiver}/hook"),
        detail,
    };
    let stream = TcpStream::connect(receiver)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let mut posts = 0;
    while Instant::now() < deadline {
        let request = Request::post("/hook")
            .header("host", receiver.to_string())
            .header("content-type", "application/json")
            .body(Full::new(payload.clone()))
            .map_err(|e| failed(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let _ = response.into_body().collect().await;
        posts += 1;
    }
    driver.abort();
    Ok(posts)
}

/// A receiver on loopback: 204 to every POST; notes ids and delays since publish.
async fn start_receiver(received: Shared) -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::Server(format!("cannot bind the receiver: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| BenchError::Server(format!("the receiver's address: {e}")))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let received = received.clone();
                async move { Ok::<_, hyper::Error>(receive(request, &received).await) }
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(address)
}

async fn receive(request: Request<Incoming>, received: &Shared) -> Response<Full<Bytes>> {
    let id = (request.headers().get("webhook-id"))
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let published_ms = (body.ok())
        .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
        .and_then(|payload| payload["timestamp"].as_str().map(str::to_string))
        .and_then(|text| humantime::parse_rfc3339(&text).ok())
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|since| since.as_millis() as u64);
    {
        let mut received = received.lock().expect("receiver lock");
        received.requests += 1;
        received.last_at = Some(Instant::now());
        if let Some(id) = id {
            if received.ids.insert(id) {
                if let Some(published) = published_ms {
                    received
                        .delays_us
                        .push(now_ms.saturating_sub(published) * 1000);
                }
            }
        }
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::NO_CONTENT;
    response
}
