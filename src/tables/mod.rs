//! Broker control-plane tables, as pure synchronous modules the shard runtime and request
//! processors drive: topic configs ([`topics`]), subscription groups ([`groups`]), live
//! clients and their subscriptions ([`clients`]), orderly-consumption locks ([`locks`]),
//! consumer offsets ([`offsets`]) and the atomic metadata-file writer they persist through
//! ([`persist`]). Time always comes in as an argument; nothing here reads a clock, opens a
//! socket or spawns a task.

pub mod clients;
pub mod groups;
pub mod journal;
pub mod locks;
pub mod offsets;
pub mod persist;
pub mod replicated;
pub mod topics;
