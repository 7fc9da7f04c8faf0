//! Replication storage primitives end to end on a real disk (O_DIRECT): a master store and a
//! slave store in two directories; chunks shipped with `read_log` and placed with
//! `append_replicated` across segment ends; a slave crashing mid-stream (fault injector) and
//! resuming from its recovered end; a divergence resolved by comparing entry headers and
//! `truncate_to`; chunks that are corrupt, misplaced, out of order or from a master with
//! other segments refused with nothing placed; and a property: for any record sizes and chunk
//! sizes the slave's log equals the master's.

mod replication_support;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use replication_support::{
    append_exact, append_random, append_sized, assert_same, assert_same_queries,
    assert_same_segment_files, entry_headers, entry_stream, open, run, ship, ship_until,
    unique_key, Sent, QUEUES, RECORD_MAX, SEGMENT_BYTES,
};
use rmq_storage::commitlog::record::{encode_to_vec, AppendRecord};
use rmq_storage::commitlog::{EntryKind, FlushPolicy, ShipLimit};
use rmq_storage::error::{ReplicationRefusal, StorageError};
use rmq_storage::file::{
    scratch_dir_on_real_disk, CrashMode, Disk, FaultInjector, FaultOp, ScopedFault,
};
use rmq_storage::store::{AppendMessage, GetRequest, GetStatus, Store, TagFilter, WaitOutcome};

fn dirs(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = scratch_dir_on_real_disk(name).expect("scratch dir");
    (root.join("master"), root.join("slave"))
}

/// Chunk sizes from one entry to more than a segment (clamped by the store).
const CHUNK_SIZES: [usize; 6] = [1, 4096, 100_000, 333_333, 1 << 20, 16 << 20];

#[test]
fn slave_mirrors_master_across_segments_in_chunks_of_every_size() {
    let (master_root, slave_root) = dirs("repl-mirror");
    run(async {
        let (master, _) = open(
            &master_root,
            FlushPolicy::Async,
            SEGMENT_BYTES,
            Disk::real(),
        )
        .await;
        let (slave, _) = open(&slave_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(7);
        let mut sent = Vec::new();
        // Rounds: the first chunks of each round come from disk (the master's ring is 1 MiB),
        // the last ones from its ring.
        for round in 0..4u64 {
            sent.extend(append_random(&master, &mut rng, round * 120, 120).await);
            let chunks = ship(&master, &slave, &CHUNK_SIZES, ShipLimit::Appended).await;
            assert!(chunks > 0);
            // SYNC_FLUSH slave: everything placed is durable when append_replicated returns.
            assert_eq!(
                slave.commitlog().durable_offset(),
                slave.commitlog().appended_offset()
            );
        }
        assert!(
            master.commitlog().segment_starts().len() >= 4,
            "the log crossed several segment ends"
        );
        assert_same(&master, &slave).await;
        let sample: Vec<u64> = sent.iter().step_by(37).map(|s| s.serial).collect();
        assert_same_queries(&master, &slave, &sample).await;
        assert!(
            slave.index_sealed_files() > 0,
            "the slave's index sealed files too"
        );
        master.checkpoint().await.expect("checkpoint master");
        slave.checkpoint().await.expect("checkpoint slave");
        let end = master.commitlog().appended_offset();
        assert_same_segment_files(&master_root, &slave_root, end);
        master.close().await.expect("close master");
        slave.close().await.expect("close slave");
        // Reopened, the slave still answers as the master does.
        let (master, _) = open(
            &master_root,
            FlushPolicy::Async,
            SEGMENT_BYTES,
            Disk::real(),
        )
        .await;
        let (slave, recovery) =
            open(&slave_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        assert_eq!(recovery.commitlog.recovered_end, end);
        assert_same(&master, &slave).await;
        assert_same_queries(&master, &slave, &sample).await;
    });
}

#[test]
fn read_log_ships_whole_entries_from_entry_boundaries_only() {
    let (master_root, _) = dirs("repl-read-log");
    run(async {
        let (master, _) = open(&master_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        // Records of 100,000 bytes: ten fill a segment to 1,000,000, a filler takes the rest.
        let mut sent = Vec::new();
        for serial in 0..25 {
            let keys = format!("{} biz{}", unique_key(serial), serial % 7);
            let len = 100_000
                - usize::try_from(replication_support::encoded("Orders", &keys, 0)).expect("small");
            sent.push(append_sized(&master, QUEUES[0], serial, len).await);
        }
        assert!(sent.iter().all(|s| s.outcome.size == 100_000));
        // One entry when asked for less than one.
        let chunk = master
            .read_log(0, 1, ShipLimit::Appended)
            .await
            .expect("read");
        assert_eq!((chunk.entries, chunk.bytes.len()), (1, 100_000));
        assert_eq!(chunk.next_offset, 100_000);
        // Whole entries only, never past a segment end: the tenth record, then the filler.
        let chunk = master
            .read_log(0, 350_000, ShipLimit::Appended)
            .await
            .expect("read");
        assert_eq!((chunk.entries, chunk.next_offset), (3, 300_000));
        let chunk = master
            .read_log(900_000, 8 << 20, ShipLimit::Appended)
            .await
            .expect("read");
        assert_eq!(chunk.entries, 2, "the last record and the filler");
        assert_eq!(chunk.next_offset, SEGMENT_BYTES);
        assert_eq!(
            chunk.bytes.len(),
            100_000 + 16,
            "a filler ships as its header"
        );
        let filler = master.entry_header_at(1_000_000).await.expect("filler");
        assert_eq!(filler.kind, EntryKind::Filler);
        assert_eq!(filler.end(), SEGMENT_BYTES);
        let record = master
            .entry_header_at(sent[3].outcome.phys_offset)
            .await
            .expect("record");
        let stored = master
            .read_by_phys_offset(sent[3].outcome.phys_offset)
            .await
            .expect("stored");
        assert_eq!(record.kind, EntryKind::Record);
        assert_eq!(
            (record.span, record.generation),
            (u64::from(stored.size), stored.generation)
        );
        // Not an entry boundary, or outside the log.
        for inside in [16, 50_000, 1_000_016] {
            assert!(
                matches!(
                    master.read_log(inside, 1 << 20, ShipLimit::Appended).await,
                    Err(StorageError::NotAnEntry { offset, .. }) if offset == inside
                ),
                "read_log at {inside}"
            );
            assert!(matches!(
                master.entry_header_at(inside).await,
                Err(StorageError::NotAnEntry { .. })
            ));
        }
        let end = master.commitlog().appended_offset();
        assert!(matches!(
            master.read_log(end + 16, 1, ShipLimit::Appended).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        let at_end = master
            .read_log(end, 1, ShipLimit::Appended)
            .await
            .expect("read");
        assert!(at_end.is_empty());
        // The durable limit: never past the durable mark; all of it after a flush.
        let chunk = master
            .read_log(0, 16 << 20, ShipLimit::Durable)
            .await
            .expect("read");
        assert!(chunk.next_offset <= master.commitlog().durable_offset());
        master.checkpoint().await.expect("flush");
        let mut from = 0;
        loop {
            let chunk = master
                .read_log(from, 16 << 20, ShipLimit::Durable)
                .await
                .expect("read");
            if chunk.is_empty() {
                break;
            }
            from = chunk.next_offset;
        }
        assert_eq!(from, end, "everything durable is shipped");
    });
}

#[test]
fn slave_crash_mid_stream_resumes_from_its_recovered_end() {
    for (seed, mode) in [
        (11, CrashMode::DropUnsynced),
        (12, CrashMode::Torn { seed: 5 }),
    ] {
        let (master_root, slave_root) = dirs("repl-crash");
        run(async {
            let (master, _) =
                open(&master_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
            let mut rng = StdRng::seed_from_u64(seed);
            append_random(&master, &mut rng, 0, 200).await;
            let faults = FaultInjector::new();
            faults.track_unsynced(true);
            let disk = Disk::with_faults(faults.clone());
            // ASYNC_FLUSH slave with a long interval: much of what it placed is not durable.
            let mut config =
                replication_support::config(&slave_root, FlushPolicy::Async, SEGMENT_BYTES);
            config.commitlog.flush_interval_ms = 60_000;
            let (slave, _) = Store::open(config.clone(), disk).await.expect("open slave");
            ship(&master, &slave, &[300_000], ShipLimit::Appended).await;
            let shipped = slave.commitlog().appended_offset();
            let durable = slave.commitlog().durable_offset();
            slave.abandon().await;
            faults.crash(mode).expect("crash");

            let (slave, recovery) = Store::open(config, Disk::real())
                .await
                .expect("reopen slave");
            let recovered = recovery.commitlog.recovered_end;
            assert!(recovered <= shipped);
            assert!(recovered >= durable, "what was durable survives");
            if recovered < shipped {
                // The recovered end is one of the master's entry boundaries.
                master
                    .entry_header_at(recovered)
                    .await
                    .expect("an entry boundary");
            }
            ship(&master, &slave, &[1 << 20, 70_000], ShipLimit::Appended).await;
            assert_same(&master, &slave).await;
        });
    }
}

#[test]
fn divergence_is_resolved_by_truncating_to_the_common_prefix() {
    let root = scratch_dir_on_real_disk("repl-diverge").expect("scratch dir");
    let (old_root, new_root, slave_root) = (root.join("old"), root.join("new"), root.join("slave"));
    run(async {
        let policy = FlushPolicy::Async;
        let (old_master, _) = open(&old_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let (slave, _) = open(&slave_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(21);
        let sent = append_random(&old_master, &mut rng, 0, 300).await;
        ship(&old_master, &slave, &[500_000], ShipLimit::Appended).await;
        // The new master holds the first 170 records (it lost the rest), then reopens (a new
        // generation) and takes records of its own.
        let common = sent[170].outcome.phys_offset;
        let (new_master, _) = open(&new_root, policy, SEGMENT_BYTES, Disk::real()).await;
        ship_until(&old_master, &new_master, common, 250_000).await;
        new_master.close().await.expect("close");
        let (new_master, _) = open(&new_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let fresh = append_random(&new_master, &mut rng, 10_000, 120).await;
        assert!(new_master.commitlog().generation() > old_master.commitlog().generation());

        // The slave's tail diverged: the new master's entries at the common end do not
        // continue it.
        let slave_end = slave.commitlog().appended_offset();
        assert!(slave_end > common);
        let theirs = new_master
            .read_log(common, 1 << 20, ShipLimit::Appended)
            .await
            .expect("read");
        assert!(matches!(
            slave.append_replicated(common, &theirs.bytes).await,
            Err(StorageError::ReplicationGap { expected, got }) if expected == slave_end && got == common
        ));
        // Find the common prefix from the end: the last entry whose header (offset, span,
        // generation, CRC) the new master has too.
        let headers = entry_headers(&slave).await;
        let mut prefix_end = 0;
        for header in headers.iter().rev() {
            if let Ok(theirs) = new_master.entry_header_at(header.offset).await {
                if theirs == *header {
                    prefix_end = header.end();
                    break;
                }
            }
        }
        assert_eq!(prefix_end, common);
        for header in headers.iter().filter(|h| h.end() <= common) {
            let theirs = new_master
                .entry_header_at(header.offset)
                .await
                .expect("header");
            assert_eq!(theirs, *header, "the whole prefix is common");
        }

        slave.truncate_to(common).await.expect("truncate");
        check_cut(&slave, &sent, 170).await;
        slave.close().await.expect("close slave");
        let (slave, recovery) = open(&slave_root, policy, SEGMENT_BYTES, Disk::real()).await;
        assert_eq!(recovery.commitlog.recovered_end, common);
        check_cut(&slave, &sent, 170).await;

        ship(
            &new_master,
            &slave,
            &[200_000, 1 << 20],
            ShipLimit::Appended,
        )
        .await;
        assert_same(&new_master, &slave).await;
        // Byte for byte: the zeroed tail and the reloaded block leave no trace.
        new_master.checkpoint().await.expect("checkpoint");
        slave.checkpoint().await.expect("checkpoint");
        let end = slave.commitlog().appended_offset();
        assert_same_segment_files(&new_root, &slave_root, end);
        let serials: Vec<u64> = fresh.iter().step_by(11).map(|s| s.serial).collect();
        assert_same_queries(&new_master, &slave, &serials).await;
        assert_same_queries(&new_master, &slave, &[0, 100, 169, 170, 250]).await;
    });
}

#[test]
fn a_stale_tail_in_the_masters_unused_span_is_not_taken_for_common_entries() {
    let root = scratch_dir_on_real_disk("repl-stale").expect("scratch dir");
    let (master_root, slave_root) = (root.join("master"), root.join("slave"));
    run(async {
        // The master's CommitLog checkpoint moves only when the test says so.
        let mut config =
            replication_support::config(&master_root, FlushPolicy::Async, SEGMENT_BYTES);
        config.commitlog.flush_interval_ms = 60_000;
        config.commitlog.checkpoint_interval_ms = 3_600_000;
        let (master, _) = Store::open(config.clone(), Disk::real())
            .await
            .expect("open");
        // Records of 50,000 bytes: 18 end at 900,000; the 19th and 20th fill the segment to
        // 1,000,000, a filler the rest.
        for serial in 0..18 {
            append_exact(&master, QUEUES[0], serial, 50_000).await;
        }
        master.commitlog().flush().await.expect("flush");
        assert_eq!(
            master.commitlog().checkpoint().await.expect("checkpoint"),
            900_000
        );
        for serial in 18..30 {
            append_exact(&master, QUEUES[1], serial, 50_000).await;
        }
        let (slave, _) = open(&slave_root, FlushPolicy::Async, SEGMENT_BYTES, Disk::real()).await;
        ship(&master, &slave, &[1 << 20], ShipLimit::Appended).await;
        master.commitlog().flush().await.expect("flush");
        master.abandon().await;
        // The record at 900,000 is damaged: the master recovers to 900,000, and its records at
        // 950,000 and in the next segment stay on disk, valid but past its end.
        let segment = master_root.join("commitlog").join(format!("{:020}", 0));
        {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .expect("segment file");
            file.write_all_at(&[0u8; 16], 900_000).expect("damage");
            file.sync_all().expect("sync");
        }
        let (master, recovery) = Store::open(config, Disk::real()).await.expect("reopen");
        assert_eq!(recovery.commitlog.recovered_end, 900_000);
        // A record that does not fit the 148,576 bytes left: a filler at 900,000 spans the
        // stale record at 950,000. Then enough that 950,000 is read from disk, not the ring.
        let big = append_exact(&master, QUEUES[2], 100, u64::from(RECORD_MAX)).await;
        assert_eq!(big.outcome.phys_offset, SEGMENT_BYTES);
        for serial in 101..110 {
            append_exact(&master, QUEUES[2], serial, 190_000).await;
        }
        assert!(
            matches!(
                master.entry_header_at(950_000).await,
                Err(StorageError::NotAnEntry { .. })
            ),
            "the unused span after the filler reads as zeros"
        );
        let headers = entry_headers(&slave).await;
        assert!(headers.iter().any(|h| h.offset == 950_000));
        let mut prefix_end = 0;
        for header in headers.iter().rev() {
            if let Ok(theirs) = master.entry_header_at(header.offset).await {
                if theirs == *header {
                    prefix_end = header.end();
                    break;
                }
            }
        }
        assert_eq!(prefix_end, 900_000, "the stale copy is not a common entry");
        slave.truncate_to(prefix_end).await.expect("truncate");
        ship(&master, &slave, &[300_000], ShipLimit::Appended).await;
        assert_same(&master, &slave).await;
        master.checkpoint().await.expect("checkpoint");
        slave.checkpoint().await.expect("checkpoint");
        let end = master.commitlog().appended_offset();
        assert_same_segment_files(&master_root, &slave_root, end);
    });
}

/// After a cut at message `kept` of `sent`: queue max offsets count the kept messages, the
/// last kept one is pullable and nothing after, key queries find kept messages only.
async fn check_cut(store: &Store, sent: &[Sent], kept: usize) {
    let end = store.commitlog().appended_offset();
    assert_eq!(end, sent[kept].outcome.phys_offset);
    check_cut_at(store, sent, kept).await;
}

/// The store holds exactly `sent[..kept]` in its queues and index (its log may end after the
/// last of them, e.g. at a segment end).
async fn check_cut_at(store: &Store, sent: &[Sent], kept: usize) {
    let end = sent
        .get(kept)
        .map_or(store.commitlog().appended_offset(), |s| {
            s.outcome.phys_offset
        });
    for (topic, queue_id) in QUEUES {
        let mine: Vec<&Sent> = sent[..kept]
            .iter()
            .filter(|s| s.topic == topic && s.queue_id == queue_id)
            .collect();
        let max = mine.len() as u64;
        assert_eq!(store.max_offset(topic, queue_id), max, "{topic}/{queue_id}");
        let pull = |queue_offset| GetRequest {
            topic,
            queue_id,
            queue_offset,
            max_count: 32,
            max_bytes: 1 << 22,
            filter: TagFilter::All,
        };
        let at_max = store.get_messages(&pull(max)).await.expect("pull");
        let status = if max == 0 {
            GetStatus::NoMessageInQueue
        } else {
            GetStatus::OffsetOverflowOne
        };
        assert_eq!(at_max.status, status, "{topic}/{queue_id} at its max");
        if let Some(last) = mine.last() {
            let found = store.get_messages(&pull(max - 1)).await.expect("pull");
            assert_eq!(found.status, GetStatus::Found);
            assert_eq!(found.records.len(), 1);
            assert_eq!(found.records[0].phys_offset, last.outcome.phys_offset);
        }
    }
    for message in sent.iter().step_by(7) {
        let found = store
            .query_by_key(message.topic, &unique_key(message.serial), 4, 0, i64::MAX)
            .await
            .expect("query");
        let expected = usize::from(message.outcome.phys_offset < end);
        assert_eq!(
            found.records.len(),
            expected,
            "key of message {}",
            message.serial
        );
    }
}

#[test]
fn truncate_then_reopen_then_append_again() {
    let (root, _) = dirs("repl-truncate");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(31);
        let mut sent = append_random(&store, &mut rng, 0, 400).await;
        // Reopened, the generation of the entry before the cut is learnt by a header scan.
        store.close().await.expect("close");
        let (store, _) = open(&root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let sealed_before = store.index_sealed_files();
        let kept = 250;
        let before_cut = store
            .read_by_phys_offset(sent[kept - 1].outcome.phys_offset)
            .await
            .expect("record before the cut");
        assert!(before_cut.generation < store.commitlog().generation());
        store
            .truncate_to(sent[kept].outcome.phys_offset)
            .await
            .expect("truncate");
        assert_eq!(store.commitlog().last_generation(), before_cut.generation);
        check_cut(&store, &sent, kept).await;
        assert!(
            store.index_sealed_files() < sealed_before,
            "sealed index files dropped"
        );
        store.close().await.expect("close");
        let (store, recovery) = open(&root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        assert_eq!(
            recovery.commitlog.recovered_end,
            sent[kept].outcome.phys_offset
        );
        check_cut(&store, &sent, kept).await;
        // Appends continue each queue's offsets where the cut left them.
        sent.truncate(kept);
        let more = append_random(&store, &mut rng, 5_000, 60).await;
        for message in &more {
            let before = sent
                .iter()
                .filter(|s| s.topic == message.topic && s.queue_id == message.queue_id)
                .count() as u64;
            assert_eq!(message.outcome.queue_offset, before);
            sent.push(message.clone());
        }
        let end = store.commitlog().appended_offset();
        store.close().await.expect("close");
        let (store, recovery) = open(&root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        assert_eq!(recovery.commitlog.recovered_end, end);
        for message in sent.iter().step_by(5) {
            let found = store
                .query_by_key(message.topic, &unique_key(message.serial), 4, 0, i64::MAX)
                .await
                .expect("query");
            assert_eq!(found.records.len(), 1, "message {}", message.serial);
            assert_eq!(found.records[0].phys_offset, message.outcome.phys_offset);
        }
    });
}

#[test]
fn long_poll_waiters_keep_waiting_across_a_truncation() {
    use futures_util::FutureExt;
    let (root, _) = dirs("repl-truncate-wait");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let queue = QUEUES[0];
        let mut sent = Vec::new();
        for serial in 0..20 {
            sent.push(append_sized(&store, queue, serial, 100).await);
        }
        let mut waiter = store.wait_for_message(queue.0, queue.1, 20);
        assert!(
            (&mut waiter).now_or_never().is_none(),
            "nothing past 20 yet"
        );
        store
            .truncate_to(sent[15].outcome.phys_offset)
            .await
            .expect("truncate");
        assert_eq!(store.max_offset(queue.0, queue.1), 15);
        assert!(
            (&mut waiter).now_or_never().is_none(),
            "a truncation wakes no waiter with a message"
        );
        assert_eq!(store.waiters(), 1);
        for serial in 15..21 {
            append_sized(&store, queue, 100 + serial, 100).await;
        }
        assert_eq!(
            waiter.await,
            WaitOutcome::Arrived,
            "queue offset 20 exists again"
        );
    });
}

#[test]
fn truncate_at_a_segment_start_and_down_to_empty() {
    let (root, _) = dirs("repl-truncate-edges");
    run(async {
        let (store, _) = open(&root, FlushPolicy::Async, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(41);
        let sent = append_random(&store, &mut rng, 0, 300).await;
        let written_by = store.commitlog().generation();
        store.close().await.expect("close");
        let (store, _) = open(&root, FlushPolicy::Async, SEGMENT_BYTES, Disk::real()).await;
        let starts = store.commitlog().segment_starts();
        assert!(starts.len() >= 3);
        let cut = starts[1];
        let kept = sent
            .iter()
            .position(|s| s.outcome.phys_offset >= cut)
            .expect("records in the second segment");
        assert_eq!(
            sent[kept].outcome.phys_offset, cut,
            "a segment starts with a record"
        );
        store
            .truncate_to(cut)
            .await
            .expect("truncate at a segment start");
        assert_eq!(store.commitlog().segment_starts(), starts[..2].to_vec());
        // The entry before the cut is the first segment's filler or last record.
        assert_eq!(store.commitlog().last_generation(), written_by);
        assert!(written_by < store.commitlog().generation());
        check_cut(&store, &sent, kept).await;
        // Not an entry boundary: refused, nothing changed.
        let inside = sent[3].outcome.phys_offset + 16;
        assert!(matches!(
            store.truncate_to(inside).await,
            Err(StorageError::NotAnEntry { .. })
        ));
        assert!(matches!(
            store.truncate_to(cut + 16).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        check_cut(&store, &sent, kept).await;
        store.truncate_to(0).await.expect("truncate to empty");
        assert_eq!(
            store.commitlog().last_generation(),
            0,
            "nothing before offset 0"
        );
        for (topic, queue_id) in QUEUES {
            assert_eq!(store.offsets(topic, queue_id).map(|(_, max)| max), Some(0));
        }
        assert!(entry_stream(&store).await.is_empty());
        store.close().await.expect("close");
        let (store, recovery) = open(&root, FlushPolicy::Async, SEGMENT_BYTES, Disk::real()).await;
        assert_eq!(recovery.commitlog.recovered_end, 0);
        let again = append_random(&store, &mut rng, 900, 5).await;
        assert!(again.iter().all(|s| s.outcome.queue_offset < 5));
    });
}

#[test]
fn a_truncation_survives_a_power_loss_and_later_unsynced_appends() {
    let (root, _) = dirs("repl-truncate-crash");
    run(async {
        let faults = FaultInjector::new();
        faults.track_unsynced(true);
        let mut config = replication_support::config(&root, FlushPolicy::Async, SEGMENT_BYTES);
        config.commitlog.flush_interval_ms = 60_000;
        let (store, _) = Store::open(config.clone(), Disk::with_faults(faults.clone()))
            .await
            .expect("open");
        let mut rng = StdRng::seed_from_u64(71);
        let mut sent = append_random(&store, &mut rng, 0, 300).await;
        let kept = 200;
        let cut = sent[kept].outcome.phys_offset;
        store.truncate_to(cut).await.expect("truncate");
        // New records take the dropped ones' queue offsets (and their consume-queue slots);
        // none of them is made durable before the power loss.
        sent.truncate(kept);
        sent.extend(append_random(&store, &mut rng, 1_000, 40).await);
        store.abandon().await;
        faults.crash(CrashMode::DropUnsynced).expect("crash");
        let (store, recovery) = Store::open(config, Disk::real()).await.expect("reopen");
        let end = recovery.commitlog.recovered_end;
        assert!(
            end >= cut,
            "the truncation was durable when truncate_to returned"
        );
        let survivors = sent
            .iter()
            .position(|s| s.outcome.phys_offset >= end)
            .unwrap_or(sent.len());
        let boundary = sent
            .get(survivors)
            .map_or(store.commitlog().appended_offset(), |s| {
                s.outcome.phys_offset
            });
        assert_eq!(boundary, end, "recovery ends at a record boundary");
        // Every queue holds exactly the surviving records, each pullable at its offset.
        check_cut_at(&store, &sent, survivors).await;
    });
}

#[test]
fn a_failed_truncation_poisons_and_a_reopen_recovers_a_consistent_store() {
    // An EIO on every write under the CommitLog (its zeroing, after its checkpoint moved) or
    // under the consume queues (the store checkpoint's block writes, before the CommitLog is
    // touched).
    for failing in ["commitlog", "consumequeue"] {
        let (root, _) = dirs("repl-truncate-eio");
        run(async {
            let faults = FaultInjector::new();
            let disk = Disk::with_faults(faults.clone());
            let (store, _) = open(&root, FlushPolicy::Sync, SEGMENT_BYTES, disk).await;
            let mut rng = StdRng::seed_from_u64(81);
            let sent = append_random(&store, &mut rng, 0, 300).await;
            store.checkpoint().await.expect("checkpoint");
            let end = store.commitlog().appended_offset();
            faults.add_scoped_fault(ScopedFault {
                under: root.join(failing),
                op: FaultOp::Write,
                errno: libc::EIO,
            });
            let cut = sent[200].outcome.phys_offset;
            let error = store.truncate_to(cut).await.expect_err("EIO");
            assert!(
                matches!(error, StorageError::Io { .. }),
                "{failing}: {error}"
            );
            faults.clear_scoped_faults();
            let message = AppendMessage {
                topic: "Orders",
                queue_id: 0,
                tags_code: 0,
                keys: "late",
                store_timestamp_ms: Some(1),
                sys_flag: 0,
                payload: b"late",
            };
            assert!(
                matches!(
                    store.append(&message).await,
                    Err(StorageError::Poisoned { .. })
                ),
                "{failing}: the store takes no append until reopened"
            );
            assert!(matches!(
                store.append_replicated(end, &[]).await,
                Err(StorageError::Poisoned { .. })
            ));
            store.abandon().await;
            let (store, recovery) =
                open(&root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
            // Either failure left the old log whole: every record, queue entry and key is back.
            assert_eq!(recovery.commitlog.recovered_end, end, "{failing}");
            check_cut_at(&store, &sent, sent.len()).await;
            store.truncate_to(cut).await.expect("truncate");
            check_cut(&store, &sent, 200).await;
        });
    }
}

#[test]
fn corrupt_or_incomplete_chunks_are_refused_with_nothing_placed() {
    let (master_root, slave_root) = dirs("repl-corrupt");
    run(async {
        let (master, _) = open(&master_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let (slave, _) = open(&slave_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(51);
        append_random(&master, &mut rng, 0, 40).await;
        ship_until(
            &master,
            &slave,
            master.entry_header_at(0).await.expect("h").end(),
            1,
        )
        .await;
        let from = slave.commitlog().appended_offset();
        let chunk = master
            .read_log(from, 600_000, ShipLimit::Appended)
            .await
            .expect("read");
        assert!(chunk.entries >= 3);
        let offsets_before: Vec<_> = QUEUES.iter().map(|q| slave.offsets(q.0, q.1)).collect();
        let last_entry_at = chunk.bytes.len() - 40;
        for position in [0, 4, 9, 20, 70, 200, last_entry_at] {
            let mut bad = chunk.bytes.to_vec();
            bad[position] ^= 0x20;
            let error = slave
                .append_replicated(from, &bad)
                .await
                .expect_err("a flipped byte is refused");
            assert!(
                matches!(error, StorageError::ReplicationRefused { .. }),
                "byte {position}: {error}"
            );
        }
        let cut = &chunk.bytes[..chunk.bytes.len() - 16];
        assert!(matches!(
            slave.append_replicated(from, cut).await,
            Err(StorageError::ReplicationRefused {
                refusal: ReplicationRefusal::Incomplete { .. },
                ..
            })
        ));
        assert_eq!(slave.commitlog().appended_offset(), from, "nothing placed");
        let offsets_after: Vec<_> = QUEUES.iter().map(|q| slave.offsets(q.0, q.1)).collect();
        assert_eq!(offsets_before, offsets_after, "nothing dispatched");
        // Gaps either way.
        for got in [from + 16, from - 16] {
            assert!(matches!(
                slave.append_replicated(got, &chunk.bytes).await,
                Err(StorageError::ReplicationGap { expected, got: at }) if expected == from && at == got
            ));
        }
        let end = slave
            .append_replicated(from, &chunk.bytes)
            .await
            .expect("the clean chunk is placed");
        assert_eq!(end, chunk.next_offset);
        ship(&master, &slave, &[1 << 20], ShipLimit::Appended).await;
        assert_same(&master, &slave).await;
    });
}

#[test]
fn entries_the_slave_cannot_take_are_refused() {
    let (master_root, slave_root) = dirs("repl-refuse");
    run(async {
        let (master, _) = open(&master_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let (slave, _) = open(&slave_root, FlushPolicy::Sync, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(61);
        append_random(&master, &mut rng, 0, 10).await;
        ship(&master, &slave, &[1 << 20], ShipLimit::Appended).await;
        let at = slave.commitlog().appended_offset();
        let generation = slave.commitlog().last_generation();
        assert_eq!(generation, master.commitlog().generation());
        let next_offset = slave.max_offset("Orders", 0);
        let craft = |topic: &'static [u8], queue_offset: i64, generation: u32| {
            let record = AppendRecord {
                topic,
                queue_id: 0,
                queue_offset,
                tags_code: 0,
                keys: b"crafted",
                store_timestamp_ms: 5,
                sys_flag: 0,
                payload: b"p",
            };
            encode_to_vec(&record, at, generation)
        };
        let next = i64::try_from(next_offset).expect("small");
        let cases = [
            (craft(b"Orders", next, generation - 1), "generation"),
            (craft(b"Orders", next + 1, generation), "queue offset"),
            (craft(b"Or/ders", next, generation), "topic"),
        ];
        for (bytes, what) in cases {
            let error = slave.append_replicated(at, &bytes).await.expect_err(what);
            let refusal = match error {
                StorageError::ReplicationRefused { offset, refusal } if offset == at => refusal,
                other => panic!("{what}: {other}"),
            };
            match what {
                "generation" => assert_eq!(
                    refusal,
                    ReplicationRefusal::GenerationDecreased {
                        last: generation,
                        got: generation - 1
                    }
                ),
                "queue offset" => assert!(matches!(
                    refusal,
                    ReplicationRefusal::QueueOffsetMismatch { expected, got, .. }
                        if expected == next_offset && got == next + 1
                )),
                _ => assert!(matches!(
                    refusal,
                    ReplicationRefusal::InvalidField { field: "topic", .. }
                )),
            }
            assert_eq!(slave.commitlog().appended_offset(), at);
        }
        // The well-formed one is taken, and dispatched at the offset it carries.
        let end = slave
            .append_replicated(at, &craft(b"Orders", next, generation))
            .await
            .expect("valid crafted record");
        assert!(end > at);
        assert_eq!(slave.max_offset("Orders", 0), next_offset + 1);
    });
}

#[test]
fn a_master_with_other_segments_is_refused_at_the_first_segment_end() {
    for (master_segment, slave_segment) in [
        (SEGMENT_BYTES, 2 * SEGMENT_BYTES),
        (2 * SEGMENT_BYTES, SEGMENT_BYTES),
    ] {
        let (master_root, slave_root) = dirs("repl-geometry");
        run(async {
            let (master, _) = open(
                &master_root,
                FlushPolicy::Sync,
                master_segment,
                Disk::real(),
            )
            .await;
            let (slave, _) =
                open(&slave_root, FlushPolicy::Sync, slave_segment, Disk::real()).await;
            // Records of exactly 100,000 bytes: the eleventh does not fit a 1 MiB segment.
            for serial in 0..12 {
                let keys = format!("{} biz{}", unique_key(serial), serial % 7);
                let len = 100_000
                    - usize::try_from(replication_support::encoded("Orders", &keys, 0))
                        .expect("small");
                append_sized(&master, QUEUES[0], serial, len).await;
            }
            let mut from = 0;
            let error = loop {
                let chunk = master
                    .read_log(from, 100_000, ShipLimit::Appended)
                    .await
                    .expect("read");
                assert!(!chunk.is_empty(), "refused before the end");
                match slave.append_replicated(from, &chunk.bytes).await {
                    Ok(end) => from = end,
                    Err(error) => break error,
                }
            };
            assert_eq!(
                from, 1_000_000,
                "every chunk before the segment end was placed"
            );
            assert_eq!(slave.commitlog().appended_offset(), 1_000_000);
            let refusal = match error {
                StorageError::ReplicationRefused {
                    offset: 1_000_000,
                    refusal,
                } => refusal,
                other => panic!("{other}"),
            };
            if master_segment < slave_segment {
                assert_eq!(
                    refusal,
                    ReplicationRefusal::FillerMisplaced {
                        segment_end: slave_segment,
                        filler_end: master_segment
                    }
                );
            } else {
                assert_eq!(
                    refusal,
                    ReplicationRefusal::CrossesSegmentEnd {
                        segment_end: slave_segment,
                        entry_end: 1_100_000
                    }
                );
            }
        });
    }
}

/// One property case: a master with records of `sizes` (payload bytes) to random queues,
/// shipped in chunks of `chunks` sizes; the slave's entries, files and queues equal the
/// master's.
fn mirror_case(sizes: &[usize], chunks: &[usize]) {
    let (master_root, slave_root) = dirs("repl-prop");
    run(async {
        let (master, _) = open(
            &master_root,
            FlushPolicy::Async,
            SEGMENT_BYTES,
            Disk::real(),
        )
        .await;
        let (slave, _) = open(&slave_root, FlushPolicy::Async, SEGMENT_BYTES, Disk::real()).await;
        let half = sizes.len() / 2;
        for (serial, &len) in (0u64..).zip(sizes) {
            let queue = QUEUES[usize::try_from(serial).expect("small") % QUEUES.len()];
            append_sized(&master, queue, serial, len).await;
            if serial as usize == half {
                ship(&master, &slave, chunks, ShipLimit::Appended).await;
            }
        }
        ship(&master, &slave, chunks, ShipLimit::Appended).await;
        assert_same(&master, &slave).await;
        master.checkpoint().await.expect("checkpoint");
        slave.checkpoint().await.expect("checkpoint");
        let end = master.commitlog().appended_offset();
        if end > 0 {
            assert_same_segment_files(&master_root, &slave_root, end);
        }
    });
}

/// Payload sizes up to the largest a record of the test's topic and keys can carry.
fn payload_sizes() -> impl Strategy<Value = Vec<usize>> {
    let near_max = RECORD_MAX as usize - 64 - "Orders".len() - 24;
    let size = prop_oneof![
        6 => 0usize..3_000,
        2 => 3_000usize..80_000,
        1 => (near_max - 64)..=near_max,
    ];
    proptest::collection::vec(size, 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn the_slave_log_equals_the_master_log(
        sizes in payload_sizes(),
        chunks in proptest::collection::vec(1usize..1_500_000, 1..5),
    ) {
        mirror_case(&sizes, &chunks);
    }
}
