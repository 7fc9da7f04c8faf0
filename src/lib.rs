//! `rmq`: the RocketMQ-compatible NameServer and broker.
//!
//! Map: [`config`] (broker.conf keys, typed and validated once), [`runtime`] (one pinned compio
//! runtime per core, SO_REUSEPORT listeners, placement of (topic, queueId) on shards),
//! [`namesrv`] (route tables, KV config, request processor).
//! This crate is the only one that spawns executors; the protocol (`rmq-net`) and the disk
//! (`rmq-storage`) know nothing of shards.

pub mod config;
pub mod namesrv;
pub mod runtime;
