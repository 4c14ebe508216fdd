//! The door's guard: identifies the caller, checks the route's rule, audits.
//!
//! Runs after routing (a route layer), so it knows the route's template and path parameters.
//! Credentials come from `Authorization`: `Bearer TOKEN` or `Basic base64(user:password)`.
//! The [`Principal`] goes into the request's extensions for handlers that check more (bodies
//! naming other resources, lists filtered to what the caller may see).

use super::rules::{self, Rule};
use crate::connection_limit::ConnectionRequests;
use crate::http::{AppState, Problem, ProblemCode};
use axum::{
    extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use wharf_engine::{
    log_throttle::LogThrottle,
    security::{audit::AuditEntry, Action, Credentials, Principal, Resource},
    EngineError,
};

/// What a 401 answer offers (RFC 9110 section 11.6.1).
const CHALLENGE: &str = r#"Bearer realm="wharf", Basic realm="wharf", charset="UTF-8""#;

/// Identifies, authorizes and audits one request; see the module doc.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_default();
    let Some(rule) = rules::rule(&method, &template) else {
        tracing::error!(%method, %template, "route without a permission rule; refused");
        return Problem::new(ProblemCode::Internal)
            .with_detail("this operation has no permission rule")
            .into_response();
    };
    let open = rule == Rule::Open || (rule == Rule::Metrics && state.security.metrics_public);
    if open {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let call = Call {
        method: method.clone(),
        template,
        resource: resource_of(rule, &mut parts).await,
        from: (parts.extensions.get::<ConnectInfo<ConnectionRequests>>())
            .and_then(|info| info.0.peer()),
        audited: rule.audited(&method),
    };
    let identified = match browser_token(rule, &parts) {
        Some(token) => {
            identify_browser(&state, &token).map_err(|error| unauthorized(&error.to_string()))
        }
        None => identify(&state, &parts.headers).await,
    };
    let principal = match identified {
        Ok(principal) => principal,
        Err(refusal) => {
            call.audit_refusal(&state, "unauthenticated", "unauthenticated")
                .await;
            return refusal;
        }
    };
    if let Err(denied) = check(&state, &principal, rule, &call) {
        call.audit_refusal(&state, &principal.identity.to_string(), "denied")
            .await;
        return Problem::from(denied).into_response();
    }
    if let Err(over) = claim_connection(&state, &principal, &parts.extensions) {
        return Problem::from(over).into_response();
    }
    parts.extensions.insert(principal.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    if call.audited {
        let status = response.status();
        let outcome = match status.is_success() {
            true => "ok".to_string(),
            false => format!("failed: {}", status.as_u16()),
        };
        call.audit(&state, principal.identity.to_string(), outcome)
            .await;
    }
    response
}

/// One request, as the audit log names it.
struct Call {
    method: axum::http::Method,
    template: String,
    /// The resource the path names, for `Grant` rules.
    resource: Option<(Action, wharf_engine::security::ResourceKind, String)>,
    from: Option<std::net::SocketAddr>,
    audited: bool,
}

impl Call {
    /// `METHOD /path/{template}`, built only when audited or refused (not per request).
    fn operation(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    async fn audit(&self, state: &AppState, who: String, outcome: String) {
        let entry = AuditEntry {
            at: 0,
            who,
            from: self.from.map(|peer| peer.to_string()),
            operation: self.operation(),
            resource: (self.resource.as_ref())
                .map(|(_, kind, name)| format!("{}:{name}", kind.as_str())),
            outcome,
        };
        if let Err(error) = state.engine.audit(entry).await {
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(suppressed) = THROTTLE.allow() {
                tracing::error!(%error, suppressed, "writing the audit log failed");
            }
        }
    }

    /// Audits a refused request, at most [`REFUSALS_AUDITED_PER_SECOND`] a second: a client
    /// hammering with bad credentials must not fill the disk.
    async fn audit_refusal(&self, state: &AppState, who: &str, outcome: &str) {
        if state.security.refusals.allow() {
            self.audit(state, who.to_string(), outcome.to_string())
                .await;
        }
    }
}

/// Counts the connection against its first counted caller; refuses a caller at its limit.
fn claim_connection(
    state: &AppState,
    principal: &Principal,
    extensions: &axum::http::Extensions,
) -> Result<(), EngineError> {
    let registry = &state.security.connections;
    let (Some(account), Some(connection)) = (
        principal.account(),
        extensions.get::<ConnectInfo<ConnectionRequests>>(),
    ) else {
        return Ok(());
    };
    match connection.0.owner().claim(registry, &account) {
        true => Ok(()),
        false => Err(EngineError::LimitReached {
            limit: "http_connections_per_caller",
            max: registry.max(),
        }),
    }
}

/// The principal of the request's credentials; a 401 problem when they are missing or bad.
async fn identify(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Principal, Response> {
    let credentials = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(parse_authorization(value).ok_or_else(|| {
            unauthorized("the Authorization header must be `Bearer TOKEN` or `Basic BASE64`")
        })?),
    };
    state
        .engine
        .authenticate(credentials.as_ref())
        .await
        .map_err(|error| unauthorized(&error.to_string()))
}

/// The browser token of a real-time request that has no Authorization header.
fn browser_token(rule: Rule, parts: &axum::http::request::Parts) -> Option<String> {
    if rule != Rule::Realtime || parts.headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "access_token")
        .map(|(_, token)| token.into_owned())
}

/// The caller a browser token names, or why the token is not valid.
fn identify_browser(
    state: &AppState,
    token: &str,
) -> Result<Principal, crate::realtime::token::TokenError> {
    let secret = state.realtime.settings.token_secret.as_deref();
    let now_s = state.engine.now() / 1_000;
    crate::realtime::token::verify(secret, token, now_s)
        .and_then(|claims| crate::realtime::token::principal(&claims))
}

fn check(
    state: &AppState,
    principal: &Principal,
    rule: Rule,
    call: &Call,
) -> Result<(), EngineError> {
    match (rule, &call.resource) {
        (Rule::Grant { .. } | Rule::GrantOn { .. }, Some((action, kind, name))) => {
            let resource = Resource { kind: *kind, name };
            state.engine.authorize(principal, *action, resource)
        }
        (Rule::Admin, _) if !principal.is_admin() => Err(EngineError::Forbidden {
            action: Action::Admin,
            resource: call.operation(),
        }),
        _ => Ok(()),
    }
}

/// The resource the path names (its `name` parameter) under a `Grant` rule.
async fn resource_of(
    rule: Rule,
    parts: &mut axum::http::request::Parts,
) -> Option<(Action, wharf_engine::security::ResourceKind, String)> {
    let (action, kind) = match rule {
        Rule::Grant { action, kind } => (action, kind),
        Rule::GrantOn { action, kind, name } => return Some((action, kind, name.to_string())),
        _ => return None,
    };
    use axum::extract::FromRequestParts;
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    let name = params.iter().find(|(key, _)| *key == "name")?.1.to_string();
    Some((action, kind, name))
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(ProblemCode::Unauthenticated)
        .with_detail(detail.to_string())
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    response
}

/// `Bearer TOKEN` or `Basic base64(user:password)` (schemes case-insensitive, RFC 9110).
fn parse_authorization(value: &HeaderValue) -> Option<Credentials> {
    let text = value.to_str().ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(Credentials::Token(rest.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_simd::STANDARD.decode_to_vec(rest).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Credentials::Password {
        user: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse() {
        let parse = |text: &str| parse_authorization(&HeaderValue::from_str(text).unwrap());
        assert!(matches!(parse("Bearer abc"), Some(Credentials::Token(t)) if t == "abc"));
        assert!(matches!(parse("bearer  abc "), Some(Credentials::Token(t)) if t == "abc"));
        let basic = parse("Basic YWxpY2U6d29uZGVyOmxhbmQ="); // alice:wonder:land
        assert!(matches!(
            basic,
            Some(Credentials::Password { user, password }) if user == "alice" && password == "wonder:land"
        ));
        assert!(parse("Basic !!!").is_none());
        assert!(parse("Digest x").is_none());
        assert!(parse("Bearer").is_none());
    }
}
