//! A one-shot, single-thread latch: once [`Latch::set`], every [`Latch::wait`] (earlier or
//! later) completes. A shard uses it to tell its own tasks that shutdown has begun (held pulls
//! answer, the serve loop ends).
//!
//! Must never: be shared across threads (`Rc`/`RefCell` inside), or be reset.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Latch {
    set: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Latch {
    /// Sets the latch and wakes every waiter. Idempotent.
    pub fn set(&self) {
        if self.set.replace(true) {
            return;
        }
        for waker in self.wakers.take() {
            waker.wake();
        }
    }

    /// Whether the latch is set.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Completes once the latch is set. A waiter dropped before that leaves a stale waker
    /// behind until the latch is set; a latch is set once per process lifetime, and waiters
    /// are bounded by the tasks that wait (held pulls, the serve loop), so this is bounded too.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                return Poll::Ready(());
            }
            let mut wakers = self.wakers.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
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
        });
    }
}
