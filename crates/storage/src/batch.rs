//! The pending batch of a log: the appends waiting for the next commit, with their frames
//! laid out to be written as they are.

use crate::{
    error::StorageError,
    record::{self, Offset},
    segment_writer::{self, BLOCK_BYTES},
};
use bytes::Bytes;
use tokio::sync::oneshot;

/// Appends waiting for the next commit, their frames encoded one after another.
///
/// The frames sit in `buf` after `lead` bytes of room, and the room starts on a block boundary
/// in memory. `lead` is foreseen when the batch is started: how far past a block boundary the
/// write of the batch will start, the bytes of that block already written (the segment
/// writer's tail). The segment writer then puts the tail in the room and writes the batch from
/// where it is, directly, instead of copying it into an aligned window of its own (see
/// [`SegmentWriter::write_in_place`]). Where the foresight fails (a rotation, a failed commit)
/// the batch is copied as before.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    /// Where the frames start in `buf`.
    head: usize,
    /// The room before `head`.
    lead: usize,
    /// Frame bytes the last commits had (the last one, or fifteen sixteenths of what the batch
    /// before expected, whichever is more; at most [`EXPECTED_BYTES_MAX`]): room for twice as
    /// many is made at once, instead of growing the buffer, copying it, as frames come.
    expected: usize,
    pub(crate) frame_lens: Vec<u32>,
    pub(crate) appends: Vec<PendingAppend>,
}

/// The most a batch expects from the size of the last commits (it makes room for twice that).
const EXPECTED_BYTES_MAX: usize = 1 << 20;

impl Batch {
    /// An empty batch for a commit that starts `position` bytes into its segment.
    pub(crate) fn starting_at(position: u64) -> Batch {
        let mut batch = Batch::default();
        batch.clear(position, 0);
        batch
    }

    /// Empties the batch for a commit that starts `position` bytes into its segment, after one
    /// of `last_bytes` of frames.
    pub(crate) fn clear(&mut self, position: u64, last_bytes: usize) {
        self.buf.clear();
        self.head = 0;
        self.lead = (position % BLOCK_BYTES as u64) as usize;
        self.expected = last_bytes.min(EXPECTED_BYTES_MAX);
        self.frame_lens.clear();
    }

    /// Gives the memory of an empty batch back: an idle log holds none.
    pub(crate) fn release(&mut self) {
        if self.appends.is_empty() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }

    /// The room made ahead for this batch (see [`Batch::clear`]).
    pub(crate) fn expected(&self) -> usize {
        self.expected
    }

    pub(crate) fn frames(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// Encodes the frames of one append's `payloads` from offset `first` on; returns their
    /// bytes.
    pub(crate) fn encode(&mut self, first: Offset, payloads: &[impl AsRef<[u8]>]) -> u64 {
        // Room for the whole append at once: growing record by record copies the batch over
        // and over.
        self.make_room(
            (payloads.iter())
                .map(|p| record::frame_len(p.as_ref().len()))
                .sum(),
        );
        let bytes_before = self.buf.len();
        for (i, payload) in payloads.iter().enumerate() {
            let offset = Offset(first.0 + i as u64);
            let payload = payload.as_ref();
            record::encode(offset, payload, i + 1 < payloads.len(), &mut self.buf);
            (self.frame_lens).push(record::frame_len(payload.len()) as u32);
        }
        (self.buf.len() - bytes_before) as u64
    }

    /// Makes room for `more` bytes of frames and the zeroes that pad them to a block boundary.
    /// When the buffer grows into a new place, the frames move so that the room before them
    /// starts on a block boundary again.
    fn make_room(&mut self, more: usize) {
        let frames = self.buf.len() - self.head;
        let room = |frames: usize| BLOCK_BYTES + self.lead + frames + BLOCK_BYTES;
        if self.buf.capacity() < room(frames + more) {
            // Twice what the last commits held: commits come in varied sizes.
            let wanted = room((frames + more).max(2 * self.expected));
            match frames {
                // Nothing to keep: a new buffer, not a reallocation that copies the old one.
                0 => (self.buf, self.head) = (Vec::with_capacity(wanted), 0),
                _ => self.buf.reserve(wanted - self.buf.len()),
            }
        }
        let address = self.buf.as_ptr() as usize;
        let head = (BLOCK_BYTES - address % BLOCK_BYTES) % BLOCK_BYTES + self.lead;
        if head > self.head {
            self.buf.resize(head + frames, 0);
            (self.buf).copy_within(self.head..self.head + frames, head);
        } else if head < self.head {
            (self.buf).copy_within(self.head..self.head + frames, head);
            self.buf.truncate(head + frames);
        }
        self.head = head;
    }

    /// The frames with the room before them and zeroes after them up to a block boundary,
    /// and where the frames end in it: what [`SegmentWriter::write_in_place`] writes. `None`
    /// when the room is not `lead` bytes.
    pub(crate) fn window(&mut self, lead: usize) -> Option<(&mut [u8], usize)> {
        if lead != self.lead || self.head < lead {
            return None;
        }
        let start = self.head - lead;
        let filled = self.buf.len() - start;
        self.buf
            .resize(start + segment_writer::round_up(filled as u64) as usize, 0);
        Some((&mut self.buf[start..], filled))
    }
}

#[derive(Debug)]
pub(crate) struct PendingAppend {
    pub(crate) first: Offset,
    pub(crate) records: u32,
    pub(crate) bytes: u64,
    pub(crate) done: oneshot::Sender<Result<(), StorageError>>,
    /// The payloads, for the tail cache once committed; empty when not cached.
    pub(crate) cached: Vec<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the buffer grows, the room before the frames starts on a block boundary, the
    /// frames are those encoded, and the window pads them to whole blocks.
    #[test]
    fn a_batch_keeps_its_room_block_aligned_as_it_grows() {
        for position in [0, 1, 4095, 4096 + 904, 9_000_001] {
            let mut batch = Batch::starting_at(position);
            let lead = (position % BLOCK_BYTES as u64) as usize;
            let mut expected = Vec::new();
            let mut next = 0;
            for size in [0, 3, 100, 5_000, 70_000, 1, 300_000, 17] {
                let payloads = vec![vec![size as u8; size]; 3];
                batch.encode(Offset(next), &payloads);
                for (i, payload) in payloads.iter().enumerate() {
                    record::encode(Offset(next + i as u64), payload, i < 2, &mut expected);
                }
                next += 3;
                let room = batch.buf.as_ptr() as usize + batch.head - lead;
                assert_eq!(room % BLOCK_BYTES, 0, "position {position} size {size}");
                assert_eq!(batch.frames(), &expected[..]);
            }
            assert!(batch.window(lead + 1).is_none(), "another tail: copied");
            let (window, filled) = batch.window(lead).expect("the foreseen tail");
            assert_eq!(filled, lead + expected.len());
            assert_eq!(window.len() % BLOCK_BYTES, 0);
            assert!(window.len() - filled < BLOCK_BYTES);
            assert_eq!(&window[lead..filled], &expected[..]);
            assert_eq!(window.as_ptr() as usize % BLOCK_BYTES, 0);
        }
    }

    /// A batch after a commit of some size makes room for twice as much at its first frames,
    /// so that it does not grow (copying its frames) as more come; within a bound.
    #[test]
    fn a_batch_makes_room_for_what_the_last_commit_held() {
        let mut batch = Batch::default();
        batch.clear(100, 300_000);
        batch.encode(Offset(0), &[b"small"]);
        assert!(batch.buf.capacity() >= 600_000, "{}", batch.buf.capacity());
        batch.clear(100, 64 << 20);
        batch.release();
        batch.encode(Offset(1), &[b"small"]);
        let capacity = batch.buf.capacity();
        assert!((2 * EXPECTED_BYTES_MAX..3 * EXPECTED_BYTES_MAX).contains(&capacity));
    }
}
