//! Messages just sent, kept as they were sent for their first delivery.
//!
//! A busy queue mostly delivers what was sent moments ago. Its record is then still in the
//! log's tail cache, but a delivery had to decode it again: every string allocated and copied,
//! the headers rebuilt. A send leaves its messages here instead, by queue and seq, and a
//! delivery takes them out as they are.
//!
//! Only a read cache: the log stays the truth, and a message not found here (taken by an
//! earlier delivery, pushed out, or sent before a restart) is read from its record as before.
//! A seq names one message for good (a relocated record carries the same message), so an
//! entry never goes stale; a settled message's entry just waits to be pushed out. One cache
//! serves every queue and holds the newest sends up to a byte budget, so its cost does not
//! grow with the number of queues; it counts each message's body and fields (a body sliced
//! out of a larger request keeps that request's buffer alive, but only the newest sends are
//! kept, so those buffers are about the budget too).

use crate::queue::Seq;
use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
};
use wharf_model::message::Message;

/// What every kept message costs besides its body and strings: its struct and slot, roughly.
const ENTRY_BYTES: usize = 320;

#[derive(Debug)]
pub(crate) struct FreshMessages {
    bytes_max: usize,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// By (queue resource id, seq of its first message): one entry per send, so a send of a
    /// hundred messages costs one insertion.
    sends: BTreeMap<(u64, u64), Send>,
    /// Keys in the order kept, oldest first; some gone since.
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

/// The messages of one send at consecutive seqs, each until taken.
#[derive(Debug)]
struct Send {
    messages: Vec<Option<Message>>,
    left: usize,
    /// Counted until the last one is taken or the send pushed out.
    bytes: usize,
}

impl FreshMessages {
    pub(crate) fn new(bytes_max: usize) -> FreshMessages {
        FreshMessages {
            bytes_max,
            kept: Mutex::default(),
        }
    }

    /// Keeps `messages`, those of queue `resource` at seqs `first`, `first + 1`..., pushing out
    /// the oldest sends past the budget. A send larger than the budget is not kept.
    pub(crate) fn keep(&self, resource: u64, first: Seq, messages: Vec<Option<Message>>) {
        let bytes = messages.iter().flatten().map(cost).sum();
        if bytes > self.bytes_max || messages.is_empty() {
            return;
        }
        // A poisoned lock means a panic elsewhere: the cache is only skipped, never trusted.
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        let send = Send {
            left: messages.iter().flatten().count(),
            messages,
            bytes,
        };
        let key = (resource, first.0);
        if let Some(replaced) = kept.sends.insert(key, send) {
            kept.bytes -= replaced.bytes;
        } else {
            kept.order.push_back(key);
        }
        kept.bytes += bytes;
        kept.trim(self.bytes_max);
    }

    /// The kept messages of queue `resource` at `seqs`, in order, each taken out (`None`
    /// where not kept).
    pub(crate) fn take(&self, resource: u64, seqs: &[Seq]) -> Vec<Option<Message>> {
        let none = || seqs.iter().map(|_| None).collect();
        let Ok(mut kept) = self.kept.lock() else {
            return none();
        };
        if kept.sends.is_empty() {
            return none();
        }
        let taken = seqs
            .iter()
            .map(|seq| kept.take_one(resource, *seq))
            .collect();
        kept.trim(self.bytes_max);
        taken
    }
}

impl Kept {
    fn take_one(&mut self, resource: u64, seq: Seq) -> Option<Message> {
        let (&key, send) = self.sends.range_mut(..=(resource, seq.0)).next_back()?;
        // The nearest send at or below: another queue's when this one has none there.
        let index = (seq.0.checked_sub(key.1)).and_then(|index| usize::try_from(index).ok());
        let message = (key.0 == resource)
            .then(|| send.messages.get_mut(index?)?.take())
            .flatten()?;
        send.left -= 1;
        if send.left == 0 {
            self.bytes -= send.bytes;
            self.sends.remove(&key);
        }
        Some(message)
    }

    /// Drops keys of sends gone from the front, and the oldest sends while over budget or
    /// while gone sends make up most of the order (so it stays within about twice the sends
    /// kept, however out of order their messages are taken).
    fn trim(&mut self, bytes_max: usize) {
        while let Some(oldest) = self.order.front() {
            let crowded = self.order.len() > 2 * self.sends.len() + 64;
            if self.sends.contains_key(oldest) {
                if self.bytes <= bytes_max && !crowded {
                    return;
                }
                if let Some(send) = self.sends.remove(oldest) {
                    self.bytes -= send.bytes;
                }
            }
            self.order.pop_front();
        }
    }
}

/// Bytes `message` is counted for while kept: its body, its strings as a record holds them,
/// and its struct and header map nodes.
fn cost(message: &Message) -> usize {
    const HEADER_NODE_BYTES: usize = 48;
    ENTRY_BYTES
        + message.body.len()
        + super::records::message::fields_bytes(message)
        + HEADER_NODE_BYTES * message.headers.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(body: usize) -> Message {
        Message {
            id: "m".into(),
            body: Bytes::from(vec![b'x'; body]),
            content_type: "text/plain".into(),
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

    /// Sends kept, keys in the order, bytes counted.
    fn kept(fresh: &FreshMessages) -> (usize, usize, usize) {
        let kept = fresh.kept.lock().unwrap();
        (kept.sends.len(), kept.order.len(), kept.bytes)
    }

    fn send(bodies: &[usize]) -> Vec<Option<Message>> {
        bodies.iter().map(|body| Some(message(*body))).collect()
    }

    #[test]
    fn a_kept_message_is_taken_once_by_its_queue_and_seq() {
        let fresh = FreshMessages::new(1 << 20);
        fresh.keep(7, Seq(10), send(&[5, 6]));
        fresh.keep(7, Seq(30), vec![None, Some(message(7))]);
        let taken = fresh.take(7, &[Seq(11), Seq(12), Seq(10), Seq(30), Seq(31), Seq(9)]);
        let lengths: Vec<_> = taken
            .iter()
            .map(|m| m.as_ref().map(|m| m.body.len()))
            .collect();
        assert_eq!(lengths, [Some(6), None, Some(5), None, Some(7), None]);
        assert!(fresh.take(7, &[Seq(10)])[0].is_none(), "taken already");
        assert_eq!(kept(&fresh), (0, 0, 0), "a send wholly taken is gone");
        fresh.keep(7, Seq(20), send(&[1]));
        assert!(
            fresh.take(8, &[Seq(20)])[0].is_none(),
            "another queue's seq"
        );
        assert!(
            fresh.take(6, &[Seq(20)])[0].is_none(),
            "another queue's seq"
        );
        assert_eq!(kept(&fresh).0, 1);
    }

    #[test]
    fn the_oldest_sends_are_pushed_out_past_the_budget() {
        let one = cost(&message(1000));
        let fresh = FreshMessages::new(3 * one);
        for seq in 0..5 {
            fresh.keep(1, Seq(seq), send(&[1000]));
        }
        assert_eq!(kept(&fresh), (3, 3, 3 * one));
        let taken = fresh.take(1, &[Seq(0), Seq(1), Seq(2), Seq(3), Seq(4)]);
        let found: Vec<bool> = taken.iter().map(Option::is_some).collect();
        assert_eq!(found, [false, false, true, true, true]);
        assert_eq!(kept(&fresh), (0, 0, 0));
        let small = FreshMessages::new(one);
        small.keep(1, Seq(0), send(&[1000, 1000]));
        assert_eq!(
            kept(&small),
            (0, 0, 0),
            "a send over the budget is not kept"
        );
    }

    #[test]
    fn sends_taken_out_of_order_do_not_pile_up_behind_one_kept() {
        let fresh = FreshMessages::new(1 << 30);
        fresh.keep(1, Seq(0), send(&[1]));
        for seq in 1..10_000 {
            fresh.keep(1, Seq(seq), send(&[1]));
            fresh.take(1, &[Seq(seq)]);
        }
        let (sends, order, _) = kept(&fresh);
        assert!(
            sends <= 1 && order <= 2 * sends + 65,
            "{sends} kept, {order} keys"
        );
    }

    proptest::proptest! {
        /// Against a model of every message kept and not yet taken: a take gives a message only
        /// if it was kept at that queue and seq, and the budget always holds.
        #[test]
        fn a_take_gives_only_what_was_kept_there(
            operations in proptest::collection::vec(
                (0u64..3, proptest::collection::vec(proptest::option::of(0usize..2000), 1..6), proptest::bool::ANY),
                1..60,
            ),
            budget in 1_000usize..20_000,
        ) {
            let fresh = FreshMessages::new(budget);
            let mut model = std::collections::HashMap::new();
            let mut next_seq = [0u64; 3];
            for (resource, bodies, take) in operations {
                if take {
                    let seqs: Vec<Seq> = (0..next_seq[resource as usize] + 2).map(Seq).collect();
                    for (seq, taken) in seqs.iter().zip(fresh.take(resource, &seqs)) {
                        let expected = model.remove(&(resource, seq.0));
                        if let Some(message) = taken {
                            proptest::prop_assert_eq!(Some(message.body.len()), expected);
                        }
                    }
                } else {
                    let first = next_seq[resource as usize];
                    next_seq[resource as usize] += bodies.len() as u64 + 1;
                    for (at, body) in bodies.iter().enumerate() {
                        if let Some(body) = body {
                            model.insert((resource, first + at as u64), *body);
                        }
                    }
                    let messages = bodies.iter().map(|body| body.map(message)).collect();
                    fresh.keep(resource, Seq(first), messages);
                }
                proptest::prop_assert!(kept(&fresh).2 <= budget);
            }
        }
    }
}
