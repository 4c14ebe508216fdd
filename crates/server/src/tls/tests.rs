//! TLS against the real server and a real client (reqwest over rustls), with certificates
//! made by rcgen for each test.

use super::*;
use crate::{config::ServeConfig, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    task::JoinHandle,
};

/// One request to a local server answers in milliseconds; this only stops a hung test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate authority made for one test.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed");
        Authority { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for 127.0.0.1 and localhost signed by this CA: (cert PEM, key PEM).
    fn issue(&self) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let params = CertificateParams::new(names).expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes a certificate from `ca` to `cert.pem` and `key.pem` in `dir`.
fn write_server_files(dir: &Path, ca: &Authority) -> TlsFiles {
    let (cert, key) = ca.issue();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        client_ca: None,
    };
    fs::write(&files.cert, cert).expect("write cert");
    fs::write(&files.key, key).expect("write key");
    files
}

struct Running {
    addr: SocketAddr,
    tls: Arc<ReloadableTls>,
    stop: oneshot::Sender<()>,
    running: JoinHandle<Result<(), crate::ServeError>>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).expect("server running");
        let stopped = self.running.await.expect("no panic");
        stopped.expect("clean shutdown");
    }
}

/// Serves TLS with `files`; `limits` adjusts the connection limits first.
async fn serve_tls(
    dir: &Path,
    files: &TlsFiles,
    limits: impl FnOnce(&mut crate::config::LimitSettings),
) -> Running {
    let mut config = ServeConfig {
        data_dir: dir.join("data"),
        http_addr: "127.0.0.1:0".parse().expect("address"),
        amqp_addr: crate::Listen::Off,
        amqps_addr: Some(crate::Listen::Off),
        mqtt_addr: crate::Listen::Off,
        mqtts_addr: Some(crate::Listen::Off),
        ..ServeConfig::default()
    };
    config.tls.cert = Some(files.cert.clone());
    config.tls.key = Some(files.key.clone());
    config.tls.client_ca = files.client_ca.clone();
    limits(&mut config.limits);
    let server = Server::bind(&config).await.expect("binds");
    let addr = server.local_addr();
    let tls = server.tls().expect("tls on").clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        tls,
        stop,
        running,
    }
}

/// A client trusting only `ca`, presenting `identity` (cert and key PEM) if given.
fn client(ca: &Authority, identity: Option<(String, String)>) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA PEM");
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .no_proxy()
        .timeout(REQUEST_TIMEOUT);
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

async fn healthz(client: &reqwest::Client, addr: SocketAddr) -> reqwest::Result<u16> {
    let response = client.get(format!("https://{addr}/healthz")).send().await?;
    Ok(response.status().as_u16())
}

#[test]
fn unusable_files_are_refused_naming_the_setting_and_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("test CA");
    let files = write_server_files(dir.path(), &ca);
    let message = |files: &TlsFiles| {
        let error = ReloadableTls::load(files.clone()).unwrap_err();
        (error.to_string(), error)
    };

    let missing = TlsFiles {
        cert: dir.path().join("absent.pem"),
        ..files.clone()
    };
    let (text, error) = message(&missing);
    assert!(
        matches!(
            error,
            TlsError::Read {
                setting: TlsSetting::Cert,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("tls.cert") && text.contains("absent.pem"),
        "{text}"
    );

    let key_as_cert = TlsFiles {
        cert: files.key.clone(),
        ..files.clone()
    };
    let (text, error) = message(&key_as_cert);
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{text}");
    assert!(
        text.contains("tls.cert") && text.contains("key.pem"),
        "{text}"
    );

    let cert_as_key = TlsFiles {
        key: files.cert.clone(),
        ..files.clone()
    };
    let (text, error) = message(&cert_as_key);
    assert!(matches!(error, TlsError::NoKey { .. }), "{text}");
    assert!(
        text.contains("tls.key") && text.contains("cert.pem"),
        "{text}"
    );

    let other = dir.path().join("other");
    fs::create_dir(&other).expect("dir");
    let other_files = write_server_files(&other, &ca);
    let mismatched = TlsFiles {
        key: other_files.key.clone(),
        ..files.clone()
    };
    let (text, error) = message(&mismatched);
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{text}");
    assert!(text.contains("does not match"), "{text}");

    let no_ca = TlsFiles {
        client_ca: Some(dir.path().join("no-ca.pem")),
        ..files.clone()
    };
    let (text, _) = message(&no_ca);
    assert!(
        text.contains("tls.client_ca") && text.contains("no-ca.pem"),
        "{text}"
    );
    ReloadableTls::load(files).expect("the good files load");
}

#[tokio::test]
async fn https_with_the_right_ca_answers_and_a_wrong_ca_or_plain_http_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let files = write_server_files(dir.path(), &ca);
    let server = serve_tls(dir.path(), &files, |_| {}).await;

    let status = healthz(&client(&ca, None), server.addr).await;
    assert_eq!(status.expect("trusted"), 200);

    let stranger = Authority::new("another CA");
    let refused = healthz(&client(&stranger, None), server.addr).await;
    assert!(refused.is_err(), "a client trusting another CA is refused");

    let mut plain = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, plain.read_to_end(&mut reply)).await;
    assert!(
        read.is_ok(),
        "the server closed the plain connection in time"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        !reply.contains("HTTP/1.1"),
        "no HTTP over plain TCP: {reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_it_signed_are_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let client_ca = Authority::new("client CA");
    let mut files = write_server_files(dir.path(), &ca);
    let client_ca_path = dir.path().join("client-ca.pem");
    fs::write(&client_ca_path, client_ca.pem()).expect("write client CA");
    files.client_ca = Some(client_ca_path);
    let server = serve_tls(dir.path(), &files, |_| {}).await;

    let anonymous = healthz(&client(&ca, None), server.addr).await;
    assert!(anonymous.is_err(), "no client certificate: refused");
    let forged = Authority::new("not the client CA").issue();
    let forged = healthz(&client(&ca, Some(forged)), server.addr).await;
    assert!(forged.is_err(), "a certificate from another CA: refused");
    let signed = healthz(&client(&ca, Some(client_ca.issue())), server.addr).await;
    assert_eq!(signed.expect("signed by the client CA"), 200);
    server.stop().await;
}

/// What SIGHUP does (the `wharf serve` test sends the real signal).
#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old_ca = Authority::new("old CA");
    let files = write_server_files(dir.path(), &old_ca);
    let server = serve_tls(dir.path(), &files, |_| {}).await;
    let kept = client(&old_ca, None);
    assert_eq!(healthz(&kept, server.addr).await.expect("old cert"), 200);

    let new_ca = Authority::new("new CA");
    write_server_files(dir.path(), &new_ca);
    server.tls.reload().expect("reloads");

    let fresh = healthz(&client(&new_ca, None), server.addr).await;
    assert_eq!(fresh.expect("new connections get the new cert"), 200);
    let stale = healthz(&client(&old_ca, None), server.addr).await;
    assert!(
        stale.is_err(),
        "a new connection no longer gets the old cert"
    );
    // Trusting only the old CA, this client can succeed only on its pooled connection.
    let again = healthz(&kept, server.addr).await;
    assert_eq!(again.expect("the open connection continues"), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_reload_keeps_the_certificate_in_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let files = write_server_files(dir.path(), &ca);
    let server = serve_tls(dir.path(), &files, |_| {}).await;
    fs::write(&files.key, "not a key").expect("spoil the key");
    let error = server.tls.reload().unwrap_err();
    assert!(error.to_string().contains("key.pem"), "{error}");
    let status = healthz(&client(&ca, None), server.addr).await;
    assert_eq!(status.expect("still the old cert"), 200);
    server.stop().await;
}

/// The handshake runs on the connection's task: a client that never sends its ClientHello
/// neither delays other clients nor keeps its slot past the idle timeout.
#[tokio::test]
async fn an_unfinished_handshake_blocks_no_one_and_is_closed_when_idle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let files = write_server_files(dir.path(), &ca);
    let server = serve_tls(dir.path(), &files, |limits| {
        limits.http_idle_timeout_ms = 300;
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut half = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    // The first bytes of a TLS record header (handshake, TLS 1.0 record version).
    half.write_all(&[0x16, 0x03, 0x01]).await.expect("write");

    let status = healthz(&client(&ca, None), server.addr).await;
    assert_eq!(status.expect("served while others stall"), 200);
    for stalled in [&mut silent, &mut half] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(REQUEST_TIMEOUT, stalled.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "a stalled handshake is closed by the idle timeout"
        );
    }
    server.stop().await;
}

/// Over the cap a TLS connection is closed unanswered (a 503 would need a handshake), and its
/// slot is free for the next client once the connection holding it closes.
#[tokio::test]
async fn a_tls_connection_over_the_cap_is_closed_and_the_slot_comes_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let files = write_server_files(dir.path(), &ca);
    let server = serve_tls(dir.path(), &files, |limits| {
        limits.http_connections_max = 1;
    })
    .await;
    let holder = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut over = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut reply = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, over.read_to_end(&mut reply)).await;
    assert!(
        read.is_ok(),
        "the connection over the cap is closed at once"
    );
    assert!(reply.is_empty(), "no plaintext 503 on a TLS port");

    drop(holder);
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let client = client(&ca, None);
    while healthz(&client, server.addr).await.ok() != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed connection frees its slot"
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}
