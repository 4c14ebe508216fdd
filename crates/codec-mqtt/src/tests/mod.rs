//! Unit and property tests: known byte sequences from the spec and computed by hand, round
//! trips of every packet in both versions, one test per decoding and encoding error, and
//! arbitrary input.

mod arbitrary;
mod arbitrary_input;
mod decode_errors;
mod encode_errors;
mod known_bytes;
mod round_trip;
mod varint;

use bytes::{Bytes, BytesMut};

use crate::{
    decode, encode, DecodeError, Packet, PacketId, ProtocolVersion, Utf8String, PACKET_SIZE_MAX,
};

fn string(text: &str) -> Utf8String {
    Utf8String::try_from(text).unwrap()
}

fn packet_id(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

fn encode_packet(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).unwrap();
    buf.freeze()
}

/// Decodes `bytes`, which must hold exactly one packet or an error.
fn decode_bytes(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, PACKET_SIZE_MAX)? {
        Some((packet, size)) => {
            assert_eq!(size, bytes.len(), "{packet:?}");
            assert!(buf.is_empty(), "{} bytes left over", buf.len());
            Ok(packet)
        }
        None => panic!("{bytes:02x?} is incomplete"),
    }
}

/// A fixed header around `body`.
fn with_header(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first_byte];
    let mut length = body.len();
    loop {
        let low = (length % 128) as u8;
        length /= 128;
        if length == 0 {
            bytes.push(low);
            break;
        }
        bytes.push(low | 0x80);
    }
    bytes.extend_from_slice(body);
    bytes
}
