//! The two protocol versions the codec speaks. CONNECT names one in its Protocol Level byte
//! (MQTT 5.0 section 3.1.2.2, 3.1.1 section 3.1.2.2); every later packet of the connection
//! is read and written in that version.

use std::fmt;

/// An MQTT version, by the Protocol Level that CONNECT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1, Protocol Level 4.
    V311,
    /// MQTT 5.0, Protocol Level 5.
    V5,
}

impl ProtocolVersion {
    /// The Protocol Level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The version of a Protocol Level byte; `None` for MQTT 3.1 (level 3) and any other.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            4 => Some(ProtocolVersion::V311),
            5 => Some(ProtocolVersion::V5),
            _ => None,
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolVersion::V311 => f.write_str("MQTT 3.1.1"),
            ProtocolVersion::V5 => f.write_str("MQTT 5.0"),
        }
    }
}
