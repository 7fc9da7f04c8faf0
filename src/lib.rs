//! `rmq`: the RocketMQ-compatible NameServer and broker.
//!
//! Map: [`acl`] (plain ACL: `plain_acl.yml`, the per-request check, reload), [`config`] (broker.conf keys, typed and validated once), [`runtime`] (one pinned compio
//! runtime per core, SO_REUSEPORT listeners, placement of (topic, queueId) on shards),
//! [`namesrv`] (route tables, KV config, request processor), [`broker`] (the broker's shards,
//! dispatch and request processors), [`tables`] (the broker's replicated control-plane tables
//! and per-shard offsets: topics, groups, clients, locks, offsets), [`admin`] and [`admin_ops`] (the admin
//! CLI's operations).
//! This crate is the only one that spawns executors; the protocol (`rmq-net`) and the disk
//! (`rmq-storage`) know nothing of shards.

pub mod acl;
pub mod admin;
pub mod admin_ops;
pub mod admin_reset;
pub mod admin_timer;
pub mod broker;
pub mod config;
pub mod failure;
pub mod ha;
pub mod limits;
pub mod namesrv;
pub mod runtime;
pub mod tables;
