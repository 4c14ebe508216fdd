//! CONNECT (MQTT 5.0 section 3.1, 3.1.1 section 3.1): the first packet from a client. It
//! names the protocol version, so it is read without knowing one.
//!
//! ```text
//! Protocol Name    string "MQTT"
//! Protocol Level   4 (3.1.1) or 5 (5.0)
//! Connect Flags    7 user name | 6 password | 5 will retain | 4-3 will QoS | 2 will
//!                  | 1 clean start (3.1.1: clean session) | 0 reserved, 0
//! Keep Alive       u16, seconds
//! Properties       5.0 only
//! Payload          Client Identifier; if will: Will Properties (5.0), Will Topic,
//!                  Will Payload (binary); if user name: User Name; if password: Password
//! ```

use crate::error::{DecodeError, EncodeError};
use crate::packet::{check_properties, decode_properties, encode_properties, PacketType};
use crate::properties::Properties;
use crate::property_id::PropertyContext;
use crate::qos::QoS;
use crate::strings::{Binary, Utf8String};
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

/// The Protocol Name of both versions (section 3.1.2.1).
const PROTOCOL_NAME: &str = "MQTT";

const FLAG_USER_NAME: u8 = 0b1000_0000;
const FLAG_PASSWORD: u8 = 0b0100_0000;
const FLAG_WILL_RETAIN: u8 = 0b0010_0000;
const WILL_QOS_SHIFT: u8 = 3;
const FLAG_WILL: u8 = 0b0000_0100;
const FLAG_CLEAN_START: u8 = 0b0000_0010;
const FLAG_RESERVED: u8 = 0b0000_0001;

/// A client's request to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The version the client speaks, from the Protocol Level.
    pub protocol_version: ProtocolVersion,
    /// Clean Start in 5.0, Clean Session in 3.1.1 (the same bit).
    pub clean_start: bool,
    /// Seconds; 0 turns the keep-alive mechanism off.
    pub keep_alive: u16,
    pub properties: Properties,
    /// May be empty: the server then assigns one, or refuses (sections 3.1.3.1).
    pub client_id: Utf8String,
    pub will: Option<Will>,
    pub user_name: Option<Utf8String>,
    /// In 3.1.1 only with a user name [MQTT-3.1.2-22]; 5.0 allows it alone.
    pub password: Option<Binary>,
}

/// The message a server publishes for the client when the connection ends without a
/// DISCONNECT (section 3.1.2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Will {
    /// Will Properties, 5.0 only.
    pub properties: Properties,
    pub topic: Utf8String,
    /// Binary Data: at most 65,535 bytes, unlike a PUBLISH payload.
    pub payload: Binary,
    pub qos: QoS,
    pub retain: bool,
}

impl Connect {
    pub(crate) fn decode(reader: &mut Reader) -> Result<Connect, DecodeError> {
        let name = reader.read_string("protocol name")?;
        if name != PROTOCOL_NAME {
            return Err(DecodeError::ProtocolNameInvalid {
                name: name.into_string(),
            });
        }
        let level = reader.read_u8("protocol level")?;
        let version = ProtocolVersion::from_level(level)
            .ok_or(DecodeError::ProtocolVersionUnsupported { level })?;
        let flags = reader.read_u8("connect flags")?;
        check_flags(flags, version)?;
        let keep_alive = reader.read_u16("keep alive")?;
        let properties = decode_properties(reader, PacketType::Connect, version)?;
        let client_id = reader.read_string("client identifier")?;
        let will = match flags & FLAG_WILL {
            0 => None,
            _ => Some(Will::decode(reader, flags, version)?),
        };
        let user_name = match flags & FLAG_USER_NAME {
            0 => None,
            _ => Some(reader.read_string("user name")?),
        };
        let password = match flags & FLAG_PASSWORD {
            0 => None,
            _ => Some(reader.read_binary("password")?),
        };
        Ok(Connect {
            protocol_version: version,
            clean_start: flags & FLAG_CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            user_name,
            password,
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let not_in_version = |field| EncodeError::NotInVersion {
            packet_type: PacketType::Connect,
            field,
            version,
        };
        if self.protocol_version != version {
            return Err(not_in_version("a CONNECT of another protocol version"));
        }
        check_properties(&self.properties, PacketType::Connect, version)?;
        if let Some(will) = &self.will {
            match version {
                ProtocolVersion::V5 => will.properties.check(PropertyContext::Will)?,
                ProtocolVersion::V311 if !will.properties.is_empty() => {
                    return Err(not_in_version("will properties"))
                }
                ProtocolVersion::V311 => {}
            }
        }
        if version == ProtocolVersion::V311 && self.password.is_some() && self.user_name.is_none() {
            return Err(not_in_version("a password without a user name"));
        }
        Ok(())
    }

    /// Writes the variable header and payload in the packet's own version.
    pub(crate) fn encode(&self, writer: &mut Writer<'_>) {
        let version = self.protocol_version;
        writer.write_u16(PROTOCOL_NAME.len() as u16);
        writer.write_bytes(PROTOCOL_NAME.as_bytes());
        writer.write_u8(version.level());
        writer.write_u8(self.flags());
        writer.write_u16(self.keep_alive);
        encode_properties(&self.properties, writer, version);
        writer.write_string(&self.client_id);
        if let Some(will) = &self.will {
            encode_properties(&will.properties, writer, version);
            writer.write_string(&will.topic);
            writer.write_binary(&will.payload);
        }
        if let Some(user_name) = &self.user_name {
            writer.write_string(user_name);
        }
        if let Some(password) = &self.password {
            writer.write_binary(password);
        }
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.user_name.is_some() {
            flags |= FLAG_USER_NAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | will.qos.level() << WILL_QOS_SHIFT;
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        flags
    }
}

impl Will {
    fn decode(
        reader: &mut Reader,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Will, DecodeError> {
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(reader, PropertyContext::Will)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let topic = reader.read_string("will topic")?;
        let payload = reader.read_binary("will payload")?;
        // `check_flags` refused QoS 3.
        let qos = QoS::try_from(flags >> WILL_QOS_SHIFT & 0b11)
            .map_err(|_| DecodeError::QoSInvalid { field: "will QoS" })?;
        Ok(Will {
            properties,
            topic,
            payload,
            qos,
            retain: flags & FLAG_WILL_RETAIN != 0,
        })
    }
}

/// The reserved bit is 0 [MQTT-3.1.2-3]; Will QoS and Will Retain are 0 without a will
/// [MQTT-3.1.2-11] [MQTT-3.1.2-13]; Will QoS 3 is malformed (section 3.1.2.6); in 3.1.1 a
/// password needs a user name [MQTT-3.1.2-22].
fn check_flags(flags: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::ReservedBitsSet {
            field: "connect flags",
            value: flags,
        });
    }
    let will_qos = flags >> WILL_QOS_SHIFT & 0b11;
    if flags & FLAG_WILL == 0 && (will_qos != 0 || flags & FLAG_WILL_RETAIN != 0) {
        return Err(DecodeError::WillFlagsInvalid { flags });
    }
    if will_qos == 3 {
        return Err(DecodeError::QoSInvalid { field: "will QoS" });
    }
    if version == ProtocolVersion::V311 && flags & FLAG_PASSWORD != 0 && flags & FLAG_USER_NAME == 0
    {
        return Err(DecodeError::PasswordWithoutUserName { flags });
    }
    Ok(())
}
