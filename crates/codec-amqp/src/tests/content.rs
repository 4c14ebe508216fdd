//! Splitting bodies into frames by `frame_max` and assembling frames back into messages.

use bytes::Bytes;
use proptest::prelude::*;

use super::{encode, short};
use crate::method::{basic, channel};
use crate::{
    Assembled, BasicProperties, CodecError, Content, ContentAssembler, ContentFrames,
    ContentHeader, Frame, FrameDecoder, Method, ReplyCode, FRAME_MIN_SIZE, FRAME_OVERHEAD,
};

fn publish() -> Method {
    basic::Publish {
        routing_key: short("jobs"),
        ..Default::default()
    }
    .into()
}

fn method_frame(channel: u16, method: Method) -> Frame {
    Frame::Method { channel, method }
}

fn body_frame(channel: u16, bytes: &'static [u8]) -> Frame {
    Frame::Body {
        channel,
        payload: Bytes::from_static(bytes),
    }
}

fn header_frame(channel: u16, body_size: u64) -> Frame {
    Frame::Header {
        channel,
        header: ContentHeader::new(body_size, BasicProperties::default()),
    }
}

#[test]
fn body_frames_carry_at_most_frame_max_minus_eight_bytes() {
    let body = Bytes::from(vec![7; 10_000]);
    let frames: Vec<Frame> = ContentFrames::new(
        1,
        basic::CLASS_ID,
        BasicProperties::default(),
        body,
        FRAME_MIN_SIZE,
    )
    .collect();
    assert_eq!(frames.len(), 4, "a header and 4088 + 4088 + 1824 bytes");
    assert!(matches!(&frames[0], Frame::Header { header, .. } if header.body_size == 10_000));
    let sizes: Vec<usize> = frames[1..]
        .iter()
        .map(|frame| encode(frame).len())
        .collect();
    assert_eq!(sizes, vec![4096, 4096, 1832]);
}

#[test]
fn empty_body_has_a_header_and_no_body_frame() {
    let frames: Vec<Frame> = ContentFrames::new(
        1,
        basic::CLASS_ID,
        BasicProperties::default(),
        Bytes::new(),
        0,
    )
    .collect();
    assert_eq!(frames, vec![header_frame(1, 0)]);
    let mut assembler = ContentAssembler::new(0);
    assert_eq!(assembler.push(method_frame(1, publish())), Ok(None));
    let Ok(Some(Assembled::Content(content))) = assembler.push(frames[0].clone()) else {
        panic!("an empty body completes at its header");
    };
    assert!(content.body.is_empty());
    assert!(assembler.is_idle());
}

#[test]
fn methods_without_content_and_heartbeats_pass_through() {
    let mut assembler = ContentAssembler::new(100);
    let close = method_frame(1, channel::Close::default().into());
    assert_eq!(
        assembler.push(close.clone()),
        Ok(Some(Assembled::Frame(close)))
    );
    assembler.push(method_frame(1, publish())).unwrap();
    assert_eq!(
        assembler.push(Frame::Heartbeat),
        Ok(Some(Assembled::Frame(Frame::Heartbeat)))
    );
    assembler.push(header_frame(1, 3)).unwrap();
    assert_eq!(
        assembler.push(Frame::Heartbeat),
        Ok(Some(Assembled::Frame(Frame::Heartbeat)))
    );
    let Ok(Some(Assembled::Content(content))) = assembler.push(body_frame(1, b"abc")) else {
        panic!("the body completes the message");
    };
    assert_eq!(content.body, Bytes::from_static(b"abc"));
}

#[test]
fn header_or_body_without_a_method_is_unexpected() {
    let mut assembler = ContentAssembler::new(100);
    let error = assembler.push(header_frame(1, 3)).unwrap_err();
    assert!(matches!(
        error,
        CodecError::ContentUnexpected {
            frame: "header",
            ..
        }
    ));
    assert_eq!(error.reply_code(), ReplyCode::UnexpectedFrame);
    assert!(matches!(
        assembler.push(body_frame(1, b"abc")),
        Err(CodecError::ContentUnexpected { frame: "body", .. })
    ));
}

#[test]
fn body_before_header_is_unexpected() {
    let mut assembler = ContentAssembler::new(100);
    assembler.push(method_frame(1, publish())).unwrap();
    assert!(matches!(
        assembler.push(body_frame(1, b"abc")),
        Err(CodecError::ContentUnexpected {
            frame: "body",
            expected: "header",
            ..
        })
    ));
}

#[test]
fn method_before_the_body_is_complete_interrupts() {
    let mut assembler = ContentAssembler::new(100);
    assembler.push(method_frame(1, publish())).unwrap();
    assembler.push(header_frame(1, 6)).unwrap();
    assembler.push(body_frame(1, b"abc")).unwrap();
    assert_eq!(
        assembler.push(method_frame(1, publish())),
        Err(CodecError::ContentInterrupted {
            method: "basic.publish",
            pending: "basic.publish",
            channel: 1
        })
    );
}

#[test]
fn body_longer_than_its_header_is_refused() {
    let mut assembler = ContentAssembler::new(100);
    assembler.push(method_frame(1, publish())).unwrap();
    assembler.push(header_frame(1, 2)).unwrap();
    assert_eq!(
        assembler.push(body_frame(1, b"abc")),
        Err(CodecError::BodyOverrun {
            body_size: 2,
            received: 3
        })
    );
}

#[test]
fn body_over_the_limit_is_refused_at_the_header() {
    let mut assembler = ContentAssembler::new(100);
    assembler.push(method_frame(1, publish())).unwrap();
    let error = assembler.push(header_frame(1, 101)).unwrap_err();
    assert_eq!(
        error,
        CodecError::BodyTooLarge {
            body_size: 101,
            body_size_max: 100
        }
    );
    assert_eq!(error.reply_code(), ReplyCode::ContentTooLarge);
}

#[test]
fn frames_of_another_channel_are_refused() {
    let mut assembler = ContentAssembler::new(100);
    assembler.push(method_frame(1, publish())).unwrap();
    assert_eq!(
        assembler.push(header_frame(2, 3)),
        Err(CodecError::ContentChannel {
            expected: 1,
            found: 2
        })
    );
}

#[test]
fn interleaved_channels_assemble_apart() {
    let mut assemblers = std::collections::HashMap::new();
    let frames = [
        method_frame(1, publish()),
        method_frame(2, publish()),
        header_frame(2, 2),
        header_frame(1, 4),
        body_frame(1, b"ab"),
        body_frame(2, b"xy"),
        body_frame(1, b"cd"),
    ];
    let mut bodies = Vec::new();
    for frame in frames {
        let assembler = assemblers
            .entry(frame.channel())
            .or_insert_with(|| ContentAssembler::new(100));
        if let Some(Assembled::Content(content)) = assembler.push(frame).unwrap() {
            bodies.push((content.channel, content.body));
        }
    }
    assert_eq!(
        bodies,
        vec![
            (2, Bytes::from_static(b"xy")),
            (1, Bytes::from_static(b"abcd"))
        ]
    );
}

proptest! {
    /// Any body, split by any `frame_max` and decoded from the wire, assembles into the same
    /// message; no frame exceeds `frame_max`.
    #[test]
    fn split_then_assembled_gives_the_message_back(
        body in prop::collection::vec(any::<u8>(), 0..2_000),
        properties: BasicProperties,
        frame_max in 9u32..600,
        channel: u16,
        deliver: bool,
    ) {
        let method: Method = if deliver {
            basic::Deliver::default().into()
        } else {
            publish()
        };
        let body = Bytes::from(body);
        let mut wire = bytes::BytesMut::new();
        method_frame(channel, method.clone()).encode(&mut wire);
        let content = ContentFrames::new(channel, basic::CLASS_ID, properties.clone(), body.clone(), frame_max);
        for frame in content {
            let start = wire.len();
            frame.encode(&mut wire);
            if matches!(frame, Frame::Body { .. }) {
                prop_assert!(wire.len() - start <= frame_max as usize);
                prop_assert!(wire.len() - start > FRAME_OVERHEAD as usize);
            }
        }
        let decoder = FrameDecoder::new(0);
        let mut assembler = ContentAssembler::new(u64::MAX);
        let mut assembled = Vec::new();
        while let Some(frame) = decoder.decode(&mut wire).unwrap() {
            assembled.extend(assembler.push(frame).unwrap());
        }
        let expected = Content {
            channel,
            method,
            header: ContentHeader::new(body.len() as u64, properties),
            body,
        };
        prop_assert_eq!(assembled, vec![Assembled::Content(expected)]);
        prop_assert!(assembler.is_idle());
    }
}
