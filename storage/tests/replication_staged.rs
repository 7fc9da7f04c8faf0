//! The slave's append split in two (`place_replicated`, then `dispatch_replicated`), as the HA
//! session uses it to place chunk N + 1 while chunk N is dispatched, on a real disk:
//! - a placed chunk is in the log but no pull and no key query returns its records until it
//!   is dispatched, while the next chunk is placed ahead of it;
//! - chunks dispatched after a read-back reput (a checkpoint) got to their records are not
//!   dispatched twice;
//! - a truncation while a dispatch is in flight waits for it, dispatches or cuts every placed
//!   chunk, and a placed chunk's dispatch after it does nothing; the slave then mirrors the
//!   master again.

mod replication_support;

use futures_util::future::join;
use rand::rngs::StdRng;
use rand::SeedableRng;
use replication_support::{
    append_random, assert_same, open, run, ship, unique_key, Sent, QUEUES, SEGMENT_BYTES,
};
use rmq_storage::commitlog::{FlushPolicy, LogChunk, ShipLimit};
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{GetRequest, GetStatus, Store, TagFilter};

fn dirs(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = scratch_dir_on_real_disk(name).expect("scratch dir");
    (root.join("master"), root.join("slave"))
}

/// The next chunk of the master from the slave's end, at most `max_bytes`.
async fn next_chunk(master: &Store, slave: &Store, max_bytes: usize) -> LogChunk {
    let from = slave.commitlog().appended_offset();
    let chunk = master
        .read_log(from, max_bytes, ShipLimit::Appended)
        .await
        .expect("read_log");
    assert!(!chunk.is_empty(), "the master has more");
    chunk
}

/// Every queue of the slave shows exactly the records of `sent` below `end` (max offsets,
/// pulls at the max and below it, key queries on both sides of `end`).
async fn visible_below(slave: &Store, sent: &[Sent], end: u64) {
    for (topic, queue_id) in QUEUES {
        let mine: Vec<&Sent> = sent
            .iter()
            .filter(|s| s.topic == topic && s.queue_id == queue_id)
            .collect();
        let below = mine.iter().filter(|s| s.outcome.phys_offset < end).count() as u64;
        assert_eq!(
            slave.max_offset(topic, queue_id),
            below,
            "{topic}/{queue_id}"
        );
        let request = GetRequest {
            topic,
            queue_id,
            queue_offset: below,
            max_count: 32,
            max_bytes: 1 << 22,
            filter: TagFilter::All,
        };
        let at_max = slave.get_messages(&request).await.expect("pull");
        assert!(
            at_max.records.is_empty(),
            "{topic}/{queue_id}: nothing past the dispatched end"
        );
        assert_ne!(at_max.status, GetStatus::Found);
        if below > 0 {
            let last = GetRequest {
                queue_offset: below - 1,
                ..request
            };
            let found = slave.get_messages(&last).await.expect("pull");
            assert_eq!(found.status, GetStatus::Found);
            assert_eq!(
                found.records[0].phys_offset,
                mine[usize::try_from(below - 1).expect("small")]
                    .outcome
                    .phys_offset
            );
        }
    }
    for record in sent {
        let key = unique_key(record.serial);
        let found = slave
            .query_by_key(record.topic, &key, 4, 0, i64::MAX)
            .await
            .expect("query");
        let expected = usize::from(record.outcome.phys_offset < end);
        assert_eq!(found.records.len(), expected, "{key} (end {end})");
    }
}

#[test]
fn placed_chunks_are_invisible_until_dispatched_in_log_order() {
    let (master_root, slave_root) = dirs("repl-staged-visible");
    run(async {
        let policy = FlushPolicy::Async;
        let (master, _) = open(&master_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let (slave, _) = open(&slave_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(31);
        let sent = append_random(&master, &mut rng, 0, 200).await;

        let first = next_chunk(&master, &slave, 200_000).await;
        let placed_first = slave
            .place_replicated(first.from, &first.bytes)
            .await
            .expect("place first");
        assert_eq!(placed_first.end(), first.next_offset);
        assert_eq!(slave.commitlog().appended_offset(), first.next_offset);
        visible_below(&slave, &sent, first.from).await;

        // The next chunk is placed while the first is still undispatched.
        let second = next_chunk(&master, &slave, 200_000).await;
        let placed_second = slave
            .place_replicated(second.from, &second.bytes)
            .await
            .expect("place second");
        assert_eq!(slave.commitlog().appended_offset(), second.next_offset);
        visible_below(&slave, &sent, first.from).await;

        slave
            .dispatch_replicated(&first.bytes, placed_first)
            .await
            .expect("dispatch first");
        visible_below(&slave, &sent, first.next_offset).await;
        slave
            .dispatch_replicated(&second.bytes, placed_second)
            .await
            .expect("dispatch second");
        visible_below(&slave, &sent, second.next_offset).await;

        ship(&master, &slave, &[150_000], ShipLimit::Appended).await;
        assert_same(&master, &slave).await;
    });
}

#[test]
fn a_chunk_a_checkpoint_dispatched_first_is_not_dispatched_twice() {
    let (master_root, slave_root) = dirs("repl-staged-checkpoint");
    run(async {
        let policy = FlushPolicy::Async;
        let (master, _) = open(&master_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let (slave, _) = open(&slave_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(32);
        let sent = append_random(&master, &mut rng, 0, 150).await;

        let chunk = next_chunk(&master, &slave, 300_000).await;
        let placed = slave
            .place_replicated(chunk.from, &chunk.bytes)
            .await
            .expect("place");
        // The checkpoint's reput reads the placed records back and dispatches them.
        slave.checkpoint().await.expect("checkpoint");
        visible_below(&slave, &sent, chunk.next_offset).await;
        slave
            .dispatch_replicated(&chunk.bytes, placed)
            .await
            .expect("dispatch after the checkpoint");
        visible_below(&slave, &sent, chunk.next_offset).await;

        ship(&master, &slave, &[100_000], ShipLimit::Appended).await;
        assert_same(&master, &slave).await;
    });
}

#[test]
fn a_truncation_with_a_dispatch_in_flight_leaves_a_consistent_slave() {
    let (master_root, slave_root) = dirs("repl-staged-truncate");
    run(async {
        let policy = FlushPolicy::Async;
        let (master, _) = open(&master_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let (slave, _) = open(&slave_root, policy, SEGMENT_BYTES, Disk::real()).await;
        let mut rng = StdRng::seed_from_u64(33);
        let sent = append_random(&master, &mut rng, 0, 240).await;

        let first = next_chunk(&master, &slave, 250_000).await;
        let placed_first = slave
            .place_replicated(first.from, &first.bytes)
            .await
            .expect("place first");
        let second = next_chunk(&master, &slave, 250_000).await;
        let placed_second = slave
            .place_replicated(second.from, &second.bytes)
            .await
            .expect("place second");
        // Cut inside the first chunk: a record boundary the master has too.
        let cut = sent
            .iter()
            .map(|s| s.outcome.phys_offset)
            .filter(|&offset| offset > first.from && offset < first.next_offset)
            .nth(3)
            .expect("a record inside the first chunk");

        // The first chunk's dispatch is in flight (it takes the reput lock first); the
        // truncation waits for it, dispatches the second chunk by read-back, and cuts.
        let (dispatched, truncated) = join(
            slave.dispatch_replicated(&first.bytes, placed_first),
            slave.truncate_to(cut),
        )
        .await;
        dispatched.expect("dispatch first");
        truncated.expect("truncate");
        assert_eq!(slave.commitlog().appended_offset(), cut);
        visible_below(&slave, &sent, cut).await;
        // The second chunk was cut: its dispatch has nothing left to do.
        slave
            .dispatch_replicated(&second.bytes, placed_second)
            .await
            .expect("dispatch of a cut chunk");
        visible_below(&slave, &sent, cut).await;

        ship(&master, &slave, &[120_000], ShipLimit::Appended).await;
        assert_same(&master, &slave).await;
        visible_below(&slave, &sent, master.commitlog().appended_offset()).await;
    });
}
