//! Reason Codes (MQTT 5.0 section 2.4): one byte saying how an operation went, below 0x80 a
//! success, from 0x80 a failure. Each packet that carries one allows only some values; the
//! table in [`ReasonCode::is_allowed_in`] is the spec's.
//!
//! MQTT 3.1.1 has return codes only in CONNACK and SUBACK. SUBACK's (0x00, 0x01, 0x02, 0x80)
//! are the same numbers in 5.0. CONNACK's (0 to 5) are mapped onto their 5.0 equivalents, so
//! that a door handles one set of codes whatever the version: see
//! [`ReasonCode::from_connect_return_code`].

use std::fmt;

use crate::packet::PacketType;

/// A Reason Code. Any byte can be held; whether it is allowed depends on the packet
/// ([`ReasonCode::is_allowed_in`]), which decoding and encoding both check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    pub const SUCCESS: ReasonCode = ReasonCode(0x00);
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode(0x00);
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode(0x00);
    pub const GRANTED_QOS_1: ReasonCode = ReasonCode(0x01);
    pub const GRANTED_QOS_2: ReasonCode = ReasonCode(0x02);
    pub const DISCONNECT_WITH_WILL_MESSAGE: ReasonCode = ReasonCode(0x04);
    pub const NO_MATCHING_SUBSCRIBERS: ReasonCode = ReasonCode(0x10);
    pub const NO_SUBSCRIPTION_EXISTED: ReasonCode = ReasonCode(0x11);
    pub const CONTINUE_AUTHENTICATION: ReasonCode = ReasonCode(0x18);
    pub const RE_AUTHENTICATE: ReasonCode = ReasonCode(0x19);
    pub const UNSPECIFIED_ERROR: ReasonCode = ReasonCode(0x80);
    pub const MALFORMED_PACKET: ReasonCode = ReasonCode(0x81);
    pub const PROTOCOL_ERROR: ReasonCode = ReasonCode(0x82);
    pub const IMPLEMENTATION_SPECIFIC_ERROR: ReasonCode = ReasonCode(0x83);
    pub const UNSUPPORTED_PROTOCOL_VERSION: ReasonCode = ReasonCode(0x84);
    pub const CLIENT_IDENTIFIER_NOT_VALID: ReasonCode = ReasonCode(0x85);
    pub const BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(0x86);
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(0x87);
    pub const SERVER_UNAVAILABLE: ReasonCode = ReasonCode(0x88);
    pub const SERVER_BUSY: ReasonCode = ReasonCode(0x89);
    pub const BANNED: ReasonCode = ReasonCode(0x8a);
    pub const SERVER_SHUTTING_DOWN: ReasonCode = ReasonCode(0x8b);
    pub const BAD_AUTHENTICATION_METHOD: ReasonCode = ReasonCode(0x8c);
    pub const KEEP_ALIVE_TIMEOUT: ReasonCode = ReasonCode(0x8d);
    pub const SESSION_TAKEN_OVER: ReasonCode = ReasonCode(0x8e);
    pub const TOPIC_FILTER_INVALID: ReasonCode = ReasonCode(0x8f);
    pub const TOPIC_NAME_INVALID: ReasonCode = ReasonCode(0x90);
    pub const PACKET_IDENTIFIER_IN_USE: ReasonCode = ReasonCode(0x91);
    pub const PACKET_IDENTIFIER_NOT_FOUND: ReasonCode = ReasonCode(0x92);
    pub const RECEIVE_MAXIMUM_EXCEEDED: ReasonCode = ReasonCode(0x93);
    pub const TOPIC_ALIAS_INVALID: ReasonCode = ReasonCode(0x94);
    pub const PACKET_TOO_LARGE: ReasonCode = ReasonCode(0x95);
    pub const MESSAGE_RATE_TOO_HIGH: ReasonCode = ReasonCode(0x96);
    pub const QUOTA_EXCEEDED: ReasonCode = ReasonCode(0x97);
    pub const ADMINISTRATIVE_ACTION: ReasonCode = ReasonCode(0x98);
    pub const PAYLOAD_FORMAT_INVALID: ReasonCode = ReasonCode(0x99);
    pub const RETAIN_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9a);
    pub const QOS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9b);
    pub const USE_ANOTHER_SERVER: ReasonCode = ReasonCode(0x9c);
    pub const SERVER_MOVED: ReasonCode = ReasonCode(0x9d);
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9e);
    pub const CONNECTION_RATE_EXCEEDED: ReasonCode = ReasonCode(0x9f);
    pub const MAXIMUM_CONNECT_TIME: ReasonCode = ReasonCode(0xa0);
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xa1);
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xa2);

    /// Codes from 0x80 report a failure (MQTT 5.0 section 2.4).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// Whether MQTT 5.0 allows this code in `packet_type` (the table of section 2.4, with the
    /// lists of sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1
    /// and 3.15.2.1). Always false for packets that carry no Reason Code.
    pub fn is_allowed_in(self, packet_type: PacketType) -> bool {
        use PacketType as P;
        match packet_type {
            P::Connack => matches!(
                self.0,
                0x00 | 0x80..=0x8a | 0x8c | 0x90 | 0x95 | 0x97 | 0x99..=0x9d | 0x9f
            ),
            P::Puback | P::Pubrec => matches!(
                self.0,
                0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
            ),
            P::Pubrel | P::Pubcomp => matches!(self.0, 0x00 | 0x92),
            P::Suback => matches!(
                self.0,
                0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91 | 0x97 | 0x9e | 0xa1 | 0xa2
            ),
            P::Unsuback => matches!(self.0, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91),
            P::Disconnect => matches!(
                self.0,
                0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8b..=0x90 | 0x93..=0xa2
            ),
            P::Auth => matches!(self.0, 0x00 | 0x18 | 0x19),
            P::Connect | P::Publish | P::Subscribe | P::Unsubscribe | P::Pingreq | P::Pingresp => {
                false
            }
        }
    }

    /// The 5.0 code for an MQTT 3.1.1 CONNACK return code (section 3.2.2.3); `None` for 6 and
    /// up, which 3.1.1 reserves.
    pub fn from_connect_return_code(return_code: u8) -> Option<ReasonCode> {
        match return_code {
            0 => Some(ReasonCode::SUCCESS),
            1 => Some(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
            2 => Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
            3 => Some(ReasonCode::SERVER_UNAVAILABLE),
            4 => Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            5 => Some(ReasonCode::NOT_AUTHORIZED),
            _ => None,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code for this code; `None` for the codes 3.1.1 cannot say.
    pub fn to_connect_return_code(self) -> Option<u8> {
        match self {
            ReasonCode::SUCCESS => Some(0),
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => Some(1),
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => Some(2),
            ReasonCode::SERVER_UNAVAILABLE => Some(3),
            ReasonCode::BAD_USER_NAME_OR_PASSWORD => Some(4),
            ReasonCode::NOT_AUTHORIZED => Some(5),
            _ => None,
        }
    }

    /// Whether MQTT 3.1.1 can carry this code in `packet_type`: the CONNACK return codes, the
    /// SUBACK return codes 0x00, 0x01, 0x02 and 0x80, and nothing but success elsewhere (the
    /// 3.1.1 acknowledgements, DISCONNECT and UNSUBACK have no code on the wire).
    pub fn is_allowed_in_v311(self, packet_type: PacketType) -> bool {
        match packet_type {
            PacketType::Connack => self.to_connect_return_code().is_some(),
            PacketType::Suback => matches!(self.0, 0x00..=0x02 | 0x80),
            _ => self == ReasonCode::SUCCESS,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}
