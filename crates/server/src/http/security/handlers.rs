//! Handlers of the security endpoints: users, tokens, the caller's identity, the audit log.

use super::wire::{
    AuditEntryBody, AuditListBody, AuditQuery, GrantBody, TokenBody, TokenInfoBody, TokenListBody,
    UserBody, UserInfoBody, UserListBody, WhoamiBody,
};
use crate::http::{
    extract::{Path, Query},
    json_body::JsonBody,
    AppState, Problem, ProblemCode,
};
use axum::{extract::State, http::StatusCode, Extension, Json};
use std::time::Duration;
use wharf_engine::security::{
    audit::AUDIT_READ_MAX, Action, Grant, Identity, Principal, TokenRequest,
};

/// The caller's identity and grants.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "security",
    responses(
        (status = 200, description = "Who the credentials identify", body = WhoamiBody),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoamiBody> {
    Json(WhoamiBody::from(&principal))
}

/// Creates a token with grants the caller holds; its secret is in this answer only.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "security",
    request_body = TokenBody,
    responses(
        (status = 201, description = "Created; `token` is the secret, shown once", body = TokenInfoBody),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A grant the caller does not hold", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<(StatusCode, Json<TokenInfoBody>), Problem> {
    let request = TokenRequest {
        name: body.name,
        grants: grants_from(body.grants)?,
        expires_in: body.expires_in_s.map(Duration::from_secs),
    };
    let created = state.engine.create_token(&principal, request).await?;
    let body = TokenInfoBody::new(created.info, Some(created.token));
    Ok((StatusCode::CREATED, Json(body)))
}

/// The caller's tokens (every token, for an administrator); never their secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "security",
    responses(
        (status = 200, description = "Tokens", body = TokenListBody),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<TokenListBody> {
    let tokens = (state.engine.list_tokens(&principal).into_iter())
        .map(|info| TokenInfoBody::new(info, None))
        .collect();
    Json(TokenListBody { tokens })
}

/// Revokes a token at once.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "security",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token (or not the caller's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The administrator token of the server's configuration: change it there", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.revoke_token(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a user or changes its password and grants (administrators); a user may change its
/// own password.
#[utoipa::path(
    put,
    path = "/v1/users/{name}",
    tag = "security",
    params(("name" = String, Path, description = "User name")),
    request_body = Option<UserBody>,
    responses(
        (status = 201, description = "Created", body = UserInfoBody),
        (status = 200, description = "Changed", body = UserInfoBody),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<(StatusCode, Json<UserInfoBody>), Problem> {
    let own_password = body.grants.is_none()
        && matches!(&principal.identity, Identity::User { name: own } if *own == name);
    if !principal.is_admin() && !own_password {
        return Err(forbidden_admin(&format!("PUT /v1/users/{name}")));
    }
    let grants = body.grants.map(grants_from).transpose()?;
    let (user, created) = state.engine.put_user(&name, body.password, grants).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(user.into())))
}

/// Every user.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "security",
    responses(
        (status = 200, description = "Users", body = UserListBody),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(State(state): State<AppState>) -> Json<UserListBody> {
    let users = state
        .engine
        .list_users()
        .into_iter()
        .map(Into::into)
        .collect();
    Json(UserListBody { users })
}

/// Deletes a user and its tokens.
#[utoipa::path(
    delete,
    path = "/v1/users/{name}",
    tag = "security",
    params(("name" = String, Path, description = "User name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    state.engine.delete_user(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Audit entries in order, from after `after`.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "security",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries", body = AuditListBody),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read_audit(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditListBody>, Problem> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_READ_MAX {
        return Err(Problem::new(ProblemCode::InvalidField)
            .with_detail(format!("limit must be 1..={AUDIT_READ_MAX}"))
            .with_field("limit"));
    }
    let records = state.engine.audit_read(query.after, limit).await?;
    let entries = records.into_iter().map(AuditEntryBody::from).collect();
    Ok(Json(AuditListBody { entries }))
}

fn forbidden_admin(operation: &str) -> Problem {
    Problem::new(ProblemCode::Forbidden).with_detail(format!("not allowed: admin on {operation}"))
}

/// The grants of a body; a bad one is a 400 naming `grants[i].resource`.
pub(crate) fn grants_from(bodies: Vec<GrantBody>) -> Result<Vec<Grant>, Problem> {
    (bodies.into_iter().enumerate())
        .map(|(index, body)| {
            let resource = body.resource.parse().map_err(|error| {
                Problem::new(ProblemCode::InvalidField)
                    .with_detail(format!("invalid grants[{index}].resource: {error}"))
                    .with_field(format!("grants[{index}].resource"))
            })?;
            let actions: Vec<Action> = body.actions.into_iter().map(Into::into).collect();
            Ok(Grant { actions, resource })
        })
        .collect()
}
