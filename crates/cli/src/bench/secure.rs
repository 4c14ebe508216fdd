//! The secured side of `wharf bench queue --secure`: a certificate authority and a server
//! certificate for 127.0.0.1 made with rcgen at run time, a random administrator token, a user
//! with a random password, and the TLS client that trusts that authority and presents the
//! token (`Bearer`) or the user's password (`Basic`).
//!
//! Everything is made fresh for each run, so the benchmark needs no files or secrets from the
//! user and nothing it writes outlives it: the key files live in a temporary directory removed
//! with [`Credentials`]. The load itself, and the comparison with the plain run, stay in
//! `queue.rs`; this module only says how a connection is secured.

use super::{
    http1::{Connection, Endpoint, Tls},
    server_process::ServerOptions,
    BenchError,
};
use base64::Engine as _;
use bytes::Bytes;
use hyper::{header::HeaderValue, Method};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use std::{net::SocketAddr, path::PathBuf, sync::Arc};
use tokio_rustls::TlsConnector;

/// 192 random bits: as strong as the server's token digests need, and base64 makes 32
/// characters of it, above the server's 16-byte minimum for an administrator token.
const TOKEN_BYTES: usize = 24;
/// The user the Basic run authenticates as; its grants cover what the load does to its queue.
const USER: &str = "bench";

/// A server certificate with the authority that signed it, and an administrator token.
pub struct Credentials {
    cert_path: PathBuf,
    key_path: PathBuf,
    authority: CertificateDer<'static>,
    token: String,
    password: String,
    // Declared last so the files are removed after everything that names them.
    _dir: tempfile::TempDir,
}

impl Credentials {
    /// A new authority, a certificate for 127.0.0.1 signed by it (written as PEM for the
    /// server) and a random token.
    pub fn generate() -> Result<Credentials, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("wharf-bench-tls-")
            .tempdir()
            .map_err(|source| BenchError::Io {
                action: "create a temporary directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let authority_key = KeyPair::generate()?;
        let mut authority = CertificateParams::new(Vec::<String>::new())?;
        authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        authority
            .distinguished_name
            .push(DnType::CommonName, "wharf bench authority");
        authority.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let authority = authority.self_signed(&authority_key)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(
            &key,
            &authority,
            &authority_key,
        )?;
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        write(&cert_path, cert.pem())?;
        write(&key_path, key.serialize_pem())?;
        Ok(Credentials {
            cert_path,
            key_path,
            authority: authority.der().clone(),
            token: random_token()?,
            password: random_token()?,
            _dir: dir,
        })
    }

    /// HTTPS with the certificate, and the token as administrator token.
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            tls: Some((self.cert_path.clone(), self.key_path.clone())),
            admin_token: Some(self.token.clone()),
            ..ServerOptions::default()
        }
    }

    /// TLS trusting only the authority, and `Authorization: Bearer TOKEN` on every request.
    pub fn admin_endpoint(&self, address: SocketAddr) -> Result<Endpoint, BenchError> {
        self.endpoint(address, format!("Bearer {}", self.token))
    }

    /// TLS as [`Credentials::admin_endpoint`], with `Authorization: Basic` for the user
    /// [`Credentials::create_user`] made.
    pub fn user_endpoint(&self, address: SocketAddr) -> Result<Endpoint, BenchError> {
        let pair = format!("{USER}:{}", self.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.endpoint(address, format!("Basic {encoded}"))
    }

    /// Creates the user on the server at `address` with the administrator token: its password
    /// and read, write and manage on every queue (`PUT /v1/users/bench`).
    pub async fn create_user(&self, address: SocketAddr) -> Result<(), BenchError> {
        let mut admin = Connection::open(&self.admin_endpoint(address)?).await?;
        let body = serde_json::json!({
            "password": self.password,
            "grants": [{"actions": ["read", "write", "manage"], "resource": "queue:*"}],
        });
        let path = format!("/v1/users/{USER}");
        (admin.request_ok(Method::PUT, &path, Bytes::from(body.to_string()))).await?;
        Ok(())
    }

    fn endpoint(&self, address: SocketAddr, authorization: String) -> Result<Endpoint, BenchError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.authority.clone())?;
        // TLS 1.3 only: what any current client negotiates with this server.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::from(address.ip()),
        };
        let authorization = HeaderValue::try_from(authorization).map_err(|error| {
            BenchError::Usage(format!("the credentials are no header value: {error}"))
        })?;
        Ok(Endpoint::secure(address, tls, authorization))
    }
}

/// URL-safe base64 of random bytes from the same source rustls draws its keys from.
fn random_token() -> Result<String, BenchError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    (rustls::crypto::ring::default_provider().secure_random)
        .fill(&mut bytes)
        .map_err(|_| BenchError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn write(path: &std::path::Path, text: String) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}
