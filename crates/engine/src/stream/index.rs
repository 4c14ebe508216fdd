//! Where each batch of a partition lies: the in-memory index from offsets to log positions.
//!
//! A partition's log stores one record batch per log record (the storage's offset, called a
//! *position* here to keep it apart from the stream's offsets). A batch of 1,000 records is
//! one entry of about 40 bytes, so the index of a partition holding millions of records in
//! batches costs kilobytes to a few megabytes; an empty partition costs an empty vector.
//!
//! Entries are kept in offset order. With cleanup `delete` positions rise with offsets; with
//! `compact`, compaction copies kept batches forward to the end of the log, so a batch's
//! position may be above that of a later batch. Nothing here assumes positions are in order:
//! the lowest position still needed is computed when the log is truncated.

/// One stored batch: its offset range, where it lies and what retention needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    /// The batch's first offset.
    pub base: u64,
    /// The batch's last offset (its range, even if compaction removed records at its end).
    pub last: u64,
    /// The log position of the record holding the batch.
    pub position: u64,
    /// The newest record timestamp in the batch (ms since the epoch).
    pub max_timestamp: i64,
    /// The batch's stored size.
    pub bytes: u32,
    /// Records the batch holds now.
    pub records: u32,
}

impl BatchEntry {
    pub fn next_offset(&self) -> u64 {
        self.last + 1
    }
}

/// The batches of one partition, by offset.
#[derive(Debug, Clone, Default)]
pub struct BatchIndex {
    entries: Vec<BatchEntry>,
    next_offset: u64,
    bytes: u64,
    records: u64,
}

impl BatchIndex {
    pub fn new() -> BatchIndex {
        BatchIndex::default()
    }

    /// Adds a batch found while reading the log from its start. A batch whose base is already
    /// indexed is a later copy (compaction writes one) and takes the earlier one's place.
    pub fn insert_replayed(&mut self, entry: BatchEntry) {
        match self.entries.binary_search_by_key(&entry.base, |e| e.base) {
            Ok(found) => {
                let old = std::mem::replace(&mut self.entries[found], entry);
                self.bytes -= u64::from(old.bytes);
                self.records -= u64::from(old.records);
            }
            Err(place) => self.entries.insert(place, entry),
        }
        self.bytes += u64::from(entry.bytes);
        self.records += u64::from(entry.records);
        self.next_offset = self.next_offset.max(entry.next_offset());
    }

    /// Adds a batch just appended at the end of the partition.
    pub fn push(&mut self, entry: BatchEntry) {
        assert_eq!(
            entry.base, self.next_offset,
            "a new batch starts at the end"
        );
        assert!(entry.last >= entry.base);
        self.entries.push(entry);
        self.bytes += u64::from(entry.bytes);
        self.records += u64::from(entry.records);
        self.next_offset = entry.next_offset();
    }

    /// The offset the next record appended gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The first offset still stored (the end, when nothing is).
    pub fn earliest(&self) -> u64 {
        self.entries.first().map_or(self.next_offset, |e| e.base)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[BatchEntry] {
        &self.entries
    }

    /// The batches holding `offset` and after it, until their sizes pass `bytes_max` (the
    /// first one is taken whatever its size) or `count_max` batches.
    pub fn batches_from(&self, offset: u64, bytes_max: usize, count_max: usize) -> Vec<BatchEntry> {
        let first = self.entries.partition_point(|e| e.last < offset);
        let mut taken = Vec::new();
        let mut bytes = 0usize;
        for entry in &self.entries[first..] {
            if !taken.is_empty()
                && (bytes + entry.bytes as usize > bytes_max || taken.len() >= count_max)
            {
                break;
            }
            bytes += entry.bytes as usize;
            taken.push(*entry);
        }
        taken
    }

    /// The first batch (in offset order) holding a record at or after `timestamp`: where a
    /// seek by time starts reading.
    pub fn first_reaching(&self, timestamp: i64) -> Option<BatchEntry> {
        self.entries
            .iter()
            .find(|e| e.max_timestamp >= timestamp)
            .copied()
    }

    /// The offset before which retention lets records go: batches whose newest record is older
    /// than `now - retention_ms`, and the oldest batches past `retention_bytes`. The newest
    /// batch always stays, so the partition's end survives a restart.
    pub fn retention_cut(
        &self,
        now: u64,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> u64 {
        let Some(newest) = self.entries.last() else {
            return self.next_offset;
        };
        let mut cut = self.earliest();
        if let Some(retention) = retention_ms {
            let horizon = now.saturating_sub(retention) as i64;
            let kept = self.entries.partition_point(|e| e.max_timestamp < horizon);
            if let Some(entry) = self.entries.get(kept) {
                cut = cut.max(entry.base);
            } else {
                cut = newest.base;
            }
        }
        if let Some(retention) = retention_bytes {
            let mut kept_bytes = 0u64;
            let mut first_kept = newest.base;
            for entry in self.entries.iter().rev() {
                kept_bytes += u64::from(entry.bytes);
                if kept_bytes > retention {
                    break;
                }
                first_kept = entry.base;
            }
            cut = cut.max(first_kept);
        }
        cut.min(newest.base)
    }

    /// The lowest log position of the batches at or after `offset`: truncating the log below it
    /// loses nothing those batches need.
    pub fn lowest_position_from(&self, offset: u64) -> Option<u64> {
        let first = self.entries.partition_point(|e| e.last < offset);
        self.entries[first..].iter().map(|e| e.position).min()
    }

    /// Drops the batches the log no longer holds: those below `start` (the log's new start
    /// position). Returns how many went.
    pub fn drop_below_position(&mut self, start: u64) -> usize {
        let before = self.entries.len();
        let (mut bytes, mut records) = (0, 0);
        self.entries.retain(|e| {
            let keep = e.position >= start;
            if !keep {
                bytes += u64::from(e.bytes);
                records += u64::from(e.records);
            }
            keep
        });
        self.bytes -= bytes;
        self.records -= records;
        before - self.entries.len()
    }

    /// Points the batch at `base` to its compacted copy, or removes it (`None`).
    pub fn replace(&mut self, base: u64, copy: Option<BatchEntry>) {
        let Ok(found) = self.entries.binary_search_by_key(&base, |e| e.base) else {
            return;
        };
        let old = self.entries[found];
        self.bytes -= u64::from(old.bytes);
        self.records -= u64::from(old.records);
        match copy {
            Some(copy) => {
                assert_eq!(
                    (copy.base, copy.last),
                    (old.base, old.last),
                    "a copy keeps its range"
                );
                self.entries[found] = copy;
                self.bytes += u64::from(copy.bytes);
                self.records += u64::from(copy.records);
            }
            None => {
                self.entries.remove(found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(base: u64, last: u64, position: u64, max_timestamp: i64, bytes: u32) -> BatchEntry {
        BatchEntry {
            base,
            last,
            position,
            max_timestamp,
            bytes,
            records: (last - base + 1) as u32,
        }
    }

    fn index(entries: &[BatchEntry]) -> BatchIndex {
        let mut index = BatchIndex::new();
        for e in entries {
            index.push(*e);
        }
        index
    }

    #[test]
    fn batches_from_starts_at_the_batch_holding_the_offset() {
        let index = index(&[
            entry(0, 9, 0, 10, 100),
            entry(10, 19, 1, 20, 100),
            entry(20, 29, 2, 30, 100),
        ]);
        let found: Vec<u64> = index
            .batches_from(15, 150, 10)
            .iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(found, vec![10]);
        let found: Vec<u64> = index
            .batches_from(15, 200, 10)
            .iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(found, vec![10, 20]);
        assert!(index.batches_from(30, 1000, 10).is_empty());
        assert_eq!(
            index.batches_from(0, 1, 10).len(),
            1,
            "the first batch whatever its size"
        );
        assert_eq!(index.batches_from(0, 1000, 2).len(), 2);
    }

    #[test]
    fn retention_cut_by_age_and_size_keeps_the_newest_batch() {
        let index = index(&[
            entry(0, 9, 0, 1_000, 100),
            entry(10, 19, 1, 2_000, 100),
            entry(20, 29, 2, 3_000, 100),
        ]);
        assert_eq!(index.retention_cut(2_500, Some(1_000), None), 10);
        assert_eq!(
            index.retention_cut(10_000, Some(1_000), None),
            20,
            "the newest stays"
        );
        assert_eq!(index.retention_cut(0, None, Some(250)), 10);
        assert_eq!(index.retention_cut(0, None, Some(1)), 20);
        assert_eq!(index.retention_cut(0, None, None), 0);
    }

    #[test]
    fn replayed_copies_take_the_place_of_their_originals() {
        let mut index = BatchIndex::new();
        index.insert_replayed(entry(0, 9, 0, 10, 100));
        index.insert_replayed(entry(10, 19, 1, 20, 100));
        index.insert_replayed(entry(0, 9, 2, 10, 40));
        assert_eq!(index.len(), 2);
        assert_eq!(index.entries()[0].position, 2);
        assert_eq!(index.bytes(), 140);
        assert_eq!(index.next_offset(), 20);
        assert_eq!(index.lowest_position_from(0), Some(1));
        assert_eq!(index.drop_below_position(1), 0);
        assert_eq!(index.drop_below_position(2), 1);
        assert_eq!(index.earliest(), 0);
    }

    #[test]
    fn seek_by_time_finds_the_first_batch_reaching_it() {
        let index = index(&[entry(0, 9, 0, 1_000, 100), entry(10, 19, 1, 2_000, 100)]);
        assert_eq!(index.first_reaching(500).map(|e| e.base), Some(0));
        assert_eq!(index.first_reaching(1_500).map(|e| e.base), Some(10));
        assert_eq!(index.first_reaching(2_001), None);
    }
}
