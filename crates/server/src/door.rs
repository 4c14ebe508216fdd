//! What the protocol doors (AMQP, MQTT) share: their listeners, plain and TLS, the cap on
//! the connections they hold open, and the bound on the bytes of publishes a connection has
//! on their way to the store ([`PublishBudget`]). A door gives [`Listeners::serve`] a
//! function that serves one accepted connection; each runs on a task of its own.

use crate::tls::{ReloadableTls, Transport};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// The pause after a failed accept (out of descriptors): retrying at once would spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Connections the kernel queues before they are accepted (it caps this at `somaxconn`):
/// thousands of devices reconnecting at once after a restart must not be dropped and left to
/// retry their SYN a second later, as with a backlog of 128.
const LISTEN_BACKLOG: u32 = 4_096;

/// Body bytes of a connection's publishes queued for its publisher task or being stored: past
/// it the connection's read loop waits for room (and TCP holds the client back), so a client
/// holds at most this much of the server's memory in publishes, whatever their size. At least
/// the largest message either door takes (MQTT's 16 MiB packet, AMQP's 8 MiB body).
const PUBLISH_BYTES_MAX: usize = 16 << 20;
/// The unit of the budget's semaphore.
const PUBLISH_PERMIT_BYTES: usize = 1_024;
const PUBLISH_PERMITS: u32 = (PUBLISH_BYTES_MAX / PUBLISH_PERMIT_BYTES) as u32;

/// One connection's [`PUBLISH_BYTES_MAX`]: a publish takes its share before it is queued and
/// holds it (as a [`OwnedSemaphorePermit`]) until it is stored or refused.
#[derive(Debug, Clone)]
pub(crate) struct PublishBudget(Arc<Semaphore>);

impl PublishBudget {
    pub fn new() -> PublishBudget {
        PublishBudget(Arc::new(Semaphore::new(PUBLISH_PERMITS as usize)))
    }

    /// Waits for room for `bytes` of bodies; `None` once the budget is closed (never: nothing
    /// closes it).
    pub async fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.0
            .clone()
            .acquire_many_owned(permits_for(bytes))
            .await
            .ok()
    }
}

/// Permits for `bytes`: one per started KiB, at least one, at most all of them.
fn permits_for(bytes: usize) -> u32 {
    let units = bytes.div_ceil(PUBLISH_PERMIT_BYTES).max(1);
    u32::try_from(units).map_or(PUBLISH_PERMITS, |units| units.min(PUBLISH_PERMITS))
}

/// A door's listeners: plain, TLS, or both; and the cap on connections both share.
#[derive(Debug)]
pub struct Listeners {
    /// The protocol's name, for the logs.
    protocol: &'static str,
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<ReloadableTls>)>,
    connections: Arc<Semaphore>,
    connections_max: usize,
}

/// Whether a connection fits under the cap: it holds its permit while open; one over the cap
/// is refused at its handshake, so its client reads why.
pub(crate) enum Admission {
    /// Held, not read: dropping it frees the slot.
    Admitted {
        _permit: OwnedSemaphorePermit,
    },
    Full(usize),
    /// Counted by another door's cap: MQTT over WebSocket, under the HTTP door's.
    Counted,
}

impl Listeners {
    /// Binds `plain` and, with a TLS configuration, `tls`; `None` when neither listens.
    pub async fn bind(
        protocol: &'static str,
        plain: Option<SocketAddr>,
        tls: Option<(SocketAddr, Arc<ReloadableTls>)>,
        connections_max: usize,
    ) -> Result<Option<Listeners>, (SocketAddr, std::io::Error)> {
        if plain.is_none() && tls.is_none() {
            return Ok(None);
        }
        let bind = |addr: SocketAddr| async move { listen(addr).map_err(|error| (addr, error)) };
        let plain = match plain {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let tls = match tls {
            Some((addr, config)) => Some((bind(addr).await?, config)),
            None => None,
        };
        Ok(Some(Listeners {
            protocol,
            plain,
            tls,
            connections: Arc::new(Semaphore::new(connections_max)),
            connections_max,
        }))
    }

    /// The plain listener's address (the real port when port 0 was asked for).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref()?.local_addr().ok()
    }

    /// The TLS listener's address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref()?.0.local_addr().ok()
    }

    /// Accepts connections until the task is aborted, and hands each to `serve` with the
    /// client's address and its admission.
    pub(crate) async fn serve<F>(self, serve: F)
    where
        F: Fn(Transport, SocketAddr, Admission) + Send + Sync,
    {
        let accept = Accept {
            protocol: self.protocol,
            connections: self.connections,
            connections_max: self.connections_max,
            serve,
        };
        match (self.plain, self.tls) {
            (Some(plain), Some((tls, config))) => {
                tokio::join!(accept.run(plain, None), accept.run(tls, Some(config)));
            }
            (Some(plain), None) => accept.run(plain, None).await,
            (None, Some((tls, config))) => accept.run(tls, Some(config)).await,
            (None, None) => {}
        }
    }
}

/// A listener on `addr` with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

struct Accept<F> {
    protocol: &'static str,
    connections: Arc<Semaphore>,
    connections_max: usize,
    serve: F,
}

impl<F: Fn(Transport, SocketAddr, Admission)> Accept<F> {
    async fn run(&self, listener: TcpListener, tls: Option<Arc<ReloadableTls>>) {
        // Ends: when the task is aborted (the server stops).
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let transport = match &tls {
                        Some(tls) => tls.accept(stream),
                        None => Transport::Plain(stream),
                    };
                    let admission = match self.connections.clone().try_acquire_owned() {
                        Ok(permit) => Admission::Admitted { _permit: permit },
                        Err(_) => Admission::Full(self.connections_max),
                    };
                    (self.serve)(transport, peer, admission);
                }
                Err(error) => {
                    let protocol = self.protocol;
                    tracing::warn!(%error, protocol, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_permits_count_started_kilobytes_and_never_exceed_the_whole() {
        assert_eq!(permits_for(0), 1);
        assert_eq!(permits_for(1), 1);
        assert_eq!(permits_for(1_024), 1);
        assert_eq!(permits_for(1_025), 2);
        assert_eq!(permits_for(PUBLISH_BYTES_MAX), PUBLISH_PERMITS);
        assert_eq!(permits_for(PUBLISH_BYTES_MAX * 4), PUBLISH_PERMITS);
    }

    #[tokio::test]
    async fn a_publish_waits_until_earlier_ones_give_their_bytes_back() {
        let budget = PublishBudget::new();
        let most = budget.take(PUBLISH_BYTES_MAX - 1_024).await.unwrap();
        let last_kib = budget.take(1_000).await.unwrap();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(2_048).await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room for 2 KiB yet");
        drop(last_kib);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "1 KiB back is not enough");
        drop(most);
        assert!(waiting.await.unwrap());
    }
}
