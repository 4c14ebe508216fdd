//! Control packets (MQTT 5.0 chapter 2 and 3; MQTT 3.1.1 chapter 2 and 3): the fixed header,
//! [`decode`] and [`encode`], and one module per packet or family of packets.
//!
//! ```text
//! byte 1         packet type (bits 7-4) | flags (bits 3-0)
//! byte 2 ..= 5   Remaining Length: Variable Byte Integer, the bytes after it
//! ...            variable header and payload, as the packet type says
//! ```
//!
//! [`decode`] takes one whole packet off the front of a read buffer and returns `Ok(None)`
//! until the packet is complete, consuming nothing. A packet over the caller's size limit is
//! refused from its fixed header, before its body is waited for; bad packet types and flags
//! from the first byte.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod subscribe;
mod unsubscribe;

use std::fmt;

use bytes::{Buf, BytesMut};

pub use ack::PublishAck;
pub use auth::Auth;
pub use connack::Connack;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use publish::Publish;
pub use subscribe::{RetainHandling, Suback, Subscribe, Subscription, SubscriptionOptions};
pub use unsubscribe::{Unsuback, Unsubscribe};

use crate::error::{DecodeError, EncodeError};
use crate::identifiers::PacketId;
use crate::properties::Properties;
use crate::property_id::PropertyContext;
use crate::reason_code::ReasonCode;
use crate::varint::{self, VariableInteger, VARIABLE_INTEGER_MAX};
use crate::version::ProtocolVersion;
use crate::wire::{measure, Reader, Writer};

/// The most bytes a packet can have: the first byte, four of Remaining Length and the largest
/// Remaining Length (MQTT 5.0 section 2.1.4).
pub const PACKET_SIZE_MAX: u32 = 1 + 4 + VARIABLE_INTEGER_MAX;

/// The type in the high four bits of a packet's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Pubrec = 5,
    Pubrel = 6,
    Pubcomp = 7,
    Subscribe = 8,
    Suback = 9,
    Unsubscribe = 10,
    Unsuback = 11,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
    /// MQTT 5.0 only.
    Auth = 15,
}

impl PacketType {
    /// The type of a packet's first byte in `version`; `None` for the reserved types.
    pub fn from_first_byte(byte: u8, version: ProtocolVersion) -> Option<PacketType> {
        use PacketType as T;
        let packet_type = match byte >> 4 {
            1 => T::Connect,
            2 => T::Connack,
            3 => T::Publish,
            4 => T::Puback,
            5 => T::Pubrec,
            6 => T::Pubrel,
            7 => T::Pubcomp,
            8 => T::Subscribe,
            9 => T::Suback,
            10 => T::Unsubscribe,
            11 => T::Unsuback,
            12 => T::Pingreq,
            13 => T::Pingresp,
            14 => T::Disconnect,
            15 if version == ProtocolVersion::V5 => T::Auth,
            _ => return None,
        };
        Some(packet_type)
    }

    /// The fixed flags of every type but PUBLISH (MQTT 5.0 section 2.1.3): 0b0010 for PUBREL,
    /// SUBSCRIBE and UNSUBSCRIBE, 0 for the rest.
    fn fixed_flags(self) -> u8 {
        match self {
            PacketType::Pubrel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            PacketType::Connect => "CONNECT",
            PacketType::Connack => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::Puback => "PUBACK",
            PacketType::Pubrec => "PUBREC",
            PacketType::Pubrel => "PUBREL",
            PacketType::Pubcomp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::Suback => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::Unsuback => "UNSUBACK",
            PacketType::Pingreq => "PINGREQ",
            PacketType::Pingresp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        };
        f.write_str(name)
    }
}

/// One control packet, its fields decoded. The same values serve both versions: fields MQTT
/// 3.1.1 lacks (properties, most Reason Codes, subscription options but QoS) hold their
/// defaults there, and encoding in 3.1.1 refuses a packet that sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Boxed: with two property lists it is twice the size of any other packet, and it comes
    /// once per connection.
    Connect(Box<Connect>),
    Connack(Connack),
    Publish(Publish),
    Puback(PublishAck),
    Pubrec(PublishAck),
    Pubrel(PublishAck),
    Pubcomp(PublishAck),
    Subscribe(Subscribe),
    Suback(Suback),
    Unsubscribe(Unsubscribe),
    Unsuback(Unsuback),
    Pingreq,
    Pingresp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::Connack(_) => PacketType::Connack,
            Packet::Publish(_) => PacketType::Publish,
            Packet::Puback(_) => PacketType::Puback,
            Packet::Pubrec(_) => PacketType::Pubrec,
            Packet::Pubrel(_) => PacketType::Pubrel,
            Packet::Pubcomp(_) => PacketType::Pubcomp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::Suback(_) => PacketType::Suback,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::Unsuback(_) => PacketType::Unsuback,
            Packet::Pingreq => PacketType::Pingreq,
            Packet::Pingresp => PacketType::Pingresp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// The first byte: type and flags.
    fn first_byte(&self) -> u8 {
        let packet_type = self.packet_type();
        let flags = match self {
            Packet::Publish(publish) => publish.flags(),
            _ => packet_type.fixed_flags(),
        };
        (packet_type as u8) << 4 | flags
    }

    /// Checks that the packet can be written in `version` and follows the spec's rules.
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        match self {
            Packet::Connect(connect) => connect.check(version),
            Packet::Connack(connack) => connack.check(version),
            Packet::Publish(publish) => publish.check(version),
            Packet::Puback(ack)
            | Packet::Pubrec(ack)
            | Packet::Pubrel(ack)
            | Packet::Pubcomp(ack) => ack.check(self.packet_type(), version),
            Packet::Subscribe(subscribe) => subscribe.check(version),
            Packet::Suback(suback) => suback.check(version),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.check(version),
            Packet::Unsuback(unsuback) => unsuback.check(version),
            Packet::Pingreq | Packet::Pingresp => Ok(()),
            Packet::Disconnect(disconnect) => disconnect.check(version),
            Packet::Auth(auth) => auth.check(version),
        }
    }

    /// Writes what follows the fixed header.
    fn encode_body(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        match self {
            Packet::Connect(connect) => connect.encode(writer),
            Packet::Connack(connack) => connack.encode(writer, version),
            Packet::Publish(publish) => publish.encode(writer, version),
            Packet::Puback(ack)
            | Packet::Pubrec(ack)
            | Packet::Pubrel(ack)
            | Packet::Pubcomp(ack) => ack.encode(writer, version),
            Packet::Subscribe(subscribe) => subscribe.encode(writer, version),
            Packet::Suback(suback) => suback.encode(writer, version),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.encode(writer, version),
            Packet::Unsuback(unsuback) => unsuback.encode(writer, version),
            Packet::Pingreq | Packet::Pingresp => {}
            Packet::Disconnect(disconnect) => disconnect.encode(writer, version),
            Packet::Auth(auth) => auth.encode(writer),
        }
    }
}

/// Takes one whole packet off the front of `buf`: `Ok(None)` while it is incomplete (nothing
/// is consumed), the packet and its size on the wire once it is there, an error when the bytes
/// cannot be a valid packet. After an error the stream is out of step and the connection
/// must close; what was consumed is unspecified.
///
/// `version` is the one CONNECT negotiated; a CONNECT itself is read in the version its
/// Protocol Level names, whatever `version` says, so a door passes any version until then.
/// `packet_size_max` is the largest packet accepted, fixed header included: the Maximum
/// Packet Size the receiver announced, or [`PACKET_SIZE_MAX`] for no limit but the
/// protocol's.
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    packet_size_max: u32,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type =
        PacketType::from_first_byte(first, version).ok_or(DecodeError::PacketTypeUnknown {
            packet_type: first >> 4,
            version,
        })?;
    let flags = first & 0x0f;
    check_flags(packet_type, flags)?;
    let (remaining_length, length_bytes) = match varint::decode(&buf[1..]) {
        VariableInteger::Complete { value, length } => (value, length),
        VariableInteger::Incomplete => return Ok(None),
        VariableInteger::Malformed => return Err(DecodeError::RemainingLengthMalformed),
    };
    let header_size = 1 + length_bytes;
    let size = header_size as u64 + u64::from(remaining_length);
    if size > u64::from(packet_size_max) {
        return Err(DecodeError::PacketTooLarge {
            size,
            size_max: packet_size_max,
        });
    }
    // At most PACKET_SIZE_MAX, which fits a usize on every target this crate builds for.
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if buf.len() < size {
        return Ok(None);
    }
    let mut bytes = buf.split_to(size).freeze();
    bytes.advance(header_size);
    let mut reader = Reader::new(bytes);
    let packet = decode_body(packet_type, flags, &mut reader, version)?;
    if !reader.is_empty() {
        return Err(DecodeError::TrailingBytes {
            packet_type,
            count: reader.remaining(),
        });
    }
    Ok(Some((packet, size)))
}

/// Appends `packet` as `version` writes it to `buf`. Refuses, appending nothing, a packet
/// that cannot be written in `version` or would break a rule of the spec that decoding
/// enforces, so that whatever encodes also decodes. Checking the packet against the peer's
/// Maximum Packet Size is the caller's: [`encoded_len`] gives the size.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let remaining_length = remaining_length(packet, version)?;
    buf.reserve(1 + varint::encoded_len(remaining_length) + remaining_length as usize);
    let mut writer = Writer::new(buf);
    writer.write_u8(packet.first_byte());
    writer.write_variable_integer(remaining_length);
    packet.encode_body(&mut writer, version);
    Ok(())
}

/// The bytes [`encode`] appends for `packet` in `version`, or why it cannot.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let remaining_length = remaining_length(packet, version)?;
    Ok(1 + varint::encoded_len(remaining_length) + remaining_length as usize)
}

/// Checks the packet and measures its body.
fn remaining_length(packet: &Packet, version: ProtocolVersion) -> Result<u32, EncodeError> {
    packet.check(version)?;
    let length = measure(|counter| packet.encode_body(counter, version));
    match u32::try_from(length) {
        Ok(length) if length <= VARIABLE_INTEGER_MAX => Ok(length),
        _ => Err(EncodeError::PacketTooLarge {
            remaining_length: length,
        }),
    }
}

/// The flags of the first byte (MQTT 5.0 section 2.1.3, 3.1.1 section 2.2.2).
fn check_flags(packet_type: PacketType, flags: u8) -> Result<(), DecodeError> {
    if packet_type == PacketType::Publish {
        return publish::check_flags(flags);
    }
    if flags != packet_type.fixed_flags() {
        return Err(DecodeError::FlagsInvalid { packet_type, flags });
    }
    Ok(())
}

fn decode_body(
    packet_type: PacketType,
    flags: u8,
    reader: &mut Reader,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    use PacketType as T;
    Ok(match packet_type {
        T::Connect => Packet::Connect(Box::new(Connect::decode(reader)?)),
        T::Connack => Packet::Connack(Connack::decode(reader, version)?),
        T::Publish => Packet::Publish(Publish::decode(reader, flags, version)?),
        T::Puback => Packet::Puback(PublishAck::decode(reader, packet_type, version)?),
        T::Pubrec => Packet::Pubrec(PublishAck::decode(reader, packet_type, version)?),
        T::Pubrel => Packet::Pubrel(PublishAck::decode(reader, packet_type, version)?),
        T::Pubcomp => Packet::Pubcomp(PublishAck::decode(reader, packet_type, version)?),
        T::Subscribe => Packet::Subscribe(Subscribe::decode(reader, version)?),
        T::Suback => Packet::Suback(Suback::decode(reader, version)?),
        T::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(reader, version)?),
        T::Unsuback => Packet::Unsuback(Unsuback::decode(reader, version)?),
        T::Pingreq => Packet::Pingreq,
        T::Pingresp => Packet::Pingresp,
        T::Disconnect => Packet::Disconnect(Disconnect::decode(reader, version)?),
        T::Auth => Packet::Auth(Auth::decode(reader)?),
    })
}

/// A Packet Identifier, which may not be 0 [MQTT-2.2.1-3].
fn decode_packet_id(reader: &mut Reader, packet_type: PacketType) -> Result<PacketId, DecodeError> {
    let value = reader.read_u16("packet identifier")?;
    PacketId::new(value).ok_or(DecodeError::PacketIdZero { packet_type })
}

/// The properties of a packet: present in MQTT 5.0 only.
fn decode_properties(
    reader: &mut Reader,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<Properties, DecodeError> {
    match version {
        ProtocolVersion::V5 => Properties::decode(reader, PropertyContext::Packet(packet_type)),
        ProtocolVersion::V311 => Ok(Properties::default()),
    }
}

fn encode_properties(properties: &Properties, writer: &mut Writer<'_>, version: ProtocolVersion) {
    if version == ProtocolVersion::V5 {
        properties.encode(writer);
    }
}

/// Properties fit for `packet_type` in MQTT 5.0; none at all in MQTT 3.1.1.
fn check_properties(
    properties: &Properties,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    match version {
        ProtocolVersion::V5 => properties.check(PropertyContext::Packet(packet_type)),
        ProtocolVersion::V311 if properties.is_empty() => Ok(()),
        ProtocolVersion::V311 => Err(EncodeError::NotInVersion {
            packet_type,
            field: "properties",
            version,
        }),
    }
}

/// A Reason Code that `version` can carry in `packet_type`.
fn check_reason_code(
    code: ReasonCode,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    if !reason_code_allowed(code, packet_type, version) {
        return Err(EncodeError::ReasonCodeNotAllowed {
            packet_type,
            code,
            version,
        });
    }
    Ok(())
}

/// A Reason Code byte that MQTT 5.0 allows in `packet_type`.
fn decode_reason_code(
    reader: &mut Reader,
    packet_type: PacketType,
) -> Result<ReasonCode, DecodeError> {
    let code = reader.read_u8("reason code")?;
    if !ReasonCode(code).is_allowed_in(packet_type) {
        return Err(DecodeError::ReasonCodeInvalid { packet_type, code });
    }
    Ok(ReasonCode(code))
}

/// Whether `version` can carry `code` in `packet_type`.
fn reason_code_allowed(
    code: ReasonCode,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> bool {
    match version {
        ProtocolVersion::V5 => code.is_allowed_in(packet_type),
        ProtocolVersion::V311 => code.is_allowed_in_v311(packet_type),
    }
}
