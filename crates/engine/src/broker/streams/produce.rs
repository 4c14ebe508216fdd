//! Producing: each record's partition, one batch per partition touched, and idempotence.
//!
//! **Partitions.** A record names its partition, or its key chooses one with Kafka's murmur2
//! (`wharf_model::partitioner`, so keys land where Kafka clients put them), or, keyless, it
//! takes the next partition in turn. Keyless records of an idempotent request all go to one
//! partition chosen from the producer id and sequence instead: a retry must land where the
//! first try did.
//!
//! **Idempotent producers** (see `stream::producers`). A producer's requests are numbered; the
//! stream keeps, per producer, the newest number stored and a lock that keeps that producer's
//! requests in order. A request checks every partition it touches before writing any: a number
//! more than one past the newest is a gap (refused), a partition that holds the number already
//! answers with the offsets it stored, the others get the batch. A request cut short (a crash
//! after some partitions stored their batch) is therefore completed by its retry, never
//! doubled.

use super::{partition::PartitionRuntime, StreamRuntime};
use crate::{
    broker::{internal_error, Engine},
    error::{EngineError, SizeLimit},
    stream::{producers::SequenceCheck, Cleanup, StreamError},
};
use bytes::Bytes;
use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
};
use wharf_model::{
    partitioner,
    record_batch::{self, Header, Producer, RecordInput},
};

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProduceRecord {
    pub key: Option<Bytes>,
    /// `None` is a tombstone (on a compacted stream it removes the key).
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// The partition to store it in; by default its key's, or the next in turn.
    pub partition: Option<u32>,
    /// Milliseconds since the epoch; by default the time of the produce.
    pub timestamp: Option<i64>,
}

/// An idempotent producer's id and the number of this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSequence {
    pub producer_id: i64,
    pub sequence: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProduceRequest {
    pub records: Vec<ProduceRecord>,
    pub producer: Option<ProducerSequence>,
}

/// Where one record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub partition: u32,
    pub offset: u64,
}

impl Engine {
    /// Stores the records, each once durable, and answers where each went, in request order.
    /// A webhook endpoint's history takes the endpoint's deliveries only.
    pub async fn produce(
        &self,
        stream: &str,
        request: ProduceRequest,
    ) -> Result<Vec<Produced>, EngineError> {
        self.check_not_webhook_history(stream)?;
        self.produce_owned(stream, request).await
    }

    /// [`Engine::produce`] for the owner of the stream, a webhook endpoint's bindings included.
    pub(crate) async fn produce_owned(
        &self,
        stream: &str,
        request: ProduceRequest,
    ) -> Result<Vec<Produced>, EngineError> {
        self.check_open()?;
        let stream = self.stream(stream)?;
        self.check_produce(&stream, &request)?;
        self.check_space().await?;
        let producer = request.producer.map(checked_producer).transpose()?;
        let placed = place_records(&stream, &request, producer);
        let now = self.now() as i64;
        let compression = stream.options().compression;
        let mut batches = Vec::with_capacity(placed.len());
        for (partition, indexes) in &placed {
            let batch = encode_batch(&request, indexes, producer, compression, now)?;
            batches.push((stream.partition(*partition)?, batch, indexes.len() as u32));
        }
        let bases = match producer {
            None => append_all(batches).await?,
            Some((id, sequence)) => produce_idempotent(&stream, id, sequence, batches).await?,
        };
        let mut produced = vec![
            Produced {
                partition: 0,
                offset: 0
            };
            request.records.len()
        ];
        for ((partition, indexes), base) in placed.iter().zip(bases) {
            for (delta, index) in indexes.iter().enumerate() {
                produced[*index] = Produced {
                    partition: *partition,
                    offset: base + delta as u64,
                };
            }
        }
        let count = request.records.len() as u64;
        stream.produced.fetch_add(count, Ordering::Relaxed);
        Ok(produced)
    }

    fn check_produce(
        &self,
        stream: &StreamRuntime,
        request: &ProduceRequest,
    ) -> Result<(), EngineError> {
        let records = &request.records;
        if records.is_empty() {
            return Err(StreamError::NoRecords.into());
        }
        let max = self.inner.config.batch_messages_max;
        if records.len() > max {
            let limit = SizeLimit::BatchMessages;
            return Err(EngineError::TooLarge {
                limit,
                size: records.len(),
                max,
            });
        }
        let bytes: usize = (records.iter())
            .map(|r| {
                let headers: usize = r
                    .headers
                    .iter()
                    .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                    .sum();
                r.key.as_ref().map_or(0, |k| k.len())
                    + r.value.as_ref().map_or(0, |v| v.len())
                    + headers
            })
            .sum();
        let max = self.inner.config.batch_bytes_max;
        if bytes > max {
            return Err(EngineError::TooLarge {
                limit: SizeLimit::BatchBytes,
                size: bytes,
                max,
            });
        }
        let partitions = stream.partition_count();
        let compact = stream.options().cleanup == Cleanup::Compact;
        for (index, record) in records.iter().enumerate() {
            if let Some(partition) = record.partition.filter(|p| *p >= partitions) {
                let stream = stream.name.clone();
                return Err(StreamError::RecordPartition {
                    stream,
                    index,
                    partition,
                    partitions,
                }
                .into());
            }
            if compact && record.key.is_none() {
                return Err(StreamError::KeyRequired {
                    stream: stream.name.clone(),
                    index,
                }
                .into());
            }
        }
        Ok(())
    }
}

fn checked_producer(producer: ProducerSequence) -> Result<(i64, i32), EngineError> {
    if producer.producer_id < 0 {
        let producer_id = producer.producer_id;
        return Err(StreamError::ProducerIdNegative { producer_id }.into());
    }
    match i32::try_from(producer.sequence) {
        Ok(sequence) if sequence >= 0 => Ok((producer.producer_id, sequence)),
        _ => Err(StreamError::SequenceNegative {
            sequence: producer.sequence,
        }
        .into()),
    }
}

/// The records' indexes by partition, in request order within each.
fn place_records(
    stream: &StreamRuntime,
    request: &ProduceRequest,
    producer: Option<(i64, i32)>,
) -> BTreeMap<u32, Vec<usize>> {
    let partitions = stream.partition_count();
    let mut placed: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (index, record) in request.records.iter().enumerate() {
        let partition = match (record.partition, &record.key, producer) {
            (Some(partition), _, _) => partition,
            (None, Some(key), _) => partitioner::partition_for_key(key, partitions),
            (None, None, Some((id, sequence))) => {
                let mixed = (id as u64) ^ (sequence as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                (mixed % u64::from(partitions)) as u32
            }
            (None, None, None) => {
                let turn = stream.round_robin.fetch_add(1, Ordering::Relaxed);
                (turn % u64::from(partitions)) as u32
            }
        };
        placed.entry(partition).or_default().push(index);
    }
    placed
}

fn encode_batch(
    request: &ProduceRequest,
    indexes: &[usize],
    producer: Option<(i64, i32)>,
    compression: record_batch::Compression,
    now: i64,
) -> Result<Bytes, EngineError> {
    let inputs: Vec<RecordInput> = (indexes.iter().enumerate())
        .map(|(delta, index)| {
            let record = &request.records[*index];
            RecordInput {
                offset_delta: delta as u32,
                timestamp: record.timestamp.unwrap_or(now),
                key: record.key.clone(),
                value: record.value.clone(),
                headers: record.headers.clone(),
            }
        })
        .collect();
    let producer = match producer {
        Some((id, sequence)) => Producer {
            id,
            epoch: 0,
            base_sequence: sequence,
        },
        None => Producer::NONE,
    };
    let last_delta = (indexes.len() - 1) as u32;
    record_batch::encode(0, last_delta, &inputs, producer, compression)
        .map_err(|source| StreamError::Encode { source }.into())
}

/// Appends each batch to its partition, all at once; the base offset of each, in order.
async fn append_all(
    batches: Vec<(Arc<PartitionRuntime>, Bytes, u32)>,
) -> Result<Vec<u64>, EngineError> {
    if batches.len() == 1 {
        let (partition, batch, _) = batches.into_iter().next().expect("one batch");
        return Ok(vec![partition.append(batch).await?]);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (place, (partition, batch, _)) in batches.into_iter().enumerate() {
        tasks.spawn(async move { (place, partition.append(batch).await) });
    }
    let mut bases = vec![0; tasks.len()];
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((place, Ok(base))) => bases[place] = base,
            Ok((_, Err(error))) => failure = Some(error),
            Err(error) => failure = Some(internal_error("produce", &error)),
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(bases),
    }
}

/// An idempotent request: checked against every partition first, then written where new.
async fn produce_idempotent(
    stream: &StreamRuntime,
    producer_id: i64,
    sequence: i32,
    batches: Vec<(Arc<PartitionRuntime>, Bytes, u32)>,
) -> Result<Vec<u64>, EngineError> {
    let lock = {
        let mut producers = stream.producers.lock().unwrap_or_else(|p| p.into_inner());
        producers.entry(producer_id).or_default().clone()
    };
    let mut newest = lock.lock().await;
    if let Some(newest) = *newest {
        let expected = newest.saturating_add(1);
        if sequence > expected {
            return Err(StreamError::SequenceGap {
                producer_id,
                given: sequence,
                expected,
            }
            .into());
        }
    }
    let bases = stored_bases(producer_id, sequence, &batches)?;
    let retry = newest.is_some_and(|newest| sequence <= newest);
    if retry && bases.iter().any(Option::is_none) {
        check_not_moved(stream, producer_id, sequence, &batches)?;
    }
    let new: Vec<_> = (batches.into_iter().zip(&bases))
        .filter(|(_, base)| base.is_none())
        .map(|(batch, _)| batch)
        .collect();
    let written = if new.is_empty() {
        Vec::new()
    } else {
        append_all(new).await?
    };
    *newest = Some(newest.map_or(sequence, |n| n.max(sequence)));
    let mut written = written.into_iter();
    Ok(bases
        .into_iter()
        .map(|base| base.unwrap_or_else(|| written.next().expect("a base per new batch")))
        .collect())
}

/// Per batch, the base offset its partition stored the request at before, or `None` where
/// the request is new; refuses a sequence reused for other records or too old to tell.
fn stored_bases(
    producer_id: i64,
    sequence: i32,
    batches: &[(Arc<PartitionRuntime>, Bytes, u32)],
) -> Result<Vec<Option<u64>>, EngineError> {
    let mut bases: Vec<Option<u64>> = Vec::with_capacity(batches.len());
    for (partition, _, records) in batches {
        let check = partition.lock().producers.check(producer_id, sequence);
        let partition = partition.number;
        match check {
            SequenceCheck::New => bases.push(None),
            SequenceCheck::Duplicate {
                base_offset,
                records: stored,
            } if stored == *records => bases.push(Some(base_offset)),
            SequenceCheck::Duplicate {
                records: stored, ..
            } => {
                let given = *records;
                return Err(StreamError::SequenceReused {
                    producer_id,
                    sequence,
                    partition,
                    stored,
                    given,
                }
                .into());
            }
            SequenceCheck::TooOld { last } => {
                return Err(StreamError::SequenceTooOld {
                    producer_id,
                    partition,
                    given: sequence,
                    last,
                }
                .into());
            }
        }
    }
    Ok(bases)
}

/// Refuses a retry whose sequence a partition it is not placed on holds: it was stored before
/// the stream grew, and its records now hash elsewhere (see [`StreamError::SequenceMoved`]).
fn check_not_moved(
    stream: &StreamRuntime,
    producer_id: i64,
    sequence: i32,
    batches: &[(Arc<PartitionRuntime>, Bytes, u32)],
) -> Result<(), EngineError> {
    for partition in stream.partitions() {
        if batches
            .iter()
            .any(|(placed, _, _)| placed.number == partition.number)
        {
            continue;
        }
        let check = partition.lock().producers.check(producer_id, sequence);
        if let SequenceCheck::Duplicate { .. } = check {
            let partition = partition.number;
            return Err(StreamError::SequenceMoved {
                producer_id,
                sequence,
                partition,
            }
            .into());
        }
    }
    Ok(())
}
