//! Result records and histogram summaries shared by both runtime drivers.
//!
//! Owns: the typed, serialisable shape of one measurement (TCP round trips, O_DIRECT append,
//! write + fdatasync latency) and the conversion of an HDR histogram into percentiles.
//! Must never: measure anything itself or depend on a runtime.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::common::{ThreadUsage, MESSAGE_BYTES};

/// Highest latency the histograms can hold, in nanoseconds (60 s): far above any round trip or
/// fdatasync on a healthy machine, so a saturated value means something is broken.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// Significant decimal digits kept by every latency histogram.
pub const LATENCY_SIGFIG: u8 = 3;

/// A fresh latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG)
        .expect("constant bounds 1..60 s with 3 significant figures are valid")
}

/// Percentiles of one latency distribution, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        assert!(
            !histogram.is_empty(),
            "a latency summary needs at least one sample"
        );
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            samples: histogram.len(),
            mean_us: histogram.mean() / 1_000.0,
            p50_us: us(histogram.value_at_quantile(0.50)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        }
    }
}

/// CPU spent by one runtime thread on a test, per operation.
#[derive(Debug, Clone, Serialize)]
pub struct CpuCost {
    /// Operations the thread served (TCP: all round trips, warm-up included).
    pub operations: u64,
    pub cpu_us_per_operation: f64,
    /// Times the thread was preempted (other processes on its core, the kernel's tick).
    pub involuntary_switches: u64,
}

impl CpuCost {
    pub fn new(usage: ThreadUsage, operations: u64) -> Self {
        assert!(operations > 0, "CPU cost of no operation");
        Self {
            operations,
            cpu_us_per_operation: usage.cpu_ns as f64 / 1_000.0 / operations as f64,
            involuntary_switches: usage.involuntary_switches,
        }
    }
}

/// Echo round trips of 64-byte messages over loopback TCP.
#[derive(Debug, Clone, Serialize)]
pub struct TcpResult {
    pub connections: usize,
    pub message_bytes: usize,
    pub measured_seconds: f64,
    pub round_trips: u64,
    pub round_trips_per_second: f64,
    pub latency: LatencySummary,
    pub client_cpu: CpuCost,
    pub server_cpu: CpuCost,
}

impl TcpResult {
    /// Summarises the round trips recorded during a measured window of `measured`.
    pub fn new(
        connections: usize,
        measured: Duration,
        histogram: &Histogram<u64>,
        client_cpu: CpuCost,
        server_cpu: CpuCost,
    ) -> Self {
        let seconds = measured.as_secs_f64();
        assert!(seconds > 0.0, "empty measurement window");
        Self {
            connections,
            message_bytes: MESSAGE_BYTES,
            measured_seconds: seconds,
            round_trips: histogram.len(),
            round_trips_per_second: histogram.len() as f64 / seconds,
            latency: LatencySummary::from_histogram(histogram),
            client_cpu,
            server_cpu,
        }
    }
}

/// Sequential O_DIRECT overwrite of a preallocated, zero-filled file.
#[derive(Debug, Clone, Serialize)]
pub struct AppendResult {
    pub in_flight: usize,
    pub write_bytes: usize,
    pub total_bytes: u64,
    pub seconds: f64,
    /// Decimal megabytes (10^6 bytes) per second.
    pub megabytes_per_second: f64,
    /// Whether `fcntl(F_GETFL)` on the open file reported O_DIRECT.
    pub o_direct: bool,
    /// Runtime thread CPU per write.
    pub cpu: CpuCost,
}

/// One 4 KiB O_DIRECT write followed by fdatasync, repeated sequentially.
#[derive(Debug, Clone, Serialize)]
pub struct SyncResult {
    pub write_bytes: usize,
    pub iterations: u64,
    pub o_direct: bool,
    pub latency: LatencySummary,
    /// Runtime thread CPU per write + fdatasync pair.
    pub cpu: CpuCost,
}

/// Every measurement of one runtime in one repetition.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeRun {
    pub runtime: &'static str,
    pub repetition: usize,
    /// 0 when this runtime ran first in its repetition, 1 when second.
    pub order_in_repetition: usize,
    /// /proc/loadavg just before this run was recorded (other work on the machine).
    pub load_average_before: String,
    pub tcp_1_connection: TcpResult,
    pub tcp_16_connections: TcpResult,
    pub append_in_flight_8: AppendResult,
    pub append_in_flight_1: AppendResult,
    pub write_fdatasync_4k: SyncResult,
}

/// Median of a non-empty list of samples (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of no samples");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn summary_percentiles_in_microseconds() {
        let mut histogram = new_histogram();
        for ns in 1..=1_000u64 {
            histogram.record(ns * 1_000).expect("in bounds");
        }
        let summary = LatencySummary::from_histogram(&histogram);
        assert_eq!(summary.samples, 1_000);
        assert!((summary.p50_us - 500.0).abs() < 1.0, "{summary:?}");
        assert!((summary.p99_us - 990.0).abs() < 1.0, "{summary:?}");
        assert!((summary.max_us - 1_000.0).abs() < 1.0, "{summary:?}");
    }
}
