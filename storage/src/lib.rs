//! `rmq-storage`: everything the broker keeps on disk, for one shard.
//!
//! A [`store::Store`] is owned by exactly one shard (one compio runtime thread) and is never
//! touched from another core. It holds that shard's CommitLog (O_DIRECT writes through
//! io_uring, group commit, sync/async flush), the ConsumeQueues of the (topic, queueId) pairs
//! the shard owns, the key index, checkpoints and recovery.
//!
//! Must never: open a socket, know the remoting protocol (payloads are opaque bytes), use the
//! page cache for CommitLog data, or block the shard's thread on a syscall outside io_uring.
//!
//! Map: [`mod@file`] (positioned aligned I/O + fault injection), [`fifo_lock`] (the fair async lock), [`align`] (aligned buffers),
//! [`commitlog`] (records, segments, append, flush, tail cache, recovery scan),
//! [`atomic_file`] (atomic replacement of a small file), [`offset_wait`] (tasks waiting for a
//! mark to reach their offset, with deadlines), [`checkpoint`] (framed checkpoints
//! and markers), [`consume_queue`], [`index`], [`store`] (the facade:
//! append -> commitlog -> reput into consume queues and index), [`limits`], [`error`].

pub mod align;
pub mod atomic_file;
pub mod checkpoint;
pub mod commitlog;
pub mod consume_queue;
pub mod error;
pub mod fifo_lock;
pub mod file;
pub mod index;
pub mod limits;
pub mod offset_wait;
pub mod store;

/// The hash map of the per-record paths (queues and in-flight offsets keyed by topic):
/// foldhash, seeded per process, instead of std's SipHash, which showed in the append and
/// replication profiles. Its keys are bounded by the queue limits.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
