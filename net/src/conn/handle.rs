//! State one connection shares between its read loop, its writer and everyone holding a
//! [`ConnHandle`]: the write queue, the map of requests awaiting responses (keyed by opaque),
//! the opaque counter and what the peer last told us about itself.
//! Lives on the core that owns the connection (`Rc`, `!Send`). Must never do I/O itself,
//! and never let the pending map or the write queue grow past their named limits.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::codec::codes::{LanguageCode, SerializeType};
use crate::codec::command::{RemotingCommand, FLAG_ONEWAY, FLAG_RESPONSE};

use super::budget::ShedRecord;
use super::config::ConnConfig;
use super::error::ClientError;
use super::local::{oneshot, LocalQueue, OneshotSender, PushError};

/// What a waiter for a response receives.
type ResponseResult = Result<RemotingCommand, ClientError>;

/// Source of connection ids, unique in the process.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Which header encoding requests sent from this side use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestEncoding {
    /// Always this one (a client, configured).
    Fixed(SerializeType),
    /// Whatever the peer last used, JSON before it sent anything (the broker talking back to
    /// a client, PROTOCOL.md §1.7).
    FollowPeer,
}

/// Traffic counters of one connection, for metrics and to check that writes coalesce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Read syscalls that returned data.
    pub read_calls: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Frames decoded (requests and responses).
    pub frames_read: u64,
    /// Write syscall batches (one `write_all` each).
    pub write_calls: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Frames written.
    pub frames_written: u64,
}

/// The connection's shared state. See the module doc.
pub(crate) struct ConnShared {
    id: u64,
    peer_addr: SocketAddr,
    pub(crate) outbound: LocalQueue<RemotingCommand>,
    write_queue_capacity: usize,
    pending: RefCell<HashMap<i32, OneshotSender<ResponseResult>>>,
    pending_max: usize,
    next_opaque: Cell<i32>,
    request_encoding: RequestEncoding,
    last_serialize_type: Cell<Option<SerializeType>>,
    last_language: Cell<Option<LanguageCode>>,
    last_version: Cell<Option<i32>>,
    last_activity: Cell<Instant>,
    stats: Cell<ConnStats>,
    /// Bytes of incomplete frames, as last charged to the serve loop's budget.
    partial_bytes: Cell<usize>,
    /// Set when the budget shed this connection.
    shed: Cell<Option<ShedRecord>>,
    close_reason: RefCell<Option<String>>,
    close_waker: RefCell<Option<Waker>>,
}

impl ConnShared {
    pub(crate) fn new(
        peer_addr: SocketAddr,
        config: &ConnConfig,
        request_encoding: RequestEncoding,
    ) -> Self {
        config.assert_valid();
        Self {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            peer_addr,
            outbound: LocalQueue::new(config.write_queue_capacity),
            write_queue_capacity: config.write_queue_capacity,
            pending: RefCell::new(HashMap::new()),
            pending_max: config.pending_requests_max,
            next_opaque: Cell::new(0),
            request_encoding,
            last_serialize_type: Cell::new(None),
            last_language: Cell::new(None),
            last_version: Cell::new(None),
            last_activity: Cell::new(Instant::now()),
            stats: Cell::new(ConnStats::default()),
            partial_bytes: Cell::new(0),
            shed: Cell::new(None),
            close_reason: RefCell::new(None),
            close_waker: RefCell::new(None),
        }
    }

    pub(crate) fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Frames decoded so far.
    pub(crate) fn frames_read(&self) -> u64 {
        self.stats.get().frames_read
    }

    /// Bytes of incomplete frames charged to the budget (see `budget.rs`).
    pub(crate) fn partial_bytes(&self) -> usize {
        self.partial_bytes.get()
    }

    /// Only the budget sets this, keeping its total equal to the sum over its members.
    pub(crate) fn set_partial_bytes(&self, bytes: usize) {
        self.partial_bytes.set(bytes);
    }

    /// Why the budget shed this connection, if it did.
    pub(crate) fn shed_record(&self) -> Option<ShedRecord> {
        self.shed.get()
    }

    /// Closes the connection because its serve loop held too many bytes of incomplete frames
    /// and this connection held the most; its read loop reports `record`.
    pub(crate) fn shed(&self, record: ShedRecord) {
        if self.shed.get().is_none() && !self.is_closed() {
            self.shed.set(Some(record));
        }
        self.close("shed: too many bytes of incomplete frames");
    }

    /// Records one read of `bytes` bytes (also resets the idle clock).
    pub(crate) fn record_read(&self, bytes: usize) {
        self.last_activity.set(Instant::now());
        let mut stats = self.stats.get();
        stats.read_calls += 1;
        stats.bytes_read += bytes as u64;
        self.stats.set(stats);
    }

    /// Records one decoded frame.
    pub(crate) fn record_frame_read(&self) {
        let mut stats = self.stats.get();
        stats.frames_read += 1;
        self.stats.set(stats);
    }

    /// Records one write of `frames` frames in `bytes` bytes (also resets the idle clock).
    pub(crate) fn record_write(&self, frames: u64, bytes: usize) {
        self.last_activity.set(Instant::now());
        let mut stats = self.stats.get();
        stats.write_calls += 1;
        stats.frames_written += frames;
        stats.bytes_written += bytes as u64;
        self.stats.set(stats);
    }

    pub(crate) fn last_activity(&self) -> Instant {
        self.last_activity.get()
    }

    /// Remembers how the peer encodes and who it is, from a request it sent.
    pub(crate) fn note_request(&self, request: &RemotingCommand) {
        self.last_serialize_type.set(Some(request.serialize_type));
        self.last_language.set(Some(request.language));
        self.last_version.set(Some(request.version));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.close_reason.borrow().is_some()
    }

    /// Ready once the connection is closed; the read loop polls this to stop.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_closed() {
            return Poll::Ready(());
        }
        *self.close_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Closes the connection: fails every pending request with `reason`, drops queued
    /// commands and stops the read loop and the writer. Idempotent: the first reason wins.
    pub(crate) fn close(&self, reason: &str) {
        {
            let mut current = self.close_reason.borrow_mut();
            if current.is_some() {
                return;
            }
            *current = Some(reason.to_owned());
        }
        self.outbound.close();
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for (_, waiter) in pending {
            waiter.send(Err(ClientError::ConnectionClosed {
                reason: reason.to_owned(),
            }));
        }
        let waker = self.close_waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
        assert!(self.pending.borrow().is_empty());
    }

    fn closed_error(&self) -> ClientError {
        ClientError::ConnectionClosed {
            reason: self
                .close_reason
                .borrow()
                .clone()
                .unwrap_or_else(|| "write queue closed".to_owned()),
        }
    }

    /// Hands a response to the request waiting for it. A response nobody waits for (the
    /// request timed out) is dropped.
    pub(crate) fn complete_pending(&self, response: RemotingCommand) {
        assert!(response.is_response());
        let waiter = self.pending.borrow_mut().remove(&response.opaque);
        if let Some(waiter) = waiter {
            waiter.send(Ok(response));
        } else {
            tracing::debug!(
                peer = %self.peer_addr,
                opaque = response.opaque,
                code = response.code,
                "response for no pending request (timed out or unknown), dropped"
            );
        }
    }

    /// Fails the request with `opaque`, if one waits (the writer could not encode it).
    pub(crate) fn fail_pending(&self, opaque: i32, error: ClientError) {
        let waiter = self.pending.borrow_mut().remove(&opaque);
        if let Some(waiter) = waiter {
            waiter.send(Err(error));
        }
    }

    /// Picks an opaque no pending request uses.
    fn allocate_opaque(&self) -> i32 {
        let pending = self.pending.borrow();
        assert!(pending.len() < self.pending_max);
        loop {
            let opaque = self.next_opaque.get();
            self.next_opaque.set(opaque.wrapping_add(1));
            if !pending.contains_key(&opaque) {
                return opaque;
            }
        }
    }

    /// The header encoding for a request this side starts.
    fn request_serialize_type(&self) -> SerializeType {
        match self.request_encoding {
            RequestEncoding::Fixed(serialize_type) => serialize_type,
            RequestEncoding::FollowPeer => self.last_serialize_type.get().unwrap_or_default(),
        }
    }

    /// Turns `command` into a request of ours: fresh opaque, flags, encoding.
    fn prepare_request(&self, command: &mut RemotingCommand, oneway: bool) {
        command.opaque = self.allocate_opaque();
        command.flag &= !(FLAG_RESPONSE | FLAG_ONEWAY);
        if oneway {
            command.flag |= FLAG_ONEWAY;
        }
        command.serialize_type = self.request_serialize_type();
    }
}

/// Removes a pending entry when the waiting request gives up (timeout or cancellation).
struct PendingGuard<'a> {
    shared: &'a ConnShared,
    opaque: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        // Already gone when the response (or the close) arrived first.
        drop(self.shared.pending.borrow_mut().remove(&self.opaque));
    }
}

/// What [`ConnHandle::try_queue`] did with a command.
#[derive(Debug)]
pub enum SendAttempt {
    /// In the write queue.
    Queued,
    /// The write queue is full: the command comes back.
    Full(RemotingCommand),
    /// The connection is closed: the command was dropped.
    Closed,
}

/// A cheap, cloneable reference to one live connection: send commands on it, send requests
/// to the peer and await their responses, or close it. Held by handlers (e.g. the broker's
/// consumer table, to send `NOTIFY_CONSUMER_IDS_CHANGED`) and by [`super::RemotingClient`].
/// Only usable on the thread that owns the connection.
#[derive(Clone)]
pub struct ConnHandle {
    pub(crate) shared: Rc<ConnShared>,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .field("peer_addr", &self.shared.peer_addr)
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

impl ConnHandle {
    /// Process-unique id of this connection.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer_addr
    }

    /// Whether the connection has ended; every send fails from then on.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Closes the connection: pending requests fail, queued commands are dropped.
    pub fn close(&self) {
        self.shared.close("closed locally");
    }

    /// Header encoding of the peer's last request, JSON before its first one.
    #[must_use]
    pub fn last_serialize_type(&self) -> SerializeType {
        self.shared.last_serialize_type.get().unwrap_or_default()
    }

    /// Language of the peer's last request.
    #[must_use]
    pub fn language(&self) -> Option<LanguageCode> {
        self.shared.last_language.get()
    }

    /// `MQVersion` ordinal of the peer's last request.
    #[must_use]
    pub fn version(&self) -> Option<i32> {
        self.shared.last_version.get()
    }

    /// Requests awaiting a response on this connection.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.shared.pending.borrow().len()
    }

    /// Traffic counters so far.
    #[must_use]
    pub fn stats(&self) -> ConnStats {
        self.shared.stats.get()
    }

    /// Commands queued for the writer.
    #[must_use]
    pub fn write_queue_len(&self) -> usize {
        self.shared.outbound.len()
    }

    /// Queues `command` exactly as given (e.g. a response a handler completes later; build
    /// it with `RemotingCommand::response_to` so opaque and encoding match the request).
    /// Waits while the write queue is full.
    ///
    /// # Errors
    /// [`ClientError::ConnectionClosed`] if the connection is closed.
    pub async fn send(&self, command: RemotingCommand) -> Result<(), ClientError> {
        self.shared
            .outbound
            .push(command)
            .await
            .map_err(|_| self.shared.closed_error())
    }

    /// Like [`Self::send`] but fails instead of waiting.
    ///
    /// # Errors
    /// [`ClientError::WriteQueueFull`] or [`ClientError::ConnectionClosed`].
    pub fn try_send(&self, command: RemotingCommand) -> Result<(), ClientError> {
        match self.try_queue(command) {
            SendAttempt::Queued => Ok(()),
            SendAttempt::Full(_) => Err(ClientError::WriteQueueFull {
                capacity: self.shared.write_queue_capacity,
            }),
            SendAttempt::Closed => Err(self.shared.closed_error()),
        }
    }

    /// Like [`Self::try_send`], for a caller that will wait for room elsewhere: a command the
    /// full write queue cannot take comes back.
    pub fn try_queue(&self, command: RemotingCommand) -> SendAttempt {
        match self.shared.outbound.try_push(command) {
            Ok(()) => SendAttempt::Queued,
            Err(PushError::Full(command)) => SendAttempt::Full(command),
            Err(PushError::Closed(_)) => SendAttempt::Closed,
        }
    }

    /// Sends `request` as a oneway request (no response expected), with a fresh opaque and
    /// this connection's request encoding. Returns once it is queued.
    ///
    /// # Errors
    /// [`ClientError::ConnectionClosed`] if the connection is closed.
    pub async fn send_oneway(&self, mut request: RemotingCommand) -> Result<(), ClientError> {
        self.shared.prepare_request(&mut request, true);
        self.send(request).await
    }

    /// Like [`Self::send_oneway`] but fails instead of waiting for room in the write queue;
    /// for broadcasts (`NOTIFY_CONSUMER_IDS_CHANGED`) that must not stall the caller.
    ///
    /// # Errors
    /// [`ClientError::WriteQueueFull`] or [`ClientError::ConnectionClosed`].
    pub fn try_send_oneway(&self, mut request: RemotingCommand) -> Result<(), ClientError> {
        self.shared.prepare_request(&mut request, true);
        self.try_send(request)
    }

    /// Sends `request` to the peer with a fresh opaque and awaits its response.
    /// `timeout` covers waiting for room in the write queue and for the response; on timeout
    /// the pending entry is removed, so a late response is dropped.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::PendingFull`],
    /// [`ClientError::ConnectionClosed`] (promptly, when the connection dies), or
    /// [`ClientError::Encode`].
    ///
    /// # Panics
    /// If the opaque counter hands out an opaque still pending (it skips those; a bug).
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let shared = &*self.shared;
        if shared.is_closed() {
            return Err(shared.closed_error());
        }
        if shared.pending.borrow().len() >= shared.pending_max {
            return Err(ClientError::PendingFull {
                max: shared.pending_max,
            });
        }
        shared.prepare_request(&mut request, false);
        let opaque = request.opaque;
        let (sender, receiver) = oneshot();
        let previous = shared.pending.borrow_mut().insert(opaque, sender);
        assert!(previous.is_none(), "opaque {opaque} allocated twice");
        let _guard = PendingGuard { shared, opaque };
        let exchange = async {
            shared
                .outbound
                .push(request)
                .await
                .map_err(|_| shared.closed_error())?;
            receiver.await.unwrap_or_else(|| Err(shared.closed_error()))
        };
        match compio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(ClientError::Timeout { opaque, timeout }),
        }
    }
}

/// What a [`super::Handler`] learns about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnContext {
    handle: ConnHandle,
}

impl ConnContext {
    pub(crate) fn new(handle: ConnHandle) -> Self {
        Self { handle }
    }

    /// The peer's address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.peer_addr()
    }

    /// The connection, for replying later or for server-initiated requests. Clone it to keep
    /// it beyond the request.
    #[must_use]
    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }

    /// Header encoding of the peer's last request.
    #[must_use]
    pub fn last_serialize_type(&self) -> SerializeType {
        self.handle.last_serialize_type()
    }

    /// Language of the peer's last request.
    #[must_use]
    pub fn language(&self) -> Option<LanguageCode> {
        self.handle.language()
    }

    /// `MQVersion` ordinal of the peer's last request.
    #[must_use]
    pub fn version(&self) -> Option<i32> {
        self.handle.version()
    }
}
