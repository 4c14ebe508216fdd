//! Storage: append-only segmented logs of checksummed records, and the metadata store.
//!
//! Storage knows records and offsets, not queues or topics. A [`Log`] is the one durable
//! primitive: records are framed with a length and a CRC32C, appended with group commit, read
//! back by offset, and recovered on open by truncating a torn tail. The [`MetaStore`] keeps small
//! definitions (queues, topics, ...) atomically. A [`Store`] ties both to one data directory,
//! which it locks so that no other store can open it meanwhile.
//!
//! The engine reaches storage only through the seam: [`Storage`] (logs by name, metadata) and
//! [`LogStore`] (one log), implemented by [`Store`] and [`Log`] and, for tests and the
//! simulation, by [`MemoryStore`]. Segment sizes, files and fsync stay on this side of it.

mod batch;
mod directory_lock;
mod error;
mod faults;
mod log;
mod memory;
mod meta;
mod metrics;
mod quarantine;
mod record;
mod reserve;
mod seam;
mod segment;
mod segment_writer;
mod store;

pub use error::StorageError;
pub use faults::Faults;
pub use log::{
    FsyncPolicy, Log, LogConfig, GATHER_BYTES, LARGE_COMMIT_BYTES, LAZY_PENDING_BYTES_MAX,
};
pub use memory::{MemoryLog, MemoryStore};
pub use meta::{MetaDamage, MetaLoss, MetaOp, MetaStore};
pub use metrics::StorageMetrics;
pub use quarantine::{LeftRange, MovedRange, Repair};
pub use record::{Offset, Record, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX};
pub use reserve::{
    filesystem_bytes, RESERVE_BYTES_DEFAULT, RESERVE_FILESYSTEM_SHARE, RESERVE_FILE_NAME,
};
pub use seam::{Durability, LogOptions, LogSize, LogStore, Storage, StorageFuture};
pub use segment::{Damage, Quarantined, QUARANTINED_REASON};
pub use store::{Store, StoreConfig, LOG_NAME_BYTES_MAX};
