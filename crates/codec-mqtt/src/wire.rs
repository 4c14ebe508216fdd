//! The data representations of MQTT (5.0 section 1.5, 3.1.1 section 1.5): integers in network
//! order, Variable Byte Integers, UTF-8 strings and binary data with a two-byte length, string
//! pairs; a reader over one packet's bytes and a writer into a caller's buffer.
//!
//! ```text
//! Byte                   u8
//! Two Byte Integer       u16, big-endian
//! Four Byte Integer      u32, big-endian
//! Variable Byte Integer  1 to 4 bytes (crate::varint)
//! UTF-8 Encoded String   u16 length, then that many bytes of UTF-8 without U+0000
//! Binary Data            u16 length, then that many bytes
//! UTF-8 String Pair      two UTF-8 Encoded Strings: name, then value
//! ```
//!
//! The reader only ever sees a whole packet (the decoder waits for all of it), so running out
//! of bytes there means the packet is malformed, not that more is coming.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::strings::{Binary, Utf8String};
use crate::varint::{self, VariableInteger};

/// Reads the fields of one packet in order. Every read checks the bytes left first, so no
/// input makes it panic, and no length read from the input is trusted past the packet's end.
#[derive(Debug)]
pub(crate) struct Reader {
    bytes: Bytes,
    position: usize,
}

impl Reader {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Reader { bytes, position: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `count` bytes, shared with the packet, not copied.
    pub(crate) fn take(&mut self, count: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        let have = self.remaining();
        if count > have {
            return Err(DecodeError::Truncated {
                field,
                need: count,
                have,
            });
        }
        let taken = self.bytes.slice(self.position..self.position + count);
        self.position += count;
        Ok(taken)
    }

    /// Everything left, shared with the packet.
    pub(crate) fn take_rest(&mut self) -> Bytes {
        let rest = self.bytes.slice(self.position..);
        self.position = self.bytes.len();
        rest
    }

    fn take_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let have = self.remaining();
        let Some(slice) = self.bytes.get(self.position..self.position + N) else {
            return Err(DecodeError::Truncated {
                field,
                need: N,
                have,
            });
        };
        let mut array = [0; N];
        array.copy_from_slice(slice);
        self.position += N;
        Ok(array)
    }

    pub(crate) fn read_u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.take_array(field).map(u8::from_be_bytes)
    }

    pub(crate) fn read_u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.take_array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn read_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.take_array(field).map(u32::from_be_bytes)
    }

    pub(crate) fn read_variable_integer(
        &mut self,
        field: &'static str,
    ) -> Result<u32, DecodeError> {
        let rest = &self.bytes[self.position..];
        match varint::decode(rest) {
            VariableInteger::Complete { value, length } => {
                self.position += length;
                Ok(value)
            }
            VariableInteger::Incomplete => Err(DecodeError::Truncated {
                field,
                need: rest.len() + 1,
                have: rest.len(),
            }),
            VariableInteger::Malformed => Err(DecodeError::VariableIntegerMalformed { field }),
        }
    }

    /// A UTF-8 Encoded String: well-formed UTF-8 [MQTT-1.5.4-1] without U+0000 [MQTT-1.5.4-2].
    pub(crate) fn read_string(&mut self, field: &'static str) -> Result<Utf8String, DecodeError> {
        let length = self.read_u16(field)?;
        let bytes = self.take(usize::from(length), field)?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(error) => {
                return Err(DecodeError::StringNotUtf8 {
                    field,
                    valid_up_to: error.valid_up_to(),
                })
            }
        };
        // The length came in two bytes; only U+0000 can make the text invalid.
        Utf8String::try_from(text).map_err(|_| DecodeError::StringContainsNull { field })
    }

    pub(crate) fn read_binary(&mut self, field: &'static str) -> Result<Binary, DecodeError> {
        let length = self.read_u16(field)?;
        self.take(usize::from(length), field).map(Binary::from_wire)
    }
}

/// Appends fields to a caller's buffer or, made by [`Writer::counter`], only counts the bytes
/// it would append, so that lengths written before a part come from the very code that writes
/// the part.
pub(crate) struct Writer<'a> {
    out: Out<'a>,
}

enum Out<'a> {
    Buffer(&'a mut BytesMut),
    Count(usize),
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Self {
        Writer {
            out: Out::Buffer(buf),
        }
    }

    pub(crate) fn counter() -> Writer<'static> {
        Writer { out: Out::Count(0) }
    }

    /// The bytes counted so far by a counter; for a buffer, its length.
    pub(crate) fn count(&self) -> usize {
        match &self.out {
            Out::Buffer(buf) => buf.len(),
            Out::Count(count) => *count,
        }
    }

    pub(crate) fn write_u8(&mut self, value: u8) {
        self.write_bytes(&[value]);
    }

    pub(crate) fn write_u16(&mut self, value: u16) {
        self.write_bytes(&value.to_be_bytes());
    }

    pub(crate) fn write_u32(&mut self, value: u32) {
        self.write_bytes(&value.to_be_bytes());
    }

    pub(crate) fn write_variable_integer(&mut self, value: u32) {
        varint::write(self, value);
    }

    pub(crate) fn write_bytes(&mut self, value: &[u8]) {
        match &mut self.out {
            Out::Buffer(buf) => buf.put_slice(value),
            Out::Count(count) => *count += value.len(),
        }
    }

    pub(crate) fn write_string(&mut self, value: &Utf8String) {
        self.write_u16(value.len_u16());
        self.write_bytes(value.as_str().as_bytes());
    }

    pub(crate) fn write_binary(&mut self, value: &Binary) {
        self.write_u16(value.len_u16());
        self.write_bytes(value.as_bytes());
    }
}

/// The bytes `write` appends, counted without writing them.
pub(crate) fn measure(write: impl FnOnce(&mut Writer<'_>)) -> usize {
    let mut counter = Writer::counter();
    write(&mut counter);
    counter.count()
}
