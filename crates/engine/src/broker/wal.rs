//! The node's shared write-ahead logs: every queue commits through one of them.
//!
//! A log per queue cost a preallocated segment, two file descriptors and an fsync stream per
//! queue: 4,200 empty queues took 66 GB, and a publish to 100 queues cost 100 fsyncs. Instead
//! every durable queue appends to one log, `wal`, so one group commit makes any number of
//! queues' appends durable, and an empty queue costs only its definition and a small in-memory
//! state. Transient queues share a second log, `wal-transient`, that is never fsynced (written
//! before a send returns, synced on close), so they never wait for the durable log's fsyncs.
//!
//! Each record names the queue it belongs to by a resource id, assigned when the queue is
//! created and never reused (a counter in the metadata store), so records of a deleted queue
//! are simply ignored by replay until reclaim drops them:
//!
//! ```text
//! | 0x20 | version 1 | resource u64 LE | queue record (see records.rs) |
//! ```
//!
//! A message's seq is the offset of its `enqueued` record in its WAL. Space is reclaimed for a
//! whole WAL at once: segments below the oldest record any queue still needs are deleted.

use super::{
    parse_name,
    records::{encode_enqueued_after, QueueRecord, RecordError},
    replay, Engine, QUEUE_META_PREFIX,
};
use crate::{
    error::{DefinitionError, EngineError},
    log_throttle::LogThrottle,
    queue::QueueOptions,
    queue::QueueState,
};
use bytes::{BufMut, Bytes, BytesMut};
use std::{collections::HashMap, sync::atomic::Ordering, sync::Arc};
use wharf_model::message::Message;
use wharf_model::QueueName;
use wharf_storage::{Durability, LogOptions, LogSize, LogStore, MetaLoss, MetaOp, Offset, Storage};

/// Metadata key of the next resource id to hand out.
const RESOURCE_NEXT_KEY: &str = "resource/next";
/// Metadata key prefix of each queue's resource id.
const QUEUE_RESOURCE_PREFIX: &str = "queue-resource/";

/// Metadata key set once the logs of queues from before the shared WAL are all gone, so later
/// starts need not look for them.
const LEGACY_LOGS_DELETED_KEY: &str = "wal/legacy-logs-deleted";

/// Reclaim walks every queue (a lock each); once a second bounds that cost.
const RECLAIM_INTERVAL_MS: u64 = 1_000;

/// Most messages copied forward per reclaim. Relocation only pays when few messages hold the
/// old end of a WAL; 10,000 1 KiB messages is 10 MB of copying a second at most.
const RELOCATE_MESSAGES_MAX: usize = 10_000;

/// Relocation runs only while the messages in the older half of a WAL are at most this
/// fraction of its records (1/10): stragglers, not a backlog that consumers will drain anyway.
const RELOCATE_LIVE_FRACTION: u64 = 10;

/// The durable queues' log.
pub(crate) const WAL_LOG_NAME: &str = "wal";
/// The transient queues' log.
pub(crate) const WAL_TRANSIENT_LOG_NAME: &str = "wal-transient";

const ENVELOPE: u8 = 0x20;
const ENVELOPE_VERSION: u8 = 1;
const ENVELOPE_BYTES: usize = 10;

/// Names one queue (later: one topic, stream, ...) in the shared logs; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResourceId(pub u64);

/// The metadata key holding the resource id of queue `name`.
pub(crate) fn resource_key(name: &str) -> String {
    format!("{QUEUE_RESOURCE_PREFIX}{name}")
}

/// Opens (recovers) both WALs.
pub(crate) async fn open_wals(
    store: &dyn Storage,
) -> Result<(Arc<dyn LogStore>, Arc<dyn LogStore>), EngineError> {
    let options = |durability| LogOptions {
        durability,
        size: LogSize::Large,
    };
    let durable = store
        .open_log(WAL_LOG_NAME, options(Durability::Durable))
        .await?;
    let transient = store
        .open_log(WAL_TRANSIENT_LOG_NAME, options(Durability::Transient))
        .await?;
    Ok((durable, transient))
}

impl Engine {
    /// Opens every defined queue: migrates those still in a log of their own, then rebuilds
    /// every state with one pass over each WAL. A definition that cannot be read is reported
    /// (see [`Engine::damaged_definitions`]) and its queue left closed; the others open.
    pub(super) async fn open_queues(&self) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let meta_damaged = self.report_lost_definitions();
        // Without legacy logs (or with metadata lost), a definition without its resource id
        // lost that entry: migrating would open the queue empty under a new id.
        let may_migrate = !meta_damaged && store.meta_get(LEGACY_LOGS_DELETED_KEY).is_none();
        let mut definitions = Vec::new();
        for (key, value) in store.meta_list(QUEUE_META_PREFIX) {
            let (name, options, state) = match self.decode_queue_definition(&key, value) {
                Ok(decoded) => decoded,
                Err(damaged) => {
                    self.report_damaged(damaged);
                    continue;
                }
            };
            let resource = store
                .meta_get(&resource_key(name.as_str()))
                .and_then(|value| value.as_u64())
                .map(ResourceId);
            let resource = match resource {
                Some(resource) => resource,
                None if may_migrate => self.migrate_queue(&name, &options).await?,
                None => {
                    let key = resource_key(name.as_str());
                    let lost = DefinitionError::ResourceLost;
                    self.report_damaged(EngineError::corrupt_definition(&key, lost));
                    continue;
                }
            };
            definitions.push((name, options, resource, state));
        }
        let named = (definitions.iter()).map(|(_, _, resource, _)| resource.0);
        self.raise_resource_floor(named.max().unwrap_or(0));
        self.delete_legacy_logs(&definitions).await?;
        let mut durable = HashMap::new();
        let mut transient = HashMap::new();
        let definitions: Vec<_> = (definitions.into_iter())
            .map(|(name, options, resource, state)| {
                match options.durable {
                    true => durable.insert(resource, state),
                    false => transient.insert(resource, state),
                };
                (name, options, resource)
            })
            .collect();
        let seen = replay::replay_wal(self.inner.wal.as_ref(), &mut durable).await?;
        self.raise_resource_floor(seen);
        let seen = replay::replay_wal(self.inner.wal_transient.as_ref(), &mut transient).await?;
        self.raise_resource_floor(seen);
        for (name, options, resource) in definitions {
            let states = if options.durable {
                &mut durable
            } else {
                &mut transient
            };
            if let Some(state) = states.remove(&resource) {
                self.register_queue(name, resource, state);
            }
        }
        Ok(())
    }

    /// Hands out a resource id and applies `ops` with it, in one metadata transaction. Callers
    /// hold the engine's admin lock, so no two allocations read the same counter.
    pub(super) async fn allocate_resource(
        &self,
        mut ops: Vec<MetaOp>,
    ) -> Result<ResourceId, EngineError> {
        let store = &self.inner.store;
        let next = store
            .meta_get(RESOURCE_NEXT_KEY)
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .max(self.inner.resource_floor.load(Ordering::Acquire));
        let resource = ResourceId(next);
        ops.push(MetaOp::Put(
            RESOURCE_NEXT_KEY.to_string(),
            (next + 1).into(),
        ));
        for op in &mut ops {
            if let MetaOp::Put(key, _) = op {
                if let Some(name) = key.strip_prefix(QUEUE_META_PREFIX) {
                    let name = name.to_string();
                    ops.push(MetaOp::Put(resource_key(&name), next.into()));
                    break;
                }
            }
        }
        store.meta_apply(ops).await?;
        Ok(resource)
    }

    /// Makes every id handed out from now on greater than `used`: the counter's own entry may
    /// have been lost to damage, and an id handed out twice would mix two queues' records.
    pub(super) fn raise_resource_floor(&self, used: u64) {
        (self.inner.resource_floor).fetch_max(used.saturating_add(1), Ordering::AcqRel);
    }

    /// Reports the queue and topic definitions that metadata damage cost (those whose key is
    /// still known), and returns whether any metadata was lost at all. While any was, reclaim
    /// keeps the WAL whole: a lost definition's messages are still there when it is restored.
    fn report_lost_definitions(&self) -> bool {
        let damage = self.inner.store.meta_damage();
        for lost in &damage {
            let MetaLoss::Entry { key: Some(key) } = &lost.lost else {
                continue;
            };
            if key.starts_with(QUEUE_META_PREFIX)
                || key.starts_with(super::topics::TOPIC_META_PREFIX)
            {
                let error = EngineError::corrupt_definition(key, DefinitionError::Lost);
                self.report_damaged(error);
            }
        }
        if !damage.is_empty() {
            self.inner.wal_kept_whole.store(true, Ordering::Release);
            tracing::error!(
                losses = damage.len(),
                "metadata was damaged: the queues' WAL is kept whole (nothing reclaimed) until a start without metadata damage"
            );
        }
        !damage.is_empty()
    }

    /// Copies a queue from its legacy log into its WAL (see `replay`); returns its new id.
    async fn migrate_queue(
        &self,
        name: &QueueName,
        options: &QueueOptions,
    ) -> Result<ResourceId, EngineError> {
        let resource = self.allocate_resource(Vec::new()).await?;
        let legacy = replay::open_legacy(self.inner.store.as_ref(), name, options.clone()).await?;
        let wal = match options.durable {
            true => &self.inner.wal,
            false => &self.inner.wal_transient,
        };
        replay::migrate_legacy(legacy, wal.as_ref(), resource, self.now()).await?;
        let key = resource_key(name.as_str());
        self.inner
            .store
            .meta_apply(vec![MetaOp::Put(key, resource.0.into())])
            .await?;
        tracing::info!(queue = %name, resource = resource.0, "queue moved into the shared WAL");
        Ok(resource)
    }

    /// The name, options and empty state of the queue defined under `key`.
    fn decode_queue_definition(
        &self,
        key: &str,
        value: serde_json::Value,
    ) -> Result<(QueueName, QueueOptions, QueueState), EngineError> {
        let corrupt = |source| EngineError::corrupt_definition(key, source);
        let name = parse_name(&key[QUEUE_META_PREFIX.len()..])
            .map_err(|e| corrupt(DefinitionError::Refused(Box::new(e))))?;
        let options: QueueOptions =
            serde_json::from_value(value).map_err(|e| corrupt(DefinitionError::Decode(e)))?;
        let state = QueueState::new(options.clone(), self.inner.seed)
            .map_err(|e| corrupt(DefinitionError::Refused(Box::new(e.into()))))?;
        Ok((name, options, state))
    }

    /// Deletes legacy logs of queues that now live in a WAL (migrated, or deleted since). Once
    /// every one is gone a metadata flag says so, and later starts skip the walk.
    async fn delete_legacy_logs(
        &self,
        definitions: &[(QueueName, QueueOptions, ResourceId, QueueState)],
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        if store.meta_get(LEGACY_LOGS_DELETED_KEY).is_some() {
            return Ok(());
        }
        for (name, ..) in definitions {
            let legacy = replay::legacy_queue_log_name(name);
            // A name too long to be a file name never had a legacy log (its create failed).
            if legacy.len() > wharf_storage::LOG_NAME_BYTES_MAX {
                continue;
            }
            // Deleting a log that does not exist succeeds.
            store.delete_log(&legacy).await?;
        }
        let done = MetaOp::Put(LEGACY_LOGS_DELETED_KEY.to_string(), true.into());
        store.meta_apply(vec![done]).await?;
        Ok(())
    }

    /// Deletes WAL segments below the oldest record any queue still needs. At most once per
    /// [`RECLAIM_INTERVAL_MS`]; cost O(queues). Never fails its caller (the settle that asked
    /// for it succeeded): a failure is logged, and the next reclaim tries again.
    pub(super) async fn reclaim(&self) {
        if let Err(error) = self.reclaim_now().await {
            static THROTTLE: LogThrottle = LogThrottle::new();
            if let Some(suppressed) = THROTTLE.allow() {
                tracing::warn!(%error, suppressed, "reclaiming WAL space failed");
            }
        }
    }

    async fn reclaim_now(&self) -> Result<(), EngineError> {
        let now = self.now();
        let last = self.inner.last_reclaim_at.load(Ordering::Acquire);
        if now < last.saturating_add(RECLAIM_INTERVAL_MS)
            || self
                .inner
                .last_reclaim_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return Ok(());
        }
        // Copying forward adds data: it waits while the disk reserve is spent. Its failure
        // must not stop the truncation below, which is what frees space.
        for durable in [true, false] {
            if self.inner.store.space_short() {
                break;
            }
            if let Err(error) = self.relocate_stragglers(durable).await {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::warn!(%error, suppressed, "copying WAL stragglers forward failed");
                }
            }
        }
        if self.inner.wal_kept_whole.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut keep = [None::<u64>, None::<u64>];
        for queue in self.registry().values() {
            if let Some(from) = queue.keep_from()? {
                let slot = &mut keep[usize::from(!queue.durable)];
                *slot = Some(slot.map_or(from, |kept| kept.min(from)));
            }
        }
        for (log, keep_from) in [&self.inner.wal, &self.inner.wal_transient]
            .into_iter()
            .zip(keep)
        {
            let keep_from = Offset(keep_from.unwrap_or(log.end_offset().0));
            if keep_from > log.start_offset() {
                log.truncate_before(keep_from).await?;
            }
        }
        self.restore_space().await;
        Ok(())
    }
}

impl Engine {
    /// Copies forward the few unsettled messages in the older half of a WAL, so that one old
    /// message does not keep every later record on disk. Only once the WAL holds
    /// `EngineConfig::relocate_span_min` records: each message is then copied at most once
    /// per that many appends. In offsets only: where storage can actually cut is its business.
    async fn relocate_stragglers(&self, durable: bool) -> Result<(), EngineError> {
        let log = if durable {
            &self.inner.wal
        } else {
            &self.inner.wal_transient
        };
        let (start, end) = (log.start_offset().0, log.end_offset().0);
        if end - start < self.inner.config.relocate_span_min {
            return Ok(());
        }
        let older_half_end = start + (end - start) / 2;
        let limit =
            RELOCATE_MESSAGES_MAX.min(((older_half_end - start) / RELOCATE_LIVE_FRACTION) as usize);
        let queues: Vec<_> = (self.registry().values())
            .filter(|queue| queue.durable == durable)
            .cloned()
            .collect();
        let mut holding = Vec::new();
        let mut live = 0;
        for queue in queues {
            let count = queue.count_located_below(older_half_end, limit + 1)?;
            if count > 0 {
                live += count;
                holding.push(queue);
            }
            if live > limit {
                return Ok(()); // A backlog, not stragglers: consumers will drain it.
            }
        }
        for queue in holding {
            let moved = queue.relocate_below(older_half_end, limit).await?;
            tracing::debug!(queue = %queue.name, moved, "copied stragglers forward");
        }
        Ok(())
    }
}

/// Wraps an encoded queue record for the WAL (a copy: for records encoded once and stored
/// in many queues; [`wrap_record`] encodes straight into the envelope).
pub(crate) fn wrap(resource: ResourceId, record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(ENVELOPE_BYTES + record.len());
    out.put_slice(&envelope(resource));
    out.put_slice(record);
    out.freeze()
}

/// Encodes a queue record in its WAL envelope.
pub(crate) fn wrap_record(resource: ResourceId, record: &QueueRecord) -> Bytes {
    record.encode_after(&envelope(resource))
}

/// Encodes the `enqueued` record of `message` in its WAL envelope.
pub(crate) fn wrap_enqueued(resource: ResourceId, message: &Message, dedup: bool) -> Bytes {
    encode_enqueued_after(&envelope(resource), message, dedup)
}

fn envelope(resource: ResourceId) -> [u8; ENVELOPE_BYTES] {
    let mut out = [0; ENVELOPE_BYTES];
    out[0] = ENVELOPE;
    out[1] = ENVELOPE_VERSION;
    out[2..].copy_from_slice(&resource.0.to_le_bytes());
    out
}

/// The resource and the inner record (a slice of `payload`, no copy) of the WAL record at
/// `offset`.
pub(crate) fn unwrap(offset: u64, payload: &Bytes) -> Result<(ResourceId, Bytes), RecordError> {
    let invalid = |reason: String| RecordError { offset, reason };
    if payload.len() < ENVELOPE_BYTES || payload[0] != ENVELOPE {
        return Err(invalid("not a WAL record".into()));
    }
    if payload[1] != ENVELOPE_VERSION {
        return Err(invalid(format!(
            "WAL envelope version {} is newer than this build reads ({ENVELOPE_VERSION})",
            payload[1]
        )));
    }
    let resource = u64::from_le_bytes(payload[2..ENVELOPE_BYTES].try_into().expect("8 bytes"));
    Ok((ResourceId(resource), payload.slice(ENVELOPE_BYTES..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_encoded_in_its_envelope_is_the_record_wrapped() {
        let message = Message {
            id: "m1".into(),
            body: Bytes::from_static(b"body"),
            content_type: "text/plain".into(),
            headers: [("k".to_string(), "v".to_string())].into(),
            priority: 3,
            group: Some("g".into()),
            correlation_id: None,
            reply_to: None,
            sent_at: 1_700_000_000_000,
            deliver_at: None,
            expires_at: Some(1_700_000_001_000),
            dead_letter: None,
        };
        let records = [
            QueueRecord::Enqueued {
                message: message.clone(),
                dedup: true,
            },
            QueueRecord::Settled {
                seqs: vec![1, 2],
                reason: super::super::records::SettleReason::Acked,
            },
        ];
        for record in &records {
            let wrapped = wrap(ResourceId(7), &record.encode());
            assert_eq!(wrap_record(ResourceId(7), record), wrapped);
        }
        let wrapped = wrap(ResourceId(7), &records[0].encode());
        assert_eq!(wrap_enqueued(ResourceId(7), &message, true), wrapped);
    }

    #[test]
    fn an_envelope_round_trips_and_garbage_is_an_error() {
        let wrapped = wrap(ResourceId(7), b"inner");
        let (resource, inner) = unwrap(3, &wrapped).unwrap();
        assert_eq!((resource, inner.as_ref()), (ResourceId(7), &b"inner"[..]));
        for bad in [
            &b""[..],
            b"\x20\x01\x00",
            b"\x11\x01\x00\x00\x00\x00\x00\x00\x00\x00",
        ] {
            assert!(unwrap(0, &Bytes::copy_from_slice(bad)).is_err());
        }
        let mut newer = wrapped.to_vec();
        newer[1] = 9;
        let error = unwrap(0, &Bytes::from(newer)).unwrap_err();
        assert!(error.to_string().contains("version 9"), "{error}");
    }
}
