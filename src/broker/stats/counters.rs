//! Per-shard traffic counters: messages put and got, a ring of per-second counts for TPS, and
//! UTC-day marks for Java's "today/yesterday morning" totals. Owned by one shard (`Cell`s, no
//! locks); read through a [`TrafficSnapshot`] that crosses the mesh and is summed over shards.
//! Must never: allocate or take a lock while recording.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;

/// TPS windows in seconds, as Java's `putTps`/`getTransferedTps` report them ("10s 1min 10min").
pub const TPS_WINDOWS_SECONDS: [i64; 3] = [10, 60, 600];

/// Per-second buckets each counter keeps: the longest TPS window plus the current, partly
/// filled second (never counted in a window).
pub const TPS_SLOTS: usize = 601;

const _: () = {
    assert!(
        TPS_SLOTS as i64 > TPS_WINDOWS_SECONDS[2],
        "the ring must hold the longest window plus the current second"
    );
    assert!(TPS_WINDOWS_SECONDS[0] < TPS_WINDOWS_SECONDS[1]);
    assert!(TPS_WINDOWS_SECONDS[1] < TPS_WINDOWS_SECONDS[2]);
};

const MS_PER_DAY: i64 = 86_400_000;

/// Smallest stored-message record (PROTOCOL.md §6.6, empty body, topic and properties); a
/// smaller TOTALSIZE in a pull body ends the count.
const RECORD_SIZE_MIN: usize = 91;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    second: i64,
    count: u64,
}

/// Which UTC day the counter is in, and how much it counted today and yesterday.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DayMark {
    day: i64,
    today: u64,
    yesterday: u64,
}

impl DayMark {
    /// Moves the mark to `day` (a clock that went backwards keeps the current day).
    fn roll(&mut self, day: i64) {
        if day <= self.day {
            return;
        }
        self.yesterday = if day == self.day + 1 { self.today } else { 0 };
        self.today = 0;
        self.day = day;
    }
}

/// One traffic counter of one shard (messages put, or messages got): a running total, a ring
/// of per-second counts for TPS, and UTC-day marks for Java's "today/yesterday morning" keys.
/// Recording is O(1) and allocation-free.
#[derive(Debug)]
pub struct TrafficCounter {
    total: Cell<u64>,
    slots: RefCell<Box<[Slot; TPS_SLOTS]>>,
    day: Cell<DayMark>,
}

/// What one counter says at one moment; summed over shards by [`TrafficSnapshot::merge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Messages since start.
    pub total: u64,
    /// Messages counted since the last UTC midnight.
    pub today: u64,
    /// Messages counted during the previous UTC day.
    pub yesterday: u64,
    /// Messages in each of [`TPS_WINDOWS_SECONDS`] (complete seconds only).
    pub windows: [u64; 3],
}

impl TrafficSnapshot {
    /// Adds another shard's snapshot.
    pub fn merge(&mut self, other: &Self) {
        self.total += other.total;
        self.today += other.today;
        self.yesterday += other.yesterday;
        for (mine, theirs) in self.windows.iter_mut().zip(other.windows) {
            *mine += theirs;
        }
    }

    /// The total at the last UTC midnight (Java `msg*TotalTodayMorning`).
    #[must_use]
    pub fn today_morning(&self) -> u64 {
        self.total.saturating_sub(self.today)
    }

    /// The total at the previous UTC midnight (Java `msg*TotalYesterdayMorning`).
    #[must_use]
    pub fn yesterday_morning(&self) -> u64 {
        self.today_morning().saturating_sub(self.yesterday)
    }

    /// `"tps10s tps1min tps10min"` as Java prints it; windows are cut to `uptime_seconds`
    /// so a young broker does not under-report.
    #[must_use]
    pub fn tps_text(&self, uptime_seconds: i64) -> String {
        let mut text = String::new();
        for (index, (count, window)) in self.windows.iter().zip(TPS_WINDOWS_SECONDS).enumerate() {
            let seconds = window.min(uptime_seconds).max(1);
            if index > 0 {
                text.push(' ');
            }
            let _ = write!(text, "{:.2}", *count as f64 / seconds as f64);
        }
        text
    }
}

impl Default for TrafficCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl TrafficCounter {
    /// A zeroed counter.
    #[must_use]
    pub fn new() -> Self {
        Self {
            total: Cell::new(0),
            slots: RefCell::new(Box::new([Slot::default(); TPS_SLOTS])),
            day: Cell::new(DayMark::default()),
        }
    }

    /// Counts `count` messages at `now_ms`.
    pub fn record(&self, count: u64, now_ms: i64) {
        if count == 0 {
            return;
        }
        self.total.set(self.total.get() + count);
        let second = now_ms.div_euclid(1000);
        {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[slot_index(second)];
            if slot.second != second {
                *slot = Slot { second, count: 0 };
            }
            slot.count += count;
        }
        let mut day = self.day.get();
        day.roll(now_ms.div_euclid(MS_PER_DAY));
        day.today += count;
        self.day.set(day);
        assert!(
            day.today <= self.total.get(),
            "today's count exceeds the total"
        );
    }

    /// The counter as of `now_ms`.
    #[must_use]
    pub fn snapshot(&self, now_ms: i64) -> TrafficSnapshot {
        let mut day = self.day.get();
        day.roll(now_ms.div_euclid(MS_PER_DAY));
        self.day.set(day);
        let now_second = now_ms.div_euclid(1000);
        let slots = self.slots.borrow();
        let mut windows = [0u64; 3];
        for (sum, window) in windows.iter_mut().zip(TPS_WINDOWS_SECONDS) {
            *sum = slots
                .iter()
                .filter(|slot| slot.second >= now_second - window && slot.second < now_second)
                .map(|slot| slot.count)
                .sum();
        }
        TrafficSnapshot {
            total: self.total.get(),
            today: day.today,
            yesterday: day.yesterday,
            windows,
        }
    }
}

fn slot_index(second: i64) -> usize {
    usize::try_from(second.rem_euclid(TPS_SLOTS as i64)).expect("rem_euclid is non-negative")
}

/// A shard's traffic counters.
#[derive(Debug)]
pub struct ShardStats {
    /// When the shard started, ms since the epoch.
    pub boot_timestamp_ms: i64,
    /// Messages stored by sends processed here.
    pub put: TrafficCounter,
    /// Messages returned by pulls processed here.
    pub got: TrafficCounter,
    /// Prometheus collectors (recording only when the exporter is on).
    pub metrics: super::metrics::ShardMetrics,
    /// Per-topic put windows (`TOPIC_PUT_NUMS`).
    pub topic_put: super::windows::StatsWindows,
    /// Per-`topic@group` got windows (`GROUP_GET_NUMS`).
    pub group_get: super::windows::StatsWindows,
}

impl ShardStats {
    /// Counters of a shard that starts at `boot_timestamp_ms`.
    #[must_use]
    pub fn new(boot_timestamp_ms: i64) -> Self {
        Self {
            boot_timestamp_ms,
            put: TrafficCounter::new(),
            got: TrafficCounter::new(),
            metrics: super::metrics::ShardMetrics::new(),
            topic_put: super::windows::StatsWindows::new(crate::limits::STATS_ITEM_KEYS_MAX),
            group_get: super::windows::StatsWindows::new(crate::limits::STATS_ITEM_KEYS_MAX),
        }
    }
}

/// Number of §6.6 records in a pull body (walks the TOTALSIZE fields; stops at anything that
/// is not a whole record).
#[must_use]
pub fn count_records(body: &[u8]) -> u64 {
    let mut position = 0;
    let mut count = 0;
    while let Some(size_bytes) = body.get(position..position + 4) {
        let size = i32::from_be_bytes(size_bytes.try_into().expect("4-byte slice"));
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        if size < RECORD_SIZE_MIN || size > body.len() - position {
            break;
        }
        position += size;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1000;

    #[test]
    fn windows_count_complete_seconds_only_and_expire() {
        let counter = TrafficCounter::new();
        let start = 1_700_000_000 * SECOND;
        counter.record(5, start);
        counter.record(3, start + 500);
        counter.record(7, start + 9 * SECOND);
        // The current second is not counted.
        let now = start + 9 * SECOND + 10;
        assert_eq!(counter.snapshot(now).windows, [8, 8, 8]);
        let now = start + 10 * SECOND;
        assert_eq!(counter.snapshot(now).windows, [15, 15, 15]);
        // After 11 s the first second left the 10 s window, after 61 s the 1 min window.
        assert_eq!(counter.snapshot(start + 11 * SECOND).windows, [7, 15, 15]);
        assert_eq!(counter.snapshot(start + 61 * SECOND).windows, [0, 7, 15]);
        assert_eq!(counter.snapshot(start + 700 * SECOND).windows, [0, 0, 0]);
        assert_eq!(counter.snapshot(start + 700 * SECOND).total, 15);
        // The slot of second 0 is reused 601 s later and starts from zero: the 10 min window
        // (seconds 2..=601) holds second 9's 7 and the new 2, not the old 8.
        counter.record(2, start + 601 * SECOND);
        assert_eq!(counter.snapshot(start + 602 * SECOND).windows, [2, 2, 9]);
        assert_eq!(counter.snapshot(start + 602 * SECOND).total, 17);
    }

    #[test]
    fn day_marks_roll_at_utc_midnight() {
        let counter = TrafficCounter::new();
        let day = 19_000 * MS_PER_DAY;
        counter.record(4, day + 10);
        counter.record(6, day + MS_PER_DAY - 1);
        let snapshot = counter.snapshot(day + MS_PER_DAY - 1);
        assert_eq!(
            (snapshot.total, snapshot.today, snapshot.yesterday),
            (10, 10, 0)
        );
        counter.record(1, day + MS_PER_DAY + 5);
        let snapshot = counter.snapshot(day + MS_PER_DAY + 6);
        assert_eq!((snapshot.today, snapshot.yesterday), (1, 10));
        assert_eq!(snapshot.today_morning(), 10);
        assert_eq!(snapshot.yesterday_morning(), 0);
        // Two idle days later both marks are empty and the mornings equal the total.
        let snapshot = counter.snapshot(day + 3 * MS_PER_DAY);
        assert_eq!((snapshot.today, snapshot.yesterday), (0, 0));
        assert_eq!(snapshot.today_morning(), 11);
        assert_eq!(snapshot.yesterday_morning(), 11);
    }

    #[test]
    fn snapshots_merge_and_tps_uses_uptime() {
        let mut a = TrafficSnapshot {
            total: 10,
            today: 4,
            yesterday: 3,
            windows: [10, 60, 600],
        };
        let b = TrafficSnapshot {
            total: 5,
            today: 5,
            yesterday: 0,
            windows: [10, 0, 0],
        };
        a.merge(&b);
        assert_eq!(a.total, 15);
        assert_eq!(a.today_morning(), 6);
        assert_eq!(a.yesterday_morning(), 3);
        assert_eq!(a.tps_text(10_000), "2.00 1.00 1.00");
        // Up for 5 s: every window divides by 5.
        assert_eq!(a.tps_text(5), "4.00 12.00 120.00");
        assert_eq!(TrafficSnapshot::default().tps_text(0), "0.00 0.00 0.00");
    }

    #[test]
    fn counts_whole_records_only() {
        let mut body = Vec::new();
        for size in [100usize, 91, 200] {
            let mut record = vec![0u8; size];
            record[..4].copy_from_slice(&i32::try_from(size).expect("small").to_be_bytes());
            body.extend_from_slice(&record);
        }
        assert_eq!(count_records(&body), 3);
        assert_eq!(count_records(&body[..body.len() - 1]), 2);
        assert_eq!(count_records(&[]), 0);
        assert_eq!(count_records(&[0, 0, 0, 5, 1, 2, 3, 4, 5]), 0);
        assert_eq!(count_records(&(-1i32).to_be_bytes()), 0);
    }
}
