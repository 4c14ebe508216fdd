//! What can be wrong with the bytes a peer sent ([`DecodeError`]) or with a packet the caller
//! asked to encode ([`EncodeError`]).
//!
//! The errors know MQTT and nothing of Wharf. [`DecodeError::reason_code`] gives the Reason
//! Code of the CONNACK (for CONNECT) or DISCONNECT that an MQTT 5.0 server sends before it
//! closes the connection; an MQTT 3.1.1 server only closes it, except that an unsupported
//! protocol version is answered with CONNACK return code 1 first [MQTT-3.1.2-2].

use thiserror::Error;

use crate::packet::PacketType;
use crate::property_id::{PropertyContext, PropertyId};
use crate::qos::QoS;
use crate::reason_code::ReasonCode;
use crate::version::ProtocolVersion;

/// Bytes that are not a valid packet. After one the stream is out of step and the
/// connection must close (MQTT 5.0 section 4.13).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Type 0 is reserved in both versions, and type 15 (AUTH) in MQTT 3.1.1.
    #[error("packet type {packet_type} is reserved in {version}")]
    PacketTypeUnknown {
        packet_type: u8,
        version: ProtocolVersion,
    },
    /// The low four bits of the first byte are not those the packet type requires (MQTT 5.0
    /// section 2.1.3): 0b0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0 for the others but
    /// PUBLISH, whose QoS bits may not be 3 and whose DUP must be 0 at QoS 0.
    #[error("flags {flags:#06b} are invalid for {packet_type}")]
    FlagsInvalid { packet_type: PacketType, flags: u8 },
    /// The Remaining Length runs over four bytes or is longer than its shortest form.
    #[error("remaining length is malformed (more than 4 bytes, or not in its shortest form)")]
    RemainingLengthMalformed,
    /// The packet, fixed header included, is larger than the limit the caller set (its
    /// Maximum Packet Size), refused from the fixed header before the rest is waited for.
    #[error("packet of {size} bytes is larger than the maximum of {size_max}")]
    PacketTooLarge { size: u64, size_max: u32 },
    /// The packet ends before this field does: its Remaining Length is too short for it.
    #[error("packet ends in {field}: needs {need} bytes, {have} left")]
    Truncated {
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// Bytes remain after the last field of a packet that has no free-form payload.
    #[error("{packet_type} has {count} bytes after its last field")]
    TrailingBytes {
        packet_type: PacketType,
        count: usize,
    },
    #[error("{field}: variable byte integer is malformed")]
    VariableIntegerMalformed { field: &'static str },
    #[error("{field}: string is not UTF-8 (valid up to byte {valid_up_to})")]
    StringNotUtf8 {
        field: &'static str,
        valid_up_to: usize,
    },
    #[error("{field}: string contains U+0000")]
    StringContainsNull { field: &'static str },
    /// QoS 3 in PUBLISH or in CONNECT's Will QoS: a Malformed Packet [MQTT-3.3.1-4]
    /// (section 3.1.2.6).
    #[error("{field}: QoS 3 is not a level")]
    QoSInvalid { field: &'static str },
    /// A bit the spec reserves is set: CONNECT flag 0 [MQTT-3.1.2-3], CONNACK flags 7 to 1
    /// [MQTT-3.2.2-1], subscription options 7 and 6 (7 to 2 in MQTT 3.1.1) [MQTT-3.8.3-5].
    #[error("{field}: reserved bits set in {value:#010b}")]
    ReservedBitsSet { field: &'static str, value: u8 },
    /// CONNECT's Protocol Name is not "MQTT" (MQTT 3.1's "MQIsdp", or another protocol).
    #[error("protocol name {name:?} is not \"MQTT\"")]
    ProtocolNameInvalid { name: String },
    /// CONNECT's Protocol Level is neither 4 (3.1.1) nor 5 (5.0).
    #[error("protocol level {level} is not supported (4 for MQTT 3.1.1, 5 for MQTT 5.0)")]
    ProtocolVersionUnsupported { level: u8 },
    /// Will QoS or Will Retain set without the Will Flag [MQTT-3.1.2-11] [MQTT-3.1.2-13].
    #[error("connect flags {flags:#010b} set will QoS or retain without the will flag")]
    WillFlagsInvalid { flags: u8 },
    /// MQTT 3.1.1 only: the Password Flag without the User Name Flag [MQTT-3.1.2-22].
    #[error("connect flags {flags:#010b} set the password flag without the user name flag")]
    PasswordWithoutUserName { flags: u8 },
    /// A Packet Identifier of 0 [MQTT-2.2.1-3].
    #[error("{packet_type} carries packet identifier 0")]
    PacketIdZero { packet_type: PacketType },
    /// SUBSCRIBE or UNSUBSCRIBE without a topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2].
    #[error("{packet_type} has no topic filter")]
    TopicFiltersMissing { packet_type: PacketType },
    /// Retain Handling 3, or a QoS of 3, in MQTT 5.0 subscription options (section 3.8.3.1).
    #[error("subscription option {option} is {value}, which is reserved")]
    SubscriptionOptionInvalid { option: &'static str, value: u8 },
    /// A property identifier that MQTT 5.0 does not define.
    #[error("property identifier {id:#04x} is unknown")]
    PropertyUnknown { id: u32 },
    #[error("property {property} is not allowed in {context}")]
    PropertyNotAllowed {
        property: PropertyId,
        context: PropertyContext,
    },
    #[error("property {property} appears more than once")]
    PropertyDuplicate { property: PropertyId },
    /// A value the spec rules out, such as Receive Maximum 0 or Maximum QoS 2.
    #[error("property {property} has the invalid value {value}")]
    PropertyValueInvalid { property: PropertyId, value: u32 },
    #[error("authentication data without an authentication method")]
    AuthenticationDataWithoutMethod,
    /// A Reason Code the packet does not allow, or an MQTT 3.1.1 return code over 5 in
    /// CONNACK or other than 0, 1, 2 and 0x80 in SUBACK.
    #[error("reason code {code:#04x} is not allowed in {packet_type}")]
    ReasonCodeInvalid { packet_type: PacketType, code: u8 },
    /// CONNACK with Session Present set and a failure code [MQTT-3.2.2-6].
    #[error("CONNACK sets session present with the failure code {code:#04x}")]
    SessionPresentWithError { code: u8 },
}

impl DecodeError {
    /// The MQTT 5.0 Reason Code to send in CONNACK or DISCONNECT before closing: 0x81
    /// Malformed Packet for bytes that do not follow the format, 0x82 Protocol Error for
    /// well-formed packets that break a rule, 0x84 for a protocol version the codec does not
    /// speak, 0x95 for a packet over the Maximum Packet Size.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError as E;
        match self {
            E::PacketTypeUnknown { .. }
            | E::FlagsInvalid { .. }
            | E::RemainingLengthMalformed
            | E::Truncated { .. }
            | E::TrailingBytes { .. }
            | E::VariableIntegerMalformed { .. }
            | E::StringNotUtf8 { .. }
            | E::StringContainsNull { .. }
            | E::QoSInvalid { .. }
            | E::ReservedBitsSet { .. }
            | E::WillFlagsInvalid { .. }
            | E::PasswordWithoutUserName { .. }
            | E::PropertyUnknown { .. }
            | E::PropertyNotAllowed { .. } => ReasonCode::MALFORMED_PACKET,
            E::PacketIdZero { .. }
            | E::TopicFiltersMissing { .. }
            | E::SubscriptionOptionInvalid { .. }
            | E::PropertyDuplicate { .. }
            | E::PropertyValueInvalid { .. }
            | E::AuthenticationDataWithoutMethod
            | E::ReasonCodeInvalid { .. }
            | E::SessionPresentWithError { .. } => ReasonCode::PROTOCOL_ERROR,
            E::ProtocolNameInvalid { .. } | E::ProtocolVersionUnsupported { .. } => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            E::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
        }
    }
}

/// A packet that cannot be written, or that would break a rule of the spec if it were.
/// Nothing is appended to the buffer when encoding fails.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// More than 268,435,455 bytes after the fixed header (MQTT 5.0 section 2.1.4).
    #[error("remaining length {remaining_length} is over the maximum of 268435455")]
    PacketTooLarge { remaining_length: usize },
    /// The packet or one of its fields cannot be written in this version: AUTH, properties,
    /// Reason Codes or subscription options in MQTT 3.1.1, or a CONNECT of another version.
    #[error("{packet_type}: {field} cannot be written in {version}")]
    NotInVersion {
        packet_type: PacketType,
        field: &'static str,
        version: ProtocolVersion,
    },
    #[error("reason code {code} is not allowed in {packet_type} in {version}")]
    ReasonCodeNotAllowed {
        packet_type: PacketType,
        code: ReasonCode,
        version: ProtocolVersion,
    },
    #[error("property {property} is not allowed in {context}")]
    PropertyNotAllowed {
        property: PropertyId,
        context: PropertyContext,
    },
    #[error("property {property} may appear only once here")]
    PropertyDuplicate { property: PropertyId },
    #[error("property {property} cannot have the value {value}")]
    PropertyValueInvalid { property: PropertyId, value: u32 },
    #[error("authentication data without an authentication method")]
    AuthenticationDataWithoutMethod,
    /// A PUBLISH whose Packet Identifier does not match its QoS (one at QoS 1 and 2 only), or
    /// with DUP set at QoS 0 [MQTT-3.3.1-2] [MQTT-2.2.1-2].
    #[error("PUBLISH at {qos} with dup {dup} and packet identifier {packet_id:?}")]
    PublishHeaderInvalid {
        qos: QoS,
        dup: bool,
        packet_id: Option<u16>,
    },
    #[error("{packet_type} needs at least one topic filter")]
    TopicFiltersMissing { packet_type: PacketType },
    #[error("CONNACK with session present and the failure code {code}")]
    SessionPresentWithError { code: ReasonCode },
}
