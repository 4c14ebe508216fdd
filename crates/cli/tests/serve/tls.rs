//! `wharf serve --tls-*` with real clients: the `curl` binary, and reqwest for a connection
//! kept open across a SIGHUP. Certificates are made by rcgen for each test.

use crate::authority::Authority;
use crate::common::{run_to_end, wharf, POLL_INTERVAL};
use crate::process::{free_address, ServerProcess, EXIT_DEADLINE, STARTUP_DEADLINE};
use std::{
    fs,
    net::SocketAddr,
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

/// One request to a local server answers in milliseconds; this only stops a hung test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `curl --cacert CA https://ADDRESS/healthz`: the status code, or curl's error.
fn curl_healthz(address: SocketAddr, ca: &Path) -> Result<u16, String> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--noproxy", "*"])
        .args(["--max-time", "10", "--output", "/dev/null"])
        .args(["--write-out", "%{http_code}", "--cacert"])
        .arg(ca)
        .arg(format!("https://{address}/healthz"))
        .output()
        .expect("run curl (the TLS tests need the curl binary; .ci/run installs it)");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let code = String::from_utf8_lossy(&output.stdout);
    code.trim().parse().map_err(|_| format!("status {code:?}"))
}

/// Starts `wharf serve --tls-cert --tls-key` on a free port and waits until curl trusting
/// `ca` gets 200 from it.
fn start_tls(dir: &Path, cert: &Path, key: &Path, ca: &Path) -> (ServerProcess, SocketAddr) {
    let address = free_address();
    let mut command = wharf();
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--http-addr")
        .arg(address.to_string())
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    let mut server = ServerProcess::spawn(command, dir);
    wait_for_status(&mut server, address, ca);
    (server, address)
}

/// Polls `curl --cacert ca` until it gets 200; fails if the process exits or time runs out.
fn wait_for_status(server: &mut ServerProcess, address: SocketAddr, ca: &Path) {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        let last = curl_healthz(address, ca);
        if last == Ok(200) {
            return;
        }
        if let Some(status) = server.child.try_wait().expect("poll child") {
            panic!("wharf exited with {status}; stderr:\n{}", server.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "curl never got 200 from {address} (last: {last:?}); stderr:\n{}",
            server.stderr()
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// A blocking client trusting only the CA in `ca`; it keeps its connections open between
/// requests.
fn keep_alive_client(ca: &Path) -> reqwest::blocking::Client {
    let pem = fs::read(ca).expect("read CA");
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

fn healthz(client: &reqwest::blocking::Client, address: SocketAddr) -> reqwest::Result<u16> {
    let response = client.get(format!("https://{address}/healthz")).send()?;
    Ok(response.status().as_u16())
}

#[test]
fn curl_trusting_the_ca_gets_200_and_curl_trusting_another_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let ca_path = ca.write(&dir.path().join("ca.pem"));
    let (cert, key) = ca.issue_into(dir.path());
    let (mut server, address) = start_tls(dir.path(), &cert, &key, &ca_path);

    assert_eq!(curl_healthz(address, &ca_path), Ok(200));
    let other = Authority::new("another CA").write(&dir.path().join("other-ca.pem"));
    let refused = curl_healthz(address, &other).unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(EXIT_DEADLINE).success());
}

#[test]
fn sighup_serves_the_new_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old_ca = Authority::new("old CA");
    let old_ca_path = old_ca.write(&dir.path().join("old-ca.pem"));
    let (cert, key) = old_ca.issue_into(dir.path());
    let (mut server, address) = start_tls(dir.path(), &cert, &key, &old_ca_path);
    let kept = keep_alive_client(&old_ca_path);
    assert_eq!(healthz(&kept, address).expect("old certificate"), 200);

    let new_ca = Authority::new("new CA");
    let new_ca_path = new_ca.write(&dir.path().join("new-ca.pem"));
    new_ca.issue_into(dir.path());
    server.signal(libc::SIGHUP);
    wait_for_status(&mut server, address, &new_ca_path);

    assert!(
        curl_healthz(address, &old_ca_path).is_err(),
        "old cert gone"
    );
    // Trusting only the old CA, this client can succeed only on its open connection.
    assert_eq!(healthz(&kept, address).expect("kept connection"), 200);
    assert!(server.stderr().contains("TLS certificate reloaded"));

    // A reload that fails keeps the certificate in use and names the file.
    fs::write(dir.path().join("key.pem"), "not a key").expect("spoil the key");
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + STARTUP_DEADLINE;
    while !server.stderr().contains("TLS reload failed") {
        assert!(Instant::now() < deadline, "stderr:\n{}", server.stderr());
        thread::sleep(POLL_INTERVAL);
    }
    assert!(server.stderr().contains("key.pem"), "{}", server.stderr());
    assert_eq!(curl_healthz(address, &new_ca_path), Ok(200));

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(EXIT_DEADLINE).success());
}

#[test]
fn unusable_tls_settings_stop_serve_with_the_setting_and_file_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("server CA");
    let (cert, key) = ca.issue_into(dir.path());
    let serve = |args: &[&Path]| {
        let mut command = wharf();
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--http-addr")
            .arg(free_address().to_string());
        for pair in args.chunks(2) {
            command.arg(pair[0]).arg(pair[1]);
        }
        let (status, _, stderr) = run_to_end(command, EXIT_DEADLINE);
        assert!(!status.success(), "{stderr}");
        stderr
    };
    let flag = |name: &'static str| Path::new(name);

    let stderr = serve(&[flag("--tls-cert"), &cert]);
    assert!(stderr.contains("tls.key"), "{stderr}");
    let missing = dir.path().join("missing.pem");
    let stderr = serve(&[flag("--tls-cert"), &missing, flag("--tls-key"), &key]);
    assert!(
        stderr.contains("tls.cert") && stderr.contains("missing.pem"),
        "{stderr}"
    );
    let stderr = serve(&[flag("--tls-cert"), &key, flag("--tls-key"), &key]);
    assert!(stderr.contains("no certificate"), "{stderr}");
    let other = dir.path().join("other");
    fs::create_dir(&other).expect("dir");
    let (_, other_key) = ca.issue_into(&other);
    let stderr = serve(&[flag("--tls-cert"), &cert, flag("--tls-key"), &other_key]);
    assert!(stderr.contains("does not match"), "{stderr}");
}
