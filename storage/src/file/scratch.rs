//! The real-disk scratch directory for tests and benches ([`scratch_dir_on_real_disk`]): a
//! fresh directory per call, on a real filesystem so `O_DIRECT` alignment is exercised, with
//! the directories of dead test processes swept away. Also the crate's unit-test runtime helpers.
//!
//! Must never: hand out a directory on tmpfs (O_DIRECT would not be tested), reuse a directory
//! another live process may be using, or be called from production code paths.

use std::io;
use std::path::{Path, PathBuf};

use super::is_tmpfs;

/// A fresh empty directory for tests and benches on a real disk (so O_DIRECT alignment is
/// exercised): under `$MQ_TEST_DISK_DIR` if set, else `<workspace>/target/mq-test-disk`. Never
/// tmpfs: an error is returned if the chosen place is tmpfs.
///
/// # Errors
/// If the directory cannot be created, or lies on tmpfs.
pub fn scratch_dir_on_real_disk(name: &str) -> io::Result<PathBuf> {
    let root = std::env::var_os("MQ_TEST_DISK_DIR").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/mq-test-disk"
            ))
        },
        PathBuf::from,
    );
    remove_scratch_dirs_of_dead_processes(&root);
    let unique = format!("{name}-{}-{}", std::process::id(), next_scratch_id());
    let dir = root.join(unique);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    if is_tmpfs(&dir)? {
        return Err(io::Error::other(format!(
            "{} is on tmpfs; O_DIRECT would not be exercised (set MQ_TEST_DISK_DIR)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Scratch directories are named `<name>-<pid>-<n>`; those of processes that no longer run are
/// removed (best effort), so repeated test runs do not fill the disk.
fn remove_scratch_dirs_of_dead_processes(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mut parts = name.rsplitn(3, '-');
        let (Some(_counter), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn next_scratch_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `future` to completion on a fresh compio runtime (unit tests only).
#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(future)
}

/// Runs `body` with a real [`super::Disk`] and a fresh scratch directory named after `name` (see
/// [`scratch_dir_on_real_disk`]) on a fresh compio runtime (unit tests only).
#[cfg(test)]
pub(crate) fn with_scratch_disk<F, Fut>(name: &str, body: F) -> Fut::Output
where
    F: FnOnce(super::Disk, PathBuf) -> Fut,
    Fut: std::future::Future,
{
    let dir = scratch_dir_on_real_disk(name).expect("scratch dir");
    block_on(body(super::Disk::real(), dir))
}
