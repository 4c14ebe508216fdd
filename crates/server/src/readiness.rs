//! Whether the server can take traffic, as `/readyz` reports it.
//!
//! The serve loop owns the transitions (store opened, shutdown begun, store closed); the HTTP
//! door only reads them. Atomics, because every readiness probe reads and only lifecycle
//! changes write.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Lifecycle flags shared between the serve loop and the `/readyz` handler.
#[derive(Debug, Default)]
pub struct Readiness {
    store_open: AtomicBool,
    shutting_down: AtomicBool,
    /// Wakes [`Readiness::shutdown_begun`] waiters: long polls end early rather than hold the
    /// drain for up to their whole wait.
    shutdown_started: Notify,
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
    use std::{sync::Arc, time::Duration};

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
