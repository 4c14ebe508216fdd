//! Rate limits for log lines that a fault can repeat without end.
//!
//! A failing disk or a loop gone wrong can hit the same warning millions of times (once, about
//! four million identical lines in 30 s), which buries the first, useful line and fills the
//! disk that is already in trouble. Each such call site owns a [`LogThrottle`]: the first line
//! passes, then at most one per interval, carrying how many were suppressed in between.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// One line per 10 s per call site keeps a persistent fault visible in any log viewer's window
/// while bounding the volume to a few hundred lines an hour.
pub const LOG_THROTTLE_INTERVAL_MS: u64 = 10_000;

/// The state of one throttled call site; `const`-constructible, so it can be a `static`.
#[derive(Debug, Default)]
pub struct LogThrottle {
    /// When the last line passed, in ms since the epoch (0: never).
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub const fn new() -> LogThrottle {
        LogThrottle {
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now; when it may, how many were suppressed since the
    /// last one.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.allow_at(now)
    }

    fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= LOG_THROTTLE_INTERVAL_MS;
        if due
            && self
                .last_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_passes_then_one_per_interval_with_the_suppressed_count() {
        let throttle = LogThrottle::new();
        let start = 1_700_000_000_000;
        assert_eq!(throttle.allow_at(start), Some(0));
        for i in 1..1_000 {
            assert_eq!(throttle.allow_at(start + i), None);
        }
        assert_eq!(
            throttle.allow_at(start + LOG_THROTTLE_INTERVAL_MS),
            Some(999)
        );
        assert_eq!(
            throttle.allow_at(start + LOG_THROTTLE_INTERVAL_MS + 1),
            None
        );
    }
}
