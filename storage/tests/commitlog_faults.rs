//! CommitLog under injected faults: a failed write or fdatasync poisons the log (every waiter and
//! later append gets the error, nothing is retried as if it succeeded) and a reopen recovers a
//! consistent prefix holding everything acknowledged; short writes are completed; a full disk
//! fails appends cleanly with `DiskFull` and appends resume once space is back.

mod commitlog_common;

use std::rc::Rc;

use commitlog_common::{assert_same, run, scratch, small_config, TestRecord};
use rmq_storage::commitlog::{Appended, CommitLog, FlushPolicy};
use rmq_storage::error::StorageError;
use rmq_storage::file::{CrashMode, Disk, FaultInjector};

async fn open_faulty(dir: &std::path::Path, faults: &Rc<FaultInjector>) -> CommitLog {
    let disk = Disk::with_faults(Rc::clone(faults));
    CommitLog::open(dir, small_config(FlushPolicy::Sync), disk)
        .await
        .expect("open")
        .0
}

async fn append_durable(log: &CommitLog, record: &TestRecord) -> Result<Appended, StorageError> {
    let appended = log.append(&record.as_append()).await?;
    log.wait_durable(appended.end_offset).await?;
    Ok(appended)
}

/// Reopens without faults and checks every acknowledged record byte for byte.
async fn check_acknowledged(
    dir: &std::path::Path,
    acknowledged: &[(Appended, TestRecord)],
) -> CommitLog {
    let (log, report) = CommitLog::open(dir, small_config(FlushPolicy::Sync), Disk::real())
        .await
        .expect("reopen");
    let last_end = acknowledged
        .last()
        .map_or(0, |(appended, _)| appended.end_offset);
    assert!(
        report.recovered_end >= last_end,
        "acknowledged data lost: {report:?}"
    );
    for (appended, record) in acknowledged {
        assert_same(
            &log.read(appended.phys_offset, None).await.expect("read"),
            record,
        );
    }
    log
}

#[test]
fn a_failed_write_poisons_the_log_and_nothing_acknowledged_is_lost() {
    let dir = scratch("fault-write");
    let faults = FaultInjector::new();
    run(async {
        let log = open_faulty(&dir, &faults).await;
        let mut acknowledged = Vec::new();
        for seq in 0..20 {
            let record = TestRecord::new(seq, 600);
            acknowledged.push((
                append_durable(&log, &record).await.expect("healthy"),
                record,
            ));
        }
        faults.fail_nth_write(1);
        let error = append_durable(&log, &TestRecord::new(100, 600))
            .await
            .expect_err("write fails");
        assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
        assert!(log.poisoned().is_some());
        // Later appends fail too: no silent retry.
        let error = log
            .append(&TestRecord::new(101, 10).as_append())
            .await
            .expect_err("poisoned");
        assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
        assert_eq!(
            log.durable_offset(),
            acknowledged.last().expect("acked").0.end_offset
        );
        let error = log.close().await.expect_err("close reports the poison");
        assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
        let log = check_acknowledged(&dir, &acknowledged).await;
        let again = append_durable(&log, &TestRecord::new(200, 100))
            .await
            .expect("works after reopen");
        assert!(again.phys_offset >= acknowledged.last().expect("acked").0.end_offset);
        log.close().await.expect("close");
    });
}

#[test]
fn a_failed_fdatasync_poisons_the_log_and_the_unsynced_write_may_vanish() {
    let dir = scratch("fault-sync");
    let faults = FaultInjector::new();
    faults.track_unsynced(true);
    run(async {
        let log = open_faulty(&dir, &faults).await;
        let mut acknowledged = Vec::new();
        for seq in 0..10 {
            let record = TestRecord::new(seq, 900);
            acknowledged.push((
                append_durable(&log, &record).await.expect("healthy"),
                record,
            ));
        }
        faults.fail_nth_sync(1);
        let error = append_durable(&log, &TestRecord::new(50, 900))
            .await
            .expect_err("sync fails");
        assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
        let durable = log.durable_offset();
        assert_eq!(
            durable,
            acknowledged.last().expect("acked").0.end_offset,
            "durable did not move"
        );
        log.abandon().await;
        // fsyncgate: after a failed fdatasync the written data may be gone.
        faults.crash(CrashMode::DropUnsynced).expect("crash");
        let log = check_acknowledged(&dir, &acknowledged).await;
        assert_eq!(
            log.appended_offset(),
            durable,
            "the unsynced record vanished cleanly"
        );
        log.close().await.expect("close");
    });
}

#[test]
fn short_writes_are_completed() {
    let dir = scratch("fault-short");
    let faults = FaultInjector::new();
    run(async {
        let log = open_faulty(&dir, &faults).await;
        let mut acknowledged = Vec::new();
        for seq in 0..30 {
            if seq % 3 == 0 {
                faults.short_nth_write(1);
            }
            let record = TestRecord::new(seq, 5000);
            acknowledged.push((
                append_durable(&log, &record)
                    .await
                    .expect("short writes are continued"),
                record,
            ));
        }
        assert!(log.poisoned().is_none());
        log.close().await.expect("close");
        check_acknowledged(&dir, &acknowledged)
            .await
            .close()
            .await
            .expect("close");
    });
}

#[test]
fn disk_full_fails_the_roll_cleanly_and_appends_resume_when_space_returns() {
    let dir = scratch("fault-full");
    let faults = FaultInjector::new();
    run(async {
        let log = open_faulty(&dir, &faults).await;
        // Let the preallocation started at open finish, then fill the disk.
        while !log.next_segment_ready() {
            compio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let mut acknowledged = Vec::new();
        let mut seq = 0;
        while log.segment_starts().len() < 2 {
            let record = TestRecord::new(seq, 3000);
            acknowledged.push((append_durable(&log, &record).await.expect("room"), record));
            seq += 1;
        }
        faults.set_disk_full(true);
        // The segment after this one cannot be prepared: appends run until it is needed.
        let error = loop {
            let record = TestRecord::new(seq, 3000);
            match append_durable(&log, &record).await {
                Ok(appended) => acknowledged.push((appended, record)),
                Err(error) => break error,
            }
            seq += 1;
        };
        assert!(error.is_disk_full(), "{error}");
        let end = acknowledged.last().expect("acked").0.end_offset;
        assert_eq!(log.appended_offset(), end, "no partial record placed");
        assert_eq!(log.durable_offset(), end);
        assert!(log.poisoned().is_none(), "disk full is not a poison");
        // Still full: still a clear error, still nothing placed.
        let error = log
            .append(&TestRecord::new(seq, 3000).as_append())
            .await
            .expect_err("still full");
        assert!(error.is_disk_full(), "{error}");
        // Space comes back: the next append retries the preallocation and succeeds.
        faults.set_disk_full(false);
        let record = TestRecord::new(seq, 3000);
        acknowledged.push((
            append_durable(&log, &record).await.expect("resumes"),
            record,
        ));
        log.close().await.expect("close");
        check_acknowledged(&dir, &acknowledged)
            .await
            .close()
            .await
            .expect("close");
    });
}

/// `true` if the file at `path` has data (written blocks) anywhere: `SEEK_DATA` reports
/// unwritten extents (reserved by `fallocate`, never written) as holes on ext4.
fn has_data(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open segment");
    // SAFETY: a valid open descriptor; lseek has no memory effects.
    let at = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_DATA) };
    if at < 0 {
        let error = std::io::Error::last_os_error();
        assert_eq!(error.raw_os_error(), Some(libc::ENXIO), "{error}");
        return false;
    }
    true
}

/// Waits (up to 10 s) until the segment after the active one is prepared.
async fn next_prepared(log: &CommitLog) {
    for _ in 0..5000 {
        if log.next_segment_ready() {
            return;
        }
        compio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("the next segment was never prepared");
}

#[test]
fn sparse_segments_are_reserved_unwritten_until_zero_filling_resumes() {
    use rmq_storage::commitlog::segment::segment_file_name;
    use rmq_storage::commitlog::{CommitLogConfig, Preallocation};
    let dir = scratch("sparse-segments");
    run(async {
        let config = CommitLogConfig {
            preallocation: Preallocation::Sparse,
            ..small_config(FlushPolicy::Sync)
        };
        let size = config.segment_size_bytes;
        let (log, _) = CommitLog::open(&dir, config, Disk::real())
            .await
            .expect("open");
        assert_eq!(log.preallocation(), Preallocation::Sparse);
        next_prepared(&log).await;
        // Reserved, full size, nothing written: neither the active segment nor the next.
        for start in [0, size] {
            let path = dir.join(segment_file_name(start));
            assert_eq!(std::fs::metadata(&path).expect("stat").len(), size);
            assert!(!has_data(&path), "segment {start} was written");
        }
        // Records go into sparse segments and read back, across a roll.
        let mut acknowledged = Vec::new();
        let mut seq = 0;
        while log.segment_starts().len() < 2 {
            let record = TestRecord::new(seq, 3000);
            acknowledged.push((append_durable(&log, &record).await.expect("append"), record));
            seq += 1;
        }
        next_prepared(&log).await;
        assert!(!has_data(&dir.join(segment_file_name(2 * size))));

        // Caught up: the next segment prepared is zero-filled again.
        log.set_preallocation(Preallocation::Zeroed);
        while log.segment_starts().len() < 3 {
            let record = TestRecord::new(seq, 3000);
            acknowledged.push((append_durable(&log, &record).await.expect("append"), record));
            seq += 1;
        }
        next_prepared(&log).await;
        assert!(
            has_data(&dir.join(segment_file_name(3 * size))),
            "prepared after the switch: zero-filled"
        );
        for (appended, record) in &acknowledged {
            assert_same(
                &log.read(appended.phys_offset, None).await.expect("read"),
                record,
            );
        }
        log.close().await.expect("close");
        // Recovery scans through the sparse segments' unwritten tails as through zeros.
        check_acknowledged(&dir, &acknowledged)
            .await
            .close()
            .await
            .expect("close");
    });
}
