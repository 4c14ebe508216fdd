//! Strategies for valid packets of either version: every field within what the spec and the
//! version allow, so that each packet encodes and decodes back to itself.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::{
    Auth, Binary, Connack, Connect, Disconnect, Packet, PacketId, PacketType, PayloadFormat,
    Properties, PropertyContext, PropertyId, ProtocolVersion, Publish, PublishAck, QoS, ReasonCode,
    RetainHandling, Suback, Subscribe, Subscription, SubscriptionId, SubscriptionOptions, Unsuback,
    Unsubscribe, UserProperty, Utf8String, Will,
};

pub(super) fn utf8_string() -> BoxedStrategy<Utf8String> {
    // Any character but U+0000, control characters and 4-byte ones included.
    vec(any::<char>().prop_filter("U+0000", |c| *c != '\0'), 0..8)
        .prop_map(|chars| Utf8String::try_from(String::from_iter(chars)).unwrap())
        .boxed()
}

pub(super) fn binary() -> BoxedStrategy<Binary> {
    vec(any::<u8>(), 0..12)
        .prop_map(|bytes| Binary::try_from(bytes).unwrap())
        .boxed()
}

fn qos() -> BoxedStrategy<QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
    .boxed()
}

fn packet_id() -> BoxedStrategy<PacketId> {
    prop_oneof![1..=u16::MAX, Just(1), Just(u16::MAX)]
        .prop_map(|id| PacketId::new(id).unwrap())
        .boxed()
}

fn subscription_id() -> BoxedStrategy<SubscriptionId> {
    prop_oneof![
        1..=SubscriptionId::MAX,
        Just(127),
        Just(128),
        Just(SubscriptionId::MAX)
    ]
    .prop_map(|id| SubscriptionId::new(id).unwrap())
    .boxed()
}

fn user_property() -> BoxedStrategy<UserProperty> {
    (utf8_string(), utf8_string())
        .prop_map(|(name, value)| UserProperty { name, value })
        .boxed()
}

/// Every property, each present half the time: most are then dropped by
/// [`properties_in`] for the context at hand.
fn any_properties() -> BoxedStrategy<Properties> {
    let message = (
        option::of(prop_oneof![
            Just(PayloadFormat::Unspecified),
            Just(PayloadFormat::Utf8)
        ]),
        option::of(any::<u32>()),
        option::of(utf8_string()),
        option::of(utf8_string()),
        option::of(binary()),
        vec(subscription_id(), 0..3),
        option::of(1..=u16::MAX),
    );
    let session = (
        option::of(any::<u32>()),
        option::of(utf8_string()),
        option::of(any::<u16>()),
        option::of(utf8_string()),
        option::of(binary()),
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(any::<bool>()),
        option::of(utf8_string()),
        option::of(utf8_string()),
        option::of(utf8_string()),
    );
    let limits = (
        option::of(1..=u16::MAX),
        option::of(any::<u16>()),
        option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        option::of(any::<bool>()),
        vec(user_property(), 0..3),
        option::of(1..=u32::MAX),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    );
    (message, session, limits)
        .prop_map(|(message, session, limits)| Properties {
            payload_format_indicator: message.0,
            message_expiry_interval: message.1,
            content_type: message.2,
            response_topic: message.3,
            correlation_data: message.4,
            subscription_identifiers: message.5,
            topic_alias: message.6.and_then(NonZeroU16::new),
            session_expiry_interval: session.0,
            assigned_client_identifier: session.1,
            server_keep_alive: session.2,
            authentication_method: session.3,
            authentication_data: session.4,
            request_problem_information: session.5,
            will_delay_interval: session.6,
            request_response_information: session.7,
            response_information: session.8,
            server_reference: session.9,
            reason_string: session.10,
            receive_maximum: limits.0.and_then(NonZeroU16::new),
            topic_alias_maximum: limits.1,
            maximum_qos: limits.2,
            retain_available: limits.3,
            user_properties: limits.4,
            maximum_packet_size: limits.5.and_then(NonZeroU32::new),
            wildcard_subscription_available: limits.6,
            subscription_identifier_available: limits.7,
            shared_subscription_available: limits.8,
        })
        .boxed()
}

/// Properties valid in `context` for `version`: none in 3.1.1.
pub(super) fn properties_in(
    context: PropertyContext,
    version: ProtocolVersion,
) -> BoxedStrategy<Properties> {
    if version == ProtocolVersion::V311 {
        return Just(Properties::default()).boxed();
    }
    any_properties()
        .prop_map(move |mut properties| {
            for property in PropertyId::ALL {
                if !property.is_allowed_in(context) {
                    clear(&mut properties, property);
                }
            }
            if context != PropertyContext::Packet(PacketType::Publish) {
                properties.subscription_identifiers.truncate(1);
            }
            if properties.authentication_method.is_none() {
                properties.authentication_data = None;
            }
            properties
        })
        .boxed()
}

/// Removes `property` from `properties`.
pub(super) fn clear(properties: &mut Properties, property: PropertyId) {
    use PropertyId as P;
    let p = properties;
    match property {
        P::PayloadFormatIndicator => p.payload_format_indicator = None,
        P::MessageExpiryInterval => p.message_expiry_interval = None,
        P::ContentType => p.content_type = None,
        P::ResponseTopic => p.response_topic = None,
        P::CorrelationData => p.correlation_data = None,
        P::SubscriptionIdentifier => p.subscription_identifiers.clear(),
        P::SessionExpiryInterval => p.session_expiry_interval = None,
        P::AssignedClientIdentifier => p.assigned_client_identifier = None,
        P::ServerKeepAlive => p.server_keep_alive = None,
        P::AuthenticationMethod => p.authentication_method = None,
        P::AuthenticationData => p.authentication_data = None,
        P::RequestProblemInformation => p.request_problem_information = None,
        P::WillDelayInterval => p.will_delay_interval = None,
        P::RequestResponseInformation => p.request_response_information = None,
        P::ResponseInformation => p.response_information = None,
        P::ServerReference => p.server_reference = None,
        P::ReasonString => p.reason_string = None,
        P::ReceiveMaximum => p.receive_maximum = None,
        P::TopicAliasMaximum => p.topic_alias_maximum = None,
        P::TopicAlias => p.topic_alias = None,
        P::MaximumQoS => p.maximum_qos = None,
        P::RetainAvailable => p.retain_available = None,
        P::UserProperty => p.user_properties.clear(),
        P::MaximumPacketSize => p.maximum_packet_size = None,
        P::WildcardSubscriptionAvailable => p.wildcard_subscription_available = None,
        P::SubscriptionIdentifierAvailable => p.subscription_identifier_available = None,
        P::SharedSubscriptionAvailable => p.shared_subscription_available = None,
    }
}

fn packet_properties(
    packet_type: PacketType,
    version: ProtocolVersion,
) -> BoxedStrategy<Properties> {
    properties_in(PropertyContext::Packet(packet_type), version)
}

/// The Reason Codes `version` allows in `packet_type`.
pub(super) fn reason_codes(packet_type: PacketType, version: ProtocolVersion) -> Vec<ReasonCode> {
    (0..=u8::MAX)
        .map(ReasonCode)
        .filter(|code| match version {
            ProtocolVersion::V5 => code.is_allowed_in(packet_type),
            ProtocolVersion::V311 => code.is_allowed_in_v311(packet_type),
        })
        .collect()
}

fn reason_code(packet_type: PacketType, version: ProtocolVersion) -> BoxedStrategy<ReasonCode> {
    prop::sample::select(reason_codes(packet_type, version)).boxed()
}

fn will(version: ProtocolVersion) -> BoxedStrategy<Will> {
    let properties = properties_in(PropertyContext::Will, version);
    (properties, utf8_string(), binary(), qos(), any::<bool>())
        .prop_map(|(properties, topic, payload, qos, retain)| Will {
            properties,
            topic,
            payload,
            qos,
            retain,
        })
        .boxed()
}

pub(super) fn connect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let flags = (any::<bool>(), any::<u16>());
    let payload = (
        utf8_string(),
        option::of(will(version)),
        option::of(utf8_string()),
        option::of(binary()),
    );
    let properties = packet_properties(PacketType::Connect, version);
    (flags, properties, payload)
        .prop_map(move |((clean_start, keep_alive), properties, payload)| {
            let (client_id, will, user_name, mut password) = payload;
            // 3.1.1 sends a password only with a user name [MQTT-3.1.2-22].
            if version == ProtocolVersion::V311 && user_name.is_none() {
                password = None;
            }
            Packet::Connect(Box::new(Connect {
                protocol_version: version,
                clean_start,
                keep_alive,
                properties,
                client_id,
                will,
                user_name,
                password,
            }))
        })
        .boxed()
}

pub(super) fn connack(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let code = reason_code(PacketType::Connack, version);
    let properties = packet_properties(PacketType::Connack, version);
    (any::<bool>(), code, properties)
        .prop_map(|(session_present, reason_code, properties)| {
            Packet::Connack(Connack {
                session_present: session_present && reason_code == ReasonCode::SUCCESS,
                reason_code,
                properties,
            })
        })
        .boxed()
}

pub(super) fn publish(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let header = (qos(), any::<bool>(), any::<bool>(), packet_id());
    let properties = packet_properties(PacketType::Publish, version);
    let payload = vec(any::<u8>(), 0..48).prop_map(Bytes::from);
    (header, utf8_string(), properties, payload)
        .prop_map(
            |((qos, dup, retain, id), topic_name, properties, payload)| {
                let at_most_once = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic_name,
                    packet_id: (!at_most_once).then_some(id),
                    properties,
                    payload,
                })
            },
        )
        .boxed()
}

pub(super) fn publish_ack(
    packet_type: PacketType,
    version: ProtocolVersion,
) -> BoxedStrategy<Packet> {
    let code = reason_code(packet_type, version);
    let properties = packet_properties(packet_type, version);
    (packet_id(), code, properties)
        .prop_map(move |(packet_id, reason_code, properties)| {
            let ack = PublishAck {
                packet_id,
                reason_code,
                properties,
            };
            match packet_type {
                PacketType::Puback => Packet::Puback(ack),
                PacketType::Pubrec => Packet::Pubrec(ack),
                PacketType::Pubrel => Packet::Pubrel(ack),
                _ => Packet::Pubcomp(ack),
            }
        })
        .boxed()
}

fn subscription(version: ProtocolVersion) -> BoxedStrategy<Subscription> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendAtSubscribeIfNew),
        Just(RetainHandling::DoNotSend),
    ];
    let options = (qos(), any::<bool>(), any::<bool>(), retain_handling).prop_map(
        move |(qos, no_local, retain_as_published, retain_handling)| match version {
            ProtocolVersion::V311 => SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            ProtocolVersion::V5 => SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        },
    );
    (utf8_string(), options)
        .prop_map(|(topic_filter, options)| Subscription {
            topic_filter,
            options,
        })
        .boxed()
}

pub(super) fn subscribe(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let properties = packet_properties(PacketType::Subscribe, version);
    (packet_id(), properties, vec(subscription(version), 1..4))
        .prop_map(|(packet_id, properties, subscriptions)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                subscriptions,
            })
        })
        .boxed()
}

pub(super) fn suback(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let properties = packet_properties(PacketType::Suback, version);
    let codes = vec(reason_code(PacketType::Suback, version), 0..4);
    (packet_id(), properties, codes)
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::Suback(Suback {
                packet_id,
                properties,
                reason_codes,
            })
        })
        .boxed()
}

pub(super) fn unsubscribe(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let properties = packet_properties(PacketType::Unsubscribe, version);
    (packet_id(), properties, vec(utf8_string(), 1..4))
        .prop_map(|(packet_id, properties, topic_filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                topic_filters,
            })
        })
        .boxed()
}

pub(super) fn unsuback(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let properties = packet_properties(PacketType::Unsuback, version);
    let count = match version {
        ProtocolVersion::V311 => 0..1,
        ProtocolVersion::V5 => 0..4,
    };
    let codes = vec(
        reason_code(PacketType::Unsuback, ProtocolVersion::V5),
        count,
    );
    (packet_id(), properties, codes)
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::Unsuback(Unsuback {
                packet_id,
                properties,
                reason_codes,
            })
        })
        .boxed()
}

pub(super) fn disconnect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let code = reason_code(PacketType::Disconnect, version);
    let properties = packet_properties(PacketType::Disconnect, version);
    (code, properties)
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
        .boxed()
}

/// AUTH exists in 5.0 only.
pub(super) fn auth() -> BoxedStrategy<Packet> {
    let version = ProtocolVersion::V5;
    let code = reason_code(PacketType::Auth, version);
    let properties = packet_properties(PacketType::Auth, version);
    (code, properties)
        .prop_map(|(reason_code, properties)| {
            Packet::Auth(Auth {
                reason_code,
                properties,
            })
        })
        .boxed()
}

/// Any packet valid in `version`.
pub(super) fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut choices = vec![
        connect(version),
        connack(version),
        publish(version),
        publish_ack(PacketType::Puback, version),
        publish_ack(PacketType::Pubrec, version),
        publish_ack(PacketType::Pubrel, version),
        publish_ack(PacketType::Pubcomp, version),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::Pingreq).boxed(),
        Just(Packet::Pingresp).boxed(),
        disconnect(version),
    ];
    if version == ProtocolVersion::V5 {
        choices.push(auth());
    }
    proptest::strategy::Union::new(choices).boxed()
}
