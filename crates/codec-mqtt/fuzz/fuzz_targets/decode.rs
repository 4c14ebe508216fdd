//! Arbitrary bytes through the MQTT decoder. The first byte chooses the version (bit 0), the
//! size limit (bit 1: the protocol's maximum, or a small one that big packets exceed) and
//! where the input is split (bits 7-2); the rest is the stream. Checks:
//! - nothing panics, in either version;
//! - a stream read in two pieces decodes to the same packets and outcome as read whole;
//! - every decoded packet encodes (a CONNECT in its own version), `encoded_len` counts the
//!   bytes, and they decode to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wharf_codec_mqtt::{
    decode, encode, encoded_len, DecodeError, Packet, ProtocolVersion, PACKET_SIZE_MAX,
};

/// Small enough that inputs of a few hundred bytes reach the size check.
const PACKET_SIZE_SMALL: u32 = 64;

fuzz_target!(|data: &[u8]| {
    let [control, stream @ ..] = data else {
        return;
    };
    let version = match control & 1 {
        0 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    let limit = match control & 2 {
        0 => PACKET_SIZE_MAX,
        _ => PACKET_SIZE_SMALL,
    };
    let whole = decode_stream(&[stream], version, limit);
    let split = usize::from(control >> 2) * stream.len() / 64;
    let (front, back) = stream.split_at(split);
    let pieces = decode_stream(&[front, back], version, limit);
    assert_eq!(whole, pieces, "split at {split}");
    for packet in &whole.0 {
        check_round_trip(packet, version);
    }
});

/// The packets decoded from `pieces` appended one after another, and how decoding ended:
/// the error, or `None` when it waits for more bytes.
fn decode_stream(
    pieces: &[&[u8]],
    version: ProtocolVersion,
    limit: u32,
) -> (Vec<Packet>, Option<DecodeError>) {
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decode(&mut buf, version, limit) {
                Ok(Some((packet, _))) => packets.push(packet),
                Ok(None) => break,
                Err(error) => return (packets, Some(error)),
            }
        }
    }
    (packets, None)
}

/// Whatever decodes must encode, and decode back to itself.
fn check_round_trip(packet: &Packet, version: ProtocolVersion) {
    let version = match packet {
        Packet::Connect(connect) => connect.protocol_version,
        _ => version,
    };
    let mut buf = BytesMut::new();
    if let Err(error) = encode(packet, version, &mut buf) {
        panic!("{packet:?} decoded but does not encode: {error}");
    }
    assert_eq!(encoded_len(packet, version), Ok(buf.len()), "{packet:?}");
    let size = buf.len();
    match decode(&mut buf, version, PACKET_SIZE_MAX) {
        Ok(Some((decoded, decoded_size))) => {
            assert_eq!(&decoded, packet);
            assert_eq!(decoded_size, size);
        }
        other => panic!("{packet:?} encoded to bytes that decode to {other:?}"),
    }
    assert!(buf.is_empty(), "{packet:?}");
}
