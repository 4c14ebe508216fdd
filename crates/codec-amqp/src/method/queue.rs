//! Class `queue` (50): declaring, binding, purging and deleting queues.

use crate::field::FieldTable;
use crate::wire::ShortString;

arguments! {
    /// `reserved_1` was `ticket`. An empty `queue` asks the server to name it.
    pub struct Declare {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub passive: bool,
        pub durable: bool,
        pub exclusive: bool,
        pub auto_delete: bool,
        pub no_wait: bool,
        pub arguments: FieldTable,
    }

    pub struct DeclareOk {
        pub queue: ShortString,
        pub message_count: u32,
        pub consumer_count: u32,
    }

    pub struct Bind {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub exchange: ShortString,
        pub routing_key: ShortString,
        pub no_wait: bool,
        pub arguments: FieldTable,
    }

    pub struct BindOk {}

    pub struct Purge {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub no_wait: bool,
    }

    pub struct PurgeOk {
        pub message_count: u32,
    }

    pub struct Delete {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub if_unused: bool,
        pub if_empty: bool,
        pub no_wait: bool,
    }

    pub struct DeleteOk {
        pub message_count: u32,
    }

    /// Unlike `bind`, `unbind` has no `no_wait`.
    pub struct Unbind {
        pub reserved_1: u16,
        pub queue: ShortString,
        pub exchange: ShortString,
        pub routing_key: ShortString,
        pub arguments: FieldTable,
    }

    pub struct UnbindOk {}
}

class! {
    /// A method of class `queue`.
    Queue = 50, "queue" {
        Declare = 10, "declare";
        DeclareOk = 11, "declare-ok";
        Bind = 20, "bind";
        BindOk = 21, "bind-ok";
        Purge = 30, "purge";
        PurgeOk = 31, "purge-ok";
        Delete = 40, "delete";
        DeleteOk = 41, "delete-ok";
        Unbind = 50, "unbind";
        UnbindOk = 51, "unbind-ok";
    }
}
