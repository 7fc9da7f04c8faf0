//! CommitLog recovery on a real disk: torn and corrupt tails are truncated, zero tails end the
//! scan, stale records of an earlier run are never resurrected, damaged segment chains and
//! leftovers are handled, and the log keeps working after a truncation.

mod commitlog_common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use commitlog_common::{assert_same, run, scratch, small_config, TestRecord};
use rmq_storage::commitlog::segment::segment_file_name;
use rmq_storage::commitlog::{Appended, CommitLog, FlushPolicy};
use rmq_storage::error::StorageError;
use rmq_storage::file::Disk;

/// Sync flush, and no periodic checkpoint: these tests damage bytes the scan must see (a
/// checkpoint past them would make recovery trust them without a scan).
fn config() -> rmq_storage::commitlog::CommitLogConfig {
    let mut config = small_config(FlushPolicy::Sync);
    config.checkpoint_interval_ms = 3_600_000;
    config
}

/// Appends `records` under sync flush, waits for durability, then abandons (no clean close).
async fn write_and_abandon(dir: &Path, records: &[TestRecord]) -> Vec<Appended> {
    let (log, _) = CommitLog::open(dir, config(), Disk::real())
        .await
        .expect("open");
    let mut placed = Vec::new();
    for record in records {
        placed.push(log.append(&record.as_append()).await.expect("append"));
    }
    log.flush().await.expect("flush");
    log.abandon().await;
    placed
}

/// Overwrites bytes at log offset `offset` (segments are `small_config` sized).
fn damage(dir: &Path, offset: u64, bytes: &[u8]) {
    let segment_size = config().segment_size_bytes;
    let start = offset / segment_size * segment_size;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(segment_file_name(start)))
        .expect("open segment");
    file.write_all_at(bytes, offset - start).expect("damage");
    file.sync_all().expect("sync");
}

async fn reopen(dir: &Path) -> (CommitLog, rmq_storage::commitlog::RecoveryReport) {
    CommitLog::open(dir, config(), Disk::real())
        .await
        .expect("reopen")
}

#[test]
fn torn_last_record_is_truncated_and_appends_continue() {
    let dir = scratch("rec-torn");
    let records: Vec<TestRecord> = (0..30).map(|seq| TestRecord::new(seq, 700)).collect();
    run(async {
        let placed = write_and_abandon(&dir, &records).await;
        let last = *placed.last().expect("records");
        // Tear the last record: its second half becomes garbage.
        damage(
            &dir,
            last.phys_offset + u64::from(last.size) / 2,
            &[0xAB; 200],
        );
        let (log, report) = reopen(&dir).await;
        assert!(!report.clean_shutdown);
        assert_eq!(
            report.recovered_end, last.phys_offset,
            "torn record dropped"
        );
        assert!(report.stop_reason.is_some());
        for (record, appended) in records.iter().zip(&placed).take(records.len() - 1) {
            assert_same(
                &log.read(appended.phys_offset, None).await.expect("read"),
                record,
            );
        }
        // The log continues where the valid data ended.
        let again = log
            .append(&TestRecord::new(99, 50).as_append())
            .await
            .expect("append");
        assert_eq!(again.phys_offset, last.phys_offset);
        log.flush().await.expect("flush");
        log.close().await.expect("close");
        let (log, report) = reopen(&dir).await;
        assert_eq!(report.recovered_end, again.end_offset);
        assert_same(
            &log.read(again.phys_offset, None).await.expect("read"),
            &TestRecord::new(99, 50),
        );
        log.close().await.expect("close");
    });
}

#[test]
fn a_flipped_bit_in_the_tail_truncates_there() {
    let dir = scratch("rec-bitflip");
    let records: Vec<TestRecord> = (0..20).map(|seq| TestRecord::new(seq, 300)).collect();
    run(async {
        let placed = write_and_abandon(&dir, &records).await;
        let victim = placed[15];
        let mut byte = [0u8; 1];
        let segment_size = config().segment_size_bytes;
        let file = std::fs::File::open(dir.join(segment_file_name(
            victim.phys_offset / segment_size * segment_size,
        )))
        .expect("open");
        let at = victim.phys_offset % segment_size + 100;
        file.read_exact_at(&mut byte, at).expect("read");
        damage(&dir, victim.phys_offset + 100, &[byte[0] ^ 0x10]);
        let (log, report) = reopen(&dir).await;
        assert_eq!(report.recovered_end, victim.phys_offset);
        assert_eq!(report.scan_start, 0, "no checkpoint past the first open");
        assert_eq!(report.records_scanned, 15);
        log.close().await.expect("close");
    });
}

#[test]
fn stale_records_of_an_earlier_run_are_not_resurrected() {
    let dir = scratch("rec-stale");
    run(async {
        // Run 1 writes r0 r1 r2 of one block each (so r2 sits in a block run 2 never rewrites);
        // r1 gets damaged, so run 2 recovers only r0.
        let block_sized = |seq| {
            let payload = (0..4096)
                .rev()
                .find(|p| TestRecord::new(seq, *p).size() == 4096)
                .expect("fits");
            TestRecord::new(seq, payload)
        };
        let first: Vec<TestRecord> = (0..3).map(block_sized).collect();
        let placed = write_and_abandon(&dir, &first).await;
        damage(&dir, placed[1].phys_offset + 80, &[0xFF; 8]);
        let (log, report) = reopen(&dir).await;
        assert_eq!(report.recovered_end, placed[1].phys_offset);
        // Run 2 writes one record of exactly r1's size: it ends where the stale r2 begins.
        let replacement = block_sized(10);
        assert_eq!(replacement.size(), u64::from(placed[1].size));
        let appended = log.append(&replacement.as_append()).await.expect("append");
        assert_eq!(appended.end_offset, placed[2].phys_offset);
        log.flush().await.expect("flush");
        log.abandon().await;
        // Run 3 must stop after the replacement: r2 is intact on disk but from generation 1.
        let (log, report) = reopen(&dir).await;
        assert_eq!(
            report.recovered_end, appended.end_offset,
            "stale r2 must not come back"
        );
        assert!(
            report
                .stop_reason
                .as_deref()
                .is_some_and(|r| r.contains("stale")),
            "{report:?}"
        );
        log.close().await.expect("close");
    });
}

#[test]
fn zero_filled_tail_ends_the_scan_exactly() {
    let dir = scratch("rec-zero");
    let records: Vec<TestRecord> = (0..10).map(|seq| TestRecord::new(seq, 100)).collect();
    run(async {
        let placed = write_and_abandon(&dir, &records).await;
        let (log, report) = reopen(&dir).await;
        assert_eq!(
            report.recovered_end,
            placed.last().expect("records").end_offset
        );
        assert!(report.stop_reason.is_some(), "the scan stopped at zeros");
        log.close().await.expect("close");
    });
}

#[test]
fn recovery_across_rolled_segments_from_the_checkpoint() {
    let dir = scratch("rec-rolled");
    let records: Vec<TestRecord> = (0..300).map(|seq| TestRecord::new(seq, 1500)).collect();
    run(async {
        let placed = write_and_abandon(&dir, &records).await;
        let (log, report) = reopen(&dir).await;
        assert_eq!(
            report.recovered_end,
            placed.last().expect("records").end_offset
        );
        assert!(log.segment_starts().len() >= 3);
        assert!(report.scan_start <= report.recovered_end);
        for (record, appended) in records.iter().zip(&placed).step_by(7) {
            assert_same(
                &log.read(appended.phys_offset, None).await.expect("read"),
                record,
            );
        }
        log.close().await.expect("close");
    });
}

#[test]
fn a_partial_preallocation_is_removed_and_a_gap_is_an_error() {
    let dir = scratch("rec-files");
    run(async {
        let placed = write_and_abandon(&dir, &[TestRecord::new(0, 100)]).await;
        let segment_size = config().segment_size_bytes;
        // A crash during preallocation can leave a short file after the chain.
        let leftover = dir.join(segment_file_name(5 * segment_size));
        std::fs::write(&leftover, [0u8; 1000]).expect("leftover");
        let (log, report) = reopen(&dir).await;
        assert!(
            report.removed_segments.contains(&(5 * segment_size)),
            "{report:?}"
        );
        assert!(!leftover.exists());
        assert_eq!(report.recovered_end, placed[0].end_offset);
        log.close().await.expect("close");
        // A full-size segment that does not continue the chain means data went missing.
        std::fs::write(
            dir.join(segment_file_name(7 * segment_size)),
            vec![0u8; segment_size as usize],
        )
        .expect("gap");
        std::fs::write(
            dir.join(segment_file_name(9 * segment_size)),
            vec![0u8; segment_size as usize],
        )
        .expect("gap");
        let error = CommitLog::open(&dir, config(), Disk::real())
            .await
            .expect_err("gap");
        assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
    });
}

#[test]
fn a_damaged_checkpoint_falls_back_to_a_full_scan() {
    let dir = scratch("rec-bad-checkpoint");
    let records: Vec<TestRecord> = (0..40).map(|seq| TestRecord::new(seq, 900)).collect();
    run(async {
        let placed = write_and_abandon(&dir, &records).await;
        std::fs::write(dir.join("commitlog.checkpoint"), b"garbage").expect("damage checkpoint");
        let (log, report) = reopen(&dir).await;
        assert!(report.checkpoint_ignored.is_some());
        assert_eq!(report.scan_start, 0);
        assert_eq!(report.records_scanned, records.len() as u64);
        assert_eq!(
            report.recovered_end,
            placed.last().expect("records").end_offset
        );
        log.close().await.expect("close");
    });
}

/// ASYNC_FLUSH with an fdatasync interval far away: appends are still written within the commit
/// interval, so a crash of the process (writes done, no fdatasync, no close) loses none of them
/// once that interval has passed. With the commit interval as far away as the flush interval,
/// the same crash loses them all (the control: the test can fail).
#[test]
fn async_flush_writes_within_the_commit_interval_so_a_process_crash_keeps_appends() {
    for (name, commit_interval_ms, survive) in [
        ("rec-commit-10ms", 10, true),
        ("rec-commit-1h", 3_600_000, false),
    ] {
        let dir = scratch(name);
        // ~6 KiB in all: below the eager-write threshold (a quarter of the 32 KiB pending bound).
        let records: Vec<TestRecord> = (0..20).map(|seq| TestRecord::new(seq, 200)).collect();
        let config = rmq_storage::commitlog::CommitLogConfig {
            flush_interval_ms: 3_600_000,
            flush_thorough_interval_ms: 3_600_000,
            commit_interval_ms,
            checkpoint_interval_ms: 3_600_000,
            ..small_config(FlushPolicy::Async)
        };
        run(async {
            let (log, _) = CommitLog::open(&dir, config.clone(), Disk::real())
                .await
                .expect("open");
            let mut placed = Vec::new();
            for record in &records {
                placed.push(log.append(&record.as_append()).await.expect("append"));
                compio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            compio::time::sleep(std::time::Duration::from_millis(200)).await;
            let end = placed.last().expect("records").end_offset;
            assert_eq!(log.durable_offset(), 0, "no fdatasync within the hour");
            assert_eq!(log.written_offset() == end, survive, "{name}: written mark");
            log.abandon().await;
            let (log, report) = CommitLog::open(&dir, config, Disk::real())
                .await
                .expect("reopen");
            assert!(!report.clean_shutdown);
            if survive {
                assert_eq!(report.recovered_end, end, "{name}: every append kept");
                for (record, appended) in records.iter().zip(&placed) {
                    assert_same(
                        &log.read(appended.phys_offset, None).await.expect("read"),
                        record,
                    );
                }
            } else {
                assert_eq!(report.recovered_end, 0, "{name}: nothing was written");
            }
        });
    }
}
