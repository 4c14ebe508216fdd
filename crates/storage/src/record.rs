//! Record framing: how one record is laid out in a segment file.
//!
//! ```text
//!  0          4          8                    16
//!  +----------+----------+--------------------+------------------+
//!  | length   | crc32c   | offset | continues | payload ...      |
//!  | u32 LE   | u32 LE   | u64 LE: bit 63 flag| length - 16 bytes|
//!  +----------+----------+--------------------+------------------+
//! ```
//!
//! Bit 63 of the offset field is the *continues* flag: more records of the same atomic append
//! follow. Recovery drops a trailing run of records whose last one still says "continues", so
//! an append of many records is all-or-nothing even when the process dies halfway through
//! writing it.
//!
//! Bit 62 is the *quarantined* flag. Only `wharf check --repair` writes such frames, over a
//! damaged range whose bytes it has moved aside: the frame's checksum is valid, its length
//! covers exactly the damaged bytes, its payload is zeroes and its offset field holds the *end*
//! of the offsets it stands for (the offset of the first record after it). The scan knows where
//! the range starts (the offset it expects there), so the end is all a frame needs to say which
//! offsets are gone, and a frame of a bare header (16 bytes) can stand for any number of them:
//! a range as short as one empty record can be repaired. Offsets stay below 2^62, so the flag
//! can never be confused with a record's offset, and a reader that does not know the flag sees
//! an unexpected offset, that is damage, never a record.
//!
//! `length` counts the whole frame, header included, so it is never 0: a zero length marks the
//! end of the written data in a zero-filled (preallocated) segment. The CRC32C covers the length,
//! the offset and the payload (every byte but its own four). Carrying the offset in the frame
//! means a stale frame left in a reused region can never pass as the record expected there.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// Bytes of frame header before the payload.
pub const RECORD_HEADER_BYTES: usize = 16;

/// Largest payload one record may carry. 64 MiB: far above any message or batch the doors
/// accept (8 MiB per call), small enough that one bad length field cannot make recovery read
/// gigabytes.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 << 20;

/// A position in one log: the first record is 0 and each append takes the next number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One record read back from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: Offset,
    pub payload: Bytes,
}

const CONTINUES: u64 = 1 << 63;
const QUARANTINED: u64 = 1 << 62;
const FLAGS: u64 = CONTINUES | QUARANTINED;

/// Appends the frame of one record to `out`; `continues` says more records of the same atomic
/// append follow it.
pub(crate) fn encode(offset: Offset, payload: &[u8], continues: bool, out: &mut Vec<u8>) {
    assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX);
    assert!(offset.0 < QUARANTINED, "offsets stay below 2^62");
    let length = (RECORD_HEADER_BYTES + payload.len()) as u32;
    let start = out.len();
    out.reserve(length as usize);
    out.put_u32_le(length);
    out.put_u32_le(0); // checksum, stamped below
    out.put_u64_le(offset.0 | if continues { CONTINUES } else { 0 });
    out.put_slice(payload);
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends a quarantined frame of `length` bytes (header included) standing for the offsets
/// before `end` from wherever it is found: see the module header.
pub(crate) fn encode_quarantined(end: Offset, length: usize, out: &mut BytesMut) {
    assert!((RECORD_HEADER_BYTES..=FRAME_BYTES_MAX).contains(&length));
    assert!(end.0 < QUARANTINED, "offsets stay below 2^62");
    let start = out.len();
    out.reserve(length);
    out.put_u32_le(length as u32);
    out.put_u32_le(0); // checksum, stamped below
    out.put_u64_le(end.0 | QUARANTINED);
    out.put_bytes(0, length - RECORD_HEADER_BYTES);
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The largest frame: header and the largest payload.
pub(crate) const FRAME_BYTES_MAX: usize = RECORD_HEADER_BYTES + RECORD_PAYLOAD_BYTES_MAX;

/// Length of the frame for a payload of `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + payload_len
}

/// What the 16 header bytes at some position say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// Zero length: no record was ever written here.
    End,
    /// A plausible frame of `length` bytes claiming `offset`.
    Frame {
        length: u32,
        offset: Offset,
        continues: bool,
        /// A quarantined frame: `offset` is the end of the offsets it stands for.
        quarantined: bool,
    },
    /// A length no valid frame can have.
    BadLength,
}

pub(crate) fn decode_header(bytes: &[u8; RECORD_HEADER_BYTES]) -> Header {
    let length = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let offset = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if length == 0 {
        return Header::End;
    }
    let length_ok = (length as usize) >= RECORD_HEADER_BYTES
        && (length as usize) <= frame_len(RECORD_PAYLOAD_BYTES_MAX);
    if !length_ok {
        return Header::BadLength;
    }
    Header::Frame {
        length,
        offset: Offset(offset & !FLAGS),
        continues: offset & CONTINUES != 0,
        quarantined: offset & QUARANTINED != 0,
    }
}

/// Checks a whole frame (header included) against its checksum and expected offset.
pub(crate) fn verify(frame: &[u8], expected: Offset) -> Result<(), &'static str> {
    if frame.len() < RECORD_HEADER_BYTES {
        return Err("frame shorter than its header");
    }
    let stored = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    if checksum(frame) != stored {
        return Err("checksum mismatch");
    }
    let offset = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
    if offset & !CONTINUES != expected.0 {
        return Err("record carries an unexpected offset");
    }
    Ok(())
}

/// Checks a whole quarantined frame against its checksum and flags; returns the end of the
/// offsets it stands for.
pub(crate) fn verify_quarantined(frame: &[u8]) -> Result<Offset, &'static str> {
    if frame.len() < RECORD_HEADER_BYTES {
        return Err("frame shorter than its header");
    }
    let stored = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    if checksum(frame) != stored {
        return Err("checksum mismatch");
    }
    let field = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
    if field & FLAGS != QUARANTINED {
        return Err("quarantined frame with an invalid flag");
    }
    Ok(Offset(field & !FLAGS))
}

fn checksum(frame: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&frame[0..4]);
    crc32c::crc32c_append(crc, &frame[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header_of(frame: &[u8]) -> Header {
        decode_header(frame[..RECORD_HEADER_BYTES].try_into().unwrap())
    }

    #[test]
    fn empty_payload_frame_is_not_the_end_marker() {
        let mut out = Vec::new();
        encode(Offset(7), b"", false, &mut out);
        assert_eq!(out.len(), RECORD_HEADER_BYTES);
        assert!(matches!(header_of(&out), Header::Frame { length: 16, .. }));
        assert_eq!(verify(&out, Offset(7)), Ok(()));
    }

    #[test]
    fn zeroes_read_as_end() {
        assert_eq!(decode_header(&[0; RECORD_HEADER_BYTES]), Header::End);
    }

    #[test]
    fn wrong_offset_is_rejected() {
        let mut out = Vec::new();
        encode(Offset(3), b"abc", true, &mut out);
        assert_eq!(
            verify(&out, Offset(4)),
            Err("record carries an unexpected offset")
        );
    }

    #[test]
    fn quarantined_frame_says_its_end_and_is_no_record() {
        for frame_len in [RECORD_HEADER_BYTES, 100] {
            let mut out = BytesMut::new();
            encode_quarantined(Offset(9), frame_len, &mut out);
            assert_eq!(out.len(), frame_len);
            let header = header_of(&out);
            let expected = Header::Frame {
                length: frame_len as u32,
                offset: Offset(9),
                continues: false,
                quarantined: true,
            };
            assert_eq!(header, expected);
            assert_eq!(verify_quarantined(&out), Ok(Offset(9)));
            // A reader expecting a record at any offset rejects it.
            assert!(verify(&out, Offset(9)).is_err());
            out[frame_len - 1] ^= 1;
            assert_eq!(verify_quarantined(&out), Err("checksum mismatch"));
        }
        let mut record = Vec::new();
        encode(Offset(9), b"abc", false, &mut record);
        assert!(verify_quarantined(&record).is_err());
    }

    proptest! {
        #[test]
        fn frame_round_trips(offset in 0..u64::MAX >> 2, continues in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut out = Vec::new();
            encode(Offset(offset), &payload, continues, &mut out);
            prop_assert_eq!(out.len(), frame_len(payload.len()));
            let Header::Frame { length, offset: got, continues: got_continues, quarantined: false } = header_of(&out) else {
                return Err(TestCaseError::fail("header did not decode"));
            };
            prop_assert_eq!(length as usize, out.len());
            prop_assert_eq!(got, Offset(offset));
            prop_assert_eq!(got_continues, continues);
            prop_assert_eq!(verify(&out, Offset(offset)), Ok(()));
            prop_assert_eq!(&out[RECORD_HEADER_BYTES..], &payload[..]);
        }

        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 0..512), bit in any::<prop::sample::Index>()) {
            let mut out = Vec::new();
            encode(Offset(42), &payload, false, &mut out);
            let bit = bit.index(out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            // A flip in the length field may turn the frame into another length; either the
            // header is rejected, or the frame of the original size no longer verifies.
            prop_assert!(verify(&out, Offset(42)).is_err());
        }
    }
}
