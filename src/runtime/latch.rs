//! A one-shot, single-thread latch: once [`Latch::set`], every [`Latch::wait`] (earlier or
//! later) completes. A shard uses it to tell its own tasks that shutdown has begun (held pulls
//! answer, the serve loop ends).
//!
//! Must never: be shared across threads (`Rc`/`RefCell` inside), be reset, or keep the waker
//! of a wait that was dropped (a shard's latch lives as long as the process, and every held
//! pull races a wait on it).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Latch {
    set: Cell<bool>,
    /// Registration id of the next waiter.
    next_id: Cell<u64>,
    /// One waker per pending [`LatchWait`], removed when it is dropped: a latch outlives
    /// millions of short waits (every held pull races one), and a waker left behind keeps its
    /// whole task (the pull's request future) allocated until the latch is set.
    wakers: RefCell<HashMap<u64, Waker>>,
}

impl Latch {
    /// Sets the latch and wakes every waiter. Idempotent.
    pub fn set(&self) {
        if self.set.replace(true) {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    /// Whether the latch is set.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Completes once the latch is set. Dropping the future before that removes its waker.
    pub fn wait(&self) -> LatchWait<'_> {
        LatchWait {
            latch: self,
            id: None,
        }
    }

    /// Wakers registered by pending waits (for tests and assertions).
    #[must_use]
    pub fn waiters(&self) -> usize {
        self.wakers.borrow().len()
    }
}

/// The future of [`Latch::wait`].
#[derive(Debug)]
#[must_use = "a latch wait does nothing unless polled"]
pub struct LatchWait<'a> {
    latch: &'a Latch,
    /// This wait's registration, once polled while the latch was unset.
    id: Option<u64>,
}

impl Future for LatchWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.latch.set.get() {
            if let Some(id) = this.id.take() {
                this.latch.wakers.borrow_mut().remove(&id);
            }
            return Poll::Ready(());
        }
        let id = *this.id.get_or_insert_with(|| {
            let id = this.latch.next_id.get();
            this.latch.next_id.set(id + 1);
            id
        });
        let mut wakers = this.latch.wakers.borrow_mut();
        match wakers.get_mut(&id) {
            Some(known) => known.clone_from(cx.waker()),
            None => {
                wakers.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for LatchWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.latch.wakers.borrow_mut().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn waiters_before_and_after_the_set_complete() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let latch = Rc::new(Latch::default());
            let early = compio::runtime::spawn({
                let latch = Rc::clone(&latch);
                async move { latch.wait().await }
            });
            compio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(!latch.is_set());
            latch.set();
            latch.set();
            early.await.expect("early waiter");
            latch.wait().await;
            assert!(latch.is_set());
            assert_eq!(latch.waiters(), 0);
        });
    }

    /// A wait dropped before the latch is set leaves no waker behind (a held pull that ends
    /// by a message arrival or its timeout must not keep its task allocated).
    #[test]
    fn dropped_waits_leave_no_waker_behind() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let latch = Latch::default();
            for _ in 0..1000 {
                let mut wait = Box::pin(latch.wait());
                assert!(futures_util::poll!(wait.as_mut()).is_pending());
                assert!(futures_util::poll!(wait.as_mut()).is_pending());
                assert_eq!(latch.waiters(), 1, "one waker per wait, refreshed");
                drop(wait);
                assert_eq!(latch.waiters(), 0);
            }
            let mut held = Box::pin(latch.wait());
            let polled = futures_util::poll!(held.as_mut());
            assert!(polled.is_pending());
            assert_eq!(latch.waiters(), 1);
            latch.set();
            assert_eq!(latch.waiters(), 0);
            held.await;
        });
    }
}
