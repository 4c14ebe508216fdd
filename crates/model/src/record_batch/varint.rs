//! Kafka's variable-length integers: ZigZag-encoded, then written seven bits a byte, least
//! significant group first, the high bit of each byte saying "another byte follows" (the
//! protobuf encoding, which Kafka borrows for record fields; KIP-98, "Record").
//!
//! A varint carries an `i32` in at most 5 bytes, a varlong an `i64` in at most 10. Readers
//! refuse longer encodings and encodings whose value does not fit, instead of wrapping as
//! Kafka's Java reader does for the top bits of the last byte: no Kafka writer produces them,
//! and refusing keeps one value one encoding.

use bytes::BufMut;

/// Longest varint (an `i32`): 32 bits in 7-bit groups.
pub(super) const VARINT_BYTES_MAX: usize = 5;
/// Longest varlong (an `i64`): 64 bits in 7-bit groups.
pub(super) const VARLONG_BYTES_MAX: usize = 10;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VarintError {
    /// The bytes ended before the last byte of the varint.
    Truncated,
    /// The varint is longer than its type allows, or its value does not fit.
    Overflow,
}

pub(super) fn write_varint(buffer: &mut impl BufMut, value: i32) {
    write_unsigned(buffer, zigzag_encode_32(value).into());
}

pub(super) fn write_varlong(buffer: &mut impl BufMut, value: i64) {
    write_unsigned(buffer, zigzag_encode_64(value));
}

/// Bytes a value takes as a varlong; also as a varint when it fits an `i32`, since both
/// ZigZag-encode to the same unsigned number.
pub(super) fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag_encode_64(value))
}

/// Reads a varint from the start of `bytes`; returns the value and the bytes it took.
pub(super) fn read_varint(bytes: &[u8]) -> Result<(i32, usize), VarintError> {
    let (unsigned, used) = read_unsigned(bytes, VARINT_BYTES_MAX)?;
    let unsigned = u32::try_from(unsigned).map_err(|_| VarintError::Overflow)?;
    Ok((zigzag_decode_32(unsigned), used))
}

/// Reads a varlong from the start of `bytes`; returns the value and the bytes it took.
pub(super) fn read_varlong(bytes: &[u8]) -> Result<(i64, usize), VarintError> {
    let (unsigned, used) = read_unsigned(bytes, VARLONG_BYTES_MAX)?;
    Ok((zigzag_decode_64(unsigned), used))
}

fn zigzag_encode_32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag_decode_32(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

fn zigzag_encode_64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn zigzag_decode_64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn write_unsigned(buffer: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buffer.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buffer.put_u8(value as u8);
}

fn unsigned_len(value: u64) -> usize {
    // One byte per started group of 7 significant bits; zero still takes a byte.
    let significant_bits = 64 - value.leading_zeros() as usize;
    significant_bits.div_ceil(7).max(1)
}

fn read_unsigned(bytes: &[u8], bytes_max: usize) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if index == bytes_max {
            return Err(VarintError::Overflow);
        }
        let group = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        // The tenth byte of a varlong holds bit 63 alone; anything above it is lost.
        if shift == 63 && group > 1 {
            return Err(VarintError::Overflow);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    if bytes.len() >= bytes_max {
        return Err(VarintError::Overflow);
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_varint(value: i32) -> Vec<u8> {
        let mut buffer = Vec::new();
        write_varint(&mut buffer, value);
        buffer
    }

    #[test]
    fn zigzag_maps_small_magnitudes_to_one_byte() {
        assert_eq!(encoded_varint(0), [0x00]);
        assert_eq!(encoded_varint(-1), [0x01]);
        assert_eq!(encoded_varint(1), [0x02]);
        assert_eq!(encoded_varint(-64), [0x7f]);
        assert_eq!(encoded_varint(64), [0x80, 0x01]);
        assert_eq!(encoded_varint(300), [0xd8, 0x04]);
        assert_eq!(encoded_varint(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(encoded_varint(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn lengths_match_what_is_written() {
        for value in [0, 1, -1, 63, -64, 64, 8191, 8192, i32::MAX, i32::MIN] {
            assert_eq!(
                varlong_len(value.into()),
                encoded_varint(value).len(),
                "{value}"
            );
        }
        for value in [0i64, -1, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            let mut buffer = Vec::new();
            write_varlong(&mut buffer, value);
            assert_eq!(varlong_len(value), buffer.len(), "{value}");
            assert_eq!(read_varlong(&buffer), Ok((value, buffer.len())));
        }
    }

    #[test]
    fn refuses_truncated_and_overlong_encodings() {
        assert_eq!(read_varint(&[]), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(VarintError::Truncated));
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(VarintError::Overflow)
        );
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
            Err(VarintError::Overflow)
        );
        assert_eq!(read_varlong(&[0xff; 10]), Err(VarintError::Overflow));
        let mut eleven = vec![0x80; 10];
        eleven.push(0x00);
        assert_eq!(read_varlong(&eleven), Err(VarintError::Overflow));
    }

    proptest::proptest! {
        #[test]
        fn varints_round_trip(value: i32, trailing: Vec<u8>) {
            let mut buffer = encoded_varint(value);
            let length = buffer.len();
            buffer.extend_from_slice(&trailing);
            proptest::prop_assert_eq!(read_varint(&buffer), Ok((value, length)));
        }

        #[test]
        fn varlongs_round_trip(value: i64) {
            let mut buffer = Vec::new();
            write_varlong(&mut buffer, value);
            proptest::prop_assert_eq!(read_varlong(&buffer), Ok((value, buffer.len())));
        }
    }
}
