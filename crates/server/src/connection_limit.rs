//! A cap on open HTTP connections.
//!
//! Every connection costs a task, buffers and a file descriptor. Without a cap, a client that
//! opens thousands of idle connections takes the descriptors the server needs for its own
//! files and every other client. [`LimitedListener`] holds one permit per open connection; a
//! connection over the cap is answered at once with `503` and a problem+json body naming the
//! limit, then closed, and counted in `wharf_http_connections_refused_total`.
//!
//! A cap alone lets silent clients hold every slot for ever, so a connection on which no byte
//! moves in either direction for `limits.http_idle_timeout_ms` is closed: an idle keep-alive
//! connection, one that never sends a request, one that stops halfway through its request head
//! or body, or one that stops reading its response. A request being handled (a long poll, a
//! request-reply waiting up to 5 min) moves no bytes either but is not idle: [`track_request`]
//! counts the connection's requests in handling, and while there are any the timer waits.
//!
//! A client that drips a byte of its request now and then is never idle, so a request must also
//! arrive whole, head and body, within `limits.http_request_read_timeout_ms` of its first byte.
//! The stream sees bytes, not requests: a request has arrived once [`track_request`] begins
//! handling it, which it counts, so bytes read after that count start the next request.
//!
//! Over TLS the same limits apply to the TLS stream's plaintext (see [`crate::tls`]): the
//! handshake moves no plaintext, so a handshake left unfinished is closed as idle. A TLS
//! connection over the cap is closed without the `503`: answering would take a handshake,
//! the very work the cap is there to refuse.
//!
//! Accepting can fail for want of descriptors (EMFILE, ENFILE). The pending connection then
//! stays queued, so retrying at once would spin; the listener pauses [`ACCEPT_RETRY_DELAY`]
//! and logs at most one line per throttle interval, and accepts again as soon as a descriptor
//! is free.

use crate::tls::{ReloadableTls, Transport};
use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{connect_info::Connected, ConnectInfo, Request},
    middleware::Next,
    response::Response,
    serve::{IncomingStream, Listener},
};
use prometheus_client::metrics::counter::Counter;
use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use wharf_engine::log_throttle::LogThrottle;

/// The pause after an accept that failed for a cause other than the peer: short, so that the
/// server accepts again within a few milliseconds of a descriptor coming free, and long enough
/// that a lasting failure costs no measurable CPU (50 retries a second).
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(20);

static ACCEPT_FAILURES: LogThrottle = LogThrottle::new();

/// Accepts connections while fewer than the limit are open.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    max: usize,
    timeouts: Timeouts,
    refused: Counter,
    /// Set: every connection is TLS with the configuration current when it is accepted.
    tls: Option<Arc<ReloadableTls>>,
}

/// How long a connection may stay idle, and how long a request may take to arrive whole.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub request_read: Duration,
}

/// An accepted connection; its permit returns when it closes.
#[derive(Debug)]
pub struct LimitedStream {
    stream: Transport,
    _permit: OwnedSemaphorePermit,
    timeouts: Timeouts,
    /// When a byte last moved, read or written.
    active_at: Instant,
    /// When the first byte of the request being read came, and how many requests had begun
    /// by then: once that count moves, the request arrived.
    reading_since: Option<(Instant, u64)>,
    /// Fires at `active_at + idle_timeout` or earlier; re-armed when it finds activity since,
    /// so that a busy connection does not touch the timer on every read.
    idle: Pin<Box<Sleep>>,
    requests: ConnectionRequests,
}

/// Requests of one connection being handled, and how many began; shared between the stream
/// and the handlers through axum's connect info.
#[derive(Debug, Clone, Default)]
pub struct ConnectionRequests(Arc<RequestCounts>);

#[derive(Debug, Default)]
struct RequestCounts {
    handling: AtomicUsize,
    begun: AtomicU64,
    /// The client's address, for the audit log.
    peer: Option<SocketAddr>,
    /// The caller the connection counts against (see `caller_connections`).
    owner: crate::caller_connections::ConnectionOwner,
}

impl ConnectionRequests {
    fn new(peer: SocketAddr) -> ConnectionRequests {
        ConnectionRequests(Arc::new(RequestCounts {
            peer: Some(peer),
            ..RequestCounts::default()
        }))
    }

    /// The client's address, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.0.peer
    }

    /// The slot of the caller this connection counts against.
    pub fn owner(&self) -> &crate::caller_connections::ConnectionOwner {
        &self.0.owner
    }

    fn handling(&self) -> usize {
        self.0.handling.load(Ordering::Acquire)
    }

    fn begun(&self) -> u64 {
        self.0.begun.load(Ordering::Acquire)
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for ConnectionRequests {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        stream.io().requests.clone()
    }
}

/// Middleware: counts the request as in handling on its connection from the moment its body
/// is in whole until its response (or its cancellation), so the idle timeout spares a request
/// that waits, but not a client that stops in the middle of its body.
pub async fn track_request(request: Request, next: Next) -> Response {
    let Some(ConnectInfo(requests)) = request
        .extensions()
        .get::<ConnectInfo<ConnectionRequests>>()
        .cloned()
    else {
        return next.run(request).await;
    };
    let handling = Arc::new(OnceLock::new());
    let request = if request.body().is_end_stream() {
        let _ = handling.set(RequestHandling::begin(requests));
        request
    } else {
        let handling = handling.clone();
        request.map(|inner| {
            Body::new(CountedBody {
                inner,
                requests: Some(requests),
                handling,
            })
        })
    };
    next.run(request).await
}

/// A request body that starts its request's count once the last byte is in.
struct CountedBody {
    inner: Body,
    requests: Option<ConnectionRequests>,
    /// Shared with [`track_request`], which holds it until the response.
    handling: Arc<OnceLock<RequestHandling>>,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream();
        if let (true, Some(requests)) = (ended, this.requests.take()) {
            let _ = this.handling.set(RequestHandling::begin(requests));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

struct RequestHandling(ConnectionRequests);

impl RequestHandling {
    fn begin(requests: ConnectionRequests) -> RequestHandling {
        requests.0.handling.fetch_add(1, Ordering::AcqRel);
        requests.0.begun.fetch_add(1, Ordering::AcqRel);
        RequestHandling(requests)
    }
}

impl Drop for RequestHandling {
    fn drop(&mut self) {
        (self.0).0.handling.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LimitedListener {
    pub fn new(
        inner: TcpListener,
        max: usize,
        timeouts: Timeouts,
        refused: Counter,
        tls: Option<Arc<ReloadableTls>>,
    ) -> LimitedListener {
        LimitedListener {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            max,
            timeouts,
            refused,
            tls,
        }
    }
}

impl Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let now = Instant::now();
                    // A response leaves in several writes (TLS records, or head and body);
                    // with Nagle on, each after the first waits for the client's delayed ACK.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "could not disable Nagle's algorithm");
                    }
                    let stream = match &self.tls {
                        Some(tls) => tls.accept(stream),
                        None => Transport::Plain(stream),
                    };
                    let stream = LimitedStream {
                        stream,
                        _permit: permit,
                        timeouts: self.timeouts,
                        active_at: now,
                        reading_since: None,
                        idle: Box::pin(tokio::time::sleep_until(now + self.timeouts.idle)),
                        requests: ConnectionRequests::new(addr),
                    };
                    return (stream, addr);
                }
                Err(_) => {
                    self.refused.inc();
                    if self.tls.is_none() {
                        tokio::spawn(refuse(stream, self.max));
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Waits out a failed accept. A connection the peer reset before it was accepted is no
/// failure of the server's and is retried at once.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if let Some(suppressed) = ACCEPT_FAILURES.allow() {
        let descriptors_exhausted = is_descriptors_exhausted(&error);
        tracing::warn!(
            %error,
            descriptors_exhausted,
            suppressed,
            "accepting a connection failed; retrying"
        );
    }
    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
}

/// The process (EMFILE) or the system (ENFILE) has no descriptor left.
fn is_descriptors_exhausted(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl LimitedStream {
    /// Ready with an error once no byte has moved for the idle timeout, or a request has not
    /// arrived whole in time; registers the waker otherwise. Called only when the socket
    /// itself is not ready.
    fn poll_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.requests.handling() > 0 {
                self.active_at = Instant::now();
            }
            let idle_deadline = self.active_at + self.timeouts.idle;
            let (deadline, limit) = match self.request_deadline() {
                Some(read) if read < idle_deadline => (
                    read,
                    "request not read whole within limits.http_request_read_timeout_ms",
                ),
                _ => (
                    idle_deadline,
                    "connection idle for limits.http_idle_timeout_ms",
                ),
            };
            if deadline <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, limit)));
            }
            self.idle.as_mut().reset(deadline);
        }
    }

    /// When the request being read must have arrived, if one is being read.
    fn request_deadline(&self) -> Option<Instant> {
        let (since, begun) = self.reading_since?;
        let arriving = self.requests.begun() == begun && self.requests.handling() == 0;
        arriving.then_some(since + self.timeouts.request_read)
    }

    /// Bytes read: the first of a request starts its read deadline.
    fn read_moved(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.moved(bytes);
        if self.request_deadline().is_some() || self.requests.handling() > 0 {
            return;
        }
        self.reading_since = Some((self.active_at, self.requests.begun()));
        let deadline = self.active_at + self.timeouts.request_read;
        if deadline < self.idle.deadline() {
            self.idle.as_mut().reset(deadline);
        }
    }

    /// A write the client does not drain for the idle timeout fails too: a client that stopped
    /// reading holds its slot no longer than a silent one.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(bytes)) => {
                self.moved(bytes);
                Poll::Ready(Ok(bytes))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.poll_idle(cx),
        }
    }

    fn moved(&mut self, bytes: usize) {
        if bytes > 0 {
            self.active_at = Instant::now();
        }
    }
}

/// Answers a connection over the limit without reading its request, then closes it.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = format!(
        r#"{{"type":"about:blank","title":"Service Unavailable","status":503,"code":"limit_reached","detail":"the limit http_connections_max = {max} open connections is reached; try again later"}}"#
    );
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // The client may already be gone; there is nothing more to do for it either way.
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read_moved(buf.filled().len() - before);
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx),
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_accept_without_descriptors_pauses_and_a_reset_peer_does_not() {
        let exhausted = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(is_descriptors_exhausted(&exhausted));
        assert!(is_descriptors_exhausted(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        let started = Instant::now();
        accept_failed(exhausted).await;
        assert!(started.elapsed() >= ACCEPT_RETRY_DELAY);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(!is_descriptors_exhausted(&reset));
        let started = Instant::now();
        accept_failed(reset).await;
        assert!(started.elapsed() < ACCEPT_RETRY_DELAY, "retried at once");
    }
}
