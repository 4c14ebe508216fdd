//! The length-prefixed values of MQTT as types that cannot break the wire's rules: a
//! [`Utf8String`] holds at most 65,535 bytes and no U+0000, a [`Binary`] at most 65,535
//! bytes, so that encoding them cannot fail. A [`UserProperty`] is the name-value string pair
//! of MQTT 5.0.
//!
//! Decoding checks the rest of the string rules of MQTT 5.0 section 1.5.4: well-formed UTF-8
//! (which excludes the surrogates U+D800 to U+DFFF [MQTT-1.5.4-1]) and no U+0000
//! [MQTT-1.5.4-2]. Control characters and non-characters are allowed: the spec only says a
//! sender SHOULD NOT use them, and the door may refuse them where they matter (topic names).

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The most bytes a string or binary value holds: its length is a Two Byte Integer.
pub const STRING_BYTES_MAX: usize = u16::MAX as usize;

/// A UTF-8 Encoded String (MQTT 5.0 section 1.5.4): at most [`STRING_BYTES_MAX`] bytes of
/// UTF-8 without U+0000.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8String(String);

/// Why a string cannot be a [`Utf8String`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StringError {
    #[error("a string holds at most 65535 bytes, this one has {length}")]
    TooLong { length: usize },
    #[error("a string may not contain U+0000 (found at byte {position})")]
    ContainsNull { position: usize },
}

impl Utf8String {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The length on the wire; the type keeps it within a `u16`.
    pub(crate) fn len_u16(&self) -> u16 {
        u16::try_from(self.0.len()).unwrap_or(u16::MAX)
    }
}

impl TryFrom<String> for Utf8String {
    type Error = StringError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.len() > STRING_BYTES_MAX {
            return Err(StringError::TooLong {
                length: value.len(),
            });
        }
        if let Some(position) = value.bytes().position(|byte| byte == 0) {
            return Err(StringError::ContainsNull { position });
        }
        Ok(Utf8String(value))
    }
}

impl TryFrom<&str> for Utf8String {
    type Error = StringError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Utf8String::try_from(value.to_owned())
    }
}

impl Deref for Utf8String {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Utf8String {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Utf8String {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Utf8String {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Binary Data (MQTT 5.0 section 1.5.6): at most [`STRING_BYTES_MAX`] bytes of any content,
/// shared with the packet it came in. Passwords, will payloads, correlation and authentication
/// data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Binary(Bytes);

/// Bytes too long for [`Binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("binary data holds at most 65535 bytes, this has {length}")]
pub struct BinaryTooLong {
    pub length: usize,
}

impl Binary {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The length on the wire; the type keeps it within a `u16`.
    pub(crate) fn len_u16(&self) -> u16 {
        u16::try_from(self.0.len()).unwrap_or(u16::MAX)
    }

    /// Bytes the reader took after a two-byte length, so at most [`STRING_BYTES_MAX`].
    pub(crate) fn from_wire(bytes: Bytes) -> Self {
        debug_assert!(bytes.len() <= STRING_BYTES_MAX);
        Binary(bytes)
    }
}

impl TryFrom<Bytes> for Binary {
    type Error = BinaryTooLong;

    fn try_from(value: Bytes) -> Result<Self, Self::Error> {
        if value.len() > STRING_BYTES_MAX {
            return Err(BinaryTooLong {
                length: value.len(),
            });
        }
        Ok(Binary(value))
    }
}

impl TryFrom<Vec<u8>> for Binary {
    type Error = BinaryTooLong;

    fn try_from(value: Vec<u8>) -> Result<Self, Self::Error> {
        Binary::try_from(Bytes::from(value))
    }
}

impl TryFrom<&[u8]> for Binary {
    type Error = BinaryTooLong;

    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        Binary::try_from(Bytes::copy_from_slice(value))
    }
}

impl Deref for Binary {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A User Property (MQTT 5.0 section 3.1.2.11.8 and others): a name-value pair the
/// application defines. The same name may appear more than once, and the order is kept
/// [MQTT-3.3.2-18].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserProperty {
    pub name: Utf8String,
    pub value: Utf8String,
}
