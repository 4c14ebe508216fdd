//! The Variable Byte Integer at its boundaries and in its malformed forms.

use bytes::{Bytes, BytesMut};

use crate::varint::{self, VariableInteger};
use crate::wire::Writer;
use crate::{
    decode, encoded_len, DecodeError, EncodeError, Packet, ProtocolVersion, Publish,
    PACKET_SIZE_MAX, VARIABLE_INTEGER_MAX,
};

/// The table of MQTT 5.0 section 1.5.5.
const BOUNDARIES: [(u32, &[u8]); 9] = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f"),
    (VARIABLE_INTEGER_MAX, b"\xff\xff\xff\x7f"),
];

#[test]
fn boundaries_encode_and_decode() {
    for (value, bytes) in BOUNDARIES {
        let mut buf = BytesMut::new();
        varint::write(&mut Writer::new(&mut buf), value);
        assert_eq!(&buf[..], bytes, "{value}");
        assert_eq!(varint::encoded_len(value), bytes.len());
        let length = bytes.len();
        assert_eq!(
            varint::decode(bytes),
            VariableInteger::Complete { value, length }
        );
        let followed = [bytes, b"\xff"].concat();
        assert_eq!(
            varint::decode(&followed),
            VariableInteger::Complete { value, length }
        );
        assert_eq!(
            varint::decode(&bytes[..length - 1]),
            VariableInteger::Incomplete
        );
    }
}

#[test]
fn five_bytes_and_longer_forms_are_malformed() {
    assert_eq!(
        varint::decode(b"\xff\xff\xff\xff"),
        VariableInteger::Malformed
    );
    assert_eq!(
        varint::decode(b"\x80\x80\x80\x80\x01"),
        VariableInteger::Malformed
    );
    assert_eq!(varint::decode(b"\x80\x00"), VariableInteger::Malformed);
    assert_eq!(varint::decode(b"\xff\x80\x00"), VariableInteger::Malformed);
    assert_eq!(varint::decode(b""), VariableInteger::Incomplete);
}

#[test]
fn largest_remaining_length_waits_for_its_bytes_or_is_refused() {
    let header = b"\x30\xff\xff\xff\x7f";
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(
        decode(&mut buf, ProtocolVersion::V5, PACKET_SIZE_MAX),
        Ok(None)
    );
    assert_eq!(PACKET_SIZE_MAX, 268_435_460);
    assert_eq!(
        decode(&mut buf, ProtocolVersion::V5, 1 << 20),
        Err(DecodeError::PacketTooLarge {
            size: 268_435_460,
            size_max: 1 << 20
        })
    );
}

/// The largest packet is measured, not written: the zeroed payload is never touched.
#[test]
fn largest_remaining_length_is_the_last_one_encoded() {
    let topic_bytes = 3; // "t" with its length
    let largest = VARIABLE_INTEGER_MAX as usize - topic_bytes;
    let publish = |payload_len: usize| {
        Packet::Publish(Publish {
            topic_name: super::string("t"),
            payload: Bytes::from(vec![0; payload_len]),
            ..Publish::default()
        })
    };
    let version = ProtocolVersion::V311;
    assert_eq!(encoded_len(&publish(largest), version), Ok(268_435_460));
    assert_eq!(
        encoded_len(&publish(largest + 1), version),
        Err(EncodeError::PacketTooLarge {
            remaining_length: VARIABLE_INTEGER_MAX as usize + 1
        })
    );
    let mut buf = BytesMut::new();
    let refused = crate::encode(&publish(largest + 1), version, &mut buf);
    assert!(refused.is_err());
    assert!(buf.is_empty(), "nothing is written for a refused packet");
}
