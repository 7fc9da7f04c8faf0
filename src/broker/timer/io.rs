//! The timer wheel's durable writes on io_uring: carries out a [`CheckpointPlan`] made by the
//! sans-io wheel (fdatasync of the timer-log segments written since the last checkpoint, the
//! atomic replacement of the wheel file, the deletion of segments with nothing pending).
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
