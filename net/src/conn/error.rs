//! Errors of the connection layer: [`ConnError`] says why a connection ended, [`ClientError`]
//! why one request sent over a connection (by a client, or by the broker to a client) failed.
//! Must never be turned into `RocketMQ` response codes here; the dispatcher does that.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::codec::error::CodecError;

/// Why a connection stopped. A clean close (EOF between frames, local close) is `Ok(())`,
/// not one of these.
#[derive(Debug, Error)]
pub enum ConnError {
    /// The socket could not be set up (peer address, socket options).
    #[error("cannot set up connection: {0}")]
    Setup(#[source] std::io::Error),
    /// Reading the socket failed.
    #[error("read from {peer} failed: {source}")]
    Read {
        peer: SocketAddr,
        source: std::io::Error,
    },
    /// Writing the socket failed.
    #[error("write to {peer} failed: {source}")]
    Write {
        peer: SocketAddr,
        source: std::io::Error,
    },
    /// The peer sent a frame that breaks the protocol or the limits; the stream position can
    /// no longer be trusted, so the connection is closed.
    #[error("malformed frame from {peer}: {source}")]
    Malformed {
        peer: SocketAddr,
        source: CodecError,
    },
    /// The peer closed its side in the middle of a frame.
    #[error("{peer} closed the connection mid-frame with {buffered} bytes buffered")]
    EofMidFrame { peer: SocketAddr, buffered: usize },
    /// No bytes moved in either direction for the configured idle timeout.
    #[error("{peer} idle for {idle:?}, closing")]
    Idle { peer: SocketAddr, idle: Duration },
    /// A frame whose first bytes arrived did not complete within the frame completion
    /// timeout (a trickling or stalled peer).
    #[error(
        "{peer} did not complete a frame within {timeout:?}: {buffered} bytes received{}",
        announced_text(*frame_size)
    )]
    FrameTimeout {
        peer: SocketAddr,
        timeout: Duration,
        /// Bytes of the frame received when the deadline passed.
        buffered: usize,
        /// The frame's announced size, once its length word arrived.
        frame_size: Option<usize>,
    },
    /// The serve loop held more bytes of incomplete frames than its limit, and this
    /// connection held the most: it stopped being read and was closed.
    #[error(
        "{peer} shed: it held {buffered} bytes of incomplete frames while its serve loop held \
         {total} (limit {limit})"
    )]
    PartialFramesShed {
        peer: SocketAddr,
        /// Bytes of incomplete frames this connection held.
        buffered: usize,
        /// Bytes of incomplete frames the serve loop held, this connection's included.
        total: usize,
        /// The serve loop's limit.
        limit: usize,
    },
}

fn announced_text(frame_size: Option<usize>) -> String {
    frame_size.map_or_else(String::new, |size| format!(" of {size} announced"))
}

/// Why one request failed. Cloneable so one failure (a dead connection) can be handed to
/// every waiter.
#[derive(Debug, Error, Clone)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: String,
        source: Arc<std::io::Error>,
    },
    /// The TCP connection was not established within the connect timeout.
    #[error("connect to {addr} timed out after {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    /// No response within the caller's timeout; the pending entry was removed and a late
    /// response will be ignored.
    #[error("request {opaque} timed out after {timeout:?}")]
    Timeout { opaque: i32, timeout: Duration },
    /// The connection closed before the response arrived (or before sending).
    #[error("connection closed: {reason}")]
    ConnectionClosed { reason: String },
    /// Too many requests await responses on this connection.
    #[error("too many pending requests (max {max})")]
    PendingFull { max: usize },
    /// The connection's write queue is full (only from non-waiting sends).
    #[error("write queue full (capacity {capacity})")]
    WriteQueueFull { capacity: usize },
    /// The command cannot be encoded.
    #[error("cannot encode request: {0}")]
    Encode(CodecError),
}
