//! What the protocol doors (AMQP, MQTT) share: their listeners, plain and TLS, and the cap on
//! the connections they hold open. A door gives [`Listeners::serve`] a function that serves one
//! accepted connection; each runs on a task of its own.

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
