//! The Variable Byte Integer (MQTT 5.0 section 1.5.5; MQTT 3.1.1 section 2.2.3 for the
//! Remaining Length): seven bits per byte, least significant group first, the high bit set on
//! every byte but the last. It carries the Remaining Length, the Property Length, property
//! identifiers and Subscription Identifiers.
//!
//! ```text
//! value                      bytes
//! 0 ..= 127                  0x00 ..= 0x7f
//! 128 ..= 16_383             0x80 0x01 ..= 0xff 0x7f
//! 16_384 ..= 2_097_151       0x80 0x80 0x01 ..= 0xff 0xff 0x7f
//! 2_097_152 ..= 268_435_455  0x80 0x80 0x80 0x01 ..= 0xff 0xff 0xff 0x7f
//! ```
//!
//! Decoding refuses a fifth byte and an encoding longer than needed (`0x80 0x00` for 0): MQTT
//! 5.0 requires the shortest form [MQTT-1.5.5-1], and accepting only one form for each value
//! keeps decoding and encoding inverse to each other. MQTT 3.1.1 shows only the shortest forms
//! in its table (section 2.2.3), and clients send nothing else.

use crate::wire::Writer;

/// The largest value four bytes hold, and so the largest Remaining Length and Property Length.
pub const VARIABLE_INTEGER_MAX: u32 = 268_435_455;

/// At most four bytes [MQTT-1.5.5-1].
pub(crate) const VARIABLE_INTEGER_BYTES_MAX: usize = 4;

/// What the bytes at the front of a buffer say about a Variable Byte Integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VariableInteger {
    /// The value and how many bytes it took.
    Complete { value: u32, length: usize },
    /// Every byte present has its continuation bit set: the integer goes on past the buffer.
    Incomplete,
    /// Five bytes or more, or longer than the shortest form.
    Malformed,
}

/// Reads the Variable Byte Integer at the front of `bytes`, which may hold more after it.
pub(crate) fn decode(bytes: &[u8]) -> VariableInteger {
    let mut value: u32 = 0;
    for (index, &byte) in bytes.iter().take(VARIABLE_INTEGER_BYTES_MAX).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            // A last byte of zero after others adds nothing: a longer form than needed.
            if byte == 0 && index > 0 {
                return VariableInteger::Malformed;
            }
            return VariableInteger::Complete {
                value,
                length: index + 1,
            };
        }
    }
    if bytes.len() >= VARIABLE_INTEGER_BYTES_MAX {
        VariableInteger::Malformed
    } else {
        VariableInteger::Incomplete
    }
}

/// How many bytes [`write`] takes for `value`.
pub(crate) fn encoded_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` in its shortest form. A value over [`VARIABLE_INTEGER_MAX`] keeps only its
/// low 28 bits; callers check lengths against the maximum before they write (only a counting
/// writer, measuring a packet that will then be refused, ever sees a larger one).
pub(crate) fn write(writer: &mut Writer<'_>, value: u32) {
    let mut rest = value & VARIABLE_INTEGER_MAX;
    for _ in 0..VARIABLE_INTEGER_BYTES_MAX {
        let low = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            writer.write_u8(low);
            return;
        }
        writer.write_u8(low | 0x80);
    }
}
