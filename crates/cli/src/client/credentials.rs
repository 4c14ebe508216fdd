//! Who a client command says it is, and to which server: `--token`, `--user` with
//! `--password`, their `WHARF_*` variables, or a small TOML file (`cli.toml`), resolved into
//! one server URL and one `Authorization` header value.
//!
//! Precedence is per key: a flag beats its environment variable, which beats the file. A
//! token and a user from the same place are refused as ambiguous; from different places the
//! higher one wins, so `WHARF_TOKEN` in the environment does not block a `--user` on the
//! command line. An empty value counts as unset. Secrets never appear in `--help` (`hide_env_values`), in `Debug` output or in
//! an error message: errors name the key and the file, never the value.

use super::server_url::{self, ServerUrlProblem};
use base64::Engine as _;
use clap::{parser::ValueSource, ArgMatches, Args};
use serde::Deserialize;
use std::{
    fmt,
    path::{Path, PathBuf},
};

/// The global credential flags, one set for every client command.
#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// Bearer token for the server. Prefer the environment variable: flags show in process
    /// lists.
    #[arg(
        long,
        global = true,
        env = "WHARF_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// User name for HTTP Basic authentication (needs a password).
    #[arg(long, global = true, env = "WHARF_USER", value_name = "NAME")]
    user: Option<String>,
    /// The user's password. Prefer the environment variable: flags show in process lists.
    #[arg(
        long,
        global = true,
        env = "WHARF_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// Client configuration file with `server`, `token` or `user` and `password`; default
    /// `$XDG_CONFIG_HOME/wharf/cli.toml` or `~/.config/wharf/cli.toml` when it exists.
    #[arg(long, global = true, env = "WHARF_CLI_CONFIG", value_name = "FILE")]
    cli_config: Option<PathBuf>,
}

/// The credentials could not be worked out; the message names the key, never its value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read the client configuration {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid client configuration {} (line {line}): {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("both a token and a user are given {place}; give one")]
    TokenAndUser { place: &'static str },
    #[error("a user needs a password (--password, WHARF_PASSWORD or `password` in the client configuration)")]
    PasswordMissing,
    #[error("a password needs a user (--user, WHARF_USER or `user` in the client configuration)")]
    UserMissing,
    #[error("the {what} holds characters an HTTP header cannot carry")]
    NotHeaderSafe { what: &'static str },
    /// The server URL is unusable; `origin` says where it came from (`--server`, ...).
    #[error("{origin} {value:?}: {problem}")]
    ServerUrl {
        origin: &'static str,
        value: String,
        #[source]
        problem: ServerUrlProblem,
    },
}

/// An `Authorization` header value. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization(String);

impl Authorization {
    pub fn bearer(token: &str) -> Result<Authorization, CredentialError> {
        header_safe(token, "token")?;
        Ok(Authorization(format!("Bearer {token}")))
    }

    pub fn basic(user: &str, password: &str) -> Result<Authorization, CredentialError> {
        let pair = format!("{user}:{password}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Ok(Authorization(format!("Basic {encoded}")))
    }

    /// The header value to send.
    pub fn header_value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.split(' ').next().unwrap_or("");
        write!(formatter, "Authorization({scheme} <hidden>)")
    }
}

/// Where client commands go and what they present.
#[derive(Debug)]
pub struct Target {
    pub server: String,
    /// True when `--server` or `WHARF_SERVER` named the server (not the file or the default).
    pub server_named: bool,
    pub authorization: Option<Authorization>,
}

/// Resolves the server and credentials from the parsed flags (with their sources in
/// `matches`), the environment clap already merged in, and the configuration file.
pub fn resolve(
    args: &CredentialArgs,
    server: &str,
    matches: &ArgMatches,
) -> Result<Target, CredentialError> {
    let file = load_file(args.cli_config.as_deref())?;
    let server_source = matches.value_source("server");
    let server_named = server_source != Some(ValueSource::DefaultValue);
    let (server, origin) = match (&file.server, server_source) {
        (Some(from_file), _) if !server_named => (from_file.clone(), Place::File.server_origin()),
        (_, Some(ValueSource::CommandLine)) => (server.to_string(), Place::Flag.server_origin()),
        (_, Some(ValueSource::EnvVariable)) => {
            (server.to_string(), Place::Environment.server_origin())
        }
        _ => (server.to_string(), "the default server"),
    };
    server_url::check(&server).map_err(|problem| CredentialError::ServerUrl {
        origin,
        value: server.clone(),
        problem,
    })?;
    let token = layered(
        args.token.as_deref(),
        "token",
        matches,
        file.token.as_deref(),
    );
    let user = layered(args.user.as_deref(), "user", matches, file.user.as_deref());
    let password = layered(
        args.password.as_deref(),
        "password",
        matches,
        file.password.as_deref(),
    );
    let authorization = authorization(token, user, password.map(|(value, _)| value))?;
    Ok(Target {
        server,
        server_named,
        authorization,
    })
}

/// Where a value came from, highest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Flag,
    Environment,
    File,
}

impl Place {
    fn describe(self) -> &'static str {
        match self {
            Place::Flag => "on the command line",
            Place::Environment => "in the environment",
            Place::File => "in the client configuration",
        }
    }

    /// How an error about the server URL names its source.
    fn server_origin(self) -> &'static str {
        match self {
            Place::Flag => "--server",
            Place::Environment => "WHARF_SERVER",
            Place::File => "`server` in the client configuration",
        }
    }
}

/// `cli.toml`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// The value of flag `id` (from the command line or its variable) or else of the file.
fn layered<'a>(
    flag: Option<&'a str>,
    id: &str,
    matches: &ArgMatches,
    file: Option<&'a str>,
) -> Option<(&'a str, Place)> {
    let place = match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Place::Environment,
        _ => Place::Flag,
    };
    // An empty value is no value: `WHARF_TOKEN= wharf ...` switches a variable off.
    match flag.filter(|value| !value.is_empty()) {
        Some(value) => Some((value, place)),
        None => file
            .filter(|value| !value.is_empty())
            .map(|value| (value, Place::File)),
    }
}

fn authorization(
    token: Option<(&str, Place)>,
    user: Option<(&str, Place)>,
    password: Option<&str>,
) -> Result<Option<Authorization>, CredentialError> {
    let use_token = match (token, user) {
        (Some((_, token_place)), Some((_, user_place))) if token_place == user_place => {
            return Err(CredentialError::TokenAndUser {
                place: token_place.describe(),
            })
        }
        (Some((_, token_place)), Some((_, user_place))) => token_place < user_place,
        (Some(_), None) => true,
        (None, _) => false,
    };
    match (token, user, password) {
        (Some((token, _)), _, _) if use_token => Authorization::bearer(token).map(Some),
        (_, Some((user, _)), Some(password)) => Authorization::basic(user, password).map(Some),
        (_, Some(_), None) => Err(CredentialError::PasswordMissing),
        (_, None, Some(_)) => Err(CredentialError::UserMissing),
        (_, None, None) => Ok(None),
    }
}

/// The named file (which must exist), or the default one when it exists, or nothing.
fn load_file(named: Option<&Path>) -> Result<ConfigFile, CredentialError> {
    let path = match named {
        Some(path) => path.to_path_buf(),
        None => match default_path().filter(|path| path.is_file()) {
            Some(path) => path,
            None => return Ok(ConfigFile::default()),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CredentialError::Read {
        path: path.clone(),
        source,
    })?;
    // `message()` only: toml's full error quotes the offending line, which may hold a secret.
    toml::from_str(&text).map_err(|error| CredentialError::Parse {
        line: error
            .span()
            .map_or(0, |span| text[..span.start].matches('\n').count() + 1),
        message: error.message().to_string(),
        path,
    })
}

/// `$XDG_CONFIG_HOME/wharf/cli.toml`, else `$HOME/.config/wharf/cli.toml`.
fn default_path() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    let base = match non_empty("XDG_CONFIG_HOME") {
        Some(config) => PathBuf::from(config),
        None => PathBuf::from(non_empty("HOME")?).join(".config"),
    };
    Some(base.join("wharf").join("cli.toml"))
}

/// Visible ASCII and spaces only: anything else breaks the header or smuggles another one.
fn header_safe(value: &str, what: &'static str) -> Result<(), CredentialError> {
    match value
        .bytes()
        .all(|byte| byte == b' ' || byte.is_ascii_graphic())
    {
        true => Ok(()),
        false => Err(CredentialError::NotHeaderSafe { what }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_token_beats_a_file_user() {
        let chosen = authorization(
            Some(("secret-token", Place::Flag)),
            Some(("bob", Place::File)),
            Some("pw"),
        )
        .expect("resolves");
        assert_eq!(
            chosen.map(|value| value.header_value().to_string()),
            Some("Bearer secret-token".to_string())
        );
    }

    #[test]
    fn a_token_and_a_user_from_one_place_are_refused_without_the_secret() {
        let error = authorization(
            Some(("secret-token", Place::Environment)),
            Some(("bob", Place::Environment)),
            Some("pw-secret"),
        )
        .expect_err("ambiguous");
        let text = error.to_string();
        assert!(text.contains("in the environment"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn basic_credentials_encode_user_and_password() {
        let chosen = authorization(None, Some(("bob", Place::Flag)), Some("pw"))
            .expect("resolves")
            .expect("some");
        assert_eq!(chosen.header_value(), "Basic Ym9iOnB3");
        assert!(!format!("{chosen:?}").contains("Ym9i"));
        assert!(matches!(
            authorization(None, Some(("bob", Place::Flag)), None),
            Err(CredentialError::PasswordMissing)
        ));
    }

    #[test]
    fn a_token_with_a_newline_is_refused() {
        assert!(matches!(
            Authorization::bearer("abc\r\nX-Evil: 1"),
            Err(CredentialError::NotHeaderSafe { .. })
        ));
    }

    #[test]
    fn a_bad_file_is_reported_without_its_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cli.toml");
        std::fs::write(&path, "token = \"hunter2-secret\"\npasword = \"x\"\n").expect("write");
        let text = load_file(Some(&path)).expect_err("unknown key").to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
