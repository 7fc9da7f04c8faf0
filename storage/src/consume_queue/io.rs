//! Block I/O for consume-queue files: one O_DIRECT read of a 4 KiB block, or one write of a run
//! of consecutive blocks of one file, at a time, each opening the file through [`Disk`] and
//! closing it again (no file handle is kept per queue, so the number of open fds never grows
//! with the number of queues).
//!
//! Must never: write anything but whole blocks at block-aligned positions, or treat a missing
//! file as empty data (the caller decides what a missing file means).

use std::io;
use std::path::Path;
use std::rc::Rc;

use crate::align::AlignedBuf;
use crate::error::{Result, StorageError};
use crate::file::{Disk, OpenMode};

use super::entry::BLOCK_SIZE;

/// True if `error` is an I/O error saying the file does not exist.
#[must_use]
pub fn is_not_found(error: &StorageError) -> bool {
    matches!(error, StorageError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Writes whole consecutive blocks at `position` of `path` in one write, creating the file
/// (and its directory) if missing. Returns true if the file was created (its directory then
/// needs an fsync).
///
/// # Errors
/// [`StorageError::Io`] / [`StorageError::DiskFull`].
///
/// # Panics
/// If `blocks` is empty or holds anything but whole blocks, or `position` is not block aligned.
pub async fn write_blocks(
    disk: &Disk,
    path: &Path,
    position: u64,
    blocks: &[Rc<[u8]>],
) -> Result<bool> {
    assert!(!blocks.is_empty(), "a block write writes blocks");
    assert!(
        blocks.iter().all(|block| block.len() == BLOCK_SIZE),
        "consume-queue writes are whole blocks"
    );
    assert_eq!(
        position % BLOCK_SIZE as u64,
        0,
        "consume-queue writes are block aligned"
    );
    let (file, created) = match disk.open(path, OpenMode::Existing, BLOCK_SIZE).await {
        Ok(file) => (file, false),
        Err(error) if is_not_found(&error) => {
            if let Some(dir) = path.parent() {
                disk.create_dir_all(dir).await?;
            }
            (
                disk.open(path, OpenMode::CreateOrOpen, BLOCK_SIZE).await?,
                true,
            )
        }
        Err(error) => return Err(error),
    };
    let len = blocks.len() * BLOCK_SIZE;
    let mut buffer = AlignedBuf::new_zeroed(len, BLOCK_SIZE);
    for (chunk, block) in buffer
        .as_full_mut_slice()
        .chunks_mut(BLOCK_SIZE)
        .zip(blocks)
    {
        chunk.copy_from_slice(block);
    }
    buffer.set_len_initialised(len);
    let (result, _) = file.write_all_at(buffer, position).await;
    result?;
    Ok(created)
}

/// Reads the block at `position` of `path`. `Ok(None)` if the file does not exist; bytes past
/// the end of the file read as zeros.
///
/// # Errors
/// [`StorageError::Io`].
///
/// # Panics
/// If `position` is not block aligned.
pub async fn read_block(disk: &Disk, path: &Path, position: u64) -> Result<Option<Rc<[u8]>>> {
    assert_eq!(
        position % BLOCK_SIZE as u64,
        0,
        "consume-queue reads are block aligned"
    );
    let file = match disk.open(path, OpenMode::ReadOnly, BLOCK_SIZE).await {
        Ok(file) => file,
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let buffer = AlignedBuf::new_zeroed(BLOCK_SIZE, BLOCK_SIZE);
    let (result, mut buffer) = file.read_exact_at(buffer, position, BLOCK_SIZE).await;
    result?;
    // A short read (end of file) leaves zeros: unwritten entries, which never validate.
    buffer.set_len_initialised(BLOCK_SIZE);
    Ok(Some(Rc::from(buffer.as_slice())))
}

/// Why a consume-queue file was not fdatasynced.
#[derive(Debug, Clone)]
pub enum SyncFailure {
    /// The file could not be opened (EMFILE, ENFILE, ENOMEM, ...): no fdatasync was attempted
    /// and what was written is as it was, so a later attempt can still make it durable.
    NotAttempted(StorageError),
    /// The fdatasync itself failed: what was written since the file's last good fdatasync may
    /// be lost, and a later one that succeeds would not say so (fsyncgate).
    Failed(StorageError),
}

impl SyncFailure {
    /// The underlying error.
    #[must_use]
    pub fn error(&self) -> &StorageError {
        match self {
            SyncFailure::NotAttempted(error) | SyncFailure::Failed(error) => error,
        }
    }
}

/// fdatasyncs `path` (opening it for the purpose). A missing file is not an error (it was
/// deleted by retention or a topic delete after being written).
///
/// # Errors
/// [`SyncFailure`]: whether the fdatasync was attempted at all.
pub async fn sync_file(disk: &Disk, path: &Path) -> Result<(), SyncFailure> {
    match disk.open(path, OpenMode::Existing, BLOCK_SIZE).await {
        Ok(file) => file.sync_data().await.map_err(SyncFailure::Failed),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(SyncFailure::NotAttempted(error)),
    }
}

/// Truncates `path` to `len` bytes (missing file: nothing to do).
///
/// # Errors
/// [`StorageError::Io`].
pub async fn truncate_file(disk: &Disk, path: &Path, len: u64) -> Result<()> {
    match disk.open(path, OpenMode::Existing, BLOCK_SIZE).await {
        Ok(file) => {
            file.set_len(len).await?;
            file.sync_data().await
        }
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error),
    }
}
