//! The [`Disk`] handle every storage component opens files through: open modes, directory
//! fsync / create / list, rename and remove, small page-cache files (checkpoints, markers), and
//! the filesystem usage (statvfs, [`DiskUsage`]) retention reads.
//!
//! Owns [`Disk`], [`OpenMode`], [`DiskUsage`] and [`DirEntryInfo`]. Data files it opens are
//! [`DirectFile`]s (always `O_DIRECT`); a [`FaultInjector`] attached to the disk is consulted on
//! file creation, small-file writes and usage queries, and handed to every file it opens.
//!
//! Must never: open a data file without `O_DIRECT`, or replace a file non-atomically on its own
//! ([`crate::atomic_file`] owns the temp-file / rename / directory-fsync order). Directory
//! listing and statvfs have no io_uring op; they run on compio's blocking pool.

use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::SystemTime;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::AsyncWriteAt;

use super::{stat_path, DirectFile, FaultInjector, FaultOp};
use crate::error::{Result, StorageError};
use crate::limits::{BLOCK_SIZE_MAX, BLOCK_SIZE_MIN};

/// How [`Disk::open`] treats an existing or missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file; fail if it exists.
    CreateNew,
    /// Open the file, creating it if missing.
    CreateOrOpen,
    /// Open an existing file for reading and writing.
    Existing,
    /// Open an existing file for reading only.
    ReadOnly,
}

/// Space on the filesystem holding a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Total bytes of the filesystem.
    pub total_bytes: u64,
    /// Bytes in use (total minus free).
    pub used_bytes: u64,
}

impl DiskUsage {
    /// Used space in percent (0..=100).
    #[must_use]
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 100.0;
        }
        self.used_bytes as f64 * 100.0 / self.total_bytes as f64
    }
}

/// One entry of [`Disk::list_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryInfo {
    /// File name (no directory part).
    pub name: String,
    /// File size in bytes.
    pub len: u64,
    /// Last modification time.
    pub modified: SystemTime,
}

/// The handle storage components open files through. Cheap to clone; `!Send` (one per shard).
///
/// `Disk::real()` does plain I/O; `Disk::with_faults` routes every data-file write, fdatasync and
/// file creation through a [`FaultInjector`].
#[derive(Clone, Debug, Default)]
pub struct Disk {
    faults: Option<Rc<FaultInjector>>,
}

impl Disk {
    /// A disk with no fault injection.
    #[must_use]
    pub fn real() -> Self {
        Self { faults: None }
    }

    /// A disk whose data files consult `faults` before every write, fdatasync and creation.
    #[must_use]
    pub fn with_faults(faults: Rc<FaultInjector>) -> Self {
        Self {
            faults: Some(faults),
        }
    }

    /// The fault injector, if any.
    #[must_use]
    pub fn faults(&self) -> Option<&Rc<FaultInjector>> {
        self.faults.as_ref()
    }

    /// Opens `path` with `O_DIRECT` (and `O_CLOEXEC`). `alignment` is the I/O alignment every
    /// later call on the file must respect (see [`super::io_alignment`]).
    ///
    /// # Errors
    /// [`StorageError::Io`] from open/fstat, [`StorageError::DiskFull`] if creating a file while
    /// the (injected) disk is full.
    ///
    /// # Panics
    /// If `alignment` is not a power of two within the block size limits.
    pub async fn open(&self, path: &Path, mode: OpenMode, alignment: usize) -> Result<DirectFile> {
        assert!(
            alignment.is_power_of_two(),
            "alignment {alignment} not a power of two"
        );
        assert!((BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&alignment));
        if let Some(faults) = &self.faults {
            if let Some(error) = faults.scoped_error(path, FaultOp::Open) {
                return Err(StorageError::io("open", path, 0, error));
            }
            let creates = matches!(mode, OpenMode::CreateNew | OpenMode::CreateOrOpen);
            if creates && faults.disk_full() && !path_exists(path).await {
                return Err(StorageError::DiskFull {
                    path: path.to_path_buf(),
                    needed_bytes: 0,
                });
            }
        }
        let mut options = compio::fs::OpenOptions::new();
        options.custom_flags(libc::O_DIRECT | libc::O_CLOEXEC);
        match mode {
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
            OpenMode::CreateOrOpen => options.read(true).write(true).create(true),
            OpenMode::Existing => options.read(true).write(true),
            OpenMode::ReadOnly => options.read(true),
        };
        let file = options
            .open(path)
            .await
            .map_err(|e| StorageError::io("open", path, 0, e))?;
        let metadata = file
            .metadata()
            .await
            .map_err(|e| StorageError::io("fstat", path, 0, e))?;
        Ok(DirectFile::new(
            file,
            path.to_path_buf(),
            alignment,
            metadata.len(),
            self.faults.clone(),
        ))
    }

    /// fsyncs a directory, making file creations, renames and removals in it durable.
    ///
    /// # Errors
    /// [`StorageError::Io`] from open or fsync.
    pub async fn sync_dir(&self, dir: &Path) -> Result<()> {
        if let Some(error) = self
            .faults
            .as_ref()
            .and_then(|faults| faults.scoped_error(dir, FaultOp::Open))
        {
            return Err(StorageError::io("open dir", dir, 0, error));
        }
        let mut options = compio::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC);
        let handle = options
            .open(dir)
            .await
            .map_err(|e| StorageError::io("open dir", dir, 0, e))?;
        handle
            .sync_all()
            .await
            .map_err(|e| StorageError::io("fsync dir", dir, 0, e))?;
        handle
            .close()
            .await
            .map_err(|e| StorageError::io("close dir", dir, 0, e))
    }

    /// Creates `dir` and its parents.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn create_dir_all(&self, dir: &Path) -> Result<()> {
        compio::fs::create_dir_all(dir)
            .await
            .map_err(|e| StorageError::io("mkdir", dir, 0, e))
    }

    /// Removes a file. A missing file is not an error.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn remove_file(&self, path: &Path) -> Result<()> {
        if let Some(faults) = &self.faults {
            faults.forget_file(path);
        }
        match compio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("unlink", path, 0, e)),
        }
    }

    /// Renames `from` to `to` (replacing `to`).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        compio::fs::rename(from, to)
            .await
            .map_err(|e| StorageError::io("rename", from, 0, e))
    }

    /// `true` if `path` exists.
    pub async fn exists(&self, path: &Path) -> bool {
        path_exists(path).await
    }

    /// Lists the regular files in `dir` (name, size, mtime), sorted by name.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn list_dir(&self, dir: &Path) -> Result<Vec<DirEntryInfo>> {
        let owned = dir.to_path_buf();
        let listed = compio::runtime::spawn_blocking(move || list_dir_blocking(&owned)).await;
        let listed = listed.map_err(|_| StorageError::Closed)?;
        listed.map_err(|e| StorageError::io("readdir", dir, 0, e))
    }

    /// Space used on the filesystem holding `dir` (statvfs, or the injected value).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn disk_usage(&self, dir: &Path) -> Result<DiskUsage> {
        if let Some(percent) = self.faults.as_ref().and_then(|f| f.disk_used_percent()) {
            return Ok(DiskUsage {
                total_bytes: 100,
                used_bytes: u64::from(percent),
            });
        }
        let owned = dir.to_path_buf();
        let usage = compio::runtime::spawn_blocking(move || statvfs_usage(&owned)).await;
        let usage = usage.map_err(|_| StorageError::Closed)?;
        usage.map_err(|e| StorageError::io("statvfs", dir, 0, e))
    }

    /// Reads a whole small file (checkpoints, markers) through the page cache. `Ok(None)` if it
    /// does not exist.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn read_small_file(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match compio::fs::read(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("read", path, 0, e)),
        }
    }

    /// Creates (or truncates) a small file, writes `bytes`, and fsyncs it. Not atomic by
    /// itself: [`crate::atomic_file`] adds the temp name, rename and directory fsync.
    ///
    /// # Errors
    /// [`StorageError::Io`] / [`StorageError::DiskFull`].
    pub async fn write_small_file(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        if self.faults.as_ref().is_some_and(|f| f.disk_full()) {
            return Err(StorageError::DiskFull {
                path: path.to_path_buf(),
                needed_bytes: bytes.len() as u64,
            });
        }
        let file = compio::fs::File::create(path)
            .await
            .map_err(|e| StorageError::io("create", path, 0, e))?;
        let mut writer = &file;
        let mut written = 0usize;
        let mut buffer = bytes;
        while written < buffer.len() {
            let slice = buffer.slice(written..);
            let BufResult(result, slice) = writer.write_at(slice, written as u64).await;
            buffer = slice.into_inner();
            match result {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                    return Err(StorageError::io("write", path, written as u64, e));
                }
                Ok(n) => written += n,
                Err(e) => return Err(StorageError::io("write", path, written as u64, e)),
            }
        }
        file.sync_all()
            .await
            .map_err(|e| StorageError::io("fsync", path, 0, e))?;
        file.close()
            .await
            .map_err(|e| StorageError::io("close", path, 0, e))
    }
}

async fn path_exists(path: &Path) -> bool {
    compio::fs::metadata(path).await.is_ok()
}

fn list_dir_blocking(dir: &Path) -> io::Result<Vec<DirEntryInfo>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if !metadata.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        entries.push(DirEntryInfo {
            name,
            len: metadata.len(),
            modified: metadata.modified()?,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[allow(clippy::unnecessary_cast)] // statvfs field types differ between libc targets
fn statvfs_usage(dir: &Path) -> io::Result<DiskUsage> {
    // SAFETY: `libc::statvfs` is a plain C struct, and statvfs(3) fills it on success.
    let stat = unsafe { stat_path(dir, libc::statvfs)? };
    let fragment = stat.f_frsize as u64;
    let total_bytes = stat.f_blocks as u64 * fragment;
    let free_bytes = stat.f_bfree as u64 * fragment;
    Ok(DiskUsage {
        total_bytes,
        used_bytes: total_bytes.saturating_sub(free_bytes),
    })
}
