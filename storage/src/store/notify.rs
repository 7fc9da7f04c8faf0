//! Long-polling support: a per-queue list of wakers, woken when dispatch adds entries to the
//! queue. Runtime-light: plain `Waker`s, no channels or tasks. A waiter is a future
//! ([`super::NewMessageWait`]) that resolves once the queue's max offset passes the offset it
//! waits for; timeouts are the caller's (the broker races it against a timer).
//!
//! Must never: hold more than [`LONG_POLL_WAITERS_PER_QUEUE_MAX`] wakers for one queue or
//! [`LONG_POLL_WAITERS_MAX`] in all (a waiter past either limit is told at once to reply now),
//! or keep a waker after its future was dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::Waker;

/// Parked pulls per queue (Java holds them in an unbounded list; a queue with more than this
/// many consumers parked at once is abnormal and those extra pulls are answered at once).
pub const LONG_POLL_WAITERS_PER_QUEUE_MAX: usize = 1024;

/// Parked pulls per store (shard) in all.
pub const LONG_POLL_WAITERS_MAX: usize = 64 * 1024;

/// The registration was refused: too many waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitersFull;

/// One topic's waker lists, per queue id.
type TopicWaiters = HashMap<i32, Vec<(u64, Waker)>>;

/// Waker lists per queue.
///
/// Keyed by topic, then queue id, so that a dispatch looks its queue up by `&str` (a
/// `(Rc<str>, i32)` key needed an `Rc<str>` allocated per dispatched record while anyone
/// waited anywhere).
#[derive(Debug, Default)]
pub struct Notifier {
    next_id: Cell<u64>,
    total: Cell<usize>,
    topics: RefCell<HashMap<Rc<str>, TopicWaiters>>,
}

impl Notifier {
    /// True when nobody waits (dispatch skips the lookup).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total.get() == 0
    }

    /// Waiters registered, all queues.
    #[must_use]
    pub fn len(&self) -> usize {
        self.total.get()
    }

    /// Registers (or refreshes, for `id`) a waker for a queue; returns the registration id.
    ///
    /// # Errors
    /// [`WaitersFull`] past the per-queue or total limit.
    pub fn register(
        &self,
        topic: &Rc<str>,
        queue_id: i32,
        id: Option<u64>,
        waker: &Waker,
    ) -> Result<u64, WaitersFull> {
        let mut topics = self.topics.borrow_mut();
        let queues = topics.entry(Rc::clone(topic)).or_default();
        let waiters = queues.entry(queue_id).or_default();
        if let Some(id) = id {
            if let Some((_, existing)) = waiters.iter_mut().find(|(known, _)| *known == id) {
                existing.clone_from(waker);
                return Ok(id);
            }
        }
        if waiters.len() >= LONG_POLL_WAITERS_PER_QUEUE_MAX
            || self.total.get() >= LONG_POLL_WAITERS_MAX
        {
            if waiters.is_empty() {
                queues.remove(&queue_id);
                if queues.is_empty() {
                    topics.remove(&**topic);
                }
            }
            return Err(WaitersFull);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        waiters.push((id, waker.clone()));
        self.total.set(self.total.get() + 1);
        Ok(id)
    }

    /// Removes a registration (the future completed or was dropped).
    pub fn remove(&self, topic: &str, queue_id: i32, id: u64) {
        let mut topics = self.topics.borrow_mut();
        let Some(queues) = topics.get_mut(topic) else {
            return;
        };
        let Some(waiters) = queues.get_mut(&queue_id) else {
            return;
        };
        let before = waiters.len();
        waiters.retain(|(known, _)| *known != id);
        self.total.set(self.total.get() - (before - waiters.len()));
        if waiters.is_empty() {
            queues.remove(&queue_id);
            if queues.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// Wakes every waiter of a queue (they re-check the offset and re-register if needed).
    pub fn wake(&self, topic: &str, queue_id: i32) {
        if self.is_empty() {
            return;
        }
        let removed = {
            let mut topics = self.topics.borrow_mut();
            let Some(queues) = topics.get_mut(topic) else {
                return;
            };
            let removed = queues.remove(&queue_id);
            if queues.is_empty() {
                topics.remove(topic);
            }
            removed
        };
        if let Some(waiters) = removed {
            self.total.set(self.total.get() - waiters.len());
            for (_, waker) in waiters {
                waker.wake();
            }
        }
    }
}

impl Notifier {
    /// Wakes every waiter of every queue (store closing).
    pub fn wake_all(&self) {
        let topics = std::mem::take(&mut *self.topics.borrow_mut());
        self.total.set(0);
        for waiters in topics.into_values().flat_map(HashMap::into_values) {
            for (_, waker) in waiters {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wake_remove_and_limits() {
        let notifier = Notifier::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let topic: Rc<str> = Rc::from("T");
        let first = notifier.register(&topic, 0, None, &waker).expect("room");
        assert_eq!(
            notifier.register(&topic, 0, Some(first), &waker),
            Ok(first),
            "refresh"
        );
        let second = notifier.register(&topic, 0, None, &waker).expect("room");
        notifier.register(&topic, 1, None, &waker).expect("room");
        assert_eq!(notifier.len(), 3);
        notifier.remove("T", 0, second);
        assert_eq!(notifier.len(), 2);
        notifier.wake("T", 0);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(notifier.len(), 1);
        notifier.wake("T", 5);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        for _ in 1..LONG_POLL_WAITERS_PER_QUEUE_MAX {
            notifier.register(&topic, 1, None, &waker).expect("room");
        }
        assert_eq!(notifier.register(&topic, 1, None, &waker), Err(WaitersFull));
        notifier.wake("T", 1);
        assert!(notifier.is_empty());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1 + LONG_POLL_WAITERS_PER_QUEUE_MAX
        );
    }
}
