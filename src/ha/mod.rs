//! Master/slave replication sessions (RocketMQ HA, issue 13), one TCP connection per shard,
//! speaking `rmq_net::ha` (`docs/replication-protocol.md`; what exists and what is not built
//! yet: `docs/replication.md`).
//!
//! Map: [`master`] ([`serve_slave`]: handshake, divergence search, shipping, acks),
//! [`slave`] ([`follow_master`]: Hello, truncation, applying Data, acks, probe replies;
//! [`FollowProgress`]: the master's end as the slave last heard it),
//! [`progress`] ([`SlaveProgress`]: a slave's acknowledged offsets and the tasks awaiting
//! them), `conn` (framed reads and writes on a `compio` TCP stream).
//!
//! Owns one session per call, on the shard that owns the store; runs on that shard's runtime
//! and never touches another shard's store. Must never: decide the broker's wiring (listening,
//! accepting, reconnect backoff, role changes are the caller's), place bytes the handshake did
//! not agree on, or buffer more than two Data frames per connection (the master reads the
//! next chunk while it writes one; the slave reads the next frame while it appends one).

pub(crate) mod conn;
mod dispatch;
pub mod master;
pub mod progress;
pub mod slave;

use std::time::Duration;

use rmq_net::ha::{HaCodecError, RefuseReason};
use rmq_storage::error::StorageError;
use thiserror::Error;

pub use master::{serve_slave, MasterParams};
pub use progress::{AckLevel, AckWaitError, SlaveProgress};
pub use slave::{follow_master, FollowProgress, SlaveParams};

/// Why a replication session ended (other than by a Truncate welcome, which is `Ok`). Every
/// one means: close the connection; the slave reconnects after a backoff.
#[derive(Debug, Error)]
pub enum HaError {
    /// The socket failed.
    #[error("HA connection I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error("HA frame: {0}")]
    Codec(#[from] HaCodecError),
    /// The master refused the slave (on both sides: the master returns what it sent).
    #[error("refused by the master ({reason:?}): {text}")]
    Refused {
        /// The reason sent in the Welcome.
        reason: RefuseReason,
        /// Its text.
        text: String,
    },
    /// A valid frame that breaks the protocol's rules (wrong side, out of turn, wrong shard,
    /// a Data frame not at the slave's end, an Ack going backwards, too many probes).
    #[error("HA protocol violation: {0}")]
    Protocol(String),
    /// The local store failed or refused replicated bytes.
    #[error("HA storage: {0}")]
    Storage(#[from] StorageError),
    /// The peer closed the connection.
    #[error("HA peer closed the connection")]
    Closed,
    /// Nothing arrived for the silence limit.
    #[error("HA peer silent for {0:?}")]
    Silent(Duration),
}
