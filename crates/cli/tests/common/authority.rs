//! A certificate authority made for one test (rcgen): its certificate, and server
//! certificates for 127.0.0.1 signed by it.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::{
    fs,
    path::{Path, PathBuf},
};

/// A certificate authority made for one test.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed");
        Authority { cert, key }
    }

    /// Writes this CA's certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        fs::write(path, self.cert.pem()).expect("write CA");
        path.to_path_buf()
    }

    /// Writes a certificate for 127.0.0.1 signed by this CA to `cert.pem` and `key.pem` in
    /// `dir`, replacing any there.
    pub fn issue_into(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert_path, cert.pem()).expect("write cert");
        fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}
