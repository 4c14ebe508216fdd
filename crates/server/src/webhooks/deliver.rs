//! One delivery attempt: resolve, check, connect, send, read the first bytes of the answer.
//!
//! Each attempt resolves the URL's host once, takes the first address, checks it with the
//! [`guard`](super::guard) (unless private destinations are allowed) and sends to that
//! address, on a kept-alive connection to it when the endpoint has one idle, else on a new
//! one; the request carries the URL's host name (and TLS its SNI), so virtual hosts and
//! certificates work as for any client. Connecting and the whole answer have time limits, and
//! only the first [`Settings::response_bytes_max`] bytes of a body are read.

use super::{guard, Settings};
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::{
    net::SocketAddr,
    sync::{Arc, LazyLock, Mutex},
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

/// Kept-alive connections of one endpoint, by the address each was opened to. An attempt
/// still resolves the host and checks the address it gets; it reuses a connection only to
/// that very address.
#[derive(Debug, Default)]
pub struct Connections {
    idle: Mutex<Vec<(SocketAddr, SendRequest<axum::body::Body>)>>,
}

impl Connections {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(SocketAddr, SendRequest<axum::body::Body>)>> {
        // A list of handles, changed by single pushes and removes.
        (self.idle.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, address: SocketAddr) -> Option<SendRequest<axum::body::Body>> {
        let mut idle = self.idle();
        while let Some(index) = idle.iter().position(|(to, _)| *to == address) {
            let (_, sender) = idle.swap_remove(index);
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, address: SocketAddr, sender: SendRequest<axum::body::Body>, max: usize) {
        let mut idle = self.idle();
        if idle.len() < max {
            idle.push((address, sender));
        }
    }
}

/// Sends `outgoing` once, on a kept-alive connection of `connections` to the address the
/// host resolves to when there is one.
pub async fn attempt(
    outgoing: &Outgoing,
    settings: &Settings,
    connections: &Connections,
) -> Answer {
    let started = Instant::now();
    let mut answer = Answer {
        status: None,
        error: None,
        body_head: String::new(),
        latency: Duration::ZERO,
        address: None,
    };
    match exchange(outgoing, settings, connections, &mut answer).await {
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
    connections: &Connections,
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
    let exchange = async {
        if let Some(sender) = connections.take(address) {
            let request = build_request(outgoing, &host, port)?;
            match send(sender, request, settings).await {
                Ok(sent) => return Ok(keep(sent, address, connections, settings)),
                // The receiver closed the idle connection meanwhile: a new one, below.
                Err(Failure {
                    before_response: true,
                    ..
                }) => {}
                Err(failure) => return Err(failure.message),
            }
        }
        let sender = connect(url, &host, address, settings).await?;
        let request = build_request(outgoing, &host, port)?;
        let sent = send(sender, request, settings)
            .await
            .map_err(|f| f.message)?;
        Ok(keep(sent, address, connections, settings))
    };
    match tokio::time::timeout(settings.response_timeout, exchange).await {
        Err(_) => Err(format!(
            "no complete response within {} ms",
            settings.response_timeout.as_millis()
        )),
        Ok(result) => result,
    }
}

/// Puts a connection whose response was read whole back among the idle ones.
fn keep(
    sent: Sent,
    address: SocketAddr,
    connections: &Connections,
    settings: &Settings,
) -> (u16, String) {
    if let Some(sender) = sent.reusable {
        connections.put(address, sender, settings.concurrency);
    }
    (sent.status, sent.head)
}

/// A new connection to `address` (TLS for `https`), ready to send.
async fn connect(
    url: &url::Url,
    host: &str,
    address: SocketAddr,
    settings: &Settings,
) -> Result<SendRequest<axum::body::Body>, String> {
    let connect = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address));
    let stream = match connect.await {
        Err(_) => return Err(format!("connecting to {address} timed out")),
        Ok(Err(error)) => return Err(format!("connecting to {address}: {error}")),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    match url.scheme() {
        "https" => {
            let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|error| format!("{host} is no TLS server name: {error}"))?;
            let connector = tokio_rustls::TlsConnector::from(TLS_CLIENT.clone());
            let tls = (connector.connect(server_name, stream).await)
                .map_err(|error| format!("TLS with {host}: {error}"))?;
            handshake(TokioIo::new(tls)).await
        }
        _ => handshake(TokioIo::new(stream)).await,
    }
}

async fn handshake<I>(io: I) -> Result<SendRequest<axum::body::Body>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| format!("HTTP handshake: {error}"))?;
    // Ends when the connection closes, or once its last sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
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

/// A response: its status, the first bytes of its body, and the connection when it can carry
/// another request.
struct Sent {
    status: u16,
    head: String,
    reusable: Option<SendRequest<axum::body::Body>>,
}

struct Failure {
    message: String,
    /// Nothing of a response came: on a kept-alive connection, the receiver had closed it.
    before_response: bool,
}

async fn send(
    mut sender: SendRequest<axum::body::Body>,
    request: Request<axum::body::Body>,
    settings: &Settings,
) -> Result<Sent, Failure> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| Failure {
            message: format!("sending the request: {error}"),
            before_response: true,
        })?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut head = Vec::new();
    let mut whole = false;
    while head.len() < settings.response_bytes_max {
        match body.frame().await {
            None => {
                whole = true;
                break;
            }
            Some(Err(error)) => {
                return Err(Failure {
                    message: format!("reading the response body: {error}"),
                    before_response: false,
                })
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
            }
        }
    }
    head.truncate(BODY_HEAD_BYTES);
    // A body left unread would be the next response's start: such a connection goes.
    let reusable = (whole && !sender.is_closed()).then_some(sender);
    let head = String::from_utf8_lossy(&head).into_owned();
    Ok(Sent {
        status,
        head,
        reusable,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A keep-alive receiver answering 204 (or, with `close`, closing after each answer);
    /// counts the connections it accepts.
    async fn receiver(close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(move |_request| async move {
                    let mut response = axum::http::Response::new(axum::body::Body::empty());
                    *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
                    if close {
                        let close = HeaderValue::from_static("close");
                        response.headers_mut().insert(header::CONNECTION, close);
                    }
                    Ok::<_, std::convert::Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (address, accepted)
    }

    fn outgoing(address: SocketAddr) -> Outgoing {
        Outgoing {
            url: url::Url::parse(&format!("http://{address}/hook")).unwrap(),
            headers: vec![("webhook-id".into(), "m".into())],
            body: Bytes::from_static(b"{}"),
        }
    }

    fn settings() -> Settings {
        Settings {
            allow_private: true,
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn attempts_to_the_same_address_share_a_kept_alive_connection() {
        let (address, accepted) = receiver(false).await;
        let connections = Connections::default();
        for _ in 0..3 {
            let answer = attempt(&outgoing(address), &settings(), &connections).await;
            assert_eq!(answer.status, Some(204), "{answer:?}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_receiver_that_closes_gets_a_new_connection_per_attempt() {
        let (address, accepted) = receiver(true).await;
        let connections = Connections::default();
        for _ in 0..3 {
            let answer = attempt(&outgoing(address), &settings(), &connections).await;
            assert_eq!(answer.status, Some(204), "{answer:?}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_loopback_destination_is_refused_without_connecting() {
        let (address, accepted) = receiver(false).await;
        let answer = attempt(
            &outgoing(address),
            &Settings::default(),
            &Connections::default(),
        )
        .await;
        let error = answer.error.unwrap();
        assert!(error.contains("a loopback address; refused"), "{error}");
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
    }
}
