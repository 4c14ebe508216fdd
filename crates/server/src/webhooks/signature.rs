//! Standard Webhooks signatures: `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed
//! with the bytes of the endpoint's `whsec_` secret. During a secret's rotation both secrets
//! sign, their signatures separated by a space, and a receiver accepts either.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One `v1,` signature of the message `id` sent at `timestamp` (Unix seconds) with `body`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts every key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("v1,{}", base64_simd::STANDARD.encode_to_string(tag))
}

/// The `webhook-signature` header: a signature per key, space-separated.
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: u64, body: &[u8]) -> String {
    let signatures: Vec<String> = (keys.iter())
        .map(|key| sign(key, id, timestamp, body))
        .collect();
    signatures.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's example, checked against Python's `hmac`.
    #[test]
    fn signs_the_specification_example() {
        let key = base64_simd::STANDARD
            .decode_to_vec("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn each_key_signs_and_any_change_changes_the_signature() {
        let keys = vec![vec![1u8; 32], vec![2u8; 32]];
        let both = header(&keys, "m", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&keys[0], "m", 1, b"{}"), sign(&keys[1], "m", 1, b"{}")]
        );
        assert_ne!(sign(&keys[0], "m", 2, b"{}"), parts[0]);
        assert_ne!(sign(&keys[0], "n", 1, b"{}"), parts[0]);
        assert_ne!(sign(&keys[0], "m", 1, b"{ }"), parts[0]);
    }
}
