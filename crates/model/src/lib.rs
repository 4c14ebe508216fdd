//! The message model: names, ids and message fields as plain data with no I/O.
//!
//! Every layer (storage excepted) and the client SDK use these types; nothing here touches a
//! socket, a file or a clock.
