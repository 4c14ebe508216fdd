//! A channel's short history: the newest messages of one topic, kept in memory so that a client
//! that reconnects gets what it missed (docs/realtime.md, "Resume").
//!
//! The history is complete from a point in time on: every message of the topic that reached
//! the hub after `complete_after_ms` is in it, until it is evicted (by count or age). Eviction
//! and missed messages move that point forward, so a resume from before it is answered with a
//! gap, never with a silent hole.

use super::frame;
use axum::extract::ws::Utf8Bytes;
use std::{
    collections::VecDeque,
    sync::{Arc, OnceLock},
};
use wharf_model::message::Message;

/// A message as the hub keeps and sends it.
#[derive(Debug)]
pub struct Entry {
    pub topic: Arc<str>,
    pub routing_key: Arc<str>,
    pub message: Message,
    /// When it reached the hub (ms since the epoch, the engine's clock).
    pub at_ms: u64,
    /// Its `message` frame, serialized once however many clients it goes to.
    frame: OnceLock<Utf8Bytes>,
}

impl Entry {
    pub fn new(topic: Arc<str>, routing_key: Arc<str>, message: Message, at_ms: u64) -> Entry {
        Entry {
            topic,
            routing_key,
            message,
            at_ms,
            frame: OnceLock::new(),
        }
    }

    /// The `{"op": "message", ...}` frame, JSON text.
    pub fn frame(&self) -> &Utf8Bytes {
        self.frame
            .get_or_init(|| Utf8Bytes::from(frame::message(self)))
    }
}

/// How much a history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub messages: usize,
    pub age_ms: u64,
    /// Body bytes kept: a topic of large messages keeps fewer of them.
    pub bytes: usize,
}

/// What a resume finds.
#[derive(Debug)]
pub enum Resume {
    /// The messages after the position, oldest first (possibly none).
    After(Vec<Arc<Entry>>),
    /// The position is older than the history (or unknown): messages may be missing.
    Gap,
}

#[derive(Debug)]
pub struct History {
    entries: VecDeque<Arc<Entry>>,
    limits: Limits,
    /// Body bytes of `entries`.
    bytes: usize,
    /// Every message that reached the hub after this time is here, unless evicted since.
    complete_after_ms: u64,
}

impl History {
    /// An empty history, complete from `now_ms` (when the hub began to record the topic).
    pub fn new(limits: Limits, now_ms: u64) -> History {
        History {
            entries: VecDeque::new(),
            limits,
            bytes: 0,
            complete_after_ms: now_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `entry`, evicting what the limits no longer allow.
    pub fn push(&mut self, entry: Arc<Entry>) {
        let now = entry.at_ms;
        if self.limits.messages > 0 {
            self.bytes += entry.message.body.len();
            self.entries.push_back(entry);
        } else {
            self.complete_after_ms = self.complete_after_ms.max(now);
        }
        self.expire(now);
    }

    /// Evicts messages beyond the count or the bytes, or older than the age.
    pub fn expire(&mut self, now_ms: u64) {
        let oldest_kept = now_ms.saturating_sub(self.limits.age_ms);
        while let Some(front) = self.entries.front() {
            let over = self.entries.len() > self.limits.messages || self.bytes > self.limits.bytes;
            if !over && front.at_ms >= oldest_kept {
                break;
            }
            self.complete_after_ms = self.complete_after_ms.max(front.at_ms);
            self.bytes -= front.message.body.len();
            self.entries.pop_front();
        }
    }

    /// Messages were lost on their way to the history (the hub's feed overflowed): nothing
    /// before `now_ms` can be promised any more.
    pub fn break_at(&mut self, now_ms: u64) {
        self.complete_after_ms = self.complete_after_ms.max(now_ms);
    }

    /// The entry with message id `id`, if kept.
    pub fn find(&self, id: &str) -> Option<&Arc<Entry>> {
        self.entries.iter().rev().find(|e| e.message.id == id)
    }

    /// The messages after the one with id `id`.
    pub fn after_id(&self, id: &str) -> Resume {
        match self.entries.iter().rposition(|e| e.message.id == id) {
            Some(at) => Resume::After(self.entries.iter().skip(at + 1).cloned().collect()),
            None => Resume::Gap,
        }
    }

    /// The messages that reached the hub at or after `at_ms`, and those up to `margin_ms`
    /// before it; a gap unless every message from `at_ms` on is here.
    pub fn since(&self, at_ms: u64, margin_ms: u64) -> Resume {
        if at_ms <= self.complete_after_ms {
            return Resume::Gap;
        }
        let from = at_ms.saturating_sub(margin_ms);
        let kept = self.entries.iter().filter(|e| e.at_ms >= from);
        Resume::After(kept.cloned().collect())
    }
}

/// A message with `id` and a JSON `body`, for tests.
#[cfg(test)]
pub(super) fn test_message(id: &str, body: &'static [u8]) -> Message {
    Message {
        id: id.to_string(),
        body: bytes::Bytes::from_static(body),
        content_type: "application/json".into(),
        headers: Default::default(),
        priority: 0,
        group: None,
        correlation_id: None,
        reply_to: None,
        sent_at: 1,
        deliver_at: None,
        expires_at: None,
        dead_letter: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(id: &str, at_ms: u64) -> Arc<Entry> {
        let message = test_message(id, b"{}");
        Arc::new(Entry::new("t".into(), "k".into(), message, at_ms))
    }

    fn ids(resume: Resume) -> Option<Vec<String>> {
        match resume {
            Resume::After(entries) => Some(entries.iter().map(|e| e.message.id.clone()).collect()),
            Resume::Gap => None,
        }
    }

    #[test]
    fn resume_after_a_kept_id_gives_what_followed_and_an_evicted_one_a_gap() {
        let limits = Limits {
            messages: 3,
            age_ms: 60_000,
            bytes: 1 << 20,
        };
        let mut history = History::new(limits, 1_000);
        for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
            history.push(entry(id, 1_001 + n as u64));
        }
        assert_eq!(history.len(), 3);
        assert_eq!(
            ids(history.after_id("b")),
            Some(vec!["c".into(), "d".into()])
        );
        assert_eq!(ids(history.after_id("d")), Some(vec![]));
        assert_eq!(ids(history.after_id("a")), None, "evicted");
        assert_eq!(ids(history.after_id("zz")), None, "never seen");
        // "a" arrived at 1,001 and was evicted: from 1,001 on nothing is promised.
        assert_eq!(ids(history.since(1_001, 0)), None);
        assert_eq!(
            ids(history.since(1_003, 0)),
            Some(vec!["c".into(), "d".into()])
        );
    }

    #[test]
    fn age_evicts_and_a_break_moves_the_promise_forward() {
        let limits = Limits {
            messages: 100,
            age_ms: 10,
            bytes: 1 << 20,
        };
        let mut history = History::new(limits, 0);
        history.push(entry("a", 5));
        history.push(entry("b", 20));
        assert_eq!(ids(history.after_id("a")), None, "older than 10 ms at 20");
        assert_eq!(ids(history.since(6, 0)), Some(vec!["b".into()]));
        history.break_at(25);
        assert_eq!(ids(history.since(6, 0)), None);
        history.expire(40);
        assert_eq!(history.len(), 0);
    }

    proptest! {
        /// Whatever the arrivals and limits, a resume either gives exactly the kept messages
        /// that followed, or a gap; and the history never holds more than its limits allow.
        #[test]
        fn resume_never_skips_a_message(
            steps in proptest::collection::vec(0u64..5, 1..60),
            messages in 0usize..8,
            age_ms in 1u64..20,
            bytes in 0usize..20,
            from in 0usize..60,
        ) {
            let mut history = History::new(Limits { messages, age_ms, bytes }, 0);
            let mut now = 1;
            let mut all = Vec::new();
            for (n, step) in steps.iter().enumerate() {
                now += step;
                all.push((format!("m{n}"), now));
                history.push(entry(&format!("m{n}"), now));
            }
            prop_assert!(history.len() <= messages);
            let from = from % all.len();
            let (id, _) = &all[from];
            if let Some(got) = ids(history.after_id(id)) {
                let want: Vec<_> = all[from + 1..].iter().map(|(id, _)| id.clone()).collect();
                prop_assert_eq!(got, want);
            }
            let (_, at) = all[from];
            if let Some(got) = ids(history.since(at, 0)) {
                let want: Vec<_> = all.iter().filter(|(_, t)| *t >= at).map(|(id, _)| id.clone()).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
