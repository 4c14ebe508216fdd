//! Arbitrary and mutated bytes: the decoder never panics, and whatever it accepts encodes to
//! bytes that decode to the same packet.

use bytes::BytesMut;
use proptest::prelude::*;

use super::arbitrary;
use crate::{decode, encode, Packet, ProtocolVersion, PACKET_SIZE_MAX};

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

/// Decodes every packet at the front of `bytes` until an error or the end, checking that
/// each packet decoded survives an encode-decode round trip.
fn decode_all(bytes: &[u8], version: ProtocolVersion, limit: u32) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some((packet, size))) = decode(&mut buf, version, limit) {
        prop_assert!(size <= bytes.len());
        check_reencoding(&packet, version)?;
    }
    Ok(())
}

fn check_reencoding(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    // A CONNECT is written in its own version.
    let version = match packet {
        Packet::Connect(connect) => connect.protocol_version,
        _ => version,
    };
    let mut encoded = BytesMut::new();
    let result = encode(packet, version, &mut encoded);
    prop_assert!(result.is_ok(), "{:?} does not encode: {:?}", packet, result);
    let decoded = decode(&mut encoded, version, PACKET_SIZE_MAX);
    prop_assert_eq!(decoded.map(|d| d.map(|(p, _)| p)), Ok(Some(packet.clone())));
    prop_assert!(encoded.is_empty());
    Ok(())
}

fn packet_bytes() -> impl Strategy<Value = (ProtocolVersion, Vec<u8>)> {
    version().prop_flat_map(|version| {
        arbitrary::packet(version).prop_map(move |packet| {
            let mut buf = BytesMut::new();
            encode(&packet, version, &mut buf).unwrap();
            (version, buf.to_vec())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        version in version(),
        limit in prop_oneof![Just(PACKET_SIZE_MAX), 0..300u32],
    ) {
        decode_all(&bytes, version, limit)?;
    }

    /// A valid fixed header followed by arbitrary bytes reaches each packet's body decoder.
    #[test]
    fn arbitrary_bodies_never_panic(
        packet_type in 1..=15u8,
        flags in 0..16u8,
        body in prop::collection::vec(any::<u8>(), 0..200),
        version in version(),
    ) {
        let fixed = match packet_type {
            3 => flags & 0b0111,
            6 | 8 | 10 => 0b0010,
            _ => 0,
        };
        let bytes = super::with_header(packet_type << 4 | fixed, &body);
        decode_all(&bytes, version, PACKET_SIZE_MAX)?;
    }

    /// Valid packets with one byte changed, removed or added.
    #[test]
    fn mutated_packets_never_panic(
        (version, bytes) in packet_bytes(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
        mutation in 0..3u8,
    ) {
        let mut bytes = bytes;
        let index = position.index(bytes.len());
        match mutation {
            0 => bytes[index] = value,
            1 => { bytes.remove(index); }
            _ => bytes.insert(index, value),
        }
        decode_all(&bytes, version, PACKET_SIZE_MAX)?;
    }
}
