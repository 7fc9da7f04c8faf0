//! Single-thread synchronisation for one compio runtime: a oneshot and a bounded queue.
//! Everything here lives on one core (`Rc`/`RefCell`, deliberately `!Send`).
//! Must never hold a `RefCell` borrow while waking a task or across an `.await`, and never
//! grow a queue past its capacity.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Shared state of a [`oneshot`] pair.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// Sending half of a [`oneshot`].
pub(crate) struct OneshotSender<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

/// Receiving half of a [`oneshot`]; resolves to `None` when the sender is dropped unsent.
pub(crate) struct OneshotReceiver<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

/// A single-value channel between two tasks of the same thread.
pub(crate) fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (
        OneshotSender { slot: slot.clone() },
        OneshotReceiver { slot },
    )
}

impl<T> OneshotSender<T> {
    /// Delivers `value`; a receiver that is already gone just drops it.
    pub(crate) fn send(self, value: T) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            assert!(slot.value.is_none(), "oneshot sent twice");
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        // `Drop` runs next and marks the sender gone; the value is already in place.
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.sender_gone = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.borrow_mut();
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.sender_gone {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Adds `waker` unless an equivalent one is registered already, so a future polled many
/// times while waiting does not grow the list.
fn register_waker(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

/// Why a push into a [`LocalQueue`] failed; the item comes back.
pub(crate) enum PushError<T> {
    /// The queue holds `capacity` items.
    Full(T),
    /// The queue was closed.
    Closed(T),
}

/// Bounded multi-producer, single-consumer queue. Producers wait (or fail with `try_push`)
/// when it is full; the consumer drains it in batches and then calls
/// [`Self::notify_space`] once, so a full queue costs one wake-up round per batch.
pub(crate) struct LocalQueue<T> {
    items: RefCell<VecDeque<T>>,
    capacity: usize,
    closed: Cell<bool>,
    consumer: RefCell<Option<Waker>>,
    producers: RefCell<Vec<Waker>>,
    /// Set while the consumer's task is being polled and will poll the consumer before it
    /// returns: a push meanwhile leaves the consumer's waker in place instead of waking that
    /// task (a self-wake costs the runtime another executor round and kernel entry).
    consumer_polled_next: Cell<bool>,
}

impl<T> LocalQueue<T> {
    /// An empty queue holding at most `capacity` items.
    ///
    /// # Panics
    /// If `capacity` is zero (a configuration bug: nothing could ever be sent).
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "queue capacity must be positive");
        Self {
            // Storage comes with the first item: an idle connection's queue holds none.
            items: RefCell::new(VecDeque::new()),
            capacity,
            closed: Cell::new(false),
            consumer: RefCell::new(None),
            producers: RefCell::new(Vec::new()),
            consumer_polled_next: Cell::new(false),
        }
    }

    /// Tells the queue whether the consumer is about to be polled by the task that is running
    /// now (see `consumer_polled_next`). Whoever sets it must poll the consumer before the
    /// task's poll returns, and clear it first.
    pub(crate) fn set_consumer_polled_next(&self, polled_next: bool) {
        self.consumer_polled_next.set(polled_next);
    }

    /// Items currently queued.
    pub(crate) fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Queues `item` if there is room.
    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        if self.closed.get() {
            return Err(PushError::Closed(item));
        }
        {
            let mut items = self.items.borrow_mut();
            if items.len() >= self.capacity {
                return Err(PushError::Full(item));
            }
            items.push_back(item);
            assert!(items.len() <= self.capacity);
        }
        if self.consumer_polled_next.get() {
            return Ok(()); // the consumer is polled before its task yields: it sees the item
        }
        let consumer = self.consumer.borrow_mut().take();
        if let Some(waker) = consumer {
            waker.wake();
        }
        Ok(())
    }

    /// Queues `item`, waiting while the queue is full. Returns the item if the queue closes.
    pub(crate) async fn push(&self, item: T) -> Result<(), T> {
        let mut item = Some(item);
        poll_fn(|cx| {
            let value = item.take().expect("push polled after completion");
            match self.try_push(value) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(PushError::Closed(value)) => Poll::Ready(Err(value)),
                Err(PushError::Full(value)) => {
                    item = Some(value);
                    register_waker(&mut self.producers.borrow_mut(), cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Ready with `true` once an item is queued, `false` once the queue is closed.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.closed.get() {
            return Poll::Ready(false);
        }
        if !self.items.borrow().is_empty() {
            return Poll::Ready(true);
        }
        *self.consumer.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Takes the oldest item. Call [`Self::notify_space`] after a batch of pops.
    pub(crate) fn pop(&self) -> Option<T> {
        self.items.borrow_mut().pop_front()
    }

    /// Frees the queue's storage if it holds nothing (the writer drained it), so a queue that
    /// once held a burst does not keep its size for the connection's lifetime.
    pub(crate) fn release_if_empty(&self) {
        let mut items = self.items.borrow_mut();
        if items.is_empty() && items.capacity() > 0 {
            *items = VecDeque::new();
        }
    }

    /// Wakes producers waiting for room.
    pub(crate) fn notify_space(&self) {
        let producers = std::mem::take(&mut *self.producers.borrow_mut());
        for waker in producers {
            waker.wake();
        }
    }

    /// Closes the queue: drops queued items, fails waiting and future pushes, and tells the
    /// consumer. Idempotent.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        let dropped = std::mem::take(&mut *self.items.borrow_mut());
        drop(dropped);
        let consumer = self.consumer.borrow_mut().take();
        if let Some(waker) = consumer {
            waker.wake();
        }
        self.notify_space();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        fut.poll(&mut cx)
    }

    #[test]
    fn oneshot_delivers_value_and_reports_dropped_sender() {
        let (tx, mut rx) = oneshot::<u32>();
        assert!(poll_once(Pin::new(&mut rx)).is_pending());
        tx.send(7);
        assert_eq!(poll_once(Pin::new(&mut rx)), Poll::Ready(Some(7)));

        let (tx, mut rx) = oneshot::<u32>();
        drop(tx);
        assert_eq!(poll_once(Pin::new(&mut rx)), Poll::Ready(None));
    }

    /// A waker that counts its wakes.
    struct CountingWake(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWake {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_push_while_the_consumer_is_polled_next_wakes_nobody_and_is_seen() {
        let queue = LocalQueue::new(4);
        let counter = std::sync::Arc::new(CountingWake(0.into()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let wakes = || counter.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!(queue.poll_ready(&mut cx).is_pending());
        queue.set_consumer_polled_next(true);
        assert!(queue.try_push(1).is_ok());
        queue.set_consumer_polled_next(false);
        assert_eq!(wakes(), 0, "the running task polls the consumer itself");
        assert_eq!(queue.poll_ready(&mut cx), Poll::Ready(true));
        assert_eq!(queue.pop(), Some(1));
        // Outside that window a push wakes the consumer as before.
        assert!(queue.poll_ready(&mut cx).is_pending());
        assert!(queue.try_push(2).is_ok());
        assert_eq!(wakes(), 1);
    }

    #[test]
    fn a_drained_queue_gives_its_storage_back() {
        let queue = LocalQueue::new(1024);
        assert_eq!(
            queue.items.borrow().capacity(),
            0,
            "nothing before the first item"
        );
        for item in 0..100 {
            assert!(queue.try_push(item).is_ok());
        }
        while queue.pop().is_some() {}
        assert!(queue.items.borrow().capacity() >= 100);
        queue.release_if_empty();
        assert_eq!(queue.items.borrow().capacity(), 0);
        assert!(queue.try_push(1).is_ok(), "still usable");
        assert_eq!(queue.pop(), Some(1));
    }

    #[test]
    fn queue_is_bounded_and_close_fails_pushes() {
        let queue = LocalQueue::new(2);
        assert!(queue.try_push(1).is_ok());
        assert!(queue.try_push(2).is_ok());
        assert!(matches!(queue.try_push(3), Err(PushError::Full(3))));
        let mut push = Box::pin(queue.push(3));
        assert!(poll_once(push.as_mut()).is_pending());
        assert_eq!(queue.pop(), Some(1));
        queue.notify_space();
        assert_eq!(poll_once(push.as_mut()), Poll::Ready(Ok(())));
        assert_eq!(queue.len(), 2);
        queue.release_if_empty();
        assert_eq!(queue.len(), 2, "a queue holding items keeps them");
        queue.close();
        assert_eq!(queue.len(), 0);
        assert!(matches!(queue.try_push(4), Err(PushError::Closed(4))));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(queue.poll_ready(&mut cx), Poll::Ready(false));
    }
}
