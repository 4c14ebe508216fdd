//! Frames: the unit on the wire after the protocol header (AMQP 0-9-1 section 4.2.3).
//!
//! ```text
//! type u8 | channel u16 | size u32 | payload (size bytes) | frame-end 0xce
//!
//! type 1 method     payload: class-id, method-id, arguments   (crate::method)
//!      2 header     payload: content header                   (crate::properties)
//!      3 body       payload: a slice of the message body
//!      8 heartbeat  channel 0, empty payload
//! ```
//!
//! [`FrameDecoder::decode`] takes whole frames off the front of a read buffer, one per call,
//! and returns `Ok(None)` until a frame is complete. A frame over `frame_max` is refused from
//! its 7-byte header, before its payload is waited for.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::CodecError;
use crate::method::Method;
use crate::properties::ContentHeader;
use crate::wire::{length_u32, Writer};

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that closes every frame; anything else there means the stream is out of step.
pub const FRAME_END: u8 = 0xce;
/// Type, channel and size in front of the payload.
pub const FRAME_HEADER_SIZE: usize = 7;
/// Bytes a frame adds to its payload: the 7-byte header and the frame-end octet. A body frame
/// carries at most `frame_max - FRAME_OVERHEAD` bytes of body.
pub const FRAME_OVERHEAD: u32 = 8;
/// The smallest `frame_max` a peer may set, and the limit until `connection.tune-ok` sets one
/// (section 4.2.3, `frame-min-size`).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// One frame, its payload decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method { channel: u16, method: Method },
    Header { channel: u16, header: ContentHeader },
    Body { channel: u16, payload: Bytes },
    Heartbeat,
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }

    /// The bytes [`Frame::encode`] appends: to size a buffer, or to check a frame against the
    /// peer's `frame_max` before sending it.
    pub fn encoded_len(&self) -> usize {
        let payload = match self {
            Frame::Method { method, .. } => method.encoded_len(),
            Frame::Header { header, .. } => header.encoded_len(),
            Frame::Body { payload, .. } => payload.len(),
            Frame::Heartbeat => 0,
        };
        FRAME_HEADER_SIZE + payload + 1
    }

    /// Appends the frame to `buf`. A frame larger than the peer's `frame_max` is the caller's
    /// to avoid: [`crate::content::ContentFrames`] splits bodies to fit.
    pub fn encode(&self, buf: &mut BytesMut) {
        let start = buf.len();
        let (frame_type, channel) = match self {
            Frame::Method { channel, .. } => (FRAME_METHOD, *channel),
            Frame::Header { channel, .. } => (FRAME_HEADER, *channel),
            Frame::Body { channel, .. } => (FRAME_BODY, *channel),
            Frame::Heartbeat => (FRAME_HEARTBEAT, 0),
        };
        let mut writer = Writer::new(buf);
        writer.write_u8(frame_type);
        writer.write_u16(channel);
        writer.write_u32(0);
        match self {
            Frame::Method { method, .. } => method.encode(buf),
            Frame::Header { header, .. } => header.encode(buf),
            Frame::Body { payload, .. } => buf.extend_from_slice(payload),
            Frame::Heartbeat => {}
        }
        let size = length_u32(buf.len() - start - FRAME_HEADER_SIZE);
        buf[start + 3..start + FRAME_HEADER_SIZE].copy_from_slice(&size.to_be_bytes());
        buf.extend_from_slice(&[FRAME_END]);
    }
}

/// Decodes frames from a connection's read buffer, refusing frames over `frame_max`.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    frame_max: u32,
}

impl Default for FrameDecoder {
    /// A decoder for a connection before `connection.tune-ok`.
    fn default() -> Self {
        FrameDecoder::new(FRAME_MIN_SIZE)
    }
}

impl FrameDecoder {
    /// `frame_max` is the largest frame accepted, header and frame-end included; 0 accepts
    /// any size, as in `connection.tune` (a server should not offer that: it lets a client
    /// make it buffer 4 GiB).
    pub fn new(frame_max: u32) -> Self {
        FrameDecoder { frame_max }
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// Sets the limit negotiated by `connection.tune` and `tune-ok`.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Takes one whole frame off the front of `buf`: `Ok(None)` while the frame is
    /// incomplete (nothing is consumed), an error when the bytes cannot be a valid frame. After
    /// an error the stream is out of step; the connection must close.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(header) = buf.get(..FRAME_HEADER_SIZE) else {
            return Ok(None);
        };
        let frame_type = header[0];
        let channel = u16::from_be_bytes([header[1], header[2]]);
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
        if !matches!(
            frame_type,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(CodecError::FrameTypeUnknown { frame_type });
        }
        let frame_size = u64::from(size) + u64::from(FRAME_OVERHEAD);
        let too_large = CodecError::FrameTooLarge {
            size: frame_size,
            frame_max: self.frame_max,
        };
        if self.frame_max != 0 && frame_size > u64::from(self.frame_max) {
            return Err(too_large);
        }
        // Only on a 16-bit target could a u32 frame not fit in memory.
        let frame_size = usize::try_from(frame_size).map_err(|_| too_large)?;
        let Some(&found) = buf.get(frame_size - 1) else {
            return Ok(None);
        };
        if found != FRAME_END {
            return Err(CodecError::FrameEndInvalid { found });
        }
        let mut frame = buf.split_to(frame_size);
        frame.advance(FRAME_HEADER_SIZE);
        frame.truncate(frame_size - FRAME_HEADER_SIZE - 1);
        decode_payload(frame_type, channel, frame.freeze()).map(Some)
    }
}

fn decode_payload(frame_type: u8, channel: u16, payload: Bytes) -> Result<Frame, CodecError> {
    match frame_type {
        FRAME_METHOD => Ok(Frame::Method {
            channel,
            method: Method::decode(payload)?,
        }),
        FRAME_HEADER => Ok(Frame::Header {
            channel,
            header: ContentHeader::decode(payload)?,
        }),
        FRAME_BODY => Ok(Frame::Body { channel, payload }),
        FRAME_HEARTBEAT => {
            if channel != 0 {
                return Err(CodecError::HeartbeatChannel { channel });
            }
            if !payload.is_empty() {
                return Err(CodecError::HeartbeatPayload {
                    size: length_u32(payload.len()),
                });
            }
            Ok(Frame::Heartbeat)
        }
        frame_type => Err(CodecError::FrameTypeUnknown { frame_type }),
    }
}
