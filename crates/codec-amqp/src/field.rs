//! Field tables and field values: the typed maps of `connection.start` properties, `arguments`
//! of declarations and bindings, and message `headers`.
//!
//! The type tags are RabbitMQ's, which differ from the 0-9-1 spec's table (RabbitMQ errata,
//! "AMQP 0-9-1 Errata: field types"); every client in use follows RabbitMQ:
//!
//! ```text
//! t bool   (octet, 0 false)      f f32          S longstr (u32 length)
//! b i8     B u8                  d f64          A array: u32 byte length, then values
//! s i16    u u16                 D decimal:     T timestamp (u64, seconds)
//! I i32    i u32                   scale u8,    F table: u32 byte length, then
//! l i64                            value u32      (shortstr key, value) pairs
//! V void (no bytes)              x byte array (u32 length)
//! ```

use bytes::{Bytes, BytesMut};

use crate::error::ValueError;
use crate::wire::{LongString, Reader, ShortString, Writer};

/// How deep tables and arrays may nest when decoded. Real headers nest three or four levels
/// (RabbitMQ's `x-death` is an array of tables of arrays); without a bound, a frame of nested
/// empty tables five bytes each would recurse until the stack overflows.
pub const FIELD_NESTING_MAX: usize = 32;

/// A field table: its entries in wire order, so that decoding and encoding gives the same
/// bytes. Keys are not required to be unique on the wire; [`FieldTable::get`] finds the first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldTable(Vec<(ShortString, FieldValue)>);

/// One value of a field table or array, tagged as RabbitMQ tags it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s` (a short integer in RabbitMQ, not a short string)
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`
    Decimal(Decimal),
    /// `S`
    LongString(LongString),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`: seconds since the Unix epoch.
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`
    ByteArray(Bytes),
}

/// A decimal `value / 10^scale`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub scale: u8,
    pub value: u32,
}

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(name, _)| name.as_str() == key)
            .map(|(_, value)| value)
    }

    /// Sets `key`, replacing the value of its first entry if it has one.
    pub fn insert(&mut self, key: ShortString, value: FieldValue) {
        match self.0.iter_mut().find(|(name, _)| *name == key) {
            Some((_, old)) => *old = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortString, FieldValue)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes a whole table, its `u32` length first, from `bytes`.
    pub fn decode(bytes: Bytes) -> Result<Self, ValueError> {
        let mut reader = Reader::new(bytes);
        let table = FieldTable::read(&mut reader)?;
        match reader.remaining() {
            0 => Ok(table),
            count => Err(ValueError::TrailingBytes { count }),
        }
    }

    /// Appends the table, its `u32` length first, to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        self.write(&mut Writer::new(buf));
    }

    /// The bytes [`FieldTable::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let mut counter = Writer::counter();
        self.write(&mut counter);
        counter.position()
    }

    pub(crate) fn read(reader: &mut Reader) -> Result<Self, ValueError> {
        read_table(reader, 0)
    }

    pub(crate) fn write(&self, writer: &mut Writer<'_>) {
        let length = writer.start_length();
        for (key, value) in &self.0 {
            writer.write_short_string(key);
            value.write(writer);
        }
        writer.finish_length(length);
    }
}

impl From<Vec<(ShortString, FieldValue)>> for FieldTable {
    fn from(entries: Vec<(ShortString, FieldValue)>) -> Self {
        FieldTable(entries)
    }
}

impl FromIterator<(ShortString, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (ShortString, FieldValue)>>(entries: I) -> Self {
        FieldTable(entries.into_iter().collect())
    }
}

impl IntoIterator for FieldTable {
    type Item = (ShortString, FieldValue);
    type IntoIter = std::vec::IntoIter<(ShortString, FieldValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FieldValue {
    /// The type tag on the wire.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal(_) => b'D',
            FieldValue::LongString(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::ByteArray(_) => b'x',
        }
    }

    fn write(&self, writer: &mut Writer<'_>) {
        writer.write_u8(self.tag());
        match self {
            FieldValue::Bool(value) => writer.write_u8(u8::from(*value)),
            FieldValue::I8(value) => writer.write_bytes(&value.to_be_bytes()),
            FieldValue::U8(value) => writer.write_u8(*value),
            FieldValue::I16(value) => writer.write_bytes(&value.to_be_bytes()),
            FieldValue::U16(value) => writer.write_u16(*value),
            FieldValue::I32(value) => writer.write_bytes(&value.to_be_bytes()),
            FieldValue::U32(value) => writer.write_u32(*value),
            FieldValue::I64(value) => writer.write_bytes(&value.to_be_bytes()),
            FieldValue::F32(value) => writer.write_bytes(&value.to_be_bytes()),
            FieldValue::F64(value) => writer.write_bytes(&value.to_be_bytes()),
            FieldValue::Decimal(decimal) => {
                writer.write_u8(decimal.scale);
                writer.write_u32(decimal.value);
            }
            FieldValue::LongString(value) => writer.write_long_string(value),
            FieldValue::Array(values) => {
                let length = writer.start_length();
                for value in values {
                    value.write(writer);
                }
                writer.finish_length(length);
            }
            FieldValue::Timestamp(value) => writer.write_u64(*value),
            FieldValue::Table(table) => table.write(writer),
            FieldValue::Void => {}
            FieldValue::ByteArray(value) => writer.write_long_string(value),
        }
    }
}

/// Reads a table at nesting `depth` (0 for a method argument or property).
fn read_table(reader: &mut Reader, depth: usize) -> Result<FieldTable, ValueError> {
    let mut entries = Reader::new(read_nested_bytes(reader, depth)?);
    let mut table = Vec::new();
    while entries.remaining() > 0 {
        let key = entries.read_short_string()?;
        let value = read_value(&mut entries, depth)?;
        table.push((key, value));
    }
    Ok(FieldTable(table))
}

fn read_array(reader: &mut Reader, depth: usize) -> Result<Vec<FieldValue>, ValueError> {
    let mut items = Reader::new(read_nested_bytes(reader, depth)?);
    let mut values = Vec::new();
    while items.remaining() > 0 {
        values.push(read_value(&mut items, depth)?);
    }
    Ok(values)
}

/// The bytes of a table or array, its `u32` length first, checking the nesting bound.
fn read_nested_bytes(reader: &mut Reader, depth: usize) -> Result<Bytes, ValueError> {
    if depth >= FIELD_NESTING_MAX {
        return Err(ValueError::NestingTooDeep {
            max: FIELD_NESTING_MAX,
        });
    }
    Ok(reader.read_long_string()?.into_bytes())
}

fn read_value(reader: &mut Reader, depth: usize) -> Result<FieldValue, ValueError> {
    let tag = reader.read_u8()?;
    let value = match tag {
        b't' => FieldValue::Bool(reader.read_u8()? != 0),
        b'b' => FieldValue::I8(reader.read_i8()?),
        b'B' => FieldValue::U8(reader.read_u8()?),
        b's' => FieldValue::I16(reader.read_i16()?),
        b'u' => FieldValue::U16(reader.read_u16()?),
        b'I' => FieldValue::I32(reader.read_i32()?),
        b'i' => FieldValue::U32(reader.read_u32()?),
        b'l' => FieldValue::I64(reader.read_i64()?),
        b'f' => FieldValue::F32(reader.read_f32()?),
        b'd' => FieldValue::F64(reader.read_f64()?),
        b'D' => FieldValue::Decimal(Decimal {
            scale: reader.read_u8()?,
            value: reader.read_u32()?,
        }),
        b'S' => FieldValue::LongString(reader.read_long_string()?),
        b'A' => FieldValue::Array(read_array(reader, depth + 1)?),
        b'T' => FieldValue::Timestamp(reader.read_u64()?),
        b'F' => FieldValue::Table(read_table(reader, depth + 1)?),
        b'V' => FieldValue::Void,
        b'x' => FieldValue::ByteArray(reader.read_long_string()?.into_bytes()),
        tag => return Err(ValueError::FieldTypeUnknown { tag }),
    };
    Ok(value)
}
