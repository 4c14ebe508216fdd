//! Receipts: the token a consumer gets with a delivery and hands back to ack, nack or extend.
//!
//! A receipt names one lease, not one message: it carries the message's sequence, the seed of
//! the queue state that issued it, and a lease number that state never reuses. So a receipt
//! from an earlier delivery of the same message, or from before a restart (a new state is
//! built with a new seed), never matches a later lease.
//!
//! ```text
//!  0                16               32               48  hex digits
//!  +----------------+----------------+----------------+
//!  | seq            | incarnation    | lease          |
//!  +----------------+----------------+----------------+
//! ```

use super::message::Seq;
use std::fmt;
use std::str::FromStr;

const HEX_DIGITS_PER_FIELD: usize = 16;

/// An opaque lease token. Doors show it as its 48-hex-digit `Display` form and parse it back
/// with `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    seq: Seq,
    incarnation: u64,
    lease: u64,
}

/// Why an ack, nack or extend did not apply. The caller reports it per receipt; the queue
/// state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt {receipt} matches no current lease: the message was settled, returned or leased again since")]
    Stale { receipt: Receipt },
    #[error("the lease of receipt {receipt} ran out at {expired_at}")]
    LeaseExpired { receipt: Receipt, expired_at: u64 },
}

/// A string that is not a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptParseError {
    #[error("receipt {text:?} is not 48 hexadecimal digits")]
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

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}{:016x}{:016x}",
            self.seq.0, self.incarnation, self.lease
        )
    }
}

impl FromStr for Receipt {
    type Err = ReceiptParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || ReceiptParseError::Malformed {
            text: text.to_owned(),
        };
        if text.len() != 3 * HEX_DIGITS_PER_FIELD || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let field = |index: usize| {
            let start = index * HEX_DIGITS_PER_FIELD;
            u64::from_str_radix(&text[start..start + HEX_DIGITS_PER_FIELD], 16)
                .map_err(|_| malformed())
        };
        Ok(Receipt {
            seq: Seq(field(0)?),
            incarnation: field(1)?,
            lease: field(2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let receipt = Receipt::new(Seq(42), 0xdead_beef, u64::MAX);
        let text = receipt.to_string();
        assert_eq!(text.len(), 48);
        assert_eq!(text.parse::<Receipt>().unwrap(), receipt);
    }

    #[test]
    fn parse_refuses_wrong_length_and_non_hex_digits() {
        assert!("abc".parse::<Receipt>().is_err());
        assert!("g".repeat(48).parse::<Receipt>().is_err());
        assert!("+".repeat(48).parse::<Receipt>().is_err());
    }
}
