//! Class `basic` (60): publishing, consuming, getting and settling messages. `publish`,
//! `return`, `deliver` and `get-ok` are followed by content: a header frame and body frames
//! (see [`crate::content`]).

use crate::field::FieldTable;
use crate::wire::ShortString;

arguments! {
    /// Limits unacknowledged deliveries; `global` applies the limit to the whole channel
    /// (RabbitMQ: per consumer when false).
    pub struct Qos {
        pub prefetch_size: u32,
        pub prefetch_count: u16,
        pub global: bool,
    }

    pub struct QosOk {}

    /// `reserved_1` was `ticket`. An empty `consumer_tag` asks the server to make one.
    pub struct Consume {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub consumer_tag: ShortString,
        pub no_local: bool,
        pub no_ack: bool,
        pub exclusive: bool,
        pub no_wait: bool,
        pub arguments: FieldTable,
    }

    pub struct ConsumeOk {
        pub consumer_tag: ShortString,
    }

    /// Sent by either peer: RabbitMQ's server cancels a consumer whose queue is deleted.
    pub struct Cancel {
        pub consumer_tag: ShortString,
        pub no_wait: bool,
    }

    pub struct CancelOk {
        pub consumer_tag: ShortString,
    }

    /// Followed by content.
    pub struct Publish {
        pub reserved_1: u16,
        pub exchange: ShortString,
        pub routing_key: ShortString,
        pub mandatory: bool,
        pub immediate: bool,
    }

    /// An unroutable mandatory message sent back, followed by its content.
    pub struct Return {
        pub reply_code: u16,
        pub reply_text: ShortString,
        pub exchange: ShortString,
        pub routing_key: ShortString,
    }

    /// A message for a consumer, followed by its content.
    pub struct Deliver {
        pub consumer_tag: ShortString,
        pub delivery_tag: u64,
        pub redelivered: bool,
        pub exchange: ShortString,
        pub routing_key: ShortString,
    }

    pub struct Get {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub no_ack: bool,
    }

    /// The message `get` asked for, followed by its content.
    pub struct GetOk {
        pub delivery_tag: u64,
        pub redelivered: bool,
        pub exchange: ShortString,
        pub routing_key: ShortString,
        pub message_count: u32,
    }

    /// `reserved_1` was `cluster-id`.
    pub struct GetEmpty {
        pub reserved_1: ShortString,
    }

    /// Sent by the client, or by the server in confirm mode.
    pub struct Ack {
        pub delivery_tag: u64,
        pub multiple: bool,
    }

    pub struct Reject {
        pub delivery_tag: u64,
        pub requeue: bool,
    }

    /// Deprecated in favour of `recover`.
    pub struct RecoverAsync {
        pub requeue: bool,
    }

    pub struct Recover {
        pub requeue: bool,
    }

    pub struct RecoverOk {}

    /// RabbitMQ extension: `reject` for many messages, and the server's negative confirm.
    pub struct Nack {
        pub delivery_tag: u64,
        pub multiple: bool,
        pub requeue: bool,
    }
}

class! {
    /// A method of class `basic`.
    Basic = 60, "basic" {
        Qos = 10, "qos";
        QosOk = 11, "qos-ok";
        Consume = 20, "consume";
        ConsumeOk = 21, "consume-ok";
        Cancel = 30, "cancel";
        CancelOk = 31, "cancel-ok";
        Publish = 40, "publish";
        Return = 50, "return";
        Deliver = 60, "deliver";
        Get = 70, "get";
        GetOk = 71, "get-ok";
        GetEmpty = 72, "get-empty";
        Ack = 80, "ack";
        Reject = 90, "reject";
        RecoverAsync = 100, "recover-async";
        Recover = 110, "recover";
        RecoverOk = 111, "recover-ok";
        Nack = 120, "nack";
    }
}
