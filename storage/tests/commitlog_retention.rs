//! CommitLog retention: expired segments go at the delete hour only, a too-full disk deletes the
//! oldest segments regardless of age, the active segment and anything past the checkpoint stay,
//! and reads below the new minimum offset are refused.

mod commitlog_common;

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use commitlog_common::{assert_same, run, scratch, small_config, TestRecord};
use rmq_storage::commitlog::segment::segment_file_name;
use rmq_storage::commitlog::{Appended, CommitLog, FlushPolicy, RetentionClock, RetentionPolicy};
use rmq_storage::error::StorageError;
use rmq_storage::file::{Disk, FaultInjector};

const HOUR: Duration = Duration::from_secs(3600);

async fn filled_log(
    dir: &std::path::Path,
    disk: Disk,
    count: u64,
) -> (CommitLog, Vec<(Appended, TestRecord)>) {
    let (log, _) = CommitLog::open(dir, small_config(FlushPolicy::Async), disk)
        .await
        .expect("open");
    let mut placed = Vec::new();
    for seq in 0..count {
        let record = TestRecord::new(seq, 3000);
        placed.push((
            log.append(&record.as_append()).await.expect("append"),
            record,
        ));
    }
    log.flush().await.expect("flush");
    log.checkpoint().await.expect("checkpoint");
    (log, placed)
}

#[test]
fn expired_segments_are_deleted_only_at_the_delete_hour() {
    let dir = scratch("ret-age");
    run(async {
        let (log, placed) = filled_log(&dir, Disk::real(), 200).await;
        let segments_before = log.segment_starts();
        assert!(segments_before.len() >= 4);
        let policy = RetentionPolicy {
            file_reserved_time: HOUR,
            delete_when_hour: 4,
            disk_max_used_space_percent: 100,
        };
        let later = SystemTime::now() + 2 * HOUR;
        // Not the delete hour: nothing happens, however old.
        let outcome = log
            .delete_expired(
                RetentionClock {
                    now: later,
                    local_hour: 3,
                },
                &policy,
            )
            .await
            .expect("run");
        assert!(outcome.deleted_segments.is_empty());
        // The delete hour but not old enough: nothing.
        let outcome = log
            .delete_expired(
                RetentionClock {
                    now: SystemTime::now(),
                    local_hour: 4,
                },
                &policy,
            )
            .await
            .expect("run");
        assert!(outcome.deleted_segments.is_empty());
        // Old and the right hour: every segment but the active one.
        let outcome = log
            .delete_expired(
                RetentionClock {
                    now: later,
                    local_hour: 4,
                },
                &policy,
            )
            .await
            .expect("run");
        assert_eq!(
            outcome.deleted_segments,
            segments_before[..segments_before.len() - 1].to_vec()
        );
        let active = *segments_before.last().expect("active");
        assert_eq!(log.segment_starts(), vec![active]);
        assert_eq!(log.min_offset(), active);
        assert_eq!(outcome.min_offset, active);
        for start in &outcome.deleted_segments {
            assert!(!dir.join(segment_file_name(*start)).exists());
        }
        // Below the minimum offset: out of range; at or above it: still readable.
        let (gone, _) = &placed[0];
        let error = log.read(gone.phys_offset, None).await.expect_err("deleted");
        assert!(
            matches!(error, StorageError::OffsetOutOfRange { .. }),
            "{error}"
        );
        for (appended, record) in placed.iter().filter(|(a, _)| a.phys_offset >= active) {
            assert_same(
                &log.read(appended.phys_offset, None).await.expect("kept"),
                record,
            );
        }
        log.close().await.expect("close");
        let (log, report) = CommitLog::open(&dir, small_config(FlushPolicy::Async), Disk::real())
            .await
            .expect("reopen");
        assert_eq!(report.min_offset, active);
        log.close().await.expect("close");
    });
}

#[test]
fn a_full_disk_deletes_the_oldest_segments_regardless_of_age() {
    let dir = scratch("ret-full");
    let faults = FaultInjector::new();
    run(async {
        let (log, _) = filled_log(&dir, Disk::with_faults(Rc::clone(&faults)), 200).await;
        let segments_before = log.segment_starts();
        let policy = RetentionPolicy {
            file_reserved_time: 1000 * HOUR,
            ..RetentionPolicy::default()
        };
        let clock = RetentionClock {
            now: SystemTime::now(),
            local_hour: 12,
        };
        let outcome = log.delete_expired(clock, &policy).await.expect("run");
        assert!(
            outcome.deleted_segments.is_empty(),
            "the real disk is not that full"
        );
        faults.set_disk_used_percent(Some(95));
        let outcome = log.delete_expired(clock, &policy).await.expect("run");
        assert!(outcome.disk_used_percent > 90.0);
        assert_eq!(
            outcome.deleted_segments,
            segments_before[..segments_before.len() - 1].to_vec()
        );
        assert_eq!(
            log.segment_starts().len(),
            1,
            "the active segment always stays"
        );
        // Appends keep working.
        log.append(&TestRecord::new(999, 100).as_append())
            .await
            .expect("append");
        log.close().await.expect("close");
    });
}

#[test]
fn segments_past_the_checkpoint_are_kept() {
    let dir = scratch("ret-checkpoint");
    let faults = FaultInjector::new();
    run(async {
        let mut config = small_config(FlushPolicy::Async);
        config.checkpoint_interval_ms = 3_600_000;
        let disk = Disk::with_faults(Rc::clone(&faults));
        let (log, _) = CommitLog::open(&dir, config, disk).await.expect("open");
        for seq in 0..200 {
            log.append(&TestRecord::new(seq, 3000).as_append())
                .await
                .expect("append");
        }
        log.flush().await.expect("flush");
        // The only checkpoint is the one written at open (offset 0): nothing may go.
        faults.set_disk_used_percent(Some(99));
        let clock = RetentionClock {
            now: SystemTime::now() + 1000 * HOUR,
            local_hour: 4,
        };
        let outcome = log
            .delete_expired(clock, &RetentionPolicy::default())
            .await
            .expect("run");
        assert!(outcome.deleted_segments.is_empty(), "{outcome:?}");
        let checkpointed = log.checkpoint().await.expect("checkpoint");
        let outcome = log
            .delete_expired(clock, &RetentionPolicy::default())
            .await
            .expect("run");
        assert!(!outcome.deleted_segments.is_empty());
        assert!(log.min_offset() <= checkpointed);
        log.close().await.expect("close");
    });
}
