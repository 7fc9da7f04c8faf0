//! A first-come, first-served async lock for one thread (one shard's runtime): the store's
//! append, reput and checkpoint locks and the consume-queue and index write locks.
//!
//! `futures_util::lock::Mutex` lets a newcomer take a just-released lock ahead of woken
//! waiters and picks which waiter to wake by slab slot, so under a saturated shard one
//! request could wait seconds while later ones went through (measured: 2 s send tails with
//! 32 pipelined batch sends). This lock hands the lock directly to the oldest waiter on
//! release, so a waiter is never overtaken. Must never: be shared across threads (`!Send`),
//! let a newcomer take the lock while anyone waits, or lose the lock when a granted waiter's
//! future is dropped before it observed the grant.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
struct Waiter {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// The lock; see the module doc.
#[derive(Debug, Default)]
pub struct FifoLock {
    locked: Cell<bool>,
    queue: RefCell<VecDeque<Rc<Waiter>>>,
}

/// Holding this is holding the lock; dropping it hands the lock to the oldest waiter.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct FifoGuard<'a> {
    lock: &'a FifoLock,
}

/// Future of [`FifoLock::lock`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    lock: &'a FifoLock,
    waiter: Option<Rc<Waiter>>,
}

impl FifoLock {
    /// An unlocked lock.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lock, behind everyone already waiting.
    pub fn lock(&self) -> Acquire<'_> {
        Acquire {
            lock: self,
            waiter: None,
        }
    }

    /// The lock if it is free and nobody waits, without waiting.
    pub fn try_lock(&self) -> Option<FifoGuard<'_>> {
        if self.locked.get() {
            return None;
        }
        assert!(self.queue.borrow().is_empty(), "free lock with waiters");
        self.locked.set(true);
        Some(FifoGuard { lock: self })
    }

    /// True while someone holds the lock.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }

    fn release(&self) {
        assert!(self.locked.get(), "released a lock nobody held");
        let next = self.queue.borrow_mut().pop_front();
        match next {
            // Handed over: `locked` stays true on the waiter's behalf.
            Some(waiter) => {
                waiter.granted.set(true);
                let waker = waiter.waker.borrow_mut().take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => self.locked.set(false),
        }
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = FifoGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FifoGuard<'a>> {
        let this = self.get_mut();
        let lock = this.lock;
        match &this.waiter {
            None => {
                if !lock.locked.get() {
                    assert!(lock.queue.borrow().is_empty(), "free lock with waiters");
                    lock.locked.set(true);
                    return Poll::Ready(FifoGuard { lock });
                }
                let waiter = Rc::new(Waiter {
                    granted: Cell::new(false),
                    waker: RefCell::new(Some(cx.waker().clone())),
                });
                lock.queue.borrow_mut().push_back(Rc::clone(&waiter));
                this.waiter = Some(waiter);
                Poll::Pending
            }
            Some(waiter) if waiter.granted.get() => {
                this.waiter = None;
                Poll::Ready(FifoGuard { lock })
            }
            Some(waiter) => {
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        if waiter.granted.get() {
            // Granted but never observed: pass the lock on.
            self.lock.release();
        } else {
            self.lock
                .queue
                .borrow_mut()
                .retain(|queued| !Rc::ptr_eq(queued, &waiter));
        }
    }
}

impl Drop for FifoGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use super::*;

    /// `Wake` needs `Send + Sync`, hence the atomic.
    struct Woken(std::sync::atomic::AtomicBool);
    impl Wake for Woken {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn context() -> (std::sync::Arc<Woken>, Waker) {
        let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(std::sync::Arc::clone(&woken));
        (woken, waker)
    }

    fn poll<'a>(acquire: &mut Acquire<'a>, waker: &Waker) -> Poll<FifoGuard<'a>> {
        Pin::new(acquire).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn waiters_get_the_lock_in_arrival_order_and_newcomers_queue() {
        let lock = FifoLock::new();
        let (_, waker) = context();
        let mut first = lock.lock();
        let Poll::Ready(guard) = poll(&mut first, &waker) else {
            panic!("free lock is taken at once");
        };
        let (woken_a, waker_a) = context();
        let mut a = lock.lock();
        assert!(poll(&mut a, &waker_a).is_pending());
        let mut b = lock.lock();
        assert!(poll(&mut b, &waker).is_pending());
        drop(guard);
        assert!(woken_a.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(lock.is_locked(), "handed over, never free in between");
        // A newcomer arriving now must queue behind b, not take the handed-over lock.
        let mut late = lock.lock();
        assert!(poll(&mut late, &waker).is_pending());
        let Poll::Ready(guard_a) = poll(&mut a, &waker_a) else {
            panic!("a was granted");
        };
        assert!(poll(&mut b, &waker).is_pending());
        drop(guard_a);
        assert!(poll(&mut late, &waker).is_pending(), "b is before late");
        let Poll::Ready(guard_b) = poll(&mut b, &waker) else {
            panic!("b was granted");
        };
        drop(guard_b);
        let Poll::Ready(guard_late) = poll(&mut late, &waker) else {
            panic!("late was granted");
        };
        drop(guard_late);
        assert!(!lock.is_locked());
        let held = lock.try_lock().expect("free");
        assert!(lock.try_lock().is_none());
        drop(held);
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn dropped_waiters_neither_block_nor_keep_the_lock() {
        let lock = FifoLock::new();
        let (_, waker) = context();
        let mut holder = lock.lock();
        let Poll::Ready(guard) = poll(&mut holder, &waker) else {
            panic!("free");
        };
        let mut gone = lock.lock();
        assert!(poll(&mut gone, &waker).is_pending());
        let mut granted_then_dropped = lock.lock();
        assert!(poll(&mut granted_then_dropped, &waker).is_pending());
        let mut last = lock.lock();
        assert!(poll(&mut last, &waker).is_pending());
        drop(gone); // leaves the queue without ever holding
        drop(guard); // grants granted_then_dropped
        drop(granted_then_dropped); // never observed: passes the lock to `last`
        let Poll::Ready(guard_last) = poll(&mut last, &waker) else {
            panic!("last gets the lock");
        };
        drop(guard_last);
        assert!(!lock.is_locked());
        assert!(lock.queue.borrow().is_empty());
    }
}
