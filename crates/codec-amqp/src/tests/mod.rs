//! Unit and property tests: known byte sequences built from the spec, round trips of every
//! method, field type and property, error cases, and arbitrary input.

mod arbitrary;
mod content;
mod decoder;
mod known_bytes;
mod reply_code;
mod round_trip;

use bytes::{Bytes, BytesMut};

use crate::{Frame, FrameDecoder, ShortString};

fn short(text: &str) -> ShortString {
    ShortString::try_from(text).unwrap()
}

fn encode(frame: &Frame) -> Bytes {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    buf.freeze()
}

/// Decodes every frame in `bytes`, failing on leftovers.
fn decode_all(bytes: &[u8], frame_max: u32) -> Vec<Frame> {
    let decoder = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}
