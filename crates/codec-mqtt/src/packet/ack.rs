//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 sections 3.4 to 3.7, 3.1.1 sections 3.4 to
//! 3.7): the answers in the QoS 1 and QoS 2 flows, one layout for all four.
//!
//! ```text
//! Packet Identifier  u16, not 0
//! Reason Code        5.0 only; absent when the Remaining Length is 2, meaning success
//! Properties         5.0 only; absent when the Remaining Length is under 4, meaning none
//! ```
//!
//! Encoding writes the shortest form: no Reason Code when it is success and there are no
//! properties, no Property Length when there are none (sections 3.4.2.1 and 3.4.2.2.1).

use crate::error::{DecodeError, EncodeError};
use crate::identifiers::PacketId;
use crate::packet::{
    check_properties, check_reason_code, decode_packet_id, decode_reason_code, PacketType,
};
use crate::properties::Properties;
use crate::property_id::PropertyContext;
use crate::reason_code::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

/// An acknowledgement in a QoS 1 or QoS 2 flow; which one is the [`crate::Packet`] variant
/// that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    pub packet_id: PacketId,
    /// Always success in 3.1.1, which has no Reason Code here.
    pub reason_code: ReasonCode,
    pub properties: Properties,
}

impl PublishAck {
    /// An acknowledgement with success and no properties, the only kind 3.1.1 has.
    pub fn new(packet_id: PacketId) -> Self {
        PublishAck {
            packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(
        reader: &mut Reader,
        packet_type: PacketType,
        version: ProtocolVersion,
    ) -> Result<PublishAck, DecodeError> {
        let mut ack = PublishAck::new(decode_packet_id(reader, packet_type)?);
        if version == ProtocolVersion::V311 {
            return Ok(ack);
        }
        if !reader.is_empty() {
            ack.reason_code = decode_reason_code(reader, packet_type)?;
        }
        if !reader.is_empty() {
            ack.properties = Properties::decode(reader, PropertyContext::Packet(packet_type))?;
        }
        Ok(ack)
    }

    pub(crate) fn check(
        &self,
        packet_type: PacketType,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        check_reason_code(self.reason_code, packet_type, version)?;
        check_properties(&self.properties, packet_type, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_u16(self.packet_id.get());
        if version == ProtocolVersion::V311 {
            return;
        }
        encode_reason_and_properties(self.reason_code, &self.properties, writer);
    }
}

/// The tail that PUBACK to PUBCOMP, DISCONNECT and AUTH share in 5.0, in its shortest form.
pub(crate) fn encode_reason_and_properties(
    reason_code: ReasonCode,
    properties: &Properties,
    writer: &mut Writer<'_>,
) {
    let has_properties = !properties.is_empty();
    if reason_code != ReasonCode::SUCCESS || has_properties {
        writer.write_u8(reason_code.0);
    }
    if has_properties {
        properties.encode(writer);
    }
}
