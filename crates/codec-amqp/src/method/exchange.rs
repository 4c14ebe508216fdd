//! Class `exchange` (40): declaring and deleting exchanges, and RabbitMQ's exchange-to-exchange
//! bindings (`bind`, `unbind`).

use crate::field::FieldTable;
use crate::wire::ShortString;

arguments! {
    /// `reserved_1` was `ticket`. `kind` is the spec's `type` (`direct`, `fanout`, `topic`,
    /// `headers`).
    pub struct Declare {
        pub reserved_1: u16,
        pub exchange: ShortString,
        pub kind: ShortString,
        pub passive: bool,
        pub durable: bool,
        pub auto_delete: bool,
        pub internal: bool,
        pub no_wait: bool,
        pub arguments: FieldTable,
    }

    pub struct DeclareOk {}

    pub struct Delete {
        pub reserved_1: u16,
        pub exchange: ShortString,
        pub if_unused: bool,
        pub no_wait: bool,
    }

    pub struct DeleteOk {}

    /// Routes messages from exchange `source` to exchange `destination`.
    pub struct Bind {
        pub reserved_1: u16,
        pub destination: ShortString,
        pub source: ShortString,
        pub routing_key: ShortString,
        pub no_wait: bool,
        pub arguments: FieldTable,
    }

    pub struct BindOk {}

    pub struct Unbind {
        pub reserved_1: u16,
        pub destination: ShortString,
        pub source: ShortString,
        pub routing_key: ShortString,
        pub no_wait: bool,
        pub arguments: FieldTable,
    }

    pub struct UnbindOk {}
}

class! {
    /// A method of class `exchange`.
    Exchange = 40, "exchange" {
        Declare = 10, "declare";
        DeclareOk = 11, "declare-ok";
        Delete = 20, "delete";
        DeleteOk = 21, "delete-ok";
        Bind = 30, "bind";
        BindOk = 31, "bind-ok";
        Unbind = 40, "unbind";
        // 51, not 41: RabbitMQ's id for exchange.unbind-ok.
        UnbindOk = 51, "unbind-ok";
    }
}
