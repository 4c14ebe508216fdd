//! Compaction of a topic's log: restate what is live at the end of the log, then drop the
//! segments below.
//!
//! A topic log only grows: every retained publish, every binding and unbinding is a record, and
//! most of them are soon superseded (a key published again or cleared, a binding removed). A
//! record is live while a current binding or retained message rests on it; the log holds
//! `end - start` records, of which `bindings + retained keys` are live and the rest superseded.
//!
//! A pass starts when the superseded records number at least the live ones (half the log or
//! more is dead) and at least [`COMPACTION_RECORDS_MIN`], and at least as many records were
//! appended since the last pass. A pass copies each live record once, so its cost is paid for
//! by the appends that made it due: compaction costs at most one copy per append, amortised.
//! The log then stays within about twice its live records, plus one segment.
//!
//! A pass:
//! 1. notes the log's end, `before`: every live record lies below it or was written since;
//! 2. restates every binding (`binding copied`) and every retained message whose record lies
//!    below `before` (an ordinary `retained` record), a batch at a time, in id and key order;
//! 3. deletes the segments wholly below `before` (`Log::truncate_before`).
//!
//! Each batch holds the topic's write lock alone, so no write lands between reading a record
//! and appending its copy: a copy is never stale. Writers wait for at most one batch.
//!
//! Interrupted anywhere (a crash, a full disk), the log still replays to the same state: the
//! copies restate current values, replay applies them idempotently, and nothing was dropped
//! before every copy was durable. The next pass starts over.

use super::{
    super::topic_records::TopicRecord, log_state::NO_COPIES, retained::missing_record, TopicRuntime,
};
use crate::error::EngineError;
use bytes::Bytes;
use std::{
    ops::Range,
    sync::{atomic::Ordering, Arc, Weak},
};
use wharf_storage::Offset;

/// Superseded records a log may hold before a pass is worth it: 1,024 retained records of
/// 1 KiB are 1 MiB, enough for storage to free space (the file store frees 1 MiB segments
/// of a topic's log).
const COMPACTION_RECORDS_MIN: u64 = 1_024;
/// Records and bytes one copy batch appends. Writers of the topic wait for one batch at most,
/// and a batch in memory stays small whatever the body sizes.
const COPY_BATCH_RECORDS_MAX: usize = 256;
const COPY_BATCH_BYTES_MAX: usize = 1 << 20;

impl TopicRuntime {
    /// Starts a compaction pass in the background when one is due; one pass per topic at a
    /// time. Called after every write: cheap when no pass is due.
    pub(super) fn maybe_compact(self: &Arc<Self>) {
        if self.compacting.load(Ordering::Acquire) || !self.compaction_due() {
            return;
        }
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        // Weak: a pass does not keep a deleted topic, or a dropped engine, alive.
        let topic = Arc::downgrade(self);
        tokio::spawn(async move {
            let result = compact(&topic).await;
            if let Some(runtime) = topic.upgrade() {
                runtime.compacting.store(false, Ordering::Release);
                if let Err(error) = result {
                    if !runtime.deleted.load(Ordering::Acquire) {
                        let topic = &runtime.name;
                        tracing::warn!(topic, %error, "topic log compaction stopped");
                    }
                }
            }
        });
    }

    /// Whether the log holds enough superseded records for a pass; see the module header.
    pub(super) fn compaction_due(&self) -> bool {
        let state = self.state.lock().expect("topic state lock");
        let bindings = self.router.read().expect("router lock").len();
        let live = (state.retained.len() + bindings) as u64;
        let (start, end) = (self.log.start_offset().0, self.log.end_offset().0);
        let superseded = (end - start).saturating_sub(live);
        let appended = end.saturating_sub(state.compacted_end.0);
        let needed = live.max(COMPACTION_RECORDS_MIN);
        superseded >= needed && appended >= needed
    }

    /// Step 1 of a pass: the log's end once every write before it is applied, and the last
    /// binding id and retained key then. Whatever comes after them was written since.
    async fn compaction_start(&self) -> Result<Pass, EngineError> {
        let _writing = self.writes.write().await;
        self.catch_up(&NO_COPIES).await?;
        let state = self.state.lock().expect("topic state lock");
        let router = self.router.read().expect("router lock");
        Ok(Pass {
            before: self.log.end_offset(),
            last_binding: router.bindings().last().map(|(id, _)| id.clone()),
            last_key: state.retained.last_key(),
        })
    }

    /// Restates up to a batch of bindings with ids after `after`, up to `last`; the last id
    /// copied, or `None` when there were none.
    async fn copy_bindings(
        &self,
        after: Option<&str>,
        last: &str,
    ) -> Result<Option<String>, EngineError> {
        let _writing = self.writes.write().await;
        let records: Vec<(String, Bytes)> = (self.router.read().expect("router lock"))
            .bindings_after(after)
            .take_while(|(id, _)| id.as_str() <= last)
            .take(COPY_BATCH_RECORDS_MAX)
            .map(|(id, spec)| (id.clone(), TopicRecord::encode_binding_copied(id, spec)))
            .collect();
        let Some((last, _)) = records.last() else {
            return Ok(None);
        };
        let last = last.clone();
        let payloads: Vec<Bytes> = records.into_iter().map(|(_, record)| record).collect();
        self.append_copies(&payloads).await?;
        Ok(Some(last))
    }

    /// Restates up to a batch of retained messages with keys after `after`, up to `last_key`,
    /// whose records lie below `before`; the last key looked at, or `None` when none was left.
    async fn copy_retained(
        &self,
        after: Option<&str>,
        last_key: &str,
        before: Offset,
    ) -> Result<Option<String>, EngineError> {
        let _writing = self.writes.write().await;
        let entries = (self.state.lock().expect("topic state lock"))
            .retained
            .batch_after(after, COPY_BATCH_RECORDS_MAX);
        let mut last = None;
        let mut payloads = Vec::new();
        let mut bytes = 0;
        let entries = entries
            .into_iter()
            .take_while(|(key, _)| key.as_str() <= last_key);
        for (key, entry) in entries {
            if entry.stored_at < before {
                // Under the write lock the entry is current, so the read finds it; if it did
                // not, the pass stops here rather than drop a record it could not copy.
                let message = (self.read_retained(&key, entry).await?)
                    .ok_or_else(|| missing_record(&key, entry.stored_at))?;
                let record = TopicRecord::Retained {
                    key: key.clone(),
                    message,
                }
                .encode();
                bytes += record.len();
                payloads.push(record);
            }
            last = Some(key);
            if bytes >= COPY_BATCH_BYTES_MAX {
                break;
            }
        }
        self.append_copies(&payloads).await?;
        Ok(last)
    }

    /// Appends copies (under the write lock) and applies them as copies.
    async fn append_copies(&self, payloads: &[Bytes]) -> Result<Range<Offset>, EngineError> {
        let copies = self.log.append(payloads, None).await?;
        self.catch_up(&copies).await?;
        Ok(copies)
    }
}

/// One pass: copies, then the truncation. Holds the topic only for one batch at a time, so a
/// deleted topic or a dropped engine ends it.
async fn compact(topic: &Weak<TopicRuntime>) -> Result<(), EngineError> {
    let Some(before) = copy_live(topic).await? else {
        return Ok(());
    };
    let Some(runtime) = topic.upgrade() else {
        return Ok(());
    };
    // Alone, and only while the topic exists: deleting a topic takes the lock too, so this
    // never truncates the files of a log deleted (and perhaps created again) meanwhile.
    let _writing = runtime.writes.write().await;
    if runtime.deleted.load(Ordering::Acquire) {
        return Ok(());
    }
    let start = runtime.log.truncate_before(before).await?;
    let end = runtime.log.end_offset();
    runtime
        .state
        .lock()
        .expect("topic state lock")
        .compacted_end = end;
    runtime.compactions.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(topic = %runtime.name, %start, "topic log compacted");
    Ok(())
}

/// Where a pass stands: what it copies.
#[derive(Debug)]
struct Pass {
    /// The log's end at the start: records below it are copied if live, then dropped.
    before: Offset,
    /// The last binding id and retained key at the start; later ones were written since.
    last_binding: Option<String>,
    last_key: Option<String>,
}

/// Steps 1 and 2 of a pass: copies every live record below the log's end, and returns that
/// end (`before`), below which every record is now superseded. `None` when the topic went away.
pub(super) async fn copy_live(topic: &Weak<TopicRuntime>) -> Result<Option<Offset>, EngineError> {
    let Some(runtime) = topic.upgrade() else {
        return Ok(None);
    };
    let pass = runtime.compaction_start().await?;
    drop(runtime);
    if let Some(last) = &pass.last_binding {
        let mut after: Option<String> = None;
        // Ends: each batch moves `after` forward by at least one id, and stops at `last`.
        loop {
            let Some(runtime) = topic.upgrade() else {
                return Ok(None);
            };
            match runtime.copy_bindings(after.as_deref(), last).await? {
                Some(copied) => after = Some(copied),
                None => break,
            }
        }
    }
    if let Some(last) = &pass.last_key {
        let mut after: Option<String> = None;
        // Ends: each batch moves `after` forward by at least one key, and stops at `last`.
        loop {
            let Some(runtime) = topic.upgrade() else {
                return Ok(None);
            };
            match runtime
                .copy_retained(after.as_deref(), last, pass.before)
                .await?
            {
                Some(looked_at) if looked_at.as_str() < last.as_str() => after = Some(looked_at),
                Some(_) | None => break,
            }
        }
    }
    Ok(Some(pass.before))
}
