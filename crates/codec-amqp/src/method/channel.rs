//! Class `channel` (20): opening, pausing and closing the channels multiplexed on a connection.

use crate::wire::{LongString, ShortString};

arguments! {
    /// `reserved_1` was `out-of-band`.
    pub struct Open {
        pub reserved_1: ShortString,
    }

    /// `reserved_1` was `channel-id`.
    pub struct OpenOk {
        pub reserved_1: LongString,
    }

    /// Asks the peer to stop (`active` false) or restart sending content.
    pub struct Flow {
        pub active: bool,
    }

    pub struct FlowOk {
        pub active: bool,
    }

    /// `class_id` and `method_id` name the method that caused the close, or are 0.
    pub struct Close {
        pub reply_code: u16,
        pub reply_text: ShortString,
        pub class_id: u16,
        pub method_id: u16,
    }

    pub struct CloseOk {}
}

class! {
    /// A method of class `channel`.
    Channel = 20, "channel" {
        Open = 10, "open";
        OpenOk = 11, "open-ok";
        Flow = 20, "flow";
        FlowOk = 21, "flow-ok";
        Close = 40, "close";
        CloseOk = 41, "close-ok";
    }
}
