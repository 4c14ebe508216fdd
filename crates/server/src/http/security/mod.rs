//! Security over HTTP: the guard every route passes ([`middleware::guard`], with the rule table
//! in [`rules`]), and the endpoints for users, tokens, the caller's identity and the audit log.

pub(crate) mod handlers;
pub(crate) mod middleware;
pub(crate) mod rules;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use super::AppState;
use crate::caller_connections::CallerConnections;
use axum::{
    routing::{delete, get, post, put},
    Router,
};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// Refused requests written to the audit log per second, at most; the rest are only counted
/// in the server log. Enough to see an attack, too few to fill a disk with it.
pub const REFUSALS_AUDITED_PER_SECOND: u64 = 50;

/// The door's security settings.
#[derive(Debug, Default)]
pub struct SecuritySettings {
    /// `/metrics` without credentials.
    pub metrics_public: bool,
    refusals: RefusalBudget,
    /// Open connections per caller (see `caller_connections`).
    pub(crate) connections: Arc<CallerConnections>,
}

impl SecuritySettings {
    /// Settings with no limit on connections per caller.
    pub fn new(metrics_public: bool) -> SecuritySettings {
        SecuritySettings {
            metrics_public,
            refusals: RefusalBudget::default(),
            connections: CallerConnections::new(0),
        }
    }

    /// At most `max` open connections per caller (0: no limit).
    pub fn with_connections_per_caller(self, max: usize) -> SecuritySettings {
        SecuritySettings {
            connections: CallerConnections::new(max),
            ..self
        }
    }
}

/// A budget of [`REFUSALS_AUDITED_PER_SECOND`] audit entries per wall-clock second.
#[derive(Debug, Default)]
pub(crate) struct RefusalBudget {
    /// The second (since the epoch) and count, packed: second << 16 | count.
    state: AtomicU64,
}

impl RefusalBudget {
    pub(crate) fn allow(&self) -> bool {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (seen, count) = (current >> 16, current & 0xffff);
            let next = match seen == second {
                true if count >= REFUSALS_AUDITED_PER_SECOND => return false,
                true => current + 1,
                false => (second << 16) | 1,
            };
            match (self.state).compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/whoami", get(handlers::whoami))
        .route(
            "/v1/tokens",
            post(handlers::create_token).get(handlers::list_tokens),
        )
        .route("/v1/tokens/{id}", delete(handlers::revoke_token))
        .route("/v1/users", get(handlers::list_users))
        .route(
            "/v1/users/{name}",
            put(handlers::put_user).delete(handlers::delete_user),
        )
        .route("/v1/audit", get(handlers::read_audit))
}
