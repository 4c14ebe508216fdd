//! Queue statistics: gauges of the current state and counters of what happened.

use serde::Serialize;

/// A snapshot of one queue for the stats API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    /// Messages waiting to be delivered, including those waiting behind an earlier message of
    /// their ordering group.
    pub ready: u64,
    /// Messages hidden until a due time (delay, retry backoff, nack delay).
    pub delayed: u64,
    /// Messages delivered and not yet settled or returned.
    pub leased: u64,
    /// Age (now minus enqueue time) of the oldest ready message; `None` when none is ready.
    pub oldest_ready_age_ms: Option<u64>,
    /// Push consumers attached now (HTTP long polls waiting included); the queue state knows
    /// none, so the runtime fills it in.
    pub consumers: u64,
    pub counters: QueueCounters,
}

/// Counts of events since this queue state was created. Replay does not count: these are
/// process-lifetime counters in the Prometheus sense, reset by a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueCounters {
    /// Messages accepted by `enqueue` (duplicates excluded).
    pub sent: u64,
    /// Sends refused as duplicates of a message within the dedup window.
    pub duplicates: u64,
    /// Deliveries, redeliveries included.
    pub delivered: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Messages whose TTL ran out, whether dead-lettered or dropped.
    pub expired: u64,
    /// Messages settled towards the dead-letter queue (any reason).
    pub dead_lettered: u64,
    /// Messages discarded because the queue has no dead-letter queue (any reason).
    pub dropped: u64,
    pub purged: u64,
    /// Dead letters moved back to their source queue by redrive.
    pub redriven: u64,
    /// Messages lost to damaged storage: their record could not be read back when delivered
    /// (they left the queue, logged), or a restart found it damaged after they had been
    /// delivered (a message never delivered cannot be attributed; the storage metric counts
    /// its record).
    pub damaged: u64,
}
