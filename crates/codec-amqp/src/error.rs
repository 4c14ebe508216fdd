//! What can be wrong with the bytes a peer sent, or with the order of its frames.
//!
//! The errors know AMQP and nothing of Wharf: [`CodecError::reply_code`] gives the reply code the
//! spec asks for, whose [`ReplyCode::scope`] says whether the channel or the connection closes;
//! the door decides the rest.

use thiserror::Error;

use crate::reply_code::ReplyCode;

/// A frame, method or content that cannot be decoded or does not fit the frames around it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The peer opened with something other than `AMQP\x00\x00\x09\x01`. The server answers
    /// with [`crate::PROTOCOL_HEADER`] and closes the socket (AMQP 0-9-1 section 4.2.2).
    #[error("protocol header {received:02x?} is not AMQP 0-9-1")]
    ProtocolHeaderMismatch { received: Vec<u8> },
    /// The frame, header and frame-end included, is larger than the negotiated `frame_max`.
    #[error("frame of {size} bytes is larger than frame_max {frame_max}")]
    FrameTooLarge { size: u64, frame_max: u32 },
    #[error("frame type {frame_type} is unknown (1 method, 2 header, 3 body, 8 heartbeat)")]
    FrameTypeUnknown { frame_type: u8 },
    #[error("frame ends with {found:#04x} instead of frame-end 0xce")]
    FrameEndInvalid { found: u8 },
    #[error("heartbeat on channel {channel}; heartbeats belong to channel 0")]
    HeartbeatChannel { channel: u16 },
    #[error("heartbeat carries {size} payload bytes; it must be empty")]
    HeartbeatPayload { size: u32 },
    /// A method or content header payload ends before its fixed leading fields.
    #[error("{frame} frame payload of {have} bytes is shorter than its {need} leading bytes")]
    PayloadTruncated {
        frame: &'static str,
        need: usize,
        have: usize,
    },
    #[error("class {class_id} is unknown")]
    ClassUnknown { class_id: u16 },
    #[error("method {method_id} of class {class_id} is unknown")]
    MethodUnknown { class_id: u16, method_id: u16 },
    #[error("{method}: argument {field}: {source}")]
    Argument {
        method: &'static str,
        field: &'static str,
        #[source]
        source: ValueError,
    },
    #[error("{frame} frame has {count} bytes after its last field")]
    TrailingBytes { frame: &'static str, count: usize },
    /// Only class basic carries content in AMQP 0-9-1.
    #[error("content header of class {class_id}; only basic (60) carries content")]
    ContentClass { class_id: u16 },
    #[error("content header weight {weight}; it must be 0")]
    ContentWeight { weight: u16 },
    #[error("property flags {flags:#06x} set bits that basic does not define")]
    PropertyFlags { flags: u16 },
    #[error("property {property}: {source}")]
    Property {
        property: &'static str,
        #[source]
        source: ValueError,
    },
    /// A content header or body frame came while no content was expected (section 4.2.6).
    #[error("{frame} frame on channel {channel} while no {expected} was expected")]
    ContentUnexpected {
        frame: &'static str,
        channel: u16,
        expected: &'static str,
    },
    /// A method frame came before the content of the previous method was complete.
    #[error("method {method} on channel {channel} before the content of {pending} was complete")]
    ContentInterrupted {
        method: &'static str,
        pending: &'static str,
        channel: u16,
    },
    #[error("frame on channel {found} while content on channel {expected} is incomplete")]
    ContentChannel { expected: u16, found: u16 },
    #[error("content header of class {header_class} after a method of class {method_class}")]
    ContentHeaderClass {
        method_class: u16,
        header_class: u16,
    },
    /// Body frames carried more bytes than the header announced.
    #[error("body frames carry {received} bytes, more than the {body_size} the header announced")]
    BodyOverrun { body_size: u64, received: u64 },
    #[error("body of {body_size} bytes is larger than the limit of {body_size_max}")]
    BodyTooLarge { body_size: u64, body_size_max: u64 },
}

/// A value inside a payload that cannot be decoded. [`CodecError`] says where it sits.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValueError {
    #[error("needs {need} bytes, {have} left")]
    Truncated { need: usize, have: usize },
    #[error("short string is not UTF-8 (valid up to byte {valid_up_to})")]
    ShortStringUtf8 { valid_up_to: usize },
    #[error("{count} bytes after the value")]
    TrailingBytes { count: usize },
    #[error("field value type {tag:#04x} is unknown")]
    FieldTypeUnknown { tag: u8 },
    #[error("field tables and arrays nest deeper than {max} levels")]
    NestingTooDeep { max: usize },
}

/// A method argument that cannot be decoded, before the class names the method.
#[derive(Debug)]
pub(crate) struct ArgumentError {
    pub(crate) field: &'static str,
    pub(crate) source: ValueError,
}

impl ArgumentError {
    pub(crate) fn in_method(self, method: &'static str) -> CodecError {
        CodecError::Argument {
            method,
            field: self.field,
            source: self.source,
        }
    }
}

impl CodecError {
    /// The reply code of the `connection.close` the server sends for this error: malformed
    /// frames are frame errors (501), undecodable fields syntax errors (502), frames out of
    /// order unexpected frames (505), unknown classes and methods not implemented (540), and
    /// bodies over the limit content too large (311, which RabbitMQ sends as 406 on the channel).
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            CodecError::ProtocolHeaderMismatch { .. }
            | CodecError::FrameTooLarge { .. }
            | CodecError::FrameTypeUnknown { .. }
            | CodecError::FrameEndInvalid { .. }
            | CodecError::HeartbeatChannel { .. }
            | CodecError::HeartbeatPayload { .. }
            | CodecError::PayloadTruncated { .. } => ReplyCode::FrameError,
            CodecError::Argument { .. }
            | CodecError::TrailingBytes { .. }
            | CodecError::ContentWeight { .. }
            | CodecError::PropertyFlags { .. }
            | CodecError::Property { .. } => ReplyCode::SyntaxError,
            CodecError::ClassUnknown { .. }
            | CodecError::MethodUnknown { .. }
            | CodecError::ContentClass { .. } => ReplyCode::NotImplemented,
            CodecError::ContentUnexpected { .. }
            | CodecError::ContentInterrupted { .. }
            | CodecError::ContentChannel { .. }
            | CodecError::ContentHeaderClass { .. }
            | CodecError::BodyOverrun { .. } => ReplyCode::UnexpectedFrame,
            CodecError::BodyTooLarge { .. } => ReplyCode::ContentTooLarge,
        }
    }
}
