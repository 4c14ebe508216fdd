//! What an idle queue costs: creates N empty durable queues (100,000 by default), then
//! restarts the engine on the same directory and lists them, printing disk use, resident
//! memory and times at each step.
//!
//! ```text
//! cargo run --release -p wharf-engine --example many_queues -- [QUEUES] [DIR]
//! ```
//!
//! DIR defaults to a temporary directory (removed at the end); give one on a real disk to
//! measure that disk rather than tmpfs.

use std::{path::Path, sync::Arc, time::Instant};
use wharf_engine::{clock::SystemClock, queue::QueueOptions, Engine, EngineConfig};
use wharf_storage::{Store, StoreConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(100_000), |n| n.parse())?;
    let temp = tempfile::tempdir()?;
    let dir = args.next().map_or(temp.path().join("data"), Into::into);
    println!("queues: {count}, data directory: {}", dir.display());
    let rss_start = rss_kib();

    let started = Instant::now();
    let (engine, store) = open(&dir).await?;
    for i in 0..count {
        engine
            .put_queue(&format!("tenant-{i:06}.jobs"), QueueOptions::default())
            .await?;
    }
    println!(
        "created in {:.1} s ({:.0} creates/s); disk {} KiB; resident +{} KiB ({:.0} bytes per queue)",
        started.elapsed().as_secs_f64(),
        count as f64 / started.elapsed().as_secs_f64(),
        disk_kib(&dir),
        rss_kib() - rss_start,
        (rss_kib() - rss_start) as f64 * 1024.0 / count as f64,
    );
    engine.close();
    store.close().await?;
    drop((engine, store));

    let rss_before_open = rss_kib();
    let started = Instant::now();
    let (engine, store) = open(&dir).await?;
    let opened = started.elapsed();
    let started = Instant::now();
    let listed = engine.list_queues().len();
    println!(
        "restart: opened in {:.2} s, listed {listed} queues in {:.0} ms; resident +{} KiB after open",
        opened.as_secs_f64(),
        started.elapsed().as_secs_f64() * 1_000.0,
        rss_kib().saturating_sub(rss_before_open),
    );
    anyhow::ensure!(listed == count, "listed {listed} of {count} queues");
    engine.close();
    store.close().await?;
    Ok(())
}

async fn open(dir: &Path) -> anyhow::Result<(Engine, Arc<Store>)> {
    let store = Arc::new(Store::open(dir, StoreConfig::default())?);
    let engine = Engine::open(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    )
    .await?;
    Ok((engine, store))
}

/// Resident memory of this process (Linux), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Blocks allocated under `dir`, in KiB (what `du` counts).
fn disk_kib(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            total += metadata.blocks() * 512 / 1024;
        }
    }
    total
}
