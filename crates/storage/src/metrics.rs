//! Storage metrics, shared by every log of a store and exported by the server.

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// Counters and histograms for all logs of one store. Cheap to update (atomics).
#[derive(Debug)]
pub struct StorageMetrics {
    pub appends: Counter,
    pub append_bytes: Counter,
    pub append_errors: Counter,
    pub fsyncs: Counter,
    /// Commits that waited for more appends (see `LogConfig::commit_gather`).
    pub commit_gathers: Counter,
    pub fsync_seconds: Histogram,
    pub segments: Gauge,
    pub corrupt_records: Counter,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            appends: Counter::default(),
            append_bytes: Counter::default(),
            append_errors: Counter::default(),
            fsyncs: Counter::default(),
            commit_gathers: Counter::default(),
            // 50 µs to ~1.6 s: a healthy fdatasync lands in the low buckets, a sick disk in
            // the high ones.
            fsync_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16),
            ),
            segments: Gauge::default(),
            corrupt_records: Counter::default(),
        }
    }
}

impl StorageMetrics {
    /// Adds every metric to `registry` under the `wharf_storage_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("wharf_storage");
        registry.register("appends", "Records appended to logs", self.appends.clone());
        registry.register_with_unit(
            "append",
            "Bytes appended to logs, framing included",
            Unit::Bytes,
            self.append_bytes.clone(),
        );
        registry.register(
            "append_errors",
            "Appends that failed (I/O error, disk full)",
            self.append_errors.clone(),
        );
        registry.register(
            "fsyncs",
            "fdatasync calls on segment files",
            self.fsyncs.clone(),
        );
        registry.register(
            "commit_gathers",
            "Commits that waited for more appends (storage.commit_gather_us)",
            self.commit_gathers.clone(),
        );
        registry.register_with_unit(
            "fsync",
            "Latency of fdatasync on segment files",
            Unit::Seconds,
            self.fsync_seconds.clone(),
        );
        registry.register("segments", "Segment files open", self.segments.clone());
        registry.register(
            "corrupt_records",
            "Records found damaged at open, unreadable while the others stay readable",
            self.corrupt_records.clone(),
        );
    }
}
