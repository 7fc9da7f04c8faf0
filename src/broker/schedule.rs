//! Delayed delivery by level (PROTOCOL.md §7.4, Java `ScheduleMessageService`): a message with
//! `DELAY=n` is parked in `SCHEDULE_TOPIC_XXXX` queue `n-1` with `REAL_TOPIC`/`REAL_QID`, its
//! consume-queue tag code set to its delivery timestamp; one task per level, on the shard that
//! owns the level's queue, walks that queue in order and re-stores each due message into its
//! real topic and queue (crossing the mesh when another shard owns it) with `DELAY` removed.
//!
//! Progress is one persisted offset per level (`config/delayOffset-<shard>.json`, Java layout
//! `{"offsetTable":{"1":12}}`), written only after the CommitLogs that received the delivered
//! messages are durable. Delivery is at-least-once: a crash re-delivers what was delivered
//! since the last persist (at most [`DELAY_OFFSET_PERSIST_INTERVAL`] worth).
//! Must never: keep per-message memory (the consume queue is the schedule), deliver a message
//! before its delivery time, or advance a level's offset past a message that was neither
//! stored in its real queue nor found undeliverable.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::{keys, sysflag, tags_code_of, CrcCheck, MessageRecord, Properties};
use rmq_storage::commitlog::StoredRecord;
use rmq_storage::store::{AppendMessage, GetRequest, GetStatus, TagFilter, WaitOutcome};
use serde::{Deserialize, Serialize};

use crate::runtime::clock::now_ms;
use crate::runtime::mesh::submit_to;
use crate::runtime::placement::shard_for;
use crate::runtime::ShardId;
use crate::tables::persist::{self, PersistError};
use crate::tables::topics::{SCHEDULE_TOPIC, TRANS_HALF_TOPIC};

use super::message::{encode_payload, index_keys, Inbound};
use super::shard::Shard;
use super::{storage_failure, Failure};

/// How often each shard persists its delivery offsets when they moved: as often as consumer
/// offsets (Java `flushDelayOffsetInterval` is 10 s). Bounds re-delivery after a crash; the
/// write is a small blocking fsynced file on the shard thread, so not every delivery.
pub const DELAY_OFFSET_PERSIST_INTERVAL: Duration = Duration::from_secs(5);
/// Wait after a delivery failed (store or mesh error) before the level retries the same
/// message (Java `DELAY_FOR_A_PERIOD`).
pub const DELIVER_RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// Wait before re-arming a level's new-message wait the store refused (too many waiters).
pub const IDLE_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Most schedule records one read brings in; the batch starts at one record and doubles while
/// every record of a batch is due, so a level with one pending message reads one record.
pub const DELIVER_BATCH_MAX: u32 = 32;
/// Most record bytes one read brings in (the first record is returned even if larger).
pub const DELIVER_BATCH_BYTES_MAX: u64 = 1024 * 1024;

/// A send's schedule placement, decided by [`park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    /// The level after capping (the `DELAY` property now holds it).
    pub level: i32,
    /// `SCHEDULE_TOPIC_XXXX` queue: level - 1.
    pub queue_id: i32,
    /// When the message is due, ms since the epoch: its consume-queue tag code.
    pub deliver_timestamp_ms: i64,
}

/// The level a `DELAY` property asks for (0 when absent).
///
/// # Errors
/// MESSAGE_ILLEGAL when the value is not an integer.
pub fn requested_level(properties: &Properties) -> Result<i32, Failure> {
    properties.get(keys::DELAY).map_or(Ok(0), |value| {
        value.parse().map_err(|_| {
            Failure::Code(
                ResponseCode::MessageIllegal,
                format!("the message property DELAY `{value}` is not an integer"),
            )
        })
    })
}

/// `requested` capped at the highest configured level (Java caps at `maxDelayLevel`).
///
/// # Panics
/// If `requested` is not positive or there is no level (callers check; config refuses it).
#[must_use]
pub fn cap_level(requested: i32, level_count: usize) -> i32 {
    assert!(requested > 0, "only positive levels are delayed");
    assert!(level_count > 0, "at least one delay level");
    requested.min(i32::try_from(level_count).unwrap_or(i32::MAX))
}

/// The delay of `level` in ms.
///
/// # Panics
/// If `level` is outside `1..=levels.len()` (callers cap first).
#[must_use]
pub fn level_delay_ms(levels: &[Duration], level: i32) -> i64 {
    let index = usize::try_from(level - 1).expect("levels start at 1");
    let delay = levels
        .get(index)
        .expect("level within the configured table");
    i64::try_from(delay.as_millis()).expect("delays are bounded by MESSAGE_DELAY_MAX")
}

/// When a message stored at `store_timestamp_ms` with `level` is due (Java
/// `computeDeliverTimestamp`).
#[must_use]
pub fn deliver_timestamp(levels: &[Duration], level: i32, store_timestamp_ms: i64) -> i64 {
    store_timestamp_ms.saturating_add(level_delay_ms(levels, level))
}

/// The effective due time of a parked message whose tag code says `deliver_timestamp_ms`: a
/// time further ahead than the level's whole delay (clock moved back, levels reconfigured)
/// means "now", as Java's `correctDeliverTimestamp` does.
#[must_use]
pub fn due_at(now_ms: i64, deliver_timestamp_ms: i64, delay_ms: i64) -> i64 {
    if deliver_timestamp_ms > now_ms.saturating_add(delay_ms) {
        now_ms
    } else {
        deliver_timestamp_ms
    }
}

/// Parks a send in the schedule topic if its `DELAY` asks for it (PROTOCOL.md §4.1 step 8):
/// only non-transactional and commit records are delayed; the level is capped (and `DELAY`
/// rewritten to the capped level), and `REAL_TOPIC`/`REAL_QID` record where it goes when due.
///
/// # Errors
/// MESSAGE_ILLEGAL for a non-integer `DELAY` or a property that cannot be encoded.
pub fn park(
    levels: &[Duration],
    sys_flag: i32,
    target: (&str, i32),
    properties: &mut Properties,
    now_ms: i64,
) -> Result<Option<Parked>, Failure> {
    let requested = requested_level(properties)?;
    let transaction = sysflag::transaction_value(sys_flag);
    let delayable = transaction == sysflag::TRANSACTION_NOT_TYPE
        || transaction == sysflag::TRANSACTION_COMMIT_TYPE;
    if requested <= 0 || !delayable {
        return Ok(None);
    }
    let level = cap_level(requested, levels.len());
    let illegal =
        |e: rmq_net::CodecError| Failure::Code(ResponseCode::MessageIllegal, e.to_string());
    if level != requested {
        properties
            .insert(keys::DELAY, level.to_string())
            .map_err(illegal)?;
    }
    properties
        .insert(keys::REAL_TOPIC, target.0)
        .map_err(illegal)?;
    properties
        .insert(keys::REAL_QID, target.1.to_string())
        .map_err(illegal)?;
    Ok(Some(Parked {
        level,
        queue_id: level - 1,
        deliver_timestamp_ms: deliver_timestamp(levels, level, now_ms),
    }))
}

/// Java refuses a batch whose (batch-level) `DELAY` is positive.
///
/// # Errors
/// MESSAGE_ILLEGAL.
pub fn reject_batch_delay(properties: &Properties) -> Result<(), Failure> {
    if requested_level(properties)? > 0 {
        return Err(Failure::Code(
            ResponseCode::MessageIllegal,
            "batch messages do not support DELAY".into(),
        ));
    }
    Ok(())
}

/// The `delayOffset` file (Java `DelayOffsetSerializeWrapper`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DelayOffsetFile {
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
}

/// One shard's delivery progress: per level it owns, the next schedule-queue offset to
/// deliver. Bounded by the level count.
#[derive(Debug)]
pub struct DelayOffsets {
    path: PathBuf,
    table: RefCell<BTreeMap<i32, u64>>,
    dirty: Cell<bool>,
    /// Shards whose CommitLog received deliveries since the last persist (at most the shard
    /// count): they are flushed before the offsets that cover those deliveries are written.
    delivered_to: RefCell<BTreeSet<usize>>,
    /// One write of the file at a time (the periodic task and shutdown may both persist).
    persisting: rmq_storage::fifo_lock::FifoLock,
}

impl DelayOffsets {
    /// Loads `path` (or its `.bak`); a missing file is an empty table.
    ///
    /// # Errors
    /// [`PersistError`] for an unreadable or corrupt file, or a negative offset in it.
    pub fn load(path: PathBuf) -> Result<Self, PersistError> {
        let file = persist::read_json::<DelayOffsetFile>(&path)?.unwrap_or_default();
        let mut table = BTreeMap::new();
        for (level, offset) in file.offset_table {
            let offset = u64::try_from(offset).map_err(|_| PersistError::Corrupt {
                path: path.clone(),
                detail: format!("level {level} has a negative offset {offset}"),
            })?;
            table.insert(level, offset);
        }
        Ok(Self {
            path,
            table: RefCell::new(table),
            dirty: Cell::new(false),
            delivered_to: RefCell::new(BTreeSet::new()),
            persisting: rmq_storage::fifo_lock::FifoLock::default(),
        })
    }

    /// Where the table is persisted.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next schedule-queue offset of `level` to deliver (0 when never delivered).
    #[must_use]
    pub fn next_offset(&self, level: i32) -> u64 {
        self.table.borrow().get(&level).copied().unwrap_or(0)
    }

    /// Every level's offset (GET_ALL_DELAY_OFFSET gathers them from every shard).
    #[must_use]
    pub fn levels(&self) -> BTreeMap<i32, u64> {
        self.table.borrow().clone()
    }

    /// Sets `level`'s offset to `offset` (a slave applying its master's table); returns
    /// whether it changed (the table then needs persisting).
    pub fn assign(&self, level: i32, offset: u64) -> bool {
        if self.table.borrow().get(&level) == Some(&offset) {
            return false;
        }
        self.set(level, offset);
        true
    }

    fn to_file(&self) -> DelayOffsetFile {
        DelayOffsetFile {
            offset_table: self
                .table
                .borrow()
                .iter()
                .map(|(level, offset)| (*level, i64::try_from(*offset).unwrap_or(i64::MAX)))
                .collect(),
        }
    }

    fn set(&self, level: i32, offset: u64) {
        self.table.borrow_mut().insert(level, offset);
        self.dirty.set(true);
    }

    fn delivered(&self, level: i32, next_offset: u64, owner: Option<ShardId>) {
        assert!(
            next_offset > self.next_offset(level),
            "a level's offset only moves forward"
        );
        if let Some(owner) = owner {
            self.delivered_to.borrow_mut().insert(owner.0);
        }
        self.set(level, next_offset);
    }
}

/// Starts this shard's delivery tasks (one per level whose schedule queue it owns) and the
/// persister of its delivery offsets.
pub fn start(shard: &Rc<Shard>) {
    let levels = shard.config.message_delay_level.len();
    assert!(levels > 0, "the config holds at least one delay level");
    for level in 1..=i32::try_from(levels).expect("delay levels are bounded") {
        if shard_for(SCHEDULE_TOPIC, level - 1, shard.shard_count()) == shard.id {
            compio::runtime::spawn(deliver_level(Rc::clone(shard), level)).detach();
        }
    }
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        loop {
            compio::time::sleep(DELAY_OFFSET_PERSIST_INTERVAL).await;
            persist(&shard).await;
        }
    })
    .detach();
}

/// Writes the delivery offsets if they moved, after making every CommitLog that received the
/// deliveries they cover durable (so a crash never loses a delivered message whose schedule
/// entry is already behind the persisted offset). Failures are logged; the next call retries.
pub async fn persist(shard: &Rc<Shard>) {
    let offsets = &shard.delay_offsets;
    let _one_at_a_time = offsets.persisting.lock().await;
    if !offsets.dirty.replace(false) {
        return;
    }
    let file = offsets.to_file();
    let targets = std::mem::take(&mut *offsets.delivered_to.borrow_mut());
    for target in &targets {
        if let Err(reason) = flush_commitlog(shard, ShardId(*target)).await {
            tracing::warn!(shard = shard.id.0, target, %reason, "delay offsets not persisted");
            offsets
                .delivered_to
                .borrow_mut()
                .extend(targets.iter().copied());
            offsets.dirty.set(true);
            return;
        }
    }
    // Encoded here, written and fsynced in the blocking pool (off the event loop).
    let written = match persist::encode_json(&offsets.path, &file) {
        Ok(bytes) => persist::write_bytes_off_loop(offsets.path.clone(), bytes).await,
        Err(err) => Err(err),
    };
    if let Err(err) = written {
        tracing::warn!(shard = shard.id.0, %err, "persisting delay offsets failed");
        offsets.dirty.set(true);
    }
}

async fn flush_commitlog(shard: &Rc<Shard>, target: ShardId) -> Result<(), String> {
    submit_to(shard, target, |owner: Rc<Shard>| async move {
        let flushed = owner.store.commitlog().flush().await;
        flushed.map(drop).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// What a level does after a delivery pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Everything stored was delivered; wait for the queue to grow past `offset`.
    Idle { offset: u64 },
    /// The next message is due at this time (ms since the epoch).
    At { due_ms: i64 },
}

/// One level's delivery loop, forever (until the store closes).
async fn deliver_level(shard: Rc<Shard>, level: i32) {
    assert_eq!(
        shard_for(SCHEDULE_TOPIC, level - 1, shard.shard_count()),
        shard.id,
        "a level is delivered by the shard owning its schedule queue"
    );
    loop {
        match deliver_due(&shard, level).await {
            Ok(Next::Idle { offset }) => {
                match shard
                    .store
                    .wait_for_message(SCHEDULE_TOPIC, level - 1, offset)
                    .await
                {
                    WaitOutcome::Arrived => {}
                    WaitOutcome::Overloaded => compio::time::sleep(IDLE_RETRY_INTERVAL).await,
                    WaitOutcome::Closed => return,
                }
            }
            Ok(Next::At { due_ms }) => {
                let wait_ms = due_ms.saturating_sub(now_ms()).max(0);
                compio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())).await;
            }
            Err(Failure::Code(code, remark)) => {
                tracing::warn!(shard = shard.id.0, level, ?code, %remark, "delayed delivery failed; retrying later");
                compio::time::sleep(DELIVER_RETRY_INTERVAL).await;
            }
        }
    }
}

/// Delivers every due message of `level`, in queue order, stopping at the first one not due.
async fn deliver_due(shard: &Rc<Shard>, level: i32) -> Result<Next, Failure> {
    let queue_id = level - 1;
    let delay_ms = level_delay_ms(&shard.config.message_delay_level, level);
    let offsets = &shard.delay_offsets;
    let Some((min, max)) = shard.store.offsets(SCHEDULE_TOPIC, queue_id) else {
        return Ok(Next::Idle { offset: 0 });
    };
    let mut offset = offsets.next_offset(level);
    // Java resets an offset outside the queue (retention, or a store older than the file).
    if !(min..=max).contains(&offset) {
        offset = offset.clamp(min, max);
        offsets.set(level, offset);
    }
    let mut batch = 1;
    loop {
        let get = GetRequest {
            topic: SCHEDULE_TOPIC,
            queue_id,
            queue_offset: offset,
            max_count: batch,
            max_bytes: DELIVER_BATCH_BYTES_MAX,
            filter: TagFilter::All,
        };
        let result = shard
            .store
            .get_messages(&get)
            .await
            .map_err(|e| storage_failure(&e))?;
        if result.status != GetStatus::Found {
            if result.next_begin_offset > offset {
                // Entries whose records retention removed: nothing to deliver there.
                offset = result.next_begin_offset;
                offsets.set(level, offset);
                continue;
            }
            return Ok(Next::Idle { offset });
        }
        for record in &result.records {
            let now = now_ms();
            let due_ms = due_at(now, record.tags_code, delay_ms);
            if due_ms > now {
                return Ok(Next::At { due_ms });
            }
            let owner = deliver_one(shard, level, record).await?;
            offset = u64::try_from(record.queue_offset).expect("stored queue offsets are >= 0") + 1;
            offsets.delivered(level, offset, owner);
        }
        if result.next_begin_offset > offset {
            offset = result.next_begin_offset;
            offsets.set(level, offset);
        }
        batch = (batch * 2).min(DELIVER_BATCH_MAX);
        crate::runtime::cooperate::yield_now().await;
    }
}

/// Re-stores one due schedule record in its real topic and queue. `Ok(None)`: the record can
/// never be delivered (not a message, no real topic, refused as illegal) and is skipped with an
/// error log, as Java drops it.
async fn deliver_one(
    shard: &Rc<Shard>,
    level: i32,
    stored: &StoredRecord,
) -> Result<Option<ShardId>, Failure> {
    match restore_in_real_queue(shard, stored, &[keys::DELAY], true).await? {
        Restored::Stored(owner) => Ok(Some(owner)),
        Restored::Undeliverable(reason) => {
            tracing::error!(
                shard = shard.id.0,
                level,
                phys = stored.phys_offset,
                reason,
                "undeliverable delayed message dropped"
            );
            Ok(None)
        }
    }
}

/// What became of a parked record (a delay level's or a timer's) that was due.
pub(super) enum Restored {
    /// Stored in its real queue, on this shard.
    Stored(ShardId),
    /// It can never be delivered, for this reason; the caller logs and drops it.
    Undeliverable(String),
}

/// Re-stores a parked record in the topic and queue named by its `REAL_TOPIC`/`REAL_QID`, with
/// the properties in `strip` removed (on the queue's owner, crossing the mesh if need be).
/// `refuse_half`: a record whose real topic is the half-message topic is undeliverable.
/// Errors: a store failure, to be retried.
pub(super) async fn restore_in_real_queue(
    shard: &Rc<Shard>,
    stored: &StoredRecord,
    strip: &[&str],
    refuse_half: bool,
) -> Result<Restored, Failure> {
    let skip = |reason: &str| Ok(Restored::Undeliverable(reason.to_owned()));
    let Ok((record, _)) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip) else {
        return skip("not a message record");
    };
    let mut properties = record.properties;
    let Some(topic) = properties.get(keys::REAL_TOPIC).map(str::to_owned) else {
        return skip("no REAL_TOPIC");
    };
    let Some(queue_id) = properties
        .get(keys::REAL_QID)
        .and_then(|q| q.parse::<i32>().ok())
        .filter(|q| *q >= 0)
    else {
        return skip("no valid REAL_QID");
    };
    if refuse_half && topic == TRANS_HALF_TOPIC {
        return skip("half messages are never delayed");
    }
    for name in strip {
        properties.remove(name);
    }
    let tags_code = tags_code_of(&properties);
    let index = index_keys(&properties);
    let now = now_ms();
    let inbound = Inbound {
        topic: &topic,
        queue_id,
        flag: record.flag,
        sys_flag: record.sys_flag,
        born_timestamp: record.born_timestamp,
        born_host: record.born_host,
        reconsume_times: record.reconsume_times,
        properties,
        body: record.body,
    };
    let Ok(payload) = encode_payload(inbound, shard.store_host, now) else {
        return skip("cannot re-encode for the real topic");
    };
    let message = AppendMessage {
        topic: &topic,
        queue_id,
        tags_code,
        keys: &index,
        store_timestamp_ms: Some(now),
        sys_flag: record.sys_flag,
        payload: &payload,
    };
    match super::append::append_routed(shard, &message).await {
        Ok((owner, _)) => Ok(Restored::Stored(owner)),
        Err(Failure::Code(ResponseCode::MessageIllegal, remark)) => skip(&remark),
        Err(failure) => Err(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<Duration> {
        crate::config::parse_delay_levels(crate::config::MESSAGE_DELAY_LEVEL_DEFAULT)
            .expect("default levels")
    }

    #[test]
    fn levels_cap_and_deliver_at_store_time_plus_delay() {
        let levels = levels();
        assert_eq!(cap_level(1, levels.len()), 1);
        assert_eq!(cap_level(18, levels.len()), 18);
        assert_eq!(cap_level(19, levels.len()), 18);
        assert_eq!(cap_level(i32::MAX, 3), 3);
        assert_eq!(level_delay_ms(&levels, 1), 1_000);
        assert_eq!(level_delay_ms(&levels, 3), 10_000);
        assert_eq!(level_delay_ms(&levels, 18), 7_200_000);
        assert_eq!(deliver_timestamp(&levels, 3, 1_000_000), 1_010_000);
        assert_eq!(deliver_timestamp(&levels, 1, i64::MAX), i64::MAX);
    }

    #[test]
    fn due_time_is_the_tag_code_unless_it_is_beyond_the_level_delay() {
        let now = 1_700_000_000_000;
        assert_eq!(
            due_at(now, now - 5, 1_000),
            now - 5,
            "overdue stays overdue"
        );
        assert_eq!(
            due_at(now, now + 1_000, 1_000),
            now + 1_000,
            "exactly one delay ahead"
        );
        assert_eq!(
            due_at(now, now + 1_001, 1_000),
            now,
            "beyond the delay: due now"
        );
        assert_eq!(due_at(now, i64::MAX, 1_000), now);
    }

    #[test]
    fn park_moves_a_delayed_send_to_its_level_queue() {
        let levels = levels();
        let mut properties = Properties::new();
        properties.insert(keys::DELAY, "25").expect("insert");
        properties.insert("user", "v").expect("insert");
        let parked = park(&levels, 0, ("T", 3), &mut properties, 5_000)
            .expect("legal")
            .expect("parked");
        assert_eq!(
            parked,
            Parked {
                level: 18,
                queue_id: 17,
                deliver_timestamp_ms: 5_000 + 7_200_000,
            }
        );
        assert_eq!(properties.get(keys::DELAY), Some("18"));
        assert_eq!(properties.get(keys::REAL_TOPIC), Some("T"));
        assert_eq!(properties.get(keys::REAL_QID), Some("3"));
        assert_eq!(properties.get("user"), Some("v"));
    }

    #[test]
    fn park_leaves_undelayed_and_half_messages_alone() {
        let levels = levels();
        for delay in [None, Some("0"), Some("-1")] {
            let mut properties = Properties::new();
            if let Some(delay) = delay {
                properties.insert(keys::DELAY, delay).expect("insert");
            }
            let before = properties.clone();
            assert_eq!(
                park(&levels, 0, ("T", 0), &mut properties, 1).expect("legal"),
                None
            );
            assert_eq!(properties, before);
        }
        let mut properties = Properties::new();
        properties.insert(keys::DELAY, "2").expect("insert");
        let prepared = sysflag::TRANSACTION_PREPARED_TYPE;
        assert_eq!(
            park(&levels, prepared, ("T", 0), &mut properties, 1).expect("legal"),
            None
        );
        let commit = sysflag::TRANSACTION_COMMIT_TYPE;
        assert!(park(&levels, commit, ("T", 0), &mut properties, 1)
            .expect("legal")
            .is_some());
        let mut properties = Properties::new();
        properties.insert(keys::DELAY, "soon").expect("insert");
        assert!(park(&levels, 0, ("T", 0), &mut properties, 1).is_err());
        assert!(reject_batch_delay(&properties).is_err());
        let mut properties = Properties::new();
        properties.insert(keys::DELAY, "1").expect("insert");
        assert!(reject_batch_delay(&properties).is_err());
        properties.insert(keys::DELAY, "-1").expect("insert");
        assert!(reject_batch_delay(&properties).is_ok());
    }

    #[test]
    fn delay_offsets_round_trip_in_java_layout() {
        let dir = std::env::temp_dir().join(format!("rmq-delay-offsets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("delayOffset-0.json");
        let _ = std::fs::remove_file(&path);
        let offsets = DelayOffsets::load(path.clone()).expect("missing file is empty");
        assert_eq!(offsets.next_offset(3), 0);
        offsets.delivered(3, 12, Some(ShardId(1)));
        offsets.delivered(1, 2, None);
        assert!(offsets.dirty.get());
        assert_eq!(
            offsets
                .delivered_to
                .borrow()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![1]
        );
        persist::write_json_atomic(&path, &offsets.to_file()).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["offsetTable"]["3"], 12);
        assert_eq!(value["offsetTable"]["1"], 2);
        let reloaded = DelayOffsets::load(path.clone()).expect("reload");
        assert_eq!(reloaded.next_offset(3), 12);
        assert_eq!(reloaded.next_offset(1), 2);
        assert!(!reloaded.dirty.get());
        assert!(!reloaded.assign(3, 12), "same offset: nothing to persist");
        assert!(!reloaded.dirty.get());
        assert!(
            reloaded.assign(3, 4),
            "a slave may move a level back to its master's"
        );
        assert!(reloaded.assign(7, 1));
        assert!(reloaded.dirty.get());
        assert_eq!(reloaded.levels(), BTreeMap::from([(1, 2), (3, 4), (7, 1)]));
        std::fs::write(&path, r#"{"offsetTable":{"2":-4}}"#).expect("write");
        assert!(DelayOffsets::load(path.clone()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
