//! Single-threaded wake-up primitives for the CommitLog's tasks (one shard, no locks).
//!
//! Owns [`Signal`] (one waiting task, e.g. the flusher: "something changed, look again") and
//! [`WaitList`] (many waiters re-checking a condition after every state change: durable mark,
//! room in the ring, next segment ready). Must never: hold a `RefCell` borrow while calling a
//! waker (a woken task may run code that borrows again), or be used across threads.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A flag plus one waker: `notify` sets it, `wait` consumes it.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    /// Raises the flag and wakes the waiting task, if any.
    pub(crate) fn notify(&self) {
        self.raised.set(true);
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resolves once the flag is raised (lowering it again).
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// Wakers of tasks waiting for a condition on shared state. Every state change calls
/// [`WaitList::wake_all`]; each woken task re-checks its condition and registers again.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    wakers: RefCell<Vec<Waker>>,
}

impl WaitList {
    /// Registers `waker` to be woken on the next [`WaitList::wake_all`].
    pub(crate) fn register(&self, waker: &Waker) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|known| known.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Wakes every registered task.
    pub(crate) fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// `true` if some task is registered.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.wakers.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn signal_wakes_waiter_once_per_notify() {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let signal = Rc::new(Signal::default());
                let waiter = {
                    let signal = Rc::clone(&signal);
                    compio::runtime::spawn(async move {
                        signal.wait().await;
                        1
                    })
                };
                compio::time::sleep(std::time::Duration::from_millis(5)).await;
                signal.notify();
                assert_eq!(waiter.await.expect("task"), 1);
                // A notify before wait is not lost.
                signal.notify();
                signal.wait().await;
            });
    }

    #[test]
    fn wait_list_wakes_all() {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let list = Rc::new(WaitList::default());
                let flag = Rc::new(Cell::new(false));
                let mut tasks = Vec::new();
                for _ in 0..3 {
                    let (list, flag) = (Rc::clone(&list), Rc::clone(&flag));
                    tasks.push(compio::runtime::spawn(async move {
                        poll_fn(|cx| {
                            if flag.get() {
                                return Poll::Ready(());
                            }
                            list.register(cx.waker());
                            Poll::Pending
                        })
                        .await;
                    }));
                }
                compio::time::sleep(std::time::Duration::from_millis(5)).await;
                assert!(list.has_waiters());
                flag.set(true);
                list.wake_all();
                for task in tasks {
                    task.await.expect("task");
                }
                assert!(!list.has_waiters());
            });
    }
}
