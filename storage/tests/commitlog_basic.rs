//! CommitLog basics on a real disk: append / read (tail ring and O_DIRECT), segment rolling,
//! reopen, O_DIRECT on every segment fd, group commit, async flush marks, back-pressure, the
//! sync-flush timeout, and input errors.

mod commitlog_common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use commitlog_common::{assert_same, run, scratch, small_config, TestRecord};
use rmq_storage::commitlog::record::{encode_to_vec, parse_entry, Entry};
use rmq_storage::commitlog::{CommitLog, FlushOutcome, FlushPolicy};
use rmq_storage::error::StorageError;
use rmq_storage::file::{fd_has_o_direct, Disk, FaultInjector};

#[test]
fn append_read_roll_reopen_byte_for_byte() {
    let dir = scratch("cl-roundtrip");
    let records: Vec<TestRecord> = (0..400)
        .map(|seq| TestRecord::new(seq, (seq as usize * 37) % 3000))
        .collect();
    let mut placed = Vec::new();
    run(async {
        let (log, report) = CommitLog::open(&dir, small_config(FlushPolicy::Async), Disk::real())
            .await
            .expect("open");
        assert!(report.clean_shutdown);
        assert_eq!(report.recovered_end, 0);
        for record in &records {
            let appended = log.append(&record.as_append()).await.expect("append");
            assert_eq!(u64::from(appended.size), record.size());
            // Readable at once, from the tail ring.
            let stored = log
                .read(appended.phys_offset, None)
                .await
                .expect("read from ring");
            assert_same(&stored, record);
            placed.push(appended);
        }
        assert!(
            log.segment_starts().len() > 3,
            "records rolled over several segments"
        );
        for window in placed.windows(2) {
            assert!(
                window[1].phys_offset >= window[0].end_offset,
                "offsets increase"
            );
        }
        log.close().await.expect("close");
    });
    run(async {
        let (log, report) = CommitLog::open(&dir, small_config(FlushPolicy::Async), Disk::real())
            .await
            .expect("reopen");
        assert!(report.clean_shutdown, "closed cleanly");
        assert_eq!(
            report.recovered_end,
            placed.last().expect("records").end_offset
        );
        assert_eq!(
            report.scan_start, report.recovered_end,
            "clean close checkpointed the end"
        );
        // Everything now comes from disk (the ring starts empty at the recovered end).
        for (record, appended) in records.iter().zip(&placed) {
            let stored = log
                .read(appended.phys_offset, Some(appended.size))
                .await
                .expect("read from disk");
            assert_same(&stored, record);
            let expected =
                encode_to_vec(&record.as_append(), appended.phys_offset, stored.generation);
            assert_eq!(
                stored.raw.as_ref(),
                &expected[..],
                "raw bytes of seq {}",
                record.seq
            );
            // Without a size hint the read starts with one block and fetches the rest.
            let unhinted = log
                .read(appended.phys_offset, None)
                .await
                .expect("read unhinted");
            assert_eq!(unhinted, stored);
        }
        // read_batch walks every record in order across segment fillers.
        let mut from = log.min_offset();
        let mut seen = Vec::new();
        while from < log.appended_offset() {
            let batch = log.read_batch(from, 10_000).await.expect("batch");
            assert!(batch.next_offset > from, "a batch always makes progress");
            seen.extend(batch.records);
            from = batch.next_offset;
        }
        assert_eq!(seen.len(), records.len());
        for (stored, record) in seen.iter().zip(&records) {
            assert_same(stored, record);
        }
        log.close().await.expect("close");
    });
}

#[test]
fn every_segment_fd_has_o_direct() {
    let dir = scratch("cl-odirect");
    run(async {
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Async), Disk::real())
            .await
            .expect("open");
        for seq in 0..200 {
            log.append(&TestRecord::new(seq, 2000).as_append())
                .await
                .expect("append");
        }
        let fds = log.segment_fds();
        assert!(fds.len() >= 2);
        for fd in fds {
            assert!(
                fd_has_o_direct(fd).expect("fdinfo"),
                "segment fd {fd} lacks O_DIRECT"
            );
        }
        log.close().await.expect("close");
    });
}

#[test]
fn sync_flush_group_commit_serves_many_waiters_with_few_fdatasyncs() {
    let dir = scratch("cl-group-commit");
    let faults = FaultInjector::new();
    run(async {
        let disk = Disk::with_faults(Rc::clone(&faults));
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), disk)
            .await
            .expect("open");
        let log = Rc::new(log);
        let syncs_before = faults.syncs();
        let mut tasks = Vec::new();
        for task in 0..32u64 {
            let log = Rc::clone(&log);
            tasks.push(compio::runtime::spawn(async move {
                for round in 0..10u64 {
                    let record = TestRecord::new(task * 1000 + round, 300);
                    let appended = log.append(&record.as_append()).await.expect("append");
                    log.wait_durable(appended.end_offset)
                        .await
                        .expect("durable");
                    assert!(log.durable_offset() >= appended.end_offset);
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let syncs = faults.syncs() - syncs_before;
        assert!(
            syncs < 320,
            "group commit: {syncs} fdatasyncs for 320 appends"
        );
        assert_eq!(log.durable_offset(), log.appended_offset());
        Rc::try_unwrap(log)
            .expect("sole owner")
            .close()
            .await
            .expect("close");
    });
}

#[test]
fn async_flush_keeps_appended_and_durable_apart_until_the_interval() {
    let dir = scratch("cl-async-marks");
    run(async {
        let mut config = small_config(FlushPolicy::Async);
        config.flush_interval_ms = 100;
        let (log, _) = CommitLog::open(&dir, config, Disk::real())
            .await
            .expect("open");
        let start = log.durable_offset();
        let mut end = 0;
        for seq in 0..4 {
            end = log
                .append(&TestRecord::new(seq, 1000).as_append())
                .await
                .expect("append")
                .end_offset;
        }
        assert_eq!(log.appended_offset(), end);
        assert_eq!(
            log.durable_offset(),
            start,
            "async: appended is not yet durable"
        );
        // Below flush_least_bytes the interval flush waits for the thorough interval; an explicit
        // wait makes it flush now.
        let deadline = Instant::now() + Duration::from_secs(5);
        for seq in 4..20 {
            log.append(&TestRecord::new(seq, 1000).as_append())
                .await
                .expect("append");
        }
        while log.durable_offset() < log.appended_offset() {
            assert!(
                Instant::now() < deadline,
                "the interval flush never happened"
            );
            compio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(log.written_offset(), log.appended_offset());
        log.close().await.expect("close");
    });
}

#[test]
fn pending_bytes_are_bounded_and_ready_waits_for_room() {
    let dir = scratch("cl-backpressure");
    run(async {
        let mut config = small_config(FlushPolicy::Async);
        config.flush_interval_ms = 3_600_000;
        let pending_max = config.flush_pending_bytes_max as u64;
        let (log, _) = CommitLog::open(&dir, config, Disk::real())
            .await
            .expect("open");
        let record = TestRecord::new(1, 1500);
        let mut accepted = 0;
        // No await in this loop: the flusher cannot run, so the bound must stop us.
        while log
            .try_append(&record.as_append())
            .expect("no error")
            .is_some()
        {
            accepted += 1;
            assert!(accepted < 1000, "back-pressure never kicked in");
        }
        assert!(log.appended_offset() - log.written_offset() <= pending_max);
        assert!(log.appended_offset() - log.written_offset() + record.size() > pending_max - 4096);
        log.ready(record.size())
            .await
            .expect("room appears once the flusher writes");
        assert!(log
            .try_append(&record.as_append())
            .expect("append")
            .is_some());
        log.close().await.expect("close");
    });
}

#[test]
fn sync_flush_timeout_is_reported_and_the_record_still_becomes_durable() {
    let dir = scratch("cl-flush-timeout");
    let faults = FaultInjector::new();
    run(async {
        let disk = Disk::with_faults(Rc::clone(&faults));
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), disk)
            .await
            .expect("open");
        faults.set_sync_delay(Some(Duration::from_millis(300)));
        let appended = log
            .append(&TestRecord::new(7, 100).as_append())
            .await
            .expect("append");
        let outcome = log
            .wait_durable_timeout(appended.end_offset, Duration::from_millis(20))
            .await
            .expect("wait");
        assert_eq!(outcome, FlushOutcome::Timeout);
        let outcome = log
            .wait_durable_timeout(appended.end_offset, Duration::from_secs(5))
            .await
            .expect("wait");
        assert_eq!(outcome, FlushOutcome::Durable);
        faults.set_sync_delay(None);
        log.close().await.expect("close");
    });
}

#[test]
fn bad_input_is_rejected_without_side_effects() {
    let dir = scratch("cl-bad-input");
    run(async {
        let config = small_config(FlushPolicy::Async);
        let record_max = config.record_size_max_bytes as usize;
        let (log, _) = CommitLog::open(&dir, config, Disk::real())
            .await
            .expect("open");
        let first = log
            .append(&TestRecord::new(1, 500).as_append())
            .await
            .expect("append");
        let too_big = TestRecord::new(2, record_max);
        let error = log
            .append(&too_big.as_append())
            .await
            .expect_err("too large");
        assert!(
            matches!(error, StorageError::RecordTooLarge { .. }),
            "{error}"
        );
        let mut no_topic = TestRecord::new(3, 10);
        no_topic.topic.clear();
        let error = log
            .append(&no_topic.as_append())
            .await
            .expect_err("empty topic");
        assert!(
            matches!(error, StorageError::InvalidRecord { .. }),
            "{error}"
        );
        assert_eq!(log.appended_offset(), first.end_offset, "nothing placed");
        let error = log
            .read(first.end_offset, None)
            .await
            .expect_err("past the end");
        assert!(
            matches!(error, StorageError::OffsetOutOfRange { .. }),
            "{error}"
        );
        let error = log
            .read(first.phys_offset + 16, None)
            .await
            .expect_err("mid-record");
        assert!(matches!(error, StorageError::NotARecord { .. }), "{error}");
        log.flush().await.expect("flush");
        log.close().await.expect("close");
        // From disk too.
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Async), Disk::real())
            .await
            .expect("reopen");
        let error = log
            .read(first.phys_offset + 16, None)
            .await
            .expect_err("mid-record on disk");
        assert!(matches!(error, StorageError::NotARecord { .. }), "{error}");
        let stored = log.read(first.phys_offset, None).await.expect("read");
        assert!(matches!(
            parse_entry(&stored.raw, first.phys_offset, 1 << 20),
            Ok(Entry::Record(_))
        ));
        log.close().await.expect("close");
    });
}

#[test]
fn closed_log_refuses_appends_and_reports_unclean_shutdown_after_abandon() {
    let dir = scratch("cl-lifecycle");
    run(async {
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), Disk::real())
            .await
            .expect("open");
        let appended = log
            .append(&TestRecord::new(1, 10).as_append())
            .await
            .expect("append");
        log.wait_durable(appended.end_offset)
            .await
            .expect("durable");
        log.abandon().await;
        let (log, report) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), Disk::real())
            .await
            .expect("open");
        assert!(!report.clean_shutdown, "abandon leaves the abort marker");
        assert_eq!(report.recovered_end, appended.end_offset);
        assert!(report.generation >= 2);
        log.close().await.expect("close");
        let (log, report) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), Disk::real())
            .await
            .expect("open");
        assert!(report.clean_shutdown);
        drop(log); // dropping without close must not hang or panic
    });
}

#[test]
fn async_flush_syncs_on_the_interval_under_continuous_load() {
    let dir = scratch("cl-async-continuous");
    run(async {
        let mut config = small_config(FlushPolicy::Async);
        config.flush_interval_ms = 30;
        config.segment_size_bytes = 64 << 20;
        config.tail_cache_bytes = 8 << 20;
        config.flush_pending_bytes_max = 4 << 20;
        // A slow device: the appender always has more whole blocks ready than the disk takes.
        let faults = FaultInjector::new();
        let (log, _) = CommitLog::open(&dir, config, Disk::with_faults(Rc::clone(&faults)))
            .await
            .expect("open");
        while !log.next_segment_ready() {
            compio::time::sleep(Duration::from_millis(2)).await;
        }
        faults.set_write_delay(Some(Duration::from_millis(2)));
        let record = TestRecord::new(1, 2000);
        let began = Instant::now();
        let mut last_durable = log.durable_offset();
        let mut advances = 0;
        // Append as fast as possible (awaiting only on back-pressure); the durable mark must keep
        // advancing on the interval on its own, without any flush() or waiter.
        while began.elapsed() < Duration::from_millis(1500) {
            if log
                .try_append(&record.as_append())
                .expect("append")
                .is_none()
            {
                log.ready(record.size()).await.expect("room");
            }
            if log.durable_offset() > last_durable {
                last_durable = log.durable_offset();
                advances += 1;
            }
        }
        faults.set_write_delay(None);
        // Each write + fdatasync round of a few MiB can take 100-200 ms on a virtual disk; a
        // streamer that never yields to the interval sync gives exactly one advance.
        assert!(
            advances >= 3,
            "durable advanced only {advances} times in 1.5 s at a 30 ms interval"
        );
        log.close().await.expect("close");
    });
}

/// `read_many` (a pull's records in one go) returns exactly what `read` returns record by
/// record: from the tail ring, from disk in coalesced spans (consecutive records, records with
/// gaps between them, spans that stop at segment ends), and an error only for the entry that is
/// wrong (a bad size, an offset past the end), never for its neighbours.
#[test]
fn read_many_matches_read_one_by_one_with_gaps_segment_ends_and_bad_entries() {
    let dir = scratch("cl-read-many");
    let records: Vec<TestRecord> = (0..800)
        .map(|seq| TestRecord::new(seq, 200 + (seq as usize * 53) % 900))
        .collect();
    let mut placed = Vec::new();
    run(async {
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), Disk::real())
            .await
            .expect("open");
        for record in &records {
            placed.push(log.append(&record.as_append()).await.expect("append"));
        }
        log.flush().await.expect("flush");
        assert!(log.segment_starts().len() > 3, "several segments");
        // Recent records from the ring, older ones from disk, in one call.
        let all: Vec<(u64, u32)> = placed.iter().map(|a| (a.phys_offset, a.size)).collect();
        check(&log, all).await;
        log.close().await.expect("close");
    });
    run(async {
        let (log, _) = CommitLog::open(&dir, small_config(FlushPolicy::Sync), Disk::real())
            .await
            .expect("reopen");
        let all: Vec<(u64, u32)> = placed.iter().map(|a| (a.phys_offset, a.size)).collect();
        // Every record, from disk: each result is the record appended at that place.
        let many = log.read_many(&all).await;
        for ((record, appended), got) in records.iter().zip(&placed).zip(many) {
            let got = got.expect("read_many from disk");
            assert_eq!(got.phys_offset, appended.phys_offset);
            assert_same(&got, record);
        }
        // Gaps: every third record (a tag filter's picks), and one lone record.
        check(&log, all.iter().copied().step_by(3).collect()).await;
        check(&log, vec![all[450]]).await;
        // A wrong size in the middle of a span (a hint, as for `read`: the record is still
        // found), a size that runs into the next record's bytes, and an offset past the end.
        let mut bad = all[100..120].to_vec();
        bad[7].1 += 16;
        bad[12].1 -= 16;
        let end = placed.last().expect("records").end_offset;
        bad.push((end + 4096, 300));
        let many = log.read_many(&bad).await;
        assert_eq!(many.len(), bad.len());
        for (index, got) in many.iter().enumerate() {
            let expect_error = index == bad.len() - 1;
            assert_eq!(got.is_err(), expect_error, "entry {index}: {got:?}");
            if let Ok(got) = got {
                assert_same(got, &records[100 + index]);
            }
        }
        assert!(matches!(
            many.last(),
            Some(Err(StorageError::OffsetOutOfRange { .. }))
        ));
        check(&log, bad).await;
        log.close().await.expect("close");
    });
}

/// `read_many(wanted)` gives, entry by entry, what `read` gives (both a record or both an error).
async fn check(log: &CommitLog, wanted: Vec<(u64, u32)>) {
    let many = log.read_many(&wanted).await;
    assert_eq!(many.len(), wanted.len(), "one result per wanted record");
    for (&(offset, size), got) in wanted.iter().zip(many) {
        let one = log.read(offset, Some(size)).await;
        match (got, one) {
            (Ok(got), Ok(one)) => assert_eq!(got, one, "record at {offset}"),
            (Err(_), Err(_)) => {}
            (got, one) => panic!("at {offset}: read_many {got:?}, read {one:?}"),
        }
    }
}

/// ASYNC_FLUSH writes appended bytes on the commit interval even while an fdatasync runs (it
/// covers only what was written before it started), so a slow fdatasync does not widen what a
/// process crash loses (docs/architecture.md, "Durability hazards"). Before, the write waited
/// for the fdatasync: a kill during one lost commit interval + fdatasync time.
#[test]
fn async_flush_writes_while_a_slow_fdatasync_runs() {
    let dir = scratch("cl-async-write-during-sync");
    let faults = FaultInjector::new();
    run(async {
        let mut config = small_config(FlushPolicy::Async);
        config.flush_interval_ms = 10;
        config.commit_interval_ms = 10;
        let disk = Disk::with_faults(Rc::clone(&faults));
        let (log, _) = CommitLog::open(&dir, config, disk).await.expect("open");
        // A device whose fdatasync takes 1 s: 100 commit intervals.
        let sync_delay = Duration::from_secs(1);
        faults.set_sync_delay(Some(sync_delay));
        let began = Instant::now();
        let first = log
            .append(&TestRecord::new(1, 1000).as_append())
            .await
            .expect("append");
        log.request_flush(); // write, then a (slow) fdatasync
        while log.written_offset() < first.end_offset {
            compio::time::sleep(Duration::from_millis(2)).await;
        }
        compio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            log.durable_offset() < first.end_offset,
            "the fdatasync is still running"
        );
        let second = log
            .append(&TestRecord::new(2, 1000).as_append())
            .await
            .expect("append");
        while log.written_offset() < second.end_offset {
            assert!(
                began.elapsed() < sync_delay,
                "the write of appended bytes waited for the fdatasync"
            );
            compio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            log.durable_offset() < first.end_offset,
            "written while the first fdatasync was still running"
        );
        faults.set_sync_delay(None);
        // Both become durable: the running fdatasync covers the first, the next one the second.
        log.wait_durable(second.end_offset).await.expect("durable");
        assert!(faults.syncs() >= 2);
        log.close().await.expect("close");
    });
}
