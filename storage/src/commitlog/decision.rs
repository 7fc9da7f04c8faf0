//! The flusher's decision, pure: given the marks, the clocks, the waiters and whether an
//! fdatasync is in flight, what the flusher does next (write, fdatasync, stream whole blocks,
//! wait, stop). `flush.rs` reads the inputs in one borrow and carries the decision out.
//!
//! Must never: start a second fdatasync while one is in flight, let ASYNC_FLUSH writes wait for
//! an fdatasync (that widens what a process crash loses), or answer a wait of zero while there
//! is nothing to do (the flusher would spin).

use std::time::Duration;

use super::config::{CommitLogConfig, FlushPolicy};
use super::Lifecycle;
use crate::limits::FLUSH_EAGER_DIVISOR;

/// What the flusher does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Write what is pending (if `write`), then fdatasync what is written (if `sync`).
    Flush {
        write: bool,
        sync: bool,
    },
    /// Async: stream whole blocks while they keep coming, no fdatasync.
    Stream,
    Wait(Duration),
    Stop,
}

/// Everything the flush decision looks at, read in one borrow of the state.
#[derive(Debug, Clone, Copy)]
pub(super) struct DecisionInputs {
    pub(super) lifecycle: Lifecycle,
    pub(super) poisoned: bool,
    /// Background tasks must stop (log dropped).
    pub(super) stop: bool,
    /// Appended bytes not written yet.
    pub(super) unwritten: u64,
    /// Appended bytes not covered by a completed fdatasync.
    pub(super) undurable: u64,
    /// Since the last completed fdatasync.
    pub(super) since_sync: Duration,
    /// Since the last completed write.
    pub(super) since_write: Duration,
    /// A caller waits for durability, or asked for a flush.
    pub(super) sync_wanted: bool,
    /// An append waits for room in the ring.
    pub(super) room_wanted: bool,
    /// An fdatasync is running.
    pub(super) sync_in_flight: bool,
}

/// The flush decision, pure: what the flusher does next given `inputs` and the configuration.
///
/// Sync policy: write and fdatasync whatever is pending, at once; bytes appended while an
/// fdatasync runs wait for the next one (group commit). Async policy: write what is pending
/// once the last write is `commit_interval_ms` old, also while an fdatasync runs (so a process
/// crash loses at most that much); stream as soon as a quarter of the pending bound is reached
/// (keeps the device busy without an fdatasync per write); fdatasync every `flush_interval_ms`
/// if at least `flush_least_bytes` are not durable (or every `flush_thorough_interval_ms`
/// regardless). A caller waiting for durability, `request_flush` and close ask for an
/// fdatasync now (after the one in flight, if any).
pub(super) fn decide(inputs: &DecisionInputs, config: &CommitLogConfig) -> Decision {
    if inputs.poisoned {
        return Decision::Stop;
    }
    let interval = Duration::from_millis(config.flush_interval_ms);
    let write = inputs.unwritten > 0;
    match inputs.lifecycle {
        Lifecycle::Abandoning | Lifecycle::Closed => return Decision::Stop,
        Lifecycle::Closing if inputs.undurable == 0 => return Decision::Stop,
        Lifecycle::Closing if inputs.sync_in_flight && write => {
            return Decision::Flush { write, sync: false }
        }
        Lifecycle::Closing if inputs.sync_in_flight => return Decision::Wait(interval),
        Lifecycle::Closing => return Decision::Flush { write, sync: true },
        Lifecycle::Open if inputs.stop => return Decision::Stop,
        Lifecycle::Open => {}
    }
    if inputs.undurable == 0 {
        return Decision::Wait(interval);
    }
    let thorough = Duration::from_millis(config.flush_thorough_interval_ms);
    let since = inputs.since_sync;
    let interval_due = since >= interval
        && (inputs.undurable >= config.flush_least_bytes as u64 || since >= thorough);
    let sync_due = config.flush_policy == FlushPolicy::Sync || inputs.sync_wanted || interval_due;
    if sync_due && !inputs.sync_in_flight {
        return Decision::Flush { write, sync: true };
    }
    if config.flush_policy == FlushPolicy::Sync {
        return Decision::Wait(interval); // the fdatasync in flight ends the wait
    }
    let eager = (config.flush_pending_bytes_max / FLUSH_EAGER_DIVISOR) as u64;
    if inputs.unwritten >= eager {
        return Decision::Stream;
    }
    let commit = Duration::from_millis(config.commit_interval_ms);
    if write && (inputs.since_write >= commit || inputs.room_wanted) {
        return Decision::Flush { write, sync: false };
    }
    let until_sync = if inputs.sync_in_flight {
        interval // its end ends the wait
    } else if since < interval {
        interval - since
    } else {
        thorough.saturating_sub(since).min(interval)
    };
    if write {
        Decision::Wait(until_sync.min(commit.saturating_sub(inputs.since_write)))
    } else {
        Decision::Wait(until_sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(policy: FlushPolicy) -> CommitLogConfig {
        CommitLogConfig {
            flush_policy: policy,
            flush_interval_ms: 500,
            commit_interval_ms: 10,
            flush_least_bytes: 16 * 1024,
            flush_thorough_interval_ms: 10_000,
            flush_pending_bytes_max: 32 << 20,
            ..CommitLogConfig::default()
        }
    }

    /// An open async log with `unwritten` bytes not written, more not durable, the last
    /// fdatasync `since_sync_ms` ago and the last write `since_write_ms` ago.
    fn inputs(unwritten: u64, since_sync_ms: u64, since_write_ms: u64) -> DecisionInputs {
        DecisionInputs {
            lifecycle: Lifecycle::Open,
            poisoned: false,
            stop: false,
            unwritten,
            undurable: unwritten + 64 * 1024,
            since_sync: Duration::from_millis(since_sync_ms),
            since_write: Duration::from_millis(since_write_ms),
            sync_wanted: false,
            room_wanted: false,
            sync_in_flight: false,
        }
    }

    /// Defect 11 of issue 11: the write of appended bytes waited for the fdatasync, so a kill
    /// during one lost commit interval + fdatasync time.
    #[test]
    fn async_writes_on_the_commit_interval_while_an_fdatasync_runs() {
        let async_config = config(FlushPolicy::Async);
        let due = inputs(4096, 600, 11);
        assert_eq!(
            decide(&due, &async_config),
            Decision::Flush {
                write: true,
                sync: true
            }
        );
        let syncing = DecisionInputs {
            sync_in_flight: true,
            ..due
        };
        assert_eq!(
            decide(&syncing, &async_config),
            Decision::Flush {
                write: true,
                sync: false
            },
            "appended bytes are written while the fdatasync runs"
        );
        let waiting = DecisionInputs {
            sync_wanted: true,
            ..syncing
        };
        assert_eq!(
            decide(&waiting, &async_config),
            Decision::Flush {
                write: true,
                sync: false
            },
            "a durability waiter gets the next fdatasync, not a second one in flight"
        );
        let eager = DecisionInputs {
            unwritten: 16 << 20,
            ..syncing
        };
        assert_eq!(decide(&eager, &async_config), Decision::Stream);
    }

    #[test]
    fn a_sync_in_flight_never_makes_the_flusher_spin() {
        let async_config = config(FlushPolicy::Async);
        for (unwritten, since_write_ms) in [(0, 50), (4096, 3)] {
            for since_sync_ms in [0, 499, 500, 20_000] {
                let syncing = DecisionInputs {
                    sync_in_flight: true,
                    ..inputs(unwritten, since_sync_ms, since_write_ms)
                };
                match decide(&syncing, &async_config) {
                    Decision::Wait(duration) => assert!(
                        duration > Duration::ZERO,
                        "{unwritten} unwritten, sync {since_sync_ms} ms ago"
                    ),
                    other => panic!("nothing to do, yet {other:?}"),
                }
            }
        }
        let sync_config = config(FlushPolicy::Sync);
        let syncing = DecisionInputs {
            sync_in_flight: true,
            sync_wanted: true,
            ..inputs(4096, 0, 0)
        };
        assert!(
            matches!(decide(&syncing, &sync_config), Decision::Wait(d) if d > Duration::ZERO),
            "SYNC_FLUSH: bytes appended meanwhile wait for the next group commit"
        );
        let idle = DecisionInputs {
            sync_in_flight: false,
            ..syncing
        };
        assert_eq!(
            decide(&idle, &sync_config),
            Decision::Flush {
                write: true,
                sync: true
            }
        );
    }

    #[test]
    fn closing_writes_and_syncs_everything_one_fdatasync_at_a_time() {
        let async_config = config(FlushPolicy::Async);
        let closing = DecisionInputs {
            lifecycle: Lifecycle::Closing,
            ..inputs(4096, 0, 0)
        };
        assert_eq!(
            decide(&closing, &async_config),
            Decision::Flush {
                write: true,
                sync: true
            }
        );
        let syncing = DecisionInputs {
            sync_in_flight: true,
            ..closing
        };
        assert_eq!(
            decide(&syncing, &async_config),
            Decision::Flush {
                write: true,
                sync: false
            }
        );
        let written = DecisionInputs {
            unwritten: 0,
            ..syncing
        };
        assert!(matches!(decide(&written, &async_config), Decision::Wait(_)));
        let done = DecisionInputs {
            undurable: 0,
            sync_in_flight: false,
            ..written
        };
        assert_eq!(decide(&done, &async_config), Decision::Stop);
        let poisoned = DecisionInputs {
            poisoned: true,
            ..closing
        };
        assert_eq!(decide(&poisoned, &async_config), Decision::Stop);
    }
}
