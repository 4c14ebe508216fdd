//! Byte sequences written out by hand from the layouts and examples of the spec, decoded and
//! encoded back.

use std::num::NonZeroU16;

use bytes::Bytes;

use super::{decode_bytes, encode_packet, packet_id, string};
use crate::{
    Auth, Binary, Connack, Connect, Disconnect, Packet, PayloadFormat, Properties, ProtocolVersion,
    Publish, PublishAck, QoS, ReasonCode, RetainHandling, Suback, Subscribe, Subscription,
    SubscriptionId, SubscriptionOptions, Unsuback, Unsubscribe, UserProperty, Will,
};

use ProtocolVersion::{V311, V5};

/// Checks that `bytes` decode to `expected` and that `expected` encodes to `bytes`.
fn assert_both_ways(bytes: &[u8], version: ProtocolVersion, expected: Packet) {
    assert_eq!(decode_bytes(bytes, version), Ok(expected.clone()));
    assert_eq!(
        encode_packet(&expected, version),
        Bytes::copy_from_slice(bytes)
    );
}

fn binary(bytes: &[u8]) -> Binary {
    Binary::try_from(bytes).unwrap()
}

#[test]
fn connect_v311_with_will_user_name_and_password() {
    let bytes = [
        &b"\x10\x26"[..],
        b"\x00\x04MQTT\x04",
        b"\xce",     // user name, password, will QoS 1, will, clean session
        b"\x00\x3c", // keep alive 60
        b"\x00\x06client",
        b"\x00\x03w/t\x00\x03bye",
        b"\x00\x04user\x00\x02pw",
    ]
    .concat();
    let expected = Connect {
        protocol_version: V311,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::default(),
        client_id: string("client"),
        will: Some(Will {
            properties: Properties::default(),
            topic: string("w/t"),
            payload: binary(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        user_name: Some(string("user")),
        password: Some(binary(b"pw")),
    };
    assert_both_ways(&bytes, V311, Packet::Connect(Box::new(expected)));
}

/// The variable header of the example in MQTT 5.0 section 3.1.2.12, with a payload after it.
#[test]
fn connect_v5_as_in_the_spec_example() {
    let bytes = [
        &b"\x10\x25"[..],
        b"\x00\x04MQTT\x05\xce\x00\x0a",
        b"\x05\x11\x00\x00\x00\x0a", // properties: session expiry interval 10
        b"\x00\x01c",
        b"\x05\x18\x00\x00\x00\x05", // will properties: will delay interval 5
        b"\x00\x01t\x00\x01x",
        b"\x00\x01u\x00\x01p",
    ]
    .concat();
    let expected = Connect {
        protocol_version: V5,
        clean_start: true,
        keep_alive: 10,
        properties: Properties {
            session_expiry_interval: Some(10),
            ..Properties::default()
        },
        client_id: string("c"),
        will: Some(Will {
            properties: Properties {
                will_delay_interval: Some(5),
                ..Properties::default()
            },
            topic: string("t"),
            payload: binary(b"x"),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        user_name: Some(string("u")),
        password: Some(binary(b"p")),
    };
    assert_both_ways(&bytes, V5, Packet::Connect(Box::new(expected)));
}

#[test]
fn connect_v5_allows_a_password_without_user_name() {
    let bytes = b"\x10\x12\x00\x04MQTT\x05\x40\x00\x00\x00\x00\x01c\x00\x02pw";
    let Packet::Connect(connect) = decode_bytes(bytes, V5).unwrap() else {
        panic!()
    };
    assert_eq!(connect.user_name, None);
    assert_eq!(connect.password, Some(binary(b"pw")));
}

#[test]
fn connack_v311_maps_return_codes_to_reason_codes() {
    let accepted = Connack {
        session_present: true,
        ..Connack::default()
    };
    assert_both_ways(b"\x20\x02\x01\x00", V311, Packet::Connack(accepted));
    let expected = [
        (1, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
        (2, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        (3, ReasonCode::SERVER_UNAVAILABLE),
        (4, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        (5, ReasonCode::NOT_AUTHORIZED),
    ];
    for (return_code, reason_code) in expected {
        let connack = Connack {
            reason_code,
            ..Connack::default()
        };
        assert_both_ways(&[0x20, 2, 0, return_code], V311, Packet::Connack(connack));
    }
}

#[test]
fn connack_v5_with_capabilities() {
    let bytes = b"\x20\x0a\x00\x00\x07\x22\x00\x0a\x24\x01\x25\x00";
    let expected = Connack {
        session_present: false,
        reason_code: ReasonCode::SUCCESS,
        properties: Properties {
            topic_alias_maximum: Some(10),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            ..Properties::default()
        },
    };
    assert_both_ways(bytes, V5, Packet::Connack(expected));
}

#[test]
fn publish_qos_1_with_properties() {
    let bytes = [
        &b"\x33\x1b"[..], // PUBLISH, QoS 1, retain
        b"\x00\x03a/b",
        b"\x00\x0a",             // packet identifier 10
        b"\x11",                 // 17 bytes of properties, in identifier order:
        b"\x01\x01",             // payload format indicator: UTF-8
        b"\x02\x00\x00\x00\x3c", // message expiry interval 60
        b"\x0b\x80\x01",         // subscription identifier 128
        b"\x26\x00\x01k\x00\x01v",
        b"hi",
    ]
    .concat();
    let expected = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic_name: string("a/b"),
        packet_id: Some(packet_id(10)),
        properties: Properties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(60),
            subscription_identifiers: vec![SubscriptionId::new(128).unwrap()],
            user_properties: vec![UserProperty {
                name: string("k"),
                value: string("v"),
            }],
            ..Properties::default()
        },
        payload: Bytes::from_static(b"hi"),
    };
    assert_both_ways(&bytes, V5, Packet::Publish(expected));
}

#[test]
fn publish_properties_decode_in_any_order() {
    let bytes = b"\x30\x0e\x00\x01t\x0a\x26\x00\x01k\x00\x01v\x23\x00\x07";
    let Packet::Publish(publish) = decode_bytes(bytes, V5).unwrap() else {
        panic!()
    };
    assert_eq!(publish.properties.topic_alias, NonZeroU16::new(7));
    assert_eq!(publish.properties.user_properties.len(), 1);
    assert!(publish.payload.is_empty());
}

#[test]
fn publish_may_carry_several_subscription_identifiers() {
    let bytes = b"\x30\x0a\x00\x01t\x04\x0b\x01\x0b\x02pl";
    let Packet::Publish(publish) = decode_bytes(bytes, V5).unwrap() else {
        panic!()
    };
    let ids: Vec<u32> = publish
        .properties
        .subscription_identifiers
        .iter()
        .map(|id| id.get())
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(&publish.payload[..], b"pl");
}

/// The string example of MQTT 5.0 section 1.5.4 (and 3.1.1 section 1.5.3): "A𪛔".
#[test]
fn publish_topic_with_a_four_byte_character() {
    let bytes = b"\x30\x07\x00\x05\x41\xf0\xaa\x9b\x94";
    let expected = Publish {
        topic_name: string("A\u{2a6d4}"),
        ..Publish::default()
    };
    assert_both_ways(bytes, V311, Packet::Publish(expected));
}

#[test]
fn publish_qos_2_dup_v311() {
    let bytes = b"\x3c\x08\x00\x01t\x12\x34abc";
    let expected = Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        topic_name: string("t"),
        packet_id: Some(packet_id(0x1234)),
        payload: Bytes::from_static(b"abc"),
        ..Publish::default()
    };
    assert_both_ways(bytes, V311, Packet::Publish(expected));
}

#[test]
fn subscribe_v311() {
    let bytes = b"\x82\x08\x00\x0a\x00\x03a/b\x01";
    let expected = Subscribe {
        packet_id: packet_id(10),
        properties: Properties::default(),
        subscriptions: vec![Subscription {
            topic_filter: string("a/b"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
        }],
    };
    assert_both_ways(bytes, V311, Packet::Subscribe(expected));
}

#[test]
fn subscribe_v5_with_options() {
    let bytes = [
        &b"\x82\x11\x00\x01"[..],
        b"\x02\x0b\x01",    // subscription identifier 1
        b"\x00\x03a/+\x2d", // QoS 1, no local, retain as published, retain handling 2
        b"\x00\x03b/#\x02",
    ]
    .concat();
    let expected = Subscribe {
        packet_id: packet_id(1),
        properties: Properties {
            subscription_identifiers: vec![SubscriptionId::new(1).unwrap()],
            ..Properties::default()
        },
        subscriptions: vec![
            Subscription {
                topic_filter: string("a/+"),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            Subscription {
                topic_filter: string("b/#"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..SubscriptionOptions::default()
                },
            },
        ],
    };
    assert_both_ways(&bytes, V5, Packet::Subscribe(expected));
}

#[test]
fn suback_in_both_versions() {
    let expected = Suback {
        packet_id: packet_id(10),
        properties: Properties::default(),
        reason_codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
    };
    assert_both_ways(
        b"\x90\x04\x00\x0a\x01\x80",
        V311,
        Packet::Suback(expected.clone()),
    );
    assert_both_ways(
        b"\x90\x05\x00\x0a\x00\x01\x80",
        V5,
        Packet::Suback(expected),
    );
}

#[test]
fn unsubscribe_and_unsuback() {
    let unsubscribe = Unsubscribe {
        packet_id: packet_id(2),
        properties: Properties::default(),
        topic_filters: vec![string("a")],
    };
    let bytes = b"\xa2\x05\x00\x02\x00\x01a";
    assert_both_ways(bytes, V311, Packet::Unsubscribe(unsubscribe.clone()));
    let bytes = b"\xa2\x06\x00\x02\x00\x00\x01a";
    assert_both_ways(bytes, V5, Packet::Unsubscribe(unsubscribe));
    let unsuback = Unsuback {
        packet_id: packet_id(2),
        properties: Properties::default(),
        reason_codes: vec![],
    };
    assert_both_ways(
        b"\xb0\x02\x00\x02",
        V311,
        Packet::Unsuback(unsuback.clone()),
    );
    let unsuback = Unsuback {
        reason_codes: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
        ..unsuback
    };
    assert_both_ways(b"\xb0\x04\x00\x02\x00\x11", V5, Packet::Unsuback(unsuback));
}

#[test]
fn publish_acks_in_their_shortest_forms() {
    let ack = PublishAck::new(packet_id(1));
    assert_both_ways(b"\x40\x02\x00\x01", V311, Packet::Puback(ack.clone()));
    assert_both_ways(b"\x50\x02\x00\x01", V5, Packet::Pubrec(ack.clone()));
    assert_both_ways(b"\x62\x02\x00\x01", V5, Packet::Pubrel(ack.clone()));
    assert_both_ways(b"\x70\x02\x00\x01", V311, Packet::Pubcomp(ack.clone()));
    let no_subscribers = PublishAck {
        reason_code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..ack.clone()
    };
    assert_both_ways(b"\x40\x03\x00\x01\x10", V5, Packet::Puback(no_subscribers));
    let with_reason = PublishAck {
        reason_code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        properties: Properties {
            reason_string: Some(string("?")),
            ..Properties::default()
        },
        ..ack.clone()
    };
    let bytes = b"\x70\x08\x00\x01\x92\x04\x1f\x00\x01?";
    assert_both_ways(bytes, V5, Packet::Pubcomp(with_reason));
    // The longer forms a sender may choose decode to the same values.
    assert_eq!(
        decode_bytes(b"\x40\x03\x00\x01\x00", V5),
        Ok(Packet::Puback(ack.clone()))
    );
    assert_eq!(
        decode_bytes(b"\x40\x04\x00\x01\x00\x00", V5),
        Ok(Packet::Puback(ack))
    );
}

#[test]
fn ping_disconnect_and_auth() {
    assert_both_ways(b"\xc0\x00", V311, Packet::Pingreq);
    assert_both_ways(b"\xd0\x00", V5, Packet::Pingresp);
    assert_both_ways(b"\xe0\x00", V311, Packet::Disconnect(Disconnect::default()));
    assert_both_ways(b"\xe0\x00", V5, Packet::Disconnect(Disconnect::default()));
    let taken_over = Disconnect {
        reason_code: ReasonCode::SESSION_TAKEN_OVER,
        properties: Properties::default(),
    };
    assert_both_ways(b"\xe0\x01\x8e", V5, Packet::Disconnect(taken_over));
    assert_both_ways(b"\xf0\x00", V5, Packet::Auth(Auth::default()));
    let auth = Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(string("SCRAM")),
            authentication_data: Some(binary(b"\x01\x02")),
            ..Properties::default()
        },
    };
    let bytes = b"\xf0\x0f\x18\x0d\x15\x00\x05SCRAM\x16\x00\x02\x01\x02";
    assert_both_ways(bytes, V5, Packet::Auth(auth));
    // AUTH writes a Property Length with any Reason Code, and reads one without.
    let re_authenticate = Auth {
        reason_code: ReasonCode::RE_AUTHENTICATE,
        properties: Properties::default(),
    };
    let packet = Packet::Auth(re_authenticate);
    assert_both_ways(b"\xf0\x02\x19\x00", V5, packet.clone());
    assert_eq!(decode_bytes(b"\xf0\x01\x19", V5), Ok(packet));
}

/// A QoS 0 PUBLISH with topic "t" whose Remaining Length is `remaining_length`.
fn publish_of_remaining_length(remaining_length: usize) -> Packet {
    Packet::Publish(Publish {
        topic_name: string("t"),
        payload: Bytes::from(vec![0x5a; remaining_length - 3]),
        ..Publish::default()
    })
}

/// The boundaries of the table in MQTT 5.0 section 1.5.5 (3.1.1 section 2.2.3).
#[test]
fn remaining_length_boundaries() {
    let cases: [(usize, &[u8]); 6] = [
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
    ];
    for (remaining_length, length_bytes) in cases {
        let packet = publish_of_remaining_length(remaining_length);
        // 3.1.1, whose PUBLISH has no Property Length to count.
        let bytes = encode_packet(&packet, V311);
        assert_eq!(bytes[0], 0x30);
        assert_eq!(&bytes[1..1 + length_bytes.len()], length_bytes);
        assert_eq!(bytes.len(), 1 + length_bytes.len() + remaining_length);
        assert_eq!(decode_bytes(&bytes, V311), Ok(packet));
    }
}

/// The fuzzer's seeds (`fuzz/seeds/decode`) are whole streams of valid packets after their
/// control byte, so that fuzzing starts past the fixed header.
#[test]
fn fuzz_seeds_are_valid_packet_streams() {
    let seeds: [&[u8]; 4] = [
        include_bytes!("../../fuzz/seeds/decode/session-v311"),
        include_bytes!("../../fuzz/seeds/decode/server-v311"),
        include_bytes!("../../fuzz/seeds/decode/session-v5"),
        include_bytes!("../../fuzz/seeds/decode/server-v5"),
    ];
    for seed in seeds {
        let version = if seed[0] & 1 == 0 { V311 } else { V5 };
        let mut buf = bytes::BytesMut::from(&seed[1..]);
        let mut count = 0;
        while crate::decode(&mut buf, version, crate::PACKET_SIZE_MAX)
            .unwrap()
            .is_some()
        {
            count += 1;
        }
        assert!(
            buf.is_empty() && count >= 4,
            "{count} packets, {} bytes left",
            buf.len()
        );
    }
}
