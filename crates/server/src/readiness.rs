//! Whether the server can take traffic, as `/readyz` reports it.
//!
//! The serve loop owns the transitions (store opened, shutdown begun, store closed); the HTTP
//! door only reads them. Atomics, because every readiness probe reads and only lifecycle
//! changes write.

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};
use tokio::sync::Notify;

/// Lifecycle flags shared between the serve loop and the `/readyz` handler.
#[derive(Debug, Default)]
pub struct Readiness {
    store_open: AtomicBool,
    shutting_down: AtomicBool,
    /// Wakes [`Readiness::shutdown_begun`] waiters: long polls end early rather than hold the
    /// drain for up to their whole wait.
    shutdown_started: Notify,
    /// Upgraded sockets (real-time WebSockets) still open. Graceful shutdown stops waiting for
    /// a connection once it is upgraded, so the serve loop waits for these itself: each ends
    /// with its close handshake, and a process that exits in the middle of one resets the
    /// socket, which makes the client drop the close frame it has not read yet.
    open_sockets: AtomicUsize,
}

/// One open upgraded socket, counted until dropped (see [`Readiness::socket_opened`]).
#[derive(Debug)]
pub struct OpenSocket(Arc<Readiness>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.open_sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why the server is not ready; `None` from [`Readiness::blocker`] means ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    StoreClosed,
    ShuttingDown,
}

impl Readiness {
    pub fn set_store_open(&self, open: bool) {
        self.store_open.store(open, Ordering::Release);
    }

    /// Marks the start of graceful shutdown; readiness never comes back afterwards.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.shutdown_started.notify_waiters();
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn shutdown_begun(&self) {
        let notified = self.shutdown_started.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a shutdown in between is not missed.
        notified.as_mut().enable();
        if self.is_shutting_down() {
            return;
        }
        notified.await;
    }

    /// Counts an upgraded socket as open until the returned guard is dropped.
    pub fn socket_opened(self: &Arc<Self>) -> OpenSocket {
        self.open_sockets.fetch_add(1, Ordering::AcqRel);
        OpenSocket(self.clone())
    }

    /// Upgraded sockets still open.
    pub fn open_sockets(&self) -> usize {
        self.open_sockets.load(Ordering::Acquire)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// What keeps the server from taking traffic, shutdown first since it is final.
    pub fn blocker(&self) -> Option<NotReady> {
        if self.is_shutting_down() {
            Some(NotReady::ShuttingDown)
        } else if !self.store_open.load(Ordering::Acquire) {
            Some(NotReady::StoreClosed)
        } else {
            None
        }
    }
}

impl NotReady {
    pub fn describe(self) -> &'static str {
        match self {
            NotReady::StoreClosed => "the store is not open",
            NotReady::ShuttingDown => "the server is shutting down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_socket_counts_as_open_until_its_guard_drops() {
        let readiness = Arc::new(Readiness::default());
        let first = readiness.socket_opened();
        let second = readiness.socket_opened();
        assert_eq!(readiness.open_sockets(), 2);
        drop(first);
        assert_eq!(readiness.open_sockets(), 1);
        drop(second);
        assert_eq!(readiness.open_sockets(), 0);
    }

    #[tokio::test]
    async fn shutdown_begun_wakes_waiters_and_late_callers() {
        let readiness = Arc::new(Readiness::default());
        let waiter = tokio::spawn({
            let readiness = readiness.clone();
            async move { readiness.shutdown_begun().await }
        });
        tokio::task::yield_now().await;
        readiness.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter woken")
            .expect("no panic");
        tokio::time::timeout(Duration::from_secs(5), readiness.shutdown_begun())
            .await
            .expect("a late caller returns at once");
    }
}
