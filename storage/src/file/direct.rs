//! [`DirectFile`]: one file opened with `O_DIRECT`, with aligned positioned reads and writes
//! through io_uring, fdatasync, truncate and the tracked file size. With a [`FaultInjector`] this
//! is where writes fail, come back short or hit a full disk, where fdatasyncs fail, and where the
//! pre-image of every unsynced write is recorded for crash simulation.
//!
//! Must never: use the page cache (the handle only comes from [`super::Disk::open`], which sets
//! `O_DIRECT`), accept a misaligned position, length or buffer (programmer error: assert), or
//! retry a failed write or fdatasync on its own (the caller decides; see fsyncgate).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use compio::buf::{BufResult, IntoInner, IoBuf, IoBufMut};
use compio::io::{AsyncReadAt, AsyncWriteAt};

use super::fault::{Undo, WriteFault};
use super::FaultInjector;
use crate::align::{align_down, align_up, AlignedBuf};
use crate::error::{Result, StorageError};

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
    /// Wraps a file [`super::Disk::open`] opened with `O_DIRECT`; `len` is its fstat size.
    pub(super) fn new(
        file: compio::fs::File,
        path: PathBuf,
        alignment: usize,
        len: u64,
        faults: Option<Rc<FaultInjector>>,
    ) -> Self {
        Self {
            file,
            path,
            alignment,
            len: Cell::new(len),
            faults,
        }
    }

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
            if let Some(delay) = faults.write_delay() {
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
            if let Some(delay) = faults.sync_delay() {
                compio::time::sleep(delay).await;
            }
            if let Some(error) = faults.before_sync(&self.path) {
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

    /// Reserves `[0, len)` on disk with `fallocate(2)` (mode 0: blocks allocated as unwritten
    /// extents, which read as zeros, and the size set to `len`), without writing them. `Ok(false)`
    /// if the file system does not support it (the caller zero-fills instead).
    ///
    /// # Errors
    /// [`StorageError::DiskFull`] when the disk has no room (or the fault injector says it is
    /// full), [`StorageError::Io`] otherwise.
    pub async fn allocate(&self, len: u64) -> Result<bool> {
        if self.faults.as_ref().is_some_and(|f| f.disk_full()) {
            return Err(StorageError::io(
                "fallocate",
                &self.path,
                0,
                io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        let length = libc::off_t::try_from(len).expect("a segment size fits off_t");
        // A duplicate descriptor for the blocking thread: if this future is dropped while the
        // call runs, the call still targets this file, never a reused descriptor number.
        // SAFETY: `raw_fd` is this open file's descriptor; F_DUPFD_CLOEXEC returns a new one
        // (close-on-exec, as every descriptor the store opens) or -1.
        let duplicate = unsafe { libc::fcntl(self.raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if duplicate < 0 {
            return Err(StorageError::io(
                "dup",
                &self.path,
                0,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `duplicate` is a descriptor this process just opened and nothing else owns.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(duplicate) };
        let result = compio::runtime::spawn_blocking(move || {
            // SAFETY: `owned` is an open descriptor for the duration of the call.
            let rc = unsafe { libc::fallocate(owned.as_raw_fd(), 0, 0, length) };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
        .await
        .map_err(|_| StorageError::Closed)?;
        match result {
            Ok(()) => {
                self.len.set(self.len.get().max(len));
                Ok(true)
            }
            Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
            Err(error) => Err(StorageError::io("fallocate", &self.path, 0, error)),
        }
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

#[cfg(test)]
mod tests {
    use crate::align::AlignedBuf;
    use crate::file::{io_alignment, with_scratch_disk, OpenMode};
    use crate::limits::BLOCK_SIZE_MIN;

    #[test]
    fn aligned_write_read_roundtrip_and_alignment_probe() {
        with_scratch_disk("file-rw", |disk, dir| async move {
            let alignment = io_alignment(&dir).await;
            assert!(alignment >= BLOCK_SIZE_MIN);
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
        with_scratch_disk("file-misaligned", |disk, dir| async move {
            let file = disk
                .open(&dir.join("f"), OpenMode::CreateNew, 4096)
                .await
                .expect("open");
            let mut buf = AlignedBuf::new_zeroed(4096, 4096);
            buf.set_len_initialised(4096);
            let _ = file.write_at(buf, 100).await;
        });
    }
}
