//! Frames as pika encodes them (`fixtures/pika_frames.txt`, written by `fixtures/pika_frames.py`
//! with pika 1.3.2): every method pika knows in the classes the codec covers, and a published
//! message with every basic property and a field table of every type pika writes. Each decodes
//! to the method pika meant, with its fields in pika's order, and encodes back to pika's bytes.

use bytes::{Bytes, BytesMut};
use wharf_codec_amqp::{
    Assembled, ContentAssembler, FieldValue, Frame, FrameDecoder, Method, FRAME_MIN_SIZE,
};

const FIXTURE: &str = include_str!("fixtures/pika_frames.txt");

struct Case {
    name: String,
    bytes: Vec<u8>,
    expected: Vec<String>,
}

fn cases() -> Vec<Case> {
    FIXTURE
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, hex, expected] = fields[..] else {
                panic!("fixture line has {} fields: {line}", fields.len());
            };
            Case {
                name: name.to_owned(),
                bytes: decode_hex(hex),
                expected: expected
                    .split(';')
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_all(bytes: &[u8]) -> Vec<Frame> {
    let decoder = FrameDecoder::new(FRAME_MIN_SIZE);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    frames
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for frame in frames {
        frame.encode(&mut buf);
    }
    buf.to_vec()
}

#[test]
fn every_method_pika_sends_decodes_and_encodes_back() {
    let mut methods = 0;
    for case in cases().iter().filter(|case| case.name.contains('.')) {
        let frames = decode_all(&case.bytes);
        let [Frame::Method { channel: 1, method }] = &frames[..] else {
            panic!("{}: {frames:?}", case.name);
        };
        assert_eq!(method.name(), case.name);
        let shown = format!("{method:?}");
        for fragment in &case.expected {
            assert!(
                shown.contains(fragment.as_str()),
                "{}: no `{fragment}` in {shown}",
                case.name
            );
        }
        assert_eq!(encode_all(&frames), case.bytes, "{}", case.name);
        methods += 1;
    }
    assert_eq!(
        methods, 64,
        "pika's methods in the classes the codec covers"
    );
}

#[test]
fn content_as_pika_sends_it_assembles_with_every_property() {
    let case = cases()
        .into_iter()
        .find(|case| case.name == "content")
        .unwrap();
    let frames = decode_all(&case.bytes);
    assert_eq!(frames.len(), 4);
    assert_eq!(encode_all(&frames), case.bytes);
    let mut assembler = ContentAssembler::new(1 << 20);
    let mut assembled = Vec::new();
    for frame in frames {
        assembled.extend(assembler.push(frame).unwrap());
    }
    let [Assembled::Content(content)] = &assembled[..] else {
        panic!("{assembled:?}");
    };
    assert_eq!(content.channel, 3);
    assert!(matches!(content.method, Method::Basic(_)));
    assert_eq!(content.body, Bytes::from_static(b"0123456789"));
    let properties = &content.header.properties;
    assert_eq!(properties.flags(), 0xfffc, "all 14 properties");
    assert_eq!(properties.kind.as_deref(), Some("kind"));
    assert_eq!(properties.timestamp, Some(1_700_000_000));
    let headers = properties.headers.as_ref().unwrap();
    let tags: String = headers
        .iter()
        .map(|(_, value)| char::from(value.tag()))
        .collect();
    assert_eq!(tags, "SIltDTFVx");
    assert_eq!(
        headers.get("decimal"),
        Some(&FieldValue::Decimal(wharf_codec_amqp::Decimal {
            scale: 2,
            value: 12345
        }))
    );
}

#[test]
fn heartbeat_as_pika_sends_it() {
    let case = cases()
        .into_iter()
        .find(|case| case.name == "heartbeat")
        .unwrap();
    assert_eq!(decode_all(&case.bytes), vec![Frame::Heartbeat]);
}
