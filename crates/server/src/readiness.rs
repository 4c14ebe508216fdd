//! Whether the server can take traffic, as `/readyz` reports it.
//!
//! The serve loop owns the transitions (store opened, shutdown begun, store closed); the HTTP
//! door only reads them. Atomics, because every readiness probe reads and only lifecycle
//! changes write.

use std::sync::atomic::{AtomicBool, Ordering};

/// Lifecycle flags shared between the serve loop and the `/readyz` handler.
#[derive(Debug, Default)]
pub struct Readiness {
    store_open: AtomicBool,
    shutting_down: AtomicBool,
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
