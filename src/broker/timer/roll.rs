//! Rolling long timers (Java 5's `MAGIC_ROLL` / `TIMER_ROLL_TIMES`) and the retention hold
//! that keeps every pending timer copy's CommitLog file.
//!
//! A timer message lives in the CommitLog as a copy in the timer queue. A copy whose due time
//! is further than one roll window ([`roll_window_ms`]) after it was stored is placed in the
//! wheel at `stored + window` ([`wheel_time`]) instead of its due time; when that entry fires
//! before the due time ([`is_roll`]), the copy is re-stored in the timer queue of the same
//! shard ([`roll_entry`]: a fresh CommitLog copy, same due time as tag code, `TIMER_ROLL_TIMES`
//! incremented, [`ROLL_FROM`] naming the copy it replaces), which the enqueue task schedules
//! again. The old copy may then expire. The placement is a pure function of the stored copy,
//! so a restart that re-enqueues the copy places it identically.
//!
//! Retention ([`retention_hold`]): every pending copy was stored no earlier than
//! [`retention_floor_ms`] (the cursor minus one window, or earlier for copies still in the
//! enqueue backlog or placed behind the cursor); age-based retention may delete only files
//! last written before that floor minus [`TIMER_RETENTION_MARGIN`].
//!
//! Owns the roll window, the placement, the roll's re-store and the hold. Must never: place a
//! copy later than its due time or later than one window after it was stored, roll on a shard
//! other than the copy's, or let age-based retention reach a file a pending copy may live in.

use std::time::Duration;

use rmq_net::codec::message::{keys, CrcCheck, MessageRecord, Properties};
use rmq_storage::commitlog::StoredRecord;
use rmq_storage::store::AppendMessage;

use crate::config::BrokerConfig;
use crate::runtime::clock::now_ms;

use super::super::message::{encode_payload, index_keys, Inbound};
use super::super::shard::Shard;
use super::super::Failure;
use super::TIMER_TOPIC;

/// The broker's property on a rolled copy: the timer-queue offset of the copy it replaces.
/// A restarted shard uses it to recognise a roll it already made (no second copy, no second
/// delivery); it is removed at delivery, so consumers never see it.
pub const ROLL_FROM: &str = "__RMQ_TIMER_ROLL_FROM";
/// Slack between a pending copy's store time and the newest file retention may delete: file
/// modification times and store timestamps come from the same clock but not the same instant
/// (the flush lags the append), and a wall clock may step back a little.
pub const TIMER_RETENTION_MARGIN: Duration = Duration::from_secs(600);

/// The roll window, ms: `timerRollWindowSlot` slots, capped at half of `fileReservedTime` so
/// a copy is re-stored well before retention could reach it, and never below two slots.
#[must_use]
pub fn roll_window_ms(config: &BrokerConfig) -> i64 {
    let precision = config.timer_precision_ms;
    let slots = config.timer_roll_window_slot.saturating_mul(precision);
    let half_retention = u64::from(config.file_reserved_time_hours) * 3_600_000 / 2;
    let window = slots.min(half_retention).max(2 * precision);
    i64::try_from(window).expect("bounded by the config limits")
}

/// Where a copy stored at `stored_ms`, due at `due_ms`, goes in the wheel: its due time, or
/// its roll time `stored_ms + window_ms` when the due time is further.
#[must_use]
pub fn wheel_time(due_ms: i64, stored_ms: i64, window_ms: i64) -> i64 {
    assert!(window_ms > 0, "a roll window is positive");
    due_ms.min(stored_ms.saturating_add(window_ms))
}

/// Whether a wheel entry firing in a slot that ends at `slot_end_ms` is a roll: its copy is
/// due at or after the slot's end (delivering it now would be early).
#[must_use]
pub fn is_roll(due_ms: i64, slot_end_ms: i64) -> bool {
    due_ms >= slot_end_ms
}

/// The properties of a rolled copy: `TIMER_ROLL_TIMES` one more (1 on the first roll, as
/// Java) and [`ROLL_FROM`] naming the copy it replaces.
///
/// # Errors
/// A codec error when the properties no longer encode (they did when stored).
pub fn rolled_properties(
    properties: &mut Properties,
    from_queue_offset: u64,
) -> Result<u32, rmq_net::CodecError> {
    let times = properties
        .get(keys::TIMER_ROLL_TIMES)
        .and_then(|t| t.parse::<u32>().ok())
        .unwrap_or(0)
        .saturating_add(1);
    properties.insert(keys::TIMER_ROLL_TIMES, times.to_string())?;
    properties.insert(ROLL_FROM, from_queue_offset.to_string())?;
    Ok(times)
}

/// The copy a rolled copy replaces (its [`ROLL_FROM`]), if it is one.
#[must_use]
pub fn roll_from(properties: &Properties) -> Option<u64> {
    properties.get(ROLL_FROM).and_then(|v| v.parse().ok())
}

/// What the enqueue side knows about copies not placed by the window rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloorInputs {
    /// The wheel's cursor (next slot to fire).
    pub cursor_ms: i64,
    /// The roll window.
    pub window_ms: i64,
    /// Oldest store time of copies placed behind the cursor (overdue or stale) that may not
    /// have fired yet.
    pub stale_stored_ms: Option<i64>,
    /// Store time of the last copy enqueued, when the timer queue has copies not enqueued yet
    /// (they were stored after it).
    pub backlog_stored_ms: Option<i64>,
}

/// The earliest store time a pending copy can have: a copy placed by the window rule and not
/// fired has `stored + window >= cursor`; the others are named in `inputs`.
#[must_use]
pub fn retention_floor_ms(inputs: FloorInputs) -> i64 {
    let mut floor = inputs.cursor_ms.saturating_sub(inputs.window_ms);
    for other in [inputs.stale_stored_ms, inputs.backlog_stored_ms]
        .into_iter()
        .flatten()
    {
        floor = floor.min(other);
    }
    floor
}

/// The least age a CommitLog file must have for age-based retention to delete it, so that no
/// file a copy stored at or after `floor_ms` lives in is deleted: `now - floor + margin`.
#[must_use]
pub fn retention_hold(now_ms: i64, floor_ms: i64) -> Duration {
    let behind = u64::try_from(now_ms.saturating_sub(floor_ms)).unwrap_or(0);
    Duration::from_millis(behind).saturating_add(TIMER_RETENTION_MARGIN)
}

/// What a roll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rolled {
    /// A fresh copy is in this shard's timer queue.
    Stored,
    /// The copy can never be re-stored, for this reason; the caller logs and drops it.
    Undeliverable(String),
}

/// Re-stores the copy `stored` (timer-queue offset `from`) in this shard's timer queue
/// `queue_id`: same due time (tag code), same body and properties, `TIMER_ROLL_TIMES` + 1,
/// [`ROLL_FROM`] = `from`, a fresh store time.
///
/// # Errors
/// A store failure, to be retried with the slot.
pub async fn roll_entry(
    shard: &std::rc::Rc<Shard>,
    queue_id: i32,
    stored: &StoredRecord,
    from: u64,
) -> Result<Rolled, Failure> {
    let skip = |reason: &str| Ok(Rolled::Undeliverable(reason.to_owned()));
    let Ok((record, _)) = MessageRecord::decode_shared(&stored.payload, CrcCheck::Skip) else {
        return skip("not a message record");
    };
    let mut properties = record.properties;
    if rolled_properties(&mut properties, from).is_err() {
        return skip("properties no longer encode");
    }
    let index = index_keys(&properties);
    let now = now_ms();
    let inbound = Inbound {
        topic: TIMER_TOPIC,
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
        return skip("cannot re-encode for the timer queue");
    };
    let message = AppendMessage {
        topic: TIMER_TOPIC,
        queue_id,
        tags_code: stored.tags_code,
        keys: &index,
        store_timestamp_ms: Some(now),
        sys_flag: record.sys_flag,
        payload: &payload,
    };
    let (owner, _) = super::super::append::append_routed(shard, &message).await?;
    assert_eq!(owner, shard.id, "a timer copy rolls on its own shard");
    Ok(Rolled::Stored)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn the_window_is_java_s_slots_capped_at_half_the_retention() {
        let config = BrokerConfig::default();
        assert_eq!(config.file_reserved_time_hours, 72);
        assert_eq!(roll_window_ms(&config), 36 * HOUR_MS, "72 h / 2 < 2 days");
        let long = BrokerConfig {
            file_reserved_time_hours: 24 * 30,
            ..BrokerConfig::default()
        };
        assert_eq!(roll_window_ms(&long), 48 * HOUR_MS, "Java's 2 days");
        let small = BrokerConfig {
            timer_roll_window_slot: 2,
            ..BrokerConfig::default()
        };
        assert_eq!(roll_window_ms(&small), 2_000);
        let none = BrokerConfig {
            file_reserved_time_hours: 0,
            ..BrokerConfig::default()
        };
        assert_eq!(roll_window_ms(&none), 2_000, "never below two slots");
    }

    #[test]
    fn rolled_properties_count_and_name_the_origin() {
        let mut properties = Properties::new();
        properties.insert("user", "v").expect("insert");
        assert_eq!(rolled_properties(&mut properties, 7).expect("encode"), 1);
        assert_eq!(properties.get(keys::TIMER_ROLL_TIMES), Some("1"));
        assert_eq!(roll_from(&properties), Some(7));
        assert_eq!(rolled_properties(&mut properties, 9).expect("encode"), 2);
        assert_eq!(properties.get(keys::TIMER_ROLL_TIMES), Some("2"));
        assert_eq!(roll_from(&properties), Some(9));
        assert_eq!(properties.get("user"), Some("v"));
    }

    #[test]
    fn the_hold_covers_the_floor_and_the_margin() {
        let now = 100 * HOUR_MS;
        let inputs = FloorInputs {
            cursor_ms: now - 1_000,
            window_ms: 36 * HOUR_MS,
            stale_stored_ms: None,
            backlog_stored_ms: None,
        };
        assert_eq!(retention_floor_ms(inputs), now - 1_000 - 36 * HOUR_MS);
        let stale = FloorInputs {
            stale_stored_ms: Some(10),
            ..inputs
        };
        assert_eq!(retention_floor_ms(stale), 10);
        let backlog = FloorInputs {
            backlog_stored_ms: Some(20),
            ..inputs
        };
        assert_eq!(retention_floor_ms(backlog), 20);
        let hold = retention_hold(now, retention_floor_ms(inputs));
        assert_eq!(
            hold,
            Duration::from_millis(1_000 + 36 * 3_600_000) + TIMER_RETENTION_MARGIN
        );
        assert_eq!(retention_hold(now, now + 5), TIMER_RETENTION_MARGIN);
    }

    /// The broker's timer loop over a real [`TimerWheel`] with a modelled timer queue: sends
    /// (durable at once, as SYNC_FLUSH), rolls (durable at the next send or checkpoint, as a
    /// CommitLog prefix), checkpoints and crashes (the queue keeps its durable prefix; the
    /// wheel its checkpoint; the restart re-enqueues, remembering roll origins, before firing).
    mod model {
        use std::collections::{BTreeMap, BTreeSet};

        use proptest::prelude::*;

        use super::super::*;
        use crate::broker::timer::wheel::{TimerEntry, TimerWheel, WheelSettings};

        const SETTINGS: WheelSettings = WheelSettings {
            precision_ms: 10,
            round_ms: 100,
            max_delay_ms: 1_000,
        };
        const WINDOW_MS: i64 = 30;

        #[derive(Debug, Clone, Copy)]
        struct Copy {
            due: i64,
            stored: i64,
            origin: Option<u64>,
            timer: u64,
        }

        #[derive(Debug, Clone)]
        enum Op {
            Send(i64),
            Advance(i64),
            Checkpoint,
            Crash,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (1i64..1_000).prop_map(Op::Send),
                4 => (0i64..60).prop_map(Op::Advance),
                1 => Just(Op::Checkpoint),
                1 => Just(Op::Crash),
            ]
        }

        struct Broker {
            dir: std::path::PathBuf,
            wheel: TimerWheel,
            queue: Vec<Copy>,
            durable: usize,
            enqueued: u64,
            recovered: bool,
            opened: i64,
            dedup: BTreeSet<u64>,
            delivered: BTreeMap<u64, u32>,
            delivered_since_checkpoint: Vec<u64>,
            allowed: BTreeMap<u64, u32>,
        }

        impl Broker {
            fn enqueue(&mut self) {
                while let Some(copy) = self.queue.get(self.enqueued as usize).copied() {
                    if let (false, Some(origin)) = (self.recovered, copy.origin) {
                        self.dedup.insert(origin);
                    }
                    let at = wheel_time(copy.due, copy.stored, WINDOW_MS);
                    let entry = TimerEntry {
                        deliver_ms: at,
                        queue_offset: self.enqueued,
                    };
                    self.wheel.schedule(entry).expect("schedule");
                    self.enqueued += 1;
                }
                self.recovered = true;
            }

            fn fire(&mut self, now: i64) -> Result<(), TestCaseError> {
                while self.wheel.due_slot(now).is_some() {
                    let slot_end = self.wheel.fires_at_ms();
                    let start = self.wheel.due_chain();
                    let mut chain = start;
                    while !chain.is_done() {
                        for entry in self.wheel.read_chain(&mut chain, 5).expect("read") {
                            let copy = self.queue[entry.queue_offset as usize];
                            prop_assert!(copy.due >= entry.deliver_ms);
                            prop_assert!(entry.deliver_ms <= copy.stored + WINDOW_MS);
                            if self.dedup.contains(&entry.queue_offset) {
                                // Superseded by its rolled copy, found again after a crash.
                            } else if is_roll(copy.due, slot_end) {
                                self.queue.push(Copy {
                                    stored: now,
                                    origin: Some(entry.queue_offset),
                                    ..copy
                                });
                            } else {
                                prop_assert!(copy.due < slot_end, "early: {copy:?}");
                                *self.delivered.entry(copy.timer).or_default() += 1;
                                self.delivered_since_checkpoint.push(copy.timer);
                            }
                        }
                    }
                    self.wheel.finish_slot(start).expect("finish");
                    if self.wheel.cursor_ms() > self.opened {
                        self.dedup.clear();
                    }
                }
                Ok(())
            }
        }

        /// Runs `ops` against the model; an `Err` names the broken property.
        fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
            let root = std::env::var_os("MQ_TEST_DISK_DIR")
                .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
            let dir = root.join(format!(
                "rmq-timer-roll-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            let mut now = 10_000i64;
            let wheel = TimerWheel::open(&dir, SETTINGS, now).expect("open").0;
            let mut broker = Broker {
                dir,
                wheel,
                queue: Vec::new(),
                durable: 0,
                enqueued: 0,
                recovered: true,
                opened: now,
                dedup: BTreeSet::new(),
                delivered: BTreeMap::new(),
                delivered_since_checkpoint: Vec::new(),
                allowed: BTreeMap::new(),
            };
            let mut timers = 0u64;
            for op in ops {
                match op {
                    Op::Send(delay) => {
                        broker.queue.push(Copy {
                            due: now + delay,
                            stored: now,
                            origin: None,
                            timer: timers,
                        });
                        timers += 1;
                        broker.durable = broker.queue.len();
                        broker.enqueue();
                    }
                    Op::Advance(ms) => {
                        now += ms;
                        broker.fire(now)?;
                        broker.enqueue();
                    }
                    Op::Checkpoint if !broker.dedup.is_empty() => {
                        // As the broker: no checkpoint until the superseded copies fired.
                    }
                    Op::Checkpoint => {
                        broker.durable = broker.queue.len();
                        let extra = broker.enqueued.to_le_bytes();
                        broker
                            .wheel
                            .checkpoint_blocking(&extra)
                            .expect("checkpoint");
                        broker.delivered_since_checkpoint.clear();
                    }
                    Op::Crash => {
                        broker.queue.truncate(broker.durable);
                        let (wheel, extra) =
                            TimerWheel::open(&broker.dir, SETTINGS, now).expect("reopen");
                        broker.wheel = wheel;
                        broker.enqueued = if extra.is_empty() {
                            0
                        } else {
                            u64::from_le_bytes(extra.try_into().expect("8 bytes"))
                        };
                        for timer in broker.delivered_since_checkpoint.drain(..) {
                            *broker.allowed.entry(timer).or_default() += 1;
                        }
                        broker.opened = now;
                        broker.recovered = false;
                        broker.enqueue();
                        broker.fire(now)?;
                    }
                }
            }
            now += 5_000;
            broker.fire(now)?;
            broker.enqueue();
            broker.fire(now + 5_000)?;
            prop_assert_eq!(broker.wheel.pending(), 0);
            for timer in 0..timers {
                let times = broker.delivered.get(&timer).copied().unwrap_or(0);
                let extra = broker.allowed.get(&timer).copied().unwrap_or(0);
                prop_assert!(times >= 1, "timer {} lost", timer);
                prop_assert!(
                    times <= 1 + extra,
                    "timer {} delivered {} times",
                    timer,
                    times
                );
            }
            let _ = std::fs::remove_dir_all(&broker.dir);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Every timer is delivered, never early; only deliveries made since the last
            /// checkpoint before a crash repeat, never a roll.
            #[test]
            fn rolled_timers_are_delivered_once_across_crashes(
                ops in proptest::collection::vec(op(), 1..150),
            ) {
                run(ops)?;
            }
        }

        /// Shrunk failure: a copy rolled just before a crash whose due time falls in the first
        /// slot after the restart was delivered by both the old copy and the rolled one (the
        /// old copy was de-duplicated only as a roll, not as a delivery).
        #[test]
        fn a_superseded_copy_due_at_once_is_not_delivered() {
            let ops = vec![
                Op::Send(40),
                Op::Send(1),
                Op::Advance(23),
                Op::Advance(17),
                Op::Send(1),
                Op::Crash,
            ];
            run(ops).expect("delivered once");
        }

        /// Shrunk failure: a checkpoint taken during the restart's catch-up held both a
        /// superseded copy and its rolled copy; after a second crash nothing re-enqueued the
        /// rolled copy, so nothing remembered the first was superseded (checkpoints now wait
        /// until the superseded copies have fired).
        #[test]
        fn a_checkpoint_during_catch_up_keeps_no_superseded_copy() {
            let ops = vec![
                Op::Send(40),
                Op::Advance(40),
                Op::Send(1),
                Op::Crash,
                Op::Checkpoint,
                Op::Advance(10),
                Op::Crash,
            ];
            run(ops).expect("delivered once");
        }
    }

    proptest! {
        /// A timer rolls a bounded number of times, never past its due time, each roll at most
        /// one window after its copy was stored, and every copy the wheel holds was stored no
        /// earlier than the floor (so the hold keeps it).
        #[test]
        fn rolls_reach_the_due_time_and_stay_above_the_floor(
            stored in 0i64..1_000_000,
            delay in 1i64..10_000_000,
            window in 2i64..100_000,
            lag in 0i64..5_000,
        ) {
            let due = stored + delay;
            let mut copy_stored = stored;
            let mut rolls = 0i64;
            loop {
                let at = wheel_time(due, copy_stored, window);
                prop_assert!(at <= due);
                prop_assert!(at <= copy_stored + window);
                // Any cursor up to the entry's slot: the copy is above the floor.
                let floor = retention_floor_ms(FloorInputs {
                    cursor_ms: at,
                    window_ms: window,
                    stale_stored_ms: None,
                    backlog_stored_ms: None,
                });
                prop_assert!(copy_stored >= floor);
                let slot_end = at + 1;
                if !is_roll(due, slot_end) {
                    break;
                }
                rolls += 1;
                // The roll re-stores when the slot fires (a little later under load).
                copy_stored = slot_end + lag;
                prop_assert!(rolls <= delay / window + 1, "{} rolls", rolls);
            }
        }
    }
}
