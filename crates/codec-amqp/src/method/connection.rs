//! Class `connection` (10): opening and closing a connection, and the SASL and tuning
//! handshake in between (AMQP 0-9-1 section 1.4.2). Every method travels on channel 0.

use crate::field::FieldTable;
use crate::wire::{LongString, ShortString};

arguments! {
    /// The server's first method: protocol version, properties (RabbitMQ puts `capabilities`,
    /// `product` and `version` here), SASL mechanisms and locales, both space-separated.
    pub struct Start {
        pub version_major: u8,
        pub version_minor: u8,
        pub server_properties: FieldTable,
        pub mechanisms: LongString,
        pub locales: LongString,
    }

    /// The client's properties, chosen mechanism, SASL response (`\0user\0password` for
    /// PLAIN) and locale.
    pub struct StartOk {
        pub client_properties: FieldTable,
        pub mechanism: ShortString,
        pub response: LongString,
        pub locale: ShortString,
    }

    /// A further SASL challenge.
    pub struct Secure {
        pub challenge: LongString,
    }

    pub struct SecureOk {
        pub response: LongString,
    }

    /// The server's limits; 0 means no limit (`heartbeat` 0: no heartbeats).
    pub struct Tune {
        pub channel_max: u16,
        pub frame_max: u32,
        pub heartbeat: u16,
    }

    /// The limits the client accepts: at most the server's.
    pub struct TuneOk {
        pub channel_max: u16,
        pub frame_max: u32,
        pub heartbeat: u16,
    }

    /// `reserved_1` was `capabilities`, `reserved_2` was `insist`.
    pub struct Open {
        pub virtual_host: ShortString,
        pub reserved_1: ShortString,
        pub reserved_2: bool,
    }

    /// `reserved_1` was `known-hosts`.
    pub struct OpenOk {
        pub reserved_1: ShortString,
    }

    /// `class_id` and `method_id` name the method that caused the close, or are 0.
    pub struct Close {
        pub reply_code: u16,
        pub reply_text: ShortString,
        pub class_id: u16,
        pub method_id: u16,
    }

    pub struct CloseOk {}

    /// RabbitMQ extension: the server stopped reading publishes (e.g. memory alarm).
    pub struct Blocked {
        pub reason: ShortString,
    }

    pub struct Unblocked {}

    /// RabbitMQ extension: a new secret (e.g. an OAuth 2 token) for the open connection.
    pub struct UpdateSecret {
        pub new_secret: LongString,
        pub reason: ShortString,
    }

    pub struct UpdateSecretOk {}
}

class! {
    /// A method of class `connection`.
    Connection = 10, "connection" {
        Start = 10, "start";
        StartOk = 11, "start-ok";
        Secure = 20, "secure";
        SecureOk = 21, "secure-ok";
        Tune = 30, "tune";
        TuneOk = 31, "tune-ok";
        Open = 40, "open";
        OpenOk = 41, "open-ok";
        Close = 50, "close";
        CloseOk = 51, "close-ok";
        Blocked = 60, "blocked";
        Unblocked = 61, "unblocked";
        UpdateSecret = 70, "update-secret";
        UpdateSecretOk = 71, "update-secret-ok";
    }
}
