//! Checking the server URL (`--server`, `WHARF_SERVER` or `server` in the client file) before
//! any request, so that a typo is reported as such, naming the value, rather than as whatever
//! the HTTP library makes of it (`http: invalid format`, a request to `http:/v1/queues`).
//!
//! The rules are those of this client, not all of RFC 3986: `http://HOST[:PORT][/PREFIX]`
//! with a host name, an IPv4 address or a bracketed IPv6 address. The client speaks plain
//! HTTP only (no TLS in it), so `https` is refused here rather than failing later.

use std::net::Ipv6Addr;

/// Why a server URL cannot be used; the caller adds where it came from and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlProblem {
    #[error("there is no scheme; write http://{0}")]
    SchemeMissing(String),
    #[error("this client speaks plain HTTP only; use an http:// URL (HTTPS is not supported by the wharf command yet)")]
    Https,
    #[error("the scheme must be http, not {0}")]
    Scheme(String),
    #[error("there is no host")]
    HostMissing,
    #[error("it contains whitespace")]
    Whitespace,
    #[error("the host {0:?} is not a host name or IP address")]
    Host(String),
    #[error("the port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error("credentials go in --token or --user and --password, not in the URL")]
    UserInfo,
    #[error("a server URL has no query or fragment")]
    QueryOrFragment,
}

/// Checks `url` against the rules in the module header.
pub fn check(url: &str) -> Result<(), ServerUrlProblem> {
    if url.chars().any(char::is_whitespace) {
        return Err(ServerUrlProblem::Whitespace);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ServerUrlProblem::SchemeMissing(url.to_string()));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" => {}
        "https" => return Err(ServerUrlProblem::Https),
        _ => return Err(ServerUrlProblem::Scheme(scheme.to_string())),
    }
    if rest.contains(['?', '#']) {
        return Err(ServerUrlProblem::QueryOrFragment);
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(ServerUrlProblem::UserInfo);
    }
    let (host, port) = split_port(authority)?;
    if host.is_empty() {
        return Err(ServerUrlProblem::HostMissing);
    }
    check_host(host)?;
    match port {
        Some(port) if !matches!(port.parse::<u16>(), Ok(1..)) => {
            Err(ServerUrlProblem::Port(port.to_string()))
        }
        _ => Ok(()),
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), ServerUrlProblem> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err(ServerUrlProblem::Host(authority.to_string()));
        };
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| ServerUrlProblem::Host(authority.to_string()))?,
            ),
        };
        if address.parse::<Ipv6Addr>().is_err() {
            return Err(ServerUrlProblem::Host(format!("[{address}]")));
        }
        return Ok((&authority[..address.len() + 2], port));
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// A bracketed IPv6 address (checked by [`split_port`]), or labels of letters, digits, `-`
/// and `_` separated by dots (IPv4 addresses are such labels too).
fn check_host(host: &str) -> Result<(), ServerUrlProblem> {
    if host.starts_with('[') {
        return Ok(());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'))
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    match host.split('.').all(label_ok) {
        true => Ok(()),
        false => Err(ServerUrlProblem::Host(host.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_urls_pass() {
        for url in [
            "http://127.0.0.1:7700",
            "http://localhost:7700/",
            "HTTP://broker.example.com",
            "http://[::1]:7700",
            "http://[::1]",
            "http://wharf_1.internal:80/prefix",
        ] {
            assert_eq!(check(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn each_problem_is_named() {
        use ServerUrlProblem::*;
        for (url, problem) in [
            (
                "localhost:7700",
                SchemeMissing("localhost:7700".to_string()),
            ),
            ("ftp://x", Scheme("ftp".to_string())),
            ("https://x", Https),
            ("http://", HostMissing),
            ("http://:7700", HostMissing),
            ("http://bad host", Whitespace),
            ("http://bad!host", Host("bad!host".to_string())),
            ("http://a..b", Host("a..b".to_string())),
            ("http://[::1", Host("[::1".to_string())),
            ("http://[zz]:1", Host("[zz]".to_string())),
            ("http://x:0", Port("0".to_string())),
            ("http://x:99999", Port("99999".to_string())),
            ("http://x:", Port(String::new())),
            ("http://u:p@x", UserInfo),
            ("http://x/?a=1", QueryOrFragment),
        ] {
            assert_eq!(check(url), Err(problem), "{url}");
        }
    }
}
