//! JSON bodies of the security endpoints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wharf_engine::security::{
    audit::AuditRecord, Action, Grant, Identity, Principal, TokenInfo, UserInfo,
};

/// One grant: actions on the resources a `kind:pattern` names (`queue:orders.*`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// `read` (consume), `write` (send, publish), `manage` (create, change, delete, purge,
    /// redrive, bind), `admin` (everything, users and tokens too).
    #[schema(example = json!(["read", "write"]))]
    pub actions: Vec<ActionBody>,
    /// `KIND:PATTERN`; kinds `queue`, `topic`, `stream`, `events`, `webhook` or `*`; names in
    /// the AMQP pattern syntax (`*` one word, `#` any), `*` alone for every name.
    #[schema(example = "queue:orders.*")]
    pub resource: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionBody {
    Read,
    Write,
    Manage,
    Admin,
}

impl From<ActionBody> for Action {
    fn from(action: ActionBody) -> Action {
        match action {
            ActionBody::Read => Action::Read,
            ActionBody::Write => Action::Write,
            ActionBody::Manage => Action::Manage,
            ActionBody::Admin => Action::Admin,
        }
    }
}

impl From<Action> for ActionBody {
    fn from(action: Action) -> ActionBody {
        match action {
            Action::Read => ActionBody::Read,
            Action::Write => ActionBody::Write,
            Action::Manage => ActionBody::Manage,
            Action::Admin => ActionBody::Admin,
        }
    }
}

impl From<&Grant> for GrantBody {
    fn from(grant: &Grant) -> GrantBody {
        GrantBody {
            actions: grant.actions.iter().map(|a| (*a).into()).collect(),
            resource: grant.resource.to_string(),
        }
    }
}

/// `PUT /v1/users/{name}`: an existing user keeps what is left out; a new user without a
/// password cannot sign in (tokens made for it act for it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// 8 to 1,024 bytes; stored only as an Argon2id hash.
    pub password: Option<String>,
    pub grants: Option<Vec<GrantBody>>,
}

/// A user: never its password.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfoBody {
    pub name: String,
    pub grants: Vec<GrantBody>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
}

impl From<UserInfo> for UserInfoBody {
    fn from(user: UserInfo) -> Self {
        UserInfoBody {
            name: user.name,
            grants: user.grants.iter().map(Into::into).collect(),
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListBody {
    pub users: Vec<UserInfoBody>,
}

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    #[schema(example = "ci-deploy")]
    pub name: String,
    /// Each must be held by the caller (an administrator may give any).
    pub grants: Vec<GrantBody>,
    /// Lifetime in seconds; none for a token that lasts until revoked.
    pub expires_in_s: Option<u64>,
}

/// A token: its secret only in the answer that created it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfoBody {
    pub id: String,
    pub name: String,
    /// The secret to send as `Authorization: Bearer ...`; shown once, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The user it acts for, if any.
    pub owner: Option<String>,
    pub grants: Vec<GrantBody>,
    pub created_at: u64,
    pub expires_at: Option<u64>,
}

impl TokenInfoBody {
    pub fn new(info: TokenInfo, token: Option<String>) -> TokenInfoBody {
        TokenInfoBody {
            id: info.id,
            name: info.name,
            token,
            owner: info.owner,
            grants: info.grants.iter().map(Into::into).collect(),
            created_at: info.created_at,
            expires_at: info.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenListBody {
    pub tokens: Vec<TokenInfoBody>,
}

/// `GET /v1/whoami`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiBody {
    /// `anonymous` (the server has no users yet), `user` or `token`.
    pub kind: String,
    /// The user's name or the token's name.
    pub name: Option<String>,
    /// The token's id.
    pub id: Option<String>,
    /// The user a token acts for.
    pub owner: Option<String>,
    pub grants: Vec<GrantBody>,
}

impl From<&Principal> for WhoamiBody {
    fn from(principal: &Principal) -> Self {
        let grants = principal.grants().iter().map(Into::into).collect();
        let (kind, name, id, owner) = match &principal.identity {
            Identity::Anonymous => ("anonymous", None, None, None),
            Identity::User { name } => ("user", Some(name.clone()), None, None),
            Identity::Token { id, name, owner } => {
                ("token", Some(name.clone()), Some(id.clone()), owner.clone())
            }
            Identity::Browser { member } => ("browser", Some(member.clone()), None, None),
        };
        WhoamiBody {
            kind: kind.to_string(),
            name,
            id,
            owner,
            grants,
        }
    }
}

/// `GET /v1/audit` query.
#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this offset (the `offset` of the last entry read); from the start when
    /// absent.
    pub after: Option<u64>,
    /// At most this many entries (1 to 1,000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryBody {
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// `user:NAME`, `token:ID`, `anonymous` or `unauthenticated`.
    pub who: String,
    /// The caller's address.
    pub from: Option<String>,
    /// `METHOD /path/{template}`.
    pub operation: String,
    pub resource: Option<String>,
    /// `ok`, `denied`, `unauthenticated` or `failed: STATUS`.
    pub outcome: String,
}

impl From<AuditRecord> for AuditEntryBody {
    fn from(record: AuditRecord) -> Self {
        let entry = record.entry;
        AuditEntryBody {
            offset: record.offset,
            at: entry.at,
            who: entry.who,
            from: entry.from,
            operation: entry.operation,
            resource: entry.resource,
            outcome: entry.outcome,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditListBody {
    pub entries: Vec<AuditEntryBody>,
}
