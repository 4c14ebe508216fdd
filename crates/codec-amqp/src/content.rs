//! Content: a message travels as a method (`basic.publish`, `basic.deliver`, `basic.return`,
//! `basic.get-ok`), then a header frame, then body frames of at most `frame_max - 8` bytes
//! each, all on one channel and with no other frame of that channel in between (AMQP 0-9-1
//! section 4.2.6). Frames of other channels, and heartbeats, may come in between.
//!
//! [`ContentFrames`] splits a body into frames for sending; [`ContentAssembler`] collects one
//! channel's frames back into whole messages.

use bytes::{Bytes, BytesMut};

use crate::error::CodecError;
use crate::frame::{Frame, FRAME_OVERHEAD};
use crate::method::Method;
use crate::properties::{BasicProperties, ContentHeader};

/// The most bytes reserved at once for a body of several frames. The header announces the
/// size, but a peer may announce much and send little; past this the buffer grows as frames
/// come, so memory follows the bytes received.
const BODY_PREALLOCATION_MAX: u64 = 16 << 20;

/// The header frame and then the body frames of one message, body frames sharing the body's
/// bytes. An empty body has no body frames.
#[derive(Debug, Clone)]
pub struct ContentFrames {
    channel: u16,
    header: Option<ContentHeader>,
    body: Bytes,
    chunk_max: usize,
}

impl ContentFrames {
    /// Splits `body` for a peer that accepts frames of `frame_max` bytes (0: no limit).
    /// `frame_max` must be at least [`crate::FRAME_MIN_SIZE`], as `connection.tune-ok` requires;
    /// a smaller value still yields frames of one byte of body each rather than fail.
    pub fn new(
        channel: u16,
        class_id: u16,
        properties: BasicProperties,
        body: Bytes,
        frame_max: u32,
    ) -> Self {
        let chunk_max = match frame_max {
            0 => u32::MAX - FRAME_OVERHEAD,
            frame_max => frame_max.saturating_sub(FRAME_OVERHEAD).max(1),
        };
        let header = ContentHeader {
            class_id,
            body_size: body.len() as u64,
            properties,
        };
        ContentFrames {
            channel,
            header: Some(header),
            body,
            chunk_max: usize::try_from(chunk_max).unwrap_or(usize::MAX),
        }
    }
}

impl Iterator for ContentFrames {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if let Some(header) = self.header.take() {
            return Some(Frame::Header {
                channel: self.channel,
                header,
            });
        }
        if self.body.is_empty() {
            return None;
        }
        let length = self.body.len().min(self.chunk_max);
        Some(Frame::Body {
            channel: self.channel,
            payload: self.body.split_to(length),
        })
    }
}

/// A method with its content, assembled from its frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub channel: u16,
    /// `basic.publish`, `basic.deliver`, `basic.return` or `basic.get-ok`.
    pub method: Method,
    pub header: ContentHeader,
    pub body: Bytes,
}

/// What one frame completed.
#[derive(Debug, Clone, PartialEq)]
pub enum Assembled {
    /// A frame that is not part of content (a method without content, a heartbeat), passed on.
    Frame(Frame),
    /// The last frame of a message.
    Content(Content),
}

/// Collects the frames of one channel into messages. Frames of other channels must go to
/// their own assemblers.
#[derive(Debug)]
pub struct ContentAssembler {
    body_size_max: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    Idle,
    Header {
        channel: u16,
        method: Method,
    },
    Body {
        channel: u16,
        method: Method,
        // Boxed: the 14 properties would make every state as large as this one.
        header: Box<ContentHeader>,
        body: Body,
    },
}

/// The body received so far: one frame's bytes kept as they are (most messages fit in one
/// frame), copied into one buffer only when a second frame comes.
#[derive(Debug)]
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl ContentAssembler {
    /// `body_size_max` bounds the body a header may announce, and so the memory a message
    /// takes before it is complete.
    pub fn new(body_size_max: u64) -> Self {
        ContentAssembler {
            body_size_max,
            state: State::Idle,
        }
    }

    /// True when no message is partly received.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Takes the next frame of the channel: `Ok(None)` while a message is incomplete, an
    /// error for a frame out of order or a body whose size differs from its header's. After an
    /// error the partial message is dropped and the assembler is idle again.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Assembled>, CodecError> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => self.push_idle(frame),
            State::Header { channel, method } => self.push_header(channel, method, frame),
            State::Body {
                channel,
                method,
                header,
                body,
            } => self.push_body(channel, method, header, body, frame),
        }
    }

    fn push_idle(&mut self, frame: Frame) -> Result<Option<Assembled>, CodecError> {
        match frame {
            Frame::Method { channel, method } if method.has_content() => {
                self.state = State::Header { channel, method };
                Ok(None)
            }
            Frame::Header { channel, .. } => Err(unexpected("header", channel, "content")),
            Frame::Body { channel, .. } => Err(unexpected("body", channel, "content")),
            frame => Ok(Some(Assembled::Frame(frame))),
        }
    }

    fn push_header(
        &mut self,
        channel: u16,
        method: Method,
        frame: Frame,
    ) -> Result<Option<Assembled>, CodecError> {
        let header = match frame {
            Frame::Heartbeat => {
                self.state = State::Header { channel, method };
                return Ok(Some(Assembled::Frame(Frame::Heartbeat)));
            }
            Frame::Header {
                channel: found,
                header,
            } => {
                same_channel(channel, found)?;
                header
            }
            Frame::Body { channel: found, .. } => {
                same_channel(channel, found)?;
                return Err(unexpected("body", channel, "header"));
            }
            Frame::Method {
                channel: found,
                method: next,
            } => {
                same_channel(channel, found)?;
                return Err(interrupted(&next, &method, channel));
            }
        };
        if header.class_id != method.class_id() {
            return Err(CodecError::ContentHeaderClass {
                method_class: method.class_id(),
                header_class: header.class_id,
            });
        }
        if header.body_size > self.body_size_max {
            return Err(CodecError::BodyTooLarge {
                body_size: header.body_size,
                body_size_max: self.body_size_max,
            });
        }
        self.finish_or_wait(channel, method, Box::new(header), Body::Empty)
    }

    fn push_body(
        &mut self,
        channel: u16,
        method: Method,
        header: Box<ContentHeader>,
        body: Body,
        frame: Frame,
    ) -> Result<Option<Assembled>, CodecError> {
        let payload = match frame {
            Frame::Heartbeat => {
                self.state = State::Body {
                    channel,
                    method,
                    header,
                    body,
                };
                return Ok(Some(Assembled::Frame(Frame::Heartbeat)));
            }
            Frame::Body {
                channel: found,
                payload,
            } => {
                same_channel(channel, found)?;
                payload
            }
            Frame::Header { channel: found, .. } => {
                same_channel(channel, found)?;
                return Err(unexpected("header", channel, "body"));
            }
            Frame::Method {
                channel: found,
                method: next,
            } => {
                same_channel(channel, found)?;
                return Err(interrupted(&next, &method, channel));
            }
        };
        let received = body.len() as u64 + payload.len() as u64;
        if received > header.body_size {
            return Err(CodecError::BodyOverrun {
                body_size: header.body_size,
                received,
            });
        }
        let body = body.append(payload, header.body_size);
        self.finish_or_wait(channel, method, header, body)
    }

    fn finish_or_wait(
        &mut self,
        channel: u16,
        method: Method,
        header: Box<ContentHeader>,
        body: Body,
    ) -> Result<Option<Assembled>, CodecError> {
        if (body.len() as u64) < header.body_size {
            self.state = State::Body {
                channel,
                method,
                header,
                body,
            };
            return Ok(None);
        }
        Ok(Some(Assembled::Content(Content {
            channel,
            method,
            header: *header,
            body: body.into_bytes(),
        })))
    }
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(bytes) => bytes.len(),
            Body::Many(bytes) => bytes.len(),
        }
    }

    /// Adds a frame's bytes; `body_size` sizes the buffer once, up to
    /// [`BODY_PREALLOCATION_MAX`].
    fn append(self, payload: Bytes, body_size: u64) -> Body {
        match self {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let capacity = body_size.min(BODY_PREALLOCATION_MAX) as usize;
                let mut bytes = BytesMut::with_capacity(capacity);
                bytes.extend_from_slice(&first);
                bytes.extend_from_slice(&payload);
                Body::Many(bytes)
            }
            Body::Many(mut bytes) => {
                bytes.extend_from_slice(&payload);
                Body::Many(bytes)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(bytes) => bytes,
            Body::Many(bytes) => bytes.freeze(),
        }
    }
}

/// An assembler serves one channel; a frame of another is the caller's mistake or a peer's
/// channel number out of step.
fn same_channel(expected: u16, found: u16) -> Result<(), CodecError> {
    if expected == found {
        return Ok(());
    }
    Err(CodecError::ContentChannel { expected, found })
}

fn unexpected(frame: &'static str, channel: u16, expected: &'static str) -> CodecError {
    CodecError::ContentUnexpected {
        frame,
        channel,
        expected,
    }
}

fn interrupted(next: &Method, pending: &Method, channel: u16) -> CodecError {
    CodecError::ContentInterrupted {
        method: next.name(),
        pending: pending.name(),
        channel,
    }
}
