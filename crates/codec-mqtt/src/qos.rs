//! Quality of Service levels (MQTT 5.0 section 4.3, 3.1.1 section 4.3): two bits on the wire
//! in the PUBLISH fixed header, the CONNECT will flags and the subscription options. The
//! value 3 is not a level; each place that reads the bits says what its presence means.

use std::fmt;

/// A delivery guarantee between two hops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QoS {
    /// QoS 0: sent once, no acknowledgement.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: PUBLISH, PUBACK; may arrive more than once.
    AtLeastOnce = 1,
    /// QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP; arrives once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The level's number on the wire.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// A QoS of 3, or any other number that is not a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("QoS {0} is not a level (0, 1 or 2)")]
pub struct QoSInvalid(pub u8);

impl TryFrom<u8> for QoS {
    type Error = QoSInvalid;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(QoSInvalid(other)),
        }
    }
}

impl fmt::Display for QoS {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QoS {}", self.level())
    }
}
