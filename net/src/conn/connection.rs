//! One framed connection over a compio `TcpStream`, used by servers and by the client alike.
//! Owns the read buffer and the write buffer (mini-redis `connection.rs`): the read loop runs
//! `frame::check` before decoding, hands requests to a [`Handler`] concurrently (a held
//! long-poll never blocks later requests), routes responses to the requests this side sent,
//! and tells a clean EOF from an EOF mid-frame. A frame still arriving is charged to the serve
//! loop's budget and must complete within the frame completion timeout. The writer drains
//! every queued command into one buffer per write syscall, and holds no buffer while the
//! queue is empty. Runs as one task on the core that owns the socket.
//! Must never interpret a request, answer a oneway request, read past the in-flight cap,
//! reserve a frame's announced size before its bytes arrive, or keep a connection whose
//! stream position can no longer be trusted.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use futures_util::future::{Fuse, FusedFuture, FutureExt};

use crate::codec::codes::SerializeType;
use crate::codec::command::RemotingCommand;
use crate::codec::frame;
use crate::codec::limits::FrameLimits;

use super::budget::{PartialFrameBudget, ShedRecord};
use super::config::{
    ConnConfig, PARTIAL_FRAME_BYTES_MAX_DEFAULT, WRITE_BATCH_BYTES_MAX, WRITE_BUFFER_RETAIN_MAX,
    WRITE_BUFFER_SIZE_MIN, WRITE_BUFFER_START_MAX,
};
use super::error::{ClientError, ConnError};
use super::frame_clock::FrameProgress;
use super::handle::{ConnContext, ConnHandle, ConnShared, RequestEncoding};
use super::quiet_set::QuietSet;
use super::read_buffer::{announced_frame_size, ReadSizer};

/// Serves the requests arriving on one connection. Runs on the connection's thread, so it
/// may hold `Rc`s and be `!Send`.
pub trait Handler {
    /// Handles one request and returns its response, or `None` for a oneway request or when
    /// the response will be sent later through `ctx.handle()`. The connection fixes the
    /// response's opaque, flag and serialize type to match the request, and drops any
    /// response to a oneway request.
    fn handle(
        &self,
        ctx: &ConnContext,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>>;

    /// Called once when the connection has ended (after its pending requests failed), so the
    /// owner can drop state keyed by it (registered brokers, client channels). Default: nothing.
    fn on_close(&self, handle: &ConnHandle) {
        let _ = handle;
    }
}

/// An accepted or connected socket, ready to run. Split from [`Self::run`] so the owner can
/// keep the [`ConnHandle`] (to register or close the connection) before serving it.
pub struct Connection {
    stream: TcpStream,
    handle: ConnHandle,
    config: ConnConfig,
    budget: Rc<PartialFrameBudget>,
}

impl Connection {
    /// Wraps a server-side socket. Requests this side sends follow the encoding the peer
    /// last used (PROTOCOL.md §1.7).
    ///
    /// # Errors
    /// [`ConnError::Setup`] if the peer address or `TCP_NODELAY` cannot be read or set.
    ///
    /// # Panics
    /// If `config` has a zero limit ([`ConnConfig::assert_valid`]).
    pub fn accept(stream: TcpStream, config: ConnConfig) -> Result<Self, ConnError> {
        Self::accept_in(stream, config, own_budget())
    }

    /// Like [`Self::accept`], charging incomplete frames to the serve loop's `budget`.
    pub(crate) fn accept_in(
        stream: TcpStream,
        config: ConnConfig,
        budget: Rc<PartialFrameBudget>,
    ) -> Result<Self, ConnError> {
        Self::new(stream, config, RequestEncoding::FollowPeer, budget)
    }

    /// Wraps a client-side socket whose requests always use `serialize_type`.
    pub(crate) fn connect(
        stream: TcpStream,
        config: ConnConfig,
        serialize_type: SerializeType,
    ) -> Result<Self, ConnError> {
        let encoding = RequestEncoding::Fixed(serialize_type);
        Self::new(stream, config, encoding, own_budget())
    }

    fn new(
        stream: TcpStream,
        config: ConnConfig,
        encoding: RequestEncoding,
        budget: Rc<PartialFrameBudget>,
    ) -> Result<Self, ConnError> {
        let peer_addr = stream.peer_addr().map_err(ConnError::Setup)?;
        // Requests and responses are small and latency-bound; the writer coalesces already.
        stream.set_nodelay(true).map_err(ConnError::Setup)?;
        let shared = ConnShared::new(peer_addr, &config, encoding);
        Ok(Self {
            stream,
            handle: ConnHandle {
                shared: Rc::new(shared),
            },
            config,
            budget,
        })
    }

    /// The connection's handle.
    #[must_use]
    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }

    /// Serves the connection until the peer closes it, it fails, it idles out or someone
    /// calls [`ConnHandle::close`]. When the peer closed (EOF), the oneway requests already
    /// read run to completion first. On return every pending request has failed and queued
    /// commands are dropped; dropping the future does the same.
    ///
    /// # Errors
    /// Why the connection ended, unless it ended cleanly (EOF between frames, local close).
    pub async fn run<H: Handler>(self, handler: &H) -> Result<(), ConnError> {
        let Self {
            stream,
            handle,
            config,
            budget,
        } = self;
        let shared = handle.shared.clone();
        let _close_on_drop = CloseOnDrop(&shared);
        let ctx = ConnContext::new(handle);
        let result = {
            let mut reader = pin!(read_loop(&stream, handler, &ctx, &config, &budget));
            let mut writer = pin!(write_loop(&stream, &shared));
            poll_fn(|cx| {
                // The writer is polled right after the reader in this same poll, so responses
                // the reader's requests queue meanwhile need no wake-up of this task: one
                // executor round and one io_uring_enter fewer per request.
                shared.outbound.set_consumer_polled_next(true);
                let read = reader.as_mut().poll(cx);
                shared.outbound.set_consumer_polled_next(false);
                if let Poll::Ready(result) = read {
                    return Poll::Ready(result);
                }
                writer.as_mut().poll(cx)
            })
            .await
        };
        log_end(&shared, &result);
        let reason = match &result {
            Ok(()) => "connection closed".to_owned(),
            Err(error) => error.to_string(),
        };
        shared.close(&reason);
        handler.on_close(ctx.handle());
        result
    }
}

/// Serves one accepted connection with `handler`; see [`Connection::run`].
///
/// # Errors
/// As [`Connection::accept`] and [`Connection::run`].
pub async fn serve_connection<H: Handler>(
    stream: TcpStream,
    handler: Rc<H>,
    config: ConnConfig,
) -> Result<(), ConnError> {
    Connection::accept(stream, config)?.run(&*handler).await
}

/// The budget of a connection outside a serve loop: its own, so only its own frames count.
fn own_budget() -> Rc<PartialFrameBudget> {
    Rc::new(PartialFrameBudget::new(PARTIAL_FRAME_BYTES_MAX_DEFAULT))
}

/// Closes the shared state if the connection future is dropped before it finished.
struct CloseOnDrop<'a>(&'a ConnShared);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close("connection task dropped");
    }
}

fn log_end(shared: &ConnShared, result: &Result<(), ConnError>) {
    let peer = shared.peer_addr();
    match result {
        Ok(()) => tracing::debug!(%peer, "connection closed"),
        Err(
            error @ (ConnError::Malformed { .. }
            | ConnError::EofMidFrame { .. }
            | ConnError::FrameTimeout { .. }
            | ConnError::PartialFramesShed { .. }),
        ) => {
            tracing::warn!(%peer, %error, "closing connection");
        }
        Err(error) => tracing::debug!(%peer, %error, "connection ended"),
    }
}

/// What woke the read loop.
enum ReadEvent {
    Read(BufResult<usize, BytesMut>),
    Served,
    IdleCheck,
    FrameCheck,
    Closed,
}

/// Reads frames, dispatches them, and watches the idle timeout, the frame completion timeout,
/// the budget and local close. Returns `Ok(())` on a clean end.
async fn read_loop<H: Handler>(
    stream: &TcpStream,
    handler: &H,
    ctx: &ConnContext,
    config: &ConnConfig,
    budget: &PartialFrameBudget,
) -> Result<(), ConnError> {
    let shared = &*ctx.handle().shared;
    let peer = shared.peer_addr();
    let inflight_max = config.inflight_requests_per_connection_max;
    let _membership = budget.join(&ctx.handle().shared);
    // Every request being served; each future yields whether its request was oneway.
    let mut inflight = QuietSet::new();
    // Oneway requests among them: when the peer closes, these still run to completion (nobody
    // waits for an answer, so the request itself is all there is: a oneway send or offset
    // commit written just before the client's close must not be dropped). Java's Netty
    // server likewise processes what it read before the channel closed. A count, not a second
    // set: an empty `FuturesUnordered` already allocates a task the size of its future (KiB),
    // which 10,000 connections felt.
    let mut oneways = 0_usize;
    let mut sizer = ReadSizer::default();
    let mut buffer = Some(BytesMut::new());
    let mut progress = FrameProgress::default();
    let mut read = pin!(Fuse::terminated());
    let mut idle = pin!(Fuse::terminated());
    let mut frame_timer = pin!(Fuse::terminated());
    if let Some(timeout) = config.idle_timeout {
        idle.set(compio::time::sleep_until(shared.last_activity() + timeout).fuse());
    }
    loop {
        // The buffer is ours (no read in flight): dispatch what it holds, then read more
        // unless the in-flight cap says to leave the rest in the socket.
        if let Some(buf) = buffer.as_mut() {
            let frames_before = shared.frames_read();
            while inflight.len() < inflight_max {
                let Some(request) = next_request(buf, shared, &config.frame_limits)? else {
                    break;
                };
                let oneway = request.is_oneway();
                // Polled once here first: most requests (an ASYNC_FLUSH send, a heartbeat)
                // complete at once, and then never enter the set (no task node, no wake-up
                // through it). One that waits joins the set and counts against the cap.
                let mut served = Box::pin(serve_request(handler, ctx, request));
                if poll_fn(|cx| Poll::Ready(served.as_mut().poll(cx)))
                    .await
                    .is_pending()
                {
                    oneways += usize::from(oneway);
                    inflight.push(served);
                }
            }
            assert!(inflight.len() <= inflight_max && oneways <= inflight.len());
            budget.charge(shared, buf.len());
            if let Some(record) = shared.shed_record() {
                return Err(shed_error(peer, record));
            }
            if inflight.len() < inflight_max {
                let decoded = shared.frames_read() != frames_before;
                let frame_size = announced_frame_size(buf, &config.frame_limits);
                progress.before_read(buf.len(), frame_size, decoded, Instant::now());
                match (progress.since, config.frame_completion_timeout) {
                    // A timer armed for an earlier frame stays: it fires no later than this
                    // frame's deadline and is then re-armed for it (one timer per timeout
                    // period on a connection streaming frames, not one per read).
                    (Some(since), Some(timeout)) if frame_timer.is_terminated() => {
                        frame_timer.set(compio::time::sleep_until(since + timeout).fuse());
                    }
                    (None, _) if !frame_timer.is_terminated() => {
                        frame_timer.set(Fuse::terminated());
                    }
                    _ => {}
                }
                let buf = buffer.take().expect("buffer checked present above");
                let buf = sizer.prepare(buf, &config.frame_limits);
                read.set(read_more(stream, buf).fuse());
            } else {
                // Our cap, not the peer, holds the frame up: its clock restarts on resuming.
                progress.pause();
                frame_timer.set(Fuse::terminated());
            }
        }
        let event = poll_fn(|cx| {
            if shared.poll_closed(cx).is_ready() {
                return Poll::Ready(ReadEvent::Closed);
            }
            if !read.is_terminated() {
                if let Poll::Ready(result) = read.as_mut().poll(cx) {
                    return Poll::Ready(ReadEvent::Read(result));
                }
            }
            if !inflight.is_empty() {
                // Collect every request that completed, not one per turn of the loop: the
                // set is finite (nothing is pushed here), so this ends.
                let mut served = false;
                while let Poll::Ready(Some(oneway)) = inflight.poll_next(cx) {
                    served = true;
                    oneways -= usize::from(oneway);
                }
                if served {
                    return Poll::Ready(ReadEvent::Served);
                }
            }
            if !idle.is_terminated() && idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(ReadEvent::IdleCheck);
            }
            if !frame_timer.is_terminated() && frame_timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(ReadEvent::FrameCheck);
            }
            Poll::Pending
        })
        .await;
        match event {
            ReadEvent::Read(BufResult(Ok(0), buf)) if buf.is_empty() => {
                finish_oneways(&mut inflight, oneways).await;
                return Ok(());
            }
            ReadEvent::Read(BufResult(Ok(0), buf)) => {
                finish_oneways(&mut inflight, oneways).await;
                return Err(ConnError::EofMidFrame {
                    peer,
                    buffered: buf.len(),
                });
            }
            ReadEvent::Read(BufResult(Ok(bytes), buf)) => {
                shared.record_read(bytes);
                sizer.record_read(bytes);
                buffer = Some(buf);
            }
            ReadEvent::Read(BufResult(Err(source), _)) => {
                return Err(ConnError::Read { peer, source });
            }
            ReadEvent::Served => {}
            ReadEvent::IdleCheck => {
                let timeout = config
                    .idle_timeout
                    .expect("idle timer armed only with a timeout");
                let deadline = shared.last_activity() + timeout;
                if Instant::now() >= deadline {
                    return Err(ConnError::Idle {
                        peer,
                        idle: timeout,
                    });
                }
                idle.set(compio::time::sleep_until(deadline).fuse());
            }
            ReadEvent::FrameCheck => {
                let timeout = config
                    .frame_completion_timeout
                    .expect("frame timer armed only with a timeout");
                if let Some(error) = progress.overdue(peer, timeout, Instant::now()) {
                    return Err(error);
                }
                if let Some(since) = progress.since {
                    frame_timer.set(compio::time::sleep_until(since + timeout).fuse());
                }
            }
            ReadEvent::Closed => {
                return shared
                    .shed_record()
                    .map_or(Ok(()), |record| Err(shed_error(peer, record)));
            }
        }
    }
}

fn shed_error(peer: std::net::SocketAddr, record: ShedRecord) -> ConnError {
    ConnError::PartialFramesShed {
        peer,
        buffered: record.buffered,
        total: record.total,
        limit: record.limit,
    }
}

/// Decodes buffered frames until a request turns up, handing responses to their waiters on
/// the way. `Ok(None)` when no whole frame is buffered.
fn next_request(
    buf: &mut BytesMut,
    shared: &ConnShared,
    limits: &FrameLimits,
) -> Result<Option<RemotingCommand>, ConnError> {
    loop {
        let command = frame::decode_from(buf, limits).map_err(|source| ConnError::Malformed {
            peer: shared.peer_addr(),
            source,
        })?;
        let Some(command) = command else {
            return Ok(None);
        };
        shared.record_frame_read();
        if !command.is_response() {
            shared.note_request(&command);
            return Ok(Some(command));
        }
        shared.complete_pending(command);
    }
}

/// Serves until the `oneways` oneway requests among `inflight` have completed (the peer
/// closed: no more will come, and nothing waits for them). Two-way requests progress
/// meanwhile and are dropped with the connection once the oneways are done: their answers
/// could not be delivered, and a held pull must not hold the close up.
async fn finish_oneways<F: std::future::Future<Output = bool>>(
    inflight: &mut QuietSet<F>,
    mut oneways: usize,
) {
    while oneways > 0 {
        match inflight.next().await {
            Some(oneway) => oneways -= usize::from(oneway),
            None => break,
        }
    }
}

/// Appends whatever the socket has to `buf`.
async fn read_more(stream: &TcpStream, buf: BytesMut) -> BufResult<usize, BytesMut> {
    let mut reader = stream;
    reader.append(buf).await
}

/// Runs the handler for one request and queues its response; yields whether the request was
/// oneway.
async fn serve_request<H: Handler>(
    handler: &H,
    ctx: &ConnContext,
    request: RemotingCommand,
) -> bool {
    let opaque = request.opaque;
    let code = request.code;
    let oneway = request.is_oneway();
    let serialize_type = request.serialize_type;
    let Some(response) = handler.handle(ctx, request).await else {
        return oneway;
    };
    if oneway {
        let peer = ctx.peer_addr();
        tracing::debug!(%peer, code, opaque, "response to a oneway request dropped");
        return oneway;
    }
    let response = response.answering(opaque, serialize_type);
    if ctx.handle().shared.outbound.push(response).await.is_err() {
        let peer = ctx.peer_addr();
        tracing::debug!(%peer, code, opaque, "connection closed before the response was sent");
    }
    oneway
}

/// Drains the write queue into one buffer per syscall until the queue closes. The buffer is
/// allocated when there is something to write and released once the queue is empty (or when
/// it grew large), so an idle connection holds none.
async fn write_loop(stream: &TcpStream, shared: &ConnShared) -> Result<(), ConnError> {
    let mut writer = stream;
    let mut buf = BytesMut::new();
    // The last batch's size: a buffer given back when the queue went quiet comes back at
    // that size (growing it from the minimum reallocated and copied it several times for
    // every burst of replies).
    let mut last_batch = 0_usize;
    loop {
        let open = poll_fn(|cx| shared.outbound.poll_ready(cx)).await;
        if !open {
            return Ok(());
        }
        if buf.capacity() == 0 {
            buf.reserve(last_batch.clamp(WRITE_BUFFER_SIZE_MIN, WRITE_BUFFER_START_MAX));
        }
        let frames = fill_batch(shared, &mut buf);
        if buf.is_empty() {
            continue;
        }
        let BufResult(result, returned) = writer.write_all(buf).await;
        buf = returned;
        result.map_err(|source| ConnError::Write {
            peer: shared.peer_addr(),
            source,
        })?;
        shared.record_write(frames, buf.len());
        last_batch = buf.len();
        buf.clear();
        if shared.outbound.len() == 0 {
            // Quiet: hold nothing until the next command.
            buf = BytesMut::new();
            shared.outbound.release_if_empty();
        } else if buf.capacity() > WRITE_BUFFER_RETAIN_MAX {
            buf = BytesMut::new();
        }
    }
}

/// Encodes queued commands into `buf` until it holds [`WRITE_BATCH_BYTES_MAX`] bytes or the
/// queue is empty; returns how many frames it encoded. A command that cannot be encoded is
/// dropped (its request, if any, fails).
fn fill_batch(shared: &ConnShared, buf: &mut BytesMut) -> u64 {
    let mut frames = 0;
    while buf.len() < WRITE_BATCH_BYTES_MAX {
        let Some(command) = shared.outbound.pop() else {
            break;
        };
        let start = buf.len();
        match frame::encode(&command, buf) {
            Ok(()) => frames += 1,
            Err(error) => {
                buf.truncate(start);
                tracing::warn!(
                    peer = %shared.peer_addr(),
                    code = command.code,
                    opaque = command.opaque,
                    %error,
                    "cannot encode command, dropped"
                );
                if !command.is_response() && !command.is_oneway() {
                    shared.fail_pending(command.opaque, ClientError::Encode(error));
                }
            }
        }
    }
    shared.outbound.notify_space();
    frames
}
