//! One simulated broker process: the engine over a store in the run's directory, and the push
//! consumers the workload attached. Opening, closing cleanly and being killed.

use crate::{
    clock::SimClock,
    io::Io,
    model::{violation, Violation},
};
use std::{path::Path, sync::Arc};
use wharf_engine::{broker::Consumer, Engine, EngineConfig, EngineError};
use wharf_storage::{Faults, LogConfig, StorageError, Store, StoreConfig};

/// WAL segment size: tiny, so that rotation, reclaim and copying stragglers forward run every
/// few dozen messages instead of never (STYLE.md, "tiny-limits config").
const WAL_SEGMENT_BYTES: u64 = 4_096;

/// WAL records before stragglers are copied forward: a few segments of the tiny ones above.
const RELOCATE_SPAN_MIN: u64 = 64;

/// Opens of a locked data directory to try before calling it a leak. A store is unlocked when
/// its last handle goes; tasks of the engine that held one end within a few yields.
const OPEN_ATTEMPTS_MAX: usize = 100;

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<Store>,
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

/// Opens the store and the engine on `dir`, waiting for a previous process's last handles.
pub(crate) async fn open(
    dir: &Path,
    faults: &Arc<Faults>,
    clock: &Arc<SimClock>,
    io: &Io,
) -> Result<Node, Violation> {
    let config = StoreConfig {
        faults: Some(faults.clone()),
        log: LogConfig {
            segment_bytes: WAL_SEGMENT_BYTES,
            ..LogConfig::default()
        },
        ..StoreConfig::default()
    };
    let mut attempts = 0;
    let store = loop {
        match Store::open(dir, config.clone()) {
            Ok(store) => break Arc::new(store),
            Err(StorageError::Locked { .. }) if attempts < OPEN_ATTEMPTS_MAX => {
                attempts += 1;
                io.idle().await.map_err(stuck)?;
            }
            Err(error) => return Err(reopen_failed(&EngineError::Storage(error))),
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
        consumers: Vec::new(),
    })
}

/// Shuts the process down cleanly: consumers go, in-flight work ends, every log is synced.
pub(crate) async fn close(node: Node, io: &Io) -> Result<(), Violation> {
    let Node {
        engine,
        store,
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
    drop(engine);
    io.idle().await.map_err(stuck)
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

fn reopen_failed(error: &EngineError) -> Violation {
    violation(
        "the broker reopens after any crash",
        format!("opening failed: {error}"),
    )
}
