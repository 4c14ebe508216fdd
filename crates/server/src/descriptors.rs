//! The process's file descriptor budget: raised at start, and shared out so that client
//! connections can never take the descriptors the store needs.
//!
//! Every connection, segment file and directory handle is a descriptor. Many systems start a
//! process with a soft limit of 1,024 and a far higher hard limit; a server that keeps the soft
//! one runs out under a few hundred idle clients. So the serve loop raises the soft limit to
//! the hard one, then caps `limits.http_connections_max` below it by a reserve, so that
//! clients alone cannot exhaust it (a store that cannot open a segment fails every write).

use std::io;

/// Descriptors kept from client connections at the least: the queues' WALs, topic logs and
/// metadata hold a few each, plus the listener, logging and a margin for segment rotation.
pub const DESCRIPTORS_RESERVED_MIN: u64 = 256;

/// The least connections the cap leaves, however small the limit: a server that accepts no
/// one cannot even answer its health checks.
pub const CONNECTIONS_MAX_FLOOR: usize = 16;

/// Linux refuses a soft limit above `fs.nr_open` (1,048,576 by default) even when the hard limit
/// is unlimited; no broker needs more.
const DESCRIPTORS_TARGET_MAX: u64 = 1 << 20;

/// The descriptor limit after [`raise_descriptor_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// What the process may open now.
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before it was raised; `None` when it already was as high as allowed.
    pub raised_from: Option<u64>,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (capped at [`DESCRIPTORS_TARGET_MAX`]).
pub fn raise_descriptor_limit() -> io::Result<DescriptorLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (soft, hard): (u64, u64) = (limit.rlim_cur, limit.rlim_max);
    let target = hard.min(DESCRIPTORS_TARGET_MAX);
    if soft >= target {
        return Ok(DescriptorLimit {
            soft,
            hard,
            raised_from: None,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(DescriptorLimit {
        soft: target,
        hard,
        raised_from: Some(soft),
    })
}

/// The connection cap that leaves descriptors for the server's own work: `configured`, or
/// the soft limit less a reserve (a quarter of it, and at least [`DESCRIPTORS_RESERVED_MIN`])
/// when that is lower.
pub fn connections_max_within(configured: usize, soft: u64) -> usize {
    let reserve = (soft / 4).max(DESCRIPTORS_RESERVED_MIN);
    let available = soft.saturating_sub(reserve);
    let available = usize::try_from(available).unwrap_or(usize::MAX);
    configured.min(available.max(CONNECTIONS_MAX_FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connections_max_within(10_000, 1_024), 768);
        assert_eq!(connections_max_within(500, 1_024), 500);
        assert_eq!(connections_max_within(10_000, 65_536), 10_000);
        assert_eq!(connections_max_within(60_000, 65_536), 49_152);
        assert_eq!(connections_max_within(10_000, 300), 44);
        assert_eq!(connections_max_within(10_000, 200), CONNECTIONS_MAX_FLOOR);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_descriptor_limit().expect("getrlimit");
        assert_eq!(limit.soft, limit.hard.min(DESCRIPTORS_TARGET_MAX));
        let again = raise_descriptor_limit().expect("getrlimit");
        assert_eq!(again.raised_from, None, "already as high as allowed");
        assert_eq!(again.soft, limit.soft);
    }
}
