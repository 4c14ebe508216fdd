//! Methods: the payload of a method frame, one typed struct per method of the classes a
//! RabbitMQ client uses (AMQP 0-9-1 section 1, with RabbitMQ's extensions).
//!
//! ```text
//! method frame payload: class-id u16 | method-id u16 | arguments in the spec's order
//! ```
//!
//! Field names are the spec's with `-` as `_`; reserved fields keep their `reserved_N` names
//! and are carried, not checked, so that every payload encodes back to the same bytes.

#[macro_use]
mod macros;

pub mod basic;
pub mod channel;
pub mod confirm;
pub mod connection;
pub mod exchange;
pub mod queue;
pub mod tx;

use bytes::{Bytes, BytesMut};

use crate::error::CodecError;
use crate::wire::{Reader, Writer};

/// Bytes of class-id and method-id in front of every method's arguments.
const METHOD_HEADER_SIZE: usize = 4;

/// A method of any class: `Method::Basic(basic::Method::Publish(..))`. Every method struct
/// converts into it with `From`.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Connection(connection::Method),
    Channel(channel::Method),
    Exchange(exchange::Method),
    Queue(queue::Method),
    Basic(basic::Method),
    Confirm(confirm::Method),
    Tx(tx::Method),
}

impl Method {
    pub fn class_id(&self) -> u16 {
        match self {
            Method::Connection(_) => connection::CLASS_ID,
            Method::Channel(_) => channel::CLASS_ID,
            Method::Exchange(_) => exchange::CLASS_ID,
            Method::Queue(_) => queue::CLASS_ID,
            Method::Basic(_) => basic::CLASS_ID,
            Method::Confirm(_) => confirm::CLASS_ID,
            Method::Tx(_) => tx::CLASS_ID,
        }
    }

    pub fn method_id(&self) -> u16 {
        match self {
            Method::Connection(method) => method.method_id(),
            Method::Channel(method) => method.method_id(),
            Method::Exchange(method) => method.method_id(),
            Method::Queue(method) => method.method_id(),
            Method::Basic(method) => method.method_id(),
            Method::Confirm(method) => method.method_id(),
            Method::Tx(method) => method.method_id(),
        }
    }

    /// The spec's name, `class.method` (`basic.publish`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Connection(method) => method.name(),
            Method::Channel(method) => method.name(),
            Method::Exchange(method) => method.name(),
            Method::Queue(method) => method.name(),
            Method::Basic(method) => method.name(),
            Method::Confirm(method) => method.name(),
            Method::Tx(method) => method.name(),
        }
    }

    /// Whether content (a header frame and body frames) follows the method: `basic.publish`,
    /// `basic.return`, `basic.deliver` and `basic.get-ok`.
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::Basic(
                basic::Method::Publish(_)
                    | basic::Method::Return(_)
                    | basic::Method::Deliver(_)
                    | basic::Method::GetOk(_)
            )
        )
    }

    /// Decodes a method frame's whole payload.
    pub fn decode(payload: Bytes) -> Result<Self, CodecError> {
        let have = payload.len();
        if have < METHOD_HEADER_SIZE {
            return Err(CodecError::PayloadTruncated {
                frame: "method",
                need: METHOD_HEADER_SIZE,
                have,
            });
        }
        let class_id = u16::from_be_bytes([payload[0], payload[1]]);
        let method_id = u16::from_be_bytes([payload[2], payload[3]]);
        let mut reader = Reader::new(payload.slice(METHOD_HEADER_SIZE..));
        let method = Method::decode_arguments(class_id, method_id, &mut reader)?;
        match reader.remaining() {
            0 => Ok(method),
            count => Err(CodecError::TrailingBytes {
                frame: "method",
                count,
            }),
        }
    }

    /// Appends the payload of the method's frame: class-id, method-id, arguments.
    pub fn encode(&self, buf: &mut BytesMut) {
        self.write(&mut Writer::new(buf));
    }

    /// The bytes [`Method::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let mut counter = Writer::counter();
        self.write(&mut counter);
        counter.position()
    }

    fn write(&self, writer: &mut Writer<'_>) {
        writer.write_u16(self.class_id());
        writer.write_u16(self.method_id());
        match self {
            Method::Connection(method) => method.encode_arguments(writer),
            Method::Channel(method) => method.encode_arguments(writer),
            Method::Exchange(method) => method.encode_arguments(writer),
            Method::Queue(method) => method.encode_arguments(writer),
            Method::Basic(method) => method.encode_arguments(writer),
            Method::Confirm(method) => method.encode_arguments(writer),
            Method::Tx(method) => method.encode_arguments(writer),
        }
    }

    fn decode_arguments(
        class_id: u16,
        method_id: u16,
        reader: &mut Reader,
    ) -> Result<Self, CodecError> {
        let method = match class_id {
            connection::CLASS_ID => {
                Method::Connection(connection::Method::decode_arguments(method_id, reader)?)
            }
            channel::CLASS_ID => {
                Method::Channel(channel::Method::decode_arguments(method_id, reader)?)
            }
            exchange::CLASS_ID => {
                Method::Exchange(exchange::Method::decode_arguments(method_id, reader)?)
            }
            queue::CLASS_ID => Method::Queue(queue::Method::decode_arguments(method_id, reader)?),
            basic::CLASS_ID => Method::Basic(basic::Method::decode_arguments(method_id, reader)?),
            confirm::CLASS_ID => {
                Method::Confirm(confirm::Method::decode_arguments(method_id, reader)?)
            }
            tx::CLASS_ID => Method::Tx(tx::Method::decode_arguments(method_id, reader)?),
            class_id => return Err(CodecError::ClassUnknown { class_id }),
        };
        Ok(method)
    }
}
