//! CPU time of the calling thread (`getrusage(RUSAGE_THREAD)`), so a run can say how much of
//! a core each harness thread (and the echo server) used: the harness's own cost per message;
//! and its time spent runnable but waiting for a CPU (`/proc/thread-self/schedstat`), which
//! shows how much other processes on a shared machine held the harness back.
//! Must never be called on another thread's behalf: the numbers are the caller's.

use serde::Serialize;

/// Cumulative CPU use of one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThreadUsage {
    /// User + system CPU time, ns.
    pub cpu_ns: u64,
    /// Times the thread was preempted.
    pub involuntary_switches: u64,
    /// Time runnable but waiting on a run queue, ns (0 where schedstat is missing).
    pub runqueue_wait_ns: u64,
}

impl ThreadUsage {
    /// The calling thread's usage so far; `None` if the kernel refuses.
    #[must_use]
    pub fn of_current_thread() -> Option<Self> {
        // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, exclusively borrowed `rusage` for the call's duration;
        // RUSAGE_THREAD only reads the calling thread's counters.
        let result = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        if result != 0 {
            return None;
        }
        let nanos = |time: libc::timeval| {
            u64::try_from(time.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(time.tv_usec).unwrap_or(0) * 1_000
        };
        Some(Self {
            cpu_ns: nanos(usage.ru_utime) + nanos(usage.ru_stime),
            involuntary_switches: u64::try_from(usage.ru_nivcsw).unwrap_or(0),
            runqueue_wait_ns: std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|text| runqueue_wait_ns(&text))
                .unwrap_or(0),
        })
    }

    /// Usage between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
            runqueue_wait_ns: self
                .runqueue_wait_ns
                .saturating_sub(earlier.runqueue_wait_ns),
        }
    }
}

/// The second field of schedstat (`run_ns wait_ns timeslices`).
fn runqueue_wait_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_uses_cpu() {
        let before = ThreadUsage::of_current_thread().expect("getrusage works on Linux");
        let started = std::time::Instant::now();
        let mut spin = 0_u64;
        while started.elapsed() < std::time::Duration::from_millis(30) {
            spin = spin.wrapping_add(1);
        }
        std::hint::black_box(spin);
        let after = ThreadUsage::of_current_thread().expect("getrusage");
        assert!(
            after.since(before).cpu_ns >= 10_000_000,
            "{before:?} -> {after:?}"
        );
        assert!(after.runqueue_wait_ns >= before.runqueue_wait_ns);
    }

    #[test]
    fn schedstat_wait_is_the_second_field() {
        assert_eq!(runqueue_wait_ns("957339 3530855 6\n"), Some(3_530_855));
        assert_eq!(runqueue_wait_ns("957339"), None);
    }
}
