//! Security: who calls ([`Principal`], from [`Credentials`]), what they may do ([`Grant`]s),
//! and the audit log of what was done.
//!
//! One model for every door. Users (a name, an Argon2id password hash, grants) and tokens (a
//! random secret shown once, stored as a digest, with grants, an optional expiry and an owner)
//! live in the metadata store, so they survive restarts like any definition, and in memory, so
//! a check costs a map lookup. A door turns what its protocol carries (HTTP Basic or Bearer,
//! AMQP PLAIN, MQTT username and password, Kafka SASL PLAIN) into [`Credentials`], asks
//! [`Engine::authenticate`](crate::Engine::authenticate) for the [`Principal`], and asks
//! [`Engine::authorize`](crate::Engine::authorize) before each operation, naming the
//! [`Action`] and the [`Resource`]. The engine's own calls check nothing: the doors do, once
//! per operation, with this one function.
//!
//! A store with no user and no token is *open*: every caller is the anonymous principal, who
//! may do everything. The server allows that only on a loopback address unless told
//! otherwise; the first user or token created ends it.

pub(crate) mod accounts;
pub mod audit;
pub mod grant;
pub mod limits;
pub mod quotas;
pub(crate) mod secrets;

pub use accounts::{CreatedToken, TokenInfo, TokenRequest, UserInfo, TOKEN_EXPIRES_IN_MAX};
pub use grant::{Action, Grant, Resource, ResourceKind, ResourcePattern, ResourcePatternError};

use std::{
    fmt,
    sync::{Arc, LazyLock},
};

/// Longest password accepted, in bytes: Argon2 hashes any length, but a megabyte password is
/// only a way to make the server work.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Shortest password accepted.
pub const PASSWORD_BYTES_MIN: usize = 8;

/// What a caller presents.
#[derive(Clone)]
pub enum Credentials {
    /// A user's name and password (HTTP Basic, AMQP PLAIN, MQTT, SASL PLAIN).
    Password { user: String, password: String },
    /// A token's secret (HTTP Bearer; a password field whose user name is empty elsewhere).
    Token(String),
}

impl fmt::Debug for Credentials {
    /// Never shows a secret, not even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password { user, .. } => write!(f, "Password {{ user: {user:?} }}"),
            Credentials::Token(_) => f.write_str("Token"),
        }
    }
}

/// Why a caller could not be identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("credentials are required")]
    Missing,
    #[error("the credentials are malformed")]
    Malformed,
    /// An unknown user, a wrong password, an unknown or revoked token: one answer for all, so
    /// a caller cannot learn which names exist.
    #[error("the credentials are not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// Who a caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Anyone, while the store has no user and no token.
    Anonymous,
    User {
        name: String,
    },
    Token {
        id: String,
        name: String,
        owner: Option<String>,
    },
    /// A browser holding a signed real-time token: its grants are the token's channels.
    Browser {
        member: String,
    },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::User { name } => write!(f, "user:{name}"),
            Identity::Token { id, .. } => write!(f, "token:{id}"),
            Identity::Browser { member } => write!(f, "browser:{member}"),
        }
    }
}

/// An identified caller and the grants it holds.
#[derive(Debug, Clone)]
pub struct Principal {
    pub identity: Identity,
    grants: Arc<[Grant]>,
}

impl Principal {
    pub(crate) fn new(identity: Identity, grants: Arc<[Grant]>) -> Principal {
        Principal { identity, grants }
    }

    /// The anonymous caller of an open store: allowed everything. Built once: every request
    /// to an open server is this caller.
    pub fn anonymous() -> Principal {
        static ADMIN: LazyLock<Arc<[Grant]>> = LazyLock::new(|| Arc::from([Grant::admin()]));
        Principal::new(Identity::Anonymous, ADMIN.clone())
    }

    /// The caller of a browser token the real-time door verified: allowed what the token
    /// names, nothing else.
    pub fn browser(member: String, grants: Vec<Grant>) -> Principal {
        Principal::new(Identity::Browser { member }, Arc::from(grants))
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// True when some grant allows `action` on `resource`.
    pub fn allows(&self, action: Action, resource: Resource<'_>) -> bool {
        self.grants
            .iter()
            .any(|grant| grant.allows(action, resource))
    }

    /// True when some grant allows any action on `resource`: what lists show.
    pub fn sees(&self, resource: Resource<'_>) -> bool {
        self.grants
            .iter()
            .any(|grant| grant.resource.matches(resource))
    }

    pub fn is_admin(&self) -> bool {
        self.grants.iter().any(Grant::is_admin)
    }

    /// Whom per-caller limits (definitions, connections) count this caller as: its user (a
    /// token counts as the user it acts for), or the token itself when it has none. `None` for
    /// administrators and the anonymous caller, who are not counted.
    pub fn account(&self) -> Option<String> {
        if self.is_admin() {
            return None;
        }
        match &self.identity {
            Identity::Anonymous => None,
            Identity::User { name } => Some(format!("user:{name}")),
            Identity::Token {
                owner: Some(user), ..
            } => Some(format!("user:{user}")),
            Identity::Token { id, .. } => Some(format!("token:{id}")),
            Identity::Browser { .. } => None,
        }
    }
}
