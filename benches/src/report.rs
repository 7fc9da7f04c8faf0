//! The run report: a typed, serialisable record (machine, store filesystem, O_DIRECT, commit,
//! exact command, parameters, results, time series, percentile curves) written as JSON, the
//! SVG plots written next to it, and the plain-text table printed at the end.
//! Built once from a finished [`RunOutcome`]. Must never measure anything itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::aggregate::{Sample, BYTES_PER_MB};
use crate::cli::{BenchArgs, ODirect, SendMode};
use crate::echo::EchoStats;
use crate::route::RouteSource;
use crate::run::{BacklogCheck, RunOutcome};
use crate::stats::{percentile_curve, Counters, LatencySummary, PercentilePoint, Tally};
use crate::svg::{self, Axis, Chart, Scale, Series};
use crate::sysinfo::{filesystem_of, load_average, FilesystemInfo, MachineInfo};
use crate::usage::ThreadUsage;

/// Version of the report's JSON shape; bump on incompatible changes.
pub const REPORT_SCHEMA: &str = "rmq-bench-report/1";

/// Bytes per MiB, for RSS figures.
const MIB: f64 = 1024.0 * 1024.0;

/// Shortest interval the time-series plots show, seconds.
pub const PLOT_INTERVAL_MIN_S: f64 = 0.25;

/// Where the O_DIRECT fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ODirectSource {
    /// `--o-direct`.
    User,
    /// A `*direct*` key of the broker's config.
    BrokerConfig,
    /// Nobody said.
    Unknown,
}

/// The store under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreInfo {
    /// `--store-dir`.
    pub dir: Option<String>,
    /// Its filesystem.
    pub filesystem: Option<FilesystemInfo>,
    /// Whether O_DIRECT was on.
    pub o_direct: ODirect,
    /// Where that came from.
    pub o_direct_source: ODirectSource,
}

/// Totals and rates of one kind of operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Messages.
    pub messages: u64,
    /// Body bytes.
    pub bytes: u64,
    /// Requests.
    pub requests: u64,
    /// Messages per second over the phase.
    pub msgs_per_s: f64,
    /// Body MB (10^6 bytes) per second over the phase.
    pub mb_per_s: f64,
}

impl Throughput {
    fn of(counters: Counters, seconds: f64) -> Self {
        let per_second = |value: u64| {
            if seconds > 0.0 {
                value as f64 / seconds
            } else {
                0.0
            }
        };
        Self {
            messages: counters.messages,
            bytes: counters.bytes,
            requests: counters.requests,
            msgs_per_s: per_second(counters.messages),
            mb_per_s: per_second(counters.bytes) / BYTES_PER_MB,
        }
    }
}

/// One harness thread's CPU use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadCost {
    /// CPU seconds.
    pub cpu_s: f64,
    /// CPU seconds / wall seconds (1.0 = a whole core).
    pub utilisation: f64,
    /// Preemptions.
    pub involuntary_switches: u64,
    /// Seconds runnable but waiting for a CPU (other processes held the core).
    pub runqueue_wait_s: f64,
}

/// What the run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    /// Start → producers drained, seconds.
    pub produce_s: f64,
    /// Start → consumers stopped, seconds.
    pub consume_s: f64,
    /// Messages handed to connections (rate over `produce_s`).
    pub sent: Throughput,
    /// Messages acknowledged (rate over `produce_s`).
    pub acked: Throughput,
    /// Messages consumed (rate over `consume_s`).
    pub consumed: Throughput,
    /// Send request latency (sync/async).
    pub send_latency: Option<LatencySummary>,
    /// Born → consumed latency (1 ms resolution).
    pub end_to_end_latency: Option<LatencySummary>,
    /// Pull request latency, long-poll holds included.
    pub pull_latency: Option<LatencySummary>,
    /// Failures by kind.
    pub errors: Tally,
    /// Notable statuses by kind.
    pub events: Tally,
    /// Per harness thread.
    pub harness_threads: Vec<ThreadCost>,
    /// Harness CPU µs per message (sent + consumed) over all threads.
    pub harness_cpu_us_per_message: Option<f64>,
    /// Echo mode: the server's side.
    pub echo: Option<EchoStats>,
    /// Backlog mode: stored vs acknowledged.
    pub backlog: Option<BacklogCheck>,
    /// Load averages right after the run (compare with `machine.load_average`, taken before).
    pub load_average_end: Option<[f64; 3]>,
    /// `--broker-pid`: the broker's resident memory over the run.
    pub broker_rss: Option<RssSummary>,
    /// The broker's CPU per message (`--broker-pid`, or the echo server in echo mode).
    pub broker_cpu: Option<BrokerCpu>,
}

/// Where the broker's CPU time was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerCpuSource {
    /// utime + stime of `/proc/<--broker-pid>/stat`, start → producers drained.
    Process,
    /// Echo mode: the echo server thread's CPU time over the whole run.
    EchoServerThread,
}

/// The broker's CPU time over the measured interval, per message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BrokerCpu {
    /// Where it was read.
    pub source: BrokerCpuSource,
    /// CPU seconds, all threads.
    pub cpu_s: f64,
    /// Messages it is divided by: acknowledged (sent for oneway; consumed without producers).
    pub messages: u64,
    /// `cpu_s` in µs / `messages`.
    pub us_per_message: Option<f64>,
}

impl BrokerCpu {
    fn of(outcome: &RunOutcome, has_producers: bool) -> Option<Self> {
        let (source, cpu_s) = match (&outcome.broker_cpu_s, &outcome.echo) {
            (Some(cpu_s), _) => (BrokerCpuSource::Process, *cpu_s),
            (None, Some(echo)) => (
                BrokerCpuSource::EchoServerThread,
                echo.usage.cpu_ns as f64 / 1e9,
            ),
            (None, None) => return None,
        };
        let stats = &outcome.stats;
        let messages = match (has_producers, stats.acked.messages) {
            (true, 0) => stats.sent.messages,
            (true, acked) => acked,
            (false, _) => stats.consumed.messages,
        };
        Some(Self {
            source,
            cpu_s,
            messages,
            us_per_message: (messages > 0).then(|| cpu_s * 1e6 / messages as f64),
        })
    }
}

/// The watched broker's resident memory over the run (one reading per sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RssSummary {
    /// First reading, bytes.
    pub first_bytes: u64,
    /// Largest reading, bytes.
    pub max_bytes: u64,
    /// Last reading, bytes.
    pub last_bytes: u64,
}

impl RssSummary {
    fn of(samples: &[Sample]) -> Option<Self> {
        let mut readings = samples.iter().filter_map(|sample| sample.broker_rss_bytes);
        let first = readings.next()?;
        let (max, last) = readings.fold((first, first), |(max, _), rss| (max.max(rss), rss));
        Some(Self {
            first_bytes: first,
            max_bytes: max,
            last_bytes: last,
        })
    }
}

/// Route facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSummary {
    /// Topic's own route or the TBW102 template.
    pub source: RouteSource,
    /// Write queues used.
    pub write_queues: usize,
    /// Read queues used.
    pub read_queues: usize,
    /// Broker addresses.
    pub brokers: Vec<String>,
}

/// Percentile curves per operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curves {
    /// Send latency.
    pub send: Vec<PercentilePoint>,
    /// End-to-end latency.
    pub end_to_end: Vec<PercentilePoint>,
    /// Pull latency.
    pub pull: Vec<PercentilePoint>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: &'static str,
    /// `--label`.
    pub label: String,
    /// Wall clock at the start, ms since the epoch.
    pub started_at_unix_ms: u64,
    /// The exact command line.
    pub command: Vec<String>,
    /// The machine.
    pub machine: MachineInfo,
    /// The store under test.
    pub store: StoreInfo,
    /// Every parameter.
    pub parameters: BenchArgs,
    /// Queues used.
    pub route: RouteSummary,
    /// Totals, rates, latencies, costs.
    pub results: Results,
    /// One sample per second.
    pub time_series: Vec<Sample>,
    /// Latency percentile curves.
    pub percentile_curves: Curves,
    /// The broker's config, when it answered GET_BROKER_CONFIG.
    pub broker_config: Option<BTreeMap<String, String>>,
    /// Plot files written next to the JSON (file names).
    pub plots: Vec<String>,
}

/// O_DIRECT as the user said, or as a `*direct*` key of the broker config says.
fn o_direct(
    args: &BenchArgs,
    broker_config: Option<&BTreeMap<String, String>>,
) -> (ODirect, ODirectSource) {
    if args.o_direct != ODirect::Unknown {
        return (args.o_direct, ODirectSource::User);
    }
    let from_broker = broker_config.and_then(|config| {
        config
            .iter()
            .find(|(key, _)| key.to_ascii_lowercase().contains("direct"))
            .map(|(_, value)| {
                if value.trim().eq_ignore_ascii_case("true") {
                    ODirect::On
                } else {
                    ODirect::Off
                }
            })
    });
    match from_broker {
        Some(value) => (value, ODirectSource::BrokerConfig),
        None => (ODirect::Unknown, ODirectSource::Unknown),
    }
}

fn thread_cost(usage: &ThreadUsage, wall_s: f64) -> ThreadCost {
    let cpu_s = usage.cpu_ns as f64 / 1e9;
    ThreadCost {
        cpu_s,
        utilisation: if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 },
        involuntary_switches: usage.involuntary_switches,
        runqueue_wait_s: usage.runqueue_wait_ns as f64 / 1e9,
    }
}

impl Report {
    /// Builds the report of `outcome`, run with `args` from the command line `command`.
    #[must_use]
    pub fn build(
        args: &BenchArgs,
        command: Vec<String>,
        machine: MachineInfo,
        outcome: RunOutcome,
    ) -> Self {
        let (o_direct, o_direct_source) = o_direct(args, outcome.broker_config.as_ref());
        let stats = &outcome.stats;
        let wall_s = outcome.produce_secs.max(outcome.consume_secs);
        let cpu_ns: u64 = outcome.threads.iter().map(|usage| usage.cpu_ns).sum();
        let messages = stats.sent.messages + stats.consumed.messages;
        let results = Results {
            produce_s: outcome.produce_secs,
            consume_s: outcome.consume_secs,
            sent: Throughput::of(stats.sent, outcome.produce_secs),
            acked: Throughput::of(stats.acked, outcome.produce_secs),
            consumed: Throughput::of(stats.consumed, outcome.consume_secs),
            send_latency: LatencySummary::of(&stats.send_latency),
            end_to_end_latency: LatencySummary::of(&stats.end_to_end_latency),
            pull_latency: LatencySummary::of(&stats.pull_latency),
            errors: stats.errors.clone(),
            events: stats.events.clone(),
            harness_threads: outcome
                .threads
                .iter()
                .map(|usage| thread_cost(usage, wall_s))
                .collect(),
            harness_cpu_us_per_message: (messages > 0)
                .then(|| cpu_ns as f64 / 1e3 / messages as f64),
            echo: outcome.echo.clone(),
            backlog: outcome.backlog.clone(),
            load_average_end: load_average(),
            broker_rss: RssSummary::of(&outcome.samples),
            broker_cpu: BrokerCpu::of(&outcome, args.has_producers()),
        };
        Self {
            schema: REPORT_SCHEMA,
            label: args.label.clone(),
            started_at_unix_ms: outcome.started_at_unix_ms,
            command,
            machine,
            store: StoreInfo {
                dir: args.store_dir.as_ref().map(|dir| dir.display().to_string()),
                filesystem: args.store_dir.as_deref().and_then(filesystem_of),
                o_direct,
                o_direct_source,
            },
            parameters: args.clone(),
            route: RouteSummary {
                source: outcome.route.source,
                write_queues: outcome.route.write_queues.len(),
                read_queues: outcome.route.read_queues.len(),
                brokers: outcome.route.broker_addrs(),
            },
            results,
            time_series: outcome.samples,
            percentile_curves: Curves {
                send: percentile_curve(&stats.send_latency),
                end_to_end: percentile_curve(&stats.end_to_end_latency),
                pull: percentile_curve(&stats.pull_latency),
            },
            broker_config: outcome.broker_config,
            plots: Vec::new(),
        }
    }

    /// The charts: throughput over time, p99 over time, latency percentile curves, and with
    /// `--broker-pid` the broker's RSS against messages acknowledged.
    #[must_use]
    pub fn charts(&self) -> Vec<(&'static str, Chart)> {
        let over_time = |pick: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
            // A last interval of a few ms has a meaningless rate; it stays in the JSON.
            self.time_series
                .iter()
                .filter(|s| s.duration_s >= PLOT_INTERVAL_MIN_S)
                .filter_map(|s| pick(s).map(|value| (s.t_s, value)))
                .collect()
        };
        let has_consumers = self.results.consumed.messages > 0;
        let oneway = self.parameters.send_mode == SendMode::Oneway;
        let mut throughput = vec![Series {
            name: if oneway {
                "sent msgs/s".into()
            } else {
                "acked msgs/s".into()
            },
            points: over_time(&|s| {
                Some(if oneway {
                    s.sent_msgs_per_s
                } else {
                    s.acked_msgs_per_s
                })
            }),
        }];
        let mut p99 = vec![Series {
            name: "send p99".into(),
            points: over_time(&|s| s.send_p99_us),
        }];
        if has_consumers {
            throughput.push(Series {
                name: "consumed msgs/s".into(),
                points: over_time(&|s| Some(s.consumed_msgs_per_s)),
            });
            p99.push(Series {
                name: "end-to-end p99".into(),
                points: over_time(&|s| s.end_to_end_p99_us),
            });
        }
        let curve = |name: &str, points: &[PercentilePoint]| Series {
            name: name.into(),
            points: points
                .iter()
                .filter(|point| point.percentile < 100.0)
                .map(|point| {
                    (
                        (1.0 / (1.0 - point.percentile / 100.0)).log10(),
                        point.latency_us,
                    )
                })
                .collect(),
        };
        let mut curves = vec![curve("send", &self.percentile_curves.send)];
        if has_consumers {
            curves.push(curve("end-to-end", &self.percentile_curves.end_to_end));
            curves.push(curve("pull", &self.percentile_curves.pull));
        }
        let nines = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
        let percentile_axis = Axis {
            label: "percentile".into(),
            scale: Scale::Linear,
            ticks: Some(
                nines
                    .iter()
                    .enumerate()
                    .map(|(index, text)| (index as f64, (*text).to_owned()))
                    .collect(),
            ),
        };
        let title = |what: &str| format!("{what}: {}", self.title_suffix());
        let rss: Vec<(f64, f64)> = self
            .time_series
            .iter()
            .filter_map(|s| {
                s.broker_rss_bytes
                    .map(|rss| (s.acked_total as f64 / 1e6, rss as f64 / MIB))
            })
            .collect();
        let mut charts = vec![
            (
                "throughput",
                Chart {
                    title: title("Throughput"),
                    x: Axis::new("time (s)", Scale::Linear),
                    y: Axis::new("messages/s", Scale::Linear),
                    series: throughput,
                },
            ),
            (
                "p99",
                Chart {
                    title: title("p99 latency per second"),
                    x: Axis::new("time (s)", Scale::Linear),
                    y: Axis::new("latency (µs)", Scale::Log10),
                    series: p99,
                },
            ),
            (
                "latency",
                Chart {
                    title: title("Latency by percentile"),
                    x: percentile_axis,
                    y: Axis::new("latency (µs)", Scale::Log10),
                    series: curves,
                },
            ),
        ];
        if !rss.is_empty() {
            charts.push((
                "rss",
                Chart {
                    title: title("Broker RSS"),
                    x: Axis::new("messages acknowledged (millions)", Scale::Linear),
                    y: Axis::new("broker RSS (MiB)", Scale::Linear),
                    series: vec![Series {
                        name: "VmRSS".into(),
                        points: rss,
                    }],
                },
            ));
        }
        charts
    }

    fn title_suffix(&self) -> String {
        let p = &self.parameters;
        format!(
            "{:?} {:?}, {} producers / {} conns, {} B x{}",
            p.mode,
            p.send_mode,
            p.producers,
            p.producer_connections(),
            p.size,
            p.batch
        )
    }

    /// Writes the JSON to `path` and the plots next to it (`<stem>.<chart>.svg`); records
    /// the plot file names in the report.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write(&mut self, path: &Path) -> std::io::Result<Vec<PathBuf>> {
        let stem = path.file_stem().map_or_else(
            || "report".to_owned(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        self.plots.clear();
        for (name, chart) in self.charts() {
            let file = format!("{stem}.{name}.svg");
            let target = dir.join(&file);
            std::fs::write(&target, svg::render(&chart))?;
            self.plots.push(file);
            written.push(target);
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)?;
        written.insert(0, path.to_path_buf());
        Ok(written)
    }

    /// The final table.
    #[must_use]
    pub fn table(&self) -> String {
        let r = &self.results;
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!(
            "rmq-bench {} ({})",
            self.title_suffix(),
            self.machine.commit.as_deref().unwrap_or("no commit")
        ));
        line(format!(
            "{:<10} {:>14} {:>14} {:>10} {:>10}",
            "operation", "messages", "msgs/s", "MB/s", "seconds"
        ));
        for (name, throughput, seconds) in [
            ("sent", &r.sent, r.produce_s),
            ("acked", &r.acked, r.produce_s),
            ("consumed", &r.consumed, r.consume_s),
        ] {
            let expected = if name == "consumed" {
                self.parameters.has_consumers()
            } else {
                self.parameters.has_producers()
            };
            if throughput.messages > 0 || expected {
                line(format!(
                    "{name:<10} {:>14} {:>14.0} {:>10.2} {:>10.2}",
                    throughput.messages, throughput.msgs_per_s, throughput.mb_per_s, seconds
                ));
            }
        }
        if let Some(cpu) = &r.broker_cpu {
            let rate = if self.parameters.has_producers() {
                r.acked.msgs_per_s
            } else {
                r.consumed.msgs_per_s
            };
            let who = match cpu.source {
                BrokerCpuSource::Process => "broker",
                BrokerCpuSource::EchoServerThread => "echo server",
            };
            line(format!(
                "{who} CPU: {} at {rate:.0} msgs/s ({:.2} CPU s / {} messages)",
                cpu.us_per_message
                    .map_or_else(|| "-".to_owned(), |us| format!("{us:.2} µs/message")),
                cpu.cpu_s,
                cpu.messages
            ));
        }
        line(format!(
            "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   (µs)",
            "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        ));
        for (name, summary) in [
            ("send", &r.send_latency),
            ("end-to-end", &r.end_to_end_latency),
            ("pull", &r.pull_latency),
        ] {
            if let Some(s) = summary {
                line(format!(
                    "{name:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    s.p50_us, s.p90_us, s.p99_us, s.p99_9_us, s.p99_99_us, s.max_us, s.mean_us
                ));
            }
        }
        let utilisation: Vec<String> = r
            .harness_threads
            .iter()
            .map(|t| {
                format!(
                    "{:.0}% busy, {:.2} s waiting for a CPU",
                    t.utilisation * 100.0,
                    t.runqueue_wait_s
                )
            })
            .collect();
        line(format!(
            "harness CPU: {} per thread, {}",
            utilisation.join(" "),
            r.harness_cpu_us_per_message.map_or_else(
                || "-".to_owned(),
                |us| format!(
                    "{us:.2} µs/message (one core drives ~{:.0} msgs/s)",
                    1e6 / us
                )
            )
        ));
        if let Some(echo) = &r.echo {
            line(format!(
                "echo server: {} requests, {} messages, {:.2} CPU s, {:.2} s waiting for a CPU",
                echo.requests,
                echo.send_messages,
                echo.usage.cpu_ns as f64 / 1e9,
                echo.usage.runqueue_wait_ns as f64 / 1e9
            ));
        }
        if let Some(backlog) = &r.backlog {
            line(format!(
                "backlog: stored {} (max offsets {} -> {}), acked {}, {}",
                backlog.stored,
                backlog.max_offset_sum_before,
                backlog.max_offset_sum_after,
                backlog.acked,
                if backlog.matches { "match" } else { "MISMATCH" }
            ));
        }
        if let Some(rss) = &r.broker_rss {
            line(format!(
                "broker RSS: {:.1} MiB at start, max {:.1} MiB, {:.1} MiB at end",
                rss.first_bytes as f64 / MIB,
                rss.max_bytes as f64 / MIB,
                rss.last_bytes as f64 / MIB
            ));
        }
        if r.errors.total() > 0 {
            let errors: Vec<String> = r
                .errors
                .iter()
                .map(|(kind, count)| format!("{kind}={count}"))
                .collect();
            line(format!("errors: {}", errors.join(" ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::route::{QueueTarget, ResolvedRoute};
    use crate::stats::{record_latency, IntervalStats};
    use crate::svg::tests::assert_well_formed_xml;

    fn outcome() -> RunOutcome {
        let mut stats = IntervalStats::new();
        stats.sent.add(1000, 1_024_000);
        stats.acked.add(990, 1_013_760);
        for micros in 1..=990_u64 {
            record_latency(&mut stats.send_latency, micros * 1_000);
        }
        stats.errors.add("send:timeout", 10);
        let queue = QueueTarget {
            broker_name: "b".into(),
            broker_addr: "127.0.0.1:10911".into(),
            queue_id: 0,
        };
        let sample = Sample {
            t_s: 1.0,
            duration_s: 1.0,
            sent_msgs_per_s: 1000.0,
            acked_msgs_per_s: 990.0,
            send_mb_per_s: 1.01,
            send_p50_us: Some(495.0),
            send_p99_us: Some(980.0),
            consumed_msgs_per_s: 0.0,
            consume_mb_per_s: 0.0,
            end_to_end_p99_us: None,
            errors: 10,
            acked_total: 0,
            broker_rss_bytes: None,
            broker_cpu_cores: None,
        };
        RunOutcome {
            started_at_unix_ms: 1_700_000_000_000,
            route: ResolvedRoute {
                source: RouteSource::DefaultTopic,
                write_queues: vec![queue.clone()],
                read_queues: vec![queue],
            },
            stats,
            samples: vec![sample.clone(), Sample { t_s: 2.0, ..sample }],
            produce_secs: 2.0,
            consume_secs: 2.0,
            threads: vec![ThreadUsage {
                cpu_ns: 1_500_000_000,
                involuntary_switches: 3,
                runqueue_wait_ns: 250_000_000,
            }],
            echo: None,
            backlog: None,
            broker_config: Some(
                [("useDirectIo".to_owned(), "true".to_owned())]
                    .into_iter()
                    .collect(),
            ),
            broker_cpu_s: None,
        }
    }

    #[test]
    fn broker_cpu_per_message_is_reported_beside_the_rate() {
        let args = BenchArgs::parse_from(["rmq-bench", "--broker-pid", "1"]);
        let mut run = outcome();
        run.broker_cpu_s = Some(0.0099);
        let report = Report::build(&args, vec!["rmq-bench".into()], MachineInfo::collect(), run);
        let cpu = report.results.broker_cpu.expect("broker cpu");
        assert_eq!(cpu.source, BrokerCpuSource::Process);
        assert_eq!(cpu.messages, 990);
        assert!((cpu.us_per_message.expect("messages") - 10.0).abs() < 1e-9);
        assert!(report
            .table()
            .contains("broker CPU: 10.00 µs/message at 495 msgs/s"));
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["results"]["broker_cpu"]["source"], "process");
        let plain = Report::build(
            &BenchArgs::parse_from(["rmq-bench"]),
            vec![],
            MachineInfo::collect(),
            outcome(),
        );
        assert_eq!(plain.results.broker_cpu, None);
    }

    #[test]
    fn report_json_has_the_agreed_shape() {
        let args = BenchArgs::parse_from(["rmq-bench", "--label", "shape test"]);
        let command = vec![
            "rmq-bench".to_owned(),
            "--label".to_owned(),
            "shape test".to_owned(),
        ];
        let report = Report::build(&args, command.clone(), MachineInfo::collect(), outcome());
        let json: serde_json::Value = serde_json::to_value(&report).expect("serialises");
        for key in [
            "schema",
            "label",
            "started_at_unix_ms",
            "command",
            "machine",
            "store",
            "parameters",
            "route",
            "results",
            "time_series",
            "percentile_curves",
            "broker_config",
            "plots",
        ] {
            assert!(json.get(key).is_some(), "missing top-level key {key}");
        }
        assert_eq!(json["schema"], REPORT_SCHEMA);
        assert_eq!(json["command"], serde_json::json!(command));
        for key in ["cpu_model", "cpus", "kernel", "commit"] {
            assert!(json["machine"].get(key).is_some(), "machine.{key}");
        }
        assert_eq!(json["store"]["o_direct"], "on");
        assert_eq!(json["store"]["o_direct_source"], "broker-config");
        assert_eq!(json["parameters"]["send_mode"], "sync");
        assert_eq!(json["parameters"]["size"], 1024);
        assert_eq!(json["route"]["source"], "default-topic");
        let results = &json["results"];
        assert_eq!(results["acked"]["messages"], 990);
        assert!((results["acked"]["msgs_per_s"].as_f64().expect("number") - 495.0).abs() < 1e-9);
        for key in [
            "p50_us",
            "p90_us",
            "p99_us",
            "p99_9_us",
            "p99_99_us",
            "max_us",
            "mean_us",
            "samples",
        ] {
            assert!(
                results["send_latency"].get(key).is_some(),
                "send_latency.{key}"
            );
        }
        assert!(results["end_to_end_latency"].is_null());
        assert_eq!(results["errors"]["send:timeout"], 10);
        assert!(
            (results["harness_cpu_us_per_message"]
                .as_f64()
                .expect("number")
                - 1500.0)
                .abs()
                < 1e-9
        );
        assert_eq!(json["time_series"].as_array().map(Vec::len), Some(2));
        assert!(json["time_series"][0].get("send_p99_us").is_some());
        assert_eq!(
            json["percentile_curves"]["send"].as_array().map(Vec::len),
            Some(52)
        );
        let table = report.table();
        assert!(
            table.contains("acked") && table.contains("p99.9"),
            "{table}"
        );
    }

    #[test]
    fn write_puts_json_and_three_svgs_side_by_side() {
        let args = BenchArgs::parse_from(["rmq-bench", "--o-direct", "off"]);
        let mut report = Report::build(
            &args,
            vec!["rmq-bench".into()],
            MachineInfo::collect(),
            outcome(),
        );
        assert_eq!(report.store.o_direct, ODirect::Off);
        let dir =
            std::env::temp_dir().join(format!("rmq-bench-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("run.json");
        let written = report.write(&path).expect("writes");
        assert_eq!(written.len(), 4);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("json file")).expect("valid JSON");
        assert_eq!(
            json["plots"],
            serde_json::json!(["run.throughput.svg", "run.p99.svg", "run.latency.svg"])
        );
        for plot in ["run.throughput.svg", "run.p99.svg", "run.latency.svg"] {
            let text = std::fs::read_to_string(dir.join(plot)).expect("svg");
            assert_well_formed_xml(&text);
            assert!(text.contains("<polyline"), "{plot}");
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_watched_broker_adds_an_rss_summary_and_plot() {
        let args = BenchArgs::parse_from(["rmq-bench", "--broker-pid", "1"]);
        let mut run = outcome();
        for (index, sample) in run.samples.iter_mut().enumerate() {
            sample.acked_total = 990 * (index as u64 + 1);
            sample.broker_rss_bytes = Some((70 + 10 * index as u64) << 20);
        }
        let report = Report::build(&args, vec!["rmq-bench".into()], MachineInfo::collect(), run);
        assert_eq!(
            report.results.broker_rss,
            Some(RssSummary {
                first_bytes: 70 << 20,
                max_bytes: 80 << 20,
                last_bytes: 80 << 20,
            })
        );
        let charts = report.charts();
        let (name, chart) = charts.last().expect("charts");
        assert_eq!(*name, "rss");
        assert_eq!(
            chart.series[0].points,
            vec![(990.0 / 1e6, 70.0), (1980.0 / 1e6, 80.0)]
        );
        assert!(report
            .table()
            .contains("broker RSS: 70.0 MiB at start, max 80.0 MiB"));
    }
}
