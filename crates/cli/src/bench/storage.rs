//! `wharf bench storage`: the disk's raw limits and Wharf's log on the same disk, in one run.
//!
//! Raw figures first (4 KiB write + fdatasync into a growing file and into a zero-filled one;
//! large O_DIRECT writes), then a [`Log`] with its default configuration under 1, 16 and 256
//! concurrent appenders and under large batches. Each log figure is reported beside the raw
//! figure it is bounded by, with fsync counts (appends per fsync shows group commit) and the
//! process CPU time. The last stdout line is one JSON object for scripts.

use super::{process_cpu_time, BenchError};
use clap::Args;
use serde_json::{json, Map, Value};
use std::{
    alloc::{self, Layout},
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    ptr::NonNull,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{runtime::Runtime, task::JoinHandle};
use wharf_storage::{Log, LogConfig, StorageError, StorageMetrics};

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory on the disk to measure; scratch files go in a subdirectory deleted afterwards.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Length of each scenario in seconds (fractions allowed).
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    seconds: f64,
}

/// One page: the smallest write a sync can carry, and what an unbatched small record costs.
const RAW_WRITE_BYTES: usize = 4 << 10;
/// The default segment size, so the overwrite case rewrites blocks the way a preallocated log
/// does; writes wrap around inside it.
const OVERWRITE_FILE_BYTES: u64 = 64 << 20;
/// Large enough that per-call overhead vanishes next to the transfer itself.
const SEQUENTIAL_BUFFER_BYTES: usize = 4 << 20;
/// 1 GiB: past a drive's write cache, so the figure is sustained bandwidth, yet bounded so a
/// fast disk finishes early instead of filling up.
const SEQUENTIAL_BYTES_MAX: u64 = 1 << 30;
/// O_DIRECT needs buffer address, offset and length aligned to the logical block size; 4096
/// covers both 512-byte and 4 KiB-sector disks.
const DIRECT_IO_ALIGNMENT: usize = 4096;
/// Zero-fill chunk for the overwrite file: disk-bandwidth sized, cheap to hold.
const ZERO_CHUNK_BYTES: usize = 1 << 20;
/// 1 KiB: a typical small message.
const APPEND_PAYLOAD_BYTES: usize = 1 << 10;
/// Concurrent appenders: one (pure latency), a handful of busy clients, many clients.
const APPEND_CONCURRENCY: [usize; 3] = [1, 16, 256];
/// 1024 records of 1 KiB: 1 MiB per append call, the size a batching producer sends.
const BATCH_RECORDS: usize = 1024;
/// Enough batch appenders to keep one commit in flight while the next batch is encoded.
const BATCH_TASKS: usize = 4;
/// An hour per scenario is more than any useful run; a bound catches a mistyped value.
const SECONDS_MAX: f64 = 3600.0;
const BYTES_PER_MEGABYTE: f64 = 1e6;

/// One scenario's measurement.
#[derive(Debug)]
struct Outcome {
    name: String,
    figure: f64,
    unit: &'static str,
    /// Writes, appends or batches completed.
    operations: u64,
    fsyncs: u64,
    elapsed: Duration,
    cpu: Duration,
    /// The raw figure this one is bounded by.
    reference: Option<&'static str>,
}

pub fn run(args: &StorageArgs) -> Result<(), BenchError> {
    let duration = Duration::from_secs_f64(args.seconds);
    let scratch = ScratchDir::create(&args.dir)?;
    let (mut outcomes, direct) = raw_outcomes(&scratch.path, duration)?;
    outcomes.extend(log_outcomes(&scratch.path, duration)?);
    drop(scratch);
    print_table(&outcomes, &args.dir, args.seconds, direct);
    println!("{}", summary_json(&outcomes, args.seconds, direct));
    Ok(())
}

/// The raw scenarios, and whether sequential writes used O_DIRECT.
fn raw_outcomes(scratch: &Path, duration: Duration) -> Result<(Vec<Outcome>, bool), BenchError> {
    progress("raw_fsync_per_s");
    let mut appending = raw_fsync(&scratch.join("raw-append.dat"), false, duration)?;
    appending.name = "raw_fsync_per_s".to_string();

    progress("raw_fsync_overwrite_per_s");
    let mut overwriting = raw_fsync(&scratch.join("raw-overwrite.dat"), true, duration)?;
    overwriting.name = "raw_fsync_overwrite_per_s".to_string();

    progress("raw_seq_write_mb_s");
    let (sequential, direct) = raw_sequential(&scratch.join("raw-sequential.dat"), duration)?;
    Ok((vec![appending, overwriting, sequential], direct))
}

/// The log scenarios on a multi-threaded runtime, as the server runs them.
fn log_outcomes(scratch: &Path, duration: Duration) -> Result<Vec<Outcome>, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let mut outcomes = Vec::new();
    for tasks in APPEND_CONCURRENCY {
        let name = format!("appends_per_s_{tasks}");
        progress(&name);
        let run = log_appends(&runtime, &scratch.join(&name), tasks, 1, duration)?;
        outcomes.push(Outcome {
            name,
            figure: run.appends as f64 / run.elapsed.as_secs_f64(),
            unit: "appends/s",
            operations: run.appends,
            fsyncs: run.fsyncs,
            elapsed: run.elapsed,
            cpu: run.cpu,
            reference: Some("raw_fsync_per_s"),
        });
    }

    progress("mb_s_batched");
    let dir = scratch.join("batched");
    let run = log_appends(&runtime, &dir, BATCH_TASKS, BATCH_RECORDS, duration)?;
    let payload_bytes = run.appends * (BATCH_RECORDS * APPEND_PAYLOAD_BYTES) as u64;
    outcomes.push(Outcome {
        name: "mb_s_batched".to_string(),
        figure: payload_bytes as f64 / BYTES_PER_MEGABYTE / run.elapsed.as_secs_f64(),
        unit: "MB/s",
        operations: run.appends,
        fsyncs: run.fsyncs,
        elapsed: run.elapsed,
        cpu: run.cpu,
        reference: Some("raw_seq_write_mb_s"),
    });
    Ok(outcomes)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if seconds > 0.0 && seconds <= SECONDS_MAX {
        Ok(seconds)
    } else {
        Err(format!("must be more than 0 and at most {SECONDS_MAX}"))
    }
}

fn progress(scenario: &str) {
    eprintln!("running {scenario} ...");
}

/// 4 KiB `pwrite` + `fdatasync` in a loop, appending to a fresh file or, with `overwrite`,
/// rewriting a zero-filled, synced file (no size change, so no metadata to sync).
fn raw_fsync(path: &Path, overwrite: bool, duration: Duration) -> Result<Outcome, BenchError> {
    let file = create_file(path, false)?;
    let wrap_at = if overwrite {
        fill_zeroes(&file, path, OVERWRITE_FILE_BYTES)?;
        OVERWRITE_FILE_BYTES
    } else {
        u64::MAX
    };
    let block = pattern(RAW_WRITE_BYTES);
    let stopwatch = Stopwatch::start()?;
    let (mut writes, mut offset) = (0u64, 0u64);
    while stopwatch.wall.elapsed() < duration {
        file.write_all_at(&block, offset)
            .map_err(io_error("write", path))?;
        file.sync_data().map_err(io_error("fdatasync", path))?;
        writes += 1;
        offset = (offset + RAW_WRITE_BYTES as u64) % wrap_at;
    }
    let (elapsed, cpu) = stopwatch.stop()?;
    Ok(Outcome {
        name: String::new(),
        figure: writes as f64 / elapsed.as_secs_f64(),
        unit: "writes/s",
        operations: writes,
        fsyncs: writes,
        elapsed,
        cpu,
        reference: None,
    })
}

/// The disk's raw fsync rate: 4 KiB writes + fdatasync per second overwriting a zero-filled
/// file (as a log's preallocated segments are), in a file at `path` removed afterwards.
pub(super) fn raw_fsync_rate(path: &Path, duration: Duration) -> Result<f64, BenchError> {
    let measured = raw_fsync(path, true, duration);
    let _ = fs::remove_file(path);
    Ok(measured?.figure)
}

/// The disk's raw sequential write bandwidth in MB/s (see [`raw_sequential`]), measured in a
/// file at `path` that is removed afterwards; and whether O_DIRECT was used.
pub(super) fn raw_sequential_mb_s(
    path: &Path,
    duration: Duration,
) -> Result<(f64, bool), BenchError> {
    let measured = raw_sequential(path, duration);
    let _ = fs::remove_file(path);
    let (outcome, direct) = measured?;
    Ok((outcome.figure, direct))
}

/// 4 MiB O_DIRECT writes until [`SEQUENTIAL_BYTES_MAX`] or `duration`, then one fsync; the
/// sync is inside the timing. Falls back to buffered writes where O_DIRECT is refused (tmpfs,
/// some network file systems) and says so.
fn raw_sequential(path: &Path, duration: Duration) -> Result<(Outcome, bool), BenchError> {
    let (file, direct) = match create_file(path, true) {
        Ok(file) => (file, true),
        Err(BenchError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            (create_file(path, false)?, false)
        }
        Err(error) => return Err(error),
    };
    let mut buffer = AlignedBuffer::new(SEQUENTIAL_BUFFER_BYTES, DIRECT_IO_ALIGNMENT);
    buffer
        .as_mut_slice()
        .copy_from_slice(&pattern(SEQUENTIAL_BUFFER_BYTES));
    let stopwatch = Stopwatch::start()?;
    let mut written = 0u64;
    while written < SEQUENTIAL_BYTES_MAX && stopwatch.wall.elapsed() < duration {
        file.write_all_at(buffer.as_slice(), written)
            .map_err(io_error("write", path))?;
        written += SEQUENTIAL_BUFFER_BYTES as u64;
    }
    file.sync_all().map_err(io_error("fsync", path))?;
    let (elapsed, cpu) = stopwatch.stop()?;
    let outcome = Outcome {
        name: "raw_seq_write_mb_s".to_string(),
        figure: written as f64 / BYTES_PER_MEGABYTE / elapsed.as_secs_f64(),
        unit: "MB/s",
        operations: written / SEQUENTIAL_BUFFER_BYTES as u64,
        fsyncs: 1,
        elapsed,
        cpu,
        reference: None,
    };
    Ok((outcome, direct))
}

/// What one log scenario measured.
struct LogRun {
    appends: u64,
    fsyncs: u64,
    elapsed: Duration,
    cpu: Duration,
}

/// `tasks` concurrent appenders, each appending `records` 1 KiB records per call until the
/// deadline, on a fresh default-configured log in `dir` (deleted afterwards). Opening the log
/// (zero-filling its first segment) is outside the timing.
fn log_appends(
    runtime: &Runtime,
    dir: &Path,
    tasks: usize,
    records: usize,
    duration: Duration,
) -> Result<LogRun, BenchError> {
    let metrics = Arc::new(StorageMetrics::default());
    let log = Log::open(dir, LogConfig::default(), metrics.clone())?;
    let payload: Arc<[u8]> = pattern(APPEND_PAYLOAD_BYTES).into();
    let stopwatch = Stopwatch::start()?;
    let deadline = Instant::now() + duration;
    let appends = runtime.block_on(async {
        let appenders: Vec<JoinHandle<Result<u64, StorageError>>> = (0..tasks)
            .map(|_| {
                let (log, payload) = (log.clone(), payload.clone());
                tokio::spawn(async move {
                    let batch = vec![&payload[..]; records];
                    let mut appends = 0u64;
                    while Instant::now() < deadline {
                        log.append(batch.iter().copied()).await?;
                        appends += 1;
                    }
                    Ok(appends)
                })
            })
            .collect();
        let mut total = 0u64;
        for appender in appenders {
            match appender.await {
                Ok(appends) => total += appends?,
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
        Ok::<u64, StorageError>(total)
    })?;
    let (elapsed, cpu) = stopwatch.stop()?;
    let fsyncs = metrics.fsyncs.get();
    runtime.block_on(log.close())?;
    drop(log);
    fs::remove_dir_all(dir).map_err(io_error("remove", dir))?;
    Ok(LogRun {
        appends,
        fsyncs,
        elapsed,
        cpu,
    })
}

fn print_table(outcomes: &[Outcome], dir: &Path, seconds: f64, direct: bool) {
    println!(
        "wharf bench storage: {}, {seconds} s per scenario, sequential writes {}",
        dir.display(),
        if direct {
            "O_DIRECT"
        } else {
            "buffered (O_DIRECT refused)"
        }
    );
    println!(
        "{:<26} {:>12} {:<9} {:>8} {:>10} {:>7} {:>6}  ratio",
        "scenario", "figure", "unit", "fsyncs", "ops/fsync", "cpu s", "cpu %"
    );
    for outcome in outcomes {
        let per_fsync = if outcome.fsyncs > 0 {
            format!("{:.1}", outcome.operations as f64 / outcome.fsyncs as f64)
        } else {
            "-".to_string()
        };
        let ratio = ratio_to_reference(outcome, outcomes)
            .map(|(reference, ratio)| format!("{ratio:.2} x {reference}"))
            .unwrap_or_default();
        println!(
            "{:<26} {:>12.1} {:<9} {:>8} {:>10} {:>7.2} {:>6.0}  {}",
            outcome.name,
            outcome.figure,
            outcome.unit,
            outcome.fsyncs,
            per_fsync,
            outcome.cpu.as_secs_f64(),
            100.0 * outcome.cpu.as_secs_f64() / outcome.elapsed.as_secs_f64(),
            ratio
        );
    }
}

/// The figure divided by its reference figure, when it has one and that was measured.
fn ratio_to_reference(outcome: &Outcome, outcomes: &[Outcome]) -> Option<(&'static str, f64)> {
    let reference = outcome.reference?;
    let base = outcomes.iter().find(|o| o.name == reference)?;
    (base.figure > 0.0).then(|| (reference, outcome.figure / base.figure))
}

/// Headline figures as top-level numbers, ratios as `<name>_vs_<reference>`, and every
/// scenario's details under `scenarios`.
fn summary_json(outcomes: &[Outcome], seconds: f64, direct: bool) -> Value {
    let mut summary = Map::new();
    let mut scenarios = Map::new();
    for outcome in outcomes {
        summary.insert(outcome.name.clone(), json!(outcome.figure));
        if let Some((reference, ratio)) = ratio_to_reference(outcome, outcomes) {
            let key = format!("{}_vs_{}", outcome.name, reference);
            summary.insert(key, json!(ratio));
        }
        scenarios.insert(
            outcome.name.clone(),
            json!({
                "figure": outcome.figure,
                "unit": outcome.unit,
                "operations": outcome.operations,
                "fsyncs": outcome.fsyncs,
                "elapsed_seconds": outcome.elapsed.as_secs_f64(),
                "cpu_seconds": outcome.cpu.as_secs_f64(),
            }),
        );
    }
    summary.insert("seconds_per_scenario".to_string(), json!(seconds));
    summary.insert("o_direct".to_string(), json!(direct));
    summary.insert("scenarios".to_string(), Value::Object(scenarios));
    Value::Object(summary)
}

/// Wall clock and process CPU time from one starting point.
struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Result<Stopwatch, BenchError> {
        Ok(Stopwatch {
            wall: Instant::now(),
            cpu: process_cpu_time()?,
        })
    }

    /// (wall time, CPU time) since start.
    fn stop(&self) -> Result<(Duration, Duration), BenchError> {
        let elapsed = self.wall.elapsed();
        let cpu = process_cpu_time()?.saturating_sub(self.cpu);
        Ok((elapsed, cpu))
    }
}

/// A per-run subdirectory of the user's directory, removed with everything in it on drop, so
/// an interrupted or failed run leaves nothing behind either.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create(parent: &Path) -> Result<ScratchDir, BenchError> {
        let path = parent.join(format!("wharf-bench-{}", std::process::id()));
        fs::create_dir_all(&path).map_err(io_error("create", &path))?;
        Ok(ScratchDir { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.path) {
            eprintln!("warning: could not remove {}: {error}", self.path.display());
        }
    }
}

/// A heap buffer aligned for O_DIRECT, which `Vec<u8>` cannot promise.
struct AlignedBuffer {
    pointer: NonNull<u8>,
    layout: Layout,
}

impl AlignedBuffer {
    fn new(bytes: usize, alignment: usize) -> AlignedBuffer {
        assert!(bytes > 0 && bytes.is_multiple_of(alignment));
        let layout = Layout::from_size_align(bytes, alignment).expect("power-of-two alignment");
        // SAFETY: the layout has a non-zero size (asserted above).
        let pointer = unsafe { alloc::alloc_zeroed(layout) };
        let pointer = NonNull::new(pointer).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuffer { pointer, layout }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `pointer` owns `layout.size()` initialised (zeroed) bytes for our lifetime.
        unsafe { std::slice::from_raw_parts(self.pointer.as_ptr(), self.layout.size()) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.pointer.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout and not freed before.
        unsafe { alloc::dealloc(self.pointer.as_ptr(), self.layout) }
    }
}

/// Creates (or truncates) a scratch file, with O_DIRECT when `direct`.
fn create_file(path: &Path, direct: bool) -> Result<File, BenchError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path).map_err(io_error("create", path))
}

/// Zero-fills `bytes` of `file` and syncs data and size, as log preallocation does.
fn fill_zeroes(file: &File, path: &Path, bytes: u64) -> Result<(), BenchError> {
    let zeroes = vec![0u8; ZERO_CHUNK_BYTES];
    let mut at = 0u64;
    while at < bytes {
        let length = (bytes - at).min(ZERO_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeroes[..length], at)
            .map_err(io_error("write", path))?;
        at += length as u64;
    }
    file.sync_all().map_err(io_error("fsync", path))
}

/// Non-zero bytes, so no layer can shortcut the writes as zeroes or compress them away.
fn pattern(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i % 251) as u8 ^ 0xA5).collect()
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BenchError + 'a {
    move |source| BenchError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_positive_and_bounded() {
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert_eq!(parse_seconds("3"), Ok(3.0));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("7200").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn aligned_buffer_is_aligned() {
        let mut buffer = AlignedBuffer::new(2 * DIRECT_IO_ALIGNMENT, DIRECT_IO_ALIGNMENT);
        assert_eq!(buffer.as_slice().as_ptr() as usize % DIRECT_IO_ALIGNMENT, 0);
        buffer.as_mut_slice()[0] = 7;
        assert_eq!(buffer.as_slice()[0], 7);
        assert_eq!(buffer.as_slice().len(), 2 * DIRECT_IO_ALIGNMENT);
    }

    #[test]
    fn ratios_refer_to_the_raw_figure() {
        let outcome = |name: &str, figure, reference| Outcome {
            name: name.to_string(),
            figure,
            unit: "x",
            operations: 1,
            fsyncs: 1,
            elapsed: Duration::from_secs(1),
            cpu: Duration::ZERO,
            reference,
        };
        let outcomes = [
            outcome("raw_fsync_per_s", 1000.0, None),
            outcome("appends_per_s_1", 500.0, Some("raw_fsync_per_s")),
        ];
        assert_eq!(
            ratio_to_reference(&outcomes[1], &outcomes),
            Some(("raw_fsync_per_s", 0.5))
        );
        let summary = summary_json(&outcomes, 1.0, true);
        assert_eq!(summary["appends_per_s_1_vs_raw_fsync_per_s"], 0.5);
        assert_eq!(summary["scenarios"]["raw_fsync_per_s"]["fsyncs"], 1);
    }
}
