//! The numbers that tie packets together: the Packet Identifier that pairs a PUBLISH (QoS 1
//! and 2), SUBSCRIBE or UNSUBSCRIBE with its acknowledgements (MQTT 5.0 section 2.2.1), and
//! the Subscription Identifier that a server attaches to the messages a subscription matched
//! (MQTT 5.0 section 3.8.2.1.2). Both exclude 0 by type.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

use crate::varint::VARIABLE_INTEGER_MAX;

/// A Packet Identifier: a non-zero Two Byte Integer [MQTT-2.2.1-3]. Which identifiers are in
/// use is the session's business, not the codec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// `None` for 0, which no packet may carry.
    pub fn new(value: u16) -> Option<Self> {
        NonZeroU16::new(value).map(PacketId)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(value: NonZeroU16) -> Self {
        PacketId(value)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Subscription Identifier: a Variable Byte Integer from 1 to 268,435,455 (MQTT 5.0 section
/// 3.8.2.1.2; 0 is a Protocol Error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest identifier: the largest Variable Byte Integer.
    pub const MAX: u32 = VARIABLE_INTEGER_MAX;

    /// `None` for 0 and for values over [`SubscriptionId::MAX`].
    pub fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        NonZeroU32::new(value).map(SubscriptionId)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
