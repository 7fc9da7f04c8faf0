//! Files and directories for the storage crate: O_DIRECT positioned I/O through io_uring, with an
//! optional fault injector for tests.
//!
//! Owns only the map and the re-exports (every item keeps its `crate::file::X` /
//! `rmq_storage::file::X` path); each concept lives in its own submodule:
//! - `disk`: [`Disk`], the handle every storage component opens files through ([`OpenMode`],
//!   directory ops, small page-cache files, [`DiskUsage`] via statvfs, [`DirEntryInfo`]);
//! - `direct`: [`DirectFile`], one file opened with `O_DIRECT` (aligned positioned reads /
//!   writes, fdatasync);
//! - `fault`: [`FaultInjector`] (fail the N-th write or fdatasync, short writes, disk full, a
//!   [`ScopedFault`] such as EMFILE on every open under a directory until cleared, and "crash":
//!   revert or tear writes not covered by a completed fdatasync, see [`CrashMode`]);
//! - `probe`: the device alignment probe [`io_alignment`], the `/proc` check
//!   [`fd_has_o_direct`] that a fd really has `O_DIRECT`, and [`is_tmpfs`];
//! - `scratch`: [`scratch_dir_on_real_disk`], the real-disk scratch directory for tests and
//!   benches.
//!
//! Must never: use the page cache for data files (every [`DirectFile`] has `O_DIRECT`), accept a
//! misaligned position, length or buffer (programmer error: assert), or retry a failed write or
//! fdatasync on its own (the caller decides; see fsyncgate). Directory listing, statvfs and the
//! alignment probe have no io_uring op; they run on compio's blocking pool.

mod direct;
mod disk;
mod fault;
mod probe;
mod scratch;

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use self::direct::DirectFile;
pub use self::disk::{DirEntryInfo, Disk, DiskUsage, OpenMode};
pub use self::fault::{CrashMode, FaultInjector, FaultOp, ScopedFault};
pub use self::probe::{fd_has_o_direct, io_alignment, is_tmpfs};
pub use self::scratch::scratch_dir_on_real_disk;
#[cfg(test)]
pub(crate) use self::scratch::{block_on, with_scratch_disk};

/// Runs a libc `statvfs` / `statfs`-style `call` for `path` and returns the struct it filled.
///
/// # Safety
/// `T` must be a plain C struct (all-zero bytes a valid value), and `call` must be a libc
/// function that reads a NUL-terminated path and, when it returns 0, has written a `T` through
/// its second argument.
unsafe fn stat_path<T>(
    path: &Path,
    call: unsafe extern "C" fn(*const libc::c_char, *mut T) -> libc::c_int,
) -> io::Result<T> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut out = MaybeUninit::<T>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `out` points to writable memory of
    // type `T`; per this function's contract `call` only reads the one and writes the other.
    let rc = unsafe { call(c_path.as_ptr(), out.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `out` was zero-initialised, which the contract makes a valid `T`, and `call`
    // returned 0, so it filled it.
    Ok(unsafe { out.assume_init() })
}
