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

/// Room offered to each read of a quiet connection, and what an idle connection holds while
/// it waits for its next request: a heartbeat or a small send fits in one read. Kept small
/// because every connection pays it (10,000 idle clients hold 40 MiB, not 640 MiB).
pub const READ_BUFFER_SIZE_MIN: usize = 4 * 1024;

/// Largest room offered to one read: enough for a few hundred small pipelined requests per
/// syscall. A connection whose reads fill the room gets it doubled up to this; one whose reads
/// come back small gets it halved back to [`READ_BUFFER_SIZE_MIN`].
pub const READ_BUFFER_SIZE_MAX: usize = 64 * 1024;

/// Least room the writer starts a batch with when it holds no buffer (a quiet connection
/// holds none): it starts with its last batch's size within this and
/// [`WRITE_BUFFER_START_MAX`]; encoding grows it as needed, up to about
/// [`WRITE_BATCH_BYTES_MAX`].
pub const WRITE_BUFFER_SIZE_MIN: usize = 4 * 1024;

/// Most room the writer starts a batch with (its last batch's size, at most this): a burst of
/// send replies (~15 KiB for 64) starts in a buffer that holds it, and a connection whose last
/// batch was a large pull reply does not take that much again for a heartbeat's reply.
pub const WRITE_BUFFER_START_MAX: usize = 64 * 1024;

/// The writer stops draining its queue into one buffer once it holds this many bytes, so one
/// syscall stays bounded and the queue frees room in steps.
pub const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;

/// A write buffer that grew past this (a large body) is released after the write. Any buffer
/// is released once the write queue is empty, so only a connection with more to write keeps
/// one. Twice the batch size: a batch ends past the batch size by at most one frame, and a
/// pull reply is at most 256 KiB of records (`PULL_BYTES_MAX`).
pub const WRITE_BUFFER_RETAIN_MAX: usize = 2 * WRITE_BATCH_BYTES_MAX;

/// Longest time one frame may take to arrive once its first bytes did; past it the
/// connection is closed ([`crate::conn::ConnError::FrameTimeout`]). Java has no such limit,
/// so a peer trickling one byte a minute kept its connection (and the buffer of a frame it
/// never finishes) forever: every byte resets the idle timeout. 60 s is 20 times a Java
/// producer's default send timeout (3 s, `sendMsgTimeout`), after which the client has given
/// up on the frame anyway, and lets the largest frame (16 MiB) arrive at 2.2 Mbit/s.
pub const FRAME_COMPLETION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Bytes one [`crate::conn::serve`] loop (one per shard) may hold for frames not yet
/// complete, over all its connections. Past it the connections holding the most stop being
/// read and are closed ([`crate::conn::ConnError::PartialFramesShed`]) until the total is
/// back under; connections sending whole frames are not touched. Counted per serve loop, not
/// per process, so no atomic is shared between cores; the process bound is shards × this.
/// A buffer holds at most twice the bytes it received plus [`READ_BUFFER_SIZE_MAX`] (it grows
/// by doubling), so memory pinned by partial frames stays under about 2 × this per shard.
/// 256 MiB is 16 frames of the largest size (16 MiB) or 64 of the default `maxMessageSize`
/// (4 MiB) arriving at once on one shard: far above a healthy shard's need, while 120
/// connections announcing 15 MiB each (1.8 GiB) can no longer all be buffered.
pub const PARTIAL_FRAME_BYTES_MAX_DEFAULT: usize = 256 * 1024 * 1024;

/// Live connections one [`crate::conn::serve`] loop accepts. When reached it stops
/// accepting until one closes (the kernel backlog then applies back-pressure).
pub const CONNECTIONS_MAX_DEFAULT: usize = 16 * 1024;

const _: () = assert!(WRITE_QUEUE_CAPACITY_DEFAULT >= INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT);
const _: () = assert!(READ_BUFFER_SIZE_MIN >= crate::codec::frame::FRAME_SIZE_MIN);
const _: () = assert!(READ_BUFFER_SIZE_MIN < READ_BUFFER_SIZE_MAX);
const _: () = assert!(READ_BUFFER_SIZE_MAX <= WRITE_BATCH_BYTES_MAX);
const _: () = assert!(
    WRITE_BUFFER_SIZE_MIN <= WRITE_BUFFER_START_MAX
        && WRITE_BUFFER_START_MAX <= WRITE_BATCH_BYTES_MAX
);
const _: () = assert!(WRITE_BUFFER_SIZE_MIN <= WRITE_BATCH_BYTES_MAX);
const _: () = assert!(WRITE_BATCH_BYTES_MAX <= WRITE_BUFFER_RETAIN_MAX);
const _: () = assert!(
    PARTIAL_FRAME_BYTES_MAX_DEFAULT >= crate::codec::limits::FRAME_SIZE_MAX_DEFAULT,
    "one frame of the largest size must fit the budget, or a lone large send is shed"
);

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
    /// See [`FRAME_COMPLETION_TIMEOUT_DEFAULT`]; `None` lets a frame take forever.
    pub frame_completion_timeout: Option<Duration>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        Self {
            frame_limits: FrameLimits::default(),
            inflight_requests_per_connection_max: INFLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            write_queue_capacity: WRITE_QUEUE_CAPACITY_DEFAULT,
            pending_requests_max: PENDING_REQUESTS_MAX_DEFAULT,
            idle_timeout: Some(IDLE_TIMEOUT_DEFAULT),
            frame_completion_timeout: Some(FRAME_COMPLETION_TIMEOUT_DEFAULT),
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
        if let Some(frame) = self.frame_completion_timeout {
            assert!(!frame.is_zero(), "frame completion timeout is zero");
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
    /// See [`PARTIAL_FRAME_BYTES_MAX_DEFAULT`].
    pub partial_frame_bytes_max: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            conn: ConnConfig::default(),
            connections_max: CONNECTIONS_MAX_DEFAULT,
            partial_frame_bytes_max: PARTIAL_FRAME_BYTES_MAX_DEFAULT,
        }
    }
}
