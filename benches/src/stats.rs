//! What the harness counts: message/byte/request counters, latency histograms (HDR, ns) and
//! bounded tallies of errors and notable statuses, per interval. Each harness thread fills
//! one [`IntervalStats`] and hands it to the coordinator once a second; the coordinator merges
//! them into per-second samples and whole-run totals.
//! Memory is O(1) in the number of messages: counters and fixed-size histograms only. Must
//! never keep anything per message, nor let a tally grow past [`TALLY_KINDS_MAX`].

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram holds, ns (60 s): far above any timeout the harness uses, so a
/// saturated value means something is broken. Larger values are clamped to it.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// Significant decimal digits of every latency histogram (0.1% value resolution).
pub const LATENCY_SIGFIG: u8 = 3;

/// Distinct kinds one [`Tally`] keeps; further kinds are counted under [`TALLY_OTHER`]. A
/// misbehaving broker could answer with any response code; this keeps the map bounded.
pub const TALLY_KINDS_MAX: usize = 64;

/// The kind under which a full [`Tally`] counts new kinds.
pub const TALLY_OTHER: &str = "other";

/// Percentiles every latency summary reports, in percent.
pub const SUMMARY_PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// A fresh latency histogram in nanoseconds.
#[must_use]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG)
        .expect("constant bounds 1 ns..60 s with 3 significant figures are valid")
}

/// Records `nanos` into `histogram`, clamped to `1..=LATENCY_NS_MAX`.
pub fn record_latency(histogram: &mut Histogram<u64>, nanos: u64) {
    let value = nanos.clamp(1, LATENCY_NS_MAX);
    histogram
        .record(value)
        .expect("a value clamped to the histogram's bounds always records");
}

/// Messages, bytes (message bodies) and requests of one kind of operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Messages.
    pub messages: u64,
    /// Body bytes of those messages.
    pub bytes: u64,
    /// Requests that carried them (a batch is one request).
    pub requests: u64,
}

impl Counters {
    /// Adds one request of `messages` messages and `bytes` body bytes.
    pub fn add(&mut self, messages: u64, bytes: u64) {
        self.messages += messages;
        self.bytes += bytes;
        self.requests += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.requests += other.requests;
    }
}

/// Counts per kind (`send:timeout`, `pull:code:19`, ...), at most [`TALLY_KINDS_MAX`] kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tally {
    counts: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds `count` under `kind`.
    pub fn add(&mut self, kind: &str, count: u64) {
        if let Some(existing) = self.counts.get_mut(kind) {
            *existing += count;
            return;
        }
        let key = if self.counts.len() < TALLY_KINDS_MAX - 1 {
            kind
        } else {
            TALLY_OTHER
        };
        *self.counts.entry(key.to_owned()).or_insert(0) += count;
        assert!(self.counts.len() <= TALLY_KINDS_MAX);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (kind, count) in &other.counts {
            self.add(kind, *count);
        }
    }

    /// The count under `kind` (0 if absent).
    #[must_use]
    pub fn get(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }

    /// Sum of all counts.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Every (kind, count), sorted by kind.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts
            .iter()
            .map(|(kind, count)| (kind.as_str(), *count))
    }
}

/// Everything one harness thread measured during one interval (or, merged, a whole run).
#[derive(Debug, Clone)]
pub struct IntervalStats {
    /// Messages handed to a connection (every send mode).
    pub sent: Counters,
    /// Messages the broker acknowledged as stored (sync and async only).
    pub acked: Counters,
    /// Messages consumers received.
    pub consumed: Counters,
    /// Send request → response, ns (sync and async; one sample per request).
    pub send_latency: Histogram<u64>,
    /// Born timestamp → received by a consumer, ns (1 ms resolution: the born timestamp is
    /// in ms). One sample per message.
    pub end_to_end_latency: Histogram<u64>,
    /// Pull request → response, ns, long-poll holds included.
    pub pull_latency: Histogram<u64>,
    /// Failures by kind.
    pub errors: Tally,
    /// Notable non-error outcomes by kind (pull statuses, stored-but-not-flushed codes).
    pub events: Tally,
}

impl Default for IntervalStats {
    fn default() -> Self {
        Self::new()
    }
}

impl IntervalStats {
    /// Empty stats.
    #[must_use]
    pub fn new() -> Self {
        Self {
            sent: Counters::default(),
            acked: Counters::default(),
            consumed: Counters::default(),
            send_latency: new_histogram(),
            end_to_end_latency: new_histogram(),
            pull_latency: new_histogram(),
            errors: Tally::default(),
            events: Tally::default(),
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.sent.merge(&other.sent);
        self.acked.merge(&other.acked);
        self.consumed.merge(&other.consumed);
        for (into, from) in [
            (&mut self.send_latency, &other.send_latency),
            (&mut self.end_to_end_latency, &other.end_to_end_latency),
            (&mut self.pull_latency, &other.pull_latency),
        ] {
            into.add(from)
                .expect("histograms with identical bounds always merge");
        }
        self.errors.merge(&other.errors);
        self.events.merge(&other.events);
    }
}

/// Percentiles of one latency distribution, µs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub samples: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p99_9_us: f64,
    /// 99.99th percentile, µs.
    pub p99_99_us: f64,
    /// Largest sample, µs.
    pub max_us: f64,
}

/// Nanoseconds to microseconds for reporting.
#[must_use]
pub fn ns_to_us(nanos: u64) -> f64 {
    // Latencies stay below LATENCY_NS_MAX (6e10), exactly representable in f64.
    nanos as f64 / 1_000.0
}

impl LatencySummary {
    /// The summary of `histogram`, or `None` if it holds no sample.
    #[must_use]
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let at = |percent: f64| ns_to_us(histogram.value_at_quantile(percent / 100.0));
        let [p50, p90, p99, p99_9, p99_99] = SUMMARY_PERCENTILES;
        Some(Self {
            samples: histogram.len(),
            mean_us: histogram.mean() / 1_000.0,
            p50_us: at(p50),
            p90_us: at(p90),
            p99_us: at(p99),
            p99_9_us: at(p99_9),
            p99_99_us: at(p99_99),
            max_us: ns_to_us(histogram.max()),
        })
    }
}

/// One point of a latency percentile curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PercentilePoint {
    /// Percentile, in percent (0..=100).
    pub percentile: f64,
    /// Latency at that percentile, µs.
    pub latency_us: f64,
}

/// Steps per decade of the percentile curve (HdrHistogram's "nines" axis).
pub const CURVE_STEPS_PER_NINE: u32 = 10;
/// Deepest percentile of the curve: 99.999% (five nines).
pub const CURVE_NINES_MAX: u32 = 5;

/// The percentile curve of `histogram`: points at 0%, then evenly spaced on the
/// `log10(1 / (1 - q))` axis up to 99.999%, then the max (100%). Empty if no sample.
#[must_use]
pub fn percentile_curve(histogram: &Histogram<u64>) -> Vec<PercentilePoint> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let steps = CURVE_STEPS_PER_NINE * CURVE_NINES_MAX;
    let mut points = Vec::with_capacity(steps as usize + 2);
    for step in 0..=steps {
        let nines = f64::from(step) / f64::from(CURVE_STEPS_PER_NINE);
        let quantile = 1.0 - 10f64.powf(-nines);
        points.push(PercentilePoint {
            percentile: quantile * 100.0,
            latency_us: ns_to_us(histogram.value_at_quantile(quantile)),
        });
    }
    points.push(PercentilePoint {
        percentile: 100.0,
        latency_us: ns_to_us(histogram.max()),
    });
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_curve_follow_the_samples() {
        let mut histogram = new_histogram();
        for micros in 1..=1000_u64 {
            record_latency(&mut histogram, micros * 1_000);
        }
        let summary = LatencySummary::of(&histogram).expect("samples");
        assert_eq!(summary.samples, 1000);
        assert!((summary.p50_us - 500.0).abs() <= 1.0, "{summary:?}");
        assert!((summary.p99_us - 990.0).abs() <= 1.0, "{summary:?}");
        assert!((summary.max_us - 1000.0).abs() <= 1.0, "{summary:?}");
        let curve = percentile_curve(&histogram);
        assert_eq!(curve.len(), 52);
        assert!(curve.windows(2).all(|w| w[0].latency_us <= w[1].latency_us));
        assert!(curve.windows(2).all(|w| w[0].percentile <= w[1].percentile));
        assert!(LatencySummary::of(&new_histogram()).is_none());
        assert!(percentile_curve(&new_histogram()).is_empty());
    }

    #[test]
    fn out_of_range_latencies_are_clamped() {
        let mut histogram = new_histogram();
        record_latency(&mut histogram, 0);
        record_latency(&mut histogram, u64::MAX);
        assert_eq!(histogram.len(), 2);
        assert!(histogram.max() >= LATENCY_NS_MAX);
    }

    #[test]
    fn tally_is_bounded() {
        let mut tally = Tally::default();
        for code in 0..200 {
            tally.add(&format!("send:code:{code}"), 1);
        }
        assert_eq!(tally.iter().count(), TALLY_KINDS_MAX);
        assert_eq!(tally.total(), 200);
        assert_eq!(tally.get(TALLY_OTHER), 200 - (TALLY_KINDS_MAX as u64 - 1));
        tally.add("send:code:0", 5);
        assert_eq!(tally.get("send:code:0"), 6);
    }

    #[test]
    fn merge_adds_everything() {
        let mut left = IntervalStats::new();
        left.sent.add(10, 100);
        record_latency(&mut left.send_latency, 5_000);
        left.errors.add("send:timeout", 1);
        let mut right = IntervalStats::new();
        right.sent.add(5, 50);
        right.consumed.add(3, 30);
        record_latency(&mut right.send_latency, 7_000);
        record_latency(&mut right.end_to_end_latency, 1_000_000);
        right.errors.add("send:timeout", 2);
        left.merge(&right);
        assert_eq!(
            left.sent,
            Counters {
                messages: 15,
                bytes: 150,
                requests: 2
            }
        );
        assert_eq!(left.consumed.messages, 3);
        assert_eq!(left.send_latency.len(), 2);
        assert_eq!(left.end_to_end_latency.len(), 1);
        assert_eq!(left.errors.get("send:timeout"), 3);
    }
}
