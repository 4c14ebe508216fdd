//! Round trips: every valid packet of either version encodes to bytes that decode to the same
//! packet, every prefix of those bytes waits for more, and the exact size passes a size limit
//! that one byte less refuses.

use bytes::BytesMut;
use proptest::prelude::*;

use super::arbitrary;
use crate::{
    decode, encode, encoded_len, DecodeError, Packet, PacketType, ProtocolVersion, PACKET_SIZE_MAX,
};

/// The checks of this module for one packet.
fn check_round_trip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut encoded = BytesMut::new();
    encode(packet, version, &mut encoded)?;
    prop_assert_eq!(encoded_len(packet, version), Ok(encoded.len()));
    let size = encoded.len();

    // Byte by byte: nothing until the last one, and nothing consumed meanwhile.
    let mut buf = BytesMut::new();
    for (index, &byte) in encoded.iter().enumerate() {
        prop_assert_eq!(decode(&mut buf, version, PACKET_SIZE_MAX), Ok(None));
        prop_assert_eq!(buf.len(), index);
        buf.extend_from_slice(&[byte]);
    }
    // Followed by the first byte of another packet, which stays in the buffer.
    buf.extend_from_slice(&[0xc0]);
    let decoded = decode(&mut buf, version, PACKET_SIZE_MAX);
    prop_assert_eq!(decoded, Ok(Some((packet.clone(), size))));
    prop_assert_eq!(&buf[..], &[0xc0][..]);

    let limit = u32::try_from(size).unwrap();
    let mut exact = encoded.clone();
    prop_assert!(decode(&mut exact, version, limit)?.is_some());
    let mut over = encoded.clone();
    prop_assert_eq!(
        decode(&mut over, version, limit - 1),
        Err(DecodeError::PacketTooLarge {
            size: u64::from(limit),
            size_max: limit - 1
        })
    );
    Ok(())
}

/// A round-trip test per packet type and version.
macro_rules! round_trips {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(packet in $strategy) {
                    let version = if stringify!($name).ends_with("v311") {
                        ProtocolVersion::V311
                    } else {
                        ProtocolVersion::V5
                    };
                    check_round_trip(&packet, version)?;
                }
            )*
        }
    };
}

use arbitrary::*;
use ProtocolVersion::{V311, V5};

round_trips! {
    connect_v311: connect(V311);
    connect_v5: connect(V5);
    connack_v311: connack(V311);
    connack_v5: connack(V5);
    publish_v311: publish(V311);
    publish_v5: publish(V5);
    puback_v311: publish_ack(PacketType::Puback, V311);
    puback_v5: publish_ack(PacketType::Puback, V5);
    pubrec_v311: publish_ack(PacketType::Pubrec, V311);
    pubrec_v5: publish_ack(PacketType::Pubrec, V5);
    pubrel_v311: publish_ack(PacketType::Pubrel, V311);
    pubrel_v5: publish_ack(PacketType::Pubrel, V5);
    pubcomp_v311: publish_ack(PacketType::Pubcomp, V311);
    pubcomp_v5: publish_ack(PacketType::Pubcomp, V5);
    subscribe_v311: subscribe(V311);
    subscribe_v5: subscribe(V5);
    suback_v311: suback(V311);
    suback_v5: suback(V5);
    unsubscribe_v311: unsubscribe(V311);
    unsubscribe_v5: unsubscribe(V5);
    unsuback_v311: unsuback(V311);
    unsuback_v5: unsuback(V5);
    pingreq_v311: Just(Packet::Pingreq);
    pingreq_v5: Just(Packet::Pingreq);
    pingresp_v311: Just(Packet::Pingresp);
    pingresp_v5: Just(Packet::Pingresp);
    disconnect_v311: disconnect(V311);
    disconnect_v5: disconnect(V5);
    auth_v5: auth();
}

fn version_and_packets() -> impl Strategy<Value = (ProtocolVersion, Vec<Packet>)> {
    prop_oneof![Just(V311), Just(V5)]
        .prop_flat_map(|version| (Just(version), prop::collection::vec(packet(version), 0..6)))
}

proptest! {
    /// A stream of packets read in two pieces decodes to the same packets in order.
    #[test]
    fn packet_streams_decode_in_order(
        (version, packets) in version_and_packets(),
        split in any::<prop::sample::Index>(),
    ) {
        let mut bytes = BytesMut::new();
        for packet in &packets {
            encode(packet, version, &mut bytes).unwrap();
        }
        let split = split.index(bytes.len() + 1);
        let mut buf = BytesMut::from(&bytes[..split]);
        let mut decoded = Vec::new();
        while let Some((packet, _)) = decode(&mut buf, version, PACKET_SIZE_MAX)? {
            decoded.push(packet);
        }
        buf.extend_from_slice(&bytes[split..]);
        while let Some((packet, _)) = decode(&mut buf, version, PACKET_SIZE_MAX)? {
            decoded.push(packet);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, packets);
    }
}
