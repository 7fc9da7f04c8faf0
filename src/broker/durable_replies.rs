//! Replies of SYNC_FLUSH sends parked until their record is durable, answered by one task per
//! shard ([`run`]) instead of by a request each waiting for its own fdatasync.
//!
//! Under SYNC_FLUSH every stored send waits for a group commit (~1 ms here). Waiting in its
//! request meant one registered waiter, one wake-up and one more poll per send, and hundreds
//! of request futures alive at once, which kept the allocator off its thread cache and the
//! core's caches full of waiting futures (`perf-reports/2026-12-07-parked-replies/`). A parked
//! send keeps only its finished reply and its connection's handle; its request future ends at
//! once. The task waits for the oldest parked record, one waiter at a time, and answers every
//! parked send the same fdatasync covered.
//!
//! Owns: [`ParkedReplies`] (the shard's queue, oldest first) and [`run`] (its answering task).
//! Must never: answer a send before its record's end is durable, unless its wait timed out or
//! failed, and then answer exactly as a send waiting in its request would (FLUSH_DISK_TIMEOUT,
//! or the storage error's code); hold more than [`PARKED_REPLIES_MAX`] replies (a send past
//! it waits in its request as before); wait for one connection's write queue while other
//! replies are due.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use rmq_net::codec::codes::RequestCode;
use rmq_net::conn::{ConnHandle, SendAttempt};
use rmq_net::RemotingCommand;
use rmq_storage::store::Durability;

pub use crate::limits::PARKED_REPLIES_MAX;

use super::append::settled_reply;
use super::shard::Shard;
use super::stats;
use super::storage_failure;

/// One send's reply waiting for its record's end to be durable.
struct Parked {
    /// The record's end offset in this shard's CommitLog.
    end: u64,
    /// When the send began to wait: the SYNC_FLUSH timeout counts from here.
    since: Instant,
    /// The connection the send came in on.
    conn: ConnHandle,
    /// The reply as it will go out (opaque, flag and encoding already the request's).
    reply: RemotingCommand,
    /// For the RPC latency metric: the request's code and when it was started.
    code: RequestCode,
    started: Option<Instant>,
}

/// The shard's parked SYNC_FLUSH replies, oldest first; see the module docs.
#[derive(Default)]
pub struct ParkedReplies {
    queue: RefCell<VecDeque<Parked>>,
    /// The answering task, when it sleeps on an empty queue.
    waiting: Cell<Option<Waker>>,
    /// Whether the answering task runs (nothing is parked otherwise).
    running: Cell<bool>,
    /// Answered replies still waiting for room in their connection's write queue (counted
    /// against [`PARKED_REPLIES_MAX`] with the parked ones).
    overflowing: Cell<usize>,
}

impl std::fmt::Debug for ParkedReplies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParkedReplies")
            .field("parked", &self.queue.borrow().len())
            .field("running", &self.running.get())
            .field("overflowing", &self.overflowing.get())
            .finish()
    }
}

/// Parks `reply` (already made the answer to its request: see [`RemotingCommand::answering`])
/// until this shard's CommitLog is durable up to `end`. The send counts as in flight until it
/// is answered (a clean stop waits for it). Gives the reply back (`Some`) when the queue is
/// full or no answering task runs; the caller then waits as before.
#[must_use = "a reply given back is not parked: the caller answers it"]
pub fn park(
    shard: &Shard,
    end: u64,
    conn: &ConnHandle,
    reply: RemotingCommand,
    code: RequestCode,
    started: Option<Instant>,
) -> Option<RemotingCommand> {
    let parked = &shard.parked_replies;
    let mut queue = parked.queue.borrow_mut();
    if !parked.running.get() || queue.len() + parked.overflowing.get() >= PARKED_REPLIES_MAX {
        return Some(reply);
    }
    queue.push_back(Parked {
        end,
        since: Instant::now(),
        conn: conn.clone(),
        reply,
        code,
        started,
    });
    drop(queue);
    shard
        .requests_in_flight
        .set(shard.requests_in_flight.get() + 1);
    if let Some(waker) = parked.waiting.take() {
        waker.wake();
    }
    None
}

/// Answers the shard's parked replies as their records become durable; runs for the shard's
/// life. One durability wait at a time, for the oldest parked record; each completed wait
/// answers every parked reply the durable mark has reached.
pub async fn run(shard: Rc<Shard>) {
    let parked = &shard.parked_replies;
    parked.running.set(true);
    loop {
        let (end, since) = poll_fn(|cx| {
            let queue = parked.queue.borrow();
            match queue.front() {
                Some(front) => Poll::Ready((front.end, front.since)),
                None => {
                    parked.waiting.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await;
        // Ready at once when the durable mark is already there.
        match shard.store.wait_durability_since(end, since).await {
            Ok(Durability::Durable) => answer_durable(&shard),
            outcome => {
                // Timed out or failed: the oldest is answered as its own wait would have
                // been; the next ones get their own wait (and deadline).
                let front = parked.queue.borrow_mut().pop_front();
                let front = front.expect("only this task removes parked replies");
                answer(&shard, front, outcome);
            }
        }
    }
}

/// Answers, oldest first, every parked reply whose record the durable mark has reached.
fn answer_durable(shard: &Rc<Shard>) {
    let durable = shard.store.commitlog().durable_offset();
    loop {
        let next = {
            let mut queue = shard.parked_replies.queue.borrow_mut();
            match queue.front() {
                Some(front) if front.end <= durable => queue.pop_front(),
                _ => None,
            }
        };
        let Some(next) = next else {
            return;
        };
        answer(shard, next, Ok(Durability::Durable));
    }
}

/// Sends one parked reply with its wait's outcome folded in, as [`super::append::Settle`]
/// would have, and ends its in-flight count.
fn answer(
    shard: &Rc<Shard>,
    parked: Parked,
    outcome: Result<Durability, rmq_storage::error::StorageError>,
) {
    let Parked {
        conn,
        reply,
        code,
        started,
        ..
    } = parked;
    let durability = outcome.map(Some).map_err(|e| storage_failure(&e));
    let reply = settled_reply(reply, durability, &super::ha::SlaveAck::NotAsked);
    stats::observe_rpc(shard, code, Some(&reply), started);
    let count = shard.requests_in_flight.get();
    assert!(count > 0, "a parked reply counts as in flight");
    shard.requests_in_flight.set(count - 1);
    match conn.try_queue(reply) {
        SendAttempt::Queued => {}
        SendAttempt::Full(reply) => {
            // This connection's peer reads slowly: its reply waits for room on its own,
            // without holding up the others'.
            let shard = Rc::clone(shard);
            let overflowing = &shard.parked_replies.overflowing;
            overflowing.set(overflowing.get() + 1);
            compio::runtime::spawn(async move {
                if conn.send(reply).await.is_err() {
                    let peer = conn.peer_addr();
                    tracing::debug!(%peer, "connection closed before a parked reply was sent");
                }
                let overflowing = &shard.parked_replies.overflowing;
                overflowing.set(overflowing.get() - 1);
            })
            .detach();
        }
        SendAttempt::Closed => {
            let peer = conn.peer_addr();
            tracing::debug!(%peer, "connection closed before a parked reply was sent");
        }
    }
}
