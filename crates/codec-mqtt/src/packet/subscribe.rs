//! SUBSCRIBE and SUBACK (MQTT 5.0 sections 3.8 and 3.9, 3.1.1 sections 3.8 and 3.9).
//!
//! ```text
//! SUBSCRIBE  Packet Identifier | Properties (5.0) | (Topic Filter, options byte)+
//! SUBACK     Packet Identifier | Properties (5.0) | Reason Code per filter
//!
//! options byte, 5.0    bits 7-6 reserved | 5-4 retain handling | 3 retain as published
//!                      | 2 no local | 1-0 maximum QoS
//! options byte, 3.1.1  bits 7-2 reserved | 1-0 requested QoS
//! ```
//!
//! Topic filter syntax (wildcards, shared subscriptions) is the door's to check.

use crate::error::{DecodeError, EncodeError};
use crate::identifiers::PacketId;
use crate::packet::{
    check_properties, check_reason_code, decode_packet_id, decode_properties, encode_properties,
    reason_code_allowed, PacketType,
};
use crate::properties::Properties;
use crate::qos::QoS;
use crate::reason_code::ReasonCode;
use crate::strings::Utf8String;
use crate::version::ProtocolVersion;
use crate::wire::{Reader, Writer};

const OPTION_NO_LOCAL: u8 = 0b0000_0100;
const OPTION_RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const RETAIN_HANDLING_SHIFT: u8 = 4;
const OPTIONS_RESERVED_V5: u8 = 0b1100_0000;
const OPTIONS_RESERVED_V311: u8 = 0b1111_1100;

/// A request to subscribe to one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    pub properties: Properties,
    /// At least one [MQTT-3.8.3-3].
    pub subscriptions: Vec<Subscription>,
}

/// One topic filter of a SUBSCRIBE and how to deliver what it matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topic_filter: Utf8String,
    pub options: SubscriptionOptions,
}

/// The options byte of a subscription (MQTT 5.0 section 3.8.3.1). MQTT 3.1.1 has only the
/// QoS; the rest keep their defaults there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// The highest QoS the server may deliver with (3.1.1: the requested QoS).
    pub qos: QoS,
    /// Do not deliver the client's own messages back to it.
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages as published.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// When retained messages are sent for a new subscription (MQTT 5.0 section 3.8.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RetainHandling {
    /// 0: at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: at subscribe, if the subscription did not exist already.
    SendAtSubscribeIfNew = 1,
    /// 2: never at subscribe.
    DoNotSend = 2,
}

/// The server's answer to SUBSCRIBE: one Reason Code per topic filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    pub packet_id: PacketId,
    pub properties: Properties,
    /// 3.1.1 allows only 0x00, 0x01, 0x02 and 0x80.
    pub reason_codes: Vec<ReasonCode>,
}

impl Subscribe {
    pub(crate) fn decode(
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Subscribe, DecodeError> {
        let packet_type = PacketType::Subscribe;
        let packet_id = decode_packet_id(reader, packet_type)?;
        let properties = decode_properties(reader, packet_type, version)?;
        // Each entry takes at least three bytes, so the list is bounded by the packet.
        let mut subscriptions = Vec::new();
        while !reader.is_empty() {
            let topic_filter = reader.read_string("topic filter")?;
            let options =
                SubscriptionOptions::decode(reader.read_u8("subscription options")?, version)?;
            subscriptions.push(Subscription {
                topic_filter,
                options,
            });
        }
        if subscriptions.is_empty() {
            return Err(DecodeError::TopicFiltersMissing { packet_type });
        }
        Ok(Subscribe {
            packet_id,
            properties,
            subscriptions,
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let packet_type = PacketType::Subscribe;
        if self.subscriptions.is_empty() {
            return Err(EncodeError::TopicFiltersMissing { packet_type });
        }
        let qos_only = |options: &SubscriptionOptions| {
            *options
                == SubscriptionOptions {
                    qos: options.qos,
                    ..SubscriptionOptions::default()
                }
        };
        if version == ProtocolVersion::V311
            && !self.subscriptions.iter().all(|s| qos_only(&s.options))
        {
            return Err(EncodeError::NotInVersion {
                packet_type,
                field: "subscription options other than QoS",
                version,
            });
        }
        check_properties(&self.properties, packet_type, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_u16(self.packet_id.get());
        encode_properties(&self.properties, writer, version);
        for subscription in &self.subscriptions {
            writer.write_string(&subscription.topic_filter);
            writer.write_u8(subscription.options.byte());
        }
    }
}

impl SubscriptionOptions {
    /// Reserved bits are malformed [MQTT-3.8.3-5] (3.1.1: [MQTT-3-8.3-4], which also makes
    /// QoS 3 malformed); in 5.0 QoS 3 and Retain Handling 3 are Protocol Errors.
    fn decode(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
        let qos = byte & 0b11;
        if version == ProtocolVersion::V311 {
            if byte & OPTIONS_RESERVED_V311 != 0 {
                return Err(DecodeError::ReservedBitsSet {
                    field: "requested QoS",
                    value: byte,
                });
            }
            let qos = QoS::try_from(qos).map_err(|_| DecodeError::QoSInvalid {
                field: "requested QoS",
            })?;
            return Ok(SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            });
        }
        if byte & OPTIONS_RESERVED_V5 != 0 {
            return Err(DecodeError::ReservedBitsSet {
                field: "subscription options",
                value: byte,
            });
        }
        let qos = QoS::try_from(qos).map_err(|_| DecodeError::SubscriptionOptionInvalid {
            option: "maximum QoS",
            value: qos,
        })?;
        let retain_handling = match byte >> RETAIN_HANDLING_SHIFT & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            value => {
                return Err(DecodeError::SubscriptionOptionInvalid {
                    option: "retain handling",
                    value,
                })
            }
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & OPTION_NO_LOCAL != 0,
            retain_as_published: byte & OPTION_RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn byte(self) -> u8 {
        let mut byte = self.qos.level() | (self.retain_handling as u8) << RETAIN_HANDLING_SHIFT;
        if self.no_local {
            byte |= OPTION_NO_LOCAL;
        }
        if self.retain_as_published {
            byte |= OPTION_RETAIN_AS_PUBLISHED;
        }
        byte
    }
}

impl Suback {
    pub(crate) fn decode(
        reader: &mut Reader,
        version: ProtocolVersion,
    ) -> Result<Suback, DecodeError> {
        let packet_type = PacketType::Suback;
        let packet_id = decode_packet_id(reader, packet_type)?;
        let properties = decode_properties(reader, packet_type, version)?;
        let mut reason_codes = Vec::new();
        for code in reader.take_rest() {
            if !reason_code_allowed(ReasonCode(code), packet_type, version) {
                return Err(DecodeError::ReasonCodeInvalid { packet_type, code });
            }
            reason_codes.push(ReasonCode(code));
        }
        Ok(Suback {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        for &code in &self.reason_codes {
            check_reason_code(code, PacketType::Suback, version)?;
        }
        check_properties(&self.properties, PacketType::Suback, version)
    }

    pub(crate) fn encode(&self, writer: &mut Writer<'_>, version: ProtocolVersion) {
        writer.write_u16(self.packet_id.get());
        encode_properties(&self.properties, writer, version);
        for code in &self.reason_codes {
            writer.write_u8(code.0);
        }
    }
}
