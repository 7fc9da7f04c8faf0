//! Timer messages at any delivery time (Java 5 `TimerMessageStore`; design in `docs/timer.md`).
//!
//! A send carrying `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS` or the ONS
//! `__STARTDELIVERTIME` is checked ([`park`]) and stored, like any message, in the system topic
//! [`TIMER_TOPIC`] on the accepting shard's own queue ([`timer_queue`]) with `REAL_TOPIC`/
//! `REAL_QID` and its due time as the consume-queue tag code: the CommitLog makes it durable
//! before the producer is answered. Per shard, an enqueue task moves each stored timer into the
//! shard's [`wheel::TimerWheel`] and a delivery loop, ticking at `timerPrecisionMs`, re-stores
//! each due message in its real topic and queue (crossing the mesh when another shard owns it)
//! with `TIMER_OUT_MS` added and `REAL_TOPIC`/`REAL_QID` removed, a window of
//! [`TIMER_DELIVER_WINDOW`] due timers at a time: their copies are read together (adjacent ones
//! in one ranged read) and their re-stores are in flight together.
//!
//! A timer due further than one roll window after its copy was stored rolls ([`roll`]): the
//! copy is re-stored in the timer queue at the roll time and scheduled again, so no copy
//! outlives the CommitLog retention; retention is held back ([`retention_hold`]) so it never
//! deletes a file a pending copy lives in.
//!
//! Crash safety: the wheel is checkpointed ([`persist`]) only after this shard's CommitLog (the
//! timer queue up to the checkpointed enqueue offset, rolled copies) and every CommitLog that
//! received deliveries are durable, and the checkpoint carries the enqueue offset; a restart
//! re-enqueues the timer queue past it and re-delivers the slots after the checkpointed cursor
//! (at-least-once, duplicates bounded by [`TIMER_CHECKPOINT_INTERVAL`] of deliveries). A roll
//! is not repeated: the re-enqueued rolled copies name their origins ([`roll::ROLL_FROM`]) and
//! deliveries start only once they are enqueued. The checkpoint's writes run on io_uring
//! ([`io`]); a cursor that only moved over empty slots is checkpointed at most every
//! [`TIMER_IDLE_CHECKPOINT_INTERVAL`] (recovery re-walks empty slots).
//!
//! Must never: keep memory per pending timer (the wheel's slots and a per-topic counter map
//! bounded by [`crate::limits::TIMER_TOPICS_COUNTED_MAX`] are all), deliver before the due
//! slot, checkpoint a cursor past a delivery that is not durable, or hold a `RefCell` borrow
//! across an `.await`.

pub mod io;
pub mod roll;
pub mod wheel;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;

use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::message::{keys, sysflag, CrcCheck, MessageRecord, Properties};
use rmq_storage::commitlog::StoredRecord;
use rmq_storage::store::{GetRequest, TagFilter, WaitOutcome};
use serde::{Deserialize, Serialize};

use crate::config::BrokerConfig;
use crate::limits::{
    TIMER_DELIVER_BATCH, TIMER_DELIVER_WINDOW, TIMER_ENQUEUE_BATCH, TIMER_ROLL_DEDUP_MAX,
    TIMER_ROUND_MS, TIMER_TOPICS_COUNTED_MAX,
};
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::submit_to;
use crate::runtime::placement::shard_for;
use crate::runtime::ShardId;

use self::wheel::{TimerEntry, TimerWheel, WheelError, WheelSettings};
use super::schedule::{restore_in_real_queue, Restored};
use super::shard::Shard;
use super::{storage_failure, Failure};

pub mod admin;

/// Java's timer system topic (`TimerMessageStore.TIMER_TOPIC`).
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// How often a shard checkpoints its wheel when it changed: bounds re-delivery after a crash
/// (the checkpoint flushes CommitLogs and writes the slot arrays, so not every tick).
pub const TIMER_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a shard checkpoints a wheel whose cursor only moved over empty slots: a restart
/// re-walks at most this much of empty slots (cheap), and an idle broker writes the slot
/// arrays (130 KiB at 1 s precision) this rarely instead of every second.
pub const TIMER_IDLE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
/// How often the delivery loop looks whether the restart's re-enqueue is done.
const TIMER_RECOVERY_POLL: Duration = Duration::from_millis(10);
/// Wait after a delivery or enqueue failed before retrying.
pub const TIMER_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// The counter name for topics beyond [`TIMER_TOPICS_COUNTED_MAX`].
pub const OTHER_TOPICS: &str = "<other>";

/// The timer properties a send may carry, in the order they are honoured (Java 5's
/// `transformTimerMessage` order, then the ONS property).
pub const TIMER_PROPERTIES: [&str; 4] = [
    keys::TIMER_DELAY_SEC,
    keys::TIMER_DELAY_MS,
    keys::TIMER_DELIVER_MS,
    keys::START_DELIVER_TIME,
];

/// The timer queue of `shard`: the lowest queue id of [`TIMER_TOPIC`] placed on it.
///
/// # Panics
/// If no queue below `shards` is placed on `shard` (placement spreads consecutive queues).
#[must_use]
pub fn timer_queue(shard: ShardId, shards: usize) -> i32 {
    (0..i32::try_from(shards).expect("bounded shard count"))
        .find(|queue| shard_for(TIMER_TOPIC, *queue, shards) == shard)
        .expect("consecutive queues cover every shard")
}

/// The wheel's shape from the configuration.
#[must_use]
pub fn settings(config: &BrokerConfig) -> WheelSettings {
    WheelSettings {
        precision_ms: config.timer_precision_ms,
        round_ms: TIMER_ROUND_MS,
        max_delay_ms: config.timer_max_delay_sec * 1_000,
    }
}

fn illegal(remark: String) -> Failure {
    Failure::Code(ResponseCode::MessageIllegal, remark)
}

/// The due time (ms since the epoch) a send's timer properties ask for, `None` without any.
///
/// # Errors
/// MESSAGE_ILLEGAL naming the property when its value is not an integer or overflows.
pub fn requested_deliver_ms(properties: &Properties, now_ms: i64) -> Result<Option<i64>, Failure> {
    for name in TIMER_PROPERTIES {
        let Some(value) = properties.get(name) else {
            continue;
        };
        let Ok(number) = value.trim().parse::<i64>() else {
            return Err(illegal(format!(
                "the message property {name} `{value}` is not an integer"
            )));
        };
        let deliver = match name {
            keys::TIMER_DELAY_SEC => number
                .checked_mul(1_000)
                .and_then(|ms| now_ms.checked_add(ms)),
            keys::TIMER_DELAY_MS => now_ms.checked_add(number),
            _ => Some(number),
        };
        return deliver
            .map(Some)
            .ok_or_else(|| illegal(format!("the message property {name} `{value}` overflows")));
    }
    Ok(None)
}

/// Whether any timer property is present (batches refuse them).
#[must_use]
pub fn has_timer(properties: &Properties) -> bool {
    TIMER_PROPERTIES
        .iter()
        .any(|name| properties.contains(name))
}

/// Java refuses a timer on a batch.
///
/// # Errors
/// MESSAGE_ILLEGAL.
pub fn reject_batch_timer(properties: &Properties) -> Result<(), Failure> {
    if has_timer(properties) {
        return Err(illegal(
            "batch messages do not support timer properties (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS, __STARTDELIVERTIME)".into(),
        ));
    }
    Ok(())
}

/// Java refuses a timer on a half (prepared) message.
///
/// # Errors
/// MESSAGE_ILLEGAL.
pub fn reject_half_timer(properties: &Properties) -> Result<(), Failure> {
    if has_timer(properties) {
        return Err(illegal(
            "transaction half messages do not support timer properties".into(),
        ));
    }
    Ok(())
}

/// A send's timer placement, decided by [`park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    /// When it is due, ms since the epoch: its consume-queue tag code.
    pub deliver_ms: i64,
}

/// Parks a send in the timer topic if it carries a timer property due in the future: checks it
/// (malformed, too far, timers disabled), records `REAL_TOPIC`/`REAL_QID`, writes the absolute
/// due time to `TIMER_DELIVER_MS` and `TIMER_OUT_MS`. As Java 5's `checkIfTimerMessage`: a
/// positive `DELAY` level wins (the timer properties are removed and the level applies), a
/// message that already went through a timer (`TIMER_OUT_MS`, e.g. a consumer's re-send) is
/// not a timer again, and a due time not in the future is an ordinary send.
///
/// # Errors
/// MESSAGE_ILLEGAL for a malformed value or a delay beyond `timerMaxDelaySec` (Java's
/// `WHEEL_TIMER_MSG_ILLEGAL` remark); SYSTEM_ERROR when `timerWheelEnable=false` (Java's
/// `WHEEL_TIMER_NOT_ENABLE`).
pub fn park(
    config: &BrokerConfig,
    target: (&str, i32),
    properties: &mut Properties,
    now_ms: i64,
) -> Result<Option<Parked>, Failure> {
    if super::schedule::requested_level(properties).unwrap_or(0) > 0 {
        for name in TIMER_PROPERTIES {
            properties.remove(name);
        }
        return Ok(None);
    }
    if properties.contains(keys::TIMER_OUT_MS) {
        return Ok(None);
    }
    let Some(deliver_ms) = requested_deliver_ms(properties, now_ms)? else {
        return Ok(None);
    };
    if deliver_ms <= now_ms {
        return Ok(None);
    }
    if !config.timer_wheel_enable {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            "accurate timer message is not enabled, timerWheelEnable is false".into(),
        ));
    }
    let max_delay_ms = i64::try_from(config.timer_max_delay_sec * 1_000).expect("bounded");
    if deliver_ms.saturating_sub(now_ms) > max_delay_ms {
        return Err(illegal(format!(
            "timer message illegal, the delay time should not be bigger than the max delay {max_delay_ms}ms; or if set del msg, the del msg should exist"
        )));
    }
    let codec = |e: rmq_net::CodecError| illegal(e.to_string());
    properties
        .insert(keys::TIMER_DELIVER_MS, deliver_ms.to_string())
        .map_err(codec)?;
    properties
        .insert(keys::TIMER_OUT_MS, deliver_ms.to_string())
        .map_err(codec)?;
    properties
        .insert(keys::REAL_TOPIC, target.0)
        .map_err(codec)?;
    properties
        .insert(keys::REAL_QID, target.1.to_string())
        .map_err(codec)?;
    Ok(Some(Parked { deliver_ms }))
}

/// The caller's part of a wheel checkpoint (JSON in the wheel file).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointExtra {
    /// The next timer-queue offset to enqueue.
    enqueued: u64,
    /// Pending timers per real topic.
    pending_by_topic: BTreeMap<String, u64>,
}

/// Counters since start (admin view).
#[derive(Debug, Default)]
pub struct TimerCounters {
    /// Timers moved into the wheel.
    pub enqueued: Cell<u64>,
    /// Timers re-stored in their real topic.
    pub delivered: Cell<u64>,
    /// Timers dropped as undeliverable (logged).
    pub dropped: Cell<u64>,
    /// Timer copies re-stored in the timer queue (rolled) because they were not due yet.
    pub rolled: Cell<u64>,
    /// Rolls not repeated after a restart (the rolled copy was found again).
    pub rolls_deduplicated: Cell<u64>,
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// One shard's timer state.
#[derive(Debug)]
pub struct TimerShard {
    wheel: RefCell<TimerWheel>,
    enqueued: Cell<u64>,
    pending_by_topic: RefCell<BTreeMap<String, u64>>,
    /// Shards whose CommitLog must be durable before the next checkpoint: this shard after it
    /// enqueued timers (their messages are in its CommitLog), and the shards that received
    /// deliveries (at most the shard count). A checkpoint that only moves the cursor over
    /// empty slots flushes nothing, so an ASYNC_FLUSH CommitLog keeps its own flush interval.
    flush_targets: RefCell<BTreeSet<usize>>,
    dirty: Cell<bool>,
    /// The cursor moved over empty slots since the last checkpoint (and nothing else changed).
    cursor_moved: Cell<bool>,
    /// When the last checkpoint completed.
    last_checkpoint: Cell<std::time::Instant>,
    /// Set by [`start`]: this shard delivers (a master), so retention is held for its timers.
    running: Cell<bool>,
    /// When this shard opened its wheel (ms): slots up to it may be re-fired after a crash.
    opened_ms: i64,
    /// The restart's re-enqueue reached the end of the timer queue; deliveries wait for it so
    /// that every rolled copy made before a crash is known before its origin fires again.
    recovered: Cell<bool>,
    /// Origins ([`roll::ROLL_FROM`]) of the rolled copies re-enqueued during recovery: their
    /// rolls are not repeated. Emptied once the cursor passes `opened_ms`; at most
    /// [`crate::limits::TIMER_ROLL_DEDUP_MAX`].
    roll_dedup: RefCell<BTreeSet<u64>>,
    /// Oldest store time of copies placed behind the cursor, with the cursor after which they
    /// have all fired (for the retention floor).
    stale: Cell<Option<(i64, i64)>>,
    /// Store time of the last copy enqueued.
    last_enqueued_stored_ms: Cell<Option<i64>>,
    /// The roll window, ms ([`roll::roll_window_ms`]).
    roll_window_ms: i64,
    /// Serialises enqueue batches, slot deliveries and checkpoints: a checkpoint sees no half
    /// slot and no enqueue past what it flushed.
    step: rmq_storage::fifo_lock::FifoLock,
    /// Counters since start.
    pub counters: TimerCounters,
}

impl TimerShard {
    /// Opens the wheel in `dir` at its last checkpoint.
    ///
    /// # Errors
    /// [`WheelError`] (corrupt files, changed settings).
    pub fn open(dir: &Path, config: &BrokerConfig) -> Result<Self, WheelError> {
        let opened_ms = now_ms();
        let (wheel, extra) = TimerWheel::open(dir, settings(config), opened_ms)?;
        let extra: CheckpointExtra = if extra.is_empty() {
            CheckpointExtra::default()
        } else {
            serde_json::from_slice(&extra).map_err(|e| WheelError::Corrupt {
                path: dir.join("wheel"),
                detail: format!("checkpoint state: {e}"),
            })?
        };
        Ok(Self {
            wheel: RefCell::new(wheel),
            enqueued: Cell::new(extra.enqueued),
            pending_by_topic: RefCell::new(extra.pending_by_topic),
            flush_targets: RefCell::new(BTreeSet::new()),
            dirty: Cell::new(false),
            cursor_moved: Cell::new(false),
            last_checkpoint: Cell::new(std::time::Instant::now()),
            running: Cell::new(false),
            opened_ms,
            recovered: Cell::new(false),
            roll_dedup: RefCell::new(BTreeSet::new()),
            stale: Cell::new(None),
            last_enqueued_stored_ms: Cell::new(None),
            roll_window_ms: roll::roll_window_ms(config),
            step: rmq_storage::fifo_lock::FifoLock::default(),
            counters: TimerCounters::default(),
        })
    }

    /// Counts a timer of `topic` in (`up`) or out of the per-topic view.
    ///
    /// Invariant: every pending timer of one topic is counted under one key, its own or
    /// [`OTHER_TOPICS`], so a delivery decrements the key its enqueue incremented. A topic is
    /// counted under [`OTHER_TOPICS`] only while the map is full; entries that drop to zero are
    /// kept while [`OTHER_TOPICS`] is non-zero (so the map stays full and a folded topic never
    /// gains its own entry with timers still counted under the fold), and are removed once it
    /// drains.
    fn count(&self, topic: &str, up: bool) {
        let mut map = self.pending_by_topic.borrow_mut();
        if up {
            let key = if map.contains_key(topic) || map.len() < TIMER_TOPICS_COUNTED_MAX {
                topic
            } else {
                OTHER_TOPICS
            };
            *map.entry(key.to_owned()).or_default() += 1;
            return;
        }
        let key = if map.contains_key(topic) {
            topic
        } else {
            OTHER_TOPICS
        };
        let Some(count) = map.get_mut(key) else {
            return;
        };
        *count = count.saturating_sub(1);
        if map.get(OTHER_TOPICS).is_some_and(|other| *other > 0) {
            return;
        }
        if key == OTHER_TOPICS {
            map.retain(|_, count| *count > 0);
        } else if map.get(key) == Some(&0) {
            map.remove(key);
        }
    }
}

/// Starts this shard's enqueue task, delivery loop and checkpointer (masters only).
pub fn start(shard: &Rc<Shard>) {
    shard.timer.running.set(true);
    compio::runtime::spawn(enqueue_loop(Rc::clone(shard))).detach();
    compio::runtime::spawn(deliver_loop(Rc::clone(shard))).detach();
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        loop {
            compio::time::sleep(TIMER_CHECKPOINT_INTERVAL).await;
            persist(&shard).await;
        }
    })
    .detach();
}

/// Checkpoints the wheel if it changed (or, when only its cursor moved over empty slots, if
/// the last checkpoint is [`TIMER_IDLE_CHECKPOINT_INTERVAL`] old), after this shard's
/// CommitLog (if it enqueued or rolled timers) and every CommitLog that received deliveries
/// are durable. The writes run on io_uring ([`io::write_checkpoint`]). Failures are logged;
/// the next call retries.
pub async fn persist(shard: &Rc<Shard>) {
    persist_when(shard, false).await;
}

/// [`persist`] at clean shutdown: a moved cursor is checkpointed whatever its age.
pub async fn persist_final(shard: &Rc<Shard>) {
    persist_when(shard, true).await;
}

async fn persist_when(shard: &Rc<Shard>, final_checkpoint: bool) {
    let timer = &shard.timer;
    let _step = timer.step.lock().await;
    let idle_due = timer.cursor_moved.get()
        && (final_checkpoint
            || timer.last_checkpoint.get().elapsed() >= TIMER_IDLE_CHECKPOINT_INTERVAL);
    if !timer.dirty.get() && !idle_due {
        return;
    }
    if !timer.roll_dedup.borrow().is_empty() {
        // The wheel may hold copies superseded by rolled copies it also holds; only the
        // remembered origins tell them apart, and they are not checkpointed. A crash before
        // they fire recovers from the previous checkpoint and finds the same origins again.
        return;
    }
    let targets = std::mem::take(&mut *timer.flush_targets.borrow_mut());
    let restore = |why: &dyn std::fmt::Display| {
        tracing::warn!(shard = shard.id.0, %why, "timer wheel not checkpointed");
        timer
            .flush_targets
            .borrow_mut()
            .extend(targets.iter().copied());
    };
    for target in &targets {
        if let Err(reason) = flush_commitlog(shard, ShardId(*target)).await {
            restore(&reason);
            return;
        }
    }
    let extra = CheckpointExtra {
        enqueued: timer.enqueued.get(),
        pending_by_topic: timer.pending_by_topic.borrow().clone(),
    };
    let bytes = serde_json::to_vec(&extra).expect("a map of strings and numbers encodes");
    if let Err(err) = write_log(timer, true).await {
        restore(&err);
        return;
    }
    let prepared = timer.wheel.borrow_mut().prepare_checkpoint(&bytes);
    let plan = match prepared {
        Ok(plan) => plan,
        Err(err) => {
            restore(&err);
            return;
        }
    };
    match io::write_checkpoint(&plan).await {
        Ok(()) => {
            timer.wheel.borrow_mut().checkpoint_done(plan);
            timer.dirty.set(false);
            timer.cursor_moved.set(false);
            timer.last_checkpoint.set(std::time::Instant::now());
        }
        Err(err) => {
            timer.wheel.borrow_mut().checkpoint_failed(plan);
            restore(&err);
        }
    }
}

/// Writes the wheel's buffered log entries out on io_uring once they reach
/// [`wheel::WRITE_BUFFER_BYTES_ASYNC`] (or whatever is buffered, with `all`), so the wheel's
/// own blocking write at [`wheel::WRITE_BUFFER_BYTES_MAX`] is not reached in normal work.
/// Called with the step lock held (no wheel change while the write is in flight).
async fn write_log(timer: &TimerShard, all: bool) -> Result<(), WheelError> {
    let writes = {
        let wheel = timer.wheel.borrow();
        let buffered = wheel.buffered_bytes();
        if buffered == 0 || (!all && buffered < wheel::WRITE_BUFFER_BYTES_ASYNC) {
            return Ok(());
        }
        wheel.log_writes()
    };
    io::write_log(writes).await?;
    timer.wheel.borrow_mut().log_written();
    Ok(())
}

/// [`write_log`] between wheel operations: a failure leaves the entries buffered (the wheel
/// reads them from its buffer; the checkpoint writes them or fails), so it is only logged.
async fn write_log_or_warn(shard: &Shard) {
    if let Err(err) = write_log(&shard.timer, false).await {
        tracing::warn!(shard = shard.id.0, %err, "timer log not written out; still buffered");
    }
}

/// The least age age-based retention must respect on this shard's CommitLog so that it deletes
/// no file a pending timer copy lives in ([`roll::retention_hold`]); zero where this shard
/// delivers no timers (a slave), everything ([`Duration::MAX`]) until a restarted shard has
/// re-enqueued its timer queue and fired the slots it missed.
#[must_use]
pub fn retention_hold(shard: &Shard) -> Duration {
    let timer = &shard.timer;
    if !timer.running.get() {
        return Duration::ZERO;
    }
    let cursor_ms = timer.wheel.borrow().cursor_ms();
    if !timer.recovered.get() || cursor_ms < timer.opened_ms {
        return Duration::MAX;
    }
    let queue_id = timer_queue(shard.id, shard.shard_count());
    let backlog = shard
        .store
        .offsets(TIMER_TOPIC, queue_id)
        .is_some_and(|(_, max)| max > timer.enqueued.get());
    let backlog_stored_ms = if backlog {
        match timer.last_enqueued_stored_ms.get() {
            Some(stored) => Some(stored),
            None => return Duration::MAX,
        }
    } else {
        None
    };
    let stale_stored_ms = timer
        .stale
        .get()
        .filter(|(_, until)| cursor_ms < *until)
        .map(|(stored, _)| stored);
    let floor = roll::retention_floor_ms(roll::FloorInputs {
        cursor_ms,
        window_ms: timer.roll_window_ms,
        stale_stored_ms,
        backlog_stored_ms,
    });
    roll::retention_hold(now_ms(), floor)
}

async fn flush_commitlog(shard: &Rc<Shard>, target: ShardId) -> Result<(), String> {
    if target == shard.id {
        let flushed = shard.store.commitlog().flush().await;
        return flushed.map(drop).map_err(|e| e.to_string());
    }
    submit_to(shard, target, |owner: Rc<Shard>| async move {
        let flushed = owner.store.commitlog().flush().await;
        flushed.map(drop).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Moves every stored timer of this shard's timer queue into the wheel, forever.
async fn enqueue_loop(shard: Rc<Shard>) {
    let queue_id = timer_queue(shard.id, shard.shard_count());
    loop {
        match enqueue_batch(&shard, queue_id).await {
            Ok(true) => crate::runtime::cooperate::yield_now().await,
            Ok(false) => {
                shard.timer.recovered.set(true);
                let next = shard.timer.enqueued.get();
                match shard
                    .store
                    .wait_for_message(TIMER_TOPIC, queue_id, next)
                    .await
                {
                    WaitOutcome::Arrived => {}
                    WaitOutcome::Overloaded => compio::time::sleep(TIMER_RETRY_INTERVAL).await,
                    WaitOutcome::Closed => return,
                }
            }
            Err(Failure::Code(code, remark)) => {
                tracing::warn!(shard = shard.id.0, ?code, %remark, "timer enqueue failed; retrying");
                compio::time::sleep(TIMER_RETRY_INTERVAL).await;
            }
        }
    }
}

/// Enqueues one batch; `Ok(false)` when the queue has nothing past the enqueue offset.
async fn enqueue_batch(shard: &Rc<Shard>, queue_id: i32) -> Result<bool, Failure> {
    let timer = &shard.timer;
    let _step = timer.step.lock().await;
    let Some((min, max)) = shard.store.offsets(TIMER_TOPIC, queue_id) else {
        return Ok(false);
    };
    let mut offset = timer.enqueued.get();
    if !(min..=max).contains(&offset) {
        tracing::warn!(
            shard = shard.id.0,
            offset,
            min,
            max,
            "timer enqueue offset outside the timer queue; clamped"
        );
        offset = offset.clamp(min, max);
        timer.enqueued.set(offset);
        timer.dirty.set(true);
        timer.flush_targets.borrow_mut().insert(shard.id.0);
    }
    if offset >= max {
        return Ok(false);
    }
    let get = GetRequest {
        topic: TIMER_TOPIC,
        queue_id,
        queue_offset: offset,
        max_count: TIMER_ENQUEUE_BATCH,
        max_bytes: 4 * 1024 * 1024,
        filter: TagFilter::All,
    };
    let result = shard
        .store
        .get_messages(&get)
        .await
        .map_err(|e| storage_failure(&e))?;
    let precision = i64::try_from(timer.wheel.borrow().settings().precision_ms).expect("bounded");
    {
        let mut wheel = timer.wheel.borrow_mut();
        for record in &result.records {
            let queue_offset = u64::try_from(record.queue_offset).expect("stored offsets are >= 0");
            assert!(queue_offset >= offset, "the timer queue is read in order");
            let (topic, origin) = copy_facts(record);
            if let (false, Some(origin)) = (timer.recovered.get(), origin) {
                remember_roll(shard, origin);
            }
            let at = roll::wheel_time(
                record.tags_code,
                record.store_timestamp_ms,
                timer.roll_window_ms,
            );
            let cursor = wheel.cursor_ms();
            if at < cursor {
                // Placed behind the cursor: it fires with the next slot or the one after.
                let oldest = timer
                    .stale
                    .get()
                    .filter(|(_, until)| cursor < *until)
                    .map_or(record.store_timestamp_ms, |(s, _)| {
                        s.min(record.store_timestamp_ms)
                    });
                timer.stale.set(Some((oldest, cursor + 2 * precision)));
            }
            wheel
                .schedule(TimerEntry {
                    deliver_ms: at,
                    queue_offset,
                })
                .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
            timer
                .last_enqueued_stored_ms
                .set(Some(record.store_timestamp_ms));
            timer.count(&topic.unwrap_or_default(), true);
            bump(&timer.counters.enqueued);
        }
    }
    write_log_or_warn(shard).await;
    let next = result.next_begin_offset.max(offset);
    let moved = next > offset;
    timer.enqueued.set(next);
    if moved {
        timer.dirty.set(true);
        timer.flush_targets.borrow_mut().insert(shard.id.0);
    }
    Ok(moved)
}

fn real_topic(record: &StoredRecord) -> Option<String> {
    copy_facts(record).0
}

/// A timer copy's real topic and, for a rolled copy, the copy it replaced.
fn copy_facts(record: &StoredRecord) -> (Option<String>, Option<u64>) {
    let Ok((message, _)) = MessageRecord::decode_shared(&record.payload, CrcCheck::Skip) else {
        return (None, None);
    };
    let topic = message.properties.get(keys::REAL_TOPIC).map(str::to_owned);
    (topic, roll::roll_from(&message.properties))
}

fn remember_roll(shard: &Shard, origin: u64) {
    let mut dedup = shard.timer.roll_dedup.borrow_mut();
    if dedup.len() < TIMER_ROLL_DEDUP_MAX {
        dedup.insert(origin);
    } else {
        tracing::warn!(
            shard = shard.id.0,
            origin,
            "TIMER_ROLL_DEDUP_MAX reached: this roll may be repeated (one extra delivery)"
        );
    }
}

/// Fires due slots at the wheel's precision, forever.
async fn deliver_loop(shard: Rc<Shard>) {
    let queue_id = timer_queue(shard.id, shard.shard_count());
    while !shard.timer.recovered.get() {
        if shard.stopping.is_set() {
            return;
        }
        compio::time::sleep(TIMER_RECOVERY_POLL).await;
    }
    loop {
        let fires_at = shard.timer.wheel.borrow().fires_at_ms();
        let wait_ms = fires_at.saturating_sub(now_ms());
        if wait_ms > 0 {
            compio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())).await;
            continue;
        }
        if shard.stopping.is_set() {
            return;
        }
        if let Err(Failure::Code(code, remark)) = deliver_slot(&shard, queue_id).await {
            tracing::warn!(shard = shard.id.0, ?code, %remark, "timer delivery failed; retrying the slot");
            compio::time::sleep(TIMER_RETRY_INTERVAL).await;
        }
    }
}

/// Delivers every timer of the cursor slot, then finishes it.
async fn deliver_slot(shard: &Rc<Shard>, queue_id: i32) -> Result<(), Failure> {
    let timer = &shard.timer;
    let _step = timer.step.lock().await;
    let wheel_failure = |e: WheelError| Failure::Code(ResponseCode::SystemError, e.to_string());
    let (start, slot_end_ms, before) = {
        let wheel = timer.wheel.borrow();
        if wheel.due_slot(now_ms()).is_none() {
            return Ok(());
        }
        let before = (wheel.pending(), wheel.log_len());
        (wheel.due_chain(), wheel.fires_at_ms(), before)
    };
    let mut chain = start;
    while !chain.is_done() {
        let batch = timer
            .wheel
            .borrow_mut()
            .read_chain(&mut chain, TIMER_DELIVER_BATCH)
            .map_err(wheel_failure)?;
        deliver_batch(shard, queue_id, batch, slot_end_ms).await?;
    }
    {
        let mut wheel = timer.wheel.borrow_mut();
        wheel.finish_slot(start).map_err(wheel_failure)?;
        if (wheel.pending(), wheel.log_len()) == before {
            // An empty slot and no promotion: recovery re-walks it, no checkpoint owed.
            timer.cursor_moved.set(true);
        } else {
            timer.dirty.set(true);
        }
        if wheel.cursor_ms() > timer.opened_ms && !timer.roll_dedup.borrow().is_empty() {
            // Every slot a roll could have been made in before the restart has fired again.
            timer.roll_dedup.borrow_mut().clear();
        }
    }
    write_log_or_warn(shard).await;
    Ok(())
}

/// What one due entry of a window turns into, decided before any re-store is started.
enum Due<'a> {
    /// Its copy (at this timer-queue offset) is gone from the timer queue (logged, dropped).
    Gone(u64),
    /// Rolled before a crash and the rolled copy found again: that copy carries the timer.
    Deduplicated(String),
    /// Not due yet at the slot's end: rolled to a fresh copy.
    Roll(&'a StoredRecord, u64, String),
    /// Re-stored in its real topic and queue.
    Deliver(&'a StoredRecord, String),
}

/// Delivers one batch of a slot's chain: sorted by timer-queue offset, then window by window
/// ([`TIMER_DELIVER_WINDOW`]) the records are read with one get per run of consecutive
/// offsets (adjacent copies come from one ranged read), all runs in flight together, and the
/// window's rolls and re-stores are appended in flight together. Every one of them completes
/// before the next window starts and before the caller finishes the slot; an error fails the
/// slot, which is retried whole (at-least-once).
async fn deliver_batch(
    shard: &Rc<Shard>,
    queue_id: i32,
    mut batch: Vec<TimerEntry>,
    slot_end_ms: i64,
) -> Result<(), Failure> {
    batch.sort_unstable_by_key(|entry| entry.queue_offset);
    for window in batch.chunks(TIMER_DELIVER_WINDOW) {
        let records = read_window(shard, queue_id, window).await?;
        assert_eq!(records.len(), window.len(), "one lookup per due entry");
        let dues: Vec<Due<'_>> = window
            .iter()
            .zip(&records)
            .map(|(entry, record)| classify(shard, *entry, record.as_ref(), slot_end_ms))
            .collect();
        let outcomes = join_all(dues.iter().map(|due| settle(shard, queue_id, due))).await;
        outcomes.into_iter().collect::<Result<(), Failure>>()?;
    }
    Ok(())
}

/// The records of `window` (ascending timer-queue offsets), one per entry in its order, `None`
/// for a copy no longer in the timer queue. Consecutive offsets are one get (the store reads
/// adjacent records with one ranged read); the gets run in flight together.
async fn read_window(
    shard: &Rc<Shard>,
    queue_id: i32,
    window: &[TimerEntry],
) -> Result<Vec<Option<StoredRecord>>, Failure> {
    debug_assert!(window
        .windows(2)
        .all(|pair| pair[0].queue_offset <= pair[1].queue_offset));
    // Runs of consecutive offsets: (first offset, last offset).
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for entry in window {
        match runs.last_mut() {
            Some((_, last)) if entry.queue_offset <= *last + 1 => *last = entry.queue_offset,
            _ => runs.push((entry.queue_offset, entry.queue_offset)),
        }
    }
    let gets = runs.iter().map(|&(first, last)| async move {
        let get = GetRequest {
            topic: TIMER_TOPIC,
            queue_id,
            queue_offset: first,
            max_count: u32::try_from(last - first + 1).expect("a run is within a window"),
            max_bytes: u64::MAX,
            filter: TagFilter::All,
        };
        shard
            .store
            .get_messages(&get)
            .await
            .map_err(|e| storage_failure(&e))
    });
    let mut found: BTreeMap<u64, StoredRecord> = BTreeMap::new();
    // Entries a run's scan stopped before (a consume-queue file boundary): read on their own.
    let mut unscanned: Vec<u64> = Vec::new();
    for (&(first, last), result) in runs.iter().zip(join_all(gets).await) {
        let result = result?;
        // Every offset of a run is a window entry's; those at or past where the scan stopped
        // were not looked at.
        unscanned.extend(result.next_begin_offset.max(first)..=last);
        for record in result.records {
            let offset = record.queue_offset.unsigned_abs();
            if (first..=last).contains(&offset) {
                found.insert(offset, record);
            }
        }
    }
    for offset in unscanned {
        if found.contains_key(&offset) {
            continue;
        }
        let get = GetRequest {
            topic: TIMER_TOPIC,
            queue_id,
            queue_offset: offset,
            max_count: 1,
            max_bytes: 1,
            filter: TagFilter::All,
        };
        let result = shard
            .store
            .get_messages(&get)
            .await
            .map_err(|e| storage_failure(&e))?;
        if let Some(record) = result
            .records
            .into_iter()
            .find(|r| r.queue_offset.unsigned_abs() == offset)
        {
            found.insert(offset, record);
        }
    }
    Ok(window
        .iter()
        .map(|entry| found.get(&entry.queue_offset).cloned())
        .collect())
}

/// Decides what a due entry turns into (no I/O).
fn classify<'a>(
    shard: &Shard,
    entry: TimerEntry,
    record: Option<&'a StoredRecord>,
    slot_end_ms: i64,
) -> Due<'a> {
    let timer = &shard.timer;
    let Some(record) = record else {
        return Due::Gone(entry.queue_offset);
    };
    assert!(
        record.tags_code >= entry.deliver_ms,
        "a wheel entry is placed at its copy's due time or earlier (a roll)"
    );
    let topic = real_topic(record).unwrap_or_default();
    if timer.roll_dedup.borrow().contains(&entry.queue_offset) {
        return Due::Deduplicated(topic);
    }
    if roll::is_roll(record.tags_code, slot_end_ms) {
        return Due::Roll(record, entry.queue_offset, topic);
    }
    Due::Deliver(record, topic)
}

/// Carries out one due entry's [`Due`]: the roll or re-store, then the counters.
async fn settle(shard: &Rc<Shard>, queue_id: i32, due: &Due<'_>) -> Result<(), Failure> {
    let timer = &shard.timer;
    match due {
        Due::Gone(offset) => {
            tracing::error!(
                shard = shard.id.0,
                offset,
                "timer message no longer in the timer queue (retention?); dropped"
            );
            bump(&timer.counters.dropped);
        }
        Due::Deduplicated(topic) => {
            bump(&timer.counters.rolls_deduplicated);
            timer.count(topic, false);
        }
        Due::Roll(record, from, topic) => {
            roll_copy(shard, queue_id, record, *from).await?;
            timer.count(topic, false);
        }
        Due::Deliver(record, topic) => {
            if let Some(owner) = deliver_one(shard, record).await? {
                timer.flush_targets.borrow_mut().insert(owner.0);
                bump(&timer.counters.delivered);
            } else {
                bump(&timer.counters.dropped);
            }
            timer.count(topic, false);
        }
    }
    Ok(())
}

/// Rolls the copy at `from` (not due yet): a fresh copy in this shard's timer queue.
async fn roll_copy(
    shard: &Rc<Shard>,
    queue_id: i32,
    record: &StoredRecord,
    from: u64,
) -> Result<(), Failure> {
    let timer = &shard.timer;
    match roll::roll_entry(shard, queue_id, record, from).await? {
        roll::Rolled::Stored => {
            timer.flush_targets.borrow_mut().insert(shard.id.0);
            bump(&timer.counters.rolled);
        }
        roll::Rolled::Undeliverable(reason) => {
            tracing::error!(
                shard = shard.id.0,
                phys = record.phys_offset,
                reason,
                "timer message that cannot be rolled dropped"
            );
            bump(&timer.counters.dropped);
        }
    }
    Ok(())
}

/// Re-stores one due timer message in its real topic and queue. `Ok(None)`: it can never be
/// delivered (not a message, no real topic, refused as illegal) and is dropped with an error
/// log.
async fn deliver_one(shard: &Rc<Shard>, stored: &StoredRecord) -> Result<Option<ShardId>, Failure> {
    let strip = [keys::REAL_TOPIC, keys::REAL_QID, roll::ROLL_FROM];
    match restore_in_real_queue(shard, stored, &strip, false).await? {
        Restored::Stored(owner) => Ok(Some(owner)),
        Restored::Undeliverable(reason) => {
            tracing::error!(
                shard = shard.id.0,
                phys = stored.phys_offset,
                reason,
                "undeliverable timer message dropped"
            );
            Ok(None)
        }
    }
}

/// Whether a send's sys flag lets it be a timer (not a prepared or rollback record).
#[must_use]
pub fn timer_allowed(sys_flag: i32) -> bool {
    let transaction = sysflag::transaction_value(sys_flag);
    transaction == sysflag::TRANSACTION_NOT_TYPE || transaction == sysflag::TRANSACTION_COMMIT_TYPE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        let mut properties = Properties::new();
        for (name, value) in pairs {
            properties.insert(*name, *value).expect("insert");
        }
        properties
    }

    #[test]
    fn every_timer_property_asks_for_a_due_time() {
        let now = 1_000_000;
        assert_eq!(requested_deliver_ms(&props(&[]), now).expect("ok"), None);
        for (name, value, due) in [
            (keys::TIMER_DELIVER_MS, "1005000", 1_005_000),
            (keys::TIMER_DELAY_SEC, "3", 1_003_000),
            (keys::TIMER_DELAY_MS, "250", 1_000_250),
            (keys::START_DELIVER_TIME, "999", 999),
        ] {
            assert_eq!(
                requested_deliver_ms(&props(&[(name, value)]), now).expect("ok"),
                Some(due),
                "{name}"
            );
            assert!(requested_deliver_ms(&props(&[(name, "soon")]), now).is_err());
            assert!(reject_batch_timer(&props(&[(name, value)])).is_err());
        }
        assert!(
            requested_deliver_ms(&props(&[(keys::TIMER_DELAY_SEC, "9223372036854775")]), now)
                .is_err()
        );
        assert!(reject_batch_timer(&props(&[("user", "1")])).is_ok());
    }

    #[test]
    fn park_checks_the_maximum_and_records_the_real_queue() {
        let config = BrokerConfig::default();
        let now = 1_700_000_000_000;
        let mut properties = props(&[(keys::TIMER_DELAY_SEC, "10")]);
        let parked = park(&config, ("T", 2), &mut properties, now)
            .expect("legal")
            .expect("parked");
        assert_eq!(parked.deliver_ms, now + 10_000);
        assert_eq!(properties.get(keys::REAL_TOPIC), Some("T"));
        assert_eq!(properties.get(keys::REAL_QID), Some("2"));
        let deliver = (now + 10_000).to_string();
        assert_eq!(
            properties.get(keys::TIMER_DELIVER_MS),
            Some(deliver.as_str())
        );
        assert_eq!(properties.get(keys::TIMER_OUT_MS), Some(deliver.as_str()));
        let mut level = props(&[(keys::TIMER_DELIVER_MS, "1"), (keys::DELAY, "3")]);
        assert_eq!(
            park(&config, ("T", 0), &mut level, now).expect("legal"),
            None
        );
        assert_eq!(level, props(&[(keys::DELAY, "3")]), "a level wins, as Java");
        let mut resent = props(&[(keys::TIMER_DELAY_SEC, "10"), (keys::TIMER_OUT_MS, "5")]);
        assert_eq!(
            park(&config, ("T", 0), &mut resent, now).expect("legal"),
            None
        );
        let mut past = props(&[(keys::TIMER_DELIVER_MS, "5")]);
        assert_eq!(
            park(&config, ("T", 0), &mut past, now).expect("legal"),
            None
        );
        let max = i64::try_from(config.timer_max_delay_sec).expect("small") * 1_000;
        let mut at_max = props(&[(keys::TIMER_DELIVER_MS, &(now + max).to_string())]);
        assert!(park(&config, ("T", 0), &mut at_max, now)
            .expect("legal")
            .is_some());
        let mut beyond = props(&[(keys::TIMER_DELIVER_MS, &(now + max + 1).to_string())]);
        let Err(Failure::Code(code, remark)) = park(&config, ("T", 0), &mut beyond, now) else {
            panic!("beyond the maximum is refused");
        };
        assert_eq!(code, ResponseCode::MessageIllegal);
        assert!(remark.contains("max delay"), "{remark}");
        let disabled = BrokerConfig {
            timer_wheel_enable: false,
            ..BrokerConfig::default()
        };
        let mut properties = props(&[(keys::TIMER_DELAY_MS, "5")]);
        assert!(matches!(
            park(&disabled, ("T", 0), &mut properties, now),
            Err(Failure::Code(ResponseCode::SystemError, _))
        ));
        let mut plain = props(&[("user", "v")]);
        assert_eq!(
            park(&config, ("T", 0), &mut plain, now).expect("legal"),
            None
        );
        assert_eq!(plain, props(&[("user", "v")]));
    }

    #[test]
    fn broker_conf_timer_keys_are_parsed_and_bounded() {
        let parse = |text: &str| {
            let props = crate::config::parse_properties(text).expect("properties");
            BrokerConfig::from_properties(&props).map(|loaded| loaded.config)
        };
        let config =
            parse("timerMaxDelaySec=3456000\ntimerPrecisionMs=100\ntimerWheelEnable=false")
                .expect("valid");
        assert_eq!(config.timer_max_delay_sec, 3_456_000);
        assert_eq!(config.timer_precision_ms, 100);
        assert!(!config.timer_wheel_enable);
        assert_eq!(
            config.timer_roll_window_slot,
            crate::limits::TIMER_ROLL_WINDOW_SLOT_DEFAULT
        );
        let rolled = parse("timerRollWindowSlot=2").expect("valid");
        assert_eq!(rolled.timer_roll_window_slot, 2);
        let wheel = settings(&config);
        assert!(wheel.validate().is_ok());
        assert_eq!(wheel.fine_slots(), 72_000);
        assert_eq!(wheel.coarse_slots(), 963);
        for bad in [
            "timerPrecisionMs=99",
            "timerPrecisionMs=700",
            "timerMaxDelaySec=0",
            "timerMaxDelaySec=63072001",
            "timerWheelEnable=maybe",
            "timerRollWindowSlot=1",
            "timerRollWindowSlot=3456001",
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
        let longest = parse("timerMaxDelaySec=63072000\ntimerPrecisionMs=100").expect("valid");
        assert!(
            settings(&longest).validate().is_ok(),
            "the limits fit the wheel's bounds"
        );
    }

    #[test]
    fn every_shard_has_its_own_timer_queue() {
        for shards in 1..=8 {
            let mut seen = BTreeSet::new();
            for shard in 0..shards {
                let queue = timer_queue(ShardId(shard), shards);
                assert_eq!(shard_for(TIMER_TOPIC, queue, shards), ShardId(shard));
                assert!(seen.insert(queue));
            }
        }
    }
}
