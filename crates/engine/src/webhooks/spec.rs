//! What an endpoint is declared with, and the checks a declaration passes.

use crate::error::{EngineError, Field, FieldProblem, WebhookField};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wharf_model::pattern::Syntax;

/// Longest endpoint id: room for the queue names made from it (`wharf.webhook.{id}.dead`).
pub const ENDPOINT_ID_BYTES_MAX: usize = 128;
/// Longest URL.
pub const URL_BYTES_MAX: usize = 2_048;
/// Most subscriptions of one endpoint.
pub const SUBSCRIPTIONS_MAX: usize = 32;
/// Most custom headers of one endpoint.
pub const HEADERS_MAX: usize = 32;
/// Longest custom header value.
pub const HEADER_VALUE_BYTES_MAX: usize = 1_024;
/// Secret length in bytes, once its base64 is decoded (Standard Webhooks: 24 to 64).
pub const SECRET_BYTES_MIN: usize = 24;
pub const SECRET_BYTES_MAX: usize = 64;
/// A secret's text starts with this (Standard Webhooks' convention).
pub const SECRET_PREFIX: &str = "whsec_";
/// Highest rate limit an endpoint may ask for, deliveries a second.
pub const RATE_LIMIT_PER_S_MAX: u32 = 100_000;

/// Headers a delivery sets itself; an endpoint's custom headers cannot replace them.
const RESERVED_HEADERS: [&str; 8] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// Messages of a topic an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSubscription {
    pub topic: String,
    /// Routing-key pattern in the topic's syntax; `#` (everything) by default.
    pub pattern: String,
    /// Optional filter expression over headers and body (docs/filters.md).
    pub filter: Option<String>,
}

/// An endpoint as a client declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub url: String,
    pub subscriptions: Vec<EndpointSubscription>,
    /// `whsec_` + base64 of 24 to 64 bytes; generated when absent (a replaced endpoint keeps
    /// its secret when none is given).
    pub secret: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub rate_limit_per_s: Option<u32>,
    pub enabled: bool,
}

fn invalid(field: WebhookField, reason: impl Into<String>) -> EngineError {
    EngineError::invalid_field(
        Field::Webhook(field),
        FieldProblem::Malformed {
            reason: reason.into(),
        },
    )
}

/// Checks an endpoint id: the resource-name rules, at most [`ENDPOINT_ID_BYTES_MAX`] bytes.
pub fn check_id(id: &str) -> Result<(), EngineError> {
    let problem = match wharf_model::check_resource_name(id) {
        Err(source) => crate::error::NameProblem::Rules { source },
        Ok(()) if id.len() > ENDPOINT_ID_BYTES_MAX => crate::error::NameProblem::Rules {
            source: wharf_model::QueueNameError::TooLong { length: id.len() },
        },
        Ok(()) => return Ok(()),
    };
    Err(EngineError::InvalidName {
        kind: crate::error::ResourceKind::WebhookEndpoint,
        name: id.to_string(),
        problem,
    })
}

impl EndpointSpec {
    /// Every check that needs no other resource; topics are checked by the engine.
    pub fn validate(&self) -> Result<(), EngineError> {
        check_url(&self.url)?;
        if self.subscriptions.is_empty() {
            return Err(invalid(
                WebhookField::Subscriptions,
                "an endpoint needs at least one subscription",
            ));
        }
        if self.subscriptions.len() > SUBSCRIPTIONS_MAX {
            return Err(invalid(
                WebhookField::Subscriptions,
                format!("at most {SUBSCRIPTIONS_MAX} subscriptions"),
            ));
        }
        for (index, subscription) in self.subscriptions.iter().enumerate() {
            check_subscription(index, subscription)?;
        }
        if let Some(secret) = &self.secret {
            secret_bytes(secret)?;
        }
        check_headers(&self.headers)?;
        if let Some(rate) = self.rate_limit_per_s {
            if rate == 0 || rate > RATE_LIMIT_PER_S_MAX {
                return Err(EngineError::invalid_field(
                    Field::Webhook(WebhookField::RateLimit),
                    FieldProblem::OutOfRange {
                        value: rate.into(),
                        min: 1,
                        max: RATE_LIMIT_PER_S_MAX.into(),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// An absolute `http` or `https` URL with a host, no credentials and no fragment.
fn check_url(url: &str) -> Result<(), EngineError> {
    let field = WebhookField::Url;
    if url.len() > URL_BYTES_MAX {
        return Err(invalid(field, format!("longer than {URL_BYTES_MAX} bytes")));
    }
    let parsed = url::Url::parse(url).map_err(|error| invalid(field, error.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(field, "the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "the URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            field,
            "credentials in the URL would be logged; send them with `headers`",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(invalid(field, "a fragment is never sent; remove it"));
    }
    Ok(())
}

fn check_subscription(
    index: usize,
    subscription: &EndpointSubscription,
) -> Result<(), EngineError> {
    let field = |member| WebhookField::Subscription { index, member };
    wharf_model::check_resource_name(&subscription.topic)
        .map_err(|source| invalid(field(SubscriptionMember::Topic), source.to_string()))?;
    wharf_model::pattern::Pattern::parse(&subscription.pattern, Syntax::default())
        .map_err(|source| invalid(field(SubscriptionMember::Pattern), source.to_string()))?;
    if let Some(filter) = &subscription.filter {
        wharf_model::filter::Filter::parse(filter)
            .map_err(|source| invalid(field(SubscriptionMember::Filter), source.to_string()))?;
    }
    Ok(())
}

/// Which member of a subscription a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionMember {
    Topic,
    Pattern,
    Filter,
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), EngineError> {
    if headers.len() > HEADERS_MAX {
        return Err(invalid(
            WebhookField::Headers,
            format!("at most {HEADERS_MAX} headers"),
        ));
    }
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(invalid(
                WebhookField::Headers,
                format!("{name:?} is not an HTTP header name"),
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(
                WebhookField::Headers,
                format!("{name:?} is set by every delivery and cannot be replaced"),
            ));
        }
        let visible = |c: char| c == ' ' || c == '\t' || c.is_ascii_graphic();
        if value.len() > HEADER_VALUE_BYTES_MAX || !value.chars().all(visible) {
            return Err(invalid(
                WebhookField::Headers,
                format!(
                    "the value of {name:?} must be at most {HEADER_VALUE_BYTES_MAX} bytes of visible ASCII"
                ),
            ));
        }
    }
    Ok(())
}

/// The key bytes of a `whsec_` secret.
pub fn secret_bytes(secret: &str) -> Result<Vec<u8>, EngineError> {
    let field = WebhookField::Secret;
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| invalid(field, format!("a secret starts with {SECRET_PREFIX:?}")))?;
    let bytes = base64_simd::STANDARD.decode_to_vec(encoded).map_err(|_| {
        invalid(
            field,
            format!("after {SECRET_PREFIX:?} comes standard base64"),
        )
    })?;
    if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
        return Err(invalid(
            field,
            format!(
                "the key is {} bytes; {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} are allowed",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// A new random secret: `whsec_` + base64 of 32 bytes.
pub fn generate_secret() -> String {
    let key = crate::security::secrets::random_bytes::<32>();
    format!(
        "{SECRET_PREFIX}{}",
        base64_simd::STANDARD.encode_to_string(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> EndpointSpec {
        EndpointSpec {
            url: url.to_string(),
            subscriptions: vec![EndpointSubscription {
                topic: "orders".into(),
                pattern: "#".into(),
                filter: None,
            }],
            secret: None,
            headers: BTreeMap::new(),
            rate_limit_per_s: None,
            enabled: true,
        }
    }

    fn reason(error: EngineError) -> String {
        error.to_string()
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        assert!(spec("https://example.com/hook").validate().is_ok());
        assert!(spec("http://127.0.0.1:8080/x?y=1").validate().is_ok());
        for (url, words) in [
            ("ftp://example.com/", "scheme"),
            ("/relative", "relative URL"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://example.com/#top", "fragment"),
        ] {
            let text = reason(spec(url).validate().unwrap_err());
            assert!(text.contains(words), "{url}: {text}");
            assert!(text.contains("url"), "{url}: {text}");
        }
    }

    #[test]
    fn secrets_are_prefixed_base64_of_24_to_64_bytes() {
        let secret = generate_secret();
        assert_eq!(secret_bytes(&secret).unwrap().len(), 32);
        // The Standard Webhooks specification's example secret.
        assert_eq!(
            secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap()
                .len(),
            24
        );
        assert!(
            reason(secret_bytes("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err())
                .contains("starts with")
        );
        assert!(reason(secret_bytes("whsec_!!!").unwrap_err()).contains("base64"));
        assert!(reason(secret_bytes("whsec_YWJj").unwrap_err()).contains("3 bytes"));
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        let mut bad = spec("https://example.com/");
        bad.headers.insert("Webhook-Signature".into(), "x".into());
        assert!(reason(bad.validate().unwrap_err()).contains("cannot be replaced"));
        bad.headers.clear();
        bad.headers.insert("x bad".into(), "x".into());
        assert!(reason(bad.validate().unwrap_err()).contains("not an HTTP header name"));
        bad.headers.clear();
        bad.headers.insert("x-ok".into(), "line\nbreak".into());
        assert!(reason(bad.validate().unwrap_err()).contains("visible ASCII"));
    }

    #[test]
    fn subscriptions_are_checked_by_member() {
        let mut bad = spec("https://example.com/");
        bad.subscriptions[0].filter = Some("price >".into());
        let error = bad.validate().unwrap_err();
        assert!(matches!(
            error,
            EngineError::InvalidField {
                field: Field::Webhook(WebhookField::Subscription {
                    index: 0,
                    member: SubscriptionMember::Filter
                }),
                ..
            }
        ));
        bad.subscriptions.clear();
        assert!(reason(bad.validate().unwrap_err()).contains("at least one"));
    }
}
