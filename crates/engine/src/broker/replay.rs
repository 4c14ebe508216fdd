//! Opening a queue: its log, and its state rebuilt by replaying every record in order.

use super::{
    queue_runtime::{enqueue_meta, QueueRuntime},
    records::QueueRecord,
};
use crate::{
    error::EngineError,
    queue::{DedupKey, QueueOptions, QueueState, Seq},
};
use wharf_model::{message::Message, MessageId, QueueName};
use wharf_storage::{FsyncPolicy, LogConfig, Store};

/// Records read per batch while replaying: large enough for sequential reads, small enough to
/// keep replay memory flat.
const REPLAY_BATCH_RECORDS: usize = 4_096;
const REPLAY_BATCH_BYTES: usize = 8 << 20;

/// The name of a queue's log in the store. The prefix keeps names like `.` or `..` (valid
/// queue names) from being path components on their own.
pub(crate) fn queue_log_name(name: &QueueName) -> String {
    format!("queue-{name}")
}

/// When a message joined its current queue: a dead-letter copy joined when it was moved.
pub(crate) fn enqueued_at(message: &Message) -> u64 {
    message
        .dead_letter
        .as_ref()
        .map_or(message.sent_at, |d| d.at)
}

/// Opens the queue's log and replays it. Blocking (reads the whole log).
pub(crate) fn open_queue(
    store: &Store,
    name: QueueName,
    options: QueueOptions,
    durable_fsync: FsyncPolicy,
    segment_bytes: u64,
    seed: u64,
) -> Result<QueueRuntime, EngineError> {
    let fsync = if options.durable {
        durable_fsync
    } else {
        FsyncPolicy::Never
    };
    let log = store.log(
        &queue_log_name(&name),
        LogConfig {
            segment_bytes,
            fsync,
            ..LogConfig::default()
        },
    )?;
    let mut state = QueueState::new(options, seed)
        .map_err(|e| super::validate::field_error(e.field(), &e.to_string()))?;
    let mut at = log.start_offset();
    loop {
        let records = log.read_batch(at, REPLAY_BATCH_RECORDS, REPLAY_BATCH_BYTES)?;
        let Some(last) = records.last() else {
            break;
        };
        at = last.offset.next();
        for record in &records {
            replay_record(&mut state, record.offset.0, &record.payload)?;
        }
    }
    Ok(QueueRuntime::new(name, log, state))
}

fn replay_record(
    state: &mut QueueState,
    offset: u64,
    payload: &bytes::Bytes,
) -> Result<(), EngineError> {
    match QueueRecord::decode(offset, payload)? {
        QueueRecord::Enqueued { message, dedup } => {
            let key = dedup
                .then(|| MessageId::try_from(message.id.clone()).ok())
                .flatten()
                .map(|id| DedupKey::of(&id));
            state.replay_enqueued(
                enqueue_meta(Seq(offset), &message, key),
                enqueued_at(&message),
            );
        }
        QueueRecord::Delivered {
            seq,
            delivery_count,
            at,
        } => {
            state.replay_delivered(Seq(seq), delivery_count, at);
        }
        QueueRecord::Settled { seqs, .. } => {
            for seq in seqs {
                state.replay_settled(Seq(seq));
            }
        }
    }
    Ok(())
}
