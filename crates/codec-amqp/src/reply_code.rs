//! Reply codes of `connection.close`, `channel.close` and `basic.return` (AMQP 0-9-1 section
//! 1.4.2, the `reply-code` domain), and whether each closes a channel or the connection.

/// A reply code the spec defines. Codes a peer sends that are not listed here stay plain `u16`s
/// in the methods that carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    /// `reply-success`: a normal close.
    Success = 200,
    /// `content-too-large`: the server cannot take a message of this size now.
    ContentTooLarge = 311,
    /// `no-route`: a mandatory message matched no queue (sent in `basic.return`).
    NoRoute = 312,
    /// `no-consumers`: an immediate message found no consumer ready (sent in `basic.return`).
    NoConsumers = 313,
    /// `connection-forced`: an operator closed the connection.
    ConnectionForced = 320,
    /// `invalid-path`: the virtual host does not exist or may not be opened.
    InvalidPath = 402,
    /// `access-refused`: the client may not reach the resource.
    AccessRefused = 403,
    /// `not-found`: the resource does not exist.
    NotFound = 404,
    /// `resource-locked`: another client holds the resource exclusively.
    ResourceLocked = 405,
    /// `precondition-failed`: the arguments conflict with the resource's state.
    PreconditionFailed = 406,
    /// `frame-error`: a malformed frame.
    FrameError = 501,
    /// `syntax-error`: a frame with illegal field values.
    SyntaxError = 502,
    /// `command-invalid`: a method not valid now (e.g. a second `channel.open`).
    CommandInvalid = 503,
    /// `channel-error`: a channel that is not open, or a channel number out of range.
    ChannelError = 504,
    /// `unexpected-frame`: a frame not expected now (e.g. a body frame with no header).
    UnexpectedFrame = 505,
    /// `resource-error`: the server ran out of a resource.
    ResourceError = 506,
    /// `not-allowed`: the client broke a rule of the server (e.g. an invalid `frame_max`).
    NotAllowed = 530,
    /// `not-implemented`: the server does not implement the method or class.
    NotImplemented = 540,
    /// `internal-error`: the server failed internally.
    InternalError = 541,
}

/// What an error reply closes: the spec's soft errors close a channel, hard errors the whole
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// 200 is no error at all.
    Success,
    /// A soft error: `channel.close`, the connection and its other channels stay.
    Channel,
    /// A hard error: `connection.close`.
    Connection,
}

impl ReplyCode {
    /// Every reply code, in numeric order.
    pub const ALL: [ReplyCode; 19] = [
        ReplyCode::Success,
        ReplyCode::ContentTooLarge,
        ReplyCode::NoRoute,
        ReplyCode::NoConsumers,
        ReplyCode::ConnectionForced,
        ReplyCode::InvalidPath,
        ReplyCode::AccessRefused,
        ReplyCode::NotFound,
        ReplyCode::ResourceLocked,
        ReplyCode::PreconditionFailed,
        ReplyCode::FrameError,
        ReplyCode::SyntaxError,
        ReplyCode::CommandInvalid,
        ReplyCode::ChannelError,
        ReplyCode::UnexpectedFrame,
        ReplyCode::ResourceError,
        ReplyCode::NotAllowed,
        ReplyCode::NotImplemented,
        ReplyCode::InternalError,
    ];

    /// The number on the wire.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Whether the reply closes a channel or the connection (the spec's soft and hard errors).
    pub const fn scope(self) -> Scope {
        match self {
            ReplyCode::Success => Scope::Success,
            ReplyCode::ContentTooLarge
            | ReplyCode::NoRoute
            | ReplyCode::NoConsumers
            | ReplyCode::AccessRefused
            | ReplyCode::NotFound
            | ReplyCode::ResourceLocked
            | ReplyCode::PreconditionFailed => Scope::Channel,
            ReplyCode::ConnectionForced
            | ReplyCode::InvalidPath
            | ReplyCode::FrameError
            | ReplyCode::SyntaxError
            | ReplyCode::CommandInvalid
            | ReplyCode::ChannelError
            | ReplyCode::UnexpectedFrame
            | ReplyCode::ResourceError
            | ReplyCode::NotAllowed
            | ReplyCode::NotImplemented
            | ReplyCode::InternalError => Scope::Connection,
        }
    }

    /// The spec's name, as RabbitMQ writes it in `reply-text` (`NOT_FOUND`).
    pub const fn name(self) -> &'static str {
        match self {
            ReplyCode::Success => "REPLY_SUCCESS",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// A number that is not one of the spec's reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an AMQP 0-9-1 reply code")]
pub struct ReplyCodeUnknown(pub u16);

impl TryFrom<u16> for ReplyCode {
    type Error = ReplyCodeUnknown;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        ReplyCode::ALL
            .into_iter()
            .find(|reply| reply.code() == code)
            .ok_or(ReplyCodeUnknown(code))
    }
}

impl From<ReplyCode> for u16 {
    fn from(reply: ReplyCode) -> u16 {
        reply.code()
    }
}
