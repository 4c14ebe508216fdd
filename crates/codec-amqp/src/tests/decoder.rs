//! The frame decoder on malformed, oversized and arbitrary input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::error::ValueError;
use crate::{
    decode_protocol_header, CodecError, ContentAssembler, FieldTable, Frame, FrameDecoder, Method,
    ReplyCode, FIELD_NESTING_MAX, FRAME_MIN_SIZE,
};

fn decode(bytes: &[u8], frame_max: u32) -> Result<Option<Frame>, CodecError> {
    FrameDecoder::new(frame_max).decode(&mut BytesMut::from(bytes))
}

#[test]
fn protocol_header_of_another_version_is_refused() {
    let mut buf = BytesMut::from(&b"AMQP\x01\x01\x00\x09"[..]);
    let error = decode_protocol_header(&mut buf).unwrap_err();
    assert_eq!(
        error,
        CodecError::ProtocolHeaderMismatch {
            received: b"AMQP\x01\x01\x00\x09".to_vec()
        }
    );
    assert_eq!(buf.len(), 8, "nothing is consumed");
}

#[test]
fn protocol_header_of_http_is_refused_at_its_first_byte() {
    let mut buf = BytesMut::from(&b"G"[..]);
    assert!(matches!(
        decode_protocol_header(&mut buf),
        Err(CodecError::ProtocolHeaderMismatch { .. })
    ));
}

#[test]
fn protocol_header_waits_for_eight_bytes() {
    let mut buf = BytesMut::new();
    assert_eq!(decode_protocol_header(&mut buf), Ok(None));
    buf.extend_from_slice(b"AMQP\x00\x00\x09");
    assert_eq!(decode_protocol_header(&mut buf), Ok(None));
    buf.extend_from_slice(b"\x01");
    assert_eq!(decode_protocol_header(&mut buf), Ok(Some(())));
}

#[test]
fn incomplete_frames_consume_nothing() {
    let frame = b"\x03\x00\x01\x00\x00\x00\x02hi\xce";
    for end in 0..frame.len() {
        let mut buf = BytesMut::from(&frame[..end]);
        assert_eq!(FrameDecoder::new(0).decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), end);
    }
}

#[test]
fn frame_over_frame_max_is_refused_from_its_header() {
    // The header alone announces 4089 bytes of payload: 4097 with the overhead.
    let header = b"\x03\x00\x01\x00\x00\x0f\xf9";
    assert_eq!(
        decode(header, FRAME_MIN_SIZE),
        Err(CodecError::FrameTooLarge {
            size: 4097,
            frame_max: FRAME_MIN_SIZE
        })
    );
    let mut exact = BytesMut::from(&b"\x03\x00\x01\x00\x00\x0f\xf8"[..]);
    exact.extend_from_slice(&[0; 4088]);
    exact.extend_from_slice(&[0xce]);
    assert!(matches!(
        FrameDecoder::new(FRAME_MIN_SIZE).decode(&mut exact),
        Ok(Some(Frame::Body { .. }))
    ));
}

#[test]
fn frame_without_frame_end_is_refused() {
    assert_eq!(
        decode(b"\x08\x00\x00\x00\x00\x00\x00\x00", 0),
        Err(CodecError::FrameEndInvalid { found: 0 })
    );
}

#[test]
fn unknown_frame_type_is_refused() {
    assert_eq!(
        decode(b"\x04\x00\x00\x00\x00\x00\x00\xce", 0),
        Err(CodecError::FrameTypeUnknown { frame_type: 4 })
    );
}

#[test]
fn heartbeat_must_be_empty_and_on_channel_zero() {
    assert_eq!(
        decode(b"\x08\x00\x01\x00\x00\x00\x00\xce", 0),
        Err(CodecError::HeartbeatChannel { channel: 1 })
    );
    assert_eq!(
        decode(b"\x08\x00\x00\x00\x00\x00\x01\x00\xce", 0),
        Err(CodecError::HeartbeatPayload { size: 1 })
    );
}

#[test]
fn unknown_class_and_method_are_named() {
    assert_eq!(
        Method::decode(Bytes::from_static(b"\x00\x0b\x00\x0a")),
        Err(CodecError::ClassUnknown { class_id: 11 })
    );
    let error = Method::decode(Bytes::from_static(b"\x00\x3c\x00\x29")).unwrap_err();
    assert_eq!(
        error,
        CodecError::MethodUnknown {
            class_id: 60,
            method_id: 41
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::NotImplemented);
}

#[test]
fn bad_argument_names_method_and_field() {
    // basic.publish whose routing key claims 9 bytes but has 5.
    let error =
        Method::decode(Bytes::from_static(b"\x00\x3c\x00\x28\x00\x00\x00\x09hello")).unwrap_err();
    assert_eq!(
        error,
        CodecError::Argument {
            method: "basic.publish",
            field: "routing_key",
            source: ValueError::Truncated { need: 9, have: 5 },
        }
    );
    assert_eq!(
        error.to_string(),
        "basic.publish: argument routing_key: needs 9 bytes, 5 left"
    );
    assert_eq!(error.reply_code(), ReplyCode::SyntaxError);
}

#[test]
fn short_string_must_be_utf8() {
    let error = Method::decode(Bytes::from_static(b"\x00\x14\x00\x0a\x01\xff")).unwrap_err();
    assert_eq!(
        error,
        CodecError::Argument {
            method: "channel.open",
            field: "reserved_1",
            source: ValueError::ShortStringUtf8 { valid_up_to: 0 },
        }
    );
}

#[test]
fn bytes_after_the_last_argument_are_refused() {
    assert_eq!(
        Method::decode(Bytes::from_static(b"\x00\x5a\x00\x0a\x00")),
        Err(CodecError::TrailingBytes {
            frame: "method",
            count: 1
        })
    );
}

#[test]
fn unknown_field_type_is_refused() {
    assert_eq!(
        FieldTable::decode(Bytes::from_static(b"\x00\x00\x00\x03\x01kL")),
        Err(ValueError::FieldTypeUnknown { tag: b'L' })
    );
}

#[test]
fn field_nesting_is_bounded() {
    // Arrays inside arrays, each holding the next: `A` length, then `A` length, ...
    fn nested(depth: usize) -> Vec<u8> {
        let mut value = b"V".to_vec();
        for _ in 0..depth {
            let length = u32::try_from(value.len()).unwrap().to_be_bytes();
            value = [&b"A"[..], &length, &value].concat();
        }
        let entry = [&b"\x01k"[..], &value].concat();
        let length = u32::try_from(entry.len()).unwrap().to_be_bytes();
        [&length[..], &entry].concat()
    }
    assert!(FieldTable::decode(Bytes::from(nested(FIELD_NESTING_MAX - 1))).is_ok());
    assert_eq!(
        FieldTable::decode(Bytes::from(nested(FIELD_NESTING_MAX))),
        Err(ValueError::NestingTooDeep {
            max: FIELD_NESTING_MAX
        })
    );
    // Far deeper than the stack could recurse: refused, not a crash.
    assert!(FieldTable::decode(Bytes::from(nested(100_000))).is_err());
}

#[test]
fn content_header_of_another_class_or_with_weight_is_refused() {
    let header = |class: &[u8], weight: &[u8]| {
        let payload = [class, weight, &[0; 8], b"\x00\x00"].concat();
        crate::ContentHeader::decode(Bytes::from(payload))
    };
    assert_eq!(
        header(b"\x00\x32", b"\x00\x00"),
        Err(CodecError::ContentClass { class_id: 50 })
    );
    assert_eq!(
        header(b"\x00\x3c", b"\x00\x01"),
        Err(CodecError::ContentWeight { weight: 1 })
    );
    assert!(header(b"\x00\x3c", b"\x00\x00").is_ok());
}

#[test]
fn property_flags_basic_does_not_define_are_refused() {
    let payload = [&b"\x00\x3c\x00\x00"[..], &[0; 8], b"\x00\x01"].concat();
    assert_eq!(
        crate::ContentHeader::decode(Bytes::from(payload)),
        Err(CodecError::PropertyFlags { flags: 1 })
    );
}

proptest! {
    /// Whatever the bytes, the decoder returns a frame, asks for more or names an error; it
    /// never panics, and what it decodes it also assembles without panicking.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        frame_max in prop_oneof![Just(0u32), Just(FRAME_MIN_SIZE), 8u32..64],
    ) {
        let _ = decode_protocol_header(&mut BytesMut::from(&bytes[..]));
        let decoder = FrameDecoder::new(frame_max);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut assembler = ContentAssembler::new(1 << 20);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            if assembler.push(frame).is_err() {
                assembler = ContentAssembler::new(1 << 20);
            }
        }
    }

    /// Arbitrary bytes inside a well-framed method frame: the payload decoder never panics.
    #[test]
    fn decoding_arbitrary_method_payloads_never_panics(
        class_id in prop::sample::select(vec![10u16, 20, 40, 50, 60, 85, 90]),
        method_id in 0u16..130,
        arguments in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let payload = [&class_id.to_be_bytes()[..], &method_id.to_be_bytes(), &arguments].concat();
        let _ = Method::decode(Bytes::from(payload));
    }

    /// Arbitrary bytes as a field table: never a panic.
    #[test]
    fn decoding_arbitrary_field_tables_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let length = u32::try_from(body.len()).unwrap().to_be_bytes();
        let _ = FieldTable::decode(Bytes::from([&length[..], &body].concat()));
    }
}
