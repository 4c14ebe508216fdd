//! Memory of a queue backlog: sends N messages of 1 KiB to a durable queue (no consumer), then
//! reopens the store in a fresh process and replays it, then looks one message up by id (which
//! builds the queue's id index), printing resident memory after each.
//!
//! `cargo run --release -p wharf-engine --example queue_backlog -- [--messages N] [--dir DIR]`

use std::{path::PathBuf, process::Command, sync::Arc, time::Instant};
use wharf_engine::{
    broker::SendMessage, clock::SystemClock, queue::QueueOptions, Engine, EngineConfig,
};
use wharf_storage::{Store, StoreConfig};

const BATCH: usize = 1_000;
const SENDERS: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let messages: usize = flag("--messages").map_or(Ok(1_000_000), |v| v.parse())?;
    let dir = PathBuf::from(flag("--dir").unwrap_or_else(|| "wharf-backlog-bench".into()));
    if args.iter().any(|a| a == "--replay") {
        return replay(&dir).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Store::open(&dir, StoreConfig::default())?);
    let engine = Engine::open(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    )
    .await?;
    engine.put_queue("backlog", QueueOptions::default()).await?;
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (engine, body) = (engine.clone(), body.clone());
        let batches = messages / BATCH / SENDERS;
        senders.push(tokio::spawn(async move {
            for _ in 0..batches {
                let batch = (0..BATCH)
                    .map(|_| SendMessage {
                        body: body.clone(),
                        ..SendMessage::default()
                    })
                    .collect();
                engine.send("backlog", batch).await?;
            }
            anyhow::Ok(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ready = engine.queue_info("backlog")?.stats.ready;
    println!(
        "sent {ready} durable messages of 1 KiB in {elapsed:.2} s ({:.0} msg/s); {}",
        ready as f64 / elapsed,
        memory()
    );
    engine.close();
    store.close().await?;
    // The store locks its directory until dropped; the replay process must find it free.
    drop((engine, store));
    let status = Command::new(std::env::current_exe()?)
        .args(["--replay", "--dir"])
        .arg(&dir)
        .status()?;
    anyhow::ensure!(status.success(), "replay process failed");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

async fn replay(dir: &PathBuf) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Arc::new(Store::open(dir, StoreConfig::default())?);
    let engine = Engine::open(store, Arc::new(SystemClock), EngineConfig::default()).await?;
    let ready = engine.queue_info("backlog")?.stats.ready;
    println!(
        "fresh process replayed {ready} messages in {:.2} s; {}",
        started.elapsed().as_secs_f64(),
        memory()
    );
    let newest = engine
        .browse("backlog", wharf_engine::queue::Browse::Ready, 1)
        .await?;
    let id = newest[0].message.id.clone();
    let started = Instant::now();
    engine.get_message("backlog", &id).await?;
    let first = started.elapsed().as_secs_f64();
    let started = Instant::now();
    engine.get_message("backlog", &id).await?;
    println!(
        "first lookup by id (builds the id index) {first:.2} s, the next {:.0} µs; {}",
        started.elapsed().as_secs_f64() * 1e6,
        memory()
    );
    Ok(())
}

/// Resident memory now and at its peak, from /proc.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    format!(
        "resident {:.0} MiB, peak {:.0} MiB",
        field("VmRSS:"),
        field("VmHWM:")
    )
}
