//! The timer wheel's writes on io_uring: the buffered timer-log entries ([`write_log`]) and a
//! [`CheckpointPlan`] made by the sans-io wheel ([`write_checkpoint`]: fdatasync of the
//! timer-log segments written since the last checkpoint, the atomic replacement of the wheel
//! file, the deletion of segments with nothing pending).
//!
//! Owns the order of those steps; the wheel decides what they are.
//!
//! Must never: block the shard thread on a sync, a rename or an unlink (every step is an
//! io_uring operation through compio or `rmq_storage`'s [`Disk`]), delete a segment before the
//! wheel file that stops pointing into it is durable, or report success for a step that
//! failed.

use std::path::Path;

use rmq_storage::file::Disk;

use super::wheel::{CheckpointPlan, WheelError};

fn failed(op: &'static str, path: &Path, source: std::io::Error) -> WheelError {
    WheelError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn storage(op: &'static str, path: &Path, error: &rmq_storage::error::StorageError) -> WheelError {
    failed(op, path, std::io::Error::other(error.to_string()))
}

/// Writes the log entries `writes` (from `TimerWheel::log_writes`) at their positions,
/// creating segment files as needed; no sync (the next checkpoint's plan syncs them).
///
/// # Errors
/// [`WheelError::Io`] naming the file; the entries stay buffered in the wheel.
pub async fn write_log(writes: Vec<(std::path::PathBuf, u64, Vec<u8>)>) -> Result<(), WheelError> {
    for (path, offset, bytes) in writes {
        let file = compio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .open(&path)
            .await
            .map_err(|e| failed("open", &path, e))?;
        let compio::BufResult(written, _) =
            compio::io::AsyncWriteAtExt::write_all_at(&mut &file, bytes, offset).await;
        written.map_err(|e| failed("write", &path, e))?;
    }
    Ok(())
}

/// Carries out `plan` in its order: fdatasync each segment, replace the wheel file (temp
/// file written and fsynced, rename, directory fsync), delete the dead segments.
///
/// # Errors
/// [`WheelError::Io`] naming the step; the caller reports the plan failed and the next
/// checkpoint owes every step again.
pub async fn write_checkpoint(plan: &CheckpointPlan) -> Result<(), WheelError> {
    for path in &plan.sync {
        let file = compio::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .await
            .map_err(|e| failed("open", path, e))?;
        file.sync_data()
            .await
            .map_err(|e| failed("fdatasync", path, e))?;
    }
    let disk = Disk::real();
    rmq_storage::atomic_file::replace(&disk, &plan.wheel_path, plan.wheel_bytes.clone(), false)
        .await
        .map_err(|e| storage("replace", &plan.wheel_path, &e))?;
    for path in &plan.remove {
        disk.remove_file(path)
            .await
            .map_err(|e| storage("unlink", path, &e))?;
    }
    Ok(())
}
