//! One or more inputs for every [`DecodeError`], and the Reason Code each maps to.

use bytes::BytesMut;

use super::{decode_bytes, with_header};
use crate::{
    decode, DecodeError, PacketType, PropertyContext, PropertyId, ProtocolVersion, ReasonCode,
    PACKET_SIZE_MAX,
};

use DecodeError as E;
use ProtocolVersion::{V311, V5};

/// Decodes `bytes` in `version`, expecting an error.
fn error(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    decode_bytes(bytes, version).unwrap_err()
}

/// A CONNECT of `level` with `flags`, keep alive 0, then `rest` (properties in 5.0, payload).
fn connect(level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let body = [&b"\x00\x04MQTT"[..], &[level, flags, 0, 0], rest].concat();
    with_header(0x10, &body)
}

#[test]
fn reserved_packet_types_are_unknown() {
    let unknown = |packet_type, version| E::PacketTypeUnknown {
        packet_type,
        version,
    };
    assert_eq!(error(b"\x00\x00", V5), unknown(0, V5));
    assert_eq!(error(b"\x00\x00", V311), unknown(0, V311));
    assert_eq!(error(b"\xf0\x00", V311), unknown(15, V311));
}

#[test]
fn errors_in_the_first_byte_come_before_the_rest_arrives() {
    let mut buf = BytesMut::from(&b"\x00"[..]);
    assert!(decode(&mut buf, V5, PACKET_SIZE_MAX).is_err());
    let mut buf = BytesMut::from(&b"\x63"[..]);
    assert!(decode(&mut buf, V5, PACKET_SIZE_MAX).is_err());
}

#[test]
fn fixed_flags_must_match_the_packet_type() {
    let flags = |packet_type, flags| E::FlagsInvalid { packet_type, flags };
    assert_eq!(error(b"\x60\x02\x00\x01", V5), flags(PacketType::Pubrel, 0));
    assert_eq!(
        error(b"\x80\x06\x00\x01\x00\x01a\x00", V311),
        flags(PacketType::Subscribe, 0)
    );
    assert_eq!(error(b"\xc1\x00", V311), flags(PacketType::Pingreq, 1));
    assert_eq!(error(b"\x12\x00", V5), flags(PacketType::Connect, 2));
    // DUP at QoS 0 [MQTT-3.3.1-2].
    assert_eq!(
        error(b"\x38\x03\x00\x01t", V311),
        flags(PacketType::Publish, 8)
    );
}

#[test]
fn remaining_length_over_four_bytes_or_too_long_is_malformed() {
    assert_eq!(
        error(b"\x30\xff\xff\xff\xff\x01", V5),
        E::RemainingLengthMalformed
    );
    assert_eq!(error(b"\xc0\x80\x00", V311), E::RemainingLengthMalformed);
}

#[test]
fn packet_over_the_limit_is_refused_from_its_header() {
    let mut buf = BytesMut::from(&b"\x30\x80\x01"[..]);
    assert_eq!(
        decode(&mut buf, V5, 130),
        Err(E::PacketTooLarge {
            size: 131,
            size_max: 130
        })
    );
}

#[test]
fn fields_past_the_remaining_length_are_truncated() {
    assert_eq!(
        error(b"\x40\x01\x00", V5),
        E::Truncated {
            field: "packet identifier",
            need: 2,
            have: 1
        }
    );
    assert_eq!(
        error(b"\x30\x03\x00\x05a", V311),
        E::Truncated {
            field: "topic name",
            need: 5,
            have: 1
        }
    );
    // A Property Length beyond the packet.
    assert_eq!(
        error(b"\x30\x05\x00\x01t\x05\x01", V5),
        E::Truncated {
            field: "properties",
            need: 5,
            have: 1
        }
    );
    // A Variable Byte Integer cut by the end of the packet.
    assert_eq!(
        error(b"\x30\x04\x00\x01t\x80", V5),
        E::Truncated {
            field: "property length",
            need: 2,
            have: 1
        }
    );
}

#[test]
fn bytes_after_the_last_field_are_trailing() {
    let trailing = |packet_type, count| E::TrailingBytes { packet_type, count };
    assert_eq!(error(b"\xc0\x01\x00", V5), trailing(PacketType::Pingreq, 1));
    assert_eq!(
        error(b"\x40\x03\x00\x01\x00", V311),
        trailing(PacketType::Puback, 1)
    );
    assert_eq!(
        error(b"\xe0\x01\x00", V311),
        trailing(PacketType::Disconnect, 1)
    );
    assert_eq!(
        error(b"\x20\x03\x00\x00\x00", V311),
        trailing(PacketType::Connack, 1)
    );
}

#[test]
fn malformed_variable_integers_inside_a_packet() {
    assert_eq!(
        error(b"\x30\x05\x00\x01t\x80\x00", V5),
        E::VariableIntegerMalformed {
            field: "property length"
        }
    );
    assert_eq!(
        error(b"\x30\x06\x00\x01t\x02\x0b\x80", V5),
        E::Truncated {
            field: "Subscription Identifier",
            need: 2,
            have: 1
        }
    );
}

#[test]
fn strings_must_be_utf8() {
    let not_utf8 = |valid_up_to| E::StringNotUtf8 {
        field: "topic name",
        valid_up_to,
    };
    assert_eq!(error(b"\x30\x04\x00\x02\xc3\x28", V311), not_utf8(0));
    // An encoded surrogate, U+D800 [MQTT-1.5.4-1].
    assert_eq!(error(b"\x30\x06\x00\x04a\xed\xa0\x80", V5), not_utf8(1));
}

#[test]
fn strings_may_not_contain_null() {
    let null = E::StringContainsNull {
        field: "topic name",
    };
    assert_eq!(error(b"\x30\x04\x00\x02a\x00", V311), null);
    let user_property = b"\x30\x0b\x00\x01t\x07\x26\x00\x01k\x00\x01\x00";
    assert_eq!(
        error(user_property, V5),
        E::StringContainsNull {
            field: "User Property"
        }
    );
}

#[test]
fn qos_3_is_malformed_in_publish_and_will() {
    assert_eq!(
        error(b"\x36\x05\x00\x01t\x00\x01", V5),
        E::QoSInvalid {
            field: "PUBLISH QoS"
        }
    );
    let will_qos_3 = connect(4, 0b0001_1100, b"\x00\x01c\x00\x01t\x00\x00");
    assert_eq!(error(&will_qos_3, V5), E::QoSInvalid { field: "will QoS" });
    let requested_qos_3 = b"\x82\x06\x00\x01\x00\x01a\x03";
    assert_eq!(
        error(requested_qos_3, V311),
        E::QoSInvalid {
            field: "requested QoS"
        }
    );
}

#[test]
fn reserved_bits_must_be_zero() {
    let reserved = |field, value| E::ReservedBitsSet { field, value };
    let connect_flags = connect(4, 0b0000_0011, b"\x00\x01c");
    assert_eq!(error(&connect_flags, V311), reserved("connect flags", 3));
    let connack_flags = b"\x20\x02\x02\x00";
    assert_eq!(
        error(connack_flags, V311),
        reserved("connect acknowledge flags", 2)
    );
    let options_v5 = b"\x82\x07\x00\x01\x00\x00\x01a\x40";
    assert_eq!(
        error(options_v5, V5),
        reserved("subscription options", 0x40)
    );
    let options_v311 = b"\x82\x06\x00\x01\x00\x01a\x04";
    assert_eq!(error(options_v311, V311), reserved("requested QoS", 0x04));
}

#[test]
fn protocol_name_must_be_mqtt() {
    let mqtt_3_1 = with_header(0x10, b"\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c");
    assert_eq!(
        error(&mqtt_3_1, V311),
        E::ProtocolNameInvalid {
            name: "MQIsdp".into()
        }
    );
}

#[test]
fn protocol_levels_other_than_4_and_5_are_unsupported() {
    for level in [0, 3, 6, 0x84] {
        let bytes = connect(level, 0b10, b"\x00\x01c");
        // CONNECT carries its own version: the one passed in does not matter.
        for version in [V311, V5] {
            assert_eq!(
                error(&bytes, version),
                E::ProtocolVersionUnsupported { level }
            );
        }
    }
}

#[test]
fn will_qos_and_retain_need_the_will_flag() {
    for flags in [0b0010_0000, 0b0000_1000, 0b0001_0000] {
        let bytes = connect(5, flags, b"\x00\x00\x01c");
        assert_eq!(error(&bytes, V5), E::WillFlagsInvalid { flags });
    }
}

#[test]
fn password_without_user_name_is_malformed_in_3_1_1_only() {
    let bytes = connect(4, 0b0100_0000, b"\x00\x01c\x00\x01p");
    assert_eq!(
        error(&bytes, V311),
        E::PasswordWithoutUserName { flags: 0x40 }
    );
}

#[test]
fn packet_identifier_zero_is_refused() {
    let zero = |packet_type| E::PacketIdZero { packet_type };
    assert_eq!(error(b"\x40\x02\x00\x00", V311), zero(PacketType::Puback));
    assert_eq!(
        error(b"\x32\x05\x00\x01t\x00\x00", V311),
        zero(PacketType::Publish)
    );
    assert_eq!(
        error(b"\x82\x06\x00\x00\x00\x01a\x00", V311),
        zero(PacketType::Subscribe)
    );
    assert_eq!(error(b"\xb0\x02\x00\x00", V311), zero(PacketType::Unsuback));
}

#[test]
fn subscribe_and_unsubscribe_need_a_topic_filter() {
    let missing = |packet_type| E::TopicFiltersMissing { packet_type };
    assert_eq!(
        error(b"\x82\x02\x00\x01", V311),
        missing(PacketType::Subscribe)
    );
    assert_eq!(
        error(b"\x82\x03\x00\x01\x00", V5),
        missing(PacketType::Subscribe)
    );
    assert_eq!(
        error(b"\xa2\x03\x00\x01\x00", V5),
        missing(PacketType::Unsubscribe)
    );
}

#[test]
fn reserved_subscription_option_values_are_protocol_errors() {
    let invalid = |option, value| E::SubscriptionOptionInvalid { option, value };
    let qos_3 = b"\x82\x07\x00\x01\x00\x00\x01a\x03";
    assert_eq!(error(qos_3, V5), invalid("maximum QoS", 3));
    let retain_handling_3 = b"\x82\x07\x00\x01\x00\x00\x01a\x30";
    assert_eq!(error(retain_handling_3, V5), invalid("retain handling", 3));
}

#[test]
fn unknown_property_identifiers_are_refused() {
    assert_eq!(
        error(b"\x30\x06\x00\x01t\x02\x04\x00", V5),
        E::PropertyUnknown { id: 4 }
    );
    // Identifiers are Variable Byte Integers: 128 takes two bytes and is undefined.
    let two_bytes = b"\x30\x07\x00\x01t\x03\x80\x01\x00";
    assert_eq!(error(two_bytes, V5), E::PropertyUnknown { id: 128 });
}

#[test]
fn properties_are_refused_where_the_spec_does_not_allow_them() {
    let not_allowed = |property, context| E::PropertyNotAllowed { property, context };
    let session_expiry = b"\x30\x09\x00\x01t\x05\x11\x00\x00\x00\x01";
    assert_eq!(
        error(session_expiry, V5),
        not_allowed(
            PropertyId::SessionExpiryInterval,
            PropertyContext::Packet(PacketType::Publish)
        )
    );
    let will_reason_string = connect(
        5,
        0b0000_0110,
        b"\x00\x00\x01c\x04\x1f\x00\x01r\x00\x01t\x00\x00",
    );
    assert_eq!(
        error(&will_reason_string, V5),
        not_allowed(PropertyId::ReasonString, PropertyContext::Will)
    );
    let will_delay_in_connect = connect(5, 0b10, b"\x05\x18\x00\x00\x00\x01\x00\x01c");
    assert_eq!(
        error(&will_delay_in_connect, V5),
        not_allowed(
            PropertyId::WillDelayInterval,
            PropertyContext::Packet(PacketType::Connect)
        )
    );
}

#[test]
fn properties_that_appear_once_may_not_repeat() {
    let duplicate = |property| E::PropertyDuplicate { property };
    let expiry_twice = b"\x30\x0e\x00\x01t\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02";
    assert_eq!(
        error(expiry_twice, V5),
        duplicate(PropertyId::MessageExpiryInterval)
    );
    let two_subscription_ids = b"\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00";
    assert_eq!(
        error(two_subscription_ids, V5),
        duplicate(PropertyId::SubscriptionIdentifier)
    );
}

#[test]
fn property_values_the_spec_rules_out() {
    let invalid = |property, value| E::PropertyValueInvalid { property, value };
    let receive_maximum_0 = connect(5, 0b10, b"\x03\x21\x00\x00\x00\x01c");
    assert_eq!(
        error(&receive_maximum_0, V5),
        invalid(PropertyId::ReceiveMaximum, 0)
    );
    let packet_size_0 = connect(5, 0b10, b"\x05\x27\x00\x00\x00\x00\x00\x01c");
    assert_eq!(
        error(&packet_size_0, V5),
        invalid(PropertyId::MaximumPacketSize, 0)
    );
    let request_problem_2 = connect(5, 0b10, b"\x02\x17\x02\x00\x01c");
    assert_eq!(
        error(&request_problem_2, V5),
        invalid(PropertyId::RequestProblemInformation, 2)
    );
    let maximum_qos_2 = b"\x20\x05\x00\x00\x02\x24\x02";
    assert_eq!(error(maximum_qos_2, V5), invalid(PropertyId::MaximumQoS, 2));
    let payload_format_2 = b"\x30\x06\x00\x01t\x02\x01\x02";
    assert_eq!(
        error(payload_format_2, V5),
        invalid(PropertyId::PayloadFormatIndicator, 2)
    );
    let topic_alias_0 = b"\x30\x07\x00\x01t\x03\x23\x00\x00";
    assert_eq!(error(topic_alias_0, V5), invalid(PropertyId::TopicAlias, 0));
    let subscription_id_0 = b"\x30\x06\x00\x01t\x02\x0b\x00";
    assert_eq!(
        error(subscription_id_0, V5),
        invalid(PropertyId::SubscriptionIdentifier, 0)
    );
}

#[test]
fn authentication_data_needs_a_method() {
    let bytes = b"\xf0\x06\x18\x04\x16\x00\x01x";
    assert_eq!(error(bytes, V5), E::AuthenticationDataWithoutMethod);
}

#[test]
fn reason_codes_foreign_to_the_packet_are_refused() {
    let invalid = |packet_type, code| E::ReasonCodeInvalid { packet_type, code };
    assert_eq!(
        error(b"\x40\x03\x00\x01\x92", V5),
        invalid(PacketType::Puback, 0x92)
    );
    assert_eq!(
        error(b"\xe0\x01\x01", V5),
        invalid(PacketType::Disconnect, 0x01)
    );
    assert_eq!(
        error(b"\xb0\x04\x00\x01\x00\x10", V5),
        invalid(PacketType::Unsuback, 0x10)
    );
    assert_eq!(error(b"\xf0\x01\x80", V5), invalid(PacketType::Auth, 0x80));
    assert_eq!(
        error(b"\x20\x03\x00\x04\x00", V5),
        invalid(PacketType::Connack, 0x04)
    );
    assert_eq!(
        error(b"\x20\x02\x00\x06", V311),
        invalid(PacketType::Connack, 6)
    );
    assert_eq!(
        error(b"\x90\x03\x00\x01\x87", V311),
        invalid(PacketType::Suback, 0x87)
    );
}

#[test]
fn session_present_only_with_success() {
    assert_eq!(
        error(b"\x20\x02\x01\x05", V311),
        E::SessionPresentWithError { code: 5 }
    );
    assert_eq!(
        error(b"\x20\x03\x01\x87\x00", V5),
        E::SessionPresentWithError { code: 0x87 }
    );
}

#[test]
fn each_error_maps_to_the_reason_code_of_its_kind() {
    let packet_type = PacketType::Publish;
    let property = PropertyId::TopicAlias;
    let context = PropertyContext::Packet(packet_type);
    let cases = [
        (error(b"\x00\x00", V5), 0x81),
        (
            E::FlagsInvalid {
                packet_type,
                flags: 1,
            },
            0x81,
        ),
        (E::RemainingLengthMalformed, 0x81),
        (
            E::Truncated {
                field: "x",
                need: 2,
                have: 1,
            },
            0x81,
        ),
        (E::StringContainsNull { field: "x" }, 0x81),
        (E::PropertyUnknown { id: 4 }, 0x81),
        (E::PropertyNotAllowed { property, context }, 0x81),
        (E::PropertyDuplicate { property }, 0x82),
        (E::PropertyValueInvalid { property, value: 0 }, 0x82),
        (E::PacketIdZero { packet_type }, 0x82),
        (E::TopicFiltersMissing { packet_type }, 0x82),
        (E::ProtocolVersionUnsupported { level: 3 }, 0x84),
        (
            E::ProtocolNameInvalid {
                name: "MQIsdp".into(),
            },
            0x84,
        ),
        (
            E::PacketTooLarge {
                size: 10,
                size_max: 9,
            },
            0x95,
        ),
    ];
    for (error, code) in cases {
        assert_eq!(error.reason_code(), ReasonCode(code), "{error}");
        assert!(error.reason_code().is_allowed_in(PacketType::Connack));
        assert!(error.reason_code().is_allowed_in(PacketType::Disconnect) || code == 0x84);
    }
}
