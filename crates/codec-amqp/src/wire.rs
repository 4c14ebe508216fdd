//! The primitive domains of AMQP 0-9-1 (section 4.2.5): integers in network order, packed bits,
//! short and long strings; a reader over one frame's payload and a writer into a caller's
//! buffer.
//!
//! ```text
//! octet  u8            shortstr  u8 length, then up to 255 bytes of UTF-8
//! short  u16 (BE)      longstr   u32 length, then that many bytes, any content
//! long   u32 (BE)      bit       packed: consecutive bit arguments share one octet, the first
//! longlong u64 (BE)              in its lowest bit; any other argument ends the run
//! ```

use std::fmt;
use std::ops::Deref;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ValueError;
use crate::field::FieldTable;

/// The most bytes a short string holds: its length is one octet.
pub const SHORT_STRING_BYTES_MAX: usize = 255;

/// An AMQP `shortstr`: UTF-8 of at most [`SHORT_STRING_BYTES_MAX`] bytes, which the type
/// guarantees so that encoding cannot fail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortString(String);

/// A string too long for a `shortstr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a short string holds at most 255 bytes, this one has {length}")]
pub struct ShortStringTooLong {
    pub length: usize,
}

impl ShortString {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for ShortString {
    type Error = ShortStringTooLong;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() > SHORT_STRING_BYTES_MAX {
            return Err(ShortStringTooLong {
                length: value.len(),
            });
        }
        Ok(ShortString(value))
    }
}

impl TryFrom<&str> for ShortString {
    type Error = ShortStringTooLong;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        ShortString::try_from(value.to_owned())
    }
}

impl Deref for ShortString {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ShortString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ShortString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// An AMQP `longstr`: bytes of any content (SASL responses hold NULs), shared, not copied, with
/// the frame they came in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LongString(pub Bytes);

impl LongString {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<Bytes> for LongString {
    fn from(value: Bytes) -> Self {
        LongString(value)
    }
}

impl From<Vec<u8>> for LongString {
    fn from(value: Vec<u8>) -> Self {
        LongString(Bytes::from(value))
    }
}

impl From<&str> for LongString {
    fn from(value: &str) -> Self {
        LongString(Bytes::copy_from_slice(value.as_bytes()))
    }
}

impl Deref for LongString {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads the fields of one frame payload in order. Every read checks the bytes left first, so
/// no input makes it panic.
pub(crate) struct Reader {
    bytes: Bytes,
    position: usize,
    /// The octet of the bit run being read and the index of its next bit, while the previous
    /// read was a bit.
    bits: Option<(u8, u8)>,
}

impl Reader {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Reader {
            bytes,
            position: 0,
            bits: None,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// The next `count` bytes, shared with the payload.
    pub(crate) fn take(&mut self, count: usize) -> Result<Bytes, ValueError> {
        self.bits = None;
        let have = self.remaining();
        if count > have {
            return Err(ValueError::Truncated { need: count, have });
        }
        let taken = self.bytes.slice(self.position..self.position + count);
        self.position += count;
        Ok(taken)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        self.bits = None;
        let have = self.remaining();
        let Some(slice) = self.bytes.get(self.position..self.position + N) else {
            return Err(ValueError::Truncated { need: N, have });
        };
        let mut array = [0; N];
        array.copy_from_slice(slice);
        self.position += N;
        Ok(array)
    }

    pub(crate) fn read_u8(&mut self) -> Result<u8, ValueError> {
        self.take_array().map(u8::from_be_bytes)
    }

    pub(crate) fn read_u16(&mut self) -> Result<u16, ValueError> {
        self.take_array().map(u16::from_be_bytes)
    }

    pub(crate) fn read_u32(&mut self) -> Result<u32, ValueError> {
        self.take_array().map(u32::from_be_bytes)
    }

    pub(crate) fn read_u64(&mut self) -> Result<u64, ValueError> {
        self.take_array().map(u64::from_be_bytes)
    }

    pub(crate) fn read_i8(&mut self) -> Result<i8, ValueError> {
        self.take_array().map(i8::from_be_bytes)
    }

    pub(crate) fn read_i16(&mut self) -> Result<i16, ValueError> {
        self.take_array().map(i16::from_be_bytes)
    }

    pub(crate) fn read_i32(&mut self) -> Result<i32, ValueError> {
        self.take_array().map(i32::from_be_bytes)
    }

    pub(crate) fn read_i64(&mut self) -> Result<i64, ValueError> {
        self.take_array().map(i64::from_be_bytes)
    }

    pub(crate) fn read_f32(&mut self) -> Result<f32, ValueError> {
        self.take_array().map(f32::from_be_bytes)
    }

    pub(crate) fn read_f64(&mut self) -> Result<f64, ValueError> {
        self.take_array().map(f64::from_be_bytes)
    }

    /// One bit of a packed run (section 4.2.5.2): the first bit takes a new octet, the next
    /// seven come from the same one.
    pub(crate) fn read_bit(&mut self) -> Result<bool, ValueError> {
        let (octet, index) = match self.bits {
            Some((octet, index)) if index < 8 => (octet, index),
            _ => (self.read_u8()?, 0),
        };
        self.bits = Some((octet, index + 1));
        Ok(octet & (1 << index) != 0)
    }

    pub(crate) fn read_short_string(&mut self) -> Result<ShortString, ValueError> {
        let length = self.read_u8()?;
        let bytes = self.take(usize::from(length))?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(ShortString(text.to_owned())),
            Err(error) => Err(ValueError::ShortStringUtf8 {
                valid_up_to: error.valid_up_to(),
            }),
        }
    }

    pub(crate) fn read_long_string(&mut self) -> Result<LongString, ValueError> {
        let length = self.read_u32()?;
        let have = self.remaining();
        let count = usize::try_from(length).map_err(|_| ValueError::Truncated {
            need: usize::MAX,
            have,
        })?;
        self.take(count).map(LongString)
    }
}

/// Appends fields to a caller's buffer, packing consecutive bits into one octet; or, made by
/// [`Writer::counter`], only counts the bytes it would append, so that `encoded_len` follows
/// the very code that encodes.
pub(crate) struct Writer<'a> {
    out: Out<'a>,
    /// Where the octet of the current bit run sits and how many of its bits are used.
    bits: Option<(usize, u8)>,
}

enum Out<'a> {
    Buffer(&'a mut BytesMut),
    Count(usize),
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut) -> Self {
        Writer {
            out: Out::Buffer(buf),
            bits: None,
        }
    }

    pub(crate) fn counter() -> Writer<'static> {
        Writer {
            out: Out::Count(0),
            bits: None,
        }
    }

    /// Bytes in the buffer (or counted) so far.
    pub(crate) fn position(&self) -> usize {
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

    pub(crate) fn write_u64(&mut self, value: u64) {
        self.write_bytes(&value.to_be_bytes());
    }

    pub(crate) fn write_bytes(&mut self, value: &[u8]) {
        self.bits = None;
        match &mut self.out {
            Out::Buffer(buf) => buf.put_slice(value),
            Out::Count(count) => *count += value.len(),
        }
    }

    pub(crate) fn write_bit(&mut self, value: bool) {
        match (self.bits, &mut self.out) {
            (Some((position, used)), out) if used < 8 => {
                if let Out::Buffer(buf) = out {
                    buf[position] |= u8::from(value) << used;
                }
                self.bits = Some((position, used + 1));
            }
            _ => {
                let position = self.position();
                self.write_u8(u8::from(value));
                self.bits = Some((position, 1));
            }
        }
    }

    pub(crate) fn write_short_string(&mut self, value: &ShortString) {
        // The type holds at most 255 bytes.
        self.write_u8(value.0.len() as u8);
        self.write_bytes(value.0.as_bytes());
    }

    pub(crate) fn write_long_string(&mut self, value: &[u8]) {
        self.write_u32(length_u32(value.len()));
        self.write_bytes(value);
    }

    /// Writes a `long` placeholder to be filled by [`Writer::finish_length`].
    pub(crate) fn start_length(&mut self) -> usize {
        let position = self.position();
        self.write_u32(0);
        position
    }

    /// Fills the placeholder at `position` with the bytes written after it.
    pub(crate) fn finish_length(&mut self, position: usize) {
        self.bits = None;
        let length = length_u32(self.position() - position - 4);
        if let Out::Buffer(buf) = &mut self.out {
            buf[position..position + 4].copy_from_slice(&length.to_be_bytes());
        }
    }
}

/// A length on the wire. Values are built from frames whose sizes are `u32`, so a longer one
/// is a bug in the caller, not bad input.
pub(crate) fn length_u32(length: usize) -> u32 {
    match u32::try_from(length) {
        Ok(length) => length,
        Err(_) => panic!("AMQP lengths are u32; {length} bytes cannot be encoded"),
    }
}

/// A method argument's domain: how a field of a method struct is read and written.
pub(crate) trait Argument: Sized {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError>;
    fn encode(&self, writer: &mut Writer<'_>);
}

impl Argument for u8 {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_u8()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u8(*self);
    }
}

impl Argument for u16 {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_u16()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u16(*self);
    }
}

impl Argument for u32 {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_u32()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u32(*self);
    }
}

impl Argument for u64 {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_u64()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u64(*self);
    }
}

impl Argument for bool {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_bit()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_bit(*self);
    }
}

impl Argument for ShortString {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_short_string()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_short_string(self);
    }
}

impl Argument for LongString {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        reader.read_long_string()
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_long_string(&self.0);
    }
}

impl Argument for FieldTable {
    fn decode(reader: &mut Reader) -> Result<Self, ValueError> {
        FieldTable::read(reader)
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        self.write(writer);
    }
}
