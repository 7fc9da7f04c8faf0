//! One CommitLog segment file: naming, and preparing a new one ahead of need.
//!
//! Owns [`Segment`] (start offset, size, its O_DIRECT file, where it was sealed) and
//! [`preallocate`]: create the file, zero-fill it with O_DIRECT writes (so later appends never
//! hit unwritten extents, which would make every fdatasync also commit extent conversions) or,
//! for [`Preallocation::Sparse`], reserve it with `fallocate`, then fdatasync and fsync the
//! directory, all before any record is placed in it.
//!
//! Must never: hand out a segment whose zero-fill, reservation or syncs did not complete, or
//! leave a partly filled new file behind on failure (it is removed so the space comes back).

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use super::config::Preallocation;
use crate::align::AlignedBuf;
use crate::error::{Result, StorageError};
use crate::file::{DirectFile, Disk, OpenMode};
use crate::limits::{PREALLOCATE_CHUNK_BYTES, SEGMENT_NAME_DIGITS};

/// A segment file of the log: log offsets `[start, start + size)`.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) start: u64,
    pub(crate) size: u64,
    pub(crate) file: Rc<DirectFile>,
    /// Log offset where the segment's data ends, once it is sealed (a filler starts there, or
    /// it equals `end()` when the last record filled it exactly). `None` while active.
    pub(crate) sealed_at: Cell<Option<u64>>,
}

impl Segment {
    pub(crate) fn new(start: u64, size: u64, file: DirectFile) -> Self {
        Self {
            start,
            size,
            file: Rc::new(file),
            sealed_at: Cell::new(None),
        }
    }

    /// One past the last log offset of the segment.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.size
    }

    /// `true` if `offset` lies in this segment.
    pub(crate) fn contains(&self, offset: u64) -> bool {
        self.start <= offset && offset < self.end()
    }
}

/// File name of the segment starting at `start`: 20 digits, zero-padded.
#[must_use]
pub fn segment_file_name(start: u64) -> String {
    format!("{start:0width$}", width = SEGMENT_NAME_DIGITS)
}

/// Start offset encoded in a segment file name, or `None` if `name` is not one.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    if name.len() != SEGMENT_NAME_DIGITS || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Creates the segment `[start, start + size)` in `dir` and prepares its space as `mode` says
/// (zero-filled, or reserved with `fallocate`, falling back to zero-filling where that is not
/// supported), then fdatasyncs it and fsyncs the directory. A stale file of that name (a
/// preallocation interrupted by a crash) is replaced. `should_stop` is polled between writes
/// (shutdown).
///
/// # Errors
/// [`StorageError::DiskFull`] when the disk has no room (the partial file is removed),
/// [`StorageError::Io`] for other failures, [`StorageError::Closed`] if stopped.
pub(crate) async fn preallocate(
    disk: &Disk,
    dir: &Path,
    start: u64,
    size: u64,
    alignment: usize,
    mode: Preallocation,
    should_stop: impl Fn() -> bool,
) -> Result<Segment> {
    let path = dir.join(segment_file_name(start));
    disk.remove_file(&path).await?;
    let file = disk
        .open(&path, OpenMode::CreateNew, alignment)
        .await
        .map_err(|e| with_size(e, size))?;
    let reserved = match mode {
        Preallocation::Sparse => file.allocate(size).await,
        Preallocation::Zeroed => Ok(false),
    };
    let result = match reserved {
        Ok(true) => Ok(()),
        Ok(false) => zero_fill(&file, size, alignment, &should_stop).await,
        Err(error) => Err(error),
    };
    let result = match result {
        Ok(()) => file.sync_data().await,
        Err(error) => Err(error),
    };
    let result = match result {
        Ok(()) => disk.sync_dir(dir).await,
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        drop(file);
        if let Err(cleanup) = disk.remove_file(&path).await {
            tracing::warn!(path = %path.display(), %cleanup, "could not remove partial segment");
        }
        return Err(with_size(error, size));
    }
    assert_eq!(file.len(), size, "preallocated segment has its full size");
    Ok(Segment::new(start, size, file))
}

async fn zero_fill(
    file: &DirectFile,
    size: u64,
    alignment: usize,
    should_stop: &impl Fn() -> bool,
) -> Result<()> {
    let chunk = PREALLOCATE_CHUNK_BYTES.min(size as usize);
    let mut zeros = AlignedBuf::new_zeroed(chunk, alignment);
    let mut written = 0u64;
    while written < size {
        if should_stop() {
            return Err(StorageError::Closed);
        }
        let len = chunk.min((size - written) as usize);
        zeros.set_len_initialised(len);
        let (result, buffer) = file.write_all_at(zeros, written).await;
        zeros = buffer;
        result?;
        written += len as u64;
    }
    Ok(())
}

fn with_size(error: StorageError, size: u64) -> StorageError {
    match error {
        StorageError::DiskFull { path, .. } => StorageError::DiskFull {
            path,
            needed_bytes: size,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{fd_has_o_direct, scratch_dir_on_real_disk, FaultInjector};

    #[test]
    fn names_roundtrip() {
        assert_eq!(segment_file_name(1 << 30), "00000000001073741824");
        assert_eq!(
            parse_segment_file_name("00000000001073741824"),
            Some(1 << 30)
        );
        assert_eq!(parse_segment_file_name("0000000000107374182"), None);
        assert_eq!(parse_segment_file_name("0000000000107374182x"), None);
        assert_eq!(parse_segment_file_name("checkpoint"), None);
    }

    #[test]
    fn preallocate_zero_fills_with_o_direct() {
        let dir = scratch_dir_on_real_disk("segment-prealloc").expect("scratch dir");
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let disk = Disk::real();
                let size = 256 * 1024;
                let segment =
                    preallocate(&disk, &dir, size, size, 4096, Preallocation::Zeroed, || {
                        false
                    })
                    .await
                    .expect("prealloc");
                assert_eq!(segment.start, size);
                assert!(fd_has_o_direct(segment.file.raw_fd()).expect("fdinfo"));
                let bytes = std::fs::read(dir.join(segment_file_name(size))).expect("read back");
                assert_eq!(bytes.len() as u64, size);
                assert!(bytes.iter().all(|b| *b == 0));
            });
    }

    #[test]
    fn sparse_preallocation_reserves_without_writing() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch_dir_on_real_disk("segment-sparse").expect("scratch dir");
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let faults = FaultInjector::new();
                let disk = Disk::with_faults(faults.clone());
                let size = 4 << 20;
                let segment =
                    preallocate(&disk, &dir, 0, size, 4096, Preallocation::Sparse, || false)
                        .await
                        .expect("prealloc");
                assert_eq!(segment.file.len(), size);
                assert_eq!(faults.writes(), 0, "no zero-fill writes");
                let path = dir.join(segment_file_name(0));
                let metadata = std::fs::metadata(&path).expect("stat");
                assert_eq!(metadata.len(), size);
                assert!(
                    metadata.blocks() * 512 >= size,
                    "the space is reserved: {} blocks",
                    metadata.blocks()
                );
                let bytes = std::fs::read(&path).expect("read back");
                assert!(
                    bytes.iter().all(|b| *b == 0),
                    "unwritten extents read as zeros"
                );
                drop(segment);

                faults.set_disk_full(true);
                let error =
                    preallocate(&disk, &dir, size, size, 4096, Preallocation::Sparse, || {
                        false
                    })
                    .await
                    .expect_err("full");
                assert!(error.is_disk_full(), "{error}");
                assert!(!dir.join(segment_file_name(size)).exists());
            });
    }

    #[test]
    fn preallocate_on_full_disk_leaves_nothing() {
        let dir = scratch_dir_on_real_disk("segment-full").expect("scratch dir");
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let faults = FaultInjector::new();
                let disk = Disk::with_faults(faults.clone());
                faults.set_disk_full(true);
                let error =
                    preallocate(&disk, &dir, 0, 65536, 4096, Preallocation::Zeroed, || false)
                        .await
                        .expect_err("full");
                assert!(
                    matches!(
                        error,
                        StorageError::DiskFull {
                            needed_bytes: 65536,
                            ..
                        }
                    ),
                    "{error}"
                );
                assert!(!dir.join(segment_file_name(0)).exists());
                // Space appears once the file exists but is empty: writes past its end still fail.
                faults.set_disk_full(false);
                faults.fail_nth_write(2);
                let error = preallocate(
                    &disk,
                    &dir,
                    0,
                    65536 * 128,
                    4096,
                    Preallocation::Zeroed,
                    || false,
                )
                .await
                .expect_err("EIO");
                assert!(matches!(error, StorageError::Io { .. }), "{error}");
                assert!(
                    !dir.join(segment_file_name(0)).exists(),
                    "partial file removed"
                );
                preallocate(&disk, &dir, 0, 65536, 4096, Preallocation::Zeroed, || false)
                    .await
                    .expect("works again");
            });
    }
}
