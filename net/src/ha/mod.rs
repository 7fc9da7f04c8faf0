//! The HA (master/slave replication) protocol between our own brokers, as a sans-io codec:
//! per shard, one TCP connection from the slave's shard to the master's same shard carries a
//! handshake (Hello, Probes, Welcome), then the master's raw CommitLog bytes (Data) one way and
//! the slave's progress (Ack) the other. Java clients never see it. The protocol — framing,
//! handshake, divergence detection, heartbeats, limits — is `docs/replication-protocol.md`.
//!
//! Map: [`frame`] (16-byte header with CRC-32C, [`encode`], [`decode`], [`peek_header`]),
//! [`body`] (the six payloads and their field rules), [`limits`], [`error`].
//!
//! Owns bytes ↔ frames only. Must never: read a socket, sleep, log or decide policy (whether
//! to accept a slave, where to start, when to close): that is the broker's. Must never panic on
//! any input bytes (fuzzed: `net/fuzz/fuzz_targets/decode_ha.rs`).

pub mod body;
pub mod error;
pub mod frame;
pub mod limits;

pub use body::{Ack, Body, Data, EntrySummary, Hello, Probe, ProbeReply, RefuseReason, Welcome};
pub use error::HaCodecError;
pub use frame::{
    decode, decode_whole, encode, encode_data_prefix, peek_header, Frame, FrameType, Header,
    Sender, HA_FRAMING_VERSION, HA_MAGIC,
};

/// The protocol level a slave announces in its Hello. The master refuses levels it does not
/// speak (`RefuseReason::ProtocolVersion`); the framing itself is versioned separately
/// ([`HA_FRAMING_VERSION`]) so a refusal can always be read.
pub const HA_PROTOCOL_VERSION: u16 = 1;
