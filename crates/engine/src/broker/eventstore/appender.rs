//! The event store's appender: the one writer of the global log.
//!
//! Appends, metadata changes and deletes wait in a channel. The appender takes everything
//! queued, checks each against the index as the earlier ones of the same turn leave it (so two
//! appends expecting the same version in one turn: the first wins), stamps the accepted
//! events with their versions and the time, and hands them all to the log as one atomic
//! append, conditional on where the log ends. Only once that append is durable does it apply
//! the records to the index and answer every job of the turn, refusals included: a writer told
//! "wrong expected version" can read the event that won.
//!
//! Appends to different streams therefore share one fsync; none waits behind another's check.
//! The appender is its own task, so a caller that goes away never stops an append halfway.

use super::EventStoreState;
use crate::{
    error::EngineError,
    eventstore::{
        index::{Head, Refusal},
        record, EventStoreError, ExpectedVersion, StreamMetadata,
    },
};
use bytes::{Bytes, BytesMut};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::{mpsc, oneshot};
use wharf_storage::StorageError;

/// Jobs taken in one turn at most; more wait for the next.
const TURN_JOBS_MAX: usize = 4_096;

/// The outcome of an accepted append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub first_version: u64,
    pub version: u64,
    pub first_position: u64,
    pub position: u64,
    /// The append created the stream (it had no events, or was soft deleted).
    pub created: bool,
}

pub(crate) enum Change {
    /// Events encoded by the caller with version and time 0, stamped here.
    Append {
        expected: ExpectedVersion,
        events: Vec<BytesMut>,
    },
    Metadata(StreamMetadata),
    Delete {
        hard: bool,
    },
}

pub(crate) struct Job {
    pub stream: String,
    pub change: Change,
    pub reply: oneshot::Sender<Result<Appended, EngineError>>,
}

/// What one job of a turn came to before the commit.
enum Outcome {
    Refused(EventStoreError),
    /// Records `first..first + count` of the turn's append.
    Accepted {
        first: usize,
        count: usize,
        first_version: u64,
        created: bool,
    },
}

pub(crate) fn spawn(state: Arc<EventStoreState>) -> mpsc::Sender<Job> {
    let (sender, receiver) = mpsc::channel(TURN_JOBS_MAX);
    tokio::spawn(run(state, receiver));
    sender
}

async fn run(state: Arc<EventStoreState>, mut receiver: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(64);
    while receiver.recv_many(&mut jobs, TURN_JOBS_MAX).await > 0 {
        turn(&state, std::mem::take(&mut jobs)).await;
    }
}

async fn turn(state: &EventStoreState, jobs: Vec<Job>) {
    let now = state.clock.now();
    let mut records: Vec<Bytes> = Vec::new();
    let mut decided = Vec::with_capacity(jobs.len());
    {
        let index = state.index.read().expect("event index lock");
        let mut heads: HashMap<&str, Head> = HashMap::new();
        for job in &jobs {
            let head = *heads
                .entry(job.stream.as_str())
                .or_insert_with(|| index.head(&job.stream));
            let (outcome, next) = decide(job, head, now, &mut records);
            if let Some(next) = next {
                heads.insert(job.stream.as_str(), next);
            }
            decided.push(outcome);
        }
    }
    let committed = match records.is_empty() {
        true => Ok(0),
        false => commit(state, &records).await,
    };
    for (job, outcome) in jobs.into_iter().zip(decided) {
        let answer = match (outcome, &committed) {
            (Outcome::Refused(error), _) => Err(EngineError::EventStore(error)),
            (_, Err(error)) => Err(error.clone().into()),
            (
                Outcome::Accepted {
                    first,
                    count,
                    first_version,
                    created,
                },
                Ok(start),
            ) => {
                let first_position = start + first as u64;
                let last = count.max(1) as u64 - 1;
                Ok(Appended {
                    first_version,
                    version: first_version + last,
                    first_position,
                    position: first_position + last,
                    created,
                })
            }
        };
        let _ = job.reply.send(answer);
    }
}

/// Decides `job` against `head`, adding its records; returns the head after it when it changed.
fn decide(job: &Job, head: Head, now: u64, records: &mut Vec<Bytes>) -> (Outcome, Option<Head>) {
    let stream = &job.stream;
    let refused = |refusal, expected| refusal_error(stream, refusal, expected);
    let first = records.len();
    match &job.change {
        Change::Append { expected, events } => match head.check(*expected) {
            Err(refusal) => (Outcome::Refused(refused(refusal, *expected)), None),
            Ok(created) => {
                for (offset, event) in events.iter().enumerate() {
                    let mut event = event.clone();
                    record::stamp_event(&mut event, head.next_version + offset as u64, now);
                    records.push(event.freeze());
                }
                let outcome = Outcome::Accepted {
                    first,
                    count: events.len(),
                    first_version: head.next_version,
                    created,
                };
                (outcome, Some(head.after_append(events.len() as u64)))
            }
        },
        Change::Metadata(metadata) => match head.check(ExpectedVersion::Any) {
            Err(refusal) => (
                Outcome::Refused(refused(refusal, ExpectedVersion::Any)),
                None,
            ),
            Ok(_) => {
                records.push(record::encode_metadata(stream, metadata));
                (accepted_marker(first, head), None)
            }
        },
        Change::Delete { hard } => {
            let exists = head.status == Some(crate::eventstore::StreamStatus::Live);
            match head.check(ExpectedVersion::Any) {
                Err(refusal) => (
                    Outcome::Refused(refused(refusal, ExpectedVersion::Any)),
                    None,
                ),
                // Soft deleting what has nothing readable changes nothing: not found.
                Ok(_) if !exists && !hard => {
                    let error = EventStoreError::StreamNotFound {
                        stream: stream.clone(),
                    };
                    (Outcome::Refused(error), None)
                }
                Ok(_) => {
                    records.push(record::encode_delete(stream, *hard, head.next_version));
                    let status = match hard {
                        true => crate::eventstore::StreamStatus::Tombstoned,
                        false => crate::eventstore::StreamStatus::SoftDeleted,
                    };
                    let next = Head {
                        next_version: head.next_version,
                        status: Some(status),
                    };
                    (accepted_marker(first, head), Some(next))
                }
            }
        }
    }
}

/// The error for a refused change of `stream`.
fn refusal_error(stream: &str, refusal: Refusal, expected: ExpectedVersion) -> EventStoreError {
    let stream = stream.to_string();
    match refusal {
        Refusal::Deleted => EventStoreError::StreamDeleted { stream },
        Refusal::WrongVersion { current } => EventStoreError::WrongExpectedVersion {
            stream,
            expected,
            current,
        },
    }
}

/// The outcome of a change that adds one record and no events.
fn accepted_marker(first: usize, head: Head) -> Outcome {
    Outcome::Accepted {
        first,
        count: 1,
        first_version: head.next_version,
        created: false,
    }
}

/// Appends the turn's records, applies them to the index and returns the first's position.
async fn commit(state: &EventStoreState, records: &[Bytes]) -> Result<u64, StorageError> {
    let start = state.log.end_offset();
    let range = state.log.append(records, Some(start)).await?;
    let range = range.start.0..range.end.0;
    let mut index = state.index.write().expect("event index lock");
    for (position, bytes) in range.clone().zip(records) {
        match record::decode(position, bytes) {
            Ok(decoded) => index.apply(position, &decoded),
            Err(error) => {
                tracing::error!(%error, "an event-store record just encoded does not decode")
            }
        }
    }
    drop(index);
    state.appended.send_replace(range.end);
    Ok(range.start)
}
