//! A slave's acknowledged progress on one shard, as the master sees it: the appended and
//! durable ends of its last Ack and when it arrived, and the tasks awaiting "acked ≥ offset" (what a SYNC_MASTER
//! send will wait on). Single-shard (`Rc`, `Cell`): the session and the waiters run on the
//! shard that owns the store.
//!
//! Owns the waiter lists (one per [`AckLevel`], each bounded by [`HA_PROGRESS_WAITERS_MAX`]);
//! an Ack wakes exactly the waiters it satisfies. A waiter's deadline (`syncFlushTimeout`) is
//! kept by its list's one reaper ([`OffsetWaiters`]), not by a timer per send. Must never:
//! keep a waker after its future was dropped, wake a waiter before its offset is acknowledged
//! at its level (other than to end it: session over, deadline passed), or grow past the bound
//! (a waiter past it is refused at once).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use rmq_storage::offset_wait::{OffsetWaiters, Waited, Waiter};

use crate::limits::HA_PROGRESS_WAITERS_MAX;

/// Which of the slave's ends a waiter needs past its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckLevel {
    /// The slave appended the bytes (in its memory, readable there).
    Appended,
    /// The slave made them durable (fdatasync).
    Durable,
}

/// Why a wait on the slave's acks ended without the acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckWaitError {
    /// The waiter list is full: answer without waiting for the slave.
    #[error("more than {HA_PROGRESS_WAITERS_MAX} tasks wait on the slave's acks")]
    WaitersFull,
    /// The session the waiter started under ended ([`SlaveProgress::end_session`]).
    #[error("the slave's session ended")]
    SessionEnded,
    /// Its deadline passed first.
    #[error("no acknowledgement before the deadline")]
    TimedOut,
}

/// One slave's acknowledged ends on one shard, and who waits on them.
#[derive(Debug)]
pub struct SlaveProgress {
    appended: Cell<u64>,
    durable: Cell<u64>,
    acks: Cell<u64>,
    last_ack: Cell<Option<Instant>>,
    /// Sessions ended so far: a waiter from an earlier epoch is answered
    /// [`AckWaitError::SessionEnded`].
    epoch: Cell<u64>,
    appended_waiters: OffsetWaiters,
    durable_waiters: OffsetWaiters,
}

impl SlaveProgress {
    /// Nothing acknowledged yet.
    #[must_use]
    pub fn new() -> Self {
        Self {
            appended: Cell::new(0),
            durable: Cell::new(0),
            acks: Cell::new(0),
            last_ack: Cell::new(None),
            epoch: Cell::new(0),
            appended_waiters: OffsetWaiters::bounded(HA_PROGRESS_WAITERS_MAX),
            durable_waiters: OffsetWaiters::bounded(HA_PROGRESS_WAITERS_MAX),
        }
    }

    /// The slave's appended end in its last Ack (or its Hello, at a session's start).
    #[must_use]
    pub fn appended(&self) -> u64 {
        self.appended.get()
    }

    /// The slave's durable end in its last Ack (or its Hello).
    #[must_use]
    pub fn durable(&self) -> u64 {
        self.durable.get()
    }

    /// Acks received over all sessions.
    #[must_use]
    pub fn acks(&self) -> u64 {
        self.acks.get()
    }

    /// When the last Ack arrived (any session; `None` before the first).
    #[must_use]
    pub fn last_ack(&self) -> Option<Instant> {
        self.last_ack.get()
    }

    /// Tasks waiting now.
    #[must_use]
    pub fn waiters(&self) -> usize {
        self.appended_waiters.len() + self.durable_waiters.len()
    }

    /// Records where an accepted session starts (the slave's ends from its Hello; they may be
    /// lower than an earlier session's after a truncation).
    pub(crate) fn begin_session(&self, appended: u64, durable: u64) {
        assert!(durable <= appended, "checked by the codec");
        self.appended.set(appended);
        self.durable.set(durable);
        self.wake_reached();
    }

    /// Records an Ack and wakes the waiters it satisfies. Its session checked that its acks
    /// never go back; across sessions they may (a reconnected slave that truncated, or a stale
    /// connection of the same slave still open: keeping one session per slave is the caller's),
    /// so the latest ack is what counts.
    pub(crate) fn acked(&self, appended: u64, durable: u64) {
        assert!(durable <= appended, "checked by the codec");
        self.appended.set(appended);
        self.durable.set(durable);
        self.acks.set(self.acks.get() + 1);
        self.last_ack.set(Some(Instant::now()));
        self.wake_reached();
    }

    /// Ends the current session: every waiter is woken and answered
    /// [`AckWaitError::SessionEnded`] (unless its offset was acknowledged), so sends do not
    /// wait out their timeout for a slave that is gone.
    pub fn end_session(&self) {
        self.epoch.set(self.epoch.get() + 1);
        self.appended_waiters.wake_all();
        self.durable_waiters.wake_all();
    }

    /// Resolves once the slave acknowledged `offset` at `level` (already done: at once), or
    /// with an error when the session ends first, `deadline` passes first, or the waiter list
    /// is full. Polled on the shard's runtime (a deadline may spawn the list's reaper).
    pub fn wait_acked(
        &self,
        offset: u64,
        level: AckLevel,
        deadline: Option<Instant>,
    ) -> AckWait<'_> {
        let waiters = match level {
            AckLevel::Appended => &self.appended_waiters,
            AckLevel::Durable => &self.durable_waiters,
        };
        AckWait {
            progress: self,
            offset,
            level,
            deadline,
            epoch: self.epoch.get(),
            waiter: waiters.waiter(),
        }
    }

    fn reached(&self, offset: u64, level: AckLevel) -> bool {
        match level {
            AckLevel::Appended => self.appended.get() >= offset,
            AckLevel::Durable => self.durable.get() >= offset,
        }
    }

    fn wake_reached(&self) {
        self.appended_waiters.wake_reached(self.appended.get());
        self.durable_waiters.wake_reached(self.durable.get());
    }
}

impl Default for SlaveProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// The future of [`SlaveProgress::wait_acked`].
#[derive(Debug)]
pub struct AckWait<'a> {
    progress: &'a SlaveProgress,
    offset: u64,
    level: AckLevel,
    deadline: Option<Instant>,
    epoch: u64,
    /// Its place in the level's list (leaves when the future is dropped).
    waiter: Waiter<'a>,
}

impl Future for AckWait<'_> {
    type Output = Result<(), AckWaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let progress = this.progress;
        if progress.reached(this.offset, this.level) {
            this.waiter.leave();
            return Poll::Ready(Ok(()));
        }
        if progress.epoch.get() != this.epoch {
            this.waiter.leave();
            return Poll::Ready(Err(AckWaitError::SessionEnded));
        }
        // A waiter woken by an ack that a later session's start undid registers anew.
        match this.waiter.wait(this.offset, this.deadline, cx.waker()) {
            Waited::Pending => Poll::Pending,
            Waited::Expired => Poll::Ready(Err(AckWaitError::TimedOut)),
            Waited::Full => Poll::Ready(Err(AckWaitError::WaitersFull)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_waiter_resolves_once_its_level_is_acked() {
        let progress = SlaveProgress::new();
        progress.begin_session(100, 50);
        let mut appended = pin!(progress.wait_acked(300, AckLevel::Appended, None));
        let mut durable = pin!(progress.wait_acked(300, AckLevel::Durable, None));
        assert!(poll_once(appended.as_mut()).is_pending());
        assert!(poll_once(durable.as_mut()).is_pending());
        assert_eq!(progress.waiters(), 2);
        progress.acked(299, 299);
        assert!(poll_once(appended.as_mut()).is_pending());
        progress.acked(300, 200);
        assert_eq!(poll_once(appended.as_mut()), Poll::Ready(Ok(())));
        assert!(poll_once(durable.as_mut()).is_pending());
        assert_eq!(progress.waiters(), 1);
        progress.acked(400, 350);
        assert_eq!(poll_once(durable.as_mut()), Poll::Ready(Ok(())));
        assert_eq!(progress.waiters(), 0);
        assert_eq!(progress.acks(), 3);
        assert!(progress.last_ack().is_some());
    }

    #[test]
    fn a_reached_offset_resolves_at_once_and_a_dropped_waiter_leaves() {
        let progress = SlaveProgress::new();
        progress.begin_session(10, 10);
        assert_eq!(progress.last_ack(), None, "a Hello is not an Ack");
        let mut done = pin!(progress.wait_acked(10, AckLevel::Durable, None));
        assert_eq!(poll_once(done.as_mut()), Poll::Ready(Ok(())));
        {
            let mut waiting = Box::pin(progress.wait_acked(11, AckLevel::Appended, None));
            assert!(poll_once(waiting.as_mut()).is_pending());
            assert_eq!(progress.waiters(), 1);
        }
        assert_eq!(progress.waiters(), 0);
    }

    #[test]
    fn ending_the_session_answers_every_waiter() {
        let progress = SlaveProgress::new();
        progress.begin_session(10, 10);
        let mut early = Box::pin(progress.wait_acked(20, AckLevel::Appended, None));
        let mut late = Box::pin(progress.wait_acked(30, AckLevel::Appended, None));
        assert!(poll_once(early.as_mut()).is_pending());
        progress.end_session();
        assert_eq!(progress.waiters(), 0);
        assert_eq!(
            poll_once(early.as_mut()),
            Poll::Ready(Err(AckWaitError::SessionEnded))
        );
        assert_eq!(
            poll_once(late.as_mut()),
            Poll::Ready(Err(AckWaitError::SessionEnded)),
            "created before the end, polled after"
        );
        progress.begin_session(40, 40);
        let mut next = pin!(progress.wait_acked(30, AckLevel::Appended, None));
        assert_eq!(poll_once(next.as_mut()), Poll::Ready(Ok(())));
    }

    #[test]
    fn the_waiter_list_is_bounded() {
        let progress = SlaveProgress::new();
        let mut waits: Vec<_> = (0..HA_PROGRESS_WAITERS_MAX)
            .map(|_| Box::pin(progress.wait_acked(1, AckLevel::Appended, None)))
            .collect();
        for wait in &mut waits {
            assert!(poll_once(wait.as_mut()).is_pending());
        }
        let mut extra = pin!(progress.wait_acked(1, AckLevel::Appended, None));
        assert_eq!(
            poll_once(extra.as_mut()),
            Poll::Ready(Err(AckWaitError::WaitersFull))
        );
        progress.acked(1, 0);
        assert_eq!(progress.waiters(), 0);
        for wait in &mut waits {
            assert_eq!(poll_once(wait.as_mut()), Poll::Ready(Ok(())));
        }
    }
}
