//! One segment file: a run of records starting at a base offset, with its position index.
//!
//! A segment is named after its base offset (`00000000000000000042.log`). It may be longer than
//! its data: preallocated segments are zero-filled, and a zero length field marks the end. The
//! position index (byte position of every record) lives in memory; it is rebuilt by scanning on
//! open, which also verifies every checksum, so damage is found at start-up rather than by the
//! first unlucky reader.

use crate::{
    error::StorageError,
    record::{self, Header, Offset, Record, RECORD_HEADER_BYTES},
};
use bytes::Bytes;
use std::{
    fs::File,
    io::{self, BufReader, Read},
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

/// Where recovery found damage that it must not paper over.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    /// First offset that cannot be read.
    pub offset: Offset,
    pub position: u64,
    pub reason: &'static str,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base: Offset,
    pub path: PathBuf,
    pub file: File,
    /// Byte position of record `base + i` at index `i`. Appended to by the writer only.
    positions: RwLock<Vec<u32>>,
    /// Byte position just past the last written record.
    end: AtomicU64,
    /// Set by recovery when records from `damage.offset` on are unreadable.
    pub damage: Option<Damage>,
}

/// What scanning a segment file found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub positions: Vec<u32>,
    /// Position just past the last complete append.
    pub end: u64,
    /// Why the scan stopped before the end of the file, if not at a clean end marker.
    pub torn: Option<(u64, &'static str)>,
}

impl Segment {
    pub(crate) fn new(base: Offset, path: PathBuf, file: File, scan: Scan) -> Segment {
        Segment {
            base,
            path,
            file,
            end: AtomicU64::new(scan.end),
            positions: RwLock::new(scan.positions),
            damage: None,
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
        if let Some(damage) = &self.damage {
            if from >= damage.offset {
                return Err(self.corrupt(damage.position, damage.reason));
            }
        }
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
                .ok_or_else(|| self.corrupt(start + at as u64, "frame runs past its segment"))?;
            let Header::Frame { length, .. } = record::decode_header(header) else {
                return Err(self.corrupt(start + at as u64, "invalid frame header"));
            };
            let frame = buf
                .get(at..at + length as usize)
                .ok_or_else(|| self.corrupt(start + at as u64, "frame runs past its segment"))?;
            record::verify(frame, offset)
                .map_err(|reason| self.corrupt(start + at as u64, reason))?;
            out.push(Record {
                offset,
                payload: buf.slice(at + RECORD_HEADER_BYTES..at + length as usize),
            });
            at += length as usize;
        }
        Ok(())
    }

    fn corrupt(&self, position: u64, reason: &'static str) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            position,
            reason,
        }
    }
}

/// Reads a segment from the start and indexes every complete, valid append.
///
/// Stops at the zero end marker, at the end of the file, or at the first frame that fails its
/// checks. Records of an append whose last frame is missing are left out (`end` stays before
/// them), so a torn multi-record append disappears whole.
pub(crate) fn scan(path: &Path, file: &File, base: Offset) -> Result<Scan, StorageError> {
    let io_error = |e: io::Error| StorageError::io(path, e);
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut positions = Vec::new();
    let mut committed_records = 0usize;
    let mut committed_end = 0u64;
    let mut position = 0u64;
    let mut frame = Vec::new();
    let torn = loop {
        if position + RECORD_HEADER_BYTES as u64 > file_len {
            // Fewer bytes left than a header: the end if they are padding (zeroes).
            let mut rest = vec![0u8; (file_len - position) as usize];
            reader.read_exact(&mut rest).map_err(io_error)?;
            break rest
                .iter()
                .any(|b| *b != 0)
                .then_some((position, "partial frame header"));
        }
        let mut header = [0u8; RECORD_HEADER_BYTES];
        reader.read_exact(&mut header).map_err(io_error)?;
        let (length, continues) = match record::decode_header(&header) {
            Header::End => break None,
            Header::BadLength => break Some((position, "invalid frame length")),
            Header::Frame {
                length, continues, ..
            } => (length, continues),
        };
        if position + u64::from(length) > file_len {
            break Some((position, "frame runs past the end of the file"));
        }
        frame.clear();
        frame.extend_from_slice(&header);
        frame.resize(length as usize, 0);
        reader
            .read_exact(&mut frame[RECORD_HEADER_BYTES..])
            .map_err(io_error)?;
        let offset = Offset(base.0 + positions.len() as u64);
        if let Err(reason) = record::verify(&frame, offset) {
            break Some((position, reason));
        }
        positions.push(u32::try_from(position).expect("segments stay below 4 GiB"));
        position += u64::from(length);
        if !continues {
            committed_records = positions.len();
            committed_end = position;
        }
    };
    let torn = match torn {
        None if committed_records < positions.len() => {
            Some((committed_end, "append ends without its last record"))
        }
        None => None,
        Some((at, reason)) if committed_records < positions.len() => Some((
            committed_end,
            if at == committed_end {
                reason
            } else {
                "append ends without its last record"
            },
        )),
        some => some,
    };
    positions.truncate(committed_records);
    Ok(Scan {
        positions,
        end: committed_end,
        torn,
    })
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
