//! CommitLog retention: deleting whole old segments by age (at the `deleteWhen` hour) or when
//! the disk is too full.
//!
//! Owns [`RetentionPolicy`], [`RetentionClock`], [`RetentionOutcome`] and
//! `CommitLog::delete_expired`. Only a prefix of the oldest segments is ever deleted, so the
//! stored offsets stay contiguous and `min_offset` only grows.
//!
//! Must never: delete the active segment, a segment holding bytes not yet durable, or one past
//! the newest checkpoint (recovery starts there), or more than
//! [`SEGMENTS_DELETED_PER_CALL_MAX`] segments per call.

use std::time::{Duration, SystemTime};

use super::CommitLog;
use crate::error::Result;
use crate::limits::{
    DELETE_WHEN_HOUR_DEFAULT, DISK_MAX_USED_SPACE_RATIO_PERCENT_DEFAULT,
    FILE_RESERVED_TIME_HOURS_DEFAULT, SEGMENTS_DELETED_PER_CALL_MAX,
};

/// When segments may be deleted (RocketMQ `fileReservedTime`, `deleteWhen`,
/// `diskMaxUsedSpaceRatio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep a segment at least this long after its last write.
    pub file_reserved_time: Duration,
    /// Local hour (0..24) at which expired segments are deleted.
    pub delete_when_hour: u8,
    /// Above this disk usage (percent), delete the oldest segments even if not expired.
    pub disk_max_used_space_percent: u8,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            file_reserved_time: Duration::from_secs(FILE_RESERVED_TIME_HOURS_DEFAULT * 3600),
            delete_when_hour: DELETE_WHEN_HOUR_DEFAULT,
            disk_max_used_space_percent: DISK_MAX_USED_SPACE_RATIO_PERCENT_DEFAULT,
        }
    }
}

/// "Now" as retention sees it (given by the caller, so tests control it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionClock {
    /// Wall-clock now.
    pub now: SystemTime,
    /// Local hour of `now` (0..24).
    pub local_hour: u8,
}

/// What one retention call did.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionOutcome {
    /// Start offsets of the deleted segments.
    pub deleted_segments: Vec<u64>,
    /// Lowest offset stored afterwards.
    pub min_offset: u64,
    /// Disk usage seen before deleting (percent).
    pub disk_used_percent: f64,
}

impl CommitLog {
    /// Deletes the oldest segments that are expired (at `delete_when_hour` only) or, when the
    /// disk is fuller than allowed, the oldest ones regardless of age. Never the active segment,
    /// nor one reaching past the durable mark or the last checkpoint.
    ///
    /// # Errors
    /// [`crate::error::StorageError::Io`] from statvfs, fstat or unlink. Segments already removed
    /// from the log stay removed.
    ///
    /// # Panics
    /// If `clock.local_hour` is not below 24.
    pub async fn delete_expired(
        &self,
        clock: RetentionClock,
        policy: &RetentionPolicy,
    ) -> Result<RetentionOutcome> {
        assert!(
            clock.local_hour < 24,
            "local hour {} out of range",
            clock.local_hour
        );
        let inner = &self.inner;
        let usage = inner.disk.disk_usage(&inner.dir).await?;
        let disk_used_percent = usage.used_percent();
        let mut over_limit = disk_used_percent > f64::from(policy.disk_max_used_space_percent);
        let delete_time = clock.local_hour == policy.delete_when_hour;
        let mut deleted_segments = Vec::new();
        while deleted_segments.len() < SEGMENTS_DELETED_PER_CALL_MAX && (over_limit || delete_time)
        {
            let Some(candidate) = self.oldest_deletable() else {
                break;
            };
            if !over_limit {
                let modified = candidate.modified().await?;
                let age = clock.now.duration_since(modified).unwrap_or(Duration::ZERO);
                if age < policy.file_reserved_time {
                    break;
                }
            }
            let removed = {
                let mut state = inner.state.borrow_mut();
                let front = state
                    .segments
                    .pop_front()
                    .expect("candidate came from the front");
                assert!(
                    std::ptr::eq(front.file.as_ref(), candidate.as_ref()),
                    "front unchanged"
                );
                front
            };
            inner.disk.remove_file(removed.file.path()).await?;
            deleted_segments.push(removed.start);
            if over_limit {
                over_limit = inner.disk.disk_usage(&inner.dir).await?.used_percent()
                    > f64::from(policy.disk_max_used_space_percent);
            }
        }
        if !deleted_segments.is_empty() {
            inner.disk.sync_dir(&inner.dir).await?;
            tracing::info!(?deleted_segments, "commit log segments deleted");
        }
        Ok(RetentionOutcome {
            deleted_segments,
            min_offset: self.min_offset(),
            disk_used_percent,
        })
    }

    /// The oldest segment if it may be deleted: not active, wholly durable and checkpointed.
    fn oldest_deletable(&self) -> Option<std::rc::Rc<crate::file::DirectFile>> {
        let state = self.inner.state.borrow();
        if state.segments.len() < 2 {
            return None;
        }
        let front = state.segments.front()?;
        let limit = state.durable.min(state.checkpointed);
        (front.end() <= limit).then(|| std::rc::Rc::clone(&front.file))
    }
}
