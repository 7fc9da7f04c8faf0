//! Single-thread coordination primitives for one harness runtime: [`Window`] (a counting
//! semaphore bounding requests in flight on one connection) and [`Event`] (a one-shot flag
//! tasks can await, used for "stop producing" and "stop consuming").
//! `Rc`-based and `!Send`: they never cross threads. Must never block the thread, or lose a
//! wake-up (every waiter is woken on each release, so a dropped waiter cannot strand others).

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

struct WindowState {
    capacity: usize,
    available: usize,
    waiters: Vec<Waker>,
}

/// A counting semaphore: at most `capacity` [`Permit`]s are alive at once.
#[derive(Clone)]
pub struct Window {
    state: Rc<RefCell<WindowState>>,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Window")
            .field("capacity", &state.capacity)
            .field("available", &state.available)
            .finish_non_exhaustive()
    }
}

/// One slot of a [`Window`], returned to it on drop.
#[derive(Debug)]
pub struct Permit {
    window: Window,
}

impl Window {
    /// A window of `capacity` slots.
    ///
    /// # Panics
    /// If `capacity` is 0 (nothing could ever be sent).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "window capacity is zero");
        Self {
            state: Rc::new(RefCell::new(WindowState {
                capacity,
                available: capacity,
                waiters: Vec::new(),
            })),
        }
    }

    /// Slots not taken.
    #[must_use]
    pub fn available(&self) -> usize {
        self.state.borrow().available
    }

    /// Waits for a free slot and takes it.
    pub async fn acquire(&self) -> Permit {
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.available > 0 {
                state.available -= 1;
                return Poll::Ready(());
            }
            if !state
                .waiters
                .iter()
                .any(|waker| waker.will_wake(cx.waker()))
            {
                state.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        Permit {
            window: self.clone(),
        }
    }

    /// Waits until every slot is free again (all requests in flight have completed).
    pub async fn drained(&self) {
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.available == state.capacity {
                return Poll::Ready(());
            }
            if !state
                .waiters
                .iter()
                .any(|waker| waker.will_wake(cx.waker()))
            {
                state.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waiters = {
            let mut state = self.window.state.borrow_mut();
            state.available += 1;
            assert!(
                state.available <= state.capacity,
                "more permits returned than taken"
            );
            std::mem::take(&mut state.waiters)
        };
        // Woken outside the borrow: a waker may poll synchronously on some executors.
        waiters.into_iter().for_each(Waker::wake);
    }
}

#[derive(Default)]
struct EventState {
    set: bool,
    waiters: Vec<Waker>,
}

/// A flag that starts clear, is set once, and wakes every task waiting for it.
#[derive(Clone, Default)]
pub struct Event {
    state: Rc<RefCell<EventState>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}

impl Event {
    /// A clear event.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`Self::set`] was called.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.state.borrow().set
    }

    /// Sets the flag and wakes every waiter. Setting twice is harmless.
    pub fn set(&self) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.set = true;
            std::mem::take(&mut state.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Completes once the flag is set.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.set {
                return Poll::Ready(());
            }
            if !state
                .waiters
                .iter()
                .any(|waker| waker.will_wake(cx.waker()))
            {
                state.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;

    #[test]
    fn window_bounds_permits_and_drains() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let window = Window::new(2);
            let first = window.acquire().await;
            let second = window.acquire().await;
            assert_eq!(window.available(), 0);
            let acquired = Rc::new(Cell::new(false));
            let waiter = {
                let window = window.clone();
                let acquired = acquired.clone();
                compio::runtime::spawn(async move {
                    let permit = window.acquire().await;
                    acquired.set(true);
                    drop(permit);
                })
            };
            compio::time::sleep(Duration::from_millis(5)).await;
            assert!(!acquired.get(), "third permit must wait");
            drop(first);
            waiter.await.expect("waiter task");
            assert!(acquired.get());
            assert_eq!(window.available(), 1);
            let drained = {
                let window = window.clone();
                compio::runtime::spawn(async move { window.drained().await })
            };
            compio::time::sleep(Duration::from_millis(5)).await;
            drop(second);
            drained.await.expect("drained task");
            assert_eq!(window.available(), 2);
        });
    }

    #[test]
    fn event_wakes_every_waiter_once_set() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let event = Event::new();
            let woken = Rc::new(Cell::new(0));
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let event = event.clone();
                    let woken = woken.clone();
                    compio::runtime::spawn(async move {
                        event.wait().await;
                        woken.set(woken.get() + 1);
                    })
                })
                .collect();
            compio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(woken.get(), 0);
            assert!(!event.is_set());
            event.set();
            for task in tasks {
                task.await.expect("waiter");
            }
            assert_eq!(woken.get(), 3);
            // Already set: completes at once.
            event.wait().await;
        });
    }
}
