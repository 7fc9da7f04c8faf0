//! Cooperative yielding for long loops on a shard: [`yield_now`] lets the shard's other tasks
//! (requests, flushes, replication) run once before the loop goes on, so a long backlog or a
//! large table never starves them.
//!
//! Must never: sleep (it reschedules at once), or be needed for correctness.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the shard's other tasks once.
pub async fn yield_now() {
    YieldNow(false).await;
}

struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[test]
    fn another_task_runs_while_a_loop_yields() {
        let runtime = crate::runtime::new_runtime().expect("runtime");
        runtime.block_on(async {
            let ran = Rc::new(Cell::new(false));
            let other = Rc::clone(&ran);
            compio::runtime::spawn(async move { other.set(true) }).detach();
            assert!(!ran.get());
            for _ in 0..8 {
                if ran.get() {
                    break;
                }
                yield_now().await;
            }
            assert!(ran.get(), "the spawned task ran during the yields");
        });
    }
}
