//! A partition's appender: the one writer of its log, keeping up to [`PIPELINE_DEPTH`] appends
//! in the log at once.
//!
//! Producers' batches and compaction's copies wait in the partition's queue. The appender takes
//! everything queued, stamps the producers' batches with their base offsets (in place: the
//! batch checksum does not cover them) and hands it all to the log as one atomic append. It
//! does not wait for that append's fdatasync before handing over the next one: while one
//! commit syncs, the next waits in the log's pending buffer and is written as soon as the sync
//! ends, so the disk is not idle between commits. One append at a time measured half the raw
//! write bandwidth for one partition (docs/benchmarks.md).
//!
//! **Order.** A batch's offsets must follow the log's order, and no batch may outlive one
//! before it (offsets would have a hole). Each append is therefore conditional on the log
//! ending where the previous one ends: taken out of order, the later one fails with
//! `ConditionFailed` and writes nothing. The appender polls each append once as it hands it
//! over (the file log takes an append into its pending buffer then), completes them in order,
//! and tries again an append that found the log not yet at its start, once the one before has
//! completed. If an append fails, the log fails every append queued behind it too; the
//! producers' batches of those go back to the front of the queue, to be stamped again from the
//! offset the failed one would have taken: a failure leaves neither a hole nor a duplicate.
//!
//! The appender is spawned rather than run by a producer, so a producer that goes away never
//! stops an append halfway; it ends when the queue is empty and nothing is in the log.

use super::partition::{entry_of, PartitionRuntime};
use crate::error::EngineError;
use bytes::{Bytes, BytesMut};
use std::{collections::VecDeque, future::Future, ops::Range, pin::Pin, sync::Arc, task::Poll};
use tokio::sync::oneshot;
use wharf_model::record_batch::{self, BatchHeader};
use wharf_storage::{LogStore, Offset, StorageError};

/// Appends a partition keeps in its log at once: one syncing, one waiting to be written.
const PIPELINE_DEPTH: usize = 2;
/// Times an append that found the log not yet at its start is tried again.
const REORDER_RETRIES: usize = 4;

/// One piece of work for the appender.
#[derive(Debug)]
pub(crate) enum Job {
    /// A producer's batch, encoded with base offset 0; answered with its base offset.
    Produce {
        batch: BytesMut,
        header: BatchHeader,
        reply: oneshot::Sender<Result<u64, EngineError>>,
    },
    /// Compaction's copies, which keep their offsets; answered with their log positions.
    Copies {
        payloads: Vec<Bytes>,
        reply: oneshot::Sender<Result<Range<u64>, EngineError>>,
    },
}

type Commit = Pin<Box<dyn Future<Output = Result<Range<Offset>, StorageError>> + Send>>;

/// Jobs handed to the log as one append starting at log position `start`.
struct InFlight {
    commit: Commit,
    /// The result, when the poll at hand-over already completed it.
    done: Option<Result<Range<Offset>, StorageError>>,
    jobs: Vec<Stamped>,
    payloads: Arc<Vec<Bytes>>,
    start: u64,
}

/// A job with its payloads in the append.
enum Stamped {
    Produce {
        header: BatchHeader,
        reply: oneshot::Sender<Result<u64, EngineError>>,
    },
    Copies {
        count: usize,
        reply: oneshot::Sender<Result<Range<u64>, EngineError>>,
    },
}

/// Writes what is queued until the queue is empty and nothing is in the log.
pub(crate) async fn run(partition: Arc<PartitionRuntime>) {
    let _guard = StopGuard(partition.clone());
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut next_offset = partition.lock().index.next_offset();
    let mut next_position = partition.log.end_offset().0;
    // Ends: each turn completes an append or hands one over, and the queue's jobs each enter
    // one append; with nothing queued and nothing in the log, it returns.
    loop {
        while in_flight.len() < PIPELINE_DEPTH {
            let Some(jobs) = partition.take_jobs(in_flight.is_empty()) else {
                break;
            };
            let flight = hand_over(&partition, jobs, &mut next_offset, &mut next_position).await;
            in_flight.push_back(flight);
        }
        let room = in_flight.len() < PIPELINE_DEPTH;
        let Some(front) = in_flight.front_mut() else {
            return;
        };
        if front.done.is_none() {
            // Jobs queued while the oldest append syncs are handed over at once.
            tokio::select! {
                biased;
                result = front.commit.as_mut() => front.done = Some(result),
                () = partition.queued.notified(), if room => continue,
            }
        }
        let flight = in_flight.pop_front().expect("the front append");
        if let Err(error) = complete(&partition, flight).await {
            // The log failed every append behind this one too (or refused it out of order):
            // their batches are stamped again from the offsets the failed one would have had.
            let mut again = Vec::new();
            for behind in in_flight.drain(..) {
                let (result, behind) = settle(behind).await;
                if result.is_ok() {
                    let (stream, number) = (&partition.stream, partition.number);
                    tracing::error!(
                        stream,
                        partition = number,
                        "an append behind a failed one was stored"
                    );
                }
                again.extend(unstamp(behind, &error));
            }
            partition.requeue(again);
            next_offset = partition.lock().index.next_offset();
            next_position = partition.log.end_offset().0;
        }
    }
}

/// Stamps `jobs`, starts their append and polls it once, so that the log takes it before the
/// next one is started.
async fn hand_over(
    partition: &PartitionRuntime,
    jobs: Vec<Job>,
    next_offset: &mut u64,
    next_position: &mut u64,
) -> InFlight {
    let mut payloads = Vec::with_capacity(jobs.len());
    let mut stamped = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job {
            Job::Produce {
                mut batch,
                mut header,
                reply,
            } => {
                record_batch::set_base_offset(&mut batch, *next_offset);
                header.base_offset = *next_offset;
                *next_offset = header.next_offset();
                payloads.push(batch.freeze());
                stamped.push(Stamped::Produce { header, reply });
            }
            Job::Copies {
                payloads: copies,
                reply,
            } => {
                stamped.push(Stamped::Copies {
                    count: copies.len(),
                    reply,
                });
                payloads.extend(copies);
            }
        }
    }
    let start = *next_position;
    *next_position += payloads.len() as u64;
    let payloads = Arc::new(payloads);
    let mut commit = start_append(partition.log.clone(), payloads.clone(), start);
    let mut done = None;
    std::future::poll_fn(|context| {
        if let Poll::Ready(result) = commit.as_mut().poll(context) {
            done = Some(result);
        }
        Poll::Ready(())
    })
    .await;
    InFlight {
        commit,
        done,
        jobs: stamped,
        payloads,
        start,
    }
}

fn start_append(log: Arc<dyn LogStore>, payloads: Arc<Vec<Bytes>>, start: u64) -> Commit {
    Box::pin(async move { log.append(&payloads, Some(Offset(start))).await })
}

/// Waits for `flight`'s append (trying it again while the log is not yet at its start) and
/// applies it; answers its jobs. Returns the error it failed with.
async fn complete(partition: &PartitionRuntime, flight: InFlight) -> Result<(), StorageError> {
    let (result, flight) = settle_in_order(partition, flight).await;
    let written = match result {
        Ok(written) => written,
        Err(error) => {
            for job in flight.jobs {
                match job {
                    Stamped::Produce { reply, .. } => {
                        let _ = reply.send(Err(error.clone().into()));
                    }
                    Stamped::Copies { reply, .. } => {
                        let _ = reply.send(Err(error.clone().into()));
                    }
                }
            }
            return Err(error);
        }
    };
    debug_assert_eq!(
        written.start.0, flight.start,
        "conditional appends land where asked"
    );
    let mut position = written.start.0;
    let mut end = None;
    let mut replies = Vec::with_capacity(flight.jobs.len());
    {
        let mut state = partition.lock();
        for job in flight.jobs {
            match job {
                Stamped::Produce { header, reply } => {
                    state.index.push(entry_of(&header, position));
                    state.apply_producer(&header);
                    state.appended_since_compaction += u64::from(header.record_count);
                    position += 1;
                    end = Some(header.next_offset());
                    replies.push((reply, header.base_offset));
                }
                Stamped::Copies { count, reply } => {
                    let range = position..position + count as u64;
                    position += count as u64;
                    let _ = reply.send(Ok(range));
                }
            }
        }
    }
    if let Some(end) = end {
        partition.end.send_replace(end);
    }
    for (reply, base) in replies {
        let _ = reply.send(Ok(base));
    }
    Ok(())
}

/// `flight`'s result; an append refused because the log was not yet at its start (taken
/// before the one ahead of it) is tried again, now that the one ahead has completed.
async fn settle_in_order(
    partition: &PartitionRuntime,
    flight: InFlight,
) -> (Result<Range<Offset>, StorageError>, InFlight) {
    let (mut result, mut flight) = settle(flight).await;
    for _ in 0..REORDER_RETRIES {
        let behind = matches!(result, Err(StorageError::ConditionFailed { actual, .. }) if actual.0 < flight.start);
        if !behind || partition.log.end_offset().0 != flight.start {
            break;
        }
        flight.commit = start_append(partition.log.clone(), flight.payloads.clone(), flight.start);
        flight.done = None;
        (result, flight) = settle(flight).await;
    }
    (result, flight)
}

async fn settle(mut flight: InFlight) -> (Result<Range<Offset>, StorageError>, InFlight) {
    let result = match flight.done.take() {
        Some(result) => result,
        None => flight.commit.as_mut().await,
    };
    (result, flight)
}

/// The jobs of an append that did not happen, to queue again: producers' batches to be
/// stamped anew; compaction's copies are answered with `error` (the pass tries again later).
fn unstamp(flight: InFlight, error: &StorageError) -> Vec<Job> {
    let mut payloads = flight.payloads.iter();
    let mut jobs = Vec::with_capacity(flight.jobs.len());
    for job in flight.jobs {
        match job {
            Stamped::Produce { header, reply } => {
                let payload = payloads.next().expect("a payload per batch");
                let batch = BytesMut::from(&payload[..]);
                jobs.push(Job::Produce {
                    batch,
                    header,
                    reply,
                });
            }
            Stamped::Copies { count, reply } => {
                payloads.by_ref().take(count).for_each(drop);
                let _ = reply.send(Err(error.clone().into()));
            }
        }
    }
    jobs
}

/// Should the appender stop in a panic (a bug), the queue is released and its jobs dropped
/// (their producers get an internal error) rather than every later append waiting forever.
struct StopGuard(Arc<PartitionRuntime>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.release_queue();
        }
    }
}
