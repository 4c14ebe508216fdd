//! The message model: names, ids and message fields as plain data with no I/O.
//!
//! Every layer (storage excepted) and the client SDK use these types; nothing here touches a
//! socket, a file or a clock. Where a value needs the time or randomness (a generated message
//! id), the caller passes it in.

pub mod filter;
pub mod frames;
mod id;
pub mod message;
mod name;
pub mod partitioner;
pub mod pattern;
mod priority;
pub mod record_batch;

pub use id::{MessageId, MessageIdError, MessageIdGenerator, MESSAGE_ID_BYTES_MAX};
pub use name::{check_resource_name, QueueName, QueueNameError, QUEUE_NAME_BYTES_MAX};
pub use priority::{Priority, PriorityError};
