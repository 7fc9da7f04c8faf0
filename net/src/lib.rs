//! `rmq-net`: the RocketMQ remoting protocol.
//!
//! Owns every byte a RocketMQ client sees. Two halves:
//! - [`codec`]: sans-io. Turns bytes into values and values into bytes: frames, both header
//!   encodings (JSON and ROCKETMQ binary), request/response codes, typed custom headers,
//!   JSON bodies and the message formats (properties, stored-message records, batch bodies,
//!   offset msgIds). It never reads a socket, sleeps, logs or spawns, and builds with
//!   `--no-default-features`, so proptest and cargo-fuzz can drive it directly.
//! - [`ha`]: sans-io too. The master/slave replication protocol between our own brokers (no
//!   Java peer): framing with CRC-32C, handshake, data and acks.
//! - `conn` (feature `runtime`): framed connections and the `RemotingClient` on compio.
//!   It must never interpret a request: it moves `RemotingCommand`s.
//! - `poll_loop` (feature `runtime`): a thread's event loop with an optional bounded busy-poll,
//!   shared by the broker's shards and the benchmark harness.
//!
//! Must never: panic on input bytes, allocate beyond the limits in [`codec::limits`] and
//! [`ha::limits`], or depend on the broker or the storage crate.

pub mod codec;
pub mod ha;

#[cfg(feature = "runtime")]
pub mod conn;

#[cfg(feature = "runtime")]
pub mod poll_loop;

pub use codec::command::{ExtFields, RemotingCommand};
pub use codec::error::CodecError;
