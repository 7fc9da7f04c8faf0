//! Black-box test of timer rolls against real CommitLog retention (docs/timer.md, "Roll" and
//! "Retention"), with 1 and 2 shards: 1 MiB segments, `fileReservedTime=0` (the plain age rule
//! would delete every closed segment at once), `deleteWhen` every hour, a two-slot roll window.
//! A 40 s timer's original copy sits in a segment closed by filler messages:
//!
//! - safety: while the timer is pending, retention passes run and keep that segment, which the
//!   plain rule alone would delete (the hold: one roll window plus `TIMER_RETENTION_MARGIN`);
//! - deletion: once the timer rolled, the old segments' modification times are set two hours
//!   back (as if written then; the hold sees store times, so this only ages the files) and
//!   retention really deletes them (files gone, the queue's min offset moved);
//! - after a SIGKILL and restart the timer is delivered exactly once, not early, from its rolled
//!   copy, with its original body, user properties, keys, tags and `UNIQ_KEY` (the client
//!   msgId, kept across rolls as Java keeps it; the offset msgId is new, as in Java).
//!
//! What the black box cannot show honestly: a pending copy in a file older than the hold (a
//! copy is never older than its roll window) — the hold's floor for that is covered by
//! `roll::tests::the_hold_covers_the_floor_and_the_margin` and the model test.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::{
    block_on, call, create_and_wait, offset_of, props, pull, queue_request, send_v2, sent,
    timer_status, Broker, PullSpec,
};
use rmq::broker::timer::roll::ROLL_FROM;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::message::{keys, msg_id, MessageRecord, Properties};
use rmq_net::conn::RemotingClient;

/// CommitLog segment size (the smallest accepted, `SEGMENT_SIZE_MIN`).
const SEGMENT_BYTES: u64 = 1 << 20;
/// Small segments (with records small enough to fit one), no age-based reserve, a retention pass at every hour of the day, a roll
/// every two 1 s slots, durable sends.
const RETENTION_CONF: &str =
    "mappedFileSizeCommitLog=1048576\nmaxMessageSize=262144\nfileReservedTime=0\n\
deleteWhen=0;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23\n\
timerRollWindowSlot=2\nflushDiskType=SYNC_FLUSH";
/// The timer's delay: the scenario (fill, safety passes, deletion, restart) fits before it.
const DELAY_MS: i64 = 40_000;
/// Filler: 80 x 16 KiB, more than one segment after the timer's copy.
const FILLER_COUNT: usize = 80;
const FILLER_BYTES: usize = 16 * 1024;
/// A retention pass runs every `RETENTION_INTERVAL` (10 s) from a 2 s maintenance tick, and a
/// segment is deletable once checkpointed (2 s): a pass certainly ran on it within this.
const SAFETY_WAIT: Duration = Duration::from_secs(15);
/// How far back the old segments' modification times are set: far beyond the hold.
const BACKDATE: Duration = Duration::from_secs(2 * 3600);
/// Longest wait for the retention pass that deletes the aged segments.
const DELETION_WAIT_MAX: Duration = Duration::from_secs(40);
/// Longest wait for the due timer.
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(60);
/// The shard bits of a physical offset (docs/architecture.md).
const SHARD_SHIFT: u32 = 56;
const UNIQ: &str = "7F00000100002A9F0000000000000042";

async fn rolled(client: &RemotingClient) -> u64 {
    let status = timer_status(client).await;
    status.shards.iter().map(|s| s.rolled_since_start).sum()
}

async fn queue_offset(client: &RemotingClient, code: RequestCode, topic: &str) -> i64 {
    offset_of(&call(client, queue_request(code, topic, 0)).await)
}

/// Every record of `topic`/0 from its min offset (retention moved it) to its end.
async fn records(client: &RemotingClient, topic: &str) -> Vec<MessageRecord> {
    let mut out = Vec::new();
    let mut offset = queue_offset(client, RequestCode::GetMinOffset, topic).await;
    loop {
        let mut spec = PullSpec::new(topic, 0, offset);
        spec.max = 32;
        let reply = pull(client, &spec).await;
        match reply.code {
            ResponseCode::Success => {
                offset = reply.header.next_begin_offset;
                out.extend(reply.records);
            }
            ResponseCode::PullNotFound => return out,
            // Right after a restart the queue's min offset still points into the deleted
            // segments until the first retention pass raises it; the reply names where to go
            // on (as a client follows it), and OFFSET_MOVED once the pass raised it.
            ResponseCode::PullRetryImmediately | ResponseCode::PullOffsetMoved
                if reply.header.next_begin_offset > offset =>
            {
                offset = reply.header.next_begin_offset;
            }
            other => panic!(
                "pull {topic}/0@{offset}: {other:?} next {}",
                reply.header.next_begin_offset
            ),
        }
    }
}

fn timer_copies(records: &[MessageRecord]) -> Vec<&MessageRecord> {
    records
        .iter()
        .filter(|r| r.properties.get(keys::UNIQ_KEY) == Some(UNIQ))
        .collect()
}

/// The segment files (start offset, path) of a shard's CommitLog, oldest first.
fn segments(store: &Path, shard: u64) -> Vec<(u64, PathBuf)> {
    let dir = store.join(format!("shard-{shard}")).join("commitlog");
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter_map(|path| {
            let start = path.file_name()?.to_str()?.parse().ok()?;
            Some((start, path))
        })
        .collect();
    out.sort();
    out
}

/// The start of the segment holding local offset `local`.
fn segment_of(store: &Path, shard: u64, local: u64) -> u64 {
    let found = segments(store, shard)
        .into_iter()
        .map(|(start, _)| start)
        .filter(|start| *start <= local)
        .max()
        .expect("a segment at or below the offset");
    assert!(local < found + SEGMENT_BYTES, "{local} in segment {found}");
    found
}

fn set_mtime(path: &Path, when: SystemTime) {
    let file = std::fs::File::open(path).expect("open segment");
    file.set_modified(when).expect("set mtime");
}

fn timer_copy_outlives_its_deleted_segment(shards: usize) {
    let mut broker = Broker::start(shards, RETENTION_CONF);
    let store = broker.store_dir();
    let topic = "TimerRetention";
    let due = common::now_ms() + DELAY_MS;
    let (shard, original_segment) = block_on(async {
        let client = broker.client();
        create_and_wait(&client, topic, 1).await;
        let properties = props(&[
            (keys::TIMER_DELIVER_MS, &due.to_string()),
            (keys::UNIQ_KEY, UNIQ),
            (keys::KEYS, "k1"),
            (keys::TAGS, "TT"),
            ("user", "u"),
        ]);
        let reply = send_v2(&client, topic, 0, b"retained body", &properties).await;
        let header = sent(&reply, b"retained body").header;
        let (_, physical) = msg_id::decode(&header.msg_id).expect("an offset msgId");
        let physical = u64::try_from(physical).expect("non-negative");
        let shard = physical >> SHARD_SHIFT;
        let local = physical & ((1 << SHARD_SHIFT) - 1);
        assert!(shard < shards as u64, "shard {shard}");
        let original_segment = segment_of(&store, shard, local);
        let filler = vec![b'f'; FILLER_BYTES];
        for _ in 0..FILLER_COUNT {
            sent(
                &send_v2(&client, topic, 0, &filler, &Properties::new()).await,
                &filler,
            );
        }
        let newest = segments(&store, shard).last().expect("a segment").0;
        assert!(newest > original_segment, "the original segment is closed");
        (shard, original_segment)
    });
    // Safety: retention passes run (fileReservedTime=0 would delete every closed segment);
    // the hold keeps them all, the one holding the original copy included.
    std::thread::sleep(SAFETY_WAIT);
    let kept = segments(&store, shard);
    assert_eq!(
        kept.first().map(|(start, _)| *start),
        Some(0),
        "no segment deleted while held: {kept:?}"
    );
    let min_before = block_on(async {
        let client = broker.client();
        let rolls = rolled(&client).await;
        assert!(
            rolls >= 2,
            "the timer rolled ({rolls}) before its file is aged"
        );
        assert!(timer_copies(&records(&client, topic).await).is_empty());
        queue_offset(&client, RequestCode::GetMinOffset, topic).await
    });
    assert_eq!(min_before, 0);
    // Age the segments up to the original copy's (the current copy, rolled within the last
    // window, is in the newest one): the next pass deletes them.
    let aged: Vec<PathBuf> = kept
        .iter()
        .filter(|(start, _)| *start <= original_segment)
        .map(|(_, path)| path.clone())
        .collect();
    let backdated = SystemTime::now() - BACKDATE;
    for path in &aged {
        set_mtime(path, backdated);
    }
    let deadline = Instant::now() + DELETION_WAIT_MAX;
    while aged.iter().any(|path| path.exists()) {
        assert!(
            Instant::now() < deadline,
            "aged segments not deleted: {:?}",
            segments(&store, shard)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let min_after = block_on(async {
        let client = broker.client();
        queue_offset(&client, RequestCode::GetMinOffset, topic).await
    });
    assert!(min_after > 0, "the queue's min offset moved: {min_after}");
    eprintln!(
        "shards={shards} deleted segments {:?} of shard {shard}; min offset {min_after}",
        aged.iter().map(|p| p.file_name()).collect::<Vec<_>>()
    );
    // A restart after the deletion still finds the rolled copy (and not the deleted one).
    broker.kill_and_restart();
    block_on(async {
        let client = broker.client();
        let deadline = Instant::now() + DELIVERY_WAIT_MAX;
        let record = loop {
            let all = records(&client, topic).await;
            if let Some(record) = timer_copies(&all).first() {
                break (*record).clone();
            }
            assert!(
                Instant::now() < deadline,
                "the timer was not delivered: {:?}",
                timer_status(&client).await
            );
            compio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(record.body.as_ref(), b"retained body");
        assert!(
            record.store_timestamp >= due,
            "delivered at {} before its time {due}",
            record.store_timestamp
        );
        assert_eq!(record.properties.get("user"), Some("u"));
        assert_eq!(record.properties.get(keys::KEYS), Some("k1"));
        assert_eq!(record.properties.get(keys::TAGS), Some("TT"));
        assert_eq!(record.properties.get(keys::REAL_TOPIC), None);
        assert_eq!(record.properties.get(keys::REAL_QID), None);
        assert_eq!(record.properties.get(ROLL_FROM), None);
        let rolls: u32 = record
            .properties
            .get(keys::TIMER_ROLL_TIMES)
            .expect("a rolled timer counts its rolls")
            .parse()
            .expect("a number");
        assert!(rolls >= 2, "rolled {rolls} times");
        // Two more roll windows: a second copy would have been delivered by now.
        compio::time::sleep(Duration::from_secs(4)).await;
        let all = records(&client, topic).await;
        assert_eq!(timer_copies(&all).len(), 1, "delivered exactly once");
        let status = timer_status(&client).await;
        assert_eq!(status.pending, 0, "{status:?}");
        let dropped: u64 = status.shards.iter().map(|s| s.dropped_since_start).sum();
        assert_eq!(dropped, 0, "{status:?}");
    });
}

#[test]
fn timer_copy_outlives_its_deleted_segment_with_one_shard() {
    timer_copy_outlives_its_deleted_segment(1);
}

#[test]
fn timer_copy_outlives_its_deleted_segment_with_two_shards() {
    timer_copy_outlives_its_deleted_segment(2);
}
