//! PUBLISH (MQTT 5.0 section 3.3, 3.1.1 section 3.3): an application message, either way.
//!
//! ```text
//! Fixed header flags  bit 3 DUP | bits 2-1 QoS | bit 0 RETAIN
//! Topic Name          string; in 5.0 empty when a Topic Alias stands for it
//! Packet Identifier   QoS 1 and 2 only
//! Properties          5.0 only
//! Payload             the rest of the packet, any bytes, shared with the read buffer
//! ```
//!
//! Wildcards in the Topic Name [MQTT-3.3.2-2] and Topic Aliases are the door's to check: they
//! need the topic syntax and the connection's alias table.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::identifiers::PacketId;
use crate::packet::{
    check_properties, decode_packet_id, decode_properties, encode_properties, PacketType,
};
use crate::properties::Properties;
use crate::qos::QoS;
use crate::strings::Utf8String;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

const FLAG_DUP: u8 = 0b1000;
const QOS_SHIFT: u8 = 1;
const FLAG_RETAIN: u8 = 0b0001;

/// An application message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// A redelivery of a message sent before; 0 at QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic_name: Utf8String,
    /// At QoS 1 and 2, and only then [MQTT-2.2.1-2].
    pub packet_id: Option<PacketId>,
    pub properties: Properties,
    pub payload: Bytes,
}

impl Publish {
    pub(crate) fn decode(
        reader: &mut Reader,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Publish, DecodeError> {
        // `check_flags` refused QoS 3.
        let qos =
            QoS::try_from(flags >> QOS_SHIFT & 0b11).map_err(|_| DecodeError::QoSInvalid {
                field: "PUBLISH QoS",
            })?;
        let topic_name = reader.read_string("topic name")?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce | QoS::ExactlyOnce => {
                Some(decode_packet_id(reader, PacketType::Publish)?)
            }
        };
        let properties = decode_properties(reader, PacketType::Publish, version)?;
        Ok(Publish {
            dup: flags & FLAG_DUP != 0,
            qos,
            retain: flags & FLAG_RETAIN != 0,
            topic_name,
            packet_id,
            properties,
            payload: reader.take_rest(),
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let consistent = match self.qos {
            QoS::AtMostOnce => self.packet_id.is_none() && !self.dup,
            QoS::AtLeastOnce | QoS::ExactlyOnce => self.packet_id.is_some(),
        };
        if !consistent {
            return Err(EncodeError::PublishHeaderInvalid {
                qos: self.qos,
                dup: self.dup,
                packet_id: self.packet_id.map(PacketId::get),
            });
        }
        check_properties(&self.properties, PacketType::Publish, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_string(&self.topic_name);
        if let Some(packet_id) = self.packet_id {
            writer.write_u16(packet_id.get());
        }
        encode_properties(&self.properties, writer, version);
        writer.write_bytes(&self.payload);
    }

    /// The low four bits of the first byte.
    pub(crate) fn flags(&self) -> u8 {
        let mut flags = self.qos.level() << QOS_SHIFT;
        if self.dup {
            flags |= FLAG_DUP;
        }
        if self.retain {
            flags |= FLAG_RETAIN;
        }
        flags
    }
}

/// QoS 3 is malformed [MQTT-3.3.1-4], and so is DUP at QoS 0 [MQTT-3.3.1-2].
pub(crate) fn check_flags(flags: u8) -> Result<(), DecodeError> {
    match flags >> QOS_SHIFT & 0b11 {
        3 => Err(DecodeError::QoSInvalid {
            field: "PUBLISH QoS",
        }),
        0 if flags & FLAG_DUP != 0 => Err(DecodeError::FlagsInvalid {
            packet_type: PacketType::Publish,
            flags,
        }),
        _ => Ok(()),
    }
}
