//! Users and tokens: kept in the metadata store (`user/NAME`, `token/ID`) and in memory.
//!
//! A token is `wharf_ID_SECRET`: the id finds its record without a scan, the 256-bit secret is
//! compared by digest in constant time. The administrator token seeded from the server's
//! configuration (`--admin-token`) is whatever string the operator chose, kept under the id
//! `admin`; a bearer string not shaped like a Wharf token is compared with it.
//!
//! Checking a password costs an Argon2id run (tens of milliseconds), too much for every HTTP
//! request of a client using Basic auth, so a verified (user, password digest) pair is
//! remembered until that user changes or goes; only the digest is kept.

use super::{
    grant::{Action, Grant, GRANTS_MAX},
    secrets, AuthFailure, Credentials, Identity, Principal, Resource, PASSWORD_BYTES_MAX,
    PASSWORD_BYTES_MIN,
};
use crate::{
    error::{Field, FieldProblem},
    Engine, EngineError,
};
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};
use wharf_storage::{MetaOp, Storage};

const USER_PREFIX: &str = "user/";
const TOKEN_PREFIX: &str = "token/";
/// Present once any user or token was stored: the store never runs open again.
const SECURED_KEY: &str = "security/secured";
/// The id of the token seeded from the server's configuration.
const ADMIN_TOKEN_ID: &str = "admin";
const TOKEN_PREFIX_TEXT: &str = "wharf_";

/// Most users, and most tokens, a store holds: each is a little memory and a metadata entry.
pub const ACCOUNTS_MAX: usize = 10_000;
/// Longest user or token name.
pub const ACCOUNT_NAME_BYTES_MAX: usize = 64;
/// Longest token lifetime: ten years.
pub const TOKEN_EXPIRES_IN_MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Most remembered password checks before the memory is cleared.
const VERIFIED_MAX: usize = 10_000;

/// A user as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRecord {
    /// The Argon2id hash; empty for a user without a password.
    password: String,
    /// Shared with every principal it authenticates: a request clones no grant.
    grants: Arc<[Grant]>,
    created_at: u64,
}

/// A token as stored: its secret only as a digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    name: String,
    owner: Option<String>,
    digest: String,
    /// Shared with every principal it authenticates: a request clones no grant.
    grants: Arc<[Grant]>,
    created_at: u64,
    expires_at: Option<u64>,
}

/// A user, as shown: never its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub grants: Vec<Grant>,
    pub created_at: u64,
}

/// A token, as shown after its creation: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    /// The user it acts for; `None` for tokens made by the anonymous caller or seeded.
    pub owner: Option<String>,
    pub grants: Vec<Grant>,
    pub created_at: u64,
    pub expires_at: Option<u64>,
}

/// What a caller asks for when creating a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub name: String,
    pub grants: Vec<Grant>,
    pub expires_in: Option<Duration>,
}

/// A new token: its secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub info: TokenInfo,
    pub token: String,
}

/// The users and tokens in memory.
#[derive(Debug)]
pub(crate) struct Accounts {
    users: RwLock<BTreeMap<String, UserRecord>>,
    tokens: RwLock<BTreeMap<String, TokenRecord>>,
    /// (user, password digest) pairs whose Argon2 check passed.
    verified: Mutex<HashSet<(String, [u8; 32])>>,
    /// Argon2 runs at once: each takes 19 MiB and tens of milliseconds, so a flood of wrong
    /// passwords must queue here rather than take the memory and every core.
    hashing: tokio::sync::Semaphore,
    /// Some user or token was ever stored (kept as [`SECURED_KEY`]): from then on the store
    /// never runs open again, even when its last credential is deleted.
    secured: AtomicBool,
    /// This run seeded the administrator token from the configuration, so it cannot be
    /// revoked over the API.
    admin_token_configured: AtomicBool,
}

/// Argon2 runs at once, at most (see `Accounts::hashing`): 4 use 76 MiB.
pub const PASSWORD_CHECKS_MAX: usize = 4;

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            users: RwLock::default(),
            tokens: RwLock::default(),
            verified: Mutex::default(),
            hashing: tokio::sync::Semaphore::new(PASSWORD_CHECKS_MAX),
            secured: AtomicBool::new(false),
            admin_token_configured: AtomicBool::new(false),
        }
    }
}

impl Accounts {
    /// Reads every user and token from the metadata store; unreadable entries are logged and
    /// left out (they grant nothing).
    pub(crate) fn load(store: &dyn Storage) -> Accounts {
        let accounts = Accounts::default();
        for (key, value) in store.meta_list(USER_PREFIX) {
            match serde_json::from_value::<UserRecord>(value) {
                Ok(user) => {
                    let name = key[USER_PREFIX.len()..].to_string();
                    accounts.users_mut().insert(name, user);
                }
                Err(error) => tracing::error!(%key, %error, "unreadable user left out"),
            }
        }
        for (key, value) in store.meta_list(TOKEN_PREFIX) {
            match serde_json::from_value::<TokenRecord>(value) {
                Ok(token) => {
                    let id = key[TOKEN_PREFIX.len()..].to_string();
                    accounts.tokens_mut().insert(id, token);
                }
                Err(error) => tracing::error!(%key, %error, "unreadable token left out"),
            }
        }
        let secured = !accounts.users().is_empty()
            || !accounts.tokens().is_empty()
            || !store.meta_list(SECURED_KEY).is_empty();
        accounts.secured.store(secured, Ordering::Relaxed);
        accounts
    }

    /// The write that marks the store secured, the first time a credential is stored.
    fn secured_mark(&self) -> Option<MetaOp> {
        let secured = self.secured.load(Ordering::Relaxed);
        (!secured).then(|| MetaOp::Put(SECURED_KEY.to_string(), serde_json::Value::Bool(true)))
    }

    fn users(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, UserRecord>> {
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }

    fn users_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, UserRecord>> {
        self.users.write().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, TokenRecord>> {
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, TokenRecord>> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashSet<(String, [u8; 32])>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget_verified(&self, user: &str) {
        self.verified().retain(|(name, _)| name != user);
    }
}

impl Engine {
    /// True while no user and no token exist: every caller is anonymous and allowed all.
    pub fn security_open(&self) -> bool {
        !self.inner.accounts.secured.load(Ordering::Relaxed)
    }

    /// Who `credentials` identify. `None` is a caller without credentials: anonymous while
    /// the store is open, refused otherwise.
    pub async fn authenticate(
        &self,
        credentials: Option<&Credentials>,
    ) -> Result<Principal, EngineError> {
        let refused = |reason| Err(EngineError::Unauthenticated { reason });
        match credentials {
            None if self.security_open() => Ok(Principal::anonymous()),
            None => refused(AuthFailure::Missing),
            Some(Credentials::Token(secret)) => self.authenticate_token(secret),
            Some(Credentials::Password { user, password }) if user.is_empty() => {
                self.authenticate_token(password)
            }
            Some(Credentials::Password { user, password }) => {
                self.authenticate_password(user, password).await
            }
        }
    }

    /// Refuses `action` on `resource` unless `principal` holds a grant for it.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: Resource<'_>,
    ) -> Result<(), EngineError> {
        match principal.allows(action, resource) {
            true => Ok(()),
            false => Err(EngineError::Forbidden {
                action,
                resource: resource.to_string(),
            }),
        }
    }

    fn authenticate_token(&self, presented: &str) -> Result<Principal, EngineError> {
        let invalid = EngineError::Unauthenticated {
            reason: AuthFailure::Invalid,
        };
        let (id, secret) = match parse_token(presented) {
            Some((id, secret)) => (id, secret),
            None => (ADMIN_TOKEN_ID, presented),
        };
        let tokens = self.inner.accounts.tokens();
        let Some(token) = tokens.get(id) else {
            return Err(invalid);
        };
        let digest = secrets::hex(&secrets::digest(secret.as_bytes()));
        if !secrets::equal(digest.as_bytes(), token.digest.as_bytes()) {
            return Err(invalid);
        }
        if token.expires_at.is_some_and(|at| at <= self.now()) {
            return Err(EngineError::Unauthenticated {
                reason: AuthFailure::Expired,
            });
        }
        if let Some(owner) = &token.owner {
            if !self.inner.accounts.users().contains_key(owner) {
                return Err(invalid);
            }
        }
        let identity = Identity::Token {
            id: id.to_string(),
            name: token.name.clone(),
            owner: token.owner.clone(),
        };
        Ok(Principal::new(identity, token.grants.clone()))
    }

    async fn authenticate_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Principal, EngineError> {
        let accounts = &self.inner.accounts;
        let record = accounts.users().get(user).cloned();
        let digest = secrets::digest(password.as_bytes());
        let remembered = accounts.verified().contains(&(user.to_string(), digest));
        let valid = match (&record, remembered) {
            (Some(_), true) => true,
            (record, _) => {
                // An unknown user, or one without a password, costs the same Argon2 run, so
                // timing does not tell names.
                let has_password = record.as_ref().is_some_and(|r| !r.password.is_empty());
                let hash = match &record {
                    Some(record) if has_password => record.password.clone(),
                    _ => DUMMY_HASH.to_string(),
                };
                let password = password.to_string();
                let _turn = accounts.hashing.acquire().await;
                let checked =
                    tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
                        .await
                        .unwrap_or(false);
                checked && has_password
            }
        };
        let Some(record) = record.filter(|_| valid) else {
            return Err(EngineError::Unauthenticated {
                reason: AuthFailure::Invalid,
            });
        };
        let mut verified = accounts.verified();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert((user.to_string(), digest));
        let identity = Identity::User {
            name: user.to_string(),
        };
        Ok(Principal::new(identity, record.grants))
    }

    /// Creates the user `name` (a password is then required) or changes its password and/or
    /// grants. Returns it, and whether it was created.
    pub async fn put_user(
        &self,
        name: &str,
        password: Option<String>,
        grants: Option<Vec<Grant>>,
    ) -> Result<(UserInfo, bool), EngineError> {
        validate_name(name, Field::UserName)?;
        if let Some(grants) = &grants {
            validate_grants(grants)?;
        }
        let _admin = self.inner.admin.lock().await;
        let existing = self.inner.accounts.users().get(name).cloned();
        let password = match (password, &existing) {
            (Some(password), _) => {
                let password: String = password;
                validate_password(&password)?;
                let _turn = self.inner.accounts.hashing.acquire().await;
                tokio::task::spawn_blocking(move || secrets::hash_password(&password))
                    .await
                    .map_err(|_| EngineError::Internal {
                        operation: "hash_password",
                    })?
            }
            (None, Some(existing)) => existing.password.clone(),
            // A user without a password cannot sign in; tokens made for it act for it.
            (None, None) => String::new(),
        };
        if existing.is_none() && self.inner.accounts.users().len() >= ACCOUNTS_MAX {
            return Err(EngineError::LimitReached {
                limit: "users",
                max: ACCOUNTS_MAX,
            });
        }
        let record = UserRecord {
            password,
            grants: grants.map(Arc::from).unwrap_or_else(|| {
                existing
                    .as_ref()
                    .map_or_else(|| Arc::from(Vec::new()), |u| u.grants.clone())
            }),
            created_at: existing.as_ref().map_or(self.now(), |u| u.created_at),
        };
        let value = serde_json::to_value(&record).expect("a user serializes");
        self.store_credential(format!("{USER_PREFIX}{name}"), value)
            .await?;
        let info = user_info(name, &record);
        self.inner
            .accounts
            .users_mut()
            .insert(name.to_string(), record);
        self.inner.accounts.forget_verified(name);
        Ok((info, existing.is_none()))
    }

    /// Deletes the user `name` and the tokens it owns.
    pub async fn delete_user(&self, name: &str) -> Result<(), EngineError> {
        let _admin = self.inner.admin.lock().await;
        if !self.inner.accounts.users().contains_key(name) {
            return Err(EngineError::UserNotFound {
                name: name.to_string(),
            });
        }
        let owned: Vec<String> = (self.inner.accounts.tokens().iter())
            .filter(|(_, token)| token.owner.as_deref() == Some(name))
            .map(|(id, _)| id.clone())
            .collect();
        let mut ops = vec![MetaOp::Delete(format!("{USER_PREFIX}{name}"))];
        ops.extend(
            owned
                .iter()
                .map(|id| MetaOp::Delete(format!("{TOKEN_PREFIX}{id}"))),
        );
        self.inner.store.meta_apply(ops).await?;
        self.inner.accounts.users_mut().remove(name);
        let mut tokens = self.inner.accounts.tokens_mut();
        for id in owned {
            tokens.remove(&id);
        }
        drop(tokens);
        self.inner.accounts.forget_verified(name);
        Ok(())
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Vec<UserInfo> {
        (self.inner.accounts.users().iter())
            .map(|(name, record)| user_info(name, record))
            .collect()
    }

    /// Creates a token for `creator`, with grants it holds itself (an administrator may give
    /// any). The secret is in the answer only.
    pub async fn create_token(
        &self,
        creator: &Principal,
        request: TokenRequest,
    ) -> Result<CreatedToken, EngineError> {
        validate_name(&request.name, Field::TokenName)?;
        validate_grants(&request.grants)?;
        if let Some(grant) = (request.grants.iter())
            .find(|wanted| !creator.grants().iter().any(|held| held.includes(wanted)))
        {
            return Err(EngineError::Forbidden {
                action: grant.actions.iter().copied().max().unwrap_or(Action::Read),
                resource: grant.resource.to_string(),
            });
        }
        let expires_in = request.expires_in.map(validate_expires_in).transpose()?;
        let owner = match &creator.identity {
            Identity::User { name } => Some(name.clone()),
            Identity::Token { owner, .. } => owner.clone(),
            Identity::Anonymous | Identity::Browser { .. } => None,
        };
        let now = self.now();
        let record = TokenRecord {
            name: request.name,
            owner,
            digest: String::new(),
            grants: request.grants.into(),
            created_at: now,
            expires_at: expires_in.map(|d| now.saturating_add(d.as_millis() as u64)),
        };
        let id = secrets::hex(&secrets::random_bytes::<6>());
        let secret = secrets::hex(&secrets::random_bytes::<32>());
        let token = format!("{TOKEN_PREFIX_TEXT}{id}_{secret}");
        let record = TokenRecord {
            digest: secrets::hex(&secrets::digest(secret.as_bytes())),
            ..record
        };
        let info = self.store_token(&id, record).await?;
        Ok(CreatedToken { info, token })
    }

    /// Makes `secret` the administrator token (id `admin`), replacing an earlier one.
    pub async fn seed_admin_token(&self, secret: &str) -> Result<(), EngineError> {
        (self.inner.accounts.admin_token_configured).store(true, Ordering::Relaxed);
        let digest = secrets::hex(&secrets::digest(secret.as_bytes()));
        let current = self.inner.accounts.tokens().get(ADMIN_TOKEN_ID).cloned();
        if current.is_some_and(|token| token.digest == digest) {
            return Ok(());
        }
        let record = TokenRecord {
            name: "administrator (seeded)".to_string(),
            owner: None,
            digest,
            grants: vec![Grant::admin()].into(),
            created_at: self.now(),
            expires_at: None,
        };
        self.store_token(ADMIN_TOKEN_ID, record).await?;
        Ok(())
    }

    /// Writes a user or token under `key`, with the mark that the store is secured from now
    /// on (the first time) in the same metadata write.
    async fn store_credential(
        &self,
        key: String,
        value: serde_json::Value,
    ) -> Result<(), EngineError> {
        let mark = self.inner.accounts.secured_mark();
        let ops = std::iter::once(MetaOp::Put(key, value))
            .chain(mark)
            .collect();
        self.inner.store.meta_apply(ops).await?;
        self.inner.accounts.secured.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn store_token(&self, id: &str, record: TokenRecord) -> Result<TokenInfo, EngineError> {
        let _admin = self.inner.admin.lock().await;
        let count = self.inner.accounts.tokens().len();
        if count >= ACCOUNTS_MAX && !self.inner.accounts.tokens().contains_key(id) {
            return Err(EngineError::LimitReached {
                limit: "tokens",
                max: ACCOUNTS_MAX,
            });
        }
        let value = serde_json::to_value(&record).expect("a token serializes");
        self.store_credential(format!("{TOKEN_PREFIX}{id}"), value)
            .await?;
        let info = token_info(id, &record);
        self.inner
            .accounts
            .tokens_mut()
            .insert(id.to_string(), record);
        Ok(info)
    }

    /// The tokens `viewer` may see: all for an administrator, else those of its user.
    pub fn list_tokens(&self, viewer: &Principal) -> Vec<TokenInfo> {
        (self.inner.accounts.tokens().iter())
            .filter(|(_, token)| may_manage_token(viewer, token))
            .map(|(id, token)| token_info(id, token))
            .collect()
    }

    /// Revokes the token `id`, at once. A token `viewer` may not manage reads as not found.
    pub async fn revoke_token(&self, viewer: &Principal, id: &str) -> Result<(), EngineError> {
        let _admin = self.inner.admin.lock().await;
        let visible = (self.inner.accounts.tokens().get(id))
            .is_some_and(|token| may_manage_token(viewer, token));
        if !visible {
            return Err(EngineError::TokenNotFound { id: id.to_string() });
        }
        let configured = self
            .inner
            .accounts
            .admin_token_configured
            .load(Ordering::Relaxed);
        if id == ADMIN_TOKEN_ID && configured {
            return Err(EngineError::TokenConfigured { id: id.to_string() });
        }
        let key = format!("{TOKEN_PREFIX}{id}");
        self.inner
            .store
            .meta_apply(vec![MetaOp::Delete(key)])
            .await?;
        self.inner.accounts.tokens_mut().remove(id);
        Ok(())
    }
}

/// A valid Argon2id hash of a random password, checked against unknown users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Hm1Q9c7o2oV5l7i2dN0mN3oR8b4uXk7lqk3b6hH9kA";

fn may_manage_token(viewer: &Principal, token: &TokenRecord) -> bool {
    if viewer.is_admin() {
        return true;
    }
    let user = match &viewer.identity {
        Identity::User { name } => Some(name),
        Identity::Token { owner, .. } => owner.as_ref(),
        Identity::Anonymous | Identity::Browser { .. } => None,
    };
    user.is_some() && token.owner.as_ref() == user
}

/// `wharf_ID_SECRET` split into id and secret.
fn parse_token(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX_TEXT)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id) && hex(secret)).then_some((id, secret))
}

fn user_info(name: &str, record: &UserRecord) -> UserInfo {
    UserInfo {
        name: name.to_string(),
        grants: record.grants.to_vec(),
        created_at: record.created_at,
    }
}

fn token_info(id: &str, record: &TokenRecord) -> TokenInfo {
    TokenInfo {
        id: id.to_string(),
        name: record.name.clone(),
        owner: record.owner.clone(),
        grants: record.grants.to_vec(),
        created_at: record.created_at,
        expires_at: record.expires_at,
    }
}

fn validate_name(name: &str, field: Field) -> Result<(), EngineError> {
    if name.is_empty() {
        return Err(EngineError::invalid_field(field, FieldProblem::Empty));
    }
    if name.len() > ACCOUNT_NAME_BYTES_MAX {
        let problem = FieldProblem::TooLong {
            len: name.len(),
            max: ACCOUNT_NAME_BYTES_MAX,
        };
        return Err(EngineError::invalid_field(field, problem));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if !name.chars().all(allowed) {
        return Err(EngineError::invalid_field(
            field,
            FieldProblem::AccountNameChars,
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), EngineError> {
    let len = password.len();
    if !(PASSWORD_BYTES_MIN..=PASSWORD_BYTES_MAX).contains(&len) {
        let problem = FieldProblem::OutOfRange {
            value: len as u64,
            min: PASSWORD_BYTES_MIN as u64,
            max: PASSWORD_BYTES_MAX as u64,
        };
        return Err(EngineError::invalid_field(Field::Password, problem));
    }
    Ok(())
}

fn validate_grants(grants: &[Grant]) -> Result<(), EngineError> {
    if grants.len() > GRANTS_MAX {
        return Err(EngineError::TooLarge {
            limit: crate::error::SizeLimit::Grants,
            size: grants.len(),
            max: GRANTS_MAX,
        });
    }
    for (index, grant) in grants.iter().enumerate() {
        if grant.actions.is_empty() {
            let problem = FieldProblem::Empty;
            return Err(EngineError::invalid_field(Field::Grant { index }, problem));
        }
    }
    Ok(())
}

fn validate_expires_in(expires_in: Duration) -> Result<Duration, EngineError> {
    if expires_in.is_zero() || expires_in > TOKEN_EXPIRES_IN_MAX {
        // In seconds, the unit of `expires_in_s`.
        let problem = FieldProblem::OutOfRange {
            value: expires_in.as_secs(),
            min: 1,
            max: TOKEN_EXPIRES_IN_MAX.as_secs(),
        };
        return Err(EngineError::invalid_field(Field::ExpiresIn, problem));
    }
    Ok(expires_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_the_dummy_hash_is_valid() {
        assert_eq!(parse_token("wharf_0a1b_ff00"), Some(("0a1b", "ff00")));
        assert_eq!(parse_token("wharf__ff00"), None);
        assert_eq!(parse_token("my-admin-secret"), None);
        assert!(!secrets::verify_password("x", DUMMY_HASH));
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn a_token_lifetime_out_of_range_is_told_in_seconds() {
        let max = TOKEN_EXPIRES_IN_MAX.as_secs();
        for (asked, shown) in [
            (0, "0 is outside 1..="),
            (u64::MAX, "18446744073709551615 is above the maximum"),
        ] {
            let error = validate_expires_in(Duration::from_secs(asked)).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(shown) && !text.contains("ms"), "{text}");
            if asked > 0 {
                assert!(text.contains(&max.to_string()), "{text}");
            }
        }
        assert!(validate_expires_in(TOKEN_EXPIRES_IN_MAX).is_ok());
    }
}
