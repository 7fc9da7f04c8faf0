//! The process's file-descriptor budget: raises the soft `RLIMIT_NOFILE` to the hard limit
//! (as RocketMQ's start scripts ask operators to), reserves descriptors for storage (CommitLog
//! segments, consume-queue and index files, config files, io_uring) and splits the rest among
//! the accept loops as their connection caps. So a connection flood hits the connection cap,
//! never EMFILE inside the store.
//!
//! Must never: give connections descriptors storage needs, or be computed per connection
//! (once at start).

use crate::limits::{CONNECTIONS_PER_LISTENER_MAX, FD_RESERVED_BASE, FD_RESERVED_PER_SHARD};

/// What [`budget`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE` after raising it.
    pub limit: u64,
    /// Descriptors kept for storage and everything that is not a client connection.
    pub reserved: u64,
    /// Connection cap of each accept loop (every broker shard, and an in-process NameServer).
    pub connections_per_listener: usize,
}

/// Raises the soft open-files limit to the hard one (logged when it changes) and computes the
/// budget for `shards` broker shards and `listeners` accept loops in this process.
#[must_use]
pub fn budget(shards: usize, listeners: usize) -> FdBudget {
    let limit = raise_soft_limit();
    split(limit, shards, listeners)
}

/// The arithmetic of [`budget`] for an open-files limit of `limit`: the reserve is
/// [`FD_RESERVED_BASE`] plus [`FD_RESERVED_PER_SHARD`] per shard, but never more than half
/// the limit; the rest is shared by the accept loops, each capped at
/// [`CONNECTIONS_PER_LISTENER_MAX`] and given at least one connection.
#[must_use]
pub fn split(limit: u64, shards: usize, listeners: usize) -> FdBudget {
    assert!(listeners > 0, "no accept loop");
    let wanted = FD_RESERVED_BASE + FD_RESERVED_PER_SHARD * shards as u64;
    let reserved = wanted.min(limit / 2);
    let per_listener = (limit - reserved) / listeners as u64;
    let connections_per_listener = usize::try_from(per_listener)
        .unwrap_or(usize::MAX)
        .clamp(1, CONNECTIONS_PER_LISTENER_MAX);
    FdBudget {
        limit,
        reserved,
        connections_per_listener,
    }
}

fn raise_soft_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the local struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let err = std::io::Error::last_os_error();
        tracing::warn!(%err, "cannot read RLIMIT_NOFILE; assuming 1024");
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the local struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "raised the open-files soft limit to the hard limit"
            );
            limit = raised;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keeps_its_reserve_and_connections_share_the_rest() {
        let roomy = split(1 << 20, 2, 3);
        assert_eq!(roomy.reserved, FD_RESERVED_BASE + 2 * FD_RESERVED_PER_SHARD);
        assert_eq!(roomy.connections_per_listener, CONNECTIONS_PER_LISTENER_MAX);

        // The usual default of 1024: half for storage, the rest shared.
        let tight = split(1024, 2, 3);
        assert_eq!(tight.reserved, 512);
        assert_eq!(tight.connections_per_listener, 170);
        assert!(
            tight.reserved + 3 * tight.connections_per_listener as u64 <= 1024,
            "connections never eat the reserve"
        );

        let medium = split(20_000, 2, 2);
        assert_eq!(
            medium.connections_per_listener as u64,
            (20_000 - medium.reserved) / 2
        );
        assert_eq!(split(3, 1, 8).connections_per_listener, 1);
    }
}
