//! DISCONNECT (MQTT 5.0 section 3.14, 3.1.1 section 3.14): the last packet of a connection,
//! from either side in 5.0, from the client only in 3.1.1.
//!
//! ```text
//! Reason Code  5.0 only; absent when the Remaining Length is 0, meaning normal disconnection
//! Properties   5.0 only; absent when the Remaining Length is under 2, meaning none
//! ```
//!
//! In 3.1.1 the packet is the fixed header alone.

use crate::error::{DecodeError, EncodeError};
use crate::packet::ack::encode_reason_and_properties;
use crate::packet::{check_properties, check_reason_code, decode_reason_code, PacketType};
use crate::properties::Properties;
use crate::property_id::PropertyContext;
use crate::reason_code::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

/// The end of a connection. `Disconnect::default()` is a normal disconnection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    pub reason_code: ReasonCode,
    pub properties: Properties,
}

impl Disconnect {
    pub(crate) fn decode(
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Disconnect, DecodeError> {
        let mut disconnect = Disconnect::default();
        if version == ProtocolVersion::V311 {
            return Ok(disconnect);
        }
        let packet_type = PacketType::Disconnect;
        if !reader.is_empty() {
            disconnect.reason_code = decode_reason_code(reader, packet_type)?;
        }
        if !reader.is_empty() {
            let context = PropertyContext::Packet(packet_type);
            disconnect.properties = Properties::decode(reader, context)?;
        }
        Ok(disconnect)
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        check_reason_code(self.reason_code, PacketType::Disconnect, version)?;
        check_properties(&self.properties, PacketType::Disconnect, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        if version == ProtocolVersion::V5 {
            encode_reason_and_properties(self.reason_code, &self.properties, writer);
        }
    }
}
