//! Publishes leave the connection's read loop for a task of their own, which stores them in
//! order: what queued up while one batch was being committed is stored together in the next,
//! so QoS 1 and 2 publishes in flight share fsyncs. Outcomes come back in arrival order.

use super::{Connection, ReasonCode};
use crate::door::PublishBudget;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use wharf_codec_mqtt::{PacketId, Publish, Will};
use wharf_engine::{broker::PublishMessage, Engine, EngineError};

/// Most publishes stored together.
const BATCH_MESSAGES: usize = 512;
/// Most payload bytes stored together (a batch is stored whole or not at all).
const BATCH_BYTES: usize = 4 << 20;
/// Publishes queued for the task: past it the read loop waits, and so does the client.
const JOBS_BUFFER: usize = 1_024;
/// A publish waiting for the task, with its share of the connection's [`PublishBudget`]
/// (given back once it is stored or refused). Boxed: the channel's first block of 32 slots,
/// held from the first publish on, stays small on a connection that publishes now and then.
type Job = (Box<PublishMessage>, Ack, OwnedSemaphorePermit);

/// What the client is owed once a publish is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    None,
    Puback(PacketId),
    Pubrec(PacketId),
}

/// The connection's end of its publisher task.
pub struct Handle {
    jobs: mpsc::Sender<Job>,
    budget: PublishBudget,
    pub reports: mpsc::UnboundedReceiver<Vec<(Ack, Option<ReasonCode>)>>,
}

impl Handle {
    pub async fn send(&self, message: PublishMessage, ack: Ack) {
        // The budget and the task end only when this handle goes: neither can fail while it
        // lives.
        let Some(permit) = self.budget.take(message.message.body.len()).await else {
            return;
        };
        let _ = self.jobs.send((Box::new(message), ack, permit)).await;
    }
}

/// The next outcomes of a connection's publisher, if it has one.
pub async fn reports(publisher: &mut Option<Handle>) -> Option<Vec<(Ack, Option<ReasonCode>)>> {
    match publisher {
        Some(handle) => handle.reports.recv().await,
        None => std::future::pending().await,
    }
}

/// Starts the task that publishes to `topic`; it ends when the handle is dropped.
pub fn spawn(engine: Engine, topic: String) -> Handle {
    let (jobs, mut queued) = mpsc::channel::<Job>(JOBS_BUFFER);
    let (report, reports) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Ends: when the connection drops its handle (the channel closes).
        while let Some(first) = queued.recv().await {
            let mut bytes = first.0.message.body.len();
            let mut batch = vec![first];
            while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
                match queued.try_recv() {
                    Ok(job) => {
                        bytes += job.0.message.body.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            let mut messages = Vec::with_capacity(batch.len());
            let mut acks = Vec::with_capacity(batch.len());
            let mut permits = Vec::with_capacity(batch.len());
            for (message, ack, permit) in batch {
                messages.push(*message);
                acks.push(ack);
                permits.push(permit);
            }
            let failure = match engine.publish(&topic, messages).await {
                Ok(_) => None,
                Err(error) => Some(reason_of(&error)),
            };
            drop(permits);
            let outcomes = acks.into_iter().map(|ack| (ack, failure)).collect();
            if report.send(outcomes).is_err() {
                return;
            }
        }
    });
    Handle {
        jobs,
        budget: PublishBudget::new(),
        reports,
    }
}

/// The Reason Code of a PUBACK or PUBREC for a publish the engine refused. A full disk is a
/// quota (0x97), as an HTTP send gets 507: the client may retry once space is freed.
fn reason_of(error: &EngineError) -> ReasonCode {
    match error {
        EngineError::Storage(storage) if storage.is_disk_full() => ReasonCode::QUOTA_EXCEEDED,
        EngineError::Forbidden { .. } | EngineError::Unauthenticated { .. } => {
            ReasonCode::NOT_AUTHORIZED
        }
        EngineError::TooLarge { .. }
        | EngineError::QueueFull { .. }
        | EngineError::LimitReached { .. } => ReasonCode::QUOTA_EXCEEDED,
        EngineError::InvalidName { .. } | EngineError::InvalidField { .. } => {
            ReasonCode::TOPIC_NAME_INVALID
        }
        _ => ReasonCode::UNSPECIFIED_ERROR,
    }
}

/// Publishes the will of a connection that ended without saying goodbye, after its delay
/// (5.0), unless the client is back by then.
pub fn publish_will(connection: &Connection, will: Will) {
    let engine = connection.engine.clone();
    let door = connection.door.clone();
    let client_id = connection.client_id.clone();
    let delay = super::session::will_delay(
        will.properties.will_delay_interval.unwrap_or(0),
        connection.expiry_s,
    );
    let publish = Publish {
        qos: will.qos,
        retain: will.retain,
        topic_name: will.topic.clone(),
        properties: will.properties.clone(),
        payload: will.payload.clone().into_bytes(),
        ..Publish::default()
    };
    let Ok(key) = super::names::key_of(will.topic.as_str()) else {
        return;
    };
    let message = PublishMessage {
        routing_key: key,
        message: super::convert::send_message(&publish, &client_id),
        retain: will.retain,
    };
    let publish = async move {
        if let Err(error) = engine.publish(&door.settings.topic, vec![message]).await {
            tracing::debug!(%error, "publishing an MQTT will failed");
        }
    };
    if delay.is_zero() {
        tokio::spawn(publish);
        return;
    }
    // A delayed will waits in the door's list, one per client id: the client's return (or a
    // newer will of its id) cancels it, so waiting wills never outnumber the client ids.
    let wills = connection.door.wills.clone();
    let (listed, id) = (wills.clone(), connection.client_id.clone());
    let waiting = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        publish.await;
        listed.sent(&id, tokio::task::id());
    });
    wills.replace(&connection.client_id, waiting.abort_handle());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wharf_storage::StorageError;

    #[test]
    fn a_full_disk_is_a_quota_and_other_storage_failures_unspecified() {
        let reserved = EngineError::Storage(StorageError::SpaceReserved);
        assert_eq!(reason_of(&reserved), ReasonCode::QUOTA_EXCEEDED);
        let no_space = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let io = |source| {
            EngineError::Storage(StorageError::Io {
                path: "wal".into(),
                source: Arc::new(source),
            })
        };
        assert_eq!(reason_of(&io(no_space)), ReasonCode::QUOTA_EXCEEDED);
        let broken = std::io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(reason_of(&io(broken)), ReasonCode::UNSPECIFIED_ERROR);
    }
}
