//! One delivery attempt: resolve, check, connect, send, read the first bytes of the answer.
//!
//! Each attempt resolves the URL's host once, takes the first address, checks it with the
//! [`guard`](super::guard) (unless private destinations are allowed) and connects to that
//! address; the request carries the URL's host name (and TLS its SNI), so virtual hosts and
//! certificates work as for any client. Connecting and the whole answer have time limits, and
//! only the first [`Settings::response_bytes_max`] bytes of a body are read.

use super::{guard, Settings};
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::{
    net::SocketAddr,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};
use tokio::net::TcpStream;

/// What a delivery sends.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: url::Url,
    /// Custom headers first, then the signature headers and `content-type`.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status, when a response head arrived.
    pub status: Option<u16>,
    /// Why the attempt failed before a status, when it did.
    pub error: Option<String>,
    /// The first bytes of the body, as text (lossy).
    pub body_head: String,
    pub latency: Duration,
    /// Where it connected (or would have).
    pub address: Option<SocketAddr>,
}

impl Answer {
    pub fn succeeded(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// Bytes of a response body kept in the attempt log.
pub const BODY_HEAD_BYTES: usize = 256;

/// Sends `outgoing` once.
pub async fn attempt(outgoing: &Outgoing, settings: &Settings) -> Answer {
    let started = Instant::now();
    let mut answer = Answer {
        status: None,
        error: None,
        body_head: String::new(),
        latency: Duration::ZERO,
        address: None,
    };
    match exchange(outgoing, settings, &mut answer).await {
        Ok((status, head)) => {
            answer.status = Some(status);
            answer.body_head = head;
        }
        Err(error) => answer.error = Some(error),
    }
    answer.latency = started.elapsed();
    answer
}

async fn exchange(
    outgoing: &Outgoing,
    settings: &Settings,
    answer: &mut Answer,
) -> Result<(u16, String), String> {
    let url = &outgoing.url;
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let address = resolve(&host, port, settings).await?;
    answer.address = Some(address);
    if !settings.allow_private {
        if let Some(why) = guard::refused(address.ip()) {
            return Err(format!(
                "{host} resolves to {}, {why}; refused (webhooks.allow_private allows it)",
                address.ip()
            ));
        }
    }
    let connect = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address));
    let stream = match connect.await {
        Err(_) => return Err(format!("connecting to {address} timed out")),
        Ok(Err(error)) => return Err(format!("connecting to {address}: {error}")),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let request = build_request(outgoing, &host, port)?;
    let exchange = async {
        match url.scheme() {
            "https" => {
                let server_name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|error| format!("{host} is no TLS server name: {error}"))?;
                let connector = tokio_rustls::TlsConnector::from(TLS_CLIENT.clone());
                let tls = (connector.connect(server_name, stream).await)
                    .map_err(|error| format!("TLS with {host}: {error}"))?;
                send(TokioIo::new(tls), request, settings).await
            }
            _ => send(TokioIo::new(stream), request, settings).await,
        }
    };
    match tokio::time::timeout(settings.response_timeout, exchange).await {
        Err(_) => Err(format!(
            "no complete response within {} ms",
            settings.response_timeout.as_millis()
        )),
        Ok(result) => result,
    }
}

async fn resolve(host: &str, port: u16, settings: &Settings) -> Result<SocketAddr, String> {
    let lookup = tokio::net::lookup_host((host, port));
    let mut addresses = match tokio::time::timeout(settings.connect_timeout, lookup).await {
        Err(_) => return Err(format!("resolving {host} timed out")),
        Ok(Err(error)) => return Err(format!("resolving {host}: {error}")),
        Ok(Ok(addresses)) => addresses,
    };
    addresses
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

fn build_request(
    outgoing: &Outgoing,
    host: &str,
    port: u16,
) -> Result<Request<axum::body::Body>, String> {
    let url = &outgoing.url;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let authority = match url.port() {
        Some(_) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, authority)
        .header(
            header::USER_AGENT,
            concat!("wharf-webhooks/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in &outgoing.headers {
        let name = HeaderName::try_from(name.as_str()).map_err(|error| error.to_string())?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|error| error.to_string())?;
        builder = builder.header(name, value);
    }
    (builder.body(axum::body::Body::from(outgoing.body.clone())))
        .map_err(|error| format!("building the request: {error}"))
}

async fn send<I>(
    io: I,
    request: Request<axum::body::Body>,
    settings: &Settings,
) -> Result<(u16, String), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| format!("HTTP handshake: {error}"))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = (sender.send_request(request).await)
            .map_err(|error| format!("sending the request: {error}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut head = Vec::new();
        while head.len() < settings.response_bytes_max {
            match body.frame().await {
                None => break,
                Some(Err(error)) => return Err(format!("reading the response body: {error}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        head.extend_from_slice(&data);
                    }
                }
            }
        }
        head.truncate(BODY_HEAD_BYTES);
        Ok((status, String::from_utf8_lossy(&head).into_owned()))
    }
    .await;
    // The connection is not reused: the next attempt resolves and checks again.
    driver.abort();
    result
}

/// Roots of the web PKI (Mozilla's list, built in): a delivery trusts what browsers trust.
static TLS_CLIENT: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
});
