//! The audit log: who did which management action, when, from where, and how it ended.
//!
//! A log of its own (`audit`, durable: an entry written survives `kill -9` like a message),
//! one JSON record per entry, readable by administrators from any offset. Each entry is also
//! written to the server log as a JSON line under the `wharf::audit` target, for collectors.
//! Entries are written after the action is decided (including refusals and failed logins), by
//! the door that saw the request: only it knows where the caller came from.

use crate::{Engine, EngineError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wharf_storage::Offset;

/// The audit log's name in storage.
pub(crate) const AUDIT_LOG_NAME: &str = "audit";

/// Most entries one read returns.
pub const AUDIT_READ_MAX: usize = 1_000;

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
    /// Who: `user:NAME`, `token:ID`, `anonymous`, or `unauthenticated`.
    pub who: String,
    /// Where from: the peer's address, as the door knows it.
    pub from: Option<String>,
    /// What: the operation, in the door's terms (`DELETE /v1/queues/{name}`).
    pub operation: String,
    /// The resource it touched (`queue:jobs`), when it names one.
    pub resource: Option<String>,
    /// How it ended: `ok`, `denied`, `unauthenticated`, or `failed: STATUS`.
    pub outcome: String,
}

/// An entry read back, with its position for the next read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub offset: u64,
    pub entry: AuditEntry,
}

impl Engine {
    /// Writes `entry` durably to the audit log and as a JSON line to the server log.
    pub async fn audit(&self, mut entry: AuditEntry) -> Result<(), EngineError> {
        if entry.at == 0 {
            entry.at = self.now();
        }
        let json = serde_json::to_vec(&entry).expect("an audit entry serializes");
        tracing::info!(target: "wharf::audit", "{}", String::from_utf8_lossy(&json));
        self.inner.audit.append(&[Bytes::from(json)], None).await?;
        Ok(())
    }

    /// Up to `limit` entries from offset `after + 1` (from the start without `after`).
    pub async fn audit_read(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, EngineError> {
        let log = &self.inner.audit;
        let from = after.map_or(log.start_offset(), |after| Offset(after.saturating_add(1)));
        let from = from.max(log.start_offset());
        let limit = limit.clamp(1, AUDIT_READ_MAX);
        let records = log.read_batch(from, limit, 4 << 20).await?;
        Ok(records
            .into_iter()
            .filter_map(|record| {
                let entry = serde_json::from_slice(&record.payload).ok()?;
                Some(AuditRecord {
                    offset: record.offset.0,
                    entry,
                })
            })
            .collect())
    }
}
