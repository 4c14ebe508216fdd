//! TLS on the HTTP listener: the certificate in use, its reload, and the encrypted stream.
//!
//! This module owns reading the PEM files named by `[tls]` (or `--tls-*`), building the rustls
//! server configuration from them (ALPN `http/1.1`; client certificates verified against
//! `client_ca` when it is set), and swapping that configuration on reload. The HTTP door never
//! sees TLS: it reads and writes plaintext through [`Transport`].
//!
//! Reload (SIGHUP, see [`crate::serve`]) builds a whole new configuration from the files and
//! only then replaces the old one; a connection takes the configuration current when it is
//! accepted and keeps it, so existing connections continue on the old certificate and new ones
//! get the new. A reload that fails (a missing file, a key that does not match) changes
//! nothing: the error names the file, and the server keeps serving the certificate it has.
//!
//! The handshake is not done by the accept loop. The listener wraps the socket at once and
//! hands it on; the handshake runs inside the connection's first `poll_read` (or
//! `poll_write`), on the connection's own task. So a slow or silent client delays only itself,
//! the accept loop never waits on a peer, and no extra task or channel sits between accept and
//! HTTP. It also puts the handshake under the limits the connection already has: it holds a
//! slot of `limits.http_connections_max` from accept, and since no plaintext byte moves until
//! the handshake ends, a client that opens TCP and never finishes its handshake is closed by
//! the idle timeout like any silent client (see [`crate::connection_limit`]).

use crate::config::TlsFiles;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};
use std::{
    fmt, fs,
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{server::TlsStream, Accept, TlsAcceptor};

/// The only application protocol the HTTP door speaks over TLS. A client that offers ALPN
/// without it (h2 alone) is refused in the handshake rather than misread later.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Which TLS setting a file came from; errors name it as config key and flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSetting {
    Cert,
    Key,
    ClientCa,
}

impl fmt::Display for TlsSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsSetting::Cert => "tls.cert (--tls-cert)",
            TlsSetting::Key => "tls.key (--tls-key)",
            TlsSetting::ClientCa => "tls.client_ca (--tls-client-ca)",
        })
    }
}

/// TLS files that cannot be used. Each names the setting, the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting} {}: cannot read the file: {source}", path.display())]
    Read {
        setting: TlsSetting,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{setting} {}: not valid PEM: {source}", path.display())]
    Pem {
        setting: TlsSetting,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{setting} {}: no certificate in the PEM file (expected BEGIN CERTIFICATE)", path.display())]
    NoCertificate { setting: TlsSetting, path: PathBuf },
    #[error("{} {}: no private key in the PEM file (expected BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", TlsSetting::Key, path.display())]
    NoKey { path: PathBuf },
    #[error("{} {}: the key does not match the certificate in {}", TlsSetting::Key, key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{} {} with key {}: unusable: {source}", TlsSetting::Cert, cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{} {}: cannot verify client certificates with it: {source}", TlsSetting::ClientCa, path.display())]
    ClientCa {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The TLS configuration in use and the files it is reloaded from.
#[derive(Debug)]
pub struct ReloadableTls {
    files: TlsFiles,
    /// Replaced whole on reload; readers clone the `Arc` and drop the lock at once.
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableTls {
    /// Reads the files and builds the configuration; fails naming the first unusable file.
    pub fn load(files: TlsFiles) -> Result<ReloadableTls, TlsError> {
        let config = server_config(&files)?;
        Ok(ReloadableTls {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on success new connections use them, on failure nothing changes.
    /// Blocks on file reads: call it off the async workers.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        // A writer cannot panic between taking the lock and storing, so a poisoned lock still
        // holds a whole configuration.
        *self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = config;
        Ok(())
    }

    /// [`Self::reload`], logging the outcome: what a SIGHUP does.
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(()) => tracing::info!(
                cert = %self.files.cert.display(),
                key = %self.files.key.display(),
                client_ca = self.files.client_ca.as_ref().map(|path| path.display().to_string()),
                "TLS certificate reloaded; new connections use it"
            ),
            Err(error) => tracing::error!(
                %error,
                "TLS reload failed; keeping the certificate in use"
            ),
        }
    }

    /// Starts TLS on an accepted socket with the configuration current now; the handshake
    /// itself runs when the returned transport is first polled.
    pub(crate) fn accept(&self, stream: TcpStream) -> Transport {
        let config = self
            .current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let accept = TlsAcceptor::from(config).accept(stream);
        Transport::Tls(Box::new(TlsConnection::Handshaking(accept)))
    }
}

/// The bytes of one HTTP connection: the socket itself, or TLS over it.
pub(crate) enum Transport {
    Plain(TcpStream),
    /// Boxed: a rustls connection is over a kilobyte, and plain connections should not carry
    /// that size.
    Tls(Box<TlsConnection>),
}

/// A TLS connection before and after its handshake.
pub(crate) enum TlsConnection {
    Handshaking(Accept<TcpStream>),
    Established(TlsStream<TcpStream>),
    /// The handshake failed; every further read or write fails.
    Failed,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Transport::Plain(_) => "plain",
            Transport::Tls(tls) => match **tls {
                TlsConnection::Handshaking(_) => "tls handshaking",
                TlsConnection::Established(_) => "tls",
                TlsConnection::Failed => "tls failed",
            },
        };
        f.write_str(state)
    }
}

impl TlsConnection {
    /// Drives the handshake; ready with the stream once it is done.
    fn poll_established(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut TlsStream<TcpStream>>> {
        if let TlsConnection::Handshaking(accept) = self {
            match Pin::new(accept).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => *self = TlsConnection::Established(stream),
                Poll::Ready(Err(error)) => {
                    // A client's mistake (wrong CA, plain HTTP, no client certificate), not
                    // the server's: debug, or a scanner could fill the log.
                    tracing::debug!(%error, "TLS handshake failed");
                    *self = TlsConnection::Failed;
                    return Poll::Ready(Err(error));
                }
            }
        }
        match self {
            TlsConnection::Established(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

/// Calls a poll method on the socket, or on the TLS stream once its handshake is done.
/// Static dispatch: the plain path pays one branch, nothing more.
macro_rules! poll_transport {
    ($transport:expr, $cx:expr, $method:ident ( $($arg:expr),* )) => {
        match $transport {
            Transport::Plain(stream) => Pin::new(stream).$method($cx $(, $arg)*),
            Transport::Tls(tls) => match tls.poll_established($cx) {
                Poll::Ready(Ok(stream)) => Pin::new(stream).$method($cx $(, $arg)*),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            },
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_transport!(self.get_mut(), cx, poll_read(buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_transport!(self.get_mut(), cx, poll_write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_transport!(self.get_mut(), cx, poll_flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Transport::Tls(tls) = this {
            if !matches!(**tls, TlsConnection::Established(_)) {
                // Nothing to close politely before the handshake ends; dropping closes.
                return Poll::Ready(Ok(()));
            }
        }
        poll_transport!(this, cx, poll_shutdown())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_transport!(self.get_mut(), cx, poll_write_vectored(bufs))
    }

    /// Asked once, before the handshake: rustls takes vectored writes into one record
    /// sequence, so a TLS connection says yes whatever its state.
    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(_) => true,
        }
    }
}

/// The rustls configuration the files describe.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certificates(TlsSetting::Cert, &files.cert)?;
    let key = read_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Unusable {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                key: files.key.clone(),
                cert: files.cert.clone(),
            },
            source => TlsError::Unusable {
                cert: files.cert.clone(),
                key: files.key.clone(),
                source,
            },
        })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// Verifies client certificates against the CAs in `path`; a client without one is refused.
fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let unusable = |source: Box<dyn std::error::Error + Send + Sync>| TlsError::ClientCa {
        path: path.to_path_buf(),
        source,
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(TlsSetting::ClientCa, path)? {
        roots.add(cert).map_err(|error| unusable(error.into()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| unusable(error.into()))
}

/// Every certificate in a PEM file, in order; at least one.
fn read_certificates(
    setting: TlsSetting,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            setting,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            setting,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(TlsSetting::Key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsError::Pem {
            setting: TlsSetting::Key,
            path: path.to_path_buf(),
            source,
        },
    })
}

fn read_file(setting: TlsSetting, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[path = "tls/tests.rs"]
mod tests;
