//! The lean async send path: what lets one harness core drive a fast broker. Requests are
//! rendered from per-queue templates into a connection's reused output buffer
//! ([`request`], [`template`]), many frames go out per write, and responses are read in bulk
//! with only code, opaque and flag parsed ([`wire`], [`conn`]).
//! The bytes on the wire are exactly those of the general `rmq-net` client (unit tests
//! compare them); only the cost differs. Must never allocate per message in the steady state.

pub mod conn;
pub mod request;
pub mod template;
pub mod wire;
