//! The content header: the payload of a header frame, which gives the size of the body that
//! follows and the message's basic properties (AMQP 0-9-1 section 4.2.6.1, class `basic`
//! properties in section 1.8).
//!
//! ```text
//! class-id u16 | weight u16 (0) | body-size u64 | property-flags u16 | present properties
//!
//! property-flags, bit 15 first (bit 0 would announce a further flags word; basic needs none):
//! 15 content-type shortstr      10 correlation-id shortstr    5 type shortstr
//! 14 content-encoding shortstr   9 reply-to shortstr          4 user-id shortstr
//! 13 headers table               8 expiration shortstr        3 app-id shortstr
//! 12 delivery-mode octet         7 message-id shortstr        2 cluster-id shortstr
//! 11 priority octet              6 timestamp u64
//! ```

use bytes::{Bytes, BytesMut};

use crate::error::{CodecError, ValueError};
use crate::field::FieldTable;
use crate::method::basic;
use crate::wire::{Argument, Reader, ShortString, Writer};

/// Bytes of class-id, weight and body-size in front of the property flags.
const HEADER_FIXED_SIZE: usize = 12;

/// Flag bits basic defines: bits 15 to 2.
const PROPERTY_FLAGS_KNOWN: u16 = 0xfffc;

/// A header frame's payload. Only class basic carries content, so `class_id` is always
/// [`basic::CLASS_ID`] when decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    /// Bytes of body in the body frames that follow.
    pub body_size: u64,
    pub properties: BasicProperties,
}

/// The 14 properties of class basic, each present or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BasicProperties {
    /// MIME type of the body.
    pub content_type: Option<ShortString>,
    /// MIME content encoding of the body.
    pub content_encoding: Option<ShortString>,
    /// Application headers.
    pub headers: Option<FieldTable>,
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    /// 0 to 9.
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortString>,
    pub reply_to: Option<ShortString>,
    /// Per-message TTL in milliseconds, as a decimal string (RabbitMQ).
    pub expiration: Option<ShortString>,
    pub message_id: Option<ShortString>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// The spec's `type`: the application's message type name.
    pub kind: Option<ShortString>,
    /// RabbitMQ checks it equals the connection's user.
    pub user_id: Option<ShortString>,
    pub app_id: Option<ShortString>,
    /// Deprecated (`reserved` in 0-9-1), carried as is.
    pub cluster_id: Option<ShortString>,
}

impl ContentHeader {
    /// A header of class basic.
    pub fn new(body_size: u64, properties: BasicProperties) -> Self {
        ContentHeader {
            class_id: basic::CLASS_ID,
            body_size,
            properties,
        }
    }

    /// Decodes a header frame's whole payload.
    pub fn decode(payload: Bytes) -> Result<Self, CodecError> {
        let have = payload.len();
        if have < HEADER_FIXED_SIZE {
            return Err(CodecError::PayloadTruncated {
                frame: "header",
                need: HEADER_FIXED_SIZE,
                have,
            });
        }
        let class_id = u16::from_be_bytes([payload[0], payload[1]]);
        let weight = u16::from_be_bytes([payload[2], payload[3]]);
        let mut body_size = [0; 8];
        body_size.copy_from_slice(&payload[4..HEADER_FIXED_SIZE]);
        let body_size = u64::from_be_bytes(body_size);
        let mut reader = Reader::new(payload.slice(HEADER_FIXED_SIZE..));
        if class_id != basic::CLASS_ID {
            return Err(CodecError::ContentClass { class_id });
        }
        if weight != 0 {
            return Err(CodecError::ContentWeight { weight });
        }
        let properties = BasicProperties::read(&mut reader)?;
        match reader.remaining() {
            0 => Ok(ContentHeader {
                class_id,
                body_size,
                properties,
            }),
            count => Err(CodecError::TrailingBytes {
                frame: "header",
                count,
            }),
        }
    }

    /// Appends the payload of the header frame.
    pub fn encode(&self, buf: &mut BytesMut) {
        self.write(&mut Writer::new(buf));
    }

    /// The bytes [`ContentHeader::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let mut counter = Writer::counter();
        self.write(&mut counter);
        counter.position()
    }

    fn write(&self, writer: &mut Writer<'_>) {
        writer.write_u16(self.class_id);
        writer.write_u16(0);
        writer.write_u64(self.body_size);
        self.properties.write(writer);
    }
}

impl BasicProperties {
    /// The property-flags word for the properties present.
    pub fn flags(&self) -> u16 {
        let present = [
            self.content_type.is_some(),
            self.content_encoding.is_some(),
            self.headers.is_some(),
            self.delivery_mode.is_some(),
            self.priority.is_some(),
            self.correlation_id.is_some(),
            self.reply_to.is_some(),
            self.expiration.is_some(),
            self.message_id.is_some(),
            self.timestamp.is_some(),
            self.kind.is_some(),
            self.user_id.is_some(),
            self.app_id.is_some(),
            self.cluster_id.is_some(),
        ];
        present
            .iter()
            .enumerate()
            .filter(|(_, present)| **present)
            .fold(0, |flags, (index, _)| flags | (1 << (15 - index)))
    }

    fn read(reader: &mut Reader) -> Result<Self, CodecError> {
        let flags = reader
            .read_u16()
            .map_err(|source| property_error("property-flags", source))?;
        if flags & !PROPERTY_FLAGS_KNOWN != 0 {
            return Err(CodecError::PropertyFlags { flags });
        }
        let mut properties = Properties { reader, flags };
        Ok(BasicProperties {
            content_type: properties.read(15, "content_type")?,
            content_encoding: properties.read(14, "content_encoding")?,
            headers: properties.read(13, "headers")?,
            delivery_mode: properties.read(12, "delivery_mode")?,
            priority: properties.read(11, "priority")?,
            correlation_id: properties.read(10, "correlation_id")?,
            reply_to: properties.read(9, "reply_to")?,
            expiration: properties.read(8, "expiration")?,
            message_id: properties.read(7, "message_id")?,
            timestamp: properties.read(6, "timestamp")?,
            kind: properties.read(5, "kind")?,
            user_id: properties.read(4, "user_id")?,
            app_id: properties.read(3, "app_id")?,
            cluster_id: properties.read(2, "cluster_id")?,
        })
    }

    fn write(&self, writer: &mut Writer<'_>) {
        writer.write_u16(self.flags());
        write_present(writer, &self.content_type);
        write_present(writer, &self.content_encoding);
        write_present(writer, &self.headers);
        write_present(writer, &self.delivery_mode);
        write_present(writer, &self.priority);
        write_present(writer, &self.correlation_id);
        write_present(writer, &self.reply_to);
        write_present(writer, &self.expiration);
        write_present(writer, &self.message_id);
        write_present(writer, &self.timestamp);
        write_present(writer, &self.kind);
        write_present(writer, &self.user_id);
        write_present(writer, &self.app_id);
        write_present(writer, &self.cluster_id);
    }
}

/// Reads the properties the flags say are present, in flag order.
struct Properties<'a> {
    reader: &'a mut Reader,
    flags: u16,
}

impl Properties<'_> {
    fn read<T: Argument>(&mut self, bit: u16, name: &'static str) -> Result<Option<T>, CodecError> {
        if self.flags & (1 << bit) == 0 {
            return Ok(None);
        }
        T::decode(self.reader)
            .map(Some)
            .map_err(|source| property_error(name, source))
    }
}

fn property_error(property: &'static str, source: ValueError) -> CodecError {
    CodecError::Property { property, source }
}

fn write_present<T: Argument>(writer: &mut Writer<'_>, value: &Option<T>) {
    if let Some(value) = value {
        value.encode(writer);
    }
}
