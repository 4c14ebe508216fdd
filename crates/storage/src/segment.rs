//! One segment file: a run of records starting at a base offset, with its position index.
//!
//! A segment is named after its base offset (`00000000000000000042.log`). It may be longer than
//! its data: preallocated segments are zero-filled, and a zero length field marks the end. The
//! position index (byte position of every record) lives in memory; it is rebuilt by scanning on
//! open, which also verifies every checksum, so damage is found at start-up rather than by the
//! first unlucky reader.
//!
//! The scan sorts what is not a readable record into two kinds: damage (bytes that fail their
//! checks, found while the server runs on) and quarantined ranges (damage that `wharf check
//! --repair` has moved aside and replaced by quarantined frames, see `record`). Reads of either
//! fail with [`StorageError::Corrupt`]; only damage is news to an operator.

use crate::{
    error::StorageError,
    record::{self, Header, Offset, Record, RECORD_HEADER_BYTES},
};
use bytes::Bytes;
use std::{
    fs::File,
    io::{self, BufReader, Read},
    io::{Seek, SeekFrom},
    ops::Range,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        RwLock,
    },
};

/// Segment files are `{base offset, 20 digits}.log`, so a directory listing sorts by offset.
pub(crate) const SEGMENT_SUFFIX: &str = ".log";

pub(crate) fn segment_file_name(base: Offset) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", base.0)
}

pub(crate) fn parse_segment_file_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

/// A run of offsets recovery found unreadable and must not paper over: the records before and
/// after it stay readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file holding the damage.
    pub path: PathBuf,
    /// The offsets that cannot be read (empty when bytes between two valid records were
    /// damaged but no offset is missing).
    pub offsets: Range<Offset>,
    /// Byte position in the file where the damage starts.
    pub position: u64,
    /// Bytes the damage spans: up to the next valid record, or to the end of the data (the last
    /// byte that is not zero) when no valid record follows in the segment.
    pub length: u64,
    pub reason: &'static str,
}

/// A run of offsets `wharf check --repair` moved aside: the segment holds quarantined frames in
/// their place, and reads of them fail with [`StorageError::Corrupt`] with
/// [`QUARANTINED_REASON`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The segment file holding the quarantined frames.
    pub path: PathBuf,
    /// The offsets gone with the moved bytes (empty when no offset was missing).
    pub offsets: Range<Offset>,
    /// Byte position of the first quarantined frame in the file.
    pub position: u64,
    /// Bytes of quarantined frames: the length of the damaged range that was moved (or a
    /// header, for a shorter range at the end of a segment's data).
    pub length: u64,
}

/// Why a quarantined offset cannot be read.
pub const QUARANTINED_REASON: &str = "quarantined by wharf check --repair";

/// More offsets than any segment below 4 GiB can hold (a record takes at least a header): a
/// quarantined frame claiming more is not believed, so a forged one cannot make the scan build
/// an index of billions of entries.
const QUARANTINED_OFFSETS_MAX: u64 = (u32::MAX as u64) / RECORD_HEADER_BYTES as u64;

#[derive(Debug)]
pub(crate) struct Segment {
    pub base: Offset,
    pub path: PathBuf,
    pub file: File,
    /// Byte position of record `base + i` at index `i`. Appended to by the writer only.
    positions: RwLock<Vec<u32>>,
    /// Byte position just past the last written record.
    end: AtomicU64,
    /// Offset ranges recovery found unreadable, in offset order.
    pub damage: Vec<Damage>,
    /// Offset ranges a repair moved aside, in offset order.
    pub quarantined: Vec<Quarantined>,
}

/// What scanning a segment file found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub positions: Vec<u32>,
    /// Position just past the last complete append.
    pub end: u64,
    /// Why the scan stopped before the end of the file, if not at a clean end marker.
    pub torn: Option<(u64, &'static str)>,
    /// Invalid bytes with valid records after them, in offset order. The index holds the
    /// damage's start position for each of their offsets.
    pub damage: Vec<Damage>,
    /// Quarantined frames, adjacent ones merged, in offset order. The index holds the first
    /// frame's position for each of their offsets.
    pub quarantined: Vec<Quarantined>,
}

impl Segment {
    pub(crate) fn new(base: Offset, path: PathBuf, file: File, scan: Scan) -> Segment {
        Segment {
            base,
            path,
            file,
            end: AtomicU64::new(scan.end),
            positions: RwLock::new(scan.positions),
            damage: scan.damage,
            quarantined: scan.quarantined,
        }
    }

    /// Records in this segment's index.
    pub(crate) fn len(&self) -> u64 {
        self.positions.read().expect("index lock").len() as u64
    }

    pub(crate) fn end_offset(&self) -> Offset {
        Offset(self.base.0 + self.len())
    }

    pub(crate) fn write_end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Records that `frame_lens` were written contiguously from the current end.
    pub(crate) fn extend_index(&self, frame_lens: &[u32]) {
        let mut positions = self.positions.write().expect("index lock");
        let mut position = self.end.load(Ordering::Acquire);
        for length in frame_lens {
            positions.push(u32::try_from(position).expect("segments stay below 4 GiB"));
            position += u64::from(*length);
        }
        self.end.store(position, Ordering::Release);
    }

    /// Reads records from `from` on into `out`, stopping before `limit`, after `max_records`, or
    /// before passing `max_bytes` of payload (one record is read anyway if `out` is empty).
    pub(crate) fn read(
        &self,
        from: Offset,
        limit: Offset,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<(), StorageError> {
        assert!(from >= self.base);
        let limit = self.read_limit(from, limit)?;
        let (start, stop, count) = {
            let positions = self.positions.read().expect("index lock");
            let first = (from.0 - self.base.0) as usize;
            let last = positions
                .len()
                .min((limit.0.saturating_sub(self.base.0)) as usize);
            if first >= last {
                return Ok(());
            }
            let start = u64::from(positions[first]);
            let mut count = 0;
            let mut stop = start;
            while first + count < last && count < max_records {
                let next = match positions.get(first + count + 1) {
                    Some(p) => u64::from(*p),
                    None => self.end.load(Ordering::Acquire),
                };
                let payload_bytes = (next - start) as usize - (count + 1) * RECORD_HEADER_BYTES;
                if (count > 0 || !out.is_empty()) && payload_bytes > max_bytes {
                    break;
                }
                stop = next;
                count += 1;
            }
            (start, stop, count)
        };
        let mut buf = vec![0; (stop - start) as usize];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.split_frames(Bytes::from(buf), start, from, count, out)
    }

    /// Fails when `from` is damaged or quarantined; otherwise lowers `limit` to the first
    /// unreadable offset after `from`, so a read stops before it and the next read from there
    /// reports it.
    fn read_limit(&self, from: Offset, limit: Offset) -> Result<Offset, StorageError> {
        let damage = (self.damage.iter()).map(|d| (&d.offsets, d.position, d.reason));
        let quarantined =
            (self.quarantined.iter()).map(|q| (&q.offsets, q.position, QUARANTINED_REASON));
        let mut limit = limit;
        for (offsets, position, reason) in damage.chain(quarantined) {
            if offsets.contains(&from) {
                return Err(self.corrupt(from, position, reason));
            }
            if offsets.start > from {
                limit = limit.min(offsets.start);
            }
        }
        Ok(limit)
    }

    fn split_frames(
        &self,
        buf: Bytes,
        start: u64,
        from: Offset,
        count: usize,
        out: &mut Vec<Record>,
    ) -> Result<(), StorageError> {
        let mut at = 0usize;
        for i in 0..count {
            let offset = Offset(from.0 + i as u64);
            let header: &[u8; RECORD_HEADER_BYTES] = buf
                .get(at..at + RECORD_HEADER_BYTES)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| {
                    self.corrupt(offset, start + at as u64, "frame runs past its segment")
                })?;
            let Header::Frame { length, .. } = record::decode_header(header) else {
                return Err(self.corrupt(offset, start + at as u64, "invalid frame header"));
            };
            let frame = buf.get(at..at + length as usize).ok_or_else(|| {
                self.corrupt(offset, start + at as u64, "frame runs past its segment")
            })?;
            record::verify(frame, offset)
                .map_err(|reason| self.corrupt(offset, start + at as u64, reason))?;
            out.push(Record {
                offset,
                payload: buf.slice(at + RECORD_HEADER_BYTES..at + length as usize),
            });
            at += length as usize;
        }
        Ok(())
    }

    fn corrupt(&self, offset: Offset, position: u64, reason: &'static str) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            offset,
            position,
            reason,
        }
    }
}

/// Reads a segment from the start and indexes every complete, valid append.
///
/// Stops at the end of the file, or at an end marker or invalid frame that no valid frame
/// follows: the torn tail. An invalid frame (or a zero-filled range) that valid frames do follow
/// is damage, not a torn tail: the scan searches forward for the next valid frame carrying the
/// expected offset or a later one, records the offsets between as damaged and goes on from
/// there. Records of an append whose last frame is missing at the tail are left out (`end`
/// stays before them), so a torn multi-record append disappears whole; unless the segment is
/// `sealed` (a newer one follows): it was synced before the next began, so its end was never
/// torn, appends never span segments, and a missing last frame is damage that costs only the
/// records it hit.
pub(crate) fn scan(
    path: &Path,
    file: &File,
    base: Offset,
    sealed: bool,
) -> Result<Scan, StorageError> {
    let io_error = |e: io::Error| StorageError::io(path, e);
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut state = ScanState {
        path: path.to_path_buf(),
        ..ScanState::default()
    };
    let mut frame = Vec::new();
    loop {
        let stop =
            scan_frame(&mut reader, file_len, base, &mut state, &mut frame).map_err(io_error)?;
        let Some((position, reason)) = stop else {
            continue;
        };
        let expected = Offset(base.0 + state.positions.len() as u64);
        match resync(file, position, file_len, expected).map_err(io_error)? {
            Some((found_at, found)) => {
                state.skip_damage(position, expected, (found_at, found), reason);
                reader.seek(SeekFrom::Start(found_at)).map_err(io_error)?;
            }
            None => {
                if sealed {
                    state.committed_records = state.positions.len();
                    state.committed_end = state.position;
                }
                let torn = (!reason.is_empty()).then_some((position, reason));
                return Ok(state.finish(torn));
            }
        }
    }
}

/// What the scan has indexed so far.
#[derive(Debug, Default)]
struct ScanState {
    path: PathBuf,
    positions: Vec<u32>,
    /// Records of complete appends: the index is cut back to this at a torn tail.
    committed_records: usize,
    committed_end: u64,
    position: u64,
    damage: Vec<Damage>,
    quarantined: Vec<Quarantined>,
}

impl ScanState {
    /// Indexes the damaged offsets `[expected, found)` at the damage's start and moves to the
    /// valid frame of offset `found` at `found_at`. Records before damage stay, whole appends or not: valid
    /// records follow them, so they are no torn tail.
    fn skip_damage(
        &mut self,
        position: u64,
        expected: Offset,
        (found_at, found): (u64, Offset),
        reason: &'static str,
    ) {
        let at = u32::try_from(position).expect("segments stay below 4 GiB");
        self.positions
            .resize(self.positions.len() + (found.0 - expected.0) as usize, at);
        self.damage.push(Damage {
            path: self.path.clone(),
            offsets: expected..found,
            position,
            length: found_at - position,
            reason: if reason.is_empty() {
                "zero-filled range before valid records"
            } else {
                reason
            },
        });
        self.committed_records = self.positions.len();
        self.committed_end = found_at;
        self.position = found_at;
    }

    /// Indexes the valid quarantined frame `frame` at the scan's position, standing for the
    /// offsets from the expected one to `end`, and moves past it. A frame that follows another
    /// one directly (a range longer than one frame holds) extends its range.
    fn index_quarantined(&mut self, expected: Offset, frame_len: u64, end: Offset) {
        let position = self.position;
        let at = u32::try_from(position).expect("segments stay below 4 GiB");
        self.positions
            .resize(self.positions.len() + (end.0 - expected.0) as usize, at);
        match self.quarantined.last_mut() {
            Some(last)
                if last.position + last.length == position && last.offsets.end == expected =>
            {
                last.offsets.end = end;
                last.length += frame_len;
            }
            _ => self.quarantined.push(Quarantined {
                path: self.path.clone(),
                offsets: expected..end,
                position,
                length: frame_len,
            }),
        }
        self.position = position + frame_len;
        self.committed_records = self.positions.len();
        self.committed_end = self.position;
    }

    /// The scan result once nothing valid follows `position`: `torn` is why it stopped, `None`
    /// at a clean end (end marker, zero padding or end of file).
    fn finish(mut self, torn: Option<(u64, &'static str)>) -> Scan {
        let partial = self.committed_records < self.positions.len();
        let torn = match torn {
            None if partial => Some((self.committed_end, "append ends without its last record")),
            Some((at, reason)) if partial => Some((
                self.committed_end,
                if at == self.committed_end {
                    reason
                } else {
                    "append ends without its last record"
                },
            )),
            torn => torn,
        };
        self.positions.truncate(self.committed_records);
        Scan {
            positions: self.positions,
            end: self.committed_end,
            torn,
            damage: self.damage,
            quarantined: self.quarantined,
        }
    }
}

/// Reads and checks the frame at the scan's position. `None`: it was valid and is indexed.
/// `Some((position, reason))`: the scan cannot go on there; an empty reason means an end marker
/// or zero padding, anything else an invalid frame.
fn scan_frame(
    reader: &mut BufReader<&File>,
    file_len: u64,
    base: Offset,
    state: &mut ScanState,
    frame: &mut Vec<u8>,
) -> io::Result<Option<(u64, &'static str)>> {
    let position = state.position;
    if position + RECORD_HEADER_BYTES as u64 > file_len {
        // Fewer bytes left than a header: the end if they are padding (zeroes).
        let mut rest = vec![0u8; (file_len - position) as usize];
        reader.read_exact(&mut rest)?;
        let reason = if rest.iter().any(|b| *b != 0) {
            "partial frame header"
        } else {
            ""
        };
        return Ok(Some((position, reason)));
    }
    let mut header = [0u8; RECORD_HEADER_BYTES];
    reader.read_exact(&mut header)?;
    let (length, continues, quarantined) = match record::decode_header(&header) {
        Header::End => return Ok(Some((position, ""))),
        Header::BadLength => return Ok(Some((position, "invalid frame length"))),
        Header::Frame {
            length,
            continues,
            quarantined,
            ..
        } => (length, continues, quarantined),
    };
    if position + u64::from(length) > file_len {
        return Ok(Some((position, "frame runs past the end of the file")));
    }
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(length as usize, 0);
    reader.read_exact(&mut frame[RECORD_HEADER_BYTES..])?;
    let offset = Offset(base.0 + state.positions.len() as u64);
    if quarantined {
        return Ok(scan_quarantined(state, frame, offset));
    }
    if let Err(reason) = record::verify(frame, offset) {
        return Ok(Some((position, reason)));
    }
    state
        .positions
        .push(u32::try_from(position).expect("segments stay below 4 GiB"));
    state.position = position + u64::from(length);
    if !continues {
        state.committed_records = state.positions.len();
        state.committed_end = state.position;
    }
    Ok(None)
}

/// Checks the quarantined frame at the scan's position, which stands in for the offsets from
/// `expected` on, and indexes it. Same answer as [`scan_frame`].
fn scan_quarantined(
    state: &mut ScanState,
    frame: &[u8],
    expected: Offset,
) -> Option<(u64, &'static str)> {
    let position = state.position;
    let end = match record::verify_quarantined(frame) {
        Ok(end) => end,
        Err(reason) => return Some((position, reason)),
    };
    if end < expected {
        return Some((
            position,
            "quarantined frame ends before the offset expected there",
        ));
    }
    if end.0 - expected.0 > QUARANTINED_OFFSETS_MAX {
        return Some((
            position,
            "quarantined frame claims more offsets than a segment holds",
        ));
    }
    state.index_quarantined(expected, frame.len() as u64, end);
    None
}

/// Bytes read per step when checking that the rest of a file is zero.
const RESYNC_CHUNK_BYTES: usize = 1 << 20;

/// Searches the file after `position` for the first valid frame whose offset is `expected` or
/// later: where readable records resume after damage. Frames are not aligned (a frame is as long
/// as its payload), so every byte position is a candidate; each candidate costs a header decode,
/// and a checksum only when the header is plausible. A rest that is all zeroes (the common
/// case: preallocated padding after the last record) is recognised without the search.
///
/// Quarantined frames are not candidates: they carry the end of their range, not the offset
/// expected at their start, so damage just before one could not be told its offsets. Skipping
/// them makes the damage run on to the next record, and a repair moves the quarantined frame
/// aside with it: the offsets stay gone, under one range.
fn resync(
    file: &File,
    position: u64,
    file_len: u64,
    expected: Offset,
) -> io::Result<Option<(u64, Offset)>> {
    let from = position + 1;
    if from >= file_len || rest_is_zero(file, from, file_len)? {
        return Ok(None);
    }
    let mut rest = vec![0u8; (file_len - from) as usize];
    file.read_exact_at(&mut rest, from)?;
    for at in 0..rest.len().saturating_sub(RECORD_HEADER_BYTES - 1) {
        let header: &[u8; RECORD_HEADER_BYTES] = rest[at..at + RECORD_HEADER_BYTES]
            .try_into()
            .expect("16 bytes");
        let Header::Frame {
            length,
            offset,
            quarantined: false,
            ..
        } = record::decode_header(header)
        else {
            continue;
        };
        let Some(frame) = rest.get(at..at + length as usize) else {
            continue;
        };
        // Each skipped record took at least a header's worth of the skipped bytes, which
        // bounds how far the offset may have moved: a stray match cannot claim millions.
        let skipped_bytes = from + at as u64 - position;
        let plausible = offset >= expected
            && offset.0 - expected.0 <= skipped_bytes / RECORD_HEADER_BYTES as u64;
        if plausible && record::verify(frame, offset).is_ok() {
            return Ok(Some((from + at as u64, offset)));
        }
    }
    Ok(None)
}

fn rest_is_zero(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; RESYNC_CHUNK_BYTES];
    let mut at = from;
    while at < to {
        let n = (to - at).min(RESYNC_CHUNK_BYTES as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_offset_and_parse_back() {
        let name = segment_file_name(Offset(42));
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(parse_segment_file_name(&name), Some(Offset(42)));
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("spare.tmp"), None);
    }
}
