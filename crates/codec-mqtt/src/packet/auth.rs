//! AUTH (MQTT 5.0 section 3.15): a step of an extended authentication exchange, in either
//! direction. MQTT 3.1.1 has no such packet; its type, 15, is reserved there.
//!
//! ```text
//! Reason Code  0x00 success, 0x18 continue authentication, 0x19 re-authenticate;
//!              absent when the Remaining Length is 0, meaning success
//! Properties   absent, with the Reason Code, when the Remaining Length is 0
//! ```
//!
//! Decoding also accepts a Reason Code without Property Length, as DISCONNECT allows;
//! encoding writes both or neither.
//!
//! That the Authentication Method is present and matches CONNECT's is the session's to
//! check (section 3.15.2.2.2).

use crate::error::{DecodeError, EncodeError};
use crate::packet::{check_properties, check_reason_code, decode_reason_code, PacketType};
use crate::properties::Properties;
use crate::property_id::PropertyContext;
use crate::reason_code::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

/// A step of extended authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    pub reason_code: ReasonCode,
    pub properties: Properties,
}

impl Auth {
    pub(crate) fn decode(reader: &mut Reader) -> Result<Auth, DecodeError> {
        let mut auth = Auth::default();
        if !reader.is_empty() {
            auth.reason_code = decode_reason_code(reader, PacketType::Auth)?;
        }
        if !reader.is_empty() {
            let context = PropertyContext::Packet(PacketType::Auth);
            auth.properties = Properties::decode(reader, context)?;
        }
        Ok(auth)
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if version == ProtocolVersion::V311 {
            return Err(EncodeError::NotInVersion {
                packet_type: PacketType::Auth,
                field: "the packet",
                version,
            });
        }
        check_reason_code(self.reason_code, PacketType::Auth, version)?;
        check_properties(&self.properties, PacketType::Auth, version)
    }

    /// Unlike DISCONNECT and the publish acknowledgements, AUTH has no form with a Reason
    /// Code and no Property Length (section 3.15.2.2.1): it is both or neither.
    pub(crate) fn encode(&self, writer: &mut Writer<'_>) {
        if self.reason_code != ReasonCode::SUCCESS || !self.properties.is_empty() {
            writer.write_u8(self.reason_code.0);
            self.properties.encode(writer);
        }
    }
}
