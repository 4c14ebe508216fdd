//! Repair: moving a log's damaged ranges aside so the server can run on the rest.
//!
//! Recovery already lets a damaged log serve every record but the damaged ones; what it cannot
//! do is stop reporting them, and an operator cannot tell the damage they have looked at from
//! new damage. A repair settles it, for a log that no process has open:
//!
//! ```text
//! DATA_DIR/quarantine/LOG/SEGMENT@POSITION.bin    the damaged bytes, as they were
//! DATA_DIR/quarantine/LOG/SEGMENT@POSITION.json   log, segment, position, length, offsets,
//!                                                 reason, time of the repair
//! ```
//!
//! For each damaged range, in this order:
//! 1. the damaged bytes (from the damage's position to the next valid record, or to the end of
//!    the segment's data) are copied into the `.bin` file, the `.json` is written beside it, and
//!    both files and their directories are fsynced;
//! 2. only then are the damaged bytes overwritten, in place, by quarantined frames (see
//!    `record`): valid frames covering exactly those bytes, the first one saying where its
//!    offsets end. Several frames when the range is longer than one frame holds. The segment is
//!    fsynced.
//!
//! No record moves and no other byte changes, so the index of every other record stays where it
//! was. A crash before step 2 leaves the damage as it was; a crash during step 2 leaves the
//! range, or part of it, damaged. Either way a rerun moves it aside again, into a file of a new
//! name (`SEGMENT@POSITION~2.bin`): a quarantine file is never overwritten, so the first one
//! keeps the original bytes. A log without damage is not written to, so a second repair
//! changes nothing.
//!
//! A frame is at least a header (16 bytes). A damaged range is shorter only when it ends the
//! segment's data (a file cut inside a header; records missing before the next segment with no
//! bytes left at all): then the frame runs over the zero padding after it or grows the file,
//! which loses nothing. A shorter range with data after it holds no lost record: each took a
//! header, and the scan only resumes after damage at a record whose offset the skipped bytes
//! can account for. It is bytes inserted between two records, which no frame fits; it is left
//! as damage and reported, for the operator to look at by hand.

use crate::{
    error::StorageError,
    faults::FileOps,
    log::{self, LogConfig},
    metrics::StorageMetrics,
    record::{self, FRAME_BYTES_MAX, RECORD_HEADER_BYTES},
    segment::{Damage, Segment},
};
use bytes::BytesMut;
use std::{
    fs::{self, File},
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

/// What a repair did to one log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The damaged ranges moved aside, in offset order.
    pub moved: Vec<MovedRange>,
    /// The damaged ranges a repair cannot move (see the module header); still damage.
    pub left: Vec<LeftRange>,
}

/// One damaged range, moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedRange {
    /// The damage as recovery found it.
    pub damage: Damage,
    /// The `.bin` file holding its bytes; the `.json` beside it describes them.
    pub file: PathBuf,
}

/// One damaged range a repair left as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftRange {
    pub damage: Damage,
    pub reason: &'static str,
}

/// Repairs the log in `dir`, which nothing may have open, moving its damaged ranges into
/// `quarantine_dir`. Blocking.
pub(crate) fn repair(
    dir: &Path,
    quarantine_dir: &Path,
    ops: &FileOps,
) -> Result<Repair, StorageError> {
    let config = LogConfig {
        preallocate: false,
        ..LogConfig::default()
    };
    let segments = log::open_segments(dir, &config, ops, &StorageMetrics::default())?;
    let log_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let log_name = log_name.unwrap_or_default();
    let mut repair = Repair::default();
    for segment in &segments {
        for damage in &segment.damage {
            match repair_frames_length(segment, damage)? {
                Err(reason) => repair.left.push(LeftRange {
                    damage: damage.clone(),
                    reason,
                }),
                Ok(frames_length) => {
                    let file = repair_move_aside(segment, damage, &log_name, quarantine_dir, ops)?;
                    repair_write_frames(segment, damage, frames_length, ops)?;
                    repair.moved.push(MovedRange {
                        damage: damage.clone(),
                        file,
                    });
                }
            }
        }
    }
    Ok(repair)
}

/// Splits `total` bytes into frame lengths of at least a header and at most `frame_max`.
pub(crate) fn frame_lengths(total: u64, frame_max: u64) -> Vec<u64> {
    let header = RECORD_HEADER_BYTES as u64;
    assert!(total >= header && frame_max >= 2 * header);
    let mut lengths = Vec::new();
    let mut remaining = total;
    while remaining > frame_max {
        // Never leave a remainder shorter than a header.
        let length = if remaining - frame_max >= header {
            frame_max
        } else {
            frame_max - header
        };
        lengths.push(length);
        remaining -= length;
    }
    lengths.push(remaining);
    lengths
}

/// How many bytes of quarantined frames replace `damage`: its length, or a header when it is
/// shorter and only zeroes (or the end of the file) follow it. `Err` when it cannot be
/// repaired.
fn repair_frames_length(
    segment: &Segment,
    damage: &Damage,
) -> Result<Result<u64, &'static str>, StorageError> {
    let header = RECORD_HEADER_BYTES as u64;
    if damage.length >= header {
        return Ok(Ok(damage.length));
    }
    let io_error = |e| StorageError::io(&segment.path, e);
    let file_len = segment.file.metadata().map_err(io_error)?.len();
    let after = (damage.position + damage.length).min(file_len);
    let mut next = vec![0u8; ((damage.position + header).min(file_len) - after) as usize];
    segment
        .file
        .read_exact_at(&mut next, after)
        .map_err(io_error)?;
    if next.iter().any(|b| *b != 0) {
        return Ok(Err(
            "damaged range shorter than a frame header, with data after it",
        ));
    }
    Ok(Ok(header))
}

/// Step 1: copies the damaged bytes and their description into the quarantine directory, both
/// durable before the segment changes. Returns the `.bin` file.
fn repair_move_aside(
    segment: &Segment,
    damage: &Damage,
    log_name: &str,
    quarantine_dir: &Path,
    ops: &FileOps,
) -> Result<PathBuf, StorageError> {
    fs::create_dir_all(quarantine_dir).map_err(|e| StorageError::io(quarantine_dir, e))?;
    let segment_name = segment
        .path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let stem = format!("{segment_name}@{}", damage.position);
    let (stem, out) = create_new_bin(quarantine_dir, &stem)
        .map_err(|e| StorageError::io(quarantine_dir.join(&stem), e))?;
    let bin = quarantine_dir.join(format!("{stem}.bin"));
    copy_range(&segment.file, damage.position, damage.length, &out)
        .and_then(|()| ops.sync_all(&out))
        .map_err(|e| StorageError::io(&bin, e))?;
    let json = quarantine_dir.join(format!("{stem}.json"));
    let description = describe(damage, log_name, &segment_name);
    let write = File::create(&json).and_then(|mut out| {
        out.write_all(description.as_bytes())?;
        ops.sync_all(&out)
    });
    write.map_err(|e| StorageError::io(&json, e))?;
    // The new entries, and the directories made for them, must survive a crash too.
    let mut dir = Some(quarantine_dir);
    for _ in 0..3 {
        let Some(synced) = dir else { break };
        log::sync_dir(ops, synced)?;
        dir = synced.parent();
    }
    Ok(bin)
}

/// Creates `STEM.bin` in `dir`, or `STEM~2.bin`, `STEM~3.bin`... when taken, and returns the
/// stem used. Never overwrites: a repair interrupted while writing its quarantined frames finds
/// the same position damaged again, now partly overwritten, and the first attempt's file is the
/// one that holds the original bytes.
fn create_new_bin(dir: &Path, stem: &str) -> std::io::Result<(String, File)> {
    let mut attempt = 1u32;
    loop {
        let name = match attempt {
            1 => stem.to_string(),
            n => format!("{stem}~{n}"),
        };
        let path = dir.join(format!("{name}.bin"));
        match File::options().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Step 2: overwrites the damaged range with quarantined frames of `frames_length` bytes in
/// all and syncs the segment.
fn repair_write_frames(
    segment: &Segment,
    damage: &Damage,
    frames_length: u64,
    ops: &FileOps,
) -> Result<(), StorageError> {
    let io_error = |e| StorageError::io(&segment.path, e);
    let mut position = damage.position;
    let mut frame = BytesMut::new();
    for length in frame_lengths(frames_length, FRAME_BYTES_MAX as u64) {
        frame.clear();
        record::encode_quarantined(damage.offsets.end, length as usize, &mut frame);
        ops.write_all_at(&segment.file, &frame, position)
            .map_err(io_error)?;
        position += length;
    }
    ops.sync_data(&segment.file).map_err(io_error)
}

/// Bytes copied per step: large enough to run at disk speed, small enough that a range of a
/// whole segment is not held in memory at once.
const COPY_CHUNK_BYTES: u64 = 1 << 20;

fn copy_range(from: &File, position: u64, length: u64, to: &File) -> std::io::Result<()> {
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min(length) as usize];
    let mut done = 0;
    while done < length {
        let n = (length - done).min(COPY_CHUNK_BYTES) as usize;
        from.read_exact_at(&mut buf[..n], position + done)?;
        to.write_all_at(&buf[..n], done)?;
        done += n as u64;
    }
    Ok(())
}

/// The `.json` beside the moved bytes: enough to put them back by hand.
fn describe(damage: &Damage, log_name: &str, segment_name: &str) -> String {
    let time = SystemTime::now().duration_since(UNIX_EPOCH);
    let description = serde_json::json!({
        "log": log_name,
        "segment": segment_name,
        "position": damage.position,
        "length": damage.length,
        "offsets": { "start": damage.offsets.start.0, "end": damage.offsets.end.0 },
        "reason": damage.reason,
        "repaired_at_unix_seconds": time.map(|t| t.as_secs()).unwrap_or_default(),
    });
    format!("{description:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_cover_the_range_with_frames_no_shorter_than_a_header() {
        let header = RECORD_HEADER_BYTES as u64;
        for total in header..300 {
            let lengths = frame_lengths(total, 48);
            assert_eq!(lengths.iter().sum::<u64>(), total, "{total}: {lengths:?}");
            assert!(
                lengths.iter().all(|l| (header..=48).contains(l)),
                "{total}: {lengths:?}"
            );
        }
        assert_eq!(frame_lengths(100, 48), vec![48, 32, 20]);
        assert_eq!(frame_lengths(16, FRAME_BYTES_MAX as u64), vec![16]);
    }
}
