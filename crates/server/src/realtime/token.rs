//! Browser tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, `alg` `HS256`) under
//! `realtime.token_secret`, naming the channels a page may use, so that it connects to
//! `/v1/ws` or `/v1/sse` without broker credentials (`?access_token=`).
//!
//! Claims: `sub` (the member name in rooms), `exp` (Unix seconds, required), `channels`
//! (topic names or patterns in the syntax of grants, `chat.*`), and `publish` (whether the page
//! may publish and request on them; default false). An application's backend may sign them
//! itself with the shared secret, or ask `POST /v1/realtime/tokens`.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use wharf_engine::security::{Action, Grant, Principal};

/// Most channels one token names.
pub const CHANNELS_MAX: usize = 100;
/// Longest token accepted: a URL query carries it.
const TOKEN_BYTES_MAX: usize = 8 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub channels: Vec<String>,
    #[serde(default)]
    pub publish: bool,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("browser tokens are not enabled on this server (set realtime.token_secret)")]
    Disabled,
    #[error("the token is not a JWT of three base64url parts")]
    Malformed,
    #[error("the token's algorithm must be HS256")]
    Algorithm,
    #[error("the token's signature does not match")]
    Signature,
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    #[error("the token has expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts every key length")
}

fn base64url(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// A signed token carrying `claims`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
    };
    let header = base64url(&serde_json::to_vec(&header).expect("a header serializes"));
    let claims = base64url(&serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{claims}");
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{signing_input}.{}", base64url(&tag))
}

/// The claims of a valid token, at `now_s` (Unix seconds).
pub fn verify(secret: Option<&[u8]>, token: &str, now_s: u64) -> Result<Claims, TokenError> {
    let secret = secret.ok_or(TokenError::Disabled)?;
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let mut mac = mac(secret);
    mac.update(&token.as_bytes()[..token.len() - tag.len() - 1]);
    mac.verify_slice(&decode(tag)?)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(claims)?)
        .map_err(|error| TokenError::Claims(error.to_string()))?;
    if claims.exp <= now_s {
        return Err(TokenError::Expired);
    }
    grants(&claims)?;
    Ok(claims)
}

/// What a token's claims allow: read (and, with `publish`, write) on each channel's topics.
pub fn grants(claims: &Claims) -> Result<Vec<Grant>, TokenError> {
    if claims.sub.is_empty() || claims.sub.len() > 128 {
        return Err(TokenError::Claims("`sub` is 1 to 128 bytes".into()));
    }
    if claims.channels.is_empty() || claims.channels.len() > CHANNELS_MAX {
        let reason = format!("`channels` names 1 to {CHANNELS_MAX} topics or patterns");
        return Err(TokenError::Claims(reason));
    }
    let actions = match claims.publish {
        true => vec![Action::Read, Action::Write],
        false => vec![Action::Read],
    };
    (claims.channels.iter())
        .map(|channel| {
            let resource = format!("topic:{channel}")
                .parse()
                .map_err(|error| TokenError::Claims(format!("channel {channel:?}: {error}")))?;
            Ok(Grant {
                actions: actions.clone(),
                resource,
            })
        })
        .collect()
}

/// The caller a valid token makes.
pub fn principal(claims: &Claims) -> Result<Principal, TokenError> {
    Ok(Principal::browser(claims.sub.clone(), grants(claims)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_engine::security::{Resource, ResourceKind};

    const SECRET: &[u8] = b"a-secret-of-at-least-thirty-two-bytes!";

    fn claims() -> Claims {
        Claims {
            sub: "alice".into(),
            exp: 2_000,
            channels: vec!["chat.*".into(), "news".into()],
            publish: false,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_grants_only_its_channels() {
        let token = sign(SECRET, &claims());
        assert_eq!(verify(Some(SECRET), &token, 1_000), Ok(claims()));
        let principal = principal(&claims()).unwrap();
        let topic = |name| Resource {
            kind: ResourceKind::Topic,
            name,
        };
        assert!(principal.allows(Action::Read, topic("chat.lobby")));
        assert!(principal.allows(Action::Read, topic("news")));
        assert!(!principal.allows(Action::Write, topic("news")));
        assert!(!principal.allows(Action::Read, topic("billing")));
    }

    #[test]
    fn tampered_expired_foreign_and_unsigned_tokens_are_refused() {
        let token = sign(SECRET, &claims());
        assert_eq!(
            verify(Some(SECRET), &token, 2_000),
            Err(TokenError::Expired)
        );
        assert_eq!(verify(None, &token, 1_000), Err(TokenError::Disabled));
        let other = sign(b"another-secret", &claims());
        assert_eq!(
            verify(Some(SECRET), &other, 1_000),
            Err(TokenError::Signature)
        );
        // Claims swapped for more channels under the original signature.
        let mut wider = claims();
        wider.channels = vec!["#".into()];
        let forged_claims = sign(SECRET, &wider);
        let parts: Vec<&str> = token.split('.').collect();
        let forged_parts: Vec<&str> = forged_claims.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
        assert_eq!(
            verify(Some(SECRET), &forged, 1_000),
            Err(TokenError::Signature)
        );
        // `alg: none` with no signature.
        let none = format!("{}.{}.", base64url(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(
            verify(Some(SECRET), &none, 1_000),
            Err(TokenError::Algorithm)
        );
        assert_eq!(
            verify(Some(SECRET), "abc", 1_000),
            Err(TokenError::Malformed)
        );
    }
}
