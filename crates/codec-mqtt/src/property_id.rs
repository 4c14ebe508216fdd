//! The property identifiers of MQTT 5.0 (section 2.2.2.2) and where each may appear: the
//! packets of the spec's table, and the Will Properties inside CONNECT's payload.
//!
//! A property in a packet that does not allow it is a Malformed Packet (section 2.2.2.2); one
//! that appears twice where it may appear once is a Protocol Error (each property's section).
//! Only User Property repeats everywhere it appears, and Subscription Identifier repeats in
//! PUBLISH (one per matching subscription, section 3.3.2.3.8).

use std::fmt;

use crate::packet::PacketType;

/// Where a property list sits: in a packet's variable header, or in CONNECT's will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    Packet(PacketType),
    /// The Will Properties of CONNECT (MQTT 5.0 section 3.1.3.2).
    Will,
}

impl fmt::Display for PropertyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertyContext::Packet(packet_type) => packet_type.fmt(f),
            PropertyContext::Will => f.write_str("Will Properties"),
        }
    }
}

/// An MQTT 5.0 property identifier. On the wire a Variable Byte Integer; every defined one
/// fits in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0b,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1a,
    ServerReference = 0x1c,
    ReasonString = 0x1f,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2a,
}

impl PropertyId {
    /// Every property, in identifier order: the order in which they are encoded.
    pub const ALL: [PropertyId; 27] = {
        use PropertyId as P;
        [
            P::PayloadFormatIndicator,
            P::MessageExpiryInterval,
            P::ContentType,
            P::ResponseTopic,
            P::CorrelationData,
            P::SubscriptionIdentifier,
            P::SessionExpiryInterval,
            P::AssignedClientIdentifier,
            P::ServerKeepAlive,
            P::AuthenticationMethod,
            P::AuthenticationData,
            P::RequestProblemInformation,
            P::WillDelayInterval,
            P::RequestResponseInformation,
            P::ResponseInformation,
            P::ServerReference,
            P::ReasonString,
            P::ReceiveMaximum,
            P::TopicAliasMaximum,
            P::TopicAlias,
            P::MaximumQoS,
            P::RetainAvailable,
            P::UserProperty,
            P::MaximumPacketSize,
            P::WildcardSubscriptionAvailable,
            P::SubscriptionIdentifierAvailable,
            P::SharedSubscriptionAvailable,
        ]
    };

    /// The identifier on the wire.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The property of an identifier; `None` for identifiers MQTT 5.0 does not define.
    pub fn from_id(id: u32) -> Option<Self> {
        PropertyId::ALL
            .into_iter()
            .find(|property| u32::from(property.id()) == id)
    }

    /// Whether the property may appear in `context` (the table of MQTT 5.0 section 2.2.2.2).
    pub fn is_allowed_in(self, context: PropertyContext) -> bool {
        use PacketType as T;
        use PropertyId as P;
        let PropertyContext::Packet(packet_type) = context else {
            return matches!(
                self,
                P::PayloadFormatIndicator
                    | P::MessageExpiryInterval
                    | P::ContentType
                    | P::ResponseTopic
                    | P::CorrelationData
                    | P::WillDelayInterval
                    | P::UserProperty
            );
        };
        match self {
            P::PayloadFormatIndicator
            | P::MessageExpiryInterval
            | P::ContentType
            | P::ResponseTopic
            | P::CorrelationData
            | P::TopicAlias => packet_type == T::Publish,
            P::SubscriptionIdentifier => matches!(packet_type, T::Publish | T::Subscribe),
            P::SessionExpiryInterval => {
                matches!(packet_type, T::Connect | T::Connack | T::Disconnect)
            }
            P::AuthenticationMethod | P::AuthenticationData => {
                matches!(packet_type, T::Connect | T::Connack | T::Auth)
            }
            P::RequestProblemInformation | P::RequestResponseInformation => {
                packet_type == T::Connect
            }
            P::WillDelayInterval => false,
            P::ReceiveMaximum | P::TopicAliasMaximum | P::MaximumPacketSize => {
                matches!(packet_type, T::Connect | T::Connack)
            }
            P::AssignedClientIdentifier
            | P::ServerKeepAlive
            | P::ResponseInformation
            | P::MaximumQoS
            | P::RetainAvailable
            | P::WildcardSubscriptionAvailable
            | P::SubscriptionIdentifierAvailable
            | P::SharedSubscriptionAvailable => packet_type == T::Connack,
            P::ServerReference => matches!(packet_type, T::Connack | T::Disconnect),
            P::ReasonString => !matches!(
                packet_type,
                T::Connect | T::Publish | T::Subscribe | T::Unsubscribe | T::Pingreq | T::Pingresp
            ),
            P::UserProperty => !matches!(packet_type, T::Pingreq | T::Pingresp),
        }
    }

    /// The name the spec gives the property.
    pub fn name(self) -> &'static str {
        use PropertyId as P;
        match self {
            P::PayloadFormatIndicator => "Payload Format Indicator",
            P::MessageExpiryInterval => "Message Expiry Interval",
            P::ContentType => "Content Type",
            P::ResponseTopic => "Response Topic",
            P::CorrelationData => "Correlation Data",
            P::SubscriptionIdentifier => "Subscription Identifier",
            P::SessionExpiryInterval => "Session Expiry Interval",
            P::AssignedClientIdentifier => "Assigned Client Identifier",
            P::ServerKeepAlive => "Server Keep Alive",
            P::AuthenticationMethod => "Authentication Method",
            P::AuthenticationData => "Authentication Data",
            P::RequestProblemInformation => "Request Problem Information",
            P::WillDelayInterval => "Will Delay Interval",
            P::RequestResponseInformation => "Request Response Information",
            P::ResponseInformation => "Response Information",
            P::ServerReference => "Server Reference",
            P::ReasonString => "Reason String",
            P::ReceiveMaximum => "Receive Maximum",
            P::TopicAliasMaximum => "Topic Alias Maximum",
            P::TopicAlias => "Topic Alias",
            P::MaximumQoS => "Maximum QoS",
            P::RetainAvailable => "Retain Available",
            P::UserProperty => "User Property",
            P::MaximumPacketSize => "Maximum Packet Size",
            P::WildcardSubscriptionAvailable => "Wildcard Subscription Available",
            P::SubscriptionIdentifierAvailable => "Subscription Identifier Available",
            P::SharedSubscriptionAvailable => "Shared Subscription Available",
        }
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.id())
    }
}
