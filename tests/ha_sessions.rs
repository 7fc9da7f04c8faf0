//! Replication sessions in process: a master Store and a slave Store in two real-disk
//! directories, `serve_slave` and `follow_master` connected over 127.0.0.1 TCP in one compio
//! runtime. Checks catch-up, live following, resume after a slave restart, refusals, and
//! truncation after a divergence. Nothing here asserts a duration: waits are on the slave's
//! acknowledgements, with a generous bound only so that a bug fails instead of hanging.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{join, select, Either};
use rmq::ha::{
    follow_master, serve_slave, AckLevel, FollowProgress, HaError, MasterParams, SlaveParams,
    SlaveProgress,
};
use rmq_net::ha::{Body, Data, Frame, HaCodecError, RefuseReason, Welcome};
use rmq_storage::commitlog::{FlushPolicy, ShipLimit};
use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
use rmq_storage::store::{AppendMessage, GetRequest, Store, TagFilter};

#[path = "../storage/tests/store_support/mod.rs"]
mod store_support;

const TOPICS: [&str; 2] = ["ha-orders", "ha-events"];
const QUEUES: i32 = 2;
/// Only so that a broken session fails the test instead of hanging it.
const LIVENESS_BOUND: Duration = Duration::from_secs(120);

fn run<F: Future>(future: F) -> F::Output {
    rmq::runtime::new_runtime()
        .expect("runtime")
        .block_on(future)
}

/// Opens a store under ASYNC_FLUSH.
async fn open(root: &Path) -> Store {
    open_with(root, FlushPolicy::Async).await
}

async fn open_with(root: &Path, flush_policy: FlushPolicy) -> Store {
    // The storage tests' small geometry (256 KiB segments): a few thousand records span
    // several segments and fillers.
    store_support::open(root, flush_policy, Disk::real())
        .await
        .0
}

/// Appends `count` records round-robin over the topics and queues; `label` goes into every
/// payload and key, so two brokers appending with different labels write different entries.
async fn append(store: &Store, label: &str, count: u64) {
    for i in 0..count {
        let topic = TOPICS[usize::try_from(i % 2).expect("small")];
        let queue_id = i32::try_from(i / 2 % 2).expect("small");
        let payload = format!(
            "{label}/{i}:{}",
            "x".repeat(usize::try_from(i % 90).expect("small"))
        );
        let keys = format!("{label}-{i}");
        let message = AppendMessage {
            topic,
            queue_id,
            tags_code: i64::try_from(i % 3).expect("small"),
            keys: &keys,
            store_timestamp_ms: Some(1_000 + i64::try_from(i).expect("small")),
            sys_flag: 0,
            payload: payload.as_bytes(),
        };
        store.append(&message).await.expect("append");
    }
}

/// Appends `count` records of 12 KiB (under the 16 KiB record limit) to one queue.
async fn append_large(store: &Store, count: u64) {
    for i in 0..count {
        let payload = vec![u8::try_from(i % 251).expect("small"); 12 * 1024];
        let keys = format!("large-{i}");
        let message = AppendMessage {
            topic: TOPICS[0],
            queue_id: 0,
            tags_code: 0,
            keys: &keys,
            store_timestamp_ms: Some(5_000),
            sys_flag: 0,
            payload: &payload,
        };
        store.append(&message).await.expect("append");
    }
}

fn master_params(progress: &Rc<SlaveProgress>) -> MasterParams {
    MasterParams {
        shard_id: 0,
        shard_count: 1,
        cluster_name: "HaCluster".into(),
        broker_name: "broker-a".into(),
        transfer_batch_bytes: 32 * 1024,
        heartbeat_interval: Duration::from_millis(50),
        silence_timeout: Duration::from_secs(30),
        progress: Rc::clone(progress),
    }
}

fn slave_params() -> SlaveParams {
    SlaveParams {
        shard_id: 0,
        shard_count: 1,
        broker_id: 1,
        cluster_name: "HaCluster".into(),
        broker_name: "broker-a".into(),
        heartbeat_interval: Duration::from_millis(50),
        silence_timeout: Duration::from_secs(30),
        follow: Rc::new(FollowProgress::new()),
    }
}

/// A connected pair: (the master's end, the slave's end).
async fn connect(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let address = listener.local_addr().expect("address");
    let (accepted, connected) = join(listener.accept(), TcpStream::connect(address)).await;
    (accepted.expect("accept").0, connected.expect("connect"))
}

/// Runs one session pair while `driver` runs; the sessions must outlive it (a session that
/// ends first fails the test with both results). Dropping the sessions closes both ends.
async fn while_following<T>(
    master: &Store,
    slave: &Store,
    listener: &TcpListener,
    progress: &Rc<SlaveProgress>,
    driver: impl Future<Output = T>,
) -> T {
    let params = master_params(progress);
    while_following_with(master, slave, listener, params, slave_params(), driver).await
}

async fn while_following_with<T>(
    master: &Store,
    slave: &Store,
    listener: &TcpListener,
    params: MasterParams,
    slave_side: SlaveParams,
    driver: impl Future<Output = T>,
) -> T {
    let (master_end, slave_end) = connect(listener).await;
    let sessions = join(
        serve_slave(master, master_end, params),
        follow_master(slave, slave_end, slave_side),
    );
    let bounded = compio::time::timeout(LIVENESS_BOUND, driver);
    match select(pin!(sessions), pin!(bounded)).await {
        Either::Left((results, _)) => panic!("a session ended under the driver: {results:?}"),
        Either::Right((Ok(value), _)) => value,
        Either::Right((Err(_), _)) => panic!("the driver did not finish within the bound"),
    }
}

/// Waits until the slave acknowledged the master's whole log at `level`. (Under ASYNC_FLUSH
/// a slave's durable end may trail by the flusher's interval for a partial page, so tests
/// wait for durable acks only from a SYNC_FLUSH slave, which acks durable bytes at once.)
async fn caught_up(master: &Store, progress: &SlaveProgress, level: AckLevel) {
    let end = master.commitlog().appended_offset();
    let deadline = Instant::now() + Duration::from_secs(120);
    progress
        .wait_acked(end, level, Some(deadline))
        .await
        .expect("acknowledged within two minutes");
}

/// The two logs hold the same entries (compared as shipped: whole records, fillers by their
/// headers), the same segments, the same queues with the same max offsets, and the same
/// records at the first, middle and last offset of every queue.
async fn assert_same(master: &Store, slave: &Store) {
    let (log, copy) = (master.commitlog(), slave.commitlog());
    assert_eq!(log.appended_offset(), copy.appended_offset());
    // The slave acknowledges what it placed; its dispatch (consume queues, index) follows.
    let deadline = Instant::now() + Duration::from_secs(60);
    while slave.dispatched_offset() < copy.appended_offset() {
        assert!(
            Instant::now() < deadline,
            "the slave never dispatched its log"
        );
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(log.segment_starts(), copy.segment_starts());
    let mut at = log.min_offset();
    let mut entries = 0;
    while at < log.appended_offset() {
        let ours = master
            .read_log(at, 64 * 1024, ShipLimit::Appended)
            .await
            .expect("read");
        let theirs = slave
            .read_log(at, 64 * 1024, ShipLimit::Appended)
            .await
            .expect("read");
        assert_eq!(ours, theirs, "entries from {at}");
        assert!(!ours.is_empty());
        entries += ours.entries;
        at = ours.next_offset;
    }
    assert!(entries > 0);
    for topic in TOPICS {
        assert_eq!(master.queue_ids(topic), slave.queue_ids(topic), "{topic}");
        for queue_id in 0..QUEUES {
            let max = master.max_offset(topic, queue_id);
            assert!(max > 0, "{topic}/{queue_id} has records");
            assert_eq!(max, slave.max_offset(topic, queue_id), "{topic}/{queue_id}");
            for queue_offset in [0, max / 2, max - 1] {
                let request = GetRequest {
                    topic,
                    queue_id,
                    queue_offset,
                    max_count: 1,
                    max_bytes: 1 << 20,
                    filter: TagFilter::All,
                };
                let ours = master.get_messages(&request).await.expect("get");
                let theirs = slave.get_messages(&request).await.expect("get");
                assert_eq!(ours.records.len(), 1, "{topic}/{queue_id}@{queue_offset}");
                assert_eq!(ours, theirs, "{topic}/{queue_id}@{queue_offset}");
            }
        }
    }
}

struct Dirs {
    master: PathBuf,
    slave: PathBuf,
}

impl Dirs {
    fn new(name: &str) -> Self {
        Self {
            master: scratch_dir_on_real_disk(&format!("{name}-master")).expect("dir"),
            slave: scratch_dir_on_real_disk(&format!("{name}-slave")).expect("dir"),
        }
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.master);
        let _ = std::fs::remove_dir_all(&self.slave);
    }
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

#[test]
fn an_empty_slave_catches_up_and_follows_new_appends() {
    let dirs = Dirs::new("ha-catch-up");
    run(async {
        let master = open(&dirs.master).await;
        let slave = open_with(&dirs.slave, FlushPolicy::Sync).await;
        append(&master, "first", 3_000).await;
        assert!(
            master.commitlog().segment_starts().len() > 1,
            "several segments"
        );
        let listener = listener().await;
        let progress = Rc::new(SlaveProgress::new());
        let slave_side = slave_params();
        let follow = Rc::clone(&slave_side.follow);
        let params = master_params(&progress);
        while_following_with(&master, &slave, &listener, params, slave_side, async {
            caught_up(&master, &progress, AckLevel::Durable).await;
            assert_same(&master, &slave).await;
            // What the slave heard of the master: its end, and the backlog replicated.
            assert_eq!(follow.master_end(), master.commitlog().appended_offset());
            assert!(follow.caught_up());
            assert!(follow.last_data().is_some());
            // Live: appends made while the slave follows arrive too.
            append(&master, "live", 700).await;
            caught_up(&master, &progress, AckLevel::Durable).await;
            assert_same(&master, &slave).await;
            assert_eq!(follow.master_end(), master.commitlog().appended_offset());
        })
        .await;
        assert!(progress.acks() > 0);
        assert!(progress.last_ack().is_some());
        assert_eq!(progress.durable(), master.commitlog().appended_offset());
        master.close().await.expect("close");
        slave.close().await.expect("close");
    });
}

#[test]
fn entries_larger_than_the_batch_ship_whole() {
    let dirs = Dirs::new("ha-large");
    run(async {
        let (master, slave) = (open(&dirs.master).await, open(&dirs.slave).await);
        append(&master, "small", 40).await;
        append_large(&master, 30).await;
        append(&master, "small-after", 40).await;
        let listener = listener().await;
        let progress = Rc::new(SlaveProgress::new());
        let params = MasterParams {
            transfer_batch_bytes: 4 * 1024,
            ..master_params(&progress)
        };
        while_following_with(&master, &slave, &listener, params, slave_params(), async {
            caught_up(&master, &progress, AckLevel::Appended).await;
            assert_same(&master, &slave).await;
        })
        .await;
        master.close().await.expect("close");
        slave.close().await.expect("close");
    });
}

#[test]
fn a_restarted_slave_resumes_from_its_end() {
    let dirs = Dirs::new("ha-resume");
    run(async {
        let master = open(&dirs.master).await;
        append(&master, "first", 1_500).await;
        let listener = listener().await;
        let progress = Rc::new(SlaveProgress::new());
        let slave = open(&dirs.slave).await;
        while_following(
            &master,
            &slave,
            &listener,
            &progress,
            caught_up(&master, &progress, AckLevel::Appended),
        )
        .await;
        let end = slave.commitlog().appended_offset();
        slave.close().await.expect("close");
        drop(slave);

        append(&master, "while-down", 900).await;
        let slave = open(&dirs.slave).await;
        assert_eq!(
            slave.commitlog().appended_offset(),
            end,
            "recovered its end"
        );
        // A Truncate would end the sessions under the driver and fail the test: the slave
        // continues from its end (the fast path of the handshake).
        while_following(&master, &slave, &listener, &progress, async {
            caught_up(&master, &progress, AckLevel::Appended).await;
            assert_same(&master, &slave).await;
        })
        .await;
        master.close().await.expect("close");
        slave.close().await.expect("close");
    });
}

#[test]
fn a_slave_of_another_shape_cluster_or_shard_is_refused() {
    let dirs = Dirs::new("ha-refused");
    run(async {
        let (master, slave) = (open(&dirs.master).await, open(&dirs.slave).await);
        append(&master, "first", 10).await;
        let listener = listener().await;
        let progress = Rc::new(SlaveProgress::new());
        let two_shards = MasterParams {
            shard_count: 2,
            ..master_params(&progress)
        };
        let cases = [
            (
                master_params(&progress),
                SlaveParams {
                    shard_count: 2,
                    ..slave_params()
                },
                RefuseReason::ShardCount,
            ),
            (
                master_params(&progress),
                SlaveParams {
                    cluster_name: "OtherCluster".into(),
                    ..slave_params()
                },
                RefuseReason::ClusterName,
            ),
            (
                master_params(&progress),
                SlaveParams {
                    broker_id: 0,
                    ..slave_params()
                },
                RefuseReason::BrokerId,
            ),
            (
                // Shard 1's Hello reaching shard 0's session.
                two_shards,
                SlaveParams {
                    shard_id: 1,
                    shard_count: 2,
                    ..slave_params()
                },
                RefuseReason::ShardId,
            ),
        ];
        for (master_side, slave_side, expected) in cases {
            let (master_end, slave_end) = connect(&listener).await;
            let (served, followed) = join(
                serve_slave(&master, master_end, master_side),
                follow_master(&slave, slave_end, slave_side),
            )
            .await;
            assert!(
                matches!(served, Err(HaError::Refused { reason, .. }) if reason == expected),
                "{served:?}"
            );
            assert!(
                matches!(followed, Err(HaError::Refused { reason, .. }) if reason == expected),
                "{followed:?}"
            );
        }
        assert_eq!(slave.commitlog().appended_offset(), 0, "nothing shipped");
        master.close().await.expect("close");
        slave.close().await.expect("close");
    });
}

#[test]
fn a_peer_that_is_not_a_slave_or_stays_silent_is_dropped() {
    let dirs = Dirs::new("ha-foreign");
    run(async {
        let master = open(&dirs.master).await;
        append(&master, "first", 10).await;
        let listener = listener().await;
        let progress = Rc::new(SlaveProgress::new());
        // A remoting client: its first word is a frame length, not the HA magic.
        let (master_end, mut client) = connect(&listener).await;
        let mut remoting = 42_u32.to_be_bytes().to_vec();
        remoting.extend_from_slice(&[0; 42]);
        let (served, written) = join(
            serve_slave(&master, master_end, master_params(&progress)),
            client.write_all(remoting),
        )
        .await;
        written.0.expect("write");
        assert!(
            matches!(served, Err(HaError::Codec(HaCodecError::Magic { .. }))),
            "{served:?}"
        );
        // A peer that connects and says nothing.
        let (master_end, _silent) = connect(&listener).await;
        let params = MasterParams {
            heartbeat_interval: Duration::from_millis(10),
            silence_timeout: Duration::from_millis(100),
            ..master_params(&progress)
        };
        let served = serve_slave(&master, master_end, params).await;
        assert!(matches!(served, Err(HaError::Silent(_))), "{served:?}");
        assert_eq!(progress.acks(), 0);
        master.close().await.expect("close");
    });
}

/// The slave follows `shared` records, then the logs diverge: `slave_only` records of the
/// slave's own, `master_only` different ones on the master at the same offsets. The next
/// handshake must tell the slave to truncate to exactly the shared end (the fast path fails,
/// the probe search finds it), with its queues cut back; after reconnecting it equals the
/// master. `shared_segments` is how many segments the shared part spans at least.
async fn diverge_then_reconcile(
    name: &str,
    shared: u64,
    slave_only: u64,
    master_only: u64,
    shared_segments: usize,
) {
    let dirs = Dirs::new(name);
    let (master, slave) = (open(&dirs.master).await, open(&dirs.slave).await);
    append(&master, "shared", shared).await;
    let listener = listener().await;
    let progress = Rc::new(SlaveProgress::new());
    while_following(
        &master,
        &slave,
        &listener,
        &progress,
        caught_up(&master, &progress, AckLevel::Appended),
    )
    .await;
    let common = master.commitlog().appended_offset();
    let segments = master.commitlog().segment_starts();
    let spanned = segments.iter().filter(|start| **start < common).count();
    assert!(spanned >= shared_segments, "{spanned} segments");
    let queue_maxes: Vec<u64> = TOPICS
        .iter()
        .flat_map(|topic| (0..QUEUES).map(|queue_id| master.max_offset(topic, queue_id)))
        .collect();
    append(&slave, "slave-only", slave_only).await;
    append(&master, "master-only", master_only).await;
    assert!(slave.commitlog().appended_offset() > common);

    let (master_end, slave_end) = connect(&listener).await;
    let (served, followed) = join(
        serve_slave(&master, master_end, master_params(&progress)),
        follow_master(&slave, slave_end, slave_params()),
    )
    .await;
    assert!(served.is_ok(), "{served:?}");
    assert!(followed.is_ok(), "{followed:?}");
    assert_eq!(
        slave.commitlog().appended_offset(),
        common,
        "cut to the common prefix"
    );
    let slave_maxes: Vec<u64> = TOPICS
        .iter()
        .flat_map(|topic| (0..QUEUES).map(|queue_id| slave.max_offset(topic, queue_id)))
        .collect();
    assert_eq!(slave_maxes, queue_maxes, "queues cut with the log");

    while_following(&master, &slave, &listener, &progress, async {
        caught_up(&master, &progress, AckLevel::Appended).await;
        assert_same(&master, &slave).await;
    })
    .await;
    master.close().await.expect("close");
    slave.close().await.expect("close");
}

#[test]
fn a_diverged_slave_truncates_to_the_common_prefix_then_catches_up() {
    // Divergence in the first segment.
    run(diverge_then_reconcile("ha-diverged", 1_200, 300, 500, 1));
}

#[test]
fn a_divergence_in_a_later_segment_is_found_by_bisection() {
    // 2,500 shared records span two segments and more: the probe search bisects over the
    // segment starts before the entries of one segment.
    run(diverge_then_reconcile(
        "ha-diverged-late",
        2_500,
        400,
        900,
        2,
    ));
}

#[test]
fn a_slave_ahead_of_its_master_truncates_to_the_masters_end() {
    // The slave holds entries past the master's end (a former master's unreplicated tail).
    run(diverge_then_reconcile("ha-ahead", 600, 200, 0, 1));
}

/// A hand-written master: reads the Hello, then writes `frames` and keeps the connection open
/// (returned) so the slave's session ends on what it was sent.
async fn fake_master(mut stream: TcpStream, frames: Vec<Frame>) -> TcpStream {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(frame) = rmq_net::ha::decode(&mut buf).expect("a valid Hello") {
            assert!(matches!(frame.body, Body::Hello(_)), "{frame:?}");
            break;
        }
        buf.reserve(4096);
        let compio::buf::BufResult(read, returned) = stream.append(buf).await;
        buf = returned;
        assert!(read.expect("read") > 0, "the slave sends a Hello");
    }
    let mut out = BytesMut::new();
    for frame in &frames {
        rmq_net::ha::encode(frame, &mut out).expect("encode");
    }
    stream.write_all(out).await.0.expect("write");
    stream
}

#[test]
fn a_slave_refuses_data_that_is_not_whole_entries_at_its_end() {
    let dirs = Dirs::new("ha-bad-data");
    run(async {
        let (master, slave) = (open(&dirs.master).await, open(&dirs.slave).await);
        append(&master, "first", 50).await;
        let end = master.commitlog().appended_offset();
        let chunk = master
            .read_log(0, 64 * 1024, ShipLimit::Appended)
            .await
            .expect("read");
        assert!(chunk.entries > 1);
        let accept = Frame {
            shard_id: 0,
            body: Body::Welcome(Welcome::Accept {
                start_offset: 0,
                master_appended_end: end,
            }),
        };
        let data = |start_offset: u64, bytes: bytes::Bytes| Frame {
            shard_id: 0,
            body: Body::Data(Data {
                start_offset,
                master_appended_end: end,
                bytes,
            }),
        };
        let listener = listener().await;
        // Half an entry at the end: the storage refuses the chunk whole.
        let torn = chunk.bytes.slice(..chunk.bytes.len() - 7);
        // Whole entries, but not at the slave's end.
        let elsewhere = chunk.bytes.slice(..chunk.bytes.len() - 64);
        let cases = [
            vec![accept.clone(), data(0, torn)],
            vec![accept, data(1, elsewhere)],
        ];
        let mut outcomes = Vec::new();
        for frames in cases {
            let (master_end, slave_end) = connect(&listener).await;
            let (_kept_open, followed) = join(
                fake_master(master_end, frames),
                follow_master(&slave, slave_end, slave_params()),
            )
            .await;
            assert_eq!(slave.commitlog().appended_offset(), 0, "nothing placed");
            outcomes.push(followed);
        }
        assert!(
            matches!(outcomes[0], Err(HaError::Storage(_))),
            "{:?}",
            outcomes[0]
        );
        assert!(
            matches!(outcomes[1], Err(HaError::Protocol(_))),
            "{:?}",
            outcomes[1]
        );
        master.close().await.expect("close");
        slave.close().await.expect("close");
    });
}
