//! Open connections per caller: `limits.http_connections_per_caller`.
//!
//! HTTP authenticates each request, not the connection, so a connection belongs to the first
//! caller (user, or token without a user) that authenticates on it, and counts against that
//! caller until it closes. A caller at its limit is refused on a new connection with 429 naming
//! the limit; its open connections go on. Anonymous callers (a server with no users) and
//! administrators are not counted. The count is released when the last handle of the
//! connection's state drops, whichever of the stream and the requests that is.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

/// How many connections each caller holds.
#[derive(Debug, Default)]
pub struct CallerConnections {
    max: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// A connection's claim on a caller's count, released on drop.
#[derive(Debug)]
pub struct Claim {
    caller: String,
    registry: Arc<CallerConnections>,
}

impl CallerConnections {
    /// `max` connections per caller; 0: no limit.
    pub fn new(max: usize) -> Arc<CallerConnections> {
        Arc::new(CallerConnections {
            max,
            counts: Mutex::default(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more connection of `caller`, or refuses when it holds `max` already.
    fn take(self: &Arc<Self>, caller: &str) -> Option<Claim> {
        let mut counts = self.counts();
        let count = counts.entry(caller.to_string()).or_default();
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Claim {
            caller: caller.to_string(),
            registry: self.clone(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut counts = self.registry.counts();
        if let Some(count) = counts.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.caller);
            }
        }
    }
}

/// The claim slot of one connection: empty until a counted caller authenticates on it.
#[derive(Debug, Default)]
pub struct ConnectionOwner(OnceLock<Claim>);

impl ConnectionOwner {
    /// Makes `caller` the connection's owner if it has none. False when the caller is at its
    /// limit (the connection stays unowned, and this request is to be refused).
    pub fn claim(&self, registry: &Arc<CallerConnections>, caller: &str) -> bool {
        if self.0.get().is_some() {
            return true;
        }
        match registry.take(caller) {
            Some(claim) => {
                // A concurrent claim on the same connection may win; ours then drops, released.
                let _ = self.0.set(claim);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_holds_at_most_max_connections_until_one_closes() {
        let registry = CallerConnections::new(2);
        let connections: Vec<ConnectionOwner> =
            (0..3).map(|_| ConnectionOwner::default()).collect();
        assert!(connections[0].claim(&registry, "user:a"));
        assert!(
            connections[0].claim(&registry, "user:a"),
            "a connection is claimed once"
        );
        assert!(connections[1].claim(&registry, "user:a"));
        assert!(
            !connections[2].claim(&registry, "user:a"),
            "a third is refused"
        );
        assert!(
            connections[2].claim(&registry, "user:b"),
            "another caller is not"
        );
        let mut connections = connections;
        drop(connections.remove(0));
        let again = ConnectionOwner::default();
        assert!(
            again.claim(&registry, "user:a"),
            "a closed connection gives its place back"
        );
        let unlimited = CallerConnections::new(0);
        let many: Vec<ConnectionOwner> = (0..100).map(|_| ConnectionOwner::default()).collect();
        assert!(many.iter().all(|c| c.claim(&unlimited, "user:a")));
    }
}
