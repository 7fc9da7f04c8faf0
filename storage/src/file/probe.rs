//! What the kernel says about files and devices: the I/O alignment of the device holding a
//! directory ([`io_alignment`], from sysfs), whether a fd really has `O_DIRECT`
//! ([`fd_has_o_direct`], from `/proc/self/fdinfo`), and whether a directory is on tmpfs
//! ([`is_tmpfs`], statfs).
//!
//! Must never: change anything it probes (read-only), or fail an alignment probe: an unknown
//! device falls back to [`BLOCK_SIZE_MIN`]. The sysfs probe has no io_uring op; it runs on
//! compio's blocking pool.

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use super::stat_path;
use crate::limits::{BLOCK_SIZE_MAX, BLOCK_SIZE_MIN};

/// The I/O alignment for files in `dir`: the logical block size of the device holding it (from
/// `/sys/dev/block/<major>:<minor>/queue/logical_block_size`, or the parent device's for a
/// partition), raised to at least [`BLOCK_SIZE_MIN`]; [`BLOCK_SIZE_MIN`] if unknown.
pub async fn io_alignment(dir: &Path) -> usize {
    let owned = dir.to_path_buf();
    let probed = compio::runtime::spawn_blocking(move || logical_block_size(&owned)).await;
    let size = probed.ok().flatten().unwrap_or(BLOCK_SIZE_MIN);
    size.clamp(BLOCK_SIZE_MIN, BLOCK_SIZE_MAX)
}

fn logical_block_size(dir: &Path) -> Option<usize> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let base = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    for candidate in [
        base.join("queue/logical_block_size"),
        base.join("../queue/logical_block_size"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            if let Ok(size) = text.trim().parse::<usize>() {
                if size.is_power_of_two() {
                    return Some(size);
                }
            }
        }
    }
    None
}

/// `true` if `fd` (of this process) has `O_DIRECT` set, read from `/proc/self/fdinfo/<fd>`.
///
/// # Errors
/// If the fdinfo file cannot be read or has no `flags:` line.
pub fn fd_has_o_direct(fd: RawFd) -> io::Result<bool> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    let flags = text
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no flags line in fdinfo"))?;
    let flags = u32::from_str_radix(flags.trim(), 8)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "flags not octal"))?;
    Ok(flags & libc::O_DIRECT as u32 != 0)
}

/// Linux `TMPFS_MAGIC` (statfs `f_type`); tmpfs rejects or ignores O_DIRECT.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// `true` if `dir` is on tmpfs (statfs).
///
/// # Errors
/// If statfs fails.
pub fn is_tmpfs(dir: &Path) -> io::Result<bool> {
    // SAFETY: `libc::statfs` is a plain C struct, and statfs(2) fills it on success.
    let stat = unsafe { stat_path(dir, libc::statfs)? };
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between libc targets
    Ok(stat.f_type as i64 == TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::file::{scratch_dir_on_real_disk, with_scratch_disk, OpenMode};

    #[test]
    fn o_direct_check_tells_the_difference() {
        with_scratch_disk("file-odirect", |disk, dir| async move {
            let path = dir.join("direct");
            let file = disk
                .open(&path, OpenMode::CreateNew, 4096)
                .await
                .expect("open direct");
            assert!(fd_has_o_direct(file.raw_fd()).expect("fdinfo"));
            // The checker must be able to say "no": a plain buffered file.
            let plain = std::fs::File::create(dir.join("plain")).expect("plain file");
            assert!(!fd_has_o_direct(plain.as_raw_fd()).expect("fdinfo"));
        });
    }

    #[test]
    fn scratch_dir_is_not_tmpfs() {
        let dir = scratch_dir_on_real_disk("file-tmpfs").expect("scratch dir");
        assert!(!is_tmpfs(&dir).expect("statfs"));
        if Path::new("/dev/shm").exists() {
            assert!(is_tmpfs(Path::new("/dev/shm")).expect("statfs /dev/shm"));
        }
    }
}
