//! Shard runtime: one OS thread per shard, pinned to a core with `core_affinity`, each running
//! its own compio runtime (io_uring). This is the only module that creates executors.
//!
//! Owns: thread start-up, pinning, the per-shard listener sockets (SO_REUSEPORT) and shutdown.
//! Must never: share data-plane state between shards (it crosses only through the
//! [`mesh`] API, over bounded channels).

pub mod clock;
pub mod cooperate;
pub mod fds;
pub mod latch;
pub mod listener;
pub mod memory;
pub mod mesh;
pub mod placement;
pub use rmq_net::poll_loop;
pub mod signal;

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

/// Identifies one shard (0-based, < shard count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

pub use crate::limits::SHARDS_MAX;

/// Builds a compio runtime for a thread that takes part in the mesh (a shard, or the thread
/// that shuts the shards down). Its remote-wake queue holds a slot for every task another
/// thread can wake at once (every outgoing cross-core call, the inbox loop, and spare), so a
/// cross-thread wake never finds it full: compio spins in the waking thread while the queue is
/// full, and two shards spinning on each other's full queues never recover (the heartbeat-storm
/// deadlock).
///
/// # Errors
/// When the io_uring driver cannot be created.
pub fn new_runtime() -> io::Result<compio::runtime::Runtime> {
    compio::runtime::RuntimeBuilder::new()
        .sync_queue_size(mesh::REMOTE_WAKE_QUEUE_SIZE)
        .build()
}

/// Default shard count: one per available core.
#[must_use]
pub fn default_shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(SHARDS_MAX)
}

/// Starts `count` shard threads. Each is pinned to core `index % cores`, builds its own
/// compio runtime and runs `main(shard)` to completion, polling its ring for `idle_poll` after
/// each wake-up before it sleeps ([`poll_loop`]).
///
/// # Errors
/// When a thread cannot be spawned.
///
/// # Panics
/// If `count` is 0 or above [`SHARDS_MAX`].
pub fn spawn_shards<F, Fut>(
    name: &str,
    count: usize,
    idle_poll: std::time::Duration,
    main: F,
) -> io::Result<Vec<JoinHandle<()>>>
where
    F: Fn(ShardId) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    assert!(count > 0, "at least one shard");
    assert!(count <= SHARDS_MAX, "shard count above SHARDS_MAX");
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let main = main.clone();
        let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(shard = index, "could not pin shard thread to a core");
                    }
                }
                let runtime = match new_runtime() {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::error!(shard = index, %err, "cannot start the io_uring runtime");
                        std::process::exit(70);
                    }
                };
                poll_loop::block_on(&runtime, main(ShardId(index)), idle_poll);
            })?;
        handles.push(handle);
    }
    Ok(handles)
}
