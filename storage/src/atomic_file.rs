//! Atomic replacement of a small file (checkpoints, metadata): a reader, or a restart after a
//! crash at any point, sees the old version or the new one, never a torn mix.
//!
//! Owns the one step order, written once in `replace_with`: write `<path>.tmp` and fsync it,
//! optionally keep the current version as `<path>.bak` (a hard link, or a whole copy where links
//! are refused), rename the temp file over `<path>`, fsync the directory. Two entry points run
//! that same plan: [`replace`] through a [`Disk`] (io_uring, fault injection) on a shard's
//! thread, and [`replace_blocking`] with blocking `std::fs` for callers already on a blocking
//! thread (rare control-plane writes such as the broker's JSON metadata files).
//!
//! Must never: write the target in place, rename before the temp file is fsynced, report
//! success before the directory fsync, or look at the bytes (framing and checksums belong to the
//! callers, e.g. [`crate::checkpoint`]). It creates no directories: the parent must exist.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use futures_util::FutureExt;

use crate::error::StorageError;
use crate::file::Disk;

/// Why a [`replace_blocking`] step failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct AtomicFileError {
    /// What was being done (`create`, `write`, `fsync`, `remove`, `read`, `rename`, `fsync
    /// directory`).
    pub op: &'static str,
    /// The file or directory involved.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// `<path>.tmp`: where the new version is written before it is renamed over `path`.
#[must_use]
pub fn temp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
}

/// `<path>.bak`: the previous version a replacement with `keep_backup` leaves behind.
#[must_use]
pub fn backup_path(path: &Path) -> PathBuf {
    with_suffix(path, ".bak")
}

/// Replaces `path` with `bytes` atomically using blocking `std::fs` calls: `<path>.tmp` written
/// and fsynced, the current version kept as `<path>.bak` if `keep_backup`, rename, directory
/// fsync. For callers on a blocking thread; never call it on a shard's runtime thread.
///
/// # Errors
/// [`AtomicFileError`] naming the failed step and its path; `path` then still holds a whole
/// version (the previous one unless the error came from the final directory fsync).
pub fn replace_blocking(
    path: &Path,
    bytes: &[u8],
    keep_backup: bool,
) -> Result<(), AtomicFileError> {
    replace_with(&Blocking, path, bytes, keep_backup)
        .now_or_never()
        .expect("blocking steps complete without suspending")
}

/// Replaces `path` with `bytes` atomically through `disk` (io_uring; the disk's fault injector
/// applies): `<path>.tmp` written and fsynced, the current version kept as `<path>.bak` if
/// `keep_backup` (on compio's blocking pool: there is no io_uring link op), rename, directory
/// fsync.
///
/// # Errors
/// [`StorageError::Io`] / [`StorageError::DiskFull`] from any step; `path` then still holds a
/// whole version (the previous one unless the error came from the final directory fsync).
pub async fn replace(
    disk: &Disk,
    path: &Path,
    bytes: Vec<u8>,
    keep_backup: bool,
) -> crate::error::Result<()> {
    replace_with(disk, path, bytes, keep_backup).await
}

/// The file-system operations a replacement is made of, taking the new contents as `B`.
trait Steps<B> {
    type Error;
    /// Creates (or truncates) `path`, writes all of `bytes` and fsyncs the file.
    async fn write_synced(&self, path: &Path, bytes: B) -> Result<(), Self::Error>;
    /// Makes `backup` a whole copy of the current `path` (nothing if `path` does not exist).
    async fn keep_backup(&self, path: &Path, backup: &Path) -> Result<(), Self::Error>;
    /// Renames `from` over `to`.
    async fn rename(&self, from: &Path, to: &Path) -> Result<(), Self::Error>;
    /// fsyncs the directory `dir`.
    async fn sync_dir(&self, dir: &Path) -> Result<(), Self::Error>;
}

/// The step order of an atomic replacement; the only place it is written.
async fn replace_with<B, S: Steps<B>>(
    steps: &S,
    path: &Path,
    bytes: B,
    keep_backup: bool,
) -> Result<(), S::Error> {
    let temp = temp_path(path);
    steps.write_synced(&temp, bytes).await?;
    if keep_backup {
        steps.keep_backup(path, &backup_path(path)).await?;
    }
    steps.rename(&temp, path).await?;
    steps.sync_dir(parent_dir(path)).await
}

impl Steps<Vec<u8>> for Disk {
    type Error = StorageError;

    async fn write_synced(&self, path: &Path, bytes: Vec<u8>) -> crate::error::Result<()> {
        self.write_small_file(path, bytes).await
    }

    async fn keep_backup(&self, path: &Path, backup: &Path) -> crate::error::Result<()> {
        let (path, backup) = (path.to_path_buf(), backup.to_path_buf());
        let kept = compio::runtime::spawn_blocking(move || keep_backup_blocking(&path, &backup));
        let kept = kept.await.map_err(|_| StorageError::Closed)?;
        kept.map_err(|e| StorageError::io(e.op, e.path, 0, e.source))
    }

    async fn rename(&self, from: &Path, to: &Path) -> crate::error::Result<()> {
        Disk::rename(self, from, to).await
    }

    async fn sync_dir(&self, dir: &Path) -> crate::error::Result<()> {
        Disk::sync_dir(self, dir).await
    }
}

/// Plain blocking `std::fs` calls; every future it returns is ready on first poll.
struct Blocking;

impl<'b> Steps<&'b [u8]> for Blocking {
    type Error = AtomicFileError;

    async fn write_synced(&self, path: &Path, bytes: &'b [u8]) -> Result<(), AtomicFileError> {
        write_synced_blocking(path, bytes)
    }

    async fn keep_backup(&self, path: &Path, backup: &Path) -> Result<(), AtomicFileError> {
        keep_backup_blocking(path, backup)
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), AtomicFileError> {
        fs::rename(from, to).map_err(io_error("rename", to))
    }

    async fn sync_dir(&self, dir: &Path) -> Result<(), AtomicFileError> {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(io_error("fsync directory", dir))
    }
}

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> AtomicFileError + 'a {
    move |source| AtomicFileError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `<path>` with `suffix` appended to the file name (`topics.json` -> `topics.json.bak`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn write_synced_blocking(path: &Path, bytes: &[u8]) -> Result<(), AtomicFileError> {
    let mut file = File::create(path).map_err(io_error("create", path))?;
    file.write_all(bytes).map_err(io_error("write", path))?;
    file.sync_all().map_err(io_error("fsync", path))
}

/// Makes `backup` the current version of `path` (if any) before it is replaced: a hard link (no
/// copy; the later rename leaves the link on the old inode), or, where the file system refuses
/// links, a copy through its own temp file. Either way the backup is whole.
fn keep_backup_blocking(path: &Path, backup: &Path) -> Result<(), AtomicFileError> {
    match fs::remove_file(backup) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("remove", backup)(e)),
    }
    match fs::hard_link(path, backup) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => copy_backup(path, backup),
    }
}

fn copy_backup(path: &Path, backup: &Path) -> Result<(), AtomicFileError> {
    let current = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let backup_temp = temp_path(backup);
    write_synced_blocking(&backup_temp, &current)?;
    fs::rename(&backup_temp, backup).map_err(io_error("rename", backup))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{block_on, scratch_dir_on_real_disk, FaultInjector};

    #[test]
    fn blocking_replace_keeps_the_previous_version_on_request() {
        let dir = scratch_dir_on_real_disk("atomic-blocking").expect("scratch dir");
        let path = dir.join("file.json");
        replace_blocking(&path, b"first", true).expect("write 1");
        assert!(!backup_path(&path).exists(), "nothing to back up yet");
        replace_blocking(&path, b"second", true).expect("write 2");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        assert_eq!(fs::read(backup_path(&path)).expect("backup"), b"first");
        replace_blocking(&path, b"third", false).expect("write 3");
        assert_eq!(fs::read(&path).expect("read"), b"third");
        assert_eq!(fs::read(backup_path(&path)).expect("backup"), b"first");
        assert!(!temp_path(&path).exists(), "temp file renamed away");
    }

    #[test]
    fn blocking_errors_name_the_step_and_path() {
        let dir = scratch_dir_on_real_disk("atomic-error").expect("scratch dir");
        let path = dir.join("missing-dir").join("file");
        let error = replace_blocking(&path, b"x", false).expect_err("no parent directory");
        assert_eq!(error.op, "create");
        assert_eq!(error.path, temp_path(&path));
        assert!(error.to_string().starts_with("create "), "{error}");
    }

    #[test]
    fn copy_fallback_writes_a_whole_backup() {
        let dir = scratch_dir_on_real_disk("atomic-copy").expect("scratch dir");
        let path = dir.join("file");
        replace_blocking(&path, b"kept", false).expect("write");
        copy_backup(&path, &backup_path(&path)).expect("copy");
        assert_eq!(fs::read(backup_path(&path)).expect("backup"), b"kept");
        let absent = dir.join("absent");
        copy_backup(&absent, &backup_path(&absent)).expect("no source");
        assert!(!backup_path(&absent).exists());
    }

    #[test]
    fn disk_replace_runs_the_same_steps() {
        let dir = scratch_dir_on_real_disk("atomic-disk").expect("scratch dir");
        let path = dir.join("cp");
        let faults = FaultInjector::new();
        block_on(async {
            let disk = Disk::with_faults(faults.clone());
            replace(&disk, &path, b"one".to_vec(), false)
                .await
                .expect("write 1");
            replace(&disk, &path, b"two".to_vec(), true)
                .await
                .expect("write 2");
            faults.set_disk_full(true);
            let error = replace(&disk, &path, b"three".to_vec(), true)
                .await
                .expect_err("disk full");
            assert!(error.is_disk_full(), "{error}");
        });
        assert_eq!(fs::read(&path).expect("read"), b"two", "previous kept");
        assert_eq!(fs::read(backup_path(&path)).expect("backup"), b"one");
    }
}
