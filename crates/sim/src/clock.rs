//! Simulated time: a clock that moves only when the simulator advances it, and wakes its
//! sleepers in a fixed order.
//!
//! The engine's `ManualClock` has the same contract, but wakes sleepers through a tokio watch
//! channel, which spreads its waiters over eight notifiers chosen at random: timers due at the
//! same instant wake in a different order on each run, and so dead-letter their messages in a
//! different order. This clock keeps its sleepers in registration order and wakes them in it.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};
use wharf_engine::clock::{Clock, Millis};

#[derive(Debug)]
pub(crate) struct SimClock {
    now: AtomicU64,
    sleepers: Mutex<Sleepers>,
}

#[derive(Debug, Default)]
struct Sleepers {
    next_id: u64,
    /// By registration: the deadline and the waker of each pending sleep.
    waiting: BTreeMap<u64, (Millis, Waker)>,
}

impl SimClock {
    pub(crate) fn new(start: Millis) -> SimClock {
        SimClock {
            now: AtomicU64::new(start),
            sleepers: Mutex::new(Sleepers::default()),
        }
    }

    /// Moves time forward and wakes every sleep now due, oldest sleep first.
    pub(crate) fn advance(&self, by: Duration) {
        let now =
            self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst) + by.as_millis() as u64;
        let due: Vec<Waker> = {
            let sleepers = self.sleepers.lock().expect("sleepers lock");
            (sleepers.waiting.values())
                .filter(|(deadline, _)| *deadline <= now)
                .map(|(_, waker)| waker.clone())
                .collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Sleep {
            clock: self,
            deadline,
            id: None,
        })
    }
}

struct Sleep<'a> {
    clock: &'a SimClock,
    deadline: Millis,
    /// Its place in the wake order, taken when first polled.
    id: Option<u64>,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleepers = self.clock.sleepers.lock().expect("sleepers lock");
        if self.clock.now() >= self.deadline {
            if let Some(id) = self.id {
                sleepers.waiting.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = sleepers.next_id;
                sleepers.next_id += 1;
                id
            }
        };
        sleepers
            .waiting
            .insert(id, (self.deadline, cx.waker().clone()));
        drop(sleepers);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut sleepers) = self.clock.sleepers.lock() {
                sleepers.waiting.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sleepers_wake_when_due_in_the_order_they_slept() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = Arc::new(SimClock::new(1_000));
            let order = Arc::new(Mutex::new(Vec::new()));
            for (name, deadline) in [("late", 1_500), ("first", 1_200), ("second", 1_200)] {
                let (clock, order) = (clock.clone(), order.clone());
                tokio::spawn(async move {
                    clock.sleep_until(deadline).await;
                    order.lock().unwrap().push(name);
                });
                tokio::task::yield_now().await;
            }
            clock.advance(Duration::from_millis(100));
            tokio::task::yield_now().await;
            assert!(order.lock().unwrap().is_empty());
            clock.advance(Duration::from_millis(400));
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert_eq!(*order.lock().unwrap(), ["late", "first", "second"]);
            assert_eq!(clock.now(), 1_500);
        });
    }
}
