//! An event loop for one thread's compio runtime: compio's `block_on` loop, with a bounded
//! busy-poll of the ring before the thread sleeps (Seastar's and Redpanda's reactors poll the
//! same way).
//!
//! - The broker's shards run on it (`idlePollMicros`, ours, off by default). A shard woken less
//!   than that long ago polls its io_uring completion queue, yielding its core to any other
//!   runnable thread between polls, instead of sleeping in `io_uring_enter`: a request arriving
//!   meanwhile is picked up without the thread's wake-up (on a VM, tens of µs for an idle
//!   vCPU). The budget restarts when the main future (the shard's serve loop) is woken.
//! - `rmq-bench --busy-poll` runs on it with [`NEVER_SLEEP`], so that a round trip can be
//!   measured without the harness's own wake-up.
//!
//! Owns: the loop only. Must never: poll without bound (it sleeps once the thread was idle for
//! the whole budget) unless the caller asked for [`NEVER_SLEEP`]; wait in the kernel while it
//! polls; or poll the main future without a wake (the runtime's own loop polls it every turn;
//! this one polls it when its waker fired, as a future expects).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use compio::runtime::Runtime;

/// The main future's waker: records the wake, then wakes the runtime's driver as compio's own
/// `block_on` waker does.
struct Flag {
    woken: AtomicBool,
    driver: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.driver.wake_by_ref();
    }
}

/// An `idle_poll` that never runs out: the thread polls until the future completes and never
/// sleeps. For a benchmark harness on its own core (`rmq-bench --busy-poll`), never a broker.
pub const NEVER_SLEEP: Duration = Duration::MAX;

/// Runs `future` to completion on `runtime`. With a zero `idle_poll` this is compio's own
/// `block_on`; otherwise, while the shard was woken less than `idle_poll` ago, an idle turn
/// polls the ring without waiting instead of sleeping.
pub fn block_on<F: Future>(runtime: &Runtime, future: F, idle_poll: Duration) -> F::Output {
    if idle_poll.is_zero() {
        return runtime.block_on(future);
    }
    runtime.enter(|| {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            driver: runtime.waker(),
        });
        let waker = Waker::from(Arc::clone(&flag));
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        let mut active = Instant::now();
        loop {
            if flag.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                    runtime.run();
                    return output;
                }
                active = Instant::now();
            }
            if runtime.run() {
                poll_without_waiting(runtime, &flag.driver);
            } else if active.elapsed() < idle_poll {
                poll_without_waiting(runtime, &flag.driver);
                std::thread::yield_now();
            } else {
                runtime.poll();
            }
        }
    })
}

/// Submits what is queued and reaps what has completed, without waiting for a completion.
///
/// `poll_with(Some(ZERO))` alone asks the kernel for at least one completion with a zero
/// timeout: with none ready, `io_uring_enter` goes through its timed wait, which on this VM
/// was 28 % of a polling shard's samples (`perf-reports/2026-12-08-poll-allocs/`).
/// Marking the driver notified first (its own waker: a flag store while the driver is awake,
/// as it is between polls on this thread) makes the same call ask for none.
fn poll_without_waiting(runtime: &Runtime, driver: &Waker) {
    driver.wake_by_ref();
    runtime.poll_with(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polling_loop_runs_timers_io_and_spawned_tasks_to_completion() {
        let runtime = Runtime::new().expect("runtime");
        let started = Instant::now();
        let answer = block_on(
            &runtime,
            async {
                // A timer past the poll budget: the loop must sleep and still wake for it.
                compio::time::sleep(Duration::from_millis(20)).await;
                let task = compio::runtime::spawn(async { 40 });
                let listener = compio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                let (accepted, connected) = futures_util::future::join(
                    listener.accept(),
                    compio::net::TcpStream::connect(addr),
                )
                .await;
                accepted.expect("accept");
                connected.expect("connect");
                task.await.expect("task") + 2
            },
            Duration::from_micros(50),
        );
        assert_eq!(answer, 42);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_zero_budget_is_the_runtime_s_own_loop() {
        let runtime = Runtime::new().expect("runtime");
        assert_eq!(block_on(&runtime, async { 7 }, Duration::ZERO), 7);
    }
}
