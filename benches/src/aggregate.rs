//! The coordinator's view of the stats: merges every thread's intervals into whole-run totals
//! and, once every thread has reported a second (or finished), into one [`Sample`] of the
//! time series. Holds at most a few seconds of unmerged intervals, so memory grows with the
//! run's length in seconds, never with its message count. Must never block or do I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::procwatch::ProcessProbe;
use crate::stats::{ns_to_us, IntervalStats};

/// Bytes per MB in every MB/s figure (decimal megabytes, as disk and network vendors count).
pub const BYTES_PER_MB: f64 = 1_000_000.0;

/// One second of the time series (the last one may be shorter).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start at the end of this interval.
    pub t_s: f64,
    /// Length of the interval, seconds.
    pub duration_s: f64,
    /// Messages handed to connections per second.
    pub sent_msgs_per_s: f64,
    /// Messages acknowledged per second.
    pub acked_msgs_per_s: f64,
    /// Acknowledged body MB per second (oneway: sent).
    pub send_mb_per_s: f64,
    /// Send latency p50 in this interval, µs.
    pub send_p50_us: Option<f64>,
    /// Send latency p99 in this interval, µs.
    pub send_p99_us: Option<f64>,
    /// Messages consumed per second.
    pub consumed_msgs_per_s: f64,
    /// Consumed body MB per second.
    pub consume_mb_per_s: f64,
    /// End-to-end latency p99 in this interval, µs.
    pub end_to_end_p99_us: Option<f64>,
    /// Errors in this interval.
    pub errors: u64,
    /// Messages acknowledged (oneway: sent) from the start to the end of this interval.
    pub acked_total: u64,
    /// The watched broker's resident memory at the end of this interval (`--broker-pid`).
    pub broker_rss_bytes: Option<u64>,
    /// The watched broker's CPU use during this interval, cores.
    pub broker_cpu_cores: Option<f64>,
}

fn percentile_us(histogram: &hdrhistogram::Histogram<u64>, quantile: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| ns_to_us(histogram.value_at_quantile(quantile)))
}

impl Sample {
    fn of(
        index: u64,
        end: Duration,
        stats: &IntervalStats,
        acked_counts: bool,
        acked_total: u64,
    ) -> Self {
        let start = index as f64;
        let duration = (end.as_secs_f64() - start).clamp(1e-3, 1.0);
        let per_second = |value: u64| value as f64 / duration;
        let send_bytes = if acked_counts {
            stats.acked.bytes
        } else {
            stats.sent.bytes
        };
        Self {
            t_s: start + duration,
            duration_s: duration,
            sent_msgs_per_s: per_second(stats.sent.messages),
            acked_msgs_per_s: per_second(stats.acked.messages),
            send_mb_per_s: per_second(send_bytes) / BYTES_PER_MB,
            send_p50_us: percentile_us(&stats.send_latency, 0.5),
            send_p99_us: percentile_us(&stats.send_latency, 0.99),
            consumed_msgs_per_s: per_second(stats.consumed.messages),
            consume_mb_per_s: per_second(stats.consumed.bytes) / BYTES_PER_MB,
            end_to_end_p99_us: percentile_us(&stats.end_to_end_latency, 0.99),
            errors: stats.errors.total(),
            acked_total,
            broker_rss_bytes: None,
            broker_cpu_cores: None,
        }
    }
}

struct PendingSecond {
    stats: IntervalStats,
    end: Duration,
}

/// Merges thread intervals; see the module doc.
pub struct Aggregator {
    overall: IntervalStats,
    pending: BTreeMap<u64, PendingSecond>,
    /// Per thread: the next interval index it has not reported yet.
    reported_up_to: Vec<u64>,
    finished: Vec<bool>,
    samples: Vec<Sample>,
    /// Whether send throughput counts acknowledged messages (false for oneway).
    acked_counts: bool,
    /// Acknowledged (oneway: sent) messages of the completed samples.
    acked_total: u64,
    probe: Option<ProcessProbe>,
}

impl Aggregator {
    /// An aggregator for `threads` threads.
    ///
    /// # Panics
    /// If `threads` is 0.
    #[must_use]
    pub fn new(threads: usize, acked_counts: bool) -> Self {
        assert!(threads > 0, "at least one thread");
        Self {
            overall: IntervalStats::new(),
            pending: BTreeMap::new(),
            reported_up_to: vec![0; threads],
            finished: vec![false; threads],
            samples: Vec::new(),
            acked_counts,
            acked_total: 0,
            probe: None,
        }
    }

    /// Reads `probe` (the broker process) as each sample completes.
    #[must_use]
    pub fn with_probe(mut self, probe: Option<ProcessProbe>) -> Self {
        self.probe = probe;
        self
    }

    /// Adds thread `thread`'s interval `index` ending at `end`; returns the samples this
    /// completed.
    ///
    /// # Panics
    /// If the thread reports an interval older than one it already reported, or after it
    /// finished (a bug in the worker).
    pub fn add(
        &mut self,
        thread: usize,
        index: u64,
        end: Duration,
        stats: &IntervalStats,
    ) -> Vec<Sample> {
        assert!(!self.finished[thread], "interval after finish");
        assert!(
            index + 1 >= self.reported_up_to[thread],
            "intervals go forward"
        );
        self.overall.merge(stats);
        let pending = self.pending.entry(index).or_insert_with(|| PendingSecond {
            stats: IntervalStats::new(),
            end,
        });
        pending.stats.merge(stats);
        pending.end = pending.end.max(end);
        self.reported_up_to[thread] = self.reported_up_to[thread].max(index + 1);
        self.complete()
    }

    /// Marks `thread` finished (it reports nothing more); returns the samples this completed.
    pub fn finish(&mut self, thread: usize) -> Vec<Sample> {
        self.finished[thread] = true;
        self.complete()
    }

    fn complete(&mut self) -> Vec<Sample> {
        let mut done = Vec::new();
        while let Some((&index, _)) = self.pending.first_key_value() {
            let all_reported = self
                .reported_up_to
                .iter()
                .zip(&self.finished)
                .all(|(reported, finished)| *finished || *reported > index);
            if !all_reported {
                break;
            }
            let second = self.pending.remove(&index).expect("first key exists");
            self.acked_total += if self.acked_counts {
                second.stats.acked.messages
            } else {
                second.stats.sent.messages
            };
            let mut sample = Sample::of(
                index,
                second.end,
                &second.stats,
                self.acked_counts,
                self.acked_total,
            );
            if let Some(reading) = self.probe.as_mut().and_then(ProcessProbe::read) {
                sample.broker_rss_bytes = Some(reading.rss_bytes);
                sample.broker_cpu_cores = reading.cpu_cores;
            }
            self.samples.push(sample.clone());
            done.push(sample);
        }
        done
    }

    /// Whole-run totals so far.
    #[must_use]
    pub fn overall(&self) -> &IntervalStats {
        &self.overall
    }

    /// The time series so far.
    #[must_use]
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Totals and time series.
    #[must_use]
    pub fn into_parts(self) -> (IntervalStats, Vec<Sample>) {
        (self.overall, self.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record_latency;

    fn interval(messages: u64) -> IntervalStats {
        let mut stats = IntervalStats::new();
        stats.sent.add(messages, messages * 100);
        stats.acked.add(messages, messages * 100);
        record_latency(&mut stats.send_latency, 50_000);
        stats
    }

    #[test]
    fn a_second_completes_when_every_thread_reported_it() {
        let mut aggregator = Aggregator::new(2, true);
        assert!(aggregator
            .add(0, 0, Duration::from_secs(1), &interval(10))
            .is_empty());
        let done = aggregator.add(1, 0, Duration::from_secs(1), &interval(30));
        assert_eq!(done.len(), 1);
        assert!((done[0].acked_msgs_per_s - 40.0).abs() < 1e-9);
        assert_eq!(done[0].acked_total, 40);
        assert_eq!(done[0].broker_rss_bytes, None);
        assert!((done[0].send_mb_per_s - 4000.0 / BYTES_PER_MB).abs() < 1e-12);
        assert!((done[0].send_p99_us.expect("latency") - 50.0).abs() < 0.1);
        // Thread 0 finishes early with a partial second 1; thread 1 goes on.
        assert!(aggregator
            .add(0, 1, Duration::from_millis(1500), &interval(5))
            .is_empty());
        assert!(aggregator.finish(0).is_empty());
        let done = aggregator.add(1, 1, Duration::from_secs(2), &interval(5));
        assert_eq!(done.len(), 1);
        assert!((done[0].duration_s - 1.0).abs() < 1e-9);
        // Thread 0 has finished, so thread 1's last, partial interval completes at once.
        let done = aggregator.add(1, 2, Duration::from_millis(2250), &interval(1));
        assert_eq!(done.len(), 1);
        assert!((done[0].duration_s - 0.25).abs() < 1e-9);
        assert!((done[0].acked_msgs_per_s - 4.0).abs() < 1e-9);
        assert_eq!(done[0].acked_total, 51);
        assert!(aggregator.finish(1).is_empty());
        let (overall, samples) = aggregator.into_parts();
        assert_eq!(overall.acked.messages, 51);
        assert_eq!(samples.len(), 3);
    }
}
