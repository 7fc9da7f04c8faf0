//! Files and directories for the storage crate: O_DIRECT positioned I/O through io_uring, with an
//! optional fault injector for tests.
//!
//! Owns [`Disk`] (the handle every storage component opens files through), [`DirectFile`] (one
//! file opened with `O_DIRECT`, aligned positioned reads / writes, fdatasync), [`FaultInjector`]
//! (fail the N-th write or fdatasync, short writes, disk full, and "crash": revert or tear writes
//! not covered by a completed fdatasync), the device alignment probe, the `/proc` check that a fd
//! really has `O_DIRECT`, and the real-disk scratch directory helper for tests and benches.
//!
//! Must never: use the page cache for data files (every [`DirectFile`] has `O_DIRECT`), accept a
//! misaligned position, length or buffer (programmer error: assert), or retry a failed write or
//! fdatasync on its own (the caller decides; see fsyncgate). Directory listing, statvfs and the
//! alignment probe have no io_uring op; they run on compio's blocking pool.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use compio::buf::{BufResult, IntoInner, IoBuf, IoBufMut};
use compio::io::{AsyncReadAt, AsyncWriteAt};

use crate::align::{align_down, align_up, AlignedBuf};
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
    /// later call on the file must respect (see [`io_alignment`]).
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
            let creates = matches!(mode, OpenMode::CreateNew | OpenMode::CreateOrOpen);
            if creates && faults.disk_full.get() && !path_exists(path).await {
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
        Ok(DirectFile {
            file,
            path: path.to_path_buf(),
            alignment,
            len: Cell::new(metadata.len()),
            faults: self.faults.clone(),
        })
    }

    /// fsyncs a directory, making file creations, renames and removals in it durable.
    ///
    /// # Errors
    /// [`StorageError::Io`] from open or fsync.
    pub async fn sync_dir(&self, dir: &Path) -> Result<()> {
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
        if let Some(percent) = self.faults.as_ref().and_then(|f| f.disk_used_percent.get()) {
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
    /// itself: [`crate::checkpoint::write_atomic`] adds the rename and directory fsync.
    ///
    /// # Errors
    /// [`StorageError::Io`] / [`StorageError::DiskFull`].
    pub async fn write_small_file(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        if self.faults.as_ref().is_some_and(|f| f.disk_full.get()) {
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
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory of
    // the right type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct (which was also zero-initialised).
    let stat = unsafe { stat.assume_init() };
    let fragment = stat.f_frsize as u64;
    let total_bytes = stat.f_blocks as u64 * fragment;
    let free_bytes = stat.f_bfree as u64 * fragment;
    Ok(DiskUsage {
        total_bytes,
        used_bytes: total_bytes.saturating_sub(free_bytes),
    })
}

/// One file opened with `O_DIRECT`. Every read and write must use positions, lengths and buffer
/// addresses aligned to [`DirectFile::alignment`]; violating that is a programmer error (panic).
#[derive(Debug)]
pub struct DirectFile {
    file: compio::fs::File,
    path: PathBuf,
    alignment: usize,
    /// File size as last seen (fstat at open, then grown by writes / set by `set_len`).
    len: Cell<u64>,
    faults: Option<Rc<FaultInjector>>,
}

impl DirectFile {
    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The I/O alignment for positions, lengths and buffers.
    #[must_use]
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// The raw fd (for the `/proc` O_DIRECT check).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// File size as tracked by this handle (fstat at open, grown by writes).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len.get()
    }

    /// `true` if the tracked size is 0.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    fn assert_aligned(&self, pos: u64, len: usize, ptr: *const u8) {
        let alignment = self.alignment as u64;
        assert!(
            pos % alignment == 0,
            "O_DIRECT position {pos} not aligned to {alignment}"
        );
        assert!(
            len as u64 % alignment == 0,
            "O_DIRECT length {len} not aligned to {alignment}"
        );
        assert!(
            ptr as u64 % alignment == 0,
            "O_DIRECT buffer not aligned to {alignment}"
        );
    }

    /// One positioned write of the whole buffer (the kernel may write less: the count is
    /// returned). With a fault injector this is where writes fail, come back short or hit a full
    /// disk.
    ///
    /// # Panics
    /// If `pos`, the buffer length or the buffer address is not aligned.
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        self.assert_aligned(pos, buf.buf_len(), buf.buf_ptr());
        let len = buf.buf_len();
        let mut limit = len;
        if let Some(faults) = &self.faults {
            if let Some(delay) = faults.write_delay.get() {
                compio::time::sleep(delay).await;
            }
            match faults.before_write(&self.path, pos, len as u64, self.len.get()) {
                WriteFault::None => {}
                WriteFault::Fail(error) => return BufResult(Err(error), buf),
                WriteFault::Short => {
                    limit = align_down(len as u64 / 2, self.alignment as u64) as usize
                }
            }
            if faults.tracking() {
                if let Err(error) = self.record_preimage(faults, pos, limit).await {
                    return BufResult(Err(error), buf);
                }
            }
        }
        let mut writer = &self.file;
        let BufResult(result, buf) = if limit == len {
            writer.write_at(buf, pos).await
        } else {
            let BufResult(result, slice) = writer.write_at(buf.slice(0..limit), pos).await;
            BufResult(result, slice.into_inner())
        };
        if let Ok(written) = result {
            self.len.set(self.len.get().max(pos + written as u64));
        }
        BufResult(result, buf)
    }

    /// Writes the whole buffer, continuing after short writes.
    ///
    /// # Errors
    /// [`StorageError::Io`] / [`StorageError::DiskFull`]; a zero-length or misaligned short
    /// write is an I/O error.
    ///
    /// # Panics
    /// If `pos` or the buffer is not aligned.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> (Result<()>, B) {
        let total = buf.buf_len();
        let mut done = 0usize;
        let mut buf = buf;
        while done < total {
            let BufResult(result, slice) =
                self.write_at(buf.slice(done..), pos + done as u64).await;
            buf = slice.into_inner();
            match result {
                Ok(n) if n > 0 && n % self.alignment == 0 => done += n,
                Ok(n) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, format!("short write {n}"));
                    return (
                        Err(StorageError::io("write", &self.path, pos + done as u64, e)),
                        buf,
                    );
                }
                Err(e) => {
                    return (
                        Err(StorageError::io("write", &self.path, pos + done as u64, e)),
                        buf,
                    )
                }
            }
        }
        (Ok(()), buf)
    }

    /// One positioned read into the buffer's full capacity (sets its `len` to the count read).
    ///
    /// # Panics
    /// If `pos`, the buffer capacity or address is not aligned.
    pub async fn read_at<B: IoBufMut>(&self, mut buf: B, pos: u64) -> BufResult<usize, B> {
        let capacity = buf.buf_capacity();
        let ptr = buf.buf_mut_ptr().cast::<u8>().cast_const();
        self.assert_aligned(pos, capacity, ptr);
        self.file.read_at(buf, pos).await
    }

    /// Reads exactly `len` bytes (aligned) at `pos` into `buf` (from its start). Stops early only
    /// at end of file: the returned buffer's `len()` says how many bytes were read.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    ///
    /// # Panics
    /// If `pos` or `len` is not aligned, or `len` exceeds the buffer capacity.
    pub async fn read_exact_at(
        &self,
        buf: AlignedBuf,
        pos: u64,
        len: usize,
    ) -> (Result<()>, AlignedBuf) {
        let mut buf = buf;
        assert!(
            len <= buf.capacity(),
            "read of {len} into a {} buffer",
            buf.capacity()
        );
        self.assert_aligned(pos, len, buf.as_ptr());
        buf.set_len_initialised(0);
        let mut done = 0usize;
        while done < len {
            let piece = buf.slice(done..len);
            let BufResult(result, piece) = self.file.read_at(piece, pos + done as u64).await;
            buf = piece.into_inner();
            match result {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => {
                    return (
                        Err(StorageError::io("read", &self.path, pos + done as u64, e)),
                        buf,
                    )
                }
            }
            buf.set_len_initialised(done);
        }
        buf.set_len_initialised(done);
        (Ok(()), buf)
    }

    /// fdatasync: makes completed writes durable. With a fault injector this is where syncs
    /// fail; a successful one marks this file's writes as durable for crash simulation.
    ///
    /// # Errors
    /// [`StorageError::Io`]. After an error the written data must be treated as lost.
    pub async fn sync_data(&self) -> Result<()> {
        if let Some(faults) = &self.faults {
            if let Some(delay) = faults.sync_delay.get() {
                compio::time::sleep(delay).await;
            }
            if let Some(error) = faults.before_sync() {
                return Err(StorageError::io("fdatasync", &self.path, 0, error));
            }
        }
        self.file
            .sync_data()
            .await
            .map_err(|e| StorageError::io("fdatasync", &self.path, 0, e))?;
        if let Some(faults) = &self.faults {
            faults.synced(&self.path);
        }
        Ok(())
    }

    /// Truncates or extends the file.
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .await
            .map_err(|e| StorageError::io("ftruncate", &self.path, len, e))?;
        self.len.set(len);
        Ok(())
    }

    /// Last modification time (fstat).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub async fn modified(&self) -> Result<SystemTime> {
        let metadata = self
            .file
            .metadata()
            .await
            .map_err(|e| StorageError::io("fstat", &self.path, 0, e))?;
        metadata
            .modified()
            .map_err(|e| StorageError::io("fstat", &self.path, 0, e))
    }

    /// Reads the bytes a write is about to replace, for crash simulation.
    async fn record_preimage(
        &self,
        faults: &FaultInjector,
        pos: u64,
        len: usize,
    ) -> io::Result<()> {
        let old_len = self.len.get();
        let covered_end = (pos + len as u64).min(align_up(old_len, self.alignment as u64));
        let mut preimage = Vec::new();
        if covered_end > pos {
            let read_len = (covered_end - pos) as usize;
            let buffer = AlignedBuf::new_zeroed(read_len, self.alignment);
            let (result, buffer) = self.read_exact_at(buffer, pos, read_len).await;
            result.map_err(|e| io::Error::other(e.to_string()))?;
            preimage = buffer.as_slice().to_vec();
        }
        faults.record_undo(
            &self.path,
            Undo {
                pos,
                len: len as u64,
                preimage,
                old_len,
            },
        );
        Ok(())
    }
}

/// What the fault injector decided for one write.
enum WriteFault {
    None,
    Fail(io::Error),
    Short,
}

/// The bytes a not-yet-synced write replaced, so a simulated crash can put them back.
#[derive(Debug, Clone)]
struct Undo {
    pos: u64,
    len: u64,
    /// Old contents of `[pos, pos + preimage.len())` (the part that existed before the write).
    preimage: Vec<u8>,
    /// File size before the write.
    old_len: u64,
}

/// How a simulated crash treats writes that no completed fdatasync covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost (files revert to their last synced content and size).
    DropUnsynced,
    /// Each block written since the last sync independently ends up in any of its versions
    /// (original, after some of the writes, or latest), chosen by a PRNG with this seed: a
    /// torn write as a power failure can leave it.
    Torn {
        /// PRNG seed.
        seed: u64,
    },
}

/// Injected faults for a [`Disk`]. Faults available (and nothing else):
/// - fail the N-th data-file write (`EIO`, nothing written) or fdatasync (`EIO`, data lost);
/// - make the N-th write short (half its length, aligned down; the rest is not written);
/// - disk full: creating a file or writing past a file's end fails with `ENOSPC`;
/// - report a chosen disk usage percentage to retention;
/// - delay every write or fdatasync by a fixed time (a slow device);
/// - crash: revert (or tear) every write no successful fdatasync of its file covered.
///
/// "N-th" counts from the call that arms it: `1` is the next write. Each armed fault fires once.
#[derive(Debug, Default)]
pub struct FaultInjector {
    writes: Cell<u64>,
    syncs: Cell<u64>,
    fail_write_at: Cell<Option<u64>>,
    fail_sync_at: Cell<Option<u64>>,
    short_write_at: Cell<Option<u64>>,
    disk_full: Cell<bool>,
    disk_used_percent: Cell<Option<u8>>,
    sync_delay: Cell<Option<std::time::Duration>>,
    write_delay: Cell<Option<std::time::Duration>>,
    track_unsynced: Cell<bool>,
    unsynced: RefCell<HashMap<PathBuf, Vec<Undo>>>,
}

impl FaultInjector {
    /// A fresh injector with no faults armed and unsynced-write tracking off.
    #[must_use]
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Writes seen so far.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// fdatasyncs seen so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.syncs.get()
    }

    /// Fails the `n`-th write from now (`n >= 1`) with EIO.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn fail_nth_write(&self, n: u64) {
        assert!(n >= 1);
        self.fail_write_at.set(Some(self.writes.get() + n));
    }

    /// Fails the `n`-th fdatasync from now (`n >= 1`) with EIO.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn fail_nth_sync(&self, n: u64) {
        assert!(n >= 1);
        self.fail_sync_at.set(Some(self.syncs.get() + n));
    }

    /// Makes the `n`-th write from now (`n >= 1`) short.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn short_nth_write(&self, n: u64) {
        assert!(n >= 1);
        self.short_write_at.set(Some(self.writes.get() + n));
    }

    /// Disk full on / off: file creation and writes past a file's end fail with ENOSPC.
    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.set(full);
    }

    /// Overrides the disk usage [`Disk::disk_usage`] reports (`None`: real statvfs).
    pub fn set_disk_used_percent(&self, percent: Option<u8>) {
        self.disk_used_percent.set(percent);
    }

    /// Delays every later fdatasync by `delay` (`None`: no delay).
    pub fn set_sync_delay(&self, delay: Option<std::time::Duration>) {
        self.sync_delay.set(delay);
    }

    /// Delays every later write by `delay` (`None`: no delay).
    pub fn set_write_delay(&self, delay: Option<std::time::Duration>) {
        self.write_delay.set(delay);
    }

    /// Starts recording the pre-image of every write so [`FaultInjector::crash`] can revert it.
    /// Costs one read per write; for tests only.
    pub fn track_unsynced(&self, on: bool) {
        self.track_unsynced.set(on);
        if !on {
            self.unsynced.borrow_mut().clear();
        }
    }

    fn tracking(&self) -> bool {
        self.track_unsynced.get()
    }

    /// Bytes written since the last fdatasync of their file, summed over files.
    #[must_use]
    pub fn unsynced_bytes(&self) -> u64 {
        self.unsynced
            .borrow()
            .values()
            .flatten()
            .map(|undo| undo.len)
            .sum()
    }

    fn before_write(&self, path: &Path, pos: u64, len: u64, file_len: u64) -> WriteFault {
        let count = self.writes.get() + 1;
        self.writes.set(count);
        if self.fail_write_at.get() == Some(count) {
            self.fail_write_at.set(None);
            return WriteFault::Fail(io::Error::from_raw_os_error(libc::EIO));
        }
        if self.disk_full.get() && pos + len > file_len {
            tracing::debug!(path = %path.display(), pos, len, "injected ENOSPC");
            return WriteFault::Fail(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        if self.short_write_at.get() == Some(count) {
            self.short_write_at.set(None);
            return WriteFault::Short;
        }
        WriteFault::None
    }

    fn before_sync(&self) -> Option<io::Error> {
        let count = self.syncs.get() + 1;
        self.syncs.set(count);
        if self.fail_sync_at.get() == Some(count) {
            self.fail_sync_at.set(None);
            return Some(io::Error::from_raw_os_error(libc::EIO));
        }
        None
    }

    fn record_undo(&self, path: &Path, undo: Undo) {
        self.unsynced
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_default()
            .push(undo);
    }

    fn synced(&self, path: &Path) {
        self.unsynced.borrow_mut().remove(path);
    }

    fn forget_file(&self, path: &Path) {
        self.unsynced.borrow_mut().remove(path);
    }

    /// Simulates a power loss for data files: every write no completed fdatasync covered is
    /// reverted (or torn, per `mode`). Call only after the storage using this injector has
    /// stopped issuing I/O (e.g. after `CommitLog::abandon`). Uses blocking std I/O: test only.
    ///
    /// # Errors
    /// The I/O error of restoring a file.
    pub fn crash(&self, mode: CrashMode) -> io::Result<()> {
        let unsynced = std::mem::take(&mut *self.unsynced.borrow_mut());
        let mut rng = XorShift(match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::Torn { seed } => seed | 1,
        });
        for (path, undos) in unsynced {
            if undos.is_empty() {
                continue;
            }
            match mode {
                CrashMode::DropUnsynced => revert_all(&path, &undos)?,
                CrashMode::Torn { .. } => tear(&path, &undos, &mut rng)?,
            }
        }
        Ok(())
    }
}

/// Tiny deterministic PRNG for torn crashes (no dependency in the library).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % bound.max(1)
    }
}

fn open_plain(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

fn revert_all(path: &Path, undos: &[Undo]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = open_plain(path)?;
    for undo in undos.iter().rev() {
        file.write_all_at(&undo.preimage, undo.pos)?;
    }
    file.set_len(undos[0].old_len)?;
    file.sync_all()
}

/// Per 4 KiB block touched by unsynced writes, pick one of its versions at random.
fn tear(path: &Path, undos: &[Undo], rng: &mut XorShift) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = BLOCK_SIZE_MIN as u64;
    let file = open_plain(path)?;
    // Size: the original, or the size after some write (all writes extend monotonically here).
    let sizes: Vec<u64> = std::iter::once(undos[0].old_len)
        .chain(undos.iter().map(|u| u.old_len.max(u.pos + u.len)))
        .collect();
    let final_len = sizes[rng.below(sizes.len() as u64) as usize];
    let mut blocks: Vec<u64> = undos
        .iter()
        .flat_map(|u| (u.pos / BLOCK..(u.pos + u.len).div_ceil(BLOCK)).map(|b| b * BLOCK))
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    for block in blocks {
        // Versions of this block before each write touching it; the current content is last.
        let touching: Vec<&Undo> = undos
            .iter()
            .filter(|u| u.pos <= block && block < u.pos + u.len)
            .collect();
        let choice = rng.below(touching.len() as u64 + 1) as usize;
        if choice == touching.len() {
            continue; // keep the latest version
        }
        let undo = touching[choice];
        let offset = (block - undo.pos) as usize;
        if offset + BLOCK as usize <= undo.preimage.len() {
            file.write_all_at(&undo.preimage[offset..offset + BLOCK as usize], block)?;
        } else {
            // The block did not exist before that write: it reads back as zeros.
            file.write_all_at(&[0u8; BLOCK as usize], block)?;
        }
    }
    file.set_len(final_len)?;
    file.sync_all()
}

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

/// `true` if `dir` is on tmpfs (statfs).
///
/// # Errors
/// If statfs fails.
pub fn is_tmpfs(dir: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: valid NUL-terminated path and a writable, correctly typed out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0 and filled the (zero-initialised) struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between libc targets
    Ok(stat.f_type as i64 == TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn o_direct_check_tells_the_difference() {
        let dir = scratch_dir_on_real_disk("file-odirect").expect("scratch dir");
        run(async {
            let disk = Disk::real();
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

    #[test]
    fn aligned_write_read_roundtrip_and_alignment_probe() {
        let dir = scratch_dir_on_real_disk("file-rw").expect("scratch dir");
        run(async {
            let alignment = io_alignment(&dir).await;
            assert!(alignment >= BLOCK_SIZE_MIN);
            let disk = Disk::real();
            let file = disk
                .open(&dir.join("f"), OpenMode::CreateNew, alignment)
                .await
                .expect("open");
            let mut buf = AlignedBuf::new_zeroed(2 * alignment, alignment);
            buf.as_full_mut_slice()[..5].copy_from_slice(b"hello");
            buf.set_len_initialised(2 * alignment);
            let (result, _) = file.write_all_at(buf, alignment as u64).await;
            result.expect("write");
            file.sync_data().await.expect("sync");
            assert_eq!(file.len(), 3 * alignment as u64);
            let read = AlignedBuf::new_zeroed(alignment, alignment);
            let (result, read) = file.read_exact_at(read, alignment as u64, alignment).await;
            result.expect("read");
            assert_eq!(&read.as_slice()[..5], b"hello");
            // Reading past the end returns fewer bytes, not an error.
            let read = AlignedBuf::new_zeroed(alignment, alignment);
            let (result, read) = file
                .read_exact_at(read, 8 * alignment as u64, alignment)
                .await;
            result.expect("read past end");
            assert_eq!(read.len(), 0);
        });
    }

    #[test]
    #[should_panic(expected = "not aligned")]
    fn misaligned_write_panics() {
        let dir = scratch_dir_on_real_disk("file-misaligned").expect("scratch dir");
        run(async {
            let file = Disk::real()
                .open(&dir.join("f"), OpenMode::CreateNew, 4096)
                .await
                .expect("open");
            let mut buf = AlignedBuf::new_zeroed(4096, 4096);
            buf.set_len_initialised(4096);
            let _ = file.write_at(buf, 100).await;
        });
    }

    #[test]
    fn injected_faults_fire_once() {
        let dir = scratch_dir_on_real_disk("file-faults").expect("scratch dir");
        run(async {
            let faults = FaultInjector::new();
            let disk = Disk::with_faults(faults.clone());
            let file = disk
                .open(&dir.join("f"), OpenMode::CreateNew, 4096)
                .await
                .expect("open");
            let block = || {
                let mut buf = AlignedBuf::new_zeroed(8192, 4096);
                buf.set_len_initialised(8192);
                buf
            };
            faults.fail_nth_write(2);
            assert!(file.write_all_at(block(), 0).await.0.is_ok());
            assert!(file.write_all_at(block(), 0).await.0.is_err());
            assert!(file.write_all_at(block(), 0).await.0.is_ok());
            faults.fail_nth_sync(1);
            assert!(file.sync_data().await.is_err());
            assert!(file.sync_data().await.is_ok());
            // A short write is completed by write_all_at.
            faults.short_nth_write(1);
            let before = faults.writes();
            assert!(file.write_all_at(block(), 8192).await.0.is_ok());
            assert_eq!(faults.writes(), before + 2);
            faults.set_disk_full(true);
            let error = file
                .write_all_at(block(), 16384)
                .await
                .0
                .expect_err("ENOSPC");
            assert!(error.is_disk_full());
            assert!(
                file.write_all_at(block(), 0).await.0.is_ok(),
                "overwrite needs no space"
            );
            let error = disk
                .open(&dir.join("g"), OpenMode::CreateNew, 4096)
                .await
                .expect_err("full");
            assert!(error.is_disk_full());
        });
    }

    #[test]
    fn crash_reverts_unsynced_writes() {
        let dir = scratch_dir_on_real_disk("file-crash").expect("scratch dir");
        let path = dir.join("f");
        let faults = FaultInjector::new();
        faults.track_unsynced(true);
        run(async {
            let disk = Disk::with_faults(faults.clone());
            let file = disk
                .open(&path, OpenMode::CreateNew, 4096)
                .await
                .expect("open");
            let filled = |byte: u8| {
                let mut buf = AlignedBuf::new_zeroed(4096, 4096);
                buf.as_full_mut_slice().fill(byte);
                buf.set_len_initialised(4096);
                buf
            };
            file.write_all_at(filled(1), 0).await.0.expect("write");
            file.sync_data().await.expect("sync");
            file.write_all_at(filled(2), 0).await.0.expect("write");
            file.write_all_at(filled(3), 4096).await.0.expect("write");
            assert_eq!(faults.unsynced_bytes(), 8192);
        });
        faults.crash(CrashMode::DropUnsynced).expect("crash");
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 4096, "the unsynced extension is gone");
        assert!(
            bytes.iter().all(|b| *b == 1),
            "the unsynced overwrite is reverted"
        );
        assert_eq!(faults.unsynced_bytes(), 0);
    }

    #[test]
    fn torn_crash_keeps_some_version_of_each_block() {
        let dir = scratch_dir_on_real_disk("file-torn").expect("scratch dir");
        let path = dir.join("f");
        let faults = FaultInjector::new();
        faults.track_unsynced(true);
        run(async {
            let disk = Disk::with_faults(faults.clone());
            let file = disk
                .open(&path, OpenMode::CreateNew, 4096)
                .await
                .expect("open");
            for byte in [1u8, 2, 3] {
                let mut buf = AlignedBuf::new_zeroed(4 * 4096, 4096);
                buf.as_full_mut_slice().fill(byte);
                buf.set_len_initialised(4 * 4096);
                file.write_all_at(buf, 0).await.0.expect("write");
            }
        });
        faults.crash(CrashMode::Torn { seed: 7 }).expect("crash");
        let bytes = std::fs::read(&path).expect("read back");
        for block in bytes.chunks(4096) {
            assert!(
                block.iter().all(|b| *b == block[0]),
                "a block is one version"
            );
            assert!([0u8, 1, 2, 3].contains(&block[0]));
        }
    }
}
