//! Per-connection limits and timeouts, each a named default with the reason for its value.
//! Owns no state; read once when a connection starts. Must never be consulted per byte.

use std::time::Duration;

use crate::codec::codes::SerializeType;
use crate::codec::limits::FrameLimits;

/// Requests of one connection being handled at once. When reached, the connection stops
/// reading its socket until one completes, so a pipelining client is slowed by TCP flow
/// control instead of growing the broker's memory. Java has no per-connection cap (it bounds
/// its thread-pool queues); 1024 is far above what one client pipelines in practice.
pub const INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT: usize = 1024;

/// Commands queued for one connection's writer. Handlers (and server-initiated sends) wait
/// for room when it is full; `try_send` fails instead. Equal to the in-flight cap, so replies
/// to in-flight requests never wait on a healthy connection.
pub const WRITE_QUEUE_CAPACITY_DEFAULT: usize = INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT;

/// Requests this side sent and awaits answers for, per connection. A new request fails with
/// `PendingFull` when reached. Java clients allow 65535 concurrent async requests
/// (`clientAsyncSemaphoreValue`).
pub const PENDING_REQUESTS_MAX_DEFAULT: usize = 65_536;

/// A connection with no bytes read or written for this long is closed. Java servers and
/// clients both use 120 s (`serverChannelMaxIdleTimeSeconds`); clients heartbeat every 30 s.
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);

/// Java clients give up connecting after 3 s (`connectTimeoutMillis`).
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);

/// Bytes reserved in the read buffer before each read: enough for a few hundred small
/// pipelined requests per syscall. Larger frames grow the buffer to their exact size.
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// The writer stops draining its queue into one buffer once it holds this many bytes, so one
/// syscall stays bounded and the queue frees room in steps.
pub const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// A write buffer that grew past this (a large body) is replaced after the write instead of
/// being kept for the connection's lifetime.
pub const WRITE_BUFFER_RETAIN_MAX: usize = 1024 * 1024;

/// Live connections one [`crate::conn::serve`] loop accepts. When reached it stops
/// accepting until one closes (the kernel backlog then applies back-pressure).
pub const CONNECTIONS_MAX_DEFAULT: usize = 16 * 1024;

const _: () = assert!(WRITE_QUEUE_CAPACITY_DEFAULT >= INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT);
const _: () = assert!(READ_BUFFER_SIZE <= WRITE_BATCH_BYTES_MAX);
const _: () = assert!(WRITE_BATCH_BYTES_MAX <= WRITE_BUFFER_RETAIN_MAX);

/// Limits of one connection, server or client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnConfig {
    /// Frame and header size limits applied to every frame read.
    pub frame_limits: FrameLimits,
    /// See [`INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT`].
    pub inflight_requests_per_connection_max: usize,
    /// See [`WRITE_QUEUE_CAPACITY_DEFAULT`].
    pub write_queue_capacity: usize,
    /// See [`PENDING_REQUESTS_MAX_DEFAULT`].
    pub pending_requests_max: usize,
    /// See [`IDLE_TIMEOUT_DEFAULT`]; `None` never closes an idle connection.
    pub idle_timeout: Option<Duration>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        Self {
            frame_limits: FrameLimits::default(),
            inflight_requests_per_connection_max: INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            write_queue_capacity: WRITE_QUEUE_CAPACITY_DEFAULT,
            pending_requests_max: PENDING_REQUESTS_MAX_DEFAULT,
            idle_timeout: Some(IDLE_TIMEOUT_DEFAULT),
        }
    }
}

impl ConnConfig {
    /// Checks the relations the connection relies on.
    ///
    /// # Panics
    /// If a limit is zero: a configuration bug that would make every connection useless.
    pub fn assert_valid(&self) {
        assert!(
            self.inflight_requests_per_connection_max > 0,
            "in-flight cap is zero"
        );
        assert!(
            self.write_queue_capacity > 0,
            "write queue capacity is zero"
        );
        assert!(self.pending_requests_max > 0, "pending-request cap is zero");
        assert!(self.frame_limits.header_size_max < self.frame_limits.frame_size_max);
        if let Some(idle) = self.idle_timeout {
            assert!(!idle.is_zero(), "idle timeout is zero");
        }
    }
}

/// Settings of a [`crate::conn::RemotingClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Limits of the client's connection.
    pub conn: ConnConfig,
    /// Header encoding of every request this client sends (JSON is what every client
    /// defaults to; ROCKETMQ binary is smaller and faster to parse).
    pub serialize_type: SerializeType,
    /// See [`CONNECT_TIMEOUT_DEFAULT`].
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            conn: ConnConfig::default(),
            serialize_type: SerializeType::Json,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
        }
    }
}

/// Settings of a [`crate::conn::serve`] accept loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Limits of each accepted connection.
    pub conn: ConnConfig,
    /// See [`CONNECTIONS_MAX_DEFAULT`].
    pub connections_max: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            conn: ConnConfig::default(),
            connections_max: CONNECTIONS_MAX_DEFAULT,
        }
    }
}
