//! The delivery log: every attempt of every endpoint, newest first, the last
//! [`ATTEMPTS_KEPT`] per endpoint, in memory (a restart starts it empty; the messages
//! themselves, pending or dead-lettered, are durable in the endpoint's queues).

use serde::Serialize;
use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};
use utoipa::ToSchema;

/// Attempts kept per endpoint.
pub const ATTEMPTS_KEPT: usize = 1_000;

/// What an attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = WebhookOutcome)]
pub enum Outcome {
    /// A 2xx: the message is settled for this endpoint.
    Delivered,
    /// Failed; tried again at `next_attempt_at_ms`.
    RetryScheduled,
    /// Failed with the retry schedule spent: in the endpoint's dead-letter queue.
    DeadLettered,
    /// `410 Gone`: the endpoint was disabled; the message waits for it to be enabled again.
    EndpointDisabled,
}

/// One attempt to deliver one message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
pub struct Attempt {
    /// The endpoint's id.
    #[schema(example = "billing")]
    pub endpoint: String,
    /// The message id, also its `webhook-id` header.
    #[schema(example = "0192f3a4b5c6d7e8")]
    pub message_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started (Unix ms).
    pub at_ms: u64,
    /// The response status; null when none arrived.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// Why no status arrived (connection refused, timeout, a refused address).
    pub error: Option<String>,
    /// The first 256 bytes of the response body (as text).
    pub response: String,
    /// The address connected to.
    pub address: Option<String>,
    pub outcome: Outcome,
    /// When the next attempt is due, for `retry_scheduled`.
    pub next_attempt_at_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub struct AttemptLog {
    endpoints: Mutex<HashMap<String, VecDeque<Attempt>>>,
}

impl AttemptLog {
    fn endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Attempt>>> {
        // Plain data changed by single pushes and pops: whole even if a holder panicked.
        (self.endpoints.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, endpoint: &str, attempt: Attempt) {
        let mut endpoints = self.endpoints();
        let log = endpoints.entry(endpoint.to_string()).or_default();
        if log.len() == ATTEMPTS_KEPT {
            log.pop_back();
        }
        log.push_front(attempt);
    }

    /// The endpoint's attempts, newest first, of `message` only when given; at most `limit`.
    pub fn list(&self, endpoint: &str, message: Option<&str>, limit: usize) -> Vec<Attempt> {
        let endpoints = self.endpoints();
        let Some(log) = endpoints.get(endpoint) else {
            return Vec::new();
        };
        (log.iter())
            .filter(|attempt| message.is_none_or(|id| attempt.message_id == id))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The attempts of `message` to every endpoint, newest first; at most `limit`.
    pub fn of_message(&self, message: &str, limit: usize) -> Vec<Attempt> {
        let endpoints = self.endpoints();
        let mut attempts: Vec<Attempt> = (endpoints.values())
            .flat_map(|log| log.iter().filter(|attempt| attempt.message_id == message))
            .cloned()
            .collect();
        attempts.sort_by_key(|attempt| std::cmp::Reverse(attempt.at_ms));
        attempts.truncate(limit);
        attempts
    }

    /// Drops the log of a deleted endpoint.
    pub fn forget(&self, endpoint: &str) {
        self.endpoints().remove(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(message: &str, number: u32) -> Attempt {
        Attempt {
            endpoint: "e".into(),
            message_id: message.into(),
            attempt: number,
            at_ms: 0,
            status: Some(500),
            latency_ms: 1,
            error: None,
            response: String::new(),
            address: None,
            outcome: Outcome::RetryScheduled,
            next_attempt_at_ms: Some(5),
        }
    }

    #[test]
    fn newest_first_bounded_and_filtered_by_message() {
        let log = AttemptLog::default();
        for number in 1..=(ATTEMPTS_KEPT as u32 + 5) {
            let message = if number % 2 == 0 { "even" } else { "odd" };
            log.record("e", attempt(message, number));
        }
        let all = log.list("e", None, usize::MAX);
        assert_eq!(all.len(), ATTEMPTS_KEPT);
        assert_eq!(all[0].attempt, ATTEMPTS_KEPT as u32 + 5);
        assert_eq!(all.last().unwrap().attempt, 6);
        let even = log.list("e", Some("even"), 3);
        assert_eq!(
            even.iter().map(|a| a.attempt).collect::<Vec<_>>(),
            [1004, 1002, 1000]
        );
        let across = log.of_message("odd", 2);
        assert_eq!(
            across.iter().map(|a| a.attempt).collect::<Vec<_>>(),
            [1005, 1003]
        );
        log.forget("e");
        assert!(log.list("e", None, 10).is_empty());
    }
}
