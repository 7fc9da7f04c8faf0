//! Rolling minute/hour/day windows of per-key stats items, Java `BrokerStatsManager`'s
//! `TOPIC_PUT_NUMS` (key: topic) and `GROUP_GET_NUMS` (key: `topic@group`), served by
//! VIEW_BROKER_STATS_DATA (315). Each shard keeps its own [`StatsWindows`] (one per item),
//! fed by [`super::observe`] from the sends and pulls it processed; a request merges the
//! shards' [`WindowSums`] and only then computes TPS and averages.
//!
//! Windows: per key a ring of per-minute buckets (the last hour) and of per-hour buckets (the
//! last day), rolled lazily by the clock of each record or read, so there is no timer.
//! `statsMinute` is the last complete minute; `statsHour` the current minute and the 59
//! before; `statsDay` the current hour and the 23 before.
//! Must never: allocate for a key once [`crate::limits::STATS_ITEM_KEYS_MAX`] keys are held
//! (new keys are then not counted), hold a borrow across an await, or read another shard.

use std::cell::RefCell;
use std::collections::HashMap;

use rmq_net::codec::body::broker_stats::{BrokerStatsData, BrokerStatsItem};

/// Java's stats item name of messages put per topic.
pub const TOPIC_PUT_NUMS: &str = "TOPIC_PUT_NUMS";
/// Java's stats item name of messages got per `topic@group`.
pub const GROUP_GET_NUMS: &str = "GROUP_GET_NUMS";

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;
/// Minute buckets: the hour window (60) plus the previous complete minute's slot reuse guard.
const MINUTE_SLOTS: usize = 61;
/// Hour buckets: the day window (24) plus one.
const HOUR_SLOTS: usize = 25;

const _: () = {
    assert!(MINUTE_SLOTS > 60, "the ring holds the hour window");
    assert!(HOUR_SLOTS > 24, "the ring holds the day window");
};

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Minute or hour number since the epoch this bucket counts.
    period: i64,
    /// Messages.
    sum: u64,
    /// Requests that added to `sum`.
    times: u64,
}

#[derive(Debug, Clone)]
struct Window {
    minutes: [Bucket; MINUTE_SLOTS],
    hours: [Bucket; HOUR_SLOTS],
}

fn slot(period: i64, slots: usize) -> usize {
    usize::try_from(period.rem_euclid(slots as i64)).expect("rem_euclid is non-negative")
}

fn add(ring: &mut [Bucket], period: i64, count: u64) {
    let bucket = &mut ring[slot(period, ring.len())];
    if bucket.period != period {
        *bucket = Bucket {
            period,
            sum: 0,
            times: 0,
        };
    }
    bucket.sum += count;
    bucket.times += 1;
}

/// Sum and times of the buckets of `ring` whose period is in `first..=last`.
fn total(ring: &[Bucket], first: i64, last: i64) -> (u64, u64) {
    ring.iter()
        .filter(|b| (first..=last).contains(&b.period) && b.times > 0)
        .fold((0, 0), |(sum, times), b| (sum + b.sum, times + b.times))
}

/// Raw sums of one key over the three windows: what crosses the mesh and is merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowSums {
    /// (messages, requests) in the last complete minute.
    pub minute: (u64, u64),
    /// (messages, requests) in the current minute and the 59 before.
    pub hour: (u64, u64),
    /// (messages, requests) in the current hour and the 23 before.
    pub day: (u64, u64),
}

impl WindowSums {
    /// Adds another shard's sums.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in [
            (&mut self.minute, other.minute),
            (&mut self.hour, other.hour),
            (&mut self.day, other.day),
        ] {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
    }

    /// Java's `BrokerStatsData`: sum, per-second rate over the window's length, and messages
    /// per request.
    #[must_use]
    pub fn to_body(&self) -> BrokerStatsData {
        let item = |(sum, times): (u64, u64), seconds: f64| BrokerStatsItem {
            sum: i64::try_from(sum).unwrap_or(i64::MAX),
            #[allow(clippy::cast_precision_loss)]
            tps: sum as f64 / seconds,
            #[allow(clippy::cast_precision_loss)]
            avgpt: if times == 0 {
                0.0
            } else {
                sum as f64 / times as f64
            },
        };
        BrokerStatsData {
            stats_minute: item(self.minute, 60.0),
            stats_hour: item(self.hour, 3600.0),
            stats_day: item(self.day, 86_400.0),
        }
    }
}

/// One stats item's windows on one shard, keyed by topic or `topic@group`.
#[derive(Debug)]
pub struct StatsWindows {
    keys: RefCell<HashMap<String, Window>>,
    keys_max: usize,
}

impl StatsWindows {
    /// Empty windows holding at most `keys_max` keys.
    #[must_use]
    pub fn new(keys_max: usize) -> Self {
        assert!(keys_max > 0, "a stats item holds at least one key");
        Self {
            keys: RefCell::new(HashMap::new()),
            keys_max,
        }
    }

    /// Adds `count` messages of one request to `key` at `now_ms`; a new key past the limit is
    /// not counted.
    pub fn record(&self, key: &str, count: u64, now_ms: i64) {
        let mut keys = self.keys.borrow_mut();
        let held = keys.len();
        let window = match keys.get_mut(key) {
            Some(window) => window,
            None if held < self.keys_max => keys.entry(key.to_owned()).or_insert(Window {
                minutes: [Bucket::default(); MINUTE_SLOTS],
                hours: [Bucket::default(); HOUR_SLOTS],
            }),
            None => return,
        };
        add(&mut window.minutes, now_ms.div_euclid(MS_PER_MINUTE), count);
        add(&mut window.hours, now_ms.div_euclid(MS_PER_HOUR), count);
        debug_assert!(keys.len() <= self.keys_max);
    }

    /// The sums of `key` at `now_ms`; `None` if this shard never counted it.
    #[must_use]
    pub fn sums(&self, key: &str, now_ms: i64) -> Option<WindowSums> {
        let keys = self.keys.borrow();
        let window = keys.get(key)?;
        let minute = now_ms.div_euclid(MS_PER_MINUTE);
        let hour = now_ms.div_euclid(MS_PER_HOUR);
        Some(WindowSums {
            minute: total(&window.minutes, minute - 1, minute - 1),
            hour: total(&window.minutes, minute - 59, minute),
            day: total(&window.hours, hour - 23, hour),
        })
    }

    /// Keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.borrow().len()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_572_800_000; // a UTC midnight: minute and hour boundaries

    #[test]
    fn windows_count_by_minute_hour_and_day() {
        let w = StatsWindows::new(8);
        w.record("T", 10, T0);
        w.record("T", 5, T0 + 30_000);
        // In the same minute: not yet a complete minute; hour and day see it.
        let now = w.sums("T", T0 + 59_000).expect("key");
        assert_eq!(now.minute, (0, 0));
        assert_eq!((now.hour, now.day), ((15, 2), (15, 2)));
        // Next minute: the last complete minute is that one.
        let later = w.sums("T", T0 + 61_000).expect("key");
        assert_eq!(later.minute, (15, 2));
        let body = later.to_body();
        assert_eq!(body.stats_minute.sum, 15);
        assert!((body.stats_minute.tps - 0.25).abs() < 1e-9);
        assert!((body.stats_minute.avgpt - 7.5).abs() < 1e-9);
        // Two hours on: out of the hour window, still in the day.
        let hours = w.sums("T", T0 + 2 * MS_PER_HOUR).expect("key");
        assert_eq!(
            (hours.minute, hours.hour, hours.day),
            ((0, 0), (0, 0), (15, 2))
        );
        // A day and an hour on: gone from every window (the key stays known).
        let gone = w.sums("T", T0 + 25 * MS_PER_HOUR).expect("key");
        assert_eq!(gone, WindowSums::default());
        assert!(w.sums("other", T0).is_none());
    }

    #[test]
    fn a_reused_slot_forgets_its_old_period() {
        let w = StatsWindows::new(8);
        w.record("T", 3, T0);
        // 61 minutes later the same minute slot is reused.
        let then = T0 + 61 * MS_PER_MINUTE;
        w.record("T", 4, then);
        let sums = w.sums("T", then).expect("key");
        assert_eq!(sums.hour, (4, 1));
        assert_eq!(sums.day, (7, 2));
    }

    #[test]
    fn keys_past_the_limit_are_not_counted_and_merge_adds_shards() {
        let w = StatsWindows::new(2);
        w.record("a", 1, T0);
        w.record("b", 1, T0);
        w.record("c", 1, T0);
        assert_eq!(w.len(), 2);
        assert!(w.sums("c", T0).is_none());
        let mut merged = w.sums("a", T0).expect("a");
        merged.merge(&w.sums("b", T0).expect("b"));
        assert_eq!(merged.day, (2, 2));
    }
}
