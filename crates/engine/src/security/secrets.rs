//! Secrets: password hashes (Argon2id), random tokens and their digests, compared in
//! constant time.
//!
//! Passwords are low-entropy, so they are stored as Argon2id hashes in PHC strings (salt and
//! parameters inside), which makes each guess against a stolen metadata file cost tens of
//! milliseconds. Tokens are 256 random bits: a plain SHA-256 digest is enough to make a stolen
//! file useless, and checking one costs a microsecond instead of an Argon2 run per request.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes from the operating system. Failing to get them is fatal for security, never
/// worked around with weaker randomness.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source");
    bytes
}

/// Lower-case hex of `bytes`; one allocation (it runs for every token a request presents).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The PHC string of `password`'s Argon2id hash with a fresh salt. Slow by design.
pub(crate) fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes encode");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters")
        .to_string()
}

/// True when `password` matches the PHC string `hash` (false for a hash that cannot be read).
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// SHA-256 of `secret`.
pub(crate) fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// `a == b` in time that depends only on their lengths.
pub(crate) fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_hashes_differ_by_salt() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse"));
    }

    #[test]
    fn comparison_and_digests() {
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"abcd"));
        assert_eq!(
            hex(&digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(random_bytes::<32>(), random_bytes::<32>());
    }
}
