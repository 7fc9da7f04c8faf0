//! [`QuietSet`]: a `FuturesUnordered` that does not wake its own task for nothing.
//!
//! `FuturesUnordered::poll_next` wakes the task polling it whenever it has polled as many
//! futures as it holds in one call (futures-util 0.3, "polled == len"), so that a set whose
//! futures keep waking each other cannot starve the executor. A set of one idle connection
//! trips it on every poll: each wake-up of a shard then cost a second poll of its whole
//! serve loop and one more `io_uring_enter` (compio's loop does not wait after a wake).
//! Traced in `perf-reports/2026-12-07-plumbing/`.
//!
//! Owns the set and a waker that stands between the set and the task while it is polled: a
//! wake during the poll is recorded, not passed on, and the set is polled again at once (up
//! to [`REPOLLS_MAX`] times); one that still asks for more is passed on to the task, which
//! keeps the set's fairness. A wake outside the poll (a future woken later, from any thread)
//! goes straight to the task.
//! Must never lose a wake: every recorded wake ends in a re-poll or in a wake of the task.

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};

/// Polls of the set within one poll of the task after the first, while the set asks to be
/// polled again; then the task is woken instead (the set's own anti-starvation yield).
pub(crate) const REPOLLS_MAX: usize = 1;

/// Stands between the set and the task (see the module doc).
#[derive(Debug, Default)]
struct WakeFilter {
    /// Set while the set is being polled on the task's thread.
    polling: AtomicBool,
    /// A wake arrived while `polling`.
    woken: AtomicBool,
    /// The task's waker as of its last poll.
    task: Mutex<Option<Waker>>,
}

impl Wake for WakeFilter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.polling.load(Ordering::Acquire) {
            self.woken.store(true, Ordering::Release);
            return;
        }
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// A set of futures polled together; see the module doc.
pub(crate) struct QuietSet<F> {
    set: FuturesUnordered<F>,
    filter: Arc<WakeFilter>,
    waker: Waker,
}

impl<F: Future> QuietSet<F> {
    pub(crate) fn new() -> Self {
        let filter = Arc::new(WakeFilter::default());
        let waker = Waker::from(Arc::clone(&filter));
        Self {
            set: FuturesUnordered::new(),
            filter,
            waker,
        }
    }

    pub(crate) fn push(&mut self, future: F) {
        self.set.push(future);
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next output of a finished future; `Ready(None)` when the set is empty.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        {
            let mut task = self
                .filter
                .task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !task
                .as_ref()
                .is_some_and(|known| known.will_wake(cx.waker()))
            {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner = Context::from_waker(&self.waker);
        let mut repolls = 0;
        loop {
            self.filter.polling.store(true, Ordering::Release);
            let polled = self.set.poll_next_unpin(&mut inner);
            self.filter.polling.store(false, Ordering::Release);
            let woken = self.filter.woken.swap(false, Ordering::AcqRel);
            match polled {
                Poll::Pending if woken && repolls < REPOLLS_MAX => repolls += 1,
                Poll::Pending if !woken => return Poll::Pending,
                outcome => {
                    if woken {
                        // Still asks for more: the task is woken, as the set itself would.
                        cx.waker().wake_by_ref();
                    }
                    return outcome;
                }
            }
        }
    }

    /// Waits for the next output; `None` when the set is empty.
    pub(crate) async fn next(&mut self) -> Option<F::Output> {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct CountingWake(AtomicUsize);

    impl Wake for CountingWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn one_pending_future_does_not_wake_the_task() {
        let counter = Arc::new(CountingWake(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut set = QuietSet::new();
        set.push(std::future::pending::<u32>());
        assert!(set.poll_next(&mut cx).is_pending());
        assert!(set.poll_next(&mut cx).is_pending());
        assert_eq!(counter.0.load(Ordering::Relaxed), 0, "nothing was ready");
        // A plain FuturesUnordered wakes its task on each of those polls.
        let mut plain = FuturesUnordered::new();
        plain.push(std::future::pending::<u32>());
        assert!(plain.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_later_wake_reaches_the_task_and_the_output_is_delivered() {
        let counter = Arc::new(CountingWake(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let (sender, receiver) = crate::conn::local::oneshot::<u32>();
        let mut set = QuietSet::new();
        set.push(receiver);
        assert!(set.poll_next(&mut cx).is_pending());
        assert_eq!(counter.0.load(Ordering::Relaxed), 0);
        sender.send(7);
        assert_eq!(
            counter.0.load(Ordering::Relaxed),
            1,
            "the wake passed through"
        );
        assert_eq!(set.poll_next(&mut cx), Poll::Ready(Some(Some(7))));
        assert_eq!(set.poll_next(&mut cx), Poll::Ready(None));
    }
}
