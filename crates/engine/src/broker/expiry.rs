//! Queue expiry (`expires_ms`, RabbitMQ's `x-expires`): a queue unused that long is deleted
//! with its messages. Used means a consumer attached, a receive, or a declare of the queue;
//! sends do not count. One task per queue that has the option, and only while it has it: a
//! queue without it costs nothing. Time is the engine's clock, so tests move it by hand.

use super::{queue_runtime::QueueRuntime, Engine, Inner};
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Weak,
};

/// While consumers are attached the queue is in use: it is looked at again this often, and
/// counts as used until then, so it expires at most this much later than asked after its
/// last consumer left.
const IN_USE_RECHECK_MS: u64 = 1_000;

/// Starts the expiry task of `queue` if it has `expires_ms` and none runs yet.
pub(super) fn watch(engine: &Engine, queue: &Arc<QueueRuntime>) {
    let has_expiry = queue
        .options()
        .is_ok_and(|options| options.expires_ms.is_some());
    if !has_expiry || !claim(&queue.expiry_watched) {
        return;
    }
    queue.touch(engine.now());
    tokio::spawn(run(Arc::downgrade(&engine.inner), queue.clone()));
}

fn claim(flag: &AtomicBool) -> bool {
    flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Sleeps until the queue may have expired, looks, and deletes it if it has. Ends when the
/// queue is deleted, loses the option, or the engine closes.
async fn run(inner: Weak<Inner>, queue: Arc<QueueRuntime>) {
    loop {
        let Some(engine) = inner.upgrade().map(|inner| Engine { inner }) else {
            return;
        };
        let expires_ms = match queue.options() {
            Ok(options) => options.expires_ms,
            Err(_) => None,
        };
        let Some(expires_ms) = expires_ms
            .filter(|_| !queue.is_deleted() && !engine.inner.closing.load(Ordering::Acquire))
        else {
            queue.expiry_watched.store(false, Ordering::Release);
            // The option may have come back between the read and the store: look once more.
            if queue.options().is_ok_and(|o| o.expires_ms.is_some()) && !queue.is_deleted() {
                watch(&engine, &queue);
            }
            return;
        };
        let now = engine.now();
        let wake_at = match queue.consumer_count() {
            Ok(0) => {
                let due = queue.last_used().saturating_add(expires_ms);
                if now >= due {
                    tracing::info!(queue = %queue.name, expires_ms, "queue unused for its expires_ms: deleting it");
                    if let Err(error) = engine.delete_queue(queue.name.as_str()).await {
                        tracing::warn!(queue = %queue.name, %error, "deleting an expired queue failed");
                    }
                    return;
                }
                due
            }
            Ok(_) => {
                queue.touch(now);
                now.saturating_add(IN_USE_RECHECK_MS.min(expires_ms))
            }
            Err(_) => return,
        };
        let clock = engine.inner.clock.clone();
        drop(engine);
        clock.sleep_until(wake_at).await;
    }
}
