//! `wharf check DATA_DIR`: verifies a stopped server's data directory offline.
//!
//! Opens the store as the server would (taking its lock, so a running server is refused) and
//! every log in it: opening scans each segment and verifies every record's checksum and
//! framing. Prints each log with its offsets and any damaged ranges, and says whether the
//! directory is clean. Like a start, opening cuts a torn tail (the unacknowledged end of an
//! interrupted write); without `--repair` damage is never changed.
//!
//! With `--repair`, each log's damaged ranges are first moved into `DATA_DIR/quarantine/LOG/`
//! and replaced in the segment by quarantined frames (see `wharf_storage::Store::repair_log`),
//! before the log is opened and checked: what was moved is printed with where it went, and the
//! check then shows those ranges as quarantined, which is clean. Quarantined ranges stay listed
//! by every later check, so nobody forgets that records are gone.

use clap::Args;
use std::path::{Path, PathBuf};
use wharf_storage::{Log, LogConfig, Repair, Store, StoreConfig};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The data directory of a stopped server.
    #[arg(value_name = "DATA_DIR")]
    data_dir: PathBuf,
    /// Move damaged ranges aside into DATA_DIR/quarantine/ so the server can run on the rest.
    #[arg(long)]
    repair: bool,
}

/// What the check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub logs: usize,
    pub records: u64,
    pub damaged_ranges: usize,
    pub damaged_records: u64,
    pub quarantined_ranges: usize,
    pub quarantined_records: u64,
    /// Metadata found damaged: snapshot entries or journal changes lost (see
    /// `MetaStore::damage`).
    pub damaged_metadata: usize,
}

impl Checked {
    pub fn is_clean(&self) -> bool {
        self.damaged_ranges == 0 && self.damaged_metadata == 0
    }
}

/// Checks `args.data_dir`, printing what it finds.
pub fn run(args: &CheckArgs) -> anyhow::Result<Checked> {
    if !args.data_dir.join("meta").is_dir() {
        anyhow::bail!(
            "{} is not a Wharf data directory (it has no meta/)",
            args.data_dir.display()
        );
    }
    let store = Store::open(&args.data_dir, StoreConfig::default())?;
    let mut checked = Checked::default();
    check_metadata(&store, &mut checked);
    for name in log_names(&args.data_dir.join("logs"))? {
        if args.repair {
            print_repair(&name, &store.repair_log(&name)?);
        }
        let log = store.log(&name, LogConfig::default())?;
        check_log(&name, &log, &mut checked);
    }
    println!(
        "{} logs, {} records, {} quarantined ranges ({} records), {} damaged ranges ({} records): {}",
        checked.logs,
        checked.records,
        checked.quarantined_ranges,
        checked.quarantined_records,
        checked.damaged_ranges,
        checked.damaged_records,
        if checked.is_clean() {
            "clean"
        } else {
            "DAMAGED"
        }
    );
    Ok(checked)
}

/// Prints what a repair of the log `name` moved, and what it could not.
fn print_repair(name: &str, repair: &Repair) {
    for moved in &repair.moved {
        let damage = &moved.damage;
        println!(
            "repair {name}: moved offsets {}..{} ({} bytes from byte {} of {}) to {}",
            damage.offsets.start,
            damage.offsets.end,
            damage.length,
            damage.position,
            damage.path.display(),
            moved.file.display()
        );
    }
    for left in &repair.left {
        let damage = &left.damage;
        println!(
            "repair {name}: left offsets {}..{} at byte {} of {} as it is: {}",
            damage.offsets.start,
            damage.offsets.end,
            damage.position,
            damage.path.display(),
            left.reason
        );
    }
}

/// Metadata damage was found, and logged, when the store opened: listed here with what it
/// cost (the key of a lost entry when it could still be read).
fn check_metadata(store: &Store, checked: &mut Checked) {
    let definitions = store.meta().list("").len();
    let damage = store.meta().damage();
    if damage.is_empty() {
        println!("metadata: ok, {definitions} entries");
        return;
    }
    println!("metadata: damaged, {definitions} entries readable");
    for damage in damage {
        println!("  {damage}");
    }
    checked.damaged_metadata = damage.len();
}

fn check_log(name: &str, log: &Log, checked: &mut Checked) {
    let (start, end) = (log.start_offset(), log.end_offset());
    let damage = log.damage();
    checked.logs += 1;
    checked.records += end.0 - start.0;
    let status = if damage.is_empty() { "ok" } else { "damaged" };
    println!("log {name}: offsets {start}..{end}: {status}");
    for range in log.quarantined() {
        let count = range.offsets.end.0 - range.offsets.start.0;
        println!(
            "  offsets {}..{} ({count} records) in {} from byte {}: quarantined ({} bytes)",
            range.offsets.start,
            range.offsets.end,
            range.path.display(),
            range.position,
            range.length
        );
        checked.quarantined_ranges += 1;
        checked.quarantined_records += count;
    }
    for range in damage {
        let count = range.offsets.end.0 - range.offsets.start.0;
        println!(
            "  offsets {}..{} ({count} records) in {} from byte {}: {}",
            range.offsets.start,
            range.offsets.end,
            range.path.display(),
            range.position,
            range.reason
        );
        checked.damaged_ranges += 1;
        checked.damaged_records += count;
    }
}

/// The logs under `logs/`, in name order.
fn log_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}
