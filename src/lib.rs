//! `rmq`: the RocketMQ-compatible NameServer and broker.
//!
//! Map: [`config`] (broker.conf keys, typed and validated once), [`runtime`] (one pinned compio
//! runtime per core, SO_REUSEPORT listeners, placement of (topic, queueId) on shards),
//! [`namesrv`] (route tables, KV config, request processor), [`broker`] (control-plane state:
//! topics, groups, clients, locks, offsets), [`server`] (the broker's shards, dispatch and
//! processors), [`admin`] (the admin CLI's operations).
//! This crate is the only one that spawns executors; the protocol (`rmq-net`) and the disk
//! (`rmq-storage`) know nothing of shards.

pub mod admin;
pub mod broker;
pub mod config;
pub mod namesrv;
pub mod runtime;
pub mod server;
