//! Packets that [`encode`] refuses, appending nothing: what a version cannot carry and what
//! decoding would refuse.

use bytes::{Bytes, BytesMut};

use super::{packet_id, string};
use crate::{
    encode, encoded_len, Auth, Binary, Connack, Connect, EncodeError, Packet, PacketType,
    Properties, PropertyContext, PropertyId, ProtocolVersion, Publish, PublishAck, QoS, ReasonCode,
    Suback, Subscribe, Subscription, SubscriptionId, SubscriptionOptions, Unsuback, Unsubscribe,
    Will,
};

use ProtocolVersion::{V311, V5};

/// Encodes `packet` expecting `expected`, and checks that nothing was written.
fn assert_refused(packet: Packet, version: ProtocolVersion, expected: EncodeError) {
    let mut buf = BytesMut::from(&b"kept"[..]);
    assert_eq!(encode(&packet, version, &mut buf), Err(expected.clone()));
    assert_eq!(&buf[..], b"kept");
    assert_eq!(encoded_len(&packet, version), Err(expected));
}

fn connect(version: ProtocolVersion) -> Connect {
    Connect {
        protocol_version: version,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        client_id: string("c"),
        will: None,
        user_name: None,
        password: None,
    }
}

fn with_reason_string() -> Properties {
    Properties {
        reason_string: Some(string("why")),
        ..Properties::default()
    }
}

#[test]
fn mqtt_5_fields_cannot_be_written_in_3_1_1() {
    let not_in = |packet_type, field| EncodeError::NotInVersion {
        packet_type,
        field,
        version: V311,
    };
    assert_refused(
        Packet::Auth(Auth::default()),
        V311,
        not_in(PacketType::Auth, "the packet"),
    );
    let ack = PublishAck {
        properties: with_reason_string(),
        ..PublishAck::new(packet_id(1))
    };
    assert_refused(
        Packet::Puback(ack),
        V311,
        not_in(PacketType::Puback, "properties"),
    );
    let will = Will {
        properties: Properties {
            will_delay_interval: Some(1),
            ..Properties::default()
        },
        ..Will::default()
    };
    let with_will = Connect {
        will: Some(will),
        ..connect(V311)
    };
    let field = "will properties";
    assert_refused(
        Packet::Connect(Box::new(with_will)),
        V311,
        not_in(PacketType::Connect, field),
    );
    let password_alone = Connect {
        password: Some(Binary::default()),
        ..connect(V311)
    };
    let field = "a password without a user name";
    assert_refused(
        Packet::Connect(Box::new(password_alone)),
        V311,
        not_in(PacketType::Connect, field),
    );
}

#[test]
fn mqtt_5_subscription_options_and_unsuback_codes_cannot_be_written_in_3_1_1() {
    let not_in = |packet_type, field| EncodeError::NotInVersion {
        packet_type,
        field,
        version: V311,
    };
    let no_local = Subscribe {
        packet_id: packet_id(1),
        properties: Properties::default(),
        subscriptions: vec![Subscription {
            topic_filter: string("a"),
            options: SubscriptionOptions {
                no_local: true,
                ..SubscriptionOptions::default()
            },
        }],
    };
    let field = "subscription options other than QoS";
    assert_refused(
        Packet::Subscribe(no_local),
        V311,
        not_in(PacketType::Subscribe, field),
    );
    let unsuback = Unsuback {
        packet_id: packet_id(1),
        properties: Properties::default(),
        reason_codes: vec![ReasonCode::SUCCESS],
    };
    let field = "reason codes";
    assert_refused(
        Packet::Unsuback(unsuback),
        V311,
        not_in(PacketType::Unsuback, field),
    );
}

#[test]
fn connect_is_written_in_its_own_version_only() {
    let expected = EncodeError::NotInVersion {
        packet_type: PacketType::Connect,
        field: "a CONNECT of another protocol version",
        version: V5,
    };
    assert_refused(Packet::Connect(Box::new(connect(V311))), V5, expected);
}

#[test]
fn reason_codes_must_fit_the_packet_and_version() {
    let not_allowed = |packet_type, code, version| EncodeError::ReasonCodeNotAllowed {
        packet_type,
        code: ReasonCode(code),
        version,
    };
    let ack = |code| PublishAck {
        reason_code: ReasonCode(code),
        ..PublishAck::new(packet_id(1))
    };
    assert_refused(
        Packet::Puback(ack(0x92)),
        V5,
        not_allowed(PacketType::Puback, 0x92, V5),
    );
    assert_refused(
        Packet::Pubrec(ack(0x10)),
        V311,
        not_allowed(PacketType::Pubrec, 0x10, V311),
    );
    let connack = Connack {
        reason_code: ReasonCode::PACKET_TOO_LARGE,
        ..Connack::default()
    };
    let expected = not_allowed(PacketType::Connack, 0x95, V311);
    assert_refused(Packet::Connack(connack), V311, expected);
    let suback = Suback {
        packet_id: packet_id(1),
        properties: Properties::default(),
        reason_codes: vec![ReasonCode::GRANTED_QOS_0, ReasonCode::QUOTA_EXCEEDED],
    };
    let expected = not_allowed(PacketType::Suback, 0x97, V311);
    assert_refused(Packet::Suback(suback), V311, expected);
}

#[test]
fn properties_must_be_allowed_where_they_are_written() {
    let publish = Publish {
        properties: Properties {
            session_expiry_interval: Some(1),
            ..Properties::default()
        },
        ..Publish::default()
    };
    let expected = EncodeError::PropertyNotAllowed {
        property: PropertyId::SessionExpiryInterval,
        context: PropertyContext::Packet(PacketType::Publish),
    };
    assert_refused(Packet::Publish(publish), V5, expected);
    let will = Will {
        properties: with_reason_string(),
        ..Will::default()
    };
    let with_will = Connect {
        will: Some(will),
        ..connect(V5)
    };
    let expected = EncodeError::PropertyNotAllowed {
        property: PropertyId::ReasonString,
        context: PropertyContext::Will,
    };
    assert_refused(Packet::Connect(Box::new(with_will)), V5, expected);
}

#[test]
fn property_rules_the_types_leave_open() {
    let id = |value| SubscriptionId::new(value).unwrap();
    let subscribe = Subscribe {
        packet_id: packet_id(1),
        properties: Properties {
            subscription_identifiers: vec![id(1), id(2)],
            ..Properties::default()
        },
        subscriptions: vec![Subscription::default()],
    };
    let expected = EncodeError::PropertyDuplicate {
        property: PropertyId::SubscriptionIdentifier,
    };
    assert_refused(Packet::Subscribe(subscribe), V5, expected);
    let connack = Connack {
        properties: Properties {
            maximum_qos: Some(QoS::ExactlyOnce),
            ..Properties::default()
        },
        ..Connack::default()
    };
    let expected = EncodeError::PropertyValueInvalid {
        property: PropertyId::MaximumQoS,
        value: 2,
    };
    assert_refused(Packet::Connack(connack), V5, expected);
    let auth = Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_data: Some(Binary::default()),
            ..Properties::default()
        },
    };
    assert_refused(
        Packet::Auth(auth),
        V5,
        EncodeError::AuthenticationDataWithoutMethod,
    );
}

#[test]
fn publish_packet_identifier_follows_qos() {
    let publish = |qos, dup, id: Option<u16>| Publish {
        dup,
        qos,
        packet_id: id.map(packet_id),
        payload: Bytes::from_static(b"x"),
        ..Publish::default()
    };
    let cases = [
        (QoS::AtMostOnce, false, Some(1)),
        (QoS::AtMostOnce, true, None),
        (QoS::AtLeastOnce, false, None),
        (QoS::ExactlyOnce, true, None),
    ];
    for (qos, dup, packet_id) in cases {
        let expected = EncodeError::PublishHeaderInvalid {
            qos,
            dup,
            packet_id,
        };
        assert_refused(Packet::Publish(publish(qos, dup, packet_id)), V5, expected);
    }
}

#[test]
fn subscribe_and_unsubscribe_need_a_topic_filter() {
    let subscribe = Subscribe {
        packet_id: packet_id(1),
        properties: Properties::default(),
        subscriptions: vec![],
    };
    let expected = |packet_type| EncodeError::TopicFiltersMissing { packet_type };
    assert_refused(
        Packet::Subscribe(subscribe),
        V311,
        expected(PacketType::Subscribe),
    );
    let unsubscribe = Unsubscribe {
        packet_id: packet_id(1),
        properties: Properties::default(),
        topic_filters: vec![],
    };
    assert_refused(
        Packet::Unsubscribe(unsubscribe),
        V5,
        expected(PacketType::Unsubscribe),
    );
}

#[test]
fn session_present_only_with_success() {
    let connack = Connack {
        session_present: true,
        reason_code: ReasonCode::NOT_AUTHORIZED,
        properties: Properties::default(),
    };
    let expected = EncodeError::SessionPresentWithError {
        code: ReasonCode::NOT_AUTHORIZED,
    };
    assert_refused(Packet::Connack(connack), V5, expected);
}

#[test]
fn strings_and_binaries_are_bounded_by_type() {
    assert!(crate::Utf8String::try_from("a\0b").is_err());
    assert!(crate::Utf8String::try_from("x".repeat(65_536)).is_err());
    assert!(crate::Utf8String::try_from("x".repeat(65_535)).is_ok());
    assert!(Binary::try_from(vec![0; 65_536]).is_err());
    assert!(Binary::try_from(vec![0; 65_535]).is_ok());
}
