//! Browser defences of the HTTP door: a page on another site, or a DNS name rebound to this
//! server, cannot drive the API through a visitor's browser.
//!
//! Three rules, checked in this order by [`guard`] before any handler runs; each refusal is
//! problem+json:
//!
//! 1. **Host allow-list** (421 `misdirected_host`). DNS rebinding points an attacker's name at
//!    this server, so the browser treats the API as the attacker's own origin; its requests
//!    then carry `Host: evil.example`. Only names in `http.allowed_hosts` pass, plus names that
//!    cannot be rebound: `localhost`, `127.0.0.1`, `[::1]` and the listen address's IP (any IP
//!    literal when listening on `0.0.0.0` or `::`, since the address the client used is then
//!    unknown; an IP literal names no DNS record an attacker could control). A request
//!    without Host (HTTP/1.0 tools) passes: browsers always send one. `/healthz` and `/readyz`
//!    are exempt: load balancers probe them with Host set to whatever they like, and they
//!    change nothing. 421 rather than 403: the fault is the name the client aimed at, not its
//!    rights, and no credential would help.
//! 2. **Origin** (403 `forbidden_origin`). A request carrying `Origin` must come from this
//!    server's own origin (same host and port as `Host`) or from one listed in
//!    `http.cors_origins`. This holds for every method: browsers attach `Origin` to
//!    cross-origin POSTs even without a body or content type (no preflight needed), and to
//!    `EventSource` subscriptions, which hold server resources. Reads gain nothing from a
//!    refused origin either, as the browser would hide the answer.
//! 3. **Content type** (415 `unsupported_media_type`). A state-changing request (any method but
//!    GET, HEAD, OPTIONS, TRACE) sent as `application/x-www-form-urlencoded`,
//!    `multipart/form-data` or `text/plain` is refused whatever its body, empty included: those
//!    are the types a plain HTML form or `fetch` may send cross-origin without a preflight
//!    (Fetch standard, "CORS-safelisted request-header"). A JSON request needs a preflight, so
//!    rule 2 decides it. No content type with an empty body stays allowed (`curl -X POST`).
//!
//! CORS is off unless `http.cors_origins` lists origins. Then preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) from a listed origin get 204 with the allowed methods and
//! headers, and every answer to a listed origin carries `Access-Control-Allow-Origin`, event
//! streams included (the header is in the response head). `Access-Control-Allow-Credentials`
//! is never sent: the API authenticates with explicit headers, never cookies, so browsers never
//! need to attach ambient credentials, and `"*"` stays safe to answer.
//!
//! The settings live in [`crate::config::HttpSettings`]; this module parses and applies them.
//! Written by hand rather than with `tower-http`'s CORS layer, which only omits headers for a
//! refused origin and still runs the handler, while here a refused request must change nothing.

use super::{Problem, ProblemCode};
use crate::config::HttpSettings;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

/// The config key of the Host allow-list, named in refusals and errors.
pub const ALLOWED_HOSTS_KEY: &str = "http.allowed_hosts";
/// The config key of the CORS origins, named in refusals and errors.
pub const CORS_ORIGINS_KEY: &str = "http.cors_origins";

/// The entry that accepts any host or any origin.
const ANY: &str = "*";

/// Paths a load balancer probes with a Host of its own choosing; read-only.
const HOST_EXEMPT_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Methods a preflight allows: every method the API routes.
const CORS_ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// Headers a preflight allows: `authorization` for tokens, `content-type` for JSON bodies,
/// `last-event-id` for an `EventSource` resuming its stream.
const CORS_ALLOW_HEADERS: &str = "authorization, content-type, last-event-id";
/// How long a browser may reuse a preflight answer: 10 minutes, so a changed
/// `http.cors_origins` reaches browsers soon (Chromium caps it at 2 hours anyway).
const CORS_MAX_AGE_SECONDS: &str = "600";

/// The content types a browser may send cross-origin without a preflight.
const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

/// An entry of `http.allowed_hosts` or `http.cors_origins` that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrowserSettingError {
    #[error("{ALLOWED_HOSTS_KEY} entry {entry:?}: {reason}")]
    Host { entry: String, reason: &'static str },
    #[error("{CORS_ORIGINS_KEY} entry {entry:?}: {reason}")]
    Origin { entry: String, reason: &'static str },
}

impl BrowserSettingError {
    /// The config key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            BrowserSettingError::Host { .. } => ALLOWED_HOSTS_KEY,
            BrowserSettingError::Origin { .. } => CORS_ORIGINS_KEY,
        }
    }

    pub fn entry(&self) -> &str {
        match self {
            BrowserSettingError::Host { entry, .. } | BrowserSettingError::Origin { entry, .. } => {
                entry
            }
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            BrowserSettingError::Host { reason, .. }
            | BrowserSettingError::Origin { reason, .. } => reason,
        }
    }
}

/// The parsed browser rules the [`guard`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserPolicy {
    hosts: HostRule,
    cors: CorsRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    /// `"*"`: a proxy in front checks Host.
    Any,
    Listed {
        /// Lower-case host names and IP literals (IPv6 in brackets).
        names: Vec<String>,
        /// Listening on an unspecified address: every IP literal is one of ours.
        any_ip_literal: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CorsRule {
    Off,
    AnyOrigin,
    Listed(Vec<Origin>),
}

/// A serialized origin (RFC 6454): scheme, host and port, the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Default for BrowserPolicy {
    /// The defaults of a server listening on 127.0.0.1: loopback hosts only, CORS off.
    fn default() -> Self {
        BrowserPolicy {
            hosts: HostRule::Listed {
                names: default_host_names(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                any_ip_literal: false,
            },
            cors: CorsRule::Off,
        }
    }
}

impl BrowserPolicy {
    /// The rules of `settings` for a server listening on `listen_ip`.
    pub fn new(
        settings: &HttpSettings,
        listen_ip: IpAddr,
    ) -> Result<BrowserPolicy, BrowserSettingError> {
        Ok(BrowserPolicy {
            hosts: new_host_rule(&settings.allowed_hosts, listen_ip)?,
            cors: new_cors_rule(&settings.cors_origins)?,
        })
    }

    /// Checks `settings` without a listen address, for config validation.
    pub fn validate(settings: &HttpSettings) -> Result<(), BrowserSettingError> {
        BrowserPolicy::new(settings, IpAddr::V4(Ipv4Addr::LOCALHOST)).map(drop)
    }

    /// Whether a request with this Host header value may be served.
    fn host_allowed(&self, host: &str) -> bool {
        let Some((name, _port)) = split_host_port(host) else {
            return false;
        };
        match &self.hosts {
            HostRule::Any => true,
            HostRule::Listed {
                names,
                any_ip_literal,
            } => names.contains(&name) || (*any_ip_literal && is_ip_literal(&name)),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin` to `host`, `None`
    /// for same-origin requests, or the refusal.
    fn check_origin(&self, origin: &str, host: Option<&str>) -> Result<OriginVerdict, Problem> {
        let parsed = parse_origin(origin);
        if let (Some(parsed), Some(host)) = (&parsed, host) {
            if is_same_origin(parsed, host) {
                return Ok(OriginVerdict::SameOrigin);
            }
        }
        match (&self.cors, &parsed) {
            (CorsRule::AnyOrigin, _) => Ok(OriginVerdict::Cors(HeaderValue::from_static(ANY))),
            (CorsRule::Listed(origins), Some(parsed)) if origins.contains(parsed) => {
                let value = HeaderValue::from_str(origin).map_err(|_| forbidden_origin(origin))?;
                Ok(OriginVerdict::Cors(value))
            }
            _ => Err(forbidden_origin(origin)),
        }
    }
}

/// What the Origin rule decided for an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginVerdict {
    /// No `Origin`, or the server's own: no CORS headers.
    SameOrigin,
    /// An allowed cross-origin request; the value to answer in `Access-Control-Allow-Origin`.
    Cors(HeaderValue),
}

/// The middleware: applies the three rules, answers preflights, adds CORS headers.
pub async fn guard(
    State(policy): State<Arc<BrowserPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let verdict = match guard_check(&policy, &request) {
        Ok(verdict) => verdict,
        Err(problem) => return problem.into_response(),
    };
    let cors_on = policy.cors != CorsRule::Off;
    let mut response = match &verdict {
        OriginVerdict::Cors(allow_origin) if is_preflight(&request) => {
            guard_preflight_response(allow_origin.clone())
        }
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    if let OriginVerdict::Cors(allow_origin) = verdict {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    }
    if cors_on {
        // Caches must not serve one origin's answer (with its allow header) to another.
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// Rules 1 to 3 in order; the first refusal wins.
fn guard_check(policy: &BrowserPolicy, request: &Request) -> Result<OriginVerdict, Problem> {
    let host = request_host(request);
    let exempt = HOST_EXEMPT_PATHS.contains(&request.uri().path());
    if let Some(host) = host.as_deref() {
        if !exempt && !policy.host_allowed(host) {
            return Err(misdirected_host(host));
        }
    }
    let verdict = match request.headers().get(header::ORIGIN) {
        None => OriginVerdict::SameOrigin,
        Some(origin) => {
            let origin = origin
                .to_str()
                .map_err(|_| forbidden_origin("(not text)"))?;
            policy.check_origin(origin, host.as_deref())?
        }
    };
    check_content_type(request.method(), request.headers())?;
    Ok(verdict)
}

fn guard_preflight_response(allow_origin: HeaderValue) -> Response {
    let headers = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin),
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_ALLOW_METHODS),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        ),
        (
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(CORS_MAX_AGE_SECONDS),
        ),
    ];
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// The Host header, or the URI's authority (HTTP/2 sends `:authority` instead).
fn request_host(request: &Request) -> Option<String> {
    match request.headers().get(header::HOST) {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => request
            .uri()
            .authority()
            .map(|authority| authority.to_string()),
    }
}

fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Rule 3: a state-changing request may not be sent as a form or text type.
fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), Problem> {
    let changes_state = !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !changes_state {
        return Ok(());
    }
    for value in headers.get_all(header::CONTENT_TYPE) {
        let Ok(value) = value.to_str() else { continue };
        if is_simple_content_type(value) {
            return Err(
                Problem::new(ProblemCode::UnsupportedMediaType).with_detail(format!(
                "a {method} request may not be sent as {value}: browsers send that type from any \
                 site without asking; send JSON as application/json, or no Content-Type with an \
                 empty body"
            )),
            );
        }
    }
    Ok(())
}

/// True for the form and text types, parameters (`; charset=utf-8`) aside.
fn is_simple_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    SIMPLE_CONTENT_TYPES.contains(&essence.as_str())
}

fn misdirected_host(host: &str) -> Problem {
    Problem::new(ProblemCode::MisdirectedHost).with_detail(format!(
        "this server does not answer for host {host:?}; list it in {ALLOWED_HOSTS_KEY} if it \
         is a name of this server"
    ))
}

fn forbidden_origin(origin: &str) -> Problem {
    Problem::new(ProblemCode::ForbiddenOrigin).with_detail(format!(
        "requests from origin {origin:?} are refused: it is not this server's own origin and \
         not listed in {CORS_ORIGINS_KEY}"
    ))
}

/// The names accepted whatever the settings: none of them can be rebound by an attacker.
fn default_host_names(listen_ip: IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        Ipv4Addr::LOCALHOST.to_string(),
        format!("[{}]", Ipv6Addr::LOCALHOST),
    ];
    if !listen_ip.is_unspecified() {
        let listen = match listen_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if !names.contains(&listen) {
            names.push(listen);
        }
    }
    names
}

fn new_host_rule(entries: &[String], listen_ip: IpAddr) -> Result<HostRule, BrowserSettingError> {
    if entries.iter().any(|entry| entry == ANY) {
        if entries.len() > 1 {
            return Err(BrowserSettingError::Host {
                entry: ANY.to_string(),
                reason: "\"*\" accepts every host; list nothing beside it",
            });
        }
        return Ok(HostRule::Any);
    }
    let mut names = default_host_names(listen_ip);
    for entry in entries {
        names.push(parse_host_entry(entry)?);
    }
    Ok(HostRule::Listed {
        names,
        any_ip_literal: listen_ip.is_unspecified(),
    })
}

/// A host name or IP literal, without port; returned lower-case.
fn parse_host_entry(entry: &str) -> Result<String, BrowserSettingError> {
    let invalid = |reason| BrowserSettingError::Host {
        entry: entry.to_string(),
        reason,
    };
    match split_host_port(entry) {
        Some((name, None)) => Ok(name),
        Some((_, Some(_))) => Err(invalid("a host name without port (any port is accepted)")),
        None => Err(invalid(
            "must be a host name (`wharf.example`), an IPv4 address or an IPv6 address in \
             brackets (`[fd00::1]`)",
        )),
    }
}

fn new_cors_rule(entries: &[String]) -> Result<CorsRule, BrowserSettingError> {
    if entries.is_empty() {
        return Ok(CorsRule::Off);
    }
    if entries.iter().any(|entry| entry == ANY) {
        if entries.len() > 1 {
            return Err(BrowserSettingError::Origin {
                entry: ANY.to_string(),
                reason: "\"*\" allows every origin; list nothing beside it",
            });
        }
        return Ok(CorsRule::AnyOrigin);
    }
    let mut origins = Vec::with_capacity(entries.len());
    for entry in entries {
        let origin = parse_origin(entry).ok_or_else(|| BrowserSettingError::Origin {
            entry: entry.clone(),
            reason: "must be an origin: http:// or https://, a host and an optional port, no \
                     path (`https://app.example`)",
        })?;
        origins.push(origin);
    }
    Ok(CorsRule::Listed(origins))
}

/// Parses `scheme://host[:port]`; `None` for anything else (`null`, a path, user info).
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, authority) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = split_host_port(authority)?;
    Some(Origin {
        scheme,
        host,
        port: port.unwrap_or(default_port),
    })
}

/// Same host and port; a Host without port means the scheme's default one. The scheme is not
/// compared: the server does not know here which one the request came over.
fn is_same_origin(origin: &Origin, host: &str) -> bool {
    let Some((name, port)) = split_host_port(host) else {
        return false;
    };
    let default_port = if origin.scheme == "https" { 443 } else { 80 };
    name == origin.host && port.unwrap_or(default_port) == origin.port
}

/// Splits `host[:port]` into a lower-case host (IPv6 canonical, in brackets) and the port. `None`
/// when it is not a host name, IPv4 or bracketed IPv6 literal, or the port is not a number.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.to_ascii_lowercase();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        // Canonical form, so `[fd00:0::1]` matches an entry `[fd00::1]`.
        let ip = ip.parse::<Ipv6Addr>().ok()?;
        (format!("[{ip}]"), after)
    } else {
        match text.find(':') {
            Some(colon) => (text[..colon].to_string(), &text[colon..]),
            None => (text.clone(), ""),
        }
    };
    let port = match port {
        "" => None,
        port => Some(port.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    let valid_name = host.starts_with('[')
        || (!host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    valid_name.then_some((host, port))
}

fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests;
