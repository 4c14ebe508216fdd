//! Retained messages read back from a topic's log: a walk over the retained index in key
//! order, a batch at a time, for a new subscription ([`RetainedMessages`]) and a new binding.
//!
//! A walk holds a key, not a copy of the index: 40 subscriptions to a topic of 100,000
//! retained keys cost 40 cursors, not 40 copies. Each step takes the index lock only to list
//! the next keys, then reads their records unlocked.
//!
//! A walk delivers the messages published before it began (`written_at < before`); a key
//! published again since is skipped, because the new message reaches the subscriber or the
//! binding live. Compaction may move a record while a walk is on its way to it: the read then
//! finds its segment gone, looks the key up again, and follows the copy.

use super::{Interest, TopicRuntime};
use crate::{broker::topic_records::TopicRecord, error::EngineError, topic::RetainedEntry};
use std::sync::{atomic::Ordering, Arc};
use wharf_model::message::Message;
use wharf_storage::{Offset, StorageError};

/// Messages and body bytes one step returns: with 40 subscriptions in their retained phase,
/// at most 40 × 256 KiB are in memory at once.
const RETAINED_BATCH_MESSAGES_MAX: usize = 256;
const RETAINED_BATCH_BYTES_MAX: usize = 256 << 10;
/// Times a read follows a record that compaction moved before giving the key up: a record is
/// moved once per pass, and passes are far apart.
const RETAINED_READ_ATTEMPTS_MAX: usize = 4;

/// The retained messages a new subscription matches, read from the topic's log in batches,
/// in routing-key order.
#[derive(Debug)]
pub(super) struct RetainedMessages {
    topic: Arc<TopicRuntime>,
    interest: Arc<Interest>,
    /// The walk's position: the last key looked at.
    after: Option<String>,
    done: bool,
}

/// One step of a walk over the retained index.
pub(super) struct RetainedStep {
    /// The messages wanted, with their keys, in key order.
    pub messages: Vec<(String, Message)>,
    /// The last key looked at, where the next step starts; `None` when the walk is over.
    pub last: Option<String>,
}

impl RetainedMessages {
    pub(super) fn new(topic: Arc<TopicRuntime>, interest: Arc<Interest>) -> RetainedMessages {
        RetainedMessages {
            topic,
            interest,
            after: None,
            done: false,
        }
    }

    /// See [`super::Subscription::next_retained`].
    pub async fn next_batch(&mut self) -> Result<Option<Vec<(String, Message)>>, EngineError> {
        if self.done {
            return Ok(None);
        }
        let interest = &self.interest;
        let topic = &self.topic;
        let step = topic
            .retained_step(
                self.after.as_deref(),
                interest.retained_before,
                |key| interest.key_matches(key),
                |key, message| {
                    let body = (interest.filter.is_some())
                        .then(|| super::json_body(message))
                        .flatten();
                    topic.count_filter_stop(interest.wants(key, message, body.as_ref()))
                },
            )
            .await?;
        let Some(last) = step.last else {
            self.done = true;
            return Ok(None);
        };
        self.after = Some(last);
        Ok(Some(step.messages))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl TopicRuntime {
    /// One step of a walk: the keys after `after`, skipping those published at or after
    /// `before` and those `key_matches` refuses, reading the others and keeping those `wants`.
    pub(super) async fn retained_step(
        &self,
        after: Option<&str>,
        before: Offset,
        key_matches: impl Fn(&str) -> bool,
        mut wants: impl FnMut(&str, &Message) -> bool,
    ) -> Result<RetainedStep, EngineError> {
        if self.deleted.load(Ordering::Acquire) {
            return Ok(RetainedStep {
                messages: Vec::new(),
                last: None,
            });
        }
        let entries = (self.state.lock().expect("topic state lock"))
            .retained
            // One batch of keys at most: the index lock is held briefly, and when every key
            // matches none of them is listed in vain.
            .batch_after(after, RETAINED_BATCH_MESSAGES_MAX);
        let mut step = RetainedStep {
            messages: Vec::new(),
            last: None,
        };
        let mut bytes = 0;
        for (key, entry) in entries {
            let read = entry.written_at < before && key_matches(&key);
            let message = if read {
                self.read_retained(&key, entry).await?
            } else {
                None
            };
            if let Some(message) = message.filter(|m| wants(&key, m)) {
                bytes += message.body.len();
                step.messages.push((key.clone(), message));
            }
            step.last = Some(key);
            if step.messages.len() >= RETAINED_BATCH_MESSAGES_MAX
                || bytes >= RETAINED_BATCH_BYTES_MAX
            {
                break;
            }
        }
        Ok(step)
    }

    /// The retained message of `entry`, read from the log; `None` when the key was published
    /// again or cleared since `entry` was listed (a newer message replaces it).
    pub(super) async fn read_retained(
        &self,
        key: &str,
        mut entry: RetainedEntry,
    ) -> Result<Option<Message>, EngineError> {
        for _ in 0..RETAINED_READ_ATTEMPTS_MAX {
            match self.log.read(entry.stored_at).await {
                Ok(Some(record)) => {
                    return decode_retained(key, entry.stored_at, &record.payload).map(Some)
                }
                Ok(None) => return Err(missing_record(key, entry.stored_at)),
                Err(StorageError::OffsetTruncated { .. }) => {
                    // Compaction copied the record forward and dropped its segment.
                    let state = self.state.lock().expect("topic state lock");
                    match state.retained.get(key) {
                        Some(now) if now.written_at == entry.written_at => entry = now,
                        _ => return Ok(None),
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(None)
    }
}

/// Checks a record read for a retained key: it must be that key's `retained` record.
fn decode_retained(
    key: &str,
    offset: Offset,
    payload: &bytes::Bytes,
) -> Result<Message, EngineError> {
    match TopicRecord::decode(offset.0, payload)? {
        TopicRecord::Retained {
            key: found,
            message,
        } if found == key => Ok(message),
        _ => Err(missing_record(key, offset)),
    }
}

/// The index named a record that is not the key's message: a bug, never client input.
pub(super) fn missing_record(key: &str, offset: Offset) -> EngineError {
    tracing::error!(key, %offset, "the retained index names a record that does not hold the key");
    EngineError::Internal {
        operation: "reading a retained message",
    }
}
