//! UNSUBSCRIBE and UNSUBACK (MQTT 5.0 sections 3.10 and 3.11, 3.1.1 sections 3.10 and 3.11).
//!
//! ```text
//! UNSUBSCRIBE  Packet Identifier | Properties (5.0) | Topic Filter+
//! UNSUBACK     Packet Identifier | Properties (5.0) | Reason Code per filter (5.0)
//! ```
//!
//! The 3.1.1 UNSUBACK is the Packet Identifier alone.

use crate::error::{DecodeError, EncodeError};
use crate::identifiers::PacketId;
use crate::packet::{
    check_properties, check_reason_code, decode_packet_id, decode_properties, encode_properties,
    PacketType,
};
use crate::properties::Properties;
use crate::reason_code::ReasonCode;
use crate::strings::Utf8String;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

/// A request to remove one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    pub properties: Properties,
    /// At least one [MQTT-3.10.3-2].
    pub topic_filters: Vec<Utf8String>,
}

/// The server's answer to UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuback {
    pub packet_id: PacketId,
    pub properties: Properties,
    /// One per topic filter in 5.0; always empty in 3.1.1, which has none.
    pub reason_codes: Vec<ReasonCode>,
}

impl Unsubscribe {
    pub(crate) fn decode(
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Unsubscribe, DecodeError> {
        let packet_type = PacketType::Unsubscribe;
        let packet_id = decode_packet_id(reader, packet_type)?;
        let properties = decode_properties(reader, packet_type, version)?;
        // Each filter takes at least two bytes, so the list is bounded by the packet.
        let mut topic_filters = Vec::new();
        while !reader.is_empty() {
            topic_filters.push(reader.read_string("topic filter")?);
        }
        if topic_filters.is_empty() {
            return Err(DecodeError::TopicFiltersMissing { packet_type });
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            topic_filters,
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let packet_type = PacketType::Unsubscribe;
        if self.topic_filters.is_empty() {
            return Err(EncodeError::TopicFiltersMissing { packet_type });
        }
        check_properties(&self.properties, packet_type, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_u16(self.packet_id.get());
        encode_properties(&self.properties, writer, version);
        for topic_filter in &self.topic_filters {
            writer.write_string(topic_filter);
        }
    }
}

impl Unsuback {
    pub(crate) fn decode(
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Unsuback, DecodeError> {
        let packet_type = PacketType::Unsuback;
        let packet_id = decode_packet_id(reader, packet_type)?;
        let properties = decode_properties(reader, packet_type, version)?;
        let mut reason_codes = Vec::new();
        if version == ProtocolVersion::V5 {
            for code in reader.take_rest() {
                if !ReasonCode(code).is_allowed_in(packet_type) {
                    return Err(DecodeError::ReasonCodeInvalid { packet_type, code });
                }
                reason_codes.push(ReasonCode(code));
            }
        }
        Ok(Unsuback {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let packet_type = PacketType::Unsuback;
        if version == ProtocolVersion::V311 && !self.reason_codes.is_empty() {
            return Err(EncodeError::NotInVersion {
                packet_type,
                field: "reason codes",
                version,
            });
        }
        for &code in &self.reason_codes {
            check_reason_code(code, packet_type, version)?;
        }
        check_properties(&self.properties, packet_type, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_u16(self.packet_id.get());
        encode_properties(&self.properties, writer, version);
        for code in &self.reason_codes {
            writer.write_u8(code.0);
        }
    }
}
