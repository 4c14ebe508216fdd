//! Engine defects the simulator has found and not yet seen fixed.
//!
//! Each is still checked at every step. By default a sighting is recorded in the report and
//! the run goes on (with the model following the engine), so that one known defect does not
//! hide the next; a strict run fails at the first sighting like any other invariant. A defect
//! whose consequences no model can follow (a failed write that comes back) is avoided instead:
//! only a run that provokes it injects the faults that trigger it ([`Defect::avoided`]), and
//! then fails. When the engine is fixed, `tests/known_defects.rs` notices (the seed that shows
//! a defect stops showing it) and the entry goes.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Defect {
    /// `QueueCounters::duplicates` stays 0: the broker refuses a duplicate before writing
    /// (`QueueRuntime::send_reserve`), and only `QueueState::enqueue`, which the broker does not
    /// call, counts one.
    DuplicatesNotCounted,
    /// A message copied forward by WAL reclaim (relocated) cannot be dead-lettered: the state
    /// forgets the copy's location when it settles the message, and the move then reads the
    /// message at its original offset, whose segment reclaim already deleted
    /// (`OffsetTruncated`). The dead letter is lost from the live state (the log still holds
    /// the message, so a restart brings it back), and the call that caused it fails.
    DeadLetterOfCopiedMessage,
    /// A settlement the queue makes on its own (dead letters: a nack, an expired lease or TTL,
    /// an eviction, a consumer going away) is applied in memory before it is written. When the
    /// write fails, the engine now puts the message back (ready, its counters taken back), so
    /// nothing is lost; but a nack reports an error though its lease has ended.
    SettleAppliedBeforeWritten,
    /// A message the live state dropped without its settlement being written (either of the
    /// two defects above) no longer holds back WAL reclaim, which deletes its records: the
    /// restart that should bring it back finds nothing. A confirmed message is lost for good.
    ReclaimDropsVanishedMessage,
    /// A spare segment whose preparation failed while the disk was full (or syncs failed) was
    /// still used by the next rotation after the fault was gone, which then failed with the old
    /// error: one more append failed after service should have resumed. Fixed: a failed spare
    /// is prepared again at the rotation, and on a full disk the next segment grows instead.
    FailedSpareReused,
    /// When the disk fills in the middle of a commit, the part written is to be zeroed again,
    /// but that write fails too (the disk is still full), so complete frames of the failed
    /// appends stay after the log's end. A crash, or a rotation to the next segment before the
    /// region is overwritten, lets recovery read them back: a failed send reappears, and an
    /// older segment overlapping the next gives two records one offset. Avoided unless
    /// provoked: disk-full faults then cut no write short.
    FailedAppendLeftOnDisk,
    /// A send to a full `drop_oldest` queue stores its messages, then moves the evicted ones
    /// to the dead-letter queue; when that move fails, the send returns the error though its
    /// messages are stored: a client that retries without a message id stores them twice.
    SendFailsAfterStoring,
    /// A rotation that fails after it renamed the spare into the next segment's file (the
    /// directory sync fails) leaves that file behind, empty, while later, smaller appends go on
    /// into the older segment. After a restart the empty file claimed their offsets, and the
    /// confirmed messages there were gone. Fixed: opening a log removes such an empty file when
    /// the segment before it holds records past its base.
    FailedRotationLeavesSegment,
}

impl Defect {
    /// The invariant it breaks, as `docs/architecture.md` names it.
    pub fn invariant(self) -> &'static str {
        match self {
            Defect::DuplicatesNotCounted => "counters count what happened",
            Defect::DeadLetterOfCopiedMessage => "operations fail only for a cause",
            Defect::SettleAppliedBeforeWritten => "live state equals replay",
            Defect::ReclaimDropsVanishedMessage => "no confirmed message lost",
            Defect::FailedSpareReused => "service resumes when a fault is gone",
            Defect::SendFailsAfterStoring => "a failed send stores nothing",
            Defect::FailedAppendLeftOnDisk => "a failed send stores nothing",
            Defect::FailedRotationLeavesSegment => "queues stay open",
        }
    }

    /// Fixed in the engine since the simulator found it: a sighting is now a failure.
    pub fn fixed(self) -> bool {
        matches!(
            self,
            Defect::DuplicatesNotCounted
                | Defect::DeadLetterOfCopiedMessage
                | Defect::SettleAppliedBeforeWritten
                | Defect::ReclaimDropsVanishedMessage
                | Defect::SendFailsAfterStoring
                | Defect::FailedSpareReused
                | Defect::FailedRotationLeavesSegment
        )
    }

    /// Whether runs avoid it (inject its trigger only when provoking) rather than tolerate it.
    pub fn avoided(self) -> bool {
        matches!(self, Defect::FailedAppendLeftOnDisk)
    }

    /// The defects still open (not [`Defect::fixed`]).
    pub fn all() -> &'static [Defect] {
        &[Defect::FailedAppendLeftOnDisk]
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Defect::DuplicatesNotCounted => {
                "the duplicates counter never counts: duplicates are refused before the state \
                 machine that counts them"
            }
            Defect::DeadLetterOfCopiedMessage => {
                "a message copied forward by reclaim cannot be dead-lettered: the move reads \
                 its original, deleted offset"
            }
            Defect::SettleAppliedBeforeWritten => {
                "dead-lettering is applied before it is written: when the write fails, the \
                 message is put back ready, but a failed nack has already ended its lease"
            }
            Defect::ReclaimDropsVanishedMessage => {
                "a message the live state dropped without writing its settlement stops \
                 holding back reclaim, which deletes it: lost for good"
            }
            Defect::FailedSpareReused => {
                "a spare segment that failed during a fault fails the first rotation after it"
            }
            Defect::SendFailsAfterStoring => {
                "a send that evicts (drop_oldest) reports an error when moving the evicted \
                 message fails, though its own messages are stored"
            }
            Defect::FailedAppendLeftOnDisk => {
                "a commit cut short by a full disk is not undone (the undo fails too), and \
                 recovery reads the failed appends back"
            }
            Defect::FailedRotationLeavesSegment => {
                "a rotation that fails after renaming the spare leaves an empty segment that, \
                 after a restart, hides records written to the older segment"
            }
        };
        f.write_str(text)
    }
}

/// Where a run first saw a defect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub step: usize,
    pub detail: String,
}
