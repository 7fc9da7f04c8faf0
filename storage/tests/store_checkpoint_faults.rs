//! Store checkpoints while consume-queue files cannot be opened, written or synced for a while
//! (EMFILE, ENOSPC): every checkpoint fails while the fault lasts, the first one after it
//! succeeds, and a power loss right after it replays only what was appended since, with no
//! message lost and no queue repaired (the checkpoint never claimed more than the files held).
//! A failed fdatasync itself stays final until the store is reopened (fsyncgate).

mod store_support;

use std::rc::Rc;

use rmq_storage::commitlog::FlushPolicy;
use rmq_storage::error::StorageError;
use rmq_storage::file::{
    scratch_dir_on_real_disk, CrashMode, Disk, FaultInjector, FaultOp, ScopedFault,
};
use rmq_storage::store::checkpoint_file;
use rmq_storage::store::{AppendMessage, GetRequest, GetStatus, Store, TagFilter};
use store_support::{open, payload, run};

/// Queues the tests write to.
const QUEUES: [(&str, i32); 3] = [("T", 0), ("T", 1), ("Other", 0)];

/// Appends message `i` to every queue. No index keys: the index then never holds replay back,
/// so a reopen replays exactly from the consume queues' checkpoint.
async fn append_all(store: &Store, range: std::ops::Range<u64>) {
    for i in range {
        for (topic, queue_id) in QUEUES {
            let payload = payload(topic, queue_id, i);
            let message = AppendMessage {
                topic,
                queue_id,
                tags_code: 0,
                keys: "",
                store_timestamp_ms: Some(1_000),
                sys_flag: 0,
                payload: &payload,
            };
            let outcome = store.append(&message).await.expect("append");
            assert_eq!(outcome.queue_offset, i, "{topic}/{queue_id}");
        }
    }
}

/// Every queue holds exactly messages `0..count`, each with its payload.
async fn verify(store: &Store, count: u64) {
    for (topic, queue_id) in QUEUES {
        assert_eq!(
            store.offsets(topic, queue_id),
            Some((0, count)),
            "{topic}/{queue_id}"
        );
        let mut offset = 0;
        while offset < count {
            let request = GetRequest {
                topic,
                queue_id,
                queue_offset: offset,
                max_count: 64,
                max_bytes: 1 << 20,
                filter: TagFilter::All,
            };
            let result = store.get_messages(&request).await.expect("get");
            assert_eq!(
                result.status,
                GetStatus::Found,
                "{topic}/{queue_id} at {offset}"
            );
            for record in &result.records {
                assert_eq!(u64::try_from(record.queue_offset).expect("offset"), offset);
                assert_eq!(&record.payload[..], &payload(topic, queue_id, offset)[..]);
                offset += 1;
            }
        }
    }
}

fn is_errno(error: &StorageError, errno: i32) -> bool {
    matches!(error, StorageError::Io { source, .. } if source.raw_os_error() == Some(errno))
}

/// One transient fault on the consume-queue directory.
struct Scenario {
    name: &'static str,
    op: FaultOp,
    errno: i32,
    /// Messages per queue: before the fault, up to the end of the fault, after the fault.
    counts: [u64; 3],
    /// The fault starts after the messages written during it were appended (their blocks are
    /// then written and only their fdatasync meets the fault), instead of before.
    armed_after_appends: bool,
    expected: fn(&StorageError) -> bool,
}

/// Writes `before` messages per queue and checkpoints; writes up to `during` with the fault
/// armed (before or after those appends), and checks three checkpoints fail as expected;
/// clears the fault, checks the next checkpoint succeeds, appends up to `after`, then loses
/// power: the reopened store replays only the messages after that checkpoint and holds every
/// message.
fn fault_then_recovery(scenario: &Scenario) {
    let name = scenario.name;
    let [before, during, after] = scenario.counts;
    let root = scratch_dir_on_real_disk(name).expect("scratch");
    let faults = FaultInjector::new();
    faults.track_unsynced(true);
    let fault = ScopedFault {
        under: root.join("consumequeue"),
        op: scenario.op,
        errno: scenario.errno,
    };
    run(async {
        let disk = Disk::with_faults(Rc::clone(&faults));
        let (store, _) = open(&root, FlushPolicy::Sync, disk).await;
        append_all(&store, 0..before).await;
        store
            .checkpoint()
            .await
            .expect("checkpoint before the fault");
        if !scenario.armed_after_appends {
            faults.add_scoped_fault(fault.clone());
        }
        append_all(&store, before..during).await;
        if scenario.armed_after_appends {
            faults.add_scoped_fault(fault.clone());
        }
        for attempt in 1..=3 {
            let error = store
                .checkpoint()
                .await
                .expect_err("checkpoint while the fault lasts");
            assert!(
                (scenario.expected)(&error),
                "{name}: unexpected error {error}"
            );
            assert_eq!(store.checkpoint_failures(), attempt);
        }
        assert!(faults.scoped_hits() > 0, "{name}: the fault was hit");
        if !scenario.armed_after_appends {
            verify(&store, during).await; // unwritten blocks are served from memory meanwhile
        }
        faults.clear_scoped_faults();
        store
            .checkpoint()
            .await
            .expect("the first checkpoint after the fault");
        assert_eq!(store.checkpoint_failures(), 0);
        let checkpointed = checkpoint_file::read(&Disk::real(), &root)
            .await
            .expect("read checkpoint")
            .expect("a checkpoint");
        assert_eq!(
            checkpointed.dispatched_phys,
            store.commitlog().appended_offset()
        );
        append_all(&store, during..after).await;
        // Power loss: every write no fdatasync covered is reverted.
        store.abandon().await;
        faults.crash(CrashMode::DropUnsynced).expect("crash");

        let (store, recovery) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert_eq!(
            recovery.replay_from, checkpointed.dispatched_phys,
            "{name}: replay starts at the checkpoint written after the fault"
        );
        let appended_since = (after - during) * QUEUES.len() as u64;
        assert_eq!(recovery.records_replayed, appended_since, "{name}");
        assert_eq!(
            recovery.queues_repaired, 0,
            "{name}: the checkpoint claimed only what the files held"
        );
        verify(&store, after).await;
        store.close().await.expect("close");
    });
}

/// Out of file descriptors: every consume-queue open fails with EMFILE (block writes, tail
/// writes, fdatasyncs, directory fsyncs).
#[test]
fn emfile_on_consume_queue_opens_then_checkpoints_resume() {
    fault_then_recovery(&Scenario {
        name: "cp-emfile",
        op: FaultOp::Open,
        errno: libc::EMFILE,
        counts: [100, 300, 340],
        armed_after_appends: false,
        expected: |error| is_errno(error, libc::EMFILE),
    });
}

/// EMFILE only once the blocks are written (whole blocks, no tail to rewrite): the flush fails
/// at the fdatasync's open. Those files must be synced by the next flush, not forgotten: a
/// checkpoint covering them without their fdatasync would lose them to the power loss and
/// make recovery repair the queues.
#[test]
fn emfile_at_the_fdatasync_keeps_the_files_to_sync() {
    fault_then_recovery(&Scenario {
        name: "cp-emfile-sync",
        op: FaultOp::Open,
        errno: libc::EMFILE,
        counts: [128, 384, 400],
        armed_after_appends: true,
        expected: |error| is_errno(error, libc::EMFILE),
    });
}

/// Disk full: every consume-queue write fails with ENOSPC (reported as `DiskFull`).
#[test]
fn enospc_on_consume_queue_writes_then_checkpoints_resume() {
    fault_then_recovery(&Scenario {
        name: "cp-enospc-write",
        op: FaultOp::Write,
        errno: libc::ENOSPC,
        counts: [100, 300, 340],
        armed_after_appends: false,
        expected: StorageError::is_disk_full,
    });
}

/// Disk full at file creation: opening consume-queue files fails with ENOSPC while the queues
/// grow into new files (256 entries per file).
#[test]
fn enospc_on_consume_queue_opens_then_checkpoints_resume() {
    fault_then_recovery(&Scenario {
        name: "cp-enospc-open",
        op: FaultOp::Open,
        errno: libc::ENOSPC,
        counts: [200, 600, 650],
        armed_after_appends: false,
        expected: StorageError::is_disk_full,
    });
}

/// A failed fdatasync itself is final (fsyncgate: a later one may succeed without what it
/// should have covered): checkpoints stay refused until the store is reopened, and the reopen
/// rebuilds from the last good checkpoint without losing a message.
#[test]
fn a_failed_consume_queue_fdatasync_refuses_checkpoints_until_reopen() {
    let root = scratch_dir_on_real_disk("cp-fdatasync").expect("scratch");
    let faults = FaultInjector::new();
    run(async {
        let disk = Disk::with_faults(Rc::clone(&faults));
        let (store, _) = open(&root, FlushPolicy::Sync, disk).await;
        append_all(&store, 0..100).await;
        store.checkpoint().await.expect("checkpoint");
        append_all(&store, 100..200).await;
        faults.add_scoped_fault(ScopedFault {
            under: root.join("consumequeue"),
            op: FaultOp::Sync,
            errno: libc::EIO,
        });
        let error = store.checkpoint().await.expect_err("fdatasync fails");
        assert!(is_errno(&error, libc::EIO), "{error}");
        faults.clear_scoped_faults();
        for _ in 0..2 {
            let error = store.checkpoint().await.expect_err("refused until reopen");
            assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
        }
        append_all(&store, 200..210).await; // appends go on
        drop(store); // a crash

        let (store, recovery) = open(&root, FlushPolicy::Sync, Disk::real()).await;
        assert_eq!(
            recovery.records_replayed,
            110 * QUEUES.len() as u64,
            "replayed from the last good checkpoint"
        );
        verify(&store, 210).await;
        store
            .checkpoint()
            .await
            .expect("checkpoints resume after the reopen");
        store.close().await.expect("close");
    });
}
