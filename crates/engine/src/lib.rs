//! The broker engine: queues, topics and streams over the storage layer.
//!
//! The engine knows no protocol: doors translate their frames into engine calls. The clock and
//! the storage are injected so tests control both.

pub mod alerts;
pub mod broker;
pub mod clock;
pub mod error;
pub mod eventstore;
pub mod log_throttle;
pub mod queue;
pub mod security;
pub mod stream;
pub mod topic;
pub mod webhooks;

pub use broker::{Engine, EngineConfig};
pub use error::EngineError;
