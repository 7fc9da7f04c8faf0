//! The io_uring setup of every shard's compio runtime: which `IORING_SETUP_*` flags the ring
//! is created with, and the fallback to a plain ring when the kernel refuses them.
//!
//! Owns the choice of flags and why (measured in `perf-reports/2026-12-07-plumbing/`):
//! - `SINGLE_ISSUER` + `DEFER_TASKRUN`: completions of socket and file operations are run
//!   by the shard itself when it next enters the kernel to wait, instead of as task work that
//!   interrupts it (an IPI and a trip through the kernel while it is busy serving requests);
//! - `COOP_TASKRUN` + `TASKRUN_FLAG`: the kernel never interrupts the shard to run completions,
//!   and tells it through the SQ flags that some are waiting (the `io-uring` crate then enters
//!   with GETEVENTS even for a zero-timeout poll, so none are left behind).
//!
//! Must never: create a ring that another thread submits to (SINGLE_ISSUER: every submission
//! comes from the thread that built the runtime; compio's blocking pool hands results back
//! through a channel and the eventfd, never through the ring), or fail a start-up that a plain
//! ring would serve (an older kernel refusing a flag gets the plain ring, logged once).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use compio::driver::ProactorBuilder;
use compio::runtime::{Runtime, RuntimeBuilder};

/// Logged once per process when the kernel refuses the tuned flags.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The tuned ring's builder (see the module doc).
fn tuned_proactor() -> ProactorBuilder {
    let mut proactor = ProactorBuilder::new();
    proactor
        .single_issuer(true)
        .defer_taskrun(true)
        .coop_taskrun(true)
        .taskrun_flag(true);
    proactor
}

/// Builds a runtime whose remote-wake queue holds `sync_queue_size` wakes, on the tuned ring,
/// or on a plain ring if the kernel refuses a flag (`EINVAL`, before Linux 6.1).
///
/// # Errors
/// When not even a plain ring can be created.
pub fn build_runtime(sync_queue_size: usize) -> io::Result<Runtime> {
    assert!(sync_queue_size > 0, "a remote-wake queue needs a slot");
    let tuned = RuntimeBuilder::new()
        .sync_queue_size(sync_queue_size)
        .with_proactor(tuned_proactor())
        .build();
    match tuned {
        Ok(runtime) => Ok(runtime),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    %error,
                    "io_uring refused SINGLE_ISSUER/DEFER_TASKRUN/COOP_TASKRUN; plain rings"
                );
            }
            RuntimeBuilder::new()
                .sync_queue_size(sync_queue_size)
                .build()
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_tuned_runtime_serves_timers_io_and_remote_wakes() {
        let runtime = build_runtime(8).expect("runtime");
        runtime.block_on(async {
            // A timer, a completion from the blocking pool and a wake from another thread:
            // all three reach the shard although the kernel never interrupts it.
            compio::time::sleep(Duration::from_millis(2)).await;
            let blocking = compio::runtime::spawn_blocking(|| 7)
                .await
                .expect("blocking");
            assert_eq!(blocking, 7);
            let (sender, receiver) = flume::bounded::<u32>(1);
            let thread = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                sender.send(11).expect("send");
            });
            assert_eq!(receiver.recv_async().await.expect("received"), 11);
            thread.join().expect("thread");
            let listener = compio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let accepted = Rc::new(std::cell::Cell::new(false));
            let flag = accepted.clone();
            let server = compio::runtime::spawn(async move {
                let (stream, _) = listener.accept().await.expect("accept");
                flag.set(true);
                let buffer = Vec::with_capacity(4);
                let compio::BufResult(read, buffer) =
                    compio::io::AsyncReadExt::read_exact(&mut &stream, buffer).await;
                read.expect("read");
                buffer
            });
            let client = compio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            let compio::BufResult(written, _) =
                compio::io::AsyncWriteExt::write_all(&mut &client, b"ping".to_vec()).await;
            written.expect("write");
            assert_eq!(server.await.expect("server"), b"ping");
            assert!(accepted.get());
        });
    }
}
