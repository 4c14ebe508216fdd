//! Arbitrary bytes through every decoder of the codec. The first two bytes choose where the
//! input is split and which `frame_max` applies; the rest is the stream. Checks:
//! - nothing panics (protocol header, frames, content assembly);
//! - a stream read in two pieces decodes to the same frames and outcome as read whole;
//! - every decoded frame encodes to bytes that decode to a frame encoding to the same bytes,
//!   and `encoded_len` counts them.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wharf_codec_amqp::{
    decode_protocol_header, CodecError, ContentAssembler, Frame, FrameDecoder, FRAME_MIN_SIZE,
};

/// Large enough for the bodies a fuzzer input can carry, small enough that a header announcing
/// more is refused.
const BODY_SIZE_MAX: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let [split, limit, stream @ ..] = data else {
        return;
    };
    let frame_max = match limit % 3 {
        0 => 0,
        1 => FRAME_MIN_SIZE,
        _ => u32::from(*limit),
    };
    let _ = decode_protocol_header(&mut BytesMut::from(stream));
    let whole = decode_stream(&[stream], frame_max);
    let split = usize::from(*split) * stream.len() / 256;
    let (front, back) = stream.split_at(split);
    let pieces = decode_stream(&[front, back], frame_max);
    // Compared as bytes: a NaN in a field table is not equal to itself.
    assert_eq!(
        encode_all(&whole.0),
        encode_all(&pieces.0),
        "split at {split}"
    );
    assert_eq!(whole.1, pieces.1, "split at {split}");
    let mut assembler = ContentAssembler::new(BODY_SIZE_MAX);
    for frame in whole.0 {
        check_encoding_is_stable(&frame);
        if assembler.push(frame).is_err() {
            assembler = ContentAssembler::new(BODY_SIZE_MAX);
        }
    }
});

/// The frames decoded from `pieces` appended one after another, and how decoding ended: the
/// error, or `None` when it waits for more bytes.
fn decode_stream(pieces: &[&[u8]], frame_max: u32) -> (Vec<Frame>, Option<CodecError>) {
    let decoder = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for frame in frames {
        frame.encode(&mut buf);
    }
    buf
}

/// Decoding may normalise (a `t` field value of 2 is `true`, encoded as 1), so the check is
/// that the second encoding equals the first, not that the input comes back.
fn check_encoding_is_stable(frame: &Frame) {
    let mut first = BytesMut::new();
    frame.encode(&mut first);
    assert_eq!(frame.encoded_len(), first.len(), "{frame:?}");
    let mut buf = first.clone();
    let decoded = match FrameDecoder::new(0).decode(&mut buf) {
        Ok(Some(decoded)) => decoded,
        other => panic!("{frame:?} encoded to bytes that decode to {other:?}"),
    };
    assert!(buf.is_empty());
    let mut second = BytesMut::new();
    decoded.encode(&mut second);
    assert_eq!(first, second, "{frame:?}");
}
