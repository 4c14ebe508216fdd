//! MQTT 3.1.1 and MQTT 5.0 control packets as plain values: bytes in, values out. No I/O, no
//! async; the MQTT door will own the socket and the session state (packet identifiers in
//! flight, topic aliases, receive maximum, keep-alive, will delivery) and translate what this
//! crate decodes into engine commands.
//!
//! What it covers:
//! - the fixed header: packet types, their flags, the Remaining Length ([`decode`],
//!   [`encode`], [`encoded_len`], [`PacketType`]);
//! - all fifteen packets ([`Packet`]), with typed fields: [`QoS`], [`PacketId`], wills,
//!   [`SubscriptionOptions`], [`ReasonCode`]s checked against the packet that carries them;
//! - every MQTT 5.0 property ([`Properties`], [`PropertyId`]), refused where the spec does
//!   not allow it or when it repeats;
//! - UTF-8 strings and binary data within their limits by type ([`Utf8String`], [`Binary`]).
//!
//! A connection reads like this:
//!
//! ```
//! use bytes::BytesMut;
//! use wharf_codec_mqtt::{decode, encode, Packet, ProtocolVersion, PACKET_SIZE_MAX};
//!
//! // A 3.1.1 CONNECT with client identifier "a", then the start of a PINGREQ.
//! let mut read = BytesMut::from(&b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a\xc0"[..]);
//! // Before CONNECT the version is unknown; CONNECT carries its own.
//! let (packet, size) = decode(&mut read, ProtocolVersion::V5, PACKET_SIZE_MAX).unwrap().unwrap();
//! let Packet::Connect(connect) = packet else { panic!("{packet:?}") };
//! assert_eq!((connect.protocol_version, connect.client_id.as_str(), size), (ProtocolVersion::V311, "a", 15));
//! let version = connect.protocol_version;
//! assert_eq!(decode(&mut read, version, PACKET_SIZE_MAX), Ok(None)); // wait for more bytes
//! read.extend_from_slice(b"\x00");
//! assert_eq!(decode(&mut read, version, PACKET_SIZE_MAX), Ok(Some((Packet::Pingreq, 2))));
//!
//! let mut write = BytesMut::new();
//! encode(&Packet::Pingresp, version, &mut write).unwrap();
//! assert_eq!(&write[..], b"\xd0\x00");
//! ```
//!
//! One [`Packet`] type serves both versions. Fields MQTT 3.1.1 lacks keep their defaults
//! there (empty [`Properties`], success codes), and [`encode`] refuses a 3.1.1 packet that sets
//! them rather than drop them silently. CONNACK return codes of 3.1.1 map onto 5.0 Reason
//! Codes, so a door deals in one set of codes.
//!
//! Decoding never panics and never trusts a length: a packet is decoded only once all of it
//! is in the buffer, every length inside it is checked against what is left of it, lists grow
//! only by what the packet holds, and a packet over the caller's size limit is refused from
//! its fixed header. Payloads and binary data are shared with the read buffer, not copied.
//! Encoding checks what the types cannot guarantee (a property the packet does not allow, a
//! Reason Code foreign to it, a 3.1.1 packet with 5.0 fields), so whatever encodes decodes.
//!
//! Left to the door, because they need a connection's state or the topic syntax: that CONNECT
//! comes first and once, which packets flow which way, packet identifiers in use, topic alias
//! ranges and mappings, Receive Maximum, topic name and filter syntax (wildcards, `$share`),
//! UTF-8 payloads announced by the Payload Format Indicator, and the reply to each
//! [`DecodeError`] ([`DecodeError::reason_code`] gives the MQTT 5.0 code).
//!
//! # Spec
//!
//! MQTT Version 3.1.1 (OASIS Standard, 29 October 2014) and MQTT Version 5.0 (OASIS
//! Standard, 7 March 2019). Comments cite sections and normative statements as
//! `[MQTT-x.y.z-n]`; section numbers are those of 5.0 unless they say otherwise.
//!
//! # Tests
//!
//! Unit tests (`src/tests/`) check byte sequences from the spec and computed by hand, round
//! trips of every packet in both versions by property test (with every prefix of each
//! encoding waiting for more bytes), one test per decoding error, and that arbitrary or
//! mutated bytes never panic the decoder.
//!
//! # Fuzzing
//!
//! `fuzz/` is a cargo-fuzz crate, outside the workspace. Its target `decode` feeds arbitrary
//! bytes, split at an arbitrary point, to the decoder in both versions and checks that every
//! decoded packet encodes to bytes that decode to the same packet. Like the AMQP codec's, it
//! builds on stable without a sanitizer:
//!
//! ```text
//! cargo install cargo-fuzz --locked --version 0.13.2
//! cd crates/codec-mqtt/fuzz
//! cargo fuzz run --sanitizer none decode corpus/decode seeds/decode -- -max_total_time=300
//! ```
//!
//! `seeds/decode` holds a few valid packet streams; the input's first byte chooses the split
//! point, the version and the size limit.
//!
//! CI runs it for 60 seconds after the tests, beside the AMQP codec's (`.ci/fuzz`).

#![forbid(unsafe_code)]

mod error;
mod identifiers;
mod packet;
mod properties;
mod property_id;
mod qos;
mod reason_code;
mod strings;
mod varint;
mod version;
mod wire;

pub use error::{DecodeError, EncodeError};
pub use identifiers::{PacketId, SubscriptionId};
pub use packet::{
    decode, encode, encoded_len, Auth, Connack, Connect, Disconnect, Packet, PacketType, Publish,
    PublishAck, RetainHandling, Suback, Subscribe, Subscription, SubscriptionOptions, Unsuback,
    Unsubscribe, Will, PACKET_SIZE_MAX,
};
pub use properties::{PayloadFormat, Properties};
pub use property_id::{PropertyContext, PropertyId};
pub use qos::{QoS, QoSInvalid};
pub use reason_code::ReasonCode;
pub use strings::{Binary, BinaryTooLong, StringError, UserProperty, Utf8String, STRING_BYTES_MAX};
pub use varint::VARIABLE_INTEGER_MAX;
pub use version::ProtocolVersion;

#[cfg(test)]
mod tests;
