//! CONNACK (MQTT 5.0 section 3.2, 3.1.1 section 3.2): the server's answer to CONNECT.
//!
//! ```text
//! Connect Acknowledge Flags  bit 0 session present, bits 7-1 reserved, 0
//! Reason Code                5.0: a Reason Code; 3.1.1: a return code from 0 to 5
//! Properties                 5.0 only
//! ```
//!
//! MQTT 3.1.1 return codes map onto 5.0 Reason Codes ([`ReasonCode::from_connect_return_code`]):
//! 1 unacceptable protocol version is 0x84, 2 identifier rejected 0x85, 3 server unavailable
//! 0x88, 4 bad user name or password 0x86, 5 not authorized 0x87.

use crate::error::{DecodeError, EncodeError};
use crate::packet::{
    check_properties, check_reason_code, decode_properties, encode_properties, PacketType,
};
use crate::properties::Properties;
use crate::reason_code::ReasonCode;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

const FLAG_SESSION_PRESENT: u8 = 0b0000_0001;

/// The server's answer to CONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connack {
    /// Only with success [MQTT-3.2.2-6].
    pub session_present: bool,
    pub reason_code: ReasonCode,
    pub properties: Properties,
}

impl Connack {
    pub(crate) fn decode(
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Connack, DecodeError> {
        let flags = reader.read_u8("connect acknowledge flags")?;
        if flags & !FLAG_SESSION_PRESENT != 0 {
            return Err(DecodeError::ReservedBitsSet {
                field: "connect acknowledge flags",
                value: flags,
            });
        }
        let code = reader.read_u8("reason code")?;
        let invalid = DecodeError::ReasonCodeInvalid {
            packet_type: PacketType::Connack,
            code,
        };
        let reason_code = match version {
            ProtocolVersion::V311 => ReasonCode::from_connect_return_code(code).ok_or(invalid)?,
            ProtocolVersion::V5 if ReasonCode(code).is_allowed_in(PacketType::Connack) => {
                ReasonCode(code)
            }
            ProtocolVersion::V5 => return Err(invalid),
        };
        let session_present = flags & FLAG_SESSION_PRESENT != 0;
        if session_present && reason_code != ReasonCode::SUCCESS {
            return Err(DecodeError::SessionPresentWithError { code });
        }
        let properties = decode_properties(reader, PacketType::Connack, version)?;
        Ok(Connack {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        check_reason_code(self.reason_code, PacketType::Connack, version)?;
        if self.session_present && self.reason_code != ReasonCode::SUCCESS {
            return Err(EncodeError::SessionPresentWithError {
                code: self.reason_code,
            });
        }
        check_properties(&self.properties, PacketType::Connack, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_u8(u8::from(self.session_present));
        let code = match version {
            // `check` made sure the code has a 3.1.1 equivalent.
            ProtocolVersion::V311 => self.reason_code.to_connect_return_code().unwrap_or(0),
            ProtocolVersion::V5 => self.reason_code.0,
        };
        writer.write_u8(code);
        encode_properties(&self.properties, writer, version);
    }
}
