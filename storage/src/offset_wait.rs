//! [`OffsetWaiters`]: tasks waiting for a monotone offset mark (the CommitLog's durable end, a
//! slave's acknowledged end) to reach their own offset, each with an optional deadline.
//!
//! One registry per mark, owned by one shard. A waiter is a slot addressed by a
//! [`WaiterKey`]: registering, re-registering (a new waker) and leaving are O(1); a mark that
//! moves wakes exactly the waiters it reached, once. Deadlines are kept by one reaper task
//! per registry (spawned on the shard's runtime when a waiter with a deadline has no reaper
//! due before it), not by one runtime timer per waiter: a SYNC_FLUSH or SYNC_MASTER send
//! waits with a deadline, and a timer per send (the runtime's `BTreeMap` wheel, an insert,
//! a lookup per poll and a removal) cost ~0.3-0.5 µs of the shard's CPU per send.
//!
//! Must never: wake a waiter whose offset the mark has not reached (unless told to wake all,
//! or its deadline passed), keep a waker after its waiter left, hold a `RefCell` borrow while
//! calling a waker (a woken task may run inline and register again), or be used across
//! threads. Its size is the number of tasks waiting at once: bounded by the registry's limit
//! when it has one ([`OffsetWaiters::bounded`]; a waiter past it is refused with
//! [`Waited::Full`]), otherwise by its callers (the sends in flight per connection).

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::task::Waker;
use std::time::Instant;

/// Where one waiter sits in an [`OffsetWaiters`]; stale once the waiter was woken by a mark,
/// woken by [`OffsetWaiters::wake_all`], or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaiterKey {
    slot: usize,
    id: u64,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    offset: u64,
    deadline: Option<Instant>,
    /// The deadline passed: the reaper woke it; it stays until its task sees it and leaves.
    expired: bool,
    waker: Waker,
}

#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<Waiting>>,
    free: Vec<usize>,
    live: usize,
    next_id: u64,
    /// At most this many waiters at once (`None`: the callers bound them).
    limit: Option<usize>,
    /// When the reaper that is due first wakes (`None`: no reaper is sleeping).
    reaper_due: Option<Instant>,
    /// Bumped whenever a new reaper is spawned: an older one finds itself stale and ends.
    reaper_generation: u64,
}

/// Tasks waiting for a mark to reach their offsets; see the module docs.
#[derive(Debug, Default)]
pub struct OffsetWaiters {
    shared: Rc<RefCell<Slots>>,
}

/// What [`Waiter::wait`] found for a waiter that is not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Registered (or its waker updated): it is woken when the mark reaches its offset, on
    /// [`OffsetWaiters::wake_all`], or at its deadline.
    Pending,
    /// Its deadline passed; it has left the registry.
    Expired,
    /// It was not registered: the registry holds its limit of waiters.
    Full,
}

impl OffsetWaiters {
    /// An empty registry whose callers bound the number of waiters.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry that refuses a waiter past `limit` ([`Waited::Full`]).
    #[must_use]
    pub fn bounded(limit: usize) -> Self {
        let waiters = Self::default();
        waiters.shared.borrow_mut().limit = Some(limit);
        waiters
    }

    /// Waiters registered now (including expired ones whose tasks have not looked yet).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.borrow().live
    }

    /// `true` if no task waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A waiter of this registry, not registered yet (it leaves when dropped).
    #[must_use]
    pub fn waiter(&self) -> Waiter<'_> {
        Waiter {
            waiters: self,
            key: None,
        }
    }

    fn wait(
        &self,
        key: &mut Option<WaiterKey>,
        offset: u64,
        deadline: Option<Instant>,
        waker: &Waker,
    ) -> Waited {
        let mut slots = self.shared.borrow_mut();
        if let Some(held) = *key {
            if let Some(Some(waiting)) = slots.slots.get_mut(held.slot) {
                if waiting.id == held.id {
                    if waiting.expired {
                        slots.vacate(held.slot);
                        *key = None;
                        return Waited::Expired;
                    }
                    waiting.waker.clone_from(waker);
                    return Waited::Pending;
                }
            }
            // Woken by a mark or by `wake_all` and polled again unsatisfied (the caller's
            // condition went back, e.g. a new session): it registers anew.
        }
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            *key = None;
            return Waited::Expired;
        }
        if slots.limit.is_some_and(|limit| slots.live >= limit) {
            *key = None;
            return Waited::Full;
        }
        let id = slots.next_id;
        slots.next_id += 1;
        let waiting = Waiting {
            id,
            offset,
            deadline,
            expired: false,
            waker: waker.clone(),
        };
        let slot = match slots.free.pop() {
            Some(slot) => {
                debug_assert!(slots.slots[slot].is_none(), "a free slot is vacant");
                slots.slots[slot] = Some(waiting);
                slot
            }
            None => {
                slots.slots.push(Some(waiting));
                slots.slots.len() - 1
            }
        };
        slots.live += 1;
        *key = Some(WaiterKey { slot, id });
        if let Some(deadline) = deadline {
            if slots.reaper_due.is_none_or(|due| deadline < due) {
                slots.reaper_due = Some(deadline);
                slots.reaper_generation += 1;
                let generation = slots.reaper_generation;
                let shared = Rc::downgrade(&self.shared);
                drop(slots);
                compio::runtime::spawn(reap(shared, generation, deadline)).detach();
            }
        }
        Waited::Pending
    }

    /// A waiter leaves (its future is done or dropped). No-op for a stale or `None` key.
    fn leave(&self, key: &mut Option<WaiterKey>) {
        let Some(held) = key.take() else {
            return;
        };
        let mut slots = self.shared.borrow_mut();
        if matches!(slots.slots.get(held.slot), Some(Some(waiting)) if waiting.id == held.id) {
            slots.vacate(held.slot);
        }
    }

    /// Wakes (and removes) every waiter whose offset is at most `mark`.
    pub fn wake_reached(&self, mark: u64) {
        self.wake_where(|waiting| waiting.offset <= mark);
    }

    /// Wakes (and removes) every waiter (the mark's owner stopped, failed, or changed epoch:
    /// each task re-checks its own condition).
    pub fn wake_all(&self) {
        self.wake_where(|_| true);
    }

    fn wake_where(&self, reached: impl Fn(&Waiting) -> bool) {
        let mut woken = Vec::new();
        {
            let mut slots = self.shared.borrow_mut();
            if slots.live == 0 {
                return;
            }
            // Not a range: the last vacate empties the vector.
            let mut slot = 0;
            while slot < slots.slots.len() {
                if matches!(&slots.slots[slot], Some(waiting) if reached(waiting)) {
                    woken.push(slots.vacate(slot).waker);
                }
                slot += 1;
            }
        }
        woken.into_iter().for_each(Waker::wake);
    }
}

/// One task's place in an [`OffsetWaiters`] (kept in its future; leaves on drop).
#[derive(Debug)]
pub struct Waiter<'a> {
    waiters: &'a OffsetWaiters,
    key: Option<WaiterKey>,
}

impl Waiter<'_> {
    /// The poll step of a waiter whose condition is not met: registers it (or, when it still
    /// holds its slot, only updates its waker), or reports that its deadline passed or that
    /// the registry is full (it holds no slot then). `offset` and `deadline` must be the same at every call.
    ///
    /// Must be called on a compio runtime when `deadline` is set (a reaper may be spawned).
    pub fn wait(&mut self, offset: u64, deadline: Option<Instant>, waker: &Waker) -> Waited {
        self.waiters.wait(&mut self.key, offset, deadline, waker)
    }

    /// Leaves now (done): the same as dropping it.
    pub fn leave(&mut self) {
        self.waiters.leave(&mut self.key);
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Slots {
    fn vacate(&mut self, slot: usize) -> Waiting {
        let waiting = self.slots[slot].take().expect("vacating an occupied slot");
        self.live -= 1;
        if self.live == 0 {
            // Nothing waits: forget the high-water mark so that marks scan only live slots'
            // worth again (keys hold unique ids, so a stale key never matches a new waiter).
            self.slots.clear();
            self.free.clear();
        } else {
            self.free.push(slot);
        }
        waiting
    }
}

/// The reaper: sleeps until `due`, marks the waiters whose deadlines passed as expired and
/// wakes them, then sleeps until the earliest deadline left; ends when none is left, when
/// the registry is gone, or when a reaper due earlier replaced it.
async fn reap(shared: Weak<RefCell<Slots>>, generation: u64, mut due: Instant) {
    loop {
        compio::time::sleep_until(due).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut woken = Vec::new();
        {
            let mut slots = shared.borrow_mut();
            if slots.reaper_generation != generation {
                return;
            }
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for waiting in slots.slots.iter_mut().flatten() {
                let Some(deadline) = waiting.deadline else {
                    continue;
                };
                if waiting.expired {
                    continue;
                }
                if deadline <= now {
                    waiting.expired = true;
                    woken.push(waiting.waker.clone());
                } else {
                    next = Some(next.map_or(deadline, |next| next.min(deadline)));
                }
            }
            slots.reaper_due = next;
            if let Some(next) = next {
                due = next;
            }
        }
        woken.into_iter().for_each(Waker::wake);
        if shared.borrow().reaper_due.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::{poll_fn, Future};
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    /// Waits for `mark >= offset` the way the registry's users do.
    async fn wait_for(
        waiters: &OffsetWaiters,
        mark: &Cell<u64>,
        offset: u64,
        deadline: Option<Instant>,
    ) -> bool {
        let mut waiter = waiters.waiter();
        poll_fn(|cx| {
            if mark.get() >= offset {
                return Poll::Ready(true);
            }
            match waiter.wait(offset, deadline, cx.waker()) {
                Waited::Pending => Poll::Pending,
                Waited::Expired => Poll::Ready(false),
                Waited::Full => unreachable!("unbounded in these tests"),
            }
        })
        .await
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn a_mark_wakes_exactly_the_waiters_it_reached() {
        run(async {
            let waiters = Rc::new(OffsetWaiters::new());
            let mark = Rc::new(Cell::new(0));
            let done = Rc::new(Cell::new(0u32));
            let mut tasks = Vec::new();
            for offset in [10, 20, 30] {
                let (waiters, mark, done) = (waiters.clone(), mark.clone(), done.clone());
                tasks.push(compio::runtime::spawn(async move {
                    assert!(wait_for(&waiters, &mark, offset, None).await);
                    done.set(done.get() + 1);
                }));
            }
            compio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(waiters.len(), 3);
            mark.set(20);
            waiters.wake_reached(20);
            compio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(done.get(), 2, "10 and 20 reached, 30 not");
            assert_eq!(waiters.len(), 1);
            mark.set(30);
            waiters.wake_reached(30);
            for task in tasks {
                task.await.expect("task");
            }
            assert!(waiters.is_empty());
        });
    }

    #[test]
    fn a_deadline_expires_its_waiter_and_spares_the_others() {
        run(async {
            let waiters = Rc::new(OffsetWaiters::new());
            let mark = Rc::new(Cell::new(0));
            let start = Instant::now();
            let late = {
                let (waiters, mark) = (waiters.clone(), mark.clone());
                compio::runtime::spawn(async move {
                    let deadline = Some(Instant::now() + Duration::from_secs(30));
                    wait_for(&waiters, &mark, 5, deadline).await
                })
            };
            let soon = {
                let (waiters, mark) = (waiters.clone(), mark.clone());
                compio::runtime::spawn(async move {
                    // Due before the reaper already sleeping: a new reaper takes over.
                    let deadline = Some(Instant::now() + Duration::from_millis(40));
                    wait_for(&waiters, &mark, 5, deadline).await
                })
            };
            assert!(!soon.await.expect("task"), "expired");
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(40), "not before its deadline");
            assert!(
                took < Duration::from_secs(10),
                "at its deadline, not the other's"
            );
            assert_eq!(waiters.len(), 1, "the expired waiter left");
            mark.set(5);
            waiters.wake_reached(5);
            assert!(late.await.expect("task"), "reached before its deadline");
            assert!(waiters.is_empty());
        });
    }

    #[test]
    fn a_dropped_waiter_leaves_and_a_past_deadline_expires_at_once() {
        run(async {
            let waiters = OffsetWaiters::new();
            let mark = Cell::new(0);
            {
                let mut waiting = Box::pin(wait_for(&waiters, &mark, 7, None));
                let polled = poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
                assert!(polled.is_pending());
                assert_eq!(waiters.len(), 1);
            }
            assert!(waiters.is_empty(), "left when its future was dropped");
            let past = Some(Instant::now());
            assert!(!wait_for(&waiters, &mark, 7, past).await);
            assert!(waiters.is_empty());
        });
    }

    #[test]
    fn a_bounded_registry_refuses_a_waiter_past_its_limit() {
        let waiters = OffsetWaiters::bounded(2);
        let waker = Waker::noop();
        let (mut first, mut second, mut third) =
            (waiters.waiter(), waiters.waiter(), waiters.waiter());
        assert_eq!(first.wait(1, None, waker), Waited::Pending);
        assert_eq!(second.wait(2, None, waker), Waited::Pending);
        assert_eq!(third.wait(3, None, waker), Waited::Full);
        assert_eq!(waiters.len(), 2, "the refused waiter holds no slot");
        assert_eq!(
            first.wait(1, None, waker),
            Waited::Pending,
            "a held slot is kept"
        );
        waiters.wake_reached(1);
        assert_eq!(third.wait(3, None, waker), Waited::Pending, "room again");
        assert_eq!(waiters.len(), 2);
    }

    #[test]
    fn a_woken_waiter_polled_unsatisfied_registers_anew() {
        let waiters = OffsetWaiters::new();
        let mut waiter = waiters.waiter();
        let waker = Waker::noop();
        assert_eq!(waiter.wait(9, None, waker), Waited::Pending);
        let first = waiter.key.expect("registered");
        waiters.wake_reached(9);
        assert!(waiters.is_empty());
        // Polled again with its condition unmet (the mark went back): registered again.
        assert_eq!(waiter.wait(9, None, waker), Waited::Pending);
        assert_ne!(waiter.key, Some(first));
        assert_eq!(waiters.len(), 1);
        waiters.leave(&mut Some(first));
        assert_eq!(waiters.len(), 1, "a stale key leaves nothing");
        drop(waiter);
        assert!(waiters.is_empty());
    }
}
