//! Rebuilding queue states at start: one pass over each WAL, and the migration of queues that
//! releases before the shared WAL kept in a log of their own.
//!
//! Migration copies what a legacy queue still needs into its WAL under a resource id allocated
//! (durably) beforehand: every unsettled message's `enqueued` record in send order, its
//! delivery count, and the records of settled messages whose client ids are still inside the
//! dedup window (followed by a settle record, so they only feed the window). Only then does the
//! queue's definition get its resource id, and only then is the legacy log deleted. A crash
//! before the id is written leaves copies under an id no definition names (ignored, reclaimed
//! later) and the migration runs again; a crash after it leaves a legacy log that the next
//! start deletes.

use super::{
    queue_runtime::enqueue_meta,
    records::{DeliveryCount, QueueRecord, SettleReason},
    wal::{self, ResourceId},
};
use crate::{
    error::{DefinitionError, EngineError},
    queue::{DedupKey, QueueOptions, QueueState, Seq},
};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use wharf_model::{message::Message, MessageId, QueueName};
use wharf_storage::{Durability, LogOptions, LogSize, LogStore, Storage, StorageError};

/// Records read per batch while replaying: large enough for sequential reads, small enough to
/// keep replay memory flat.
const REPLAY_BATCH_RECORDS: usize = 4_096;
const REPLAY_BATCH_BYTES: usize = 8 << 20;

/// The name of a queue's own log in releases before the shared WAL. The prefix keeps names
/// like `.` or `..` (valid queue names) from being path components on their own.
pub(crate) fn legacy_queue_log_name(name: &QueueName) -> String {
    format!("queue-{name}")
}

/// When a message joined its current queue: a dead-letter copy joined when it was moved.
pub(crate) fn enqueued_at(message: &Message) -> u64 {
    message
        .dead_letter
        .as_ref()
        .map_or(message.sent_at, |d| d.at)
}

/// Replays a WAL into the states of the queues it names; records of resources with no state
/// (deleted queues) are skipped. A damaged record (storage found it corrupt: storage logs and
/// counts it) is skipped too, so damage costs only its own records, never the start: a lost
/// `enqueued` record loses its message, a lost `settled` record brings its messages back.
///
/// The records of the shared WAL name their queue inside their (damaged) bytes, so a lost
/// message is attributed to its queue through the later records that name it: one that was
/// delivered and never settled counts in its queue's `damaged` counter. One never delivered
/// cannot be told apart from damage to other records; storage's count covers it.
///
/// Returns the highest resource id any record names (0 for none).
pub(crate) async fn replay_wal(
    log: &dyn LogStore,
    states: &mut HashMap<ResourceId, QueueState>,
) -> Result<u64, EngineError> {
    let mut damaged = DamagedMessages::default();
    let mut resource_max = 0;
    let mut at = log.start_offset();
    loop {
        let records = match log
            .read_batch(at, REPLAY_BATCH_RECORDS, REPLAY_BATCH_BYTES)
            .await
        {
            Err(StorageError::Corrupt { offset, .. }) if offset == at => {
                damaged.offsets.insert(at.0);
                at = at.next();
                continue;
            }
            read => read?,
        };
        let Some(last) = records.last() else {
            break;
        };
        at = last.offset.next();
        for record in &records {
            let (resource, inner) = wal::unwrap(record.offset.0, &record.payload)?;
            resource_max = resource_max.max(resource.0);
            if let Some(state) = states.get_mut(&resource) {
                let replayed = replay_record(state, record.offset.0, &inner)?;
                damaged.note(resource, replayed);
            }
        }
    }
    damaged.count_into(states);
    Ok(resource_max)
}

/// What replaying one record says about messages the state does not know.
pub(crate) enum Replayed {
    /// Applied to messages the state knows (or a message it now knows).
    Applied,
    /// Delivered, yet unknown: their `enqueued` records may be damaged.
    UnknownDelivered(Vec<u64>),
    /// These messages have left, or were copied forward whole: nothing of them is lost.
    Accounted(Vec<u64>),
}

/// Messages whose `enqueued` record was damaged, found through the records that name them.
#[derive(Default)]
struct DamagedMessages {
    /// Offsets (seqs) storage reported damaged.
    offsets: HashSet<u64>,
    /// Per queue, damaged messages delivered and not (yet) settled.
    lost: HashMap<ResourceId, HashSet<u64>>,
}

impl DamagedMessages {
    fn note(&mut self, resource: ResourceId, replayed: Replayed) {
        match replayed {
            Replayed::Applied => {}
            Replayed::UnknownDelivered(seqs) => {
                let damaged = seqs.into_iter().filter(|seq| self.offsets.contains(seq));
                for seq in damaged {
                    self.lost.entry(resource).or_default().insert(seq);
                }
            }
            Replayed::Accounted(seqs) => {
                if let Some(lost) = self.lost.get_mut(&resource) {
                    for seq in seqs {
                        lost.remove(&seq);
                    }
                }
            }
        }
    }

    fn count_into(self, states: &mut HashMap<ResourceId, QueueState>) {
        for (resource, lost) in self.lost {
            if let (Some(state), false) = (states.get_mut(&resource), lost.is_empty()) {
                state.count_damaged(lost.len() as u64);
            }
        }
    }
}

/// Applies one queue record at `offset` to `state`, without checks: the log proves it happened.
pub(crate) fn replay_record(
    state: &mut QueueState,
    offset: u64,
    payload: &Bytes,
) -> Result<Replayed, EngineError> {
    let replayed = match QueueRecord::decode(offset, payload)? {
        QueueRecord::Enqueued { message, dedup } => {
            let key = dedup_key(&message, dedup);
            state.replay_enqueued(
                enqueue_meta(Seq(offset), &message, key),
                enqueued_at(&message),
            );
            Replayed::Applied
        }
        QueueRecord::Delivered { deliveries } => {
            let unknown: Vec<u64> = (deliveries.into_iter())
                .filter(|d| !state.replay_delivered(Seq(d.seq), d.delivery_count, d.at))
                .map(|d| d.seq)
                .collect();
            match unknown.is_empty() {
                true => Replayed::Applied,
                false => Replayed::UnknownDelivered(unknown),
            }
        }
        QueueRecord::Settled { seqs, .. } => {
            let unknown = (seqs.into_iter())
                .filter(|seq| !state.replay_settled(Seq(*seq)))
                .collect();
            Replayed::Accounted(unknown)
        }
        QueueRecord::Relocated {
            seq,
            delivery_count,
            first_delivered_at,
            last_delivered_at,
            dedup,
            message,
        } => {
            let key = dedup_key(&message, dedup);
            state.replay_relocated(
                enqueue_meta(Seq(seq), &message, key),
                offset,
                enqueued_at(&message),
                (delivery_count, first_delivered_at, last_delivered_at),
            );
            Replayed::Accounted(vec![seq])
        }
    };
    Ok(replayed)
}

fn dedup_key(message: &Message, dedup: bool) -> Option<DedupKey> {
    dedup
        .then(|| MessageId::try_from(message.id.clone()).ok())
        .flatten()
        .map(|id| DedupKey::of(&id))
}

/// A legacy queue's log, replayed: what migration copies.
pub(crate) struct Legacy {
    log: Arc<dyn LogStore>,
    state: QueueState,
}

/// Opens and replays a legacy queue log. Opened as transient: it is only read, then deleted.
pub(crate) async fn open_legacy(
    store: &dyn Storage,
    name: &QueueName,
    options: QueueOptions,
) -> Result<Legacy, EngineError> {
    let log_options = LogOptions {
        durability: Durability::Transient,
        size: LogSize::Large,
    };
    let log = (store.open_log(&legacy_queue_log_name(name), log_options)).await?;
    let mut state = QueueState::new(options, 0).map_err(|e| {
        let key = format!("{}{name}", super::QUEUE_META_PREFIX);
        EngineError::corrupt_definition(&key, DefinitionError::Refused(Box::new(e.into())))
    })?;
    let mut at = log.start_offset();
    loop {
        let records = (log.read_batch(at, REPLAY_BATCH_RECORDS, REPLAY_BATCH_BYTES)).await?;
        let Some(last) = records.last() else {
            break;
        };
        at = last.offset.next();
        for record in &records {
            replay_record(&mut state, record.offset.0, &record.payload)?;
        }
    }
    Ok(Legacy { log, state })
}

/// Copies what a legacy queue still needs into `wal` under `resource` (see the module header).
pub(crate) async fn migrate_legacy(
    legacy: Legacy,
    wal: &dyn LogStore,
    resource: ResourceId,
    now: u64,
) -> Result<(), EngineError> {
    let Legacy { log, state } = legacy;
    let window_ms = state.options().dedup_window_ms;
    let mut delivered = Vec::new();
    let mut feed_only = Vec::new();
    let mut at = log.start_offset();
    loop {
        let records = (log.read_batch(at, REPLAY_BATCH_RECORDS, REPLAY_BATCH_BYTES)).await?;
        let Some(last) = records.last() else {
            break;
        };
        at = last.offset.next();
        let mut copies = Vec::new();
        for record in &records {
            let QueueRecord::Enqueued { message, dedup } =
                QueueRecord::decode(record.offset.0, &record.payload)?
            else {
                continue;
            };
            let live = state.message(Seq(record.offset.0));
            let in_window = dedup && enqueued_at(&message).saturating_add(window_ms) > now;
            if live.is_some() || in_window {
                copies.push((live, wal::wrap(resource, &record.payload)));
            }
        }
        if copies.is_empty() {
            continue;
        }
        let payloads: Vec<Bytes> = copies.iter().map(|(_, record)| record.clone()).collect();
        let range = wal.append(&payloads, None).await?;
        for (i, (live, _)) in copies.iter().enumerate() {
            let seq = range.start.0 + i as u64;
            match live {
                Some(view) if view.delivery_count > 0 => delivered.push(QueueRecord::Delivered {
                    deliveries: vec![DeliveryCount {
                        seq,
                        delivery_count: view.delivery_count,
                        at: view.last_delivered_at.unwrap_or(now),
                    }],
                }),
                Some(_) => {}
                None => feed_only.push(seq),
            }
        }
    }
    if !feed_only.is_empty() {
        delivered.push(QueueRecord::Settled {
            seqs: feed_only,
            reason: SettleReason::Acked,
        });
    }
    let tail: Vec<Bytes> = (delivered.iter())
        .map(|record| wal::wrap_record(resource, record))
        .collect();
    if !tail.is_empty() {
        wal.append(&tail, None).await?;
    }
    Ok(())
}
