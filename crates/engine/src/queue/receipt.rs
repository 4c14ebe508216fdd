//! Receipts: the token a consumer gets with a delivery and hands back to ack, nack or extend.
//!
//! A [`Receipt`] names one lease, not one message: it carries the message's sequence, the seed
//! of the queue state that issued it, and a lease number that state never reuses. So a receipt
//! from an earlier delivery of the same message, or from before a restart (a new state is
//! built with a new seed), never matches a later lease.
//!
//! Clients hold a [`SignedReceipt`]: the receipt, the queue that issued it (its resource id,
//! never reused) and a tag, an HMAC-SHA256 over both under a key drawn at random when the
//! process starts ([`ReceiptKey`]). The lease number is a counter and the sequence a log
//! offset, so without the tag one receipt would give away the next; with it a receipt cannot
//! be guessed or edited, and a receipt of one queue is refused by every other.
//!
//! ```text
//!  0            16           32           48           64                          96 hex digits
//!  +------------+------------+------------+------------+----------------------------+
//!  | queue      | seq        | incarnation| lease      | tag: HMAC-SHA256, 128 bits |
//!  +------------+------------+------------+------------+----------------------------+
//! ```

use super::message::Seq;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

const HEX_DIGITS_PER_FIELD: usize = 16;
/// Bytes of the tag kept: 128 bits leave a forger one chance in 2^128 per try.
const TAG_BYTES: usize = 16;
const SIGNED_HEX_DIGITS: usize = 4 * HEX_DIGITS_PER_FIELD + 2 * TAG_BYTES;
/// SHA-256's block size, the HMAC key's padded length (RFC 2104).
const HMAC_BLOCK_BYTES: usize = 64;

/// A lease inside a queue's state. Doors never see it: they get a [`SignedReceipt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    seq: Seq,
    incarnation: u64,
    lease: u64,
}

/// A receipt as a client holds it: the lease, the queue that issued it and their tag. Doors
/// show it as its `Display` form and parse it back with `FromStr`; the text is opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedReceipt {
    queue: u64,
    receipt: Receipt,
    tag: [u8; TAG_BYTES],
}

/// The secret receipts are signed with. One per process: receipts do not outlive a restart
/// anyway (their incarnation changes). It holds HMAC's two keyed hash states, computed once,
/// so a tag costs two SHA-256 blocks instead of four; shared, as every queue holds the key.
#[derive(Clone)]
pub struct ReceiptKey(std::sync::Arc<KeyedHashes>);

/// SHA-256 after absorbing the key XOR ipad, and after the key XOR opad (RFC 2104).
struct KeyedHashes {
    inner: Sha256,
    outer: Sha256,
}

/// Why an ack, nack or extend did not apply. The caller reports it per receipt, next to the
/// receipt's text; the queue state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the receipt matches no current lease: the message was settled, returned or leased again since")]
    Stale { receipt: Receipt },
    #[error("the lease of the receipt ran out at {expired_at}")]
    LeaseExpired { receipt: Receipt, expired_at: u64 },
    /// Signed by another queue: it settles nothing here.
    #[error("the receipt belongs to another queue, not to queue {queue:?}")]
    OtherQueue { queue: String },
    /// Its tag does not match: made up or edited, not issued.
    #[error("the receipt was not issued by queue {queue:?}")]
    NotIssued { queue: String },
}

/// A string that is not a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptParseError {
    #[error("receipt {text:?} is not a receipt this server issues")]
    Malformed { text: String },
}

impl Receipt {
    pub(crate) fn new(seq: Seq, incarnation: u64, lease: u64) -> Receipt {
        Receipt {
            seq,
            incarnation,
            lease,
        }
    }

    /// The message this receipt leased.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub(crate) fn lease(&self) -> u64 {
        self.lease
    }
}

impl ReceiptKey {
    /// A key from the operating system's random source.
    pub fn random() -> ReceiptKey {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the operating system's random source");
        ReceiptKey::from_bytes(key)
    }

    /// A fixed key, for tests that need the same receipts every run.
    pub fn from_bytes(key: [u8; 32]) -> ReceiptKey {
        let mut padded = [0u8; HMAC_BLOCK_BYTES];
        padded[..key.len()].copy_from_slice(&key);
        let keyed = |pad: u8| {
            let mut hash = Sha256::new();
            hash.update(padded.map(|byte| byte ^ pad));
            hash
        };
        ReceiptKey(std::sync::Arc::new(KeyedHashes {
            inner: keyed(0x36),
            outer: keyed(0x5c),
        }))
    }

    /// The receipt a client gets for `receipt`, a lease of the queue with resource id `queue`.
    pub fn sign(&self, queue: u64, receipt: Receipt) -> SignedReceipt {
        SignedReceipt {
            queue,
            receipt,
            tag: self.tag(queue, receipt),
        }
    }

    /// The lease `signed` names, if the queue with resource id `queue` (named `name`, for the
    /// error) issued it. A receipt of an earlier process, whose key is gone, is stale.
    pub fn verify(
        &self,
        queue: u64,
        name: &str,
        incarnation: u64,
        signed: &SignedReceipt,
    ) -> Result<Receipt, ReceiptError> {
        // The tag is checked first, against the queue the receipt names: only a receipt this
        // process really issued for another queue is "another queue's"; a made-up or edited
        // one is not issued, whatever queue it names.
        let expected = self.tag(signed.queue, signed.receipt);
        if bool::from(expected.ct_eq(&signed.tag)) {
            if signed.queue != queue {
                return Err(ReceiptError::OtherQueue {
                    queue: name.to_string(),
                });
            }
            return Ok(signed.receipt);
        }
        match signed.receipt.incarnation == incarnation {
            true => Err(ReceiptError::NotIssued {
                queue: name.to_string(),
            }),
            false => Err(ReceiptError::Stale {
                receipt: signed.receipt,
            }),
        }
    }

    /// HMAC-SHA256 (RFC 2104) over the queue and the lease, cut to [`TAG_BYTES`].
    fn tag(&self, queue: u64, receipt: Receipt) -> [u8; TAG_BYTES] {
        let mut inner = self.0.inner.clone();
        for field in [queue, receipt.seq.0, receipt.incarnation, receipt.lease] {
            inner.update(field.to_be_bytes());
        }
        let mut outer = self.0.outer.clone();
        outer.update(inner.finalize());
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&outer.finalize()[..TAG_BYTES]);
        tag
    }
}

impl fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

impl fmt::Display for SignedReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hex by hand into one buffer: a receipt is written per delivery, and the formatting
        // machinery's call per field showed in profiles.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let Receipt {
            seq,
            incarnation,
            lease,
        } = self.receipt;
        let mut text = [0u8; SIGNED_HEX_DIGITS];
        let bytes = [self.queue, seq.0, incarnation, lease]
            .into_iter()
            .flat_map(u64::to_be_bytes)
            .chain(self.tag);
        for (index, byte) in bytes.enumerate() {
            text[2 * index] = HEX[usize::from(byte >> 4)];
            text[2 * index + 1] = HEX[usize::from(byte & 0x0f)];
        }
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for SignedReceipt {
    type Err = ReceiptParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Hex by hand, as in `Display`: every ack parses one receipt per message, and
        // `from_str_radix` per field showed in profiles. A table gives each digit's value (16
        // for a byte that is none), so a pair is two lookups and one check.
        if text.len() != SIGNED_HEX_DIGITS {
            return Err(malformed(text));
        }
        let mut bytes = [0u8; SIGNED_HEX_DIGITS / 2];
        let mut invalid = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let high = HEX_VALUES[usize::from(pair[0])];
            let low = HEX_VALUES[usize::from(pair[1])];
            invalid |= (high | low) & 0x10;
            *byte = high << 4 | (low & 0x0f);
        }
        if invalid != 0 {
            return Err(malformed(text));
        }
        let field = |index: usize| {
            let mut be = [0u8; 8];
            be.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
            u64::from_be_bytes(be)
        };
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&bytes[32..]);
        Ok(SignedReceipt {
            queue: field(0),
            receipt: Receipt {
                seq: Seq(field(1)),
                incarnation: field(2),
                lease: field(3),
            },
            tag,
        })
    }
}

fn malformed(text: &str) -> ReceiptParseError {
    ReceiptParseError::Malformed {
        text: text.to_owned(),
    }
}

/// The value of each hex digit by its byte, either case; 16 for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut values = [16u8; 256];
    let mut digit = 0;
    while digit < 10 {
        values[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        values[b'a' as usize + letter] = 10 + letter as u8;
        values[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    values
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QUEUE: u64 = 7;
    const INCARNATION: u64 = 0xdead_beef;

    fn key() -> ReceiptKey {
        ReceiptKey::from_bytes([42; 32])
    }

    fn verify(signed: &SignedReceipt) -> Result<Receipt, ReceiptError> {
        key().verify(QUEUE, "jobs", INCARNATION, signed)
    }

    /// HMAC-SHA256 computed the plain way, from the key, to check the precomputed states.
    fn plain_tag(key: [u8; 32], queue: u64, receipt: Receipt) -> [u8; TAG_BYTES] {
        let mut padded = [0u8; HMAC_BLOCK_BYTES];
        padded[..key.len()].copy_from_slice(&key);
        let mut inner = Sha256::new();
        inner.update(padded.map(|byte| byte ^ 0x36));
        for field in [queue, receipt.seq.0, receipt.incarnation, receipt.lease] {
            inner.update(field.to_be_bytes());
        }
        let mut outer = Sha256::new();
        outer.update(padded.map(|byte| byte ^ 0x5c));
        outer.update(inner.finalize());
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&outer.finalize()[..TAG_BYTES]);
        tag
    }

    proptest! {
        #[test]
        fn tags_are_hmac_sha256_and_text_is_hex(
            key_bytes in any::<[u8; 32]>(),
            queue in any::<u64>(),
            seq in any::<u64>(),
            incarnation in any::<u64>(),
            lease in any::<u64>(),
        ) {
            let receipt = Receipt::new(Seq(seq), incarnation, lease);
            let signed = ReceiptKey::from_bytes(key_bytes).sign(queue, receipt);
            prop_assert_eq!(signed.tag, plain_tag(key_bytes, queue, receipt));
            let tag_hex: String = signed.tag.iter().map(|b| format!("{b:02x}")).collect();
            let expected = format!("{queue:016x}{seq:016x}{incarnation:016x}{lease:016x}{tag_hex}");
            prop_assert_eq!(signed.to_string(), expected);
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        let receipt = Receipt::new(Seq(42), INCARNATION, u64::MAX);
        let signed = key().sign(QUEUE, receipt);
        let text = signed.to_string();
        assert_eq!(text.len(), SIGNED_HEX_DIGITS);
        assert_eq!(text.parse::<SignedReceipt>().unwrap(), signed);
        assert_eq!(
            text.to_uppercase().parse::<SignedReceipt>().unwrap(),
            signed
        );
        assert_eq!(verify(&signed), Ok(receipt));
    }

    #[test]
    fn every_byte_but_a_hex_digit_is_refused_in_any_place() {
        let valid = key()
            .sign(QUEUE, Receipt::new(Seq(1), INCARNATION, 2))
            .to_string();
        for byte in 0..=u8::MAX {
            for place in [0, 1, 95] {
                let mut text = valid.clone().into_bytes();
                text[place] = byte;
                let Ok(text) = String::from_utf8(text) else {
                    continue; // Not a str: no client can send it as one.
                };
                let parsed = text.parse::<SignedReceipt>();
                assert_eq!(
                    parsed.is_ok(),
                    byte.is_ascii_hexdigit(),
                    "{byte:#x} at {place}"
                );
            }
        }
    }

    #[test]
    fn parse_refuses_wrong_length_and_non_hex_digits() {
        assert!("abc".parse::<SignedReceipt>().is_err());
        assert!(
            "0".repeat(48).parse::<SignedReceipt>().is_err(),
            "the old form"
        );
        assert!("g".repeat(96).parse::<SignedReceipt>().is_err());
        assert!("+".repeat(96).parse::<SignedReceipt>().is_err());
        assert!(
            "é".repeat(48).parse::<SignedReceipt>().is_err(),
            "96 bytes, not digits"
        );
    }

    #[test]
    fn a_receipt_of_another_queue_is_refused_by_name() {
        let signed = key().sign(QUEUE + 1, Receipt::new(Seq(1), INCARNATION, 1));
        let refused = verify(&signed).unwrap_err();
        assert_eq!(
            refused,
            ReceiptError::OtherQueue {
                queue: "jobs".to_string()
            }
        );
        assert_eq!(
            refused.to_string(),
            "the receipt belongs to another queue, not to queue \"jobs\""
        );
    }

    #[test]
    fn the_next_lease_cannot_be_guessed_from_a_receipt() {
        let signed = key().sign(QUEUE, Receipt::new(Seq(1), INCARNATION, 1));
        let text = signed.to_string();
        // The same queue, message and incarnation, the lease counted one on: no tag fits.
        let guess = format!("{}{:016x}{}", &text[..48], 2, &text[64..]);
        let guess: SignedReceipt = guess.parse().unwrap();
        assert_eq!(
            verify(&guess),
            Err(ReceiptError::NotIssued {
                queue: "jobs".to_string()
            })
        );
        let other_key = ReceiptKey::from_bytes([7; 32]);
        let forged = other_key.sign(QUEUE, Receipt::new(Seq(1), INCARNATION, 2));
        assert!(matches!(
            verify(&forged),
            Err(ReceiptError::NotIssued { .. })
        ));
        // Made up for another queue: not issued either, not "another queue's".
        let forged = other_key.sign(QUEUE + 1, Receipt::new(Seq(1), INCARNATION, 2));
        assert!(matches!(
            verify(&forged),
            Err(ReceiptError::NotIssued { .. })
        ));
    }

    #[test]
    fn a_receipt_of_an_earlier_process_is_stale() {
        let earlier = ReceiptKey::from_bytes([1; 32]);
        let signed = earlier.sign(QUEUE, Receipt::new(Seq(1), INCARNATION - 1, 1));
        assert!(matches!(verify(&signed), Err(ReceiptError::Stale { .. })));
    }

    proptest! {
        #[test]
        fn signed_receipts_round_trip(queue: u64, seq: u64, incarnation: u64, lease: u64) {
            let receipt = Receipt::new(Seq(seq), incarnation, lease);
            let signed = key().sign(queue, receipt);
            let parsed: SignedReceipt = signed.to_string().parse().unwrap();
            prop_assert_eq!(parsed, signed);
            prop_assert_eq!(key().verify(queue, "q", incarnation, &parsed), Ok(receipt));
        }

        /// Any one hex digit changed, anywhere, and the receipt names no lease any more.
        #[test]
        fn an_edited_receipt_is_refused(
            seq: u64,
            lease: u64,
            position in 0..SIGNED_HEX_DIGITS,
            delta in 1u8..16,
        ) {
            let signed = key().sign(QUEUE, Receipt::new(Seq(seq), INCARNATION, lease));
            let mut text = signed.to_string().into_bytes();
            let digit = (text[position] as char).to_digit(16).unwrap() as u8;
            text[position] = char::from_digit(u32::from((digit + delta) % 16), 16).unwrap() as u8;
            let edited: SignedReceipt = String::from_utf8(text).unwrap().parse().unwrap();
            prop_assert!(verify(&edited).is_err());
        }
    }
}
