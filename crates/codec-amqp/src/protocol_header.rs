//! The protocol header a client sends before its first frame (AMQP 0-9-1 section 4.2.2).
//!
//! ```text
//! 'A' 'M' 'Q' 'P' | 0 | 0 | 9 | 1      (protocol id 0, major 0, minor 9, revision 1)
//! ```
//!
//! A client that sends anything else (another version, or not AMQP at all) is told what the
//! server speaks: the server writes [`PROTOCOL_HEADER`] and closes the socket.

use bytes::{Buf, BytesMut};

use crate::error::CodecError;

/// The header of AMQP 0-9-1, sent by the client, and by the server to refuse another version.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// Takes the protocol header off the front of `buf`: `Ok(Some(()))` once all 8 bytes are
/// there and match, `Ok(None)` while they are a correct but incomplete prefix, and
/// [`CodecError::ProtocolHeaderMismatch`] as soon as a byte differs (an HTTP request fails at
/// its first byte, without waiting for eight). On a mismatch nothing is consumed; the server
/// answers with [`PROTOCOL_HEADER`] and closes.
pub fn decode_protocol_header(buf: &mut BytesMut) -> Result<Option<()>, CodecError> {
    let length = buf.len().min(PROTOCOL_HEADER.len());
    if buf[..length] != PROTOCOL_HEADER[..length] {
        return Err(CodecError::ProtocolHeaderMismatch {
            received: buf[..length].to_vec(),
        });
    }
    if length < PROTOCOL_HEADER.len() {
        return Ok(None);
    }
    buf.advance(PROTOCOL_HEADER.len());
    Ok(Some(()))
}
