//! Connection layer on compio (feature `runtime`): moves `RemotingCommand`s over TCP, one
//! connection per task on the core that accepted or opened it.
//!
//! Map: [`connection`] (framed read loop + coalescing writer, [`Handler`]), [`handle`]
//! ([`ConnHandle`]: send, server-initiated requests, close; [`ConnContext`]), [`client`]
//! ([`RemotingClient`]), [`listener`] ([`serve`]: accept loop with a connection cap),
//! [`config`] (every limit, named once), [`error`], `budget` (bytes of incomplete frames
//! per serve loop, shedding past the limit), `read_buffer` (read buffer sizing),
//! `frame_clock` (the frame completion timeout's clock), `local` (single-thread oneshot
//! and bounded queue) and `quiet_set` (a set of futures that does not wake its task for
//! nothing).
//!
//! Must never interpret a request (that is the dispatcher's job), answer a oneway request,
//! move a connection to another core, or let any queue or map grow past its named limit.

mod budget;
pub mod client;
pub mod config;
pub mod connection;
pub mod error;
mod frame_clock;
pub mod handle;
pub mod listener;
mod local;
mod quiet_set;
mod read_buffer;

pub use client::{RemotingClient, RequestCallback};
pub use config::{ClientConfig, ConnConfig, ServeConfig};
pub use connection::{serve_connection, Connection, Handler};
pub use error::{ClientError, ConnError};
pub use handle::{ConnContext, ConnHandle, ConnStats, SendAttempt};
pub use listener::serve;
