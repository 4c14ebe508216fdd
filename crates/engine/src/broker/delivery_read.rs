//! Reading the bodies of fresh deliveries, when storage cannot give some of them back.
//!
//! A batch of deliveries is read with one storage call. When that fails, each record is read
//! alone to find the ones at fault, so that one bad record never fails the whole batch (nor
//! leaves the rest leased and unreturned until their leases run out):
//! - a record that is damaged (it fails its checksum, is missing, or does not decode as this
//!   message) can never be delivered: the message leaves the queue as `Damaged`, counted in
//!   the queue's `damaged` counter and logged;
//! - a read that failed otherwise (an I/O error) returns its message to the queue for a later
//!   attempt.
//!
//! The rest of the batch is delivered. Only when nothing could be read and nothing was
//! damaged does the error become the caller's answer.

use super::queue_runtime::QueueRuntime;
use crate::{
    error::EngineError,
    log_throttle::LogThrottle,
    queue::{Delivery as StateDelivery, Seq, Settle},
};
use wharf_model::message::Message;
use wharf_storage::StorageError;

impl QueueRuntime {
    /// The messages of `deliveries` (leased just now) that could be read, each with its
    /// delivery, in order, and the settlements of those that are damaged, for the caller to
    /// persist. Messages sent just now come as they were sent (see `fresh`), the rest from
    /// their records.
    pub(crate) async fn read_deliveries(
        &self,
        deliveries: Vec<StateDelivery>,
        now: u64,
    ) -> Result<(Vec<(StateDelivery, Message)>, Vec<Settle>), EngineError> {
        let seqs: Vec<Seq> = deliveries.iter().map(|d| d.seq).collect();
        let kept = self.fresh.take(self.resource.0, &seqs);
        let missing: Vec<StateDelivery> = (deliveries.iter().zip(&kept))
            .filter(|(_, message)| message.is_none())
            .map(|(delivery, _)| *delivery)
            .collect();
        if missing.is_empty() {
            return Ok((
                deliveries
                    .into_iter()
                    .zip(kept.into_iter().flatten())
                    .collect(),
                Vec::new(),
            ));
        }
        let all_missing = missing.len() == deliveries.len();
        // What failed to read went back to the queue (`read_records_of`): deliver the rest.
        let (read, settles) = match self.read_records_of(missing, now).await {
            Ok(read) => read,
            Err(failure) if all_missing => return Err(failure),
            Err(_) => (Vec::new(), Vec::new()),
        };
        // In lease order (priorities and ordered groups depend on it): what the log gave is
        // the missing ones in order, less those it could not read.
        let mut read = read.into_iter().peekable();
        let mut merged = Vec::with_capacity(deliveries.len());
        for (delivery, message) in deliveries.into_iter().zip(kept) {
            match message {
                Some(message) => merged.push((delivery, message)),
                None => {
                    if let Some(found) = read.next_if(|(d, _)| d.seq == delivery.seq) {
                        merged.push(found);
                    }
                }
            }
        }
        Ok((merged, settles))
    }

    /// [`QueueRuntime::read_deliveries`] from the log alone. When nothing could be read and
    /// nothing was damaged, the error; the deliveries that failed are returned to the queue
    /// either way.
    async fn read_records_of(
        &self,
        deliveries: Vec<StateDelivery>,
        now: u64,
    ) -> Result<(Vec<(StateDelivery, Message)>, Vec<Settle>), EngineError> {
        let seqs: Vec<Seq> = deliveries.iter().map(|d| d.seq).collect();
        let failure = match self.read_messages(&seqs).await {
            Ok(messages) => {
                return Ok((deliveries.into_iter().zip(messages).collect(), Vec::new()))
            }
            Err(failure) => failure,
        };
        let mut read = Vec::with_capacity(deliveries.len());
        let (mut damaged, mut failed) = (Vec::new(), Vec::new());
        let mut last_failure = failure;
        for delivery in deliveries {
            match self.read_messages(&[delivery.seq]).await {
                Ok(mut message) => read.push((delivery, message.remove(0))),
                Err(error) if is_damage(&error) => {
                    log_damaged(self, delivery.seq, &error);
                    damaged.push(delivery);
                }
                Err(error) => {
                    failed.push(delivery);
                    last_failure = error;
                }
            }
        }
        let settles = self.set_aside(&damaged, &failed, now)?;
        if read.is_empty() && damaged.is_empty() {
            return Err(last_failure);
        }
        Ok((read, settles))
    }

    /// Settles the damaged as `Damaged` and returns the failed to the queue.
    fn set_aside(
        &self,
        damaged: &[StateDelivery],
        failed: &[StateDelivery],
        now: u64,
    ) -> Result<Vec<Settle>, EngineError> {
        let mut core = self.core()?;
        let mut settles = Vec::new();
        for delivery in damaged {
            settles.extend(core.state.settle_damaged(delivery.receipt, now));
        }
        for delivery in failed {
            if let Ok(Some(settle)) = core.state.release(delivery.receipt, now) {
                settles.push(settle);
            }
        }
        drop(core);
        self.timer_changed.notify_one();
        Ok(settles)
    }
}

/// Whether a failed read means the record itself is bad, for good.
fn is_damage(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::Record(_) | EngineError::Storage(StorageError::Corrupt { .. })
    )
}

fn log_damaged(queue: &QueueRuntime, seq: Seq, error: &EngineError) {
    static THROTTLE: LogThrottle = LogThrottle::new();
    if let Some(suppressed) = THROTTLE.allow() {
        tracing::error!(queue = %queue.name, %seq, %error, suppressed, "a message's record is damaged: it leaves the queue");
    }
}
