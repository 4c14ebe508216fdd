//! One simulated broker process: the engine over the run's storage, and the push consumers
//! the workload attached. Opening, closing cleanly and being killed.

use crate::{
    backend::{self, Disk},
    clock::SimClock,
    io::Io,
    model::{violation, Violation},
};
use std::sync::Arc;
use wharf_engine::{broker::Consumer, Engine, EngineConfig, EngineError};
use wharf_storage::{Storage, Store};

/// WAL records before stragglers are copied forward: a few segments of the tiny ones the file
/// backend uses (`backend`).
const RELOCATE_SPAN_MIN: u64 = 64;

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Storage>,
    /// The same store, when it is the file store: recovery reports damage through it.
    pub(crate) files: Option<Arc<Store>>,
    pub(crate) consumers: Vec<SimConsumer>,
}

/// A push consumer the workload holds.
#[derive(Debug)]
pub(crate) struct SimConsumer {
    pub(crate) id: u64,
    pub(crate) queue: usize,
    pub(crate) lease_ms: Option<u64>,
    pub(crate) consumer: Consumer,
}

/// Opens the engine over the run's storage, as a new process would.
pub(crate) async fn open(disk: &Disk, clock: &Arc<SimClock>, io: &Io) -> Result<Node, Violation> {
    let (store, files): (Arc<dyn Storage>, _) = match disk {
        Disk::Memory(store) => (Arc::new(store.clone()), None),
        Disk::Files { dir, faults } => {
            let files = backend::open_files(dir.path(), faults, io).await?;
            (files.clone(), Some(files))
        }
    };
    let config = EngineConfig {
        relocate_span_min: RELOCATE_SPAN_MIN,
        ..EngineConfig::default()
    };
    let engine = (io
        .drive(Engine::open(store.clone(), clock.clone(), config))
        .await)
        .map_err(stuck)?
        .map_err(|error| reopen_failed(&error))?;
    io.idle().await.map_err(stuck)?;
    Ok(Node {
        engine,
        store,
        files,
        consumers: Vec::new(),
    })
}

/// Shuts the process down cleanly: consumers go, in-flight work ends, every log is synced.
pub(crate) async fn close(node: Node, disk: &Disk, io: &Io) -> Result<(), Violation> {
    let Node {
        engine,
        store,
        files,
        consumers,
    } = node;
    // Closing first detaches every consumer without returning its leases (a restart forgets
    // leases anyway), so dropping them writes nothing.
    engine.close();
    drop(consumers);
    io.idle().await.map_err(stuck)?;
    io.drive(store.close())
        .await
        .map_err(stuck)?
        .map_err(|error| {
            violation(
                "a clean shutdown succeeds",
                format!("closing the store failed: {error}"),
            )
        })?;
    drop((engine, store, files));
    io.idle().await.map_err(stuck)?;
    disk.closed();
    Ok(())
}

pub(crate) fn stuck(stuck: crate::io::Stuck) -> Violation {
    violation(
        "the engine becomes idle",
        format!(
            "still busy after {:?} with {} file operation threads alive: a hang or a lost wake-up",
            crate::io::IDLE_WAIT_MAX,
            stuck.blocking_threads
        ),
    )
}

pub(crate) fn reopen_failed(error: &EngineError) -> Violation {
    violation(
        "the broker reopens after any crash",
        format!("opening failed: {error}"),
    )
}
