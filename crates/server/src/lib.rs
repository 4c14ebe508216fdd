//! Transports and doors: the server process minus command-line parsing.
//!
//! [`config`] reads the TOML file, [`serve`] opens the store and runs the doors until shutdown,
//! [`http`] is the first door, [`tls`] encrypts its connections, [`telemetry`] sets up logs. The `wharf` binary (crate `wharf-cli`)
//! parses flags, resolves precedence and calls [`Server`] or [`serve()`]. No door keeps state the
//! engine should own.

pub mod amqp;
pub mod caller_connections;
pub mod config;
mod connection_limit;
pub mod connections;
pub mod descriptors;
pub mod disk_space;
mod door;
mod event_metrics;
pub mod http;
pub mod mqtt;
pub mod readiness;
pub mod realtime;
pub mod resource_metrics;
mod serve;
mod stream_metrics;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

pub use config::{ConfigError, Listen, ServeConfig, TlsFiles, TlsSettings};
pub use serve::{serve, shutdown_signal, ServeError, Server, SHUTDOWN_DRAIN_TIMEOUT};
