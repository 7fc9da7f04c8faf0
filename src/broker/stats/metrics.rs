//! Per-shard Prometheus collectors: messages and bytes in per topic, out per (topic, consumer
//! group), the message size histogram and the send/pull RPC latency histograms per (request
//! code, response code). Owned by one shard (`Cell`/`RefCell`, no locks, no atomics); read
//! through a [`MetricsSnapshot`] that crosses the mesh at scrape time and is merged there
//! ([`MetricsSnapshot::merge`]).
//!
//! Cardinality is bounded: a shard keeps at most [`METRICS_TOPICS_MAX`] topics and
//! [`METRICS_CONSUMER_SERIES_MAX`] (topic, group) pairs; traffic of any further one is
//! counted under [`OVERFLOW_LABEL`], so totals stay exact.
//!
//! Must never: allocate on the hot path except for the first message of a new series, take a
//! lock, read a clock (the caller passes the elapsed time), or hold a borrow across an
//! `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::RemotingCommand;

pub use crate::limits::{
    METRICS_CONSUMER_SERIES_MAX, METRICS_LAG_READS_IN_FLIGHT, METRICS_LAG_READS_MAX,
    METRICS_RPC_SERIES_MAX, METRICS_TOPICS_MAX,
};

/// Label value that stands for every topic or group past the cardinality cap.
pub const OVERFLOW_LABEL: &str = "_other";

/// Upper bounds (microseconds) of the latency buckets: 0.1 ms to 30 s (RPC and flush).
pub const LATENCY_BOUNDS_MICROS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Upper bounds (bytes) of the message size buckets: RocketMQ's 1 KiB .. 4 MiB and between.
pub const MESSAGE_SIZE_BOUNDS_BYTES: &[u64] = &[
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    16 << 20,
];

const _: () = {
    assert!(LATENCY_BOUNDS_MICROS.len() < 32 && MESSAGE_SIZE_BOUNDS_BYTES.len() < 32);
    assert!(LATENCY_BOUNDS_MICROS[0] > 0 && MESSAGE_SIZE_BOUNDS_BYTES[0] > 0);
};

/// A fixed-bucket histogram owned by one shard: one `Cell` per bucket (the last is `+Inf`).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: Box<[Cell<u64>]>,
    sum: Cell<u64>,
}

impl Histogram {
    /// An empty histogram over `bounds` (strictly increasing upper bounds).
    ///
    /// # Panics
    /// If `bounds` is empty or not strictly increasing (a programming error).
    #[must_use]
    pub fn new(bounds: &'static [u64]) -> Self {
        assert!(!bounds.is_empty(), "a histogram has buckets");
        assert!(
            bounds.windows(2).all(|pair| pair[0] < pair[1]),
            "bucket bounds increase"
        );
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0),
        }
    }

    /// Counts one observation of `value`.
    pub fn record(&self, value: u64) {
        let index = self.bounds.partition_point(|bound| *bound < value);
        let cell = &self.counts[index];
        cell.set(cell.get() + 1);
        self.sum.set(self.sum.get().saturating_add(value));
    }

    /// The counts so far.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(Cell::get).collect(),
            sum: self.sum.get(),
        }
    }
}

/// A histogram's counts at one moment (per bucket, not cumulative; the last is `+Inf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the finite buckets.
    pub bounds: &'static [u64],
    /// Observations per bucket (`bounds.len() + 1` entries).
    pub counts: Vec<u64>,
    /// Sum of the observed values.
    pub sum: u64,
}

impl HistogramSnapshot {
    /// An empty snapshot over `bounds`.
    #[must_use]
    pub fn empty(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0,
        }
    }

    /// Observations in all buckets.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another shard's counts (same buckets).
    ///
    /// # Panics
    /// If the buckets differ (two collectors of one series built differently).
    pub fn merge(&mut self, other: &Self) {
        assert_eq!(self.bounds, other.bounds, "merged histograms share buckets");
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum = self.sum.saturating_add(other.sum);
    }
}

/// Messages and bytes of one series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages.
    pub messages: u64,
    /// Message body bytes.
    pub bytes: u64,
}

impl Traffic {
    fn add(&mut self, other: Self) {
        self.messages += other.messages;
        self.bytes += other.bytes;
    }
}

/// A capped map of traffic series: at most `cap` keys, the rest summed in `overflow`.
#[derive(Debug)]
struct SeriesMap<K> {
    cap: usize,
    series: HashMap<K, Traffic>,
    overflow: Traffic,
}

impl<K: std::hash::Hash + Eq> SeriesMap<K> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            series: HashMap::new(),
            overflow: Traffic::default(),
        }
    }
}

/// Pulled traffic by topic, then consumer group; at most [`METRICS_CONSUMER_SERIES_MAX`]
/// pairs, the rest summed in `overflow`.
#[derive(Debug, Default)]
struct ConsumedMap {
    series: HashMap<String, HashMap<String, Traffic>>,
    pairs: usize,
    overflow: Traffic,
}

/// One shard's Prometheus collectors.
#[derive(Debug)]
pub struct ShardMetrics {
    enabled: Cell<bool>,
    topics_in: RefCell<SeriesMap<String>>,
    consumed: RefCell<ConsumedMap>,
    message_size: Histogram,
    rpc: RefCell<HashMap<(i32, i32), Histogram>>,
    rpc_overflow: Cell<u64>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardMetrics {
    /// Collectors that record nothing until [`ShardMetrics::set_enabled`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            enabled: Cell::new(false),
            topics_in: RefCell::new(SeriesMap::new(METRICS_TOPICS_MAX)),
            consumed: RefCell::new(ConsumedMap::default()),
            message_size: Histogram::new(MESSAGE_SIZE_BOUNDS_BYTES),
            rpc: RefCell::new(HashMap::new()),
            rpc_overflow: Cell::new(0),
        }
    }

    /// Turns recording on (the exporter is configured) or off (no cost on the hot path).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.set(enabled);
    }

    /// Whether anything is recorded.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled.get()
    }

    /// Counts a stored send: one message per body size `sizes` yields.
    pub fn record_in(&self, topic: &str, sizes: impl IntoIterator<Item = u64>) {
        if !self.enabled() {
            return;
        }
        let mut traffic = Traffic::default();
        for size in sizes {
            self.message_size.record(size);
            traffic.messages += 1;
            traffic.bytes += size;
        }
        if traffic.messages == 0 {
            return;
        }
        let mut map = self.topics_in.borrow_mut();
        if let Some(series) = map.series.get_mut(topic) {
            series.add(traffic);
        } else if map.series.len() < map.cap {
            map.series.insert(topic.to_owned(), traffic);
        } else {
            map.overflow.add(traffic);
        }
    }

    /// Counts messages a pull of `group` returned from `topic`.
    pub fn record_out(&self, topic: &str, group: &str, traffic: Traffic) {
        if !self.enabled() || traffic.messages == 0 {
            return;
        }
        let mut map = self.consumed.borrow_mut();
        let map = &mut *map;
        // Nested by topic then group, so a known pair is found without allocating a key.
        if let Some(series) = map
            .series
            .get_mut(topic)
            .and_then(|groups| groups.get_mut(group))
        {
            series.add(traffic);
        } else if map.pairs < METRICS_CONSUMER_SERIES_MAX {
            map.series
                .entry(topic.to_owned())
                .or_default()
                .insert(group.to_owned(), traffic);
            map.pairs += 1;
        } else {
            map.overflow.add(traffic);
        }
    }

    /// Counts one send or pull RPC answered with `response` after `elapsed`.
    pub fn record_rpc(&self, request: RequestCode, response: ResponseCode, elapsed: Duration) {
        if !self.enabled() {
            return;
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let key = (request.value(), response.value());
        let mut rpc = self.rpc.borrow_mut();
        if let Some(histogram) = rpc.get(&key) {
            histogram.record(micros);
        } else if rpc.len() < METRICS_RPC_SERIES_MAX {
            let histogram = Histogram::new(LATENCY_BOUNDS_MICROS);
            histogram.record(micros);
            rpc.insert(key, histogram);
        } else {
            self.rpc_overflow.set(self.rpc_overflow.get() + 1);
        }
    }

    /// What this shard counted so far.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let topics_in = self.topics_in.borrow();
        let consumed = self.consumed.borrow();
        MetricsSnapshot {
            topics_in: topics_in
                .series
                .iter()
                .map(|(topic, traffic)| (topic.clone(), *traffic))
                .collect(),
            topics_in_overflow: topics_in.overflow,
            consumed: consumed
                .series
                .iter()
                .flat_map(|(topic, groups)| {
                    groups
                        .iter()
                        .map(|(group, traffic)| ((topic.clone(), group.clone()), *traffic))
                })
                .collect(),
            consumed_overflow: consumed.overflow,
            message_size: self.message_size.snapshot(),
            rpc: self
                .rpc
                .borrow()
                .iter()
                .map(|(key, histogram)| (*key, histogram.snapshot()))
                .collect(),
            rpc_overflow: self.rpc_overflow.get(),
        }
    }
}

/// The collectors of one shard (or, merged, of all) at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Messages and bytes stored, per topic.
    pub topics_in: HashMap<String, Traffic>,
    /// Stored traffic of topics past the cap.
    pub topics_in_overflow: Traffic,
    /// Messages and bytes pulled, per (topic, consumer group).
    pub consumed: HashMap<(String, String), Traffic>,
    /// Pulled traffic of pairs past the cap.
    pub consumed_overflow: Traffic,
    /// Body sizes of stored messages.
    pub message_size: HistogramSnapshot,
    /// Send and pull latency (microseconds) per (request code, response code).
    pub rpc: HashMap<(i32, i32), HistogramSnapshot>,
    /// RPCs not counted because [`METRICS_RPC_SERIES_MAX`] pairs were taken.
    pub rpc_overflow: u64,
}

impl Default for MetricsSnapshot {
    fn default() -> Self {
        Self {
            topics_in: HashMap::new(),
            topics_in_overflow: Traffic::default(),
            consumed: HashMap::new(),
            consumed_overflow: Traffic::default(),
            message_size: HistogramSnapshot::empty(MESSAGE_SIZE_BOUNDS_BYTES),
            rpc: HashMap::new(),
            rpc_overflow: 0,
        }
    }
}

impl MetricsSnapshot {
    /// Adds another shard's snapshot; series past the caps (the union of shards may exceed
    /// them) go to the overflow series.
    pub fn merge(&mut self, other: Self) {
        for (topic, traffic) in other.topics_in {
            merge_capped(
                &mut self.topics_in,
                &mut self.topics_in_overflow,
                METRICS_TOPICS_MAX,
                topic,
                traffic,
            );
        }
        self.topics_in_overflow.add(other.topics_in_overflow);
        for (key, traffic) in other.consumed {
            merge_capped(
                &mut self.consumed,
                &mut self.consumed_overflow,
                METRICS_CONSUMER_SERIES_MAX,
                key,
                traffic,
            );
        }
        self.consumed_overflow.add(other.consumed_overflow);
        self.message_size.merge(&other.message_size);
        for (key, histogram) in other.rpc {
            match self.rpc.get_mut(&key) {
                Some(mine) => mine.merge(&histogram),
                None => {
                    self.rpc.insert(key, histogram);
                }
            }
        }
        self.rpc_overflow += other.rpc_overflow;
    }
}

fn merge_capped<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Traffic>,
    overflow: &mut Traffic,
    cap: usize,
    key: K,
    traffic: Traffic,
) {
    let len = map.len();
    match map.get_mut(&key) {
        Some(series) => series.add(traffic),
        None if len < cap => {
            map.insert(key, traffic);
        }
        None => overflow.add(traffic),
    }
}

/// The extFields key of the topic in a send request (`topic`, or `b` in the V2 form).
#[must_use]
pub fn send_topic(request: &RemotingCommand) -> Option<&str> {
    match request.request_code() {
        RequestCode::SendMessage => request.ext("topic"),
        _ => request.ext("b").or_else(|| request.ext("topic")),
    }
}

/// Body sizes of the messages in a send: the whole body for a single message; for a batch,
/// each encoded message's BODYLEN (TOTALSIZE at 0, BODYLEN at 16 of each entry), at most
/// `stored` of them (the walk is bounded by the body, like the store's own). Stops at anything
/// that is not a whole entry. Allocation-free.
pub fn message_sizes(request: &RemotingCommand, stored: usize) -> impl Iterator<Item = u64> + '_ {
    let batch = request.request_code() == RequestCode::SendBatchMessage;
    let single = (!batch).then_some(request.body.len() as u64);
    let body = &request.body[..];
    let mut position = 0;
    let walked = std::iter::from_fn(move || {
        let head = body.get(position..position + 20)?;
        let total = i32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
        let length = i32::from_be_bytes(head[16..20].try_into().expect("4 bytes"));
        let (Ok(total), Ok(length)) = (usize::try_from(total), u64::try_from(length)) else {
            return None;
        };
        if total < 20 || total > body.len() - position {
            return None;
        }
        position += total;
        Some(length)
    })
    .take(if batch { stored } else { 0 });
    single.into_iter().chain(walked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_net::ExtFields;

    #[test]
    fn histograms_bucket_by_upper_bound_and_merge() {
        let histogram = Histogram::new(&[10, 100]);
        for value in [0, 10, 11, 100, 101, 5_000] {
            histogram.record(value);
        }
        let mut snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts, vec![2, 2, 2]);
        assert_eq!(snapshot.sum, 5_222);
        assert_eq!(snapshot.count(), 6);
        snapshot.merge(&histogram.snapshot());
        assert_eq!(snapshot.counts, vec![4, 4, 4]);
        assert_eq!(snapshot.sum, 10_444);
    }

    #[test]
    fn disabled_collectors_record_nothing() {
        let metrics = ShardMetrics::new();
        metrics.record_in("T", [10]);
        metrics.record_rpc(
            RequestCode::SendMessage,
            ResponseCode::Success,
            Duration::from_millis(1),
        );
        assert_eq!(metrics.snapshot(), MetricsSnapshot::default());
    }

    #[test]
    fn series_past_the_cap_are_summed_as_overflow() {
        let metrics = ShardMetrics::new();
        metrics.set_enabled(true);
        for index in 0..METRICS_TOPICS_MAX + 3 {
            metrics.record_in(&format!("T{index}"), [100, 200]);
        }
        metrics.record_in("T0", [1]);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.topics_in.len(), METRICS_TOPICS_MAX);
        assert_eq!(
            snapshot.topics_in["T0"],
            Traffic {
                messages: 3,
                bytes: 301
            }
        );
        assert_eq!(
            snapshot.topics_in_overflow,
            Traffic {
                messages: 6,
                bytes: 900
            }
        );
        assert_eq!(
            snapshot.message_size.count(),
            2 * (METRICS_TOPICS_MAX as u64 + 3) + 1
        );
    }

    #[test]
    fn shards_merge_and_the_union_keeps_the_cap() {
        let (a, b) = (ShardMetrics::new(), ShardMetrics::new());
        a.set_enabled(true);
        b.set_enabled(true);
        a.record_out(
            "T",
            "G",
            Traffic {
                messages: 2,
                bytes: 20,
            },
        );
        b.record_out(
            "T",
            "G",
            Traffic {
                messages: 3,
                bytes: 30,
            },
        );
        b.record_in("U", [5]);
        a.record_rpc(
            RequestCode::PullMessage,
            ResponseCode::PullNotFound,
            Duration::from_micros(300),
        );
        b.record_rpc(
            RequestCode::PullMessage,
            ResponseCode::PullNotFound,
            Duration::from_secs(60),
        );
        let mut merged = a.snapshot();
        merged.merge(b.snapshot());
        assert_eq!(
            merged.consumed[&("T".to_owned(), "G".to_owned())],
            Traffic {
                messages: 5,
                bytes: 50
            }
        );
        assert_eq!(merged.topics_in["U"].messages, 1);
        let rpc = &merged.rpc[&(11, 19)];
        assert_eq!(rpc.count(), 2);
        assert_eq!(rpc.counts[2], 1, "300 us is in the 0.5 ms bucket");
        assert_eq!(*rpc.counts.last().expect("+Inf"), 1, "60 s is past 30 s");

        let mut many = MetricsSnapshot::default();
        for index in 0..METRICS_TOPICS_MAX {
            many.topics_in.insert(
                format!("A{index}"),
                Traffic {
                    messages: 1,
                    bytes: 1,
                },
            );
        }
        let mut other = MetricsSnapshot::default();
        other.topics_in.insert(
            "B".to_owned(),
            Traffic {
                messages: 4,
                bytes: 4,
            },
        );
        many.merge(other);
        assert_eq!(many.topics_in.len(), METRICS_TOPICS_MAX);
        assert_eq!(many.topics_in_overflow.messages, 4);
    }

    #[test]
    fn batch_bodies_are_walked_for_each_message_size() {
        let mut body = Vec::new();
        for length in [3usize, 10] {
            let total = 20 + length + 2;
            let mut entry = vec![0u8; total];
            entry[..4].copy_from_slice(&i32::try_from(total).expect("small").to_be_bytes());
            entry[16..20].copy_from_slice(&i32::try_from(length).expect("small").to_be_bytes());
            body.extend_from_slice(&entry);
        }
        let request = RemotingCommand::request(RequestCode::SendBatchMessage, ExtFields::new())
            .with_body(body.clone());
        assert_eq!(message_sizes(&request, 2).collect::<Vec<_>>(), vec![3, 10]);
        assert_eq!(message_sizes(&request, 1).collect::<Vec<_>>(), vec![3]);
        body.truncate(body.len() - 1);
        let truncated = RemotingCommand::request(RequestCode::SendBatchMessage, ExtFields::new())
            .with_body(body);
        assert_eq!(
            message_sizes(&truncated, 2).collect::<Vec<_>>(),
            vec![3],
            "a partial entry is not counted"
        );
        let single = RemotingCommand::request(RequestCode::SendMessageV2, ExtFields::new())
            .with_body(vec![0; 7]);
        assert_eq!(message_sizes(&single, 1).collect::<Vec<_>>(), vec![7]);
    }
}
