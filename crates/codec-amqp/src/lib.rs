//! AMQP 0-9-1 as RabbitMQ speaks it, as plain values: bytes in, values out. No I/O, no async;
//! the AMQP door owns the socket and the session state (channels, delivery tags, confirms) and
//! translates what this crate decodes into engine commands.
//!
//! What it covers:
//! - the protocol header ([`decode_protocol_header`], [`PROTOCOL_HEADER`]), including the
//!   refusal of another version;
//! - frames ([`Frame`], [`FrameDecoder`]): method, header, body and heartbeat, the frame-end
//!   octet checked and `frame_max` enforced on incoming frames;
//! - every method of the classes connection, channel, exchange, queue, basic, confirm and tx,
//!   RabbitMQ's extensions included ([`method`]), with packed bits;
//! - field tables with every RabbitMQ field type ([`FieldTable`], [`FieldValue`]);
//! - content headers with the 14 basic properties ([`ContentHeader`], [`BasicProperties`]),
//!   bodies split by `frame_max` ([`ContentFrames`]) and reassembled ([`ContentAssembler`]);
//! - reply codes, with whether each closes a channel or the connection ([`ReplyCode`]).
//!
//! A session reads like this:
//!
//! ```
//! use bytes::BytesMut;
//! use wharf_codec_amqp::{decode_protocol_header, Frame, FrameDecoder, PROTOCOL_HEADER};
//!
//! let mut read = BytesMut::from(&PROTOCOL_HEADER[..]);
//! Frame::Heartbeat.encode(&mut read);
//! assert_eq!(decode_protocol_header(&mut read), Ok(Some(())));
//! let decoder = FrameDecoder::default(); // frame_max 4096 until connection.tune-ok
//! assert_eq!(decoder.decode(&mut read), Ok(Some(Frame::Heartbeat)));
//! assert_eq!(decoder.decode(&mut read), Ok(None)); // wait for more bytes
//! ```
//!
//! Writing is the caller's: `encode` appends to a `BytesMut` the caller owns, and
//! `encoded_len` says how many bytes that will be ([`Frame::encoded_len`]), so that a frame can
//! be checked against the peer's `frame_max` before it is sent.
//!
//! Decoding never panics, whatever the bytes: lengths are checked before they are used, field
//! tables nest at most [`FIELD_NESTING_MAX`] deep, and a frame over `frame_max` is refused from
//! its header. Encoding trusts its values (a [`ShortString`] cannot be too long by
//! construction).
//!
//! Left to the door, because they need a connection's state: that `connection.*` methods come
//! on channel 0 and in handshake order, that channel numbers stay under `channel_max`, that a
//! client's `frame_max` is at least [`FRAME_MIN_SIZE`] (then [`FrameDecoder::set_frame_max`]),
//! heartbeat timing, one [`ContentAssembler`] per open channel, and the reply to each
//! [`CodecError`] ([`CodecError::reply_code`] gives the spec's code).
//!
//! # Spec
//!
//! AMQP 0-9-1 (amqp0-9-1.pdf, with RabbitMQ's `amqp0-9-1.extended.xml` and its errata): field
//! types follow RabbitMQ's table, not the spec's (see [`field`]); the extensions are
//! `exchange.bind`/`unbind`, `basic.nack`, `confirm`, `connection.blocked`/`unblocked` and
//! `connection.update-secret`.
//!
//! # Tests
//!
//! Unit tests (`src/tests/`) check byte sequences written out from the spec, round trips of
//! every method, field type and property by property test, errors for malformed input and
//! frames out of order, and that arbitrary bytes never panic a decoder. `tests/pika.rs` checks
//! the codec against frames as pika encodes them (`tests/fixtures/pika_frames.py` writes them).
//!
//! # Fuzzing
//!
//! `fuzz/` is a cargo-fuzz crate, outside the workspace. Its target `decode` feeds arbitrary
//! bytes, split at arbitrary points, to the protocol header and frame decoders and the content
//! assembler, and checks that decoded frames encode back to the same frame. CI runs it for a
//! minute on the stable toolchain (`.ci/fuzz`): with `--sanitizer none` cargo-fuzz passes no
//! nightly-only flag, and the codec has no unsafe code for a sanitizer to watch.
//!
//! ```text
//! cargo install cargo-fuzz --locked --version 0.13.2
//! cd crates/codec-amqp/fuzz
//! cargo fuzz run --sanitizer none decode corpus/decode seeds/decode -- -max_total_time=300
//! ```
//!
//! `seeds/decode` holds valid frames from pika (a method, a header, bodies; the input's first
//! two bytes choose the split point and `frame_max`), which take the fuzzer past the frame
//! layer quickly. A crash leaves its input in `fuzz/artifacts/decode/`; `cargo fuzz run
//! --sanitizer none decode <file>` replays it.

#![forbid(unsafe_code)]

pub mod content;
mod error;
pub mod field;
pub mod frame;
pub mod method;
mod properties;
mod protocol_header;
mod reply_code;
mod wire;

pub use content::{Assembled, Content, ContentAssembler, ContentFrames};
pub use error::{CodecError, ValueError};
pub use field::{Decimal, FieldTable, FieldValue, FIELD_NESTING_MAX};
pub use frame::{
    Frame, FrameDecoder, FRAME_END, FRAME_HEADER_SIZE, FRAME_MIN_SIZE, FRAME_OVERHEAD,
};
pub use method::Method;
pub use properties::{BasicProperties, ContentHeader};
pub use protocol_header::{decode_protocol_header, PROTOCOL_HEADER};
pub use reply_code::{ReplyCode, ReplyCodeUnknown, Scope};
pub use wire::{LongString, ShortString, ShortStringTooLong, SHORT_STRING_BYTES_MAX};

#[cfg(test)]
mod tests;
