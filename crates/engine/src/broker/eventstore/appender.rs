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
//! The appender keeps up to [`PIPELINE_DEPTH`] turns in the log: while one syncs, the next is
//! decided against the index plus the heads the turns in the log leave, and handed over, so
//! the disk is not idle between commits. Each turn's append is conditional on where the one
//! before ends; if one fails, the log fails those behind it, their jobs are answered with the
//! error and nothing of them is stored. The appender is its own task, so a caller that goes
//! away never stops an append halfway.

use super::EventStoreState;
use crate::{
    error::EngineError,
    eventstore::{
        index::{Head, Refusal},
        record, EventStoreError, ExpectedVersion, StreamMetadata,
    },
};
use bytes::{Bytes, BytesMut};
use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    ops::Range,
    pin::Pin,
    sync::Arc,
    task::Poll,
};
use tokio::sync::{mpsc, oneshot};
use wharf_storage::{Offset, StorageError};

/// Jobs taken in one turn at most; more wait for the next.
const TURN_JOBS_MAX: usize = 4_096;
/// Turns in the log at once: one syncing, one waiting to be written.
const PIPELINE_DEPTH: usize = 2;

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

type Commit = Pin<Box<dyn Future<Output = Result<Range<Offset>, StorageError>> + Send>>;

/// A turn handed to the log and not yet answered.
struct Turn {
    number: u64,
    /// Where its records start in the log; `None` for a turn of refusals only.
    commit: Option<Commit>,
    /// The result, when the poll at hand-over already completed the commit.
    done: Option<Result<Range<Offset>, StorageError>>,
    records: Vec<Bytes>,
    jobs: Vec<Job>,
    decided: Vec<Outcome>,
    start: u64,
}

enum Step {
    Completed(Result<Range<Offset>, StorageError>),
    Taken(usize),
}

async fn run(state: Arc<EventStoreState>, mut receiver: mpsc::Receiver<Job>) {
    // Heads of streams changed by turns in the log but not yet applied to the index, with the
    // number of the last turn that changed each.
    let mut pending: HashMap<String, (Head, u64)> = HashMap::new();
    let mut turns: VecDeque<Turn> = VecDeque::new();
    let mut end = state.log.end_offset().0;
    let (mut number, mut open) = (0u64, true);
    let mut jobs = Vec::with_capacity(64);
    // Ends: when the channel is closed (the store dropped) and every turn is answered.
    while open || !turns.is_empty() {
        let taking = open && turns.len() < PIPELINE_DEPTH;
        let step = tokio::select! {
            biased;
            result = front(&mut turns), if !turns.is_empty() => Step::Completed(result),
            taken = receiver.recv_many(&mut jobs, TURN_JOBS_MAX), if taking => Step::Taken(taken),
        };
        match step {
            Step::Taken(0) => open = false,
            Step::Taken(_) => {
                number += 1;
                let turn =
                    start_turn(&state, std::mem::take(&mut jobs), number, end, &mut pending).await;
                end += turn.records.len() as u64;
                turns.push_back(turn);
            }
            Step::Completed(result) => {
                let turn = turns.pop_front().expect("the front turn");
                match result {
                    Ok(range) => {
                        apply(&state, &turn, range.start.0);
                        pending.retain(|_, (_, last)| *last != turn.number);
                        answer(turn, Ok(range.start.0));
                    }
                    Err(error) => {
                        // The log fails every append queued behind a failed one, and each is
                        // conditional on where the one before ends: none of them is stored.
                        answer(turn, Err(error.clone()));
                        while let Some(mut behind) = turns.pop_front() {
                            let result = match behind.done.take() {
                                Some(result) => result,
                                None => match behind.commit.as_mut() {
                                    Some(commit) => commit.await,
                                    None => Ok(Offset(behind.start)..Offset(behind.start)),
                                },
                            };
                            let result = result.and(Err(error.clone()));
                            answer(behind, result.map(|range: Range<Offset>| range.start.0));
                        }
                        pending.clear();
                        end = state.log.end_offset().0;
                    }
                }
            }
        }
    }
}

/// Waits for the oldest turn's commit.
async fn front(turns: &mut VecDeque<Turn>) -> Result<Range<Offset>, StorageError> {
    let turn = turns.front_mut().expect("a turn in the log");
    if let Some(result) = turn.done.take() {
        return result;
    }
    match turn.commit.as_mut() {
        Some(commit) => commit.await,
        None => Ok(Offset(turn.start)..Offset(turn.start)),
    }
}

/// Decides the jobs against the index as the turns in the log leave it, and hands the
/// accepted records to the log as one append conditional on ending at `start`.
async fn start_turn(
    state: &EventStoreState,
    jobs: Vec<Job>,
    number: u64,
    start: u64,
    pending: &mut HashMap<String, (Head, u64)>,
) -> Turn {
    let now = state.clock.now();
    let mut records: Vec<Bytes> = Vec::new();
    let mut decided = Vec::with_capacity(jobs.len());
    {
        let index = state.index.read().expect("event index lock");
        for job in &jobs {
            let head = match pending.get(&job.stream) {
                Some((head, _)) => *head,
                None => index.head(&job.stream),
            };
            let (outcome, next) = decide(job, head, now, &mut records);
            if let Some(next) = next {
                pending.insert(job.stream.clone(), (next, number));
            }
            decided.push(outcome);
        }
    }
    let mut turn = Turn {
        number,
        commit: None,
        done: None,
        records,
        jobs,
        decided,
        start,
    };
    if !turn.records.is_empty() {
        let (log, records) = (state.log.clone(), turn.records.clone());
        let mut commit: Commit =
            Box::pin(async move { log.append(&records, Some(Offset(start))).await });
        // One poll hands the append to the log, so that it rides the commit after the one
        // syncing now instead of waiting for this task's next turn.
        let polled = std::future::poll_fn(|cx| Poll::Ready(commit.as_mut().poll(cx))).await;
        match polled {
            Poll::Ready(result) => turn.done = Some(result),
            Poll::Pending => {}
        }
        turn.commit = Some(commit);
    }
    turn
}

/// Applies a committed turn's records (first at `start`) to the index.
fn apply(state: &EventStoreState, turn: &Turn, start: u64) {
    if turn.records.is_empty() {
        return;
    }
    let mut index = state.index.write().expect("event index lock");
    for (offset, bytes) in turn.records.iter().enumerate() {
        let position = start + offset as u64;
        match record::decode(position, bytes) {
            Ok(decoded) => index.apply(position, &decoded),
            Err(error) => {
                tracing::error!(%error, "an event-store record just encoded does not decode")
            }
        }
    }
    drop(index);
    state
        .appended
        .send_replace(start + turn.records.len() as u64);
}

/// Answers every job of a turn whose records were stored from `start`, or not at all.
fn answer(turn: Turn, committed: Result<u64, StorageError>) {
    for (job, outcome) in turn.jobs.into_iter().zip(turn.decided) {
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
