//! Streams in the broker: definitions in the metadata store, one log per partition, produce,
//! fetch, consumer groups with committed offsets, retention and compaction.
//!
//! - `partition`: a partition's log, batch index, producers' progress and appender.
//! - `produce`: choosing partitions, idempotent producers, encoding batches.
//! - `fetch`: reads by offset, long-polls, offsets by position or time.
//! - `groups` and `committed`: membership (pure state in `stream::group`) and the log of
//!   committed offsets shared by every stream.
//! - `maintenance`: one task that expires silent members, applies retention and starts
//!   compaction passes (`compaction`).
//!
//! A stream's definition is `stream/NAME` in the metadata store: its options and a resource
//! id, handed out at creation and never reused, which names its partitions' logs
//! (`stream-ID-PARTITION`). A stream deleted and created again under the same name therefore
//! never meets the old one's records.

mod appender;
mod committed;
mod compaction;
mod fetch;
mod groups;
pub(crate) mod maintenance;
mod partition;
mod produce;

pub use committed::CommittedOffsets;
pub use fetch::{FetchRequest, Fetched, OffsetAt, FETCH_WAIT_MAX};
pub use groups::{GroupInfo, GroupJoin, MemberState, OffsetReset, PartitionLag};
pub use produce::{ProduceRecord, ProduceRequest, Produced, ProducerSequence};

use super::{Engine, Page, PageRequest};
use crate::{
    error::{EngineError, NameProblem, ResourceKind},
    stream::{group::Group, StreamError, StreamOptions},
};
use partition::PartitionRuntime;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
};
use wharf_model::QueueName;
use wharf_storage::{Durability, LogOptions, LogSize, MetaOp};

/// Key prefix of stream definitions in the metadata store.
pub(super) const STREAM_META_PREFIX: &str = "stream/";
/// Partitions opened at once while a stream is opened or grows.
const OPEN_CONCURRENCY: usize = 32;

/// A stream as its callers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub name: String,
    pub options: StreamOptions,
    pub partitions: Vec<PartitionInfo>,
    /// Records produced since the server started.
    pub produced: u64,
    /// Consumer groups with members or committed offsets.
    pub groups: usize,
}

/// One partition's extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    /// The first offset still stored.
    pub earliest: u64,
    /// The offset the next record gets.
    pub latest: u64,
    /// Records stored (fewer than `latest - earliest` once compaction removed some).
    pub records: u64,
    pub bytes: u64,
    pub batches: u64,
}

/// What the metadata store holds for a stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamDefinition {
    resource: u64,
    options: StreamOptions,
}

#[derive(Debug)]
pub(crate) struct StreamRuntime {
    pub name: String,
    pub resource: u64,
    options: RwLock<StreamOptions>,
    partitions: RwLock<Vec<Arc<PartitionRuntime>>>,
    /// Per producer id: the newest request sequence stored in any partition, behind a lock
    /// that keeps one producer's requests in order (see `produce`).
    producers: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Option<i32>>>>>,
    round_robin: AtomicU64,
    /// Consumer groups' membership, by group name; in memory (members join again after a
    /// restart, as Kafka's do).
    pub groups: Mutex<BTreeMap<String, Group>>,
    produced: AtomicU64,
    deleted: AtomicBool,
}

impl StreamRuntime {
    pub fn options(&self) -> StreamOptions {
        self.options
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn partitions(&self) -> Vec<Arc<PartitionRuntime>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len() as u32
    }

    pub fn partition(&self, number: u32) -> Result<Arc<PartitionRuntime>, EngineError> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        match partitions.get(number as usize) {
            Some(partition) => Ok(partition.clone()),
            None => Err(StreamError::PartitionNotFound {
                stream: self.name.clone(),
                partition: number,
                partitions: partitions.len() as u32,
            }
            .into()),
        }
    }

    /// The first offset a reader may ask for in a partition with `index`. Retention moves it;
    /// compaction never does (as in Kafka): a reader below the first kept record reads on
    /// from it.
    pub fn earliest(&self, index: &crate::stream::index::BatchIndex) -> u64 {
        match self.options().cleanup {
            crate::stream::Cleanup::Compact => 0,
            crate::stream::Cleanup::Delete => index.earliest(),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    fn lock_groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Engine {
    /// Creates the stream, or changes its options (partitions only grow). Returns true when
    /// it was created.
    pub async fn put_stream(
        &self,
        name: &str,
        options: StreamOptions,
    ) -> Result<bool, EngineError> {
        let (engine, name) = (self.clone(), name.to_string());
        let change = async move { engine.put_stream_in_task(&name, options).await };
        self.in_task("put_stream", change).await
    }

    async fn put_stream_in_task(
        &self,
        name: &str,
        options: StreamOptions,
    ) -> Result<bool, EngineError> {
        self.check_open()?;
        let name = parse_stream_name(name)?;
        options.check()?;
        let _admin = self.inner.admin.lock().await;
        if let Some(stream) = self.find_stream(&name) {
            let current = stream.options();
            options.check_change(&name, &current)?;
            self.check_partitions_limit(options.partitions - current.partitions)?;
            let added = open_partitions(
                self,
                &stream.name,
                stream.resource,
                current.partitions..options.partitions,
            )
            .await?;
            let definition = StreamDefinition {
                resource: stream.resource,
                options: options.clone(),
            };
            self.write_stream_definition(&name, &definition).await?;
            stream
                .partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .extend(added);
            *stream.options.write().unwrap_or_else(|p| p.into_inner()) = options.clone();
            let partitions = options.partitions;
            for group in stream.lock_groups().values_mut() {
                group.set_partitions(partitions);
            }
            return Ok(false);
        }
        self.check_partitions_limit(options.partitions)?;
        self.check_space().await?;
        let resource = self.allocate_resource(Vec::new()).await?.0;
        let partitions = open_partitions(self, &name, resource, 0..options.partitions).await?;
        let definition = StreamDefinition { resource, options };
        if let Err(error) = self.write_stream_definition(&name, &definition).await {
            drop(partitions);
            delete_partition_logs(self, resource, definition.options.partitions).await;
            return Err(error);
        }
        self.register_stream(name, definition, partitions);
        Ok(true)
    }

    /// Refuses `requested` more partitions past [`EngineConfig::stream_partitions_max`].
    /// Called under the admin lock, so two creates cannot both pass it.
    ///
    /// [`EngineConfig::stream_partitions_max`]: crate::EngineConfig::stream_partitions_max
    fn check_partitions_limit(&self, requested: u32) -> Result<(), EngineError> {
        let max = self.inner.config.stream_partitions_max;
        let now: usize = (self.streams().values())
            .map(|s| s.partition_count() as usize)
            .sum();
        let total = now + requested as usize;
        if total > max {
            return Err(StreamError::PartitionsLimit {
                requested,
                total,
                max,
            }
            .into());
        }
        Ok(())
    }

    pub fn list_streams(&self) -> Vec<StreamInfo> {
        let streams: Vec<_> = self.streams().values().cloned().collect();
        streams
            .iter()
            .map(|stream| self.stream_info_of(stream))
            .collect()
    }

    /// One page of the streams by name, among those `visible` admits.
    pub fn list_streams_page(
        &self,
        request: PageRequest<'_>,
        visible: impl Fn(&str) -> bool,
    ) -> Page<StreamInfo> {
        let page = super::listing::page_of(&self.streams(), request, visible);
        page.map(|stream| self.stream_info_of(&stream))
    }

    pub fn stream_count(&self) -> usize {
        self.streams().len()
    }

    pub fn stream_info(&self, name: &str) -> Result<StreamInfo, EngineError> {
        Ok(self.stream_info_of(self.stream(name)?.as_ref()))
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), EngineError> {
        let (engine, name) = (self.clone(), name.to_string());
        let change = async move { engine.delete_stream_in_task(&name).await };
        self.in_task("delete_stream", change).await
    }

    async fn delete_stream_in_task(&self, name: &str) -> Result<(), EngineError> {
        self.check_open()?;
        let _admin = self.inner.admin.lock().await;
        let stream = self.stream(name)?;
        self.check_not_webhook_history(name)?;
        let delete = MetaOp::Delete(format!("{STREAM_META_PREFIX}{name}"));
        super::space::meta_apply_freeing(self.inner.store.as_ref(), vec![delete]).await?;
        (self
            .inner
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner()))
        .remove(name);
        stream.deleted.store(true, Ordering::Release);
        let partitions = stream.partitions();
        for partition in &partitions {
            // Wakes long-polling fetches, which then find the stream gone.
            partition.end.send_modify(|_| {});
        }
        drop(partitions);
        delete_partition_logs(self, stream.resource, stream.partition_count()).await;
        self.inner.committed.forget(stream.resource);
        let prefix = format!("{COMPACTED_META_PREFIX}{}/", stream.resource);
        let marks: Vec<MetaOp> = (self.inner.store.meta_list(&prefix).into_iter())
            .map(|(key, _)| MetaOp::Delete(key))
            .collect();
        if !marks.is_empty() {
            if let Err(error) =
                super::space::meta_apply_freeing(self.inner.store.as_ref(), marks).await
            {
                tracing::warn!(stream = %name, %error, "deleting a deleted stream's compaction marks");
            }
        }
        Ok(())
    }

    /// Opens every stream defined in the metadata store (at engine open), forgets the
    /// committed offsets of streams deleted since, and starts the streams' housekeeping.
    pub(super) async fn open_streams(&self) -> Result<(), EngineError> {
        self.open_stream_definitions().await?;
        let live = (self.streams().values())
            .map(|stream| stream.resource)
            .collect();
        self.inner.committed.retain(&live);
        maintenance::spawn(self);
        Ok(())
    }

    async fn open_stream_definitions(&self) -> Result<(), EngineError> {
        for (key, value) in self.inner.store.meta_list(STREAM_META_PREFIX) {
            let name = key[STREAM_META_PREFIX.len()..].to_string();
            let definition: StreamDefinition = match serde_json::from_value(value) {
                Ok(definition) => definition,
                Err(error) => {
                    let error = crate::error::DefinitionError::Decode(error);
                    self.report_damaged(EngineError::corrupt_definition(&key, error));
                    continue;
                }
            };
            self.raise_resource_floor(definition.resource);
            let count = definition.options.partitions;
            let partitions = open_partitions(self, &name, definition.resource, 0..count).await?;
            self.register_stream(name, definition, partitions);
        }
        Ok(())
    }

    fn register_stream(
        &self,
        name: String,
        definition: StreamDefinition,
        partitions: Vec<Arc<PartitionRuntime>>,
    ) {
        let runtime = Arc::new(StreamRuntime {
            name: name.clone(),
            resource: definition.resource,
            options: RwLock::new(definition.options),
            partitions: RwLock::new(partitions),
            producers: Mutex::default(),
            round_robin: AtomicU64::new(0),
            groups: Mutex::default(),
            produced: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
        });
        // Producers' newest sequences across partitions: what a gap is measured against.
        let mut newest: HashMap<i64, i32> = HashMap::new();
        for partition in runtime.partitions() {
            for (producer, sequence) in partition.lock().producers.last_sequences() {
                let entry = newest.entry(producer).or_insert(sequence);
                *entry = (*entry).max(sequence);
            }
        }
        {
            let mut producers = runtime.producers.lock().unwrap_or_else(|p| p.into_inner());
            for (producer, sequence) in newest {
                producers.insert(producer, Arc::new(tokio::sync::Mutex::new(Some(sequence))));
            }
        }
        (self
            .inner
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner()))
        .insert(name, runtime);
    }

    async fn write_stream_definition(
        &self,
        name: &str,
        definition: &StreamDefinition,
    ) -> Result<(), EngineError> {
        let value = serde_json::to_value(definition).expect("definition serializes");
        let put = MetaOp::Put(format!("{STREAM_META_PREFIX}{name}"), value);
        self.inner.store.meta_apply(vec![put]).await?;
        Ok(())
    }

    fn stream_info_of(&self, stream: &StreamRuntime) -> StreamInfo {
        let partitions = stream.partitions();
        let partitions = (partitions.iter())
            .map(|partition| {
                let state = partition.lock();
                PartitionInfo {
                    partition: partition.number,
                    earliest: stream.earliest(&state.index),
                    latest: state.index.next_offset(),
                    records: state.index.records(),
                    bytes: state.index.bytes(),
                    batches: state.index.len() as u64,
                }
            })
            .collect();
        let mut groups: std::collections::BTreeSet<String> =
            stream.lock_groups().keys().cloned().collect();
        groups.extend(self.inner.committed.group_names(stream.resource));
        StreamInfo {
            name: stream.name.clone(),
            options: stream.options(),
            partitions,
            produced: stream.produced.load(Ordering::Relaxed),
            groups: groups.len(),
        }
    }

    pub(crate) fn stream(&self, name: &str) -> Result<Arc<StreamRuntime>, EngineError> {
        self.find_stream(name).ok_or_else(|| {
            StreamError::NotFound {
                stream: name.to_string(),
            }
            .into()
        })
    }

    pub(crate) fn find_stream(&self, name: &str) -> Option<Arc<StreamRuntime>> {
        self.streams().get(name).cloned()
    }

    pub(crate) fn streams(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<StreamRuntime>>> {
        self.inner.streams.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Key prefix of compaction marks: `stream-compacted/RESOURCE/PARTITION` holds the log position
/// below which every batch of the partition was superseded or dropped by compaction.
const COMPACTED_META_PREFIX: &str = "stream-compacted/";

fn compacted_key(resource: u64, partition: u32) -> String {
    format!("{COMPACTED_META_PREFIX}{resource}/{partition}")
}

/// The log name of partition `partition` of the stream with resource id `resource`.
fn partition_log_name(resource: u64, partition: u32) -> String {
    format!("stream-{resource}-{partition}")
}

/// Opens (creating when new) the partitions `numbers` of a stream, a few at a time.
async fn open_partitions(
    engine: &Engine,
    name: &str,
    resource: u64,
    numbers: std::ops::Range<u32>,
) -> Result<Vec<Arc<PartitionRuntime>>, EngineError> {
    let options = LogOptions {
        durability: Durability::Durable,
        size: LogSize::Growing,
    };
    let mut opened = Vec::with_capacity(numbers.len());
    let numbers: Vec<u32> = numbers.collect();
    for chunk in numbers.chunks(OPEN_CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for &number in chunk {
            let (store, name) = (engine.inner.store.clone(), name.to_string());
            let superseded_below = (store.meta_get(&compacted_key(resource, number)))
                .and_then(|value| value.as_u64())
                .unwrap_or(0);
            tasks.spawn(async move {
                let log = store
                    .open_log(&partition_log_name(resource, number), options)
                    .await?;
                PartitionRuntime::load(&name, number, log, superseded_below).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let partition =
                done.map_err(|error| super::internal_error("open_partitions", &error))??;
            opened.push(Arc::new(partition));
        }
    }
    opened.sort_by_key(|partition| partition.number);
    Ok(opened)
}

/// Deletes the logs of a stream's partitions; a failure is logged, not returned: the stream is
/// already gone from the metadata, and a log no definition names is never read again.
async fn delete_partition_logs(engine: &Engine, resource: u64, partitions: u32) {
    for number in 0..partitions {
        let log = partition_log_name(resource, number);
        if let Err(error) = engine.inner.store.delete_log(&log).await {
            tracing::warn!(%log, %error, "deleting a stream partition's log");
        }
    }
}

/// Stream and group names follow the queue naming rules (letters, digits, `.`, `-`, `_`).
pub(crate) fn parse_stream_name(name: &str) -> Result<String, EngineError> {
    parse_name(name, ResourceKind::Stream)
}

pub(crate) fn parse_name(name: &str, kind: ResourceKind) -> Result<String, EngineError> {
    QueueName::from_str(name)
        .map(|n| n.to_string())
        .map_err(|source| EngineError::InvalidName {
            kind,
            name: name.to_string(),
            problem: NameProblem::Rules { source },
        })
}

/// The error of a stored batch of `partition` at log `position` that fails its checks.
fn batch_damaged(
    partition: &PartitionRuntime,
    position: u64,
    source: wharf_model::record_batch::BatchError,
) -> EngineError {
    StreamError::Damaged {
        stream: partition.stream.clone(),
        partition: partition.number,
        position,
        source,
    }
    .into()
}

impl From<StreamError> for EngineError {
    fn from(error: StreamError) -> EngineError {
        EngineError::Stream(error)
    }
}
