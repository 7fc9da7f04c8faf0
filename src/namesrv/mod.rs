//! The NameServer (PROTOCOL.md §4.10): route tables ([`route_table`]), KV config ([`kv`]), the
//! request processor ([`processor`]) and the serving loop ([`server`]). Runs on its own thread
//! with its own compio runtime; NameServers never talk to each other.
//! Must never: touch broker or storage state.

pub mod kv;
pub mod processor;
pub mod route_table;
pub mod server;
