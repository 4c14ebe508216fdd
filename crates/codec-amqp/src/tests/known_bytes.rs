//! Byte sequences written out by hand from the spec's layouts (and what RabbitMQ and pika send),
//! decoded and encoded back.

use bytes::{Bytes, BytesMut};

use super::{decode_all, encode, short};
use crate::method::{basic, connection, exchange};
use crate::{
    decode_protocol_header, BasicProperties, ContentHeader, Decimal, FieldTable, FieldValue, Frame,
    LongString, Method, PROTOCOL_HEADER,
};

/// A frame around `payload`: type, channel, size, payload, frame-end.
fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let size = u32::try_from(payload.len()).unwrap();
    [
        &[frame_type][..],
        &channel.to_be_bytes(),
        &size.to_be_bytes(),
        payload,
        &[0xce],
    ]
    .concat()
}

/// Checks that `bytes` decode to `expected` and that `expected` encodes to `bytes`.
fn assert_both_ways(bytes: &[u8], expected: Frame) {
    assert_eq!(decode_all(bytes, 0), vec![expected.clone()]);
    assert_eq!(encode(&expected), Bytes::copy_from_slice(bytes));
}

#[test]
fn protocol_header_is_amqp_0_9_1() {
    assert_eq!(&PROTOCOL_HEADER, b"AMQP\x00\x00\x09\x01");
    let mut buf = BytesMut::from(&b"AMQP\x00\x00\x09\x01\x01"[..]);
    assert_eq!(decode_protocol_header(&mut buf), Ok(Some(())));
    assert_eq!(&buf[..], b"\x01", "only the header is consumed");
}

#[test]
fn connection_start_as_rabbitmq_sends_it() {
    let inner_table = [&b"\x12publisher_confirms"[..], b"t\x01"].concat();
    let server_properties = [
        &0x3cu32.to_be_bytes()[..],
        b"\x0ccapabilities",
        b"F",
        &u32::try_from(inner_table.len()).unwrap().to_be_bytes(),
        &inner_table,
        b"\x07product",
        b"S\x00\x00\x00\x08RabbitMQ",
    ]
    .concat();
    let payload = [
        &b"\x00\x0a\x00\x0a"[..], // connection.start
        b"\x00\x09",              // version 0-9
        &server_properties,
        b"\x00\x00\x00\x0eAMQPLAIN PLAIN",
        b"\x00\x00\x00\x05en_US",
    ]
    .concat();
    assert_eq!(payload.len(), 97);
    let mut capabilities = FieldTable::new();
    capabilities.insert(short("publisher_confirms"), FieldValue::Bool(true));
    let mut properties = FieldTable::new();
    properties.insert(short("capabilities"), FieldValue::Table(capabilities));
    properties.insert(
        short("product"),
        FieldValue::LongString(LongString::from("RabbitMQ")),
    );
    let start = connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: properties,
        mechanisms: LongString::from("AMQPLAIN PLAIN"),
        locales: LongString::from("en_US"),
    };
    let expected = Frame::Method {
        channel: 0,
        method: start.into(),
    };
    assert_both_ways(&frame(1, 0, &payload), expected);
}

#[test]
fn connection_start_ok_as_pika_sends_it() {
    let payload = [
        &b"\x00\x0a\x00\x0b"[..], // connection.start-ok
        b"\x00\x00\x00\x11",      // client-properties: 17 bytes
        b"\x07productS\x00\x00\x00\x04pika",
        b"\x05PLAIN",
        b"\x00\x00\x00\x0c\x00guest\x00guest",
        b"\x05en_US",
    ]
    .concat();
    let mut client_properties = FieldTable::new();
    client_properties.insert(
        short("product"),
        FieldValue::LongString(LongString::from("pika")),
    );
    let start_ok = connection::StartOk {
        client_properties,
        mechanism: short("PLAIN"),
        response: LongString::from("\0guest\0guest"),
        locale: short("en_US"),
    };
    let expected = Frame::Method {
        channel: 0,
        method: start_ok.into(),
    };
    assert_both_ways(&frame(1, 0, &payload), expected);
}

#[test]
fn connection_tune_carries_limits_in_network_order() {
    let payload = b"\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x3c";
    let tune = connection::Tune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    };
    assert_both_ways(
        &frame(1, 0, payload),
        Frame::Method {
            channel: 0,
            method: tune.into(),
        },
    );
}

#[test]
fn basic_publish_packs_mandatory_and_immediate_into_one_octet() {
    let payload = b"\x00\x3c\x00\x28\x00\x00\x00\x05hello\x01";
    let publish = basic::Publish {
        reserved_1: 0,
        exchange: short(""),
        routing_key: short("hello"),
        mandatory: true,
        immediate: false,
    };
    assert_both_ways(
        &frame(1, 1, payload),
        Frame::Method {
            channel: 1,
            method: publish.into(),
        },
    );
}

#[test]
fn exchange_declare_packs_five_bits_then_starts_a_new_field() {
    // passive 0, durable 1, auto-delete 0, internal 0, no-wait 1: bits 1 and 4.
    let payload = b"\x00\x28\x00\x0a\x00\x00\x04logs\x05topic\x12\x00\x00\x00\x00";
    let declare = exchange::Declare {
        exchange: short("logs"),
        kind: short("topic"),
        durable: true,
        no_wait: true,
        ..Default::default()
    };
    assert_both_ways(
        &frame(1, 3, payload),
        Frame::Method {
            channel: 3,
            method: declare.into(),
        },
    );
}

#[test]
fn basic_nack_packs_multiple_and_requeue_after_the_delivery_tag() {
    let payload = b"\x00\x3c\x00\x78\x00\x00\x00\x00\x00\x00\x00\x2a\x03";
    let nack = basic::Nack {
        delivery_tag: 42,
        multiple: true,
        requeue: true,
    };
    assert_both_ways(
        &frame(1, 1, payload),
        Frame::Method {
            channel: 1,
            method: nack.into(),
        },
    );
}

#[test]
fn basic_deliver_ends_its_bit_run_before_the_exchange() {
    let payload = [
        &b"\x00\x3c\x00\x3c"[..],
        b"\x04ctag",
        &7u64.to_be_bytes(),
        b"\x01", // redelivered
        b"\x02ex",
        b"\x03key",
    ]
    .concat();
    let deliver = basic::Deliver {
        consumer_tag: short("ctag"),
        delivery_tag: 7,
        redelivered: true,
        exchange: short("ex"),
        routing_key: short("key"),
    };
    assert_both_ways(
        &frame(1, 2, &payload),
        Frame::Method {
            channel: 2,
            method: deliver.into(),
        },
    );
}

#[test]
fn content_header_sets_one_flag_per_present_property() {
    let payload = [
        &b"\x00\x3c\x00\x00"[..],
        &5u64.to_be_bytes(),
        b"\x90\x00", // content-type (bit 15) and delivery-mode (bit 12)
        b"\x0atext/plain",
        b"\x02",
    ]
    .concat();
    let properties = BasicProperties {
        content_type: Some(short("text/plain")),
        delivery_mode: Some(2),
        ..Default::default()
    };
    assert_eq!(properties.flags(), 0x9000);
    assert_both_ways(
        &frame(2, 1, &payload),
        Frame::Header {
            channel: 1,
            header: ContentHeader::new(5, properties),
        },
    );
}

#[test]
fn content_header_with_every_property_sets_bits_15_to_2() {
    let properties = BasicProperties {
        content_type: Some(short("a")),
        content_encoding: Some(short("b")),
        headers: Some(FieldTable::new()),
        delivery_mode: Some(1),
        priority: Some(9),
        correlation_id: Some(short("c")),
        reply_to: Some(short("d")),
        expiration: Some(short("60000")),
        message_id: Some(short("e")),
        timestamp: Some(1_700_000_000),
        kind: Some(short("f")),
        user_id: Some(short("guest")),
        app_id: Some(short("g")),
        cluster_id: Some(short("h")),
    };
    assert_eq!(properties.flags(), 0xfffc);
    let header = Frame::Header {
        channel: 1,
        header: ContentHeader::new(0, properties),
    };
    assert_eq!(decode_all(&encode(&header), 0), vec![header]);
}

#[test]
fn body_and_heartbeat_frames() {
    assert_both_ways(
        &frame(3, 1, b"hello"),
        Frame::Body {
            channel: 1,
            payload: Bytes::from_static(b"hello"),
        },
    );
    assert_both_ways(b"\x08\x00\x00\x00\x00\x00\x00\xce", Frame::Heartbeat);
}

#[test]
fn field_table_with_every_type() {
    let entries = [
        &b"\x01tt\x01"[..],
        b"\x01bb\xff",
        b"\x01BB\xff",
        b"\x01ss\xff\xfe",
        b"\x01uu\xff\xfe",
        b"\x01II\xff\xff\xff\xfd",
        b"\x01ii\xff\xff\xff\xfd",
        b"\x01ll\xff\xff\xff\xff\xff\xff\xff\xfc",
        b"\x01ff\x3f\xc0\x00\x00",
        b"\x01dd\x3f\xf8\x00\x00\x00\x00\x00\x00",
        b"\x01DD\x02\x00\x00\x30\x39",
        b"\x01SS\x00\x00\x00\x03abc",
        b"\x01AA\x00\x00\x00\x07b\x01S\x00\x00\x00\x00",
        b"\x01TT\x00\x00\x00\x00\x65\x53\xf1\x00",
        b"\x01FF\x00\x00\x00\x03\x01VV",
        b"\x01VV",
        b"\x01xx\x00\x00\x00\x02\x00\xff",
        b"\x03nstF\x00\x00\x00\x0b\x01aF\x00\x00\x00\x04\x01bt\x00",
    ]
    .concat();
    assert_eq!(entries.len(), 150);
    let bytes = [&150u32.to_be_bytes()[..], &entries].concat();
    let inner = |key: &str, value| FieldTable::from(vec![(short(key), value)]);
    let expected = FieldTable::from(vec![
        (short("t"), FieldValue::Bool(true)),
        (short("b"), FieldValue::I8(-1)),
        (short("B"), FieldValue::U8(255)),
        (short("s"), FieldValue::I16(-2)),
        (short("u"), FieldValue::U16(65534)),
        (short("I"), FieldValue::I32(-3)),
        (short("i"), FieldValue::U32(4_294_967_293)),
        (short("l"), FieldValue::I64(-4)),
        (short("f"), FieldValue::F32(1.5)),
        (short("d"), FieldValue::F64(1.5)),
        (
            short("D"),
            FieldValue::Decimal(Decimal {
                scale: 2,
                value: 12345,
            }),
        ),
        (short("S"), FieldValue::LongString(LongString::from("abc"))),
        (
            short("A"),
            FieldValue::Array(vec![
                FieldValue::I8(1),
                FieldValue::LongString(LongString::default()),
            ]),
        ),
        (short("T"), FieldValue::Timestamp(1_700_000_000)),
        (short("F"), FieldValue::Table(inner("V", FieldValue::Void))),
        (short("V"), FieldValue::Void),
        (
            short("x"),
            FieldValue::ByteArray(Bytes::from_static(b"\x00\xff")),
        ),
        (
            short("nst"),
            FieldValue::Table(inner(
                "a",
                FieldValue::Table(inner("b", FieldValue::Bool(false))),
            )),
        ),
    ]);
    let table = FieldTable::decode(Bytes::from(bytes.clone())).unwrap();
    assert_eq!(table, expected);
    let mut encoded = BytesMut::new();
    expected.encode(&mut encoded);
    assert_eq!(&encoded[..], &bytes[..]);
}

#[test]
fn every_method_has_its_spec_ids_and_name() {
    for (method, class_id, method_id, name) in super::round_trip::every_method() {
        assert_eq!(
            (method.class_id(), method.method_id(), method.name()),
            (class_id, method_id, name)
        );
        let mut payload = BytesMut::new();
        method.encode(&mut payload);
        assert_eq!(
            &payload[..4],
            [class_id.to_be_bytes(), method_id.to_be_bytes()].concat()
        );
        assert_eq!(Method::decode(payload.freeze()), Ok(method));
    }
}
