//! The harness's command line (`rmq-bench`): every parameter of a run, parsed by clap and
//! checked once by [`BenchArgs::validate`] before anything starts. The parsed struct is also
//! what the report records as "parameters". Must never hold run state.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::timer::{DelayRange, TimerAnchor};

/// Most harness threads (one compio runtime each).
pub const THREADS_MAX: usize = 256;
/// Most producers, connections or consumer connections per group: each is a task or a socket.
pub const TASKS_MAX: usize = 65_536;
/// Most consumer groups.
pub const GROUPS_MAX: usize = 1024;
/// Largest message body. Java's `maxMessageSize` default is 4 MiB.
pub const MESSAGE_SIZE_MAX: usize = 4 * 1024 * 1024;
/// Most messages per batch request (the codec's batch limit is larger; 1024 keeps one batch
/// of 1 KiB messages at 1 MiB).
pub const BATCH_SIZE_MAX: u32 = 1024;
/// Most requests in flight per connection in async mode (the client allows 65,536 pending).
pub const INFLIGHT_MAX: usize = 16_384;
/// Most queues asked for with `--queues` (Java topics rarely exceed a few hundred).
pub const QUEUES_MAX: u32 = 1024;
/// Most messages one pull asks for (Java caps `pullBatchSize` at 1024).
pub const PULL_BATCH_MAX: u32 = 1024;

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Producers only.
    Produce,
    /// Consumers only.
    Consume,
    /// Producers and consumers at once; consumers drain after the producers stop.
    ProduceConsume,
    /// Fill a backlog of `--count` messages; reports the producer rate over time and checks
    /// the queues' max offsets grew by as much.
    Backlog,
    /// Producers (and consumers, with `--consumers`) against an in-process echo server instead
    /// of a broker: measures the harness's own cost per message.
    Echo,
}

/// How producers wait for acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SendMode {
    /// One request outstanding per producer.
    Sync,
    /// Up to `--inflight` requests outstanding per connection.
    Async,
    /// Fire and forget (flag ONEWAY); nothing is acknowledged.
    Oneway,
}

/// Header encoding of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderEncoding {
    /// JSON headers (what Java clients send by default).
    Json,
    /// The ROCKETMQ binary header.
    Rocketmq,
}

/// Where a consumer group starts in each queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumeFrom {
    /// The group's committed offset (QUERY_CONSUMER_OFFSET); the queue's max offset if none,
    /// as Java's CONSUME_FROM_LAST_OFFSET.
    Committed,
    /// Offset 0.
    First,
    /// The queue's max offset (GET_MAX_OFFSET): only messages sent after the start.
    Last,
}

/// Whether the store under test used O_DIRECT, as told by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ODirect {
    /// On.
    On,
    /// Off.
    Off,
    /// Not known (read from the broker's config when it says).
    Unknown,
}

/// Load generator for a RocketMQ-compatible broker, over the real remoting protocol.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "rmq-bench", version, about)]
pub struct BenchArgs {
    /// What to run.
    #[arg(long, value_enum, default_value = "produce")]
    pub mode: Mode,
    /// NameServer address (`host:port`). Ignored in echo mode.
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Topic.
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Queues: `defaultTopicQueueNums` for auto-creation (and the cut applied to the TBW102
    /// route, as Java producers do), and the queue count of the echo server's route.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Producers (tasks); each keeps one request outstanding in sync mode.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Producer connections (per broker); producers share them round-robin. Default: one per
    /// producer.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Harness threads, each a compio runtime pinned to its own core.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages per send request; above 1 uses SEND_BATCH_MESSAGE (320).
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// How producers wait for acknowledgements.
    #[arg(long, value_enum, default_value = "sync")]
    pub send_mode: SendMode,
    /// Async mode: requests outstanding per connection.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Harness threads never sleep: each polls its io_uring ring until the run ends, a core
    /// each. A round trip then measures the broker without the harness's own wake-up (the
    /// broker's `idlePollMicros` polls with the same loop, within a budget).
    #[arg(long)]
    pub busy_poll: bool,
    /// Total send rate cap, messages/s (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Run length, seconds (default 10 unless `--count` is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Messages to send (consume mode: to consume), over all producers.
    #[arg(long)]
    pub count: Option<u64>,
    /// Give messages a `KEYS` property drawn round-robin from this many keys (0 = no keys).
    #[arg(long, default_value_t = 0)]
    pub key_space: u64,
    /// Comma-separated tags, assigned round-robin (none by default).
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Producer group.
    #[arg(long, default_value = "rmq-bench-producer")]
    pub producer_group: String,
    /// Send every message as a transaction: a half message (`TRAN_MSG`, `PGROUP`, sysFlag
    /// PREPARED), then, once it is acknowledged, a two-way END_TRANSACTION commit on the same
    /// connection; a message counts as acknowledged (and its latency ends) when the commit is
    /// answered. Sync send mode, batch 1.
    #[arg(long)]
    pub transactional: bool,
    /// Timer messages: every send carries `TIMER_DELIVER_MS` due `MIN..MAX` ms (uniformly
    /// spread) after `--timer-anchor`. Batch 1, not transactional. Consumers then measure
    /// end-to-end latency from each message's due time (its lateness).
    #[arg(long, value_name = "MIN..MAX")]
    pub timer_delay_ms: Option<DelayRange>,
    /// What `--timer-delay-ms` counts from: each message's born time, or the run's start.
    #[arg(long, value_enum, default_value = "born")]
    pub timer_anchor: TimerAnchor,
    /// Consumer connections per group (consume modes default to 1).
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Consumer groups; each receives every message.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Consumer group name prefix; groups are `<prefix>-0`, `<prefix>-1`, ...
    #[arg(long, default_value = "rmq-bench-group")]
    pub group_prefix: String,
    /// Subscription expression (tags joined by `||`, or `*`; with `--sql92`, an SQL92
    /// selector).
    #[arg(long, default_value = "*")]
    pub subscription: String,
    /// The subscription is an SQL92 selector (`expressionType=SQL92`; the broker needs
    /// `enablePropertyFilter=true`).
    #[arg(long)]
    pub sql92: bool,
    /// Where a group starts in each queue.
    #[arg(long, value_enum, default_value = "committed")]
    pub consume_from: ConsumeFrom,
    /// Messages asked for per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: u32,
    /// Long-poll hold the broker may apply to a pull, ms.
    #[arg(long, default_value_t = 15_000)]
    pub long_poll_ms: u64,
    /// After the producers stop, how long consumers may take to catch up, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Timeout of every request except pulls, ms.
    #[arg(long, default_value_t = 3_000)]
    pub timeout_ms: u64,
    /// Header encoding.
    #[arg(long, value_enum, default_value = "json")]
    pub serialize: HeaderEncoding,
    /// Write the JSON report here (plots go next to it).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// The broker's store directory, to record its filesystem in the report.
    #[arg(long)]
    pub store_dir: Option<PathBuf>,
    /// Whether the broker's store used O_DIRECT.
    #[arg(long, value_enum, default_value = "unknown")]
    pub o_direct: ODirect,
    /// PID of a local broker process to watch: its RSS and CPU per second go into the time
    /// series and an RSS-against-messages plot.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Do not pin harness threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// First core harness threads are pinned to (thread i gets core first + i).
    #[arg(long, default_value_t = 0)]
    pub first_core: usize,
    /// Core of the echo server thread (default: the last core).
    #[arg(long)]
    pub echo_core: Option<usize>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Free text stored in the report.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// A parameter combination that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameters: {0}")]
pub struct ArgsError(pub String);

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    /// Wall-clock limit of the producing (or, in consume mode, consuming) phase.
    pub duration: Option<Duration>,
    /// Message limit, over all producers (consume mode: consumers).
    pub count: Option<u64>,
}

/// Run length when neither `--duration` nor `--count` is given.
pub const DURATION_DEFAULT: Duration = Duration::from_secs(10);

impl BenchArgs {
    /// Producer connections (default: one per producer).
    #[must_use]
    pub fn producer_connections(&self) -> usize {
        self.connections.unwrap_or(self.producers)
    }

    /// Consumer connections per group: `--consumers`, or 1 in modes that consume.
    #[must_use]
    pub fn consumer_connections(&self) -> usize {
        self.consumers.unwrap_or(match self.mode {
            Mode::Consume | Mode::ProduceConsume => 1,
            Mode::Produce | Mode::Backlog | Mode::Echo => 0,
        })
    }

    /// Whether this run starts producers.
    #[must_use]
    pub fn has_producers(&self) -> bool {
        self.mode != Mode::Consume
    }

    /// Whether this run starts consumers.
    #[must_use]
    pub fn has_consumers(&self) -> bool {
        match self.mode {
            Mode::Consume | Mode::ProduceConsume => true,
            Mode::Echo => self.consumer_connections() > 0,
            Mode::Produce | Mode::Backlog => false,
        }
    }

    /// The stop rule.
    #[must_use]
    pub fn stop_rule(&self) -> StopRule {
        let duration = self.duration.map(Duration::from_secs_f64);
        StopRule {
            duration: if duration.is_none() && self.count.is_none() {
                Some(DURATION_DEFAULT)
            } else {
                duration
            },
            count: self.count,
        }
    }

    /// Request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks every limit and combination.
    ///
    /// # Errors
    /// [`ArgsError`] naming the first problem.
    pub fn validate(&self) -> Result<(), ArgsError> {
        let fail = |text: String| Err(ArgsError(text));
        if self.threads == 0 || self.threads > THREADS_MAX {
            return fail(format!("--threads must be 1..={THREADS_MAX}"));
        }
        if self.has_producers() {
            let connections = self.producer_connections();
            if self.producers == 0 || self.producers > TASKS_MAX {
                return fail(format!("--producers must be 1..={TASKS_MAX}"));
            }
            if connections == 0 || connections > self.producers {
                return fail("--connections must be 1..=--producers".into());
            }
            if self.send_mode == SendMode::Async
                && (self.inflight == 0 || self.inflight > INFLIGHT_MAX)
            {
                return fail(format!("--inflight must be 1..={INFLIGHT_MAX}"));
            }
        }
        if self.has_consumers() {
            let consumers = self.consumer_connections();
            if consumers == 0 || consumers > TASKS_MAX {
                return fail(format!("--consumers must be 1..={TASKS_MAX}"));
            }
            if self.groups == 0 || self.groups > GROUPS_MAX {
                return fail(format!("--groups must be 1..={GROUPS_MAX}"));
            }
            if self.pull_batch == 0 || self.pull_batch > PULL_BATCH_MAX {
                return fail(format!("--pull-batch must be 1..={PULL_BATCH_MAX}"));
            }
        } else if self.consumers.is_some_and(|consumers| consumers > 0) {
            return fail(format!("--consumers is not used in {:?} mode", self.mode));
        }
        if self.queues == 0 || self.queues > QUEUES_MAX {
            return fail(format!("--queues must be 1..={QUEUES_MAX}"));
        }
        let bad_tag = |tag: &String| tag.is_empty() || tag.contains(['\u{1}', '\u{2}']);
        if self.tags.iter().any(bad_tag) {
            return fail("--tags must be non-empty and free of \\x01 and \\x02".into());
        }
        if self.size == 0 || self.size > MESSAGE_SIZE_MAX {
            return fail(format!("--size must be 1..={MESSAGE_SIZE_MAX}"));
        }
        if self.batch == 0 || self.batch > BATCH_SIZE_MAX {
            return fail(format!("--batch must be 1..={BATCH_SIZE_MAX}"));
        }
        if self.rate > 0 && self.rate < u64::from(self.batch) * self.threads as u64 {
            return fail("--rate must allow at least one batch per second per thread".into());
        }
        if let Some(duration) = self.duration {
            if !(duration.is_finite() && duration > 0.0) {
                return fail("--duration must be a positive number of seconds".into());
            }
        }
        if self.count == Some(0) {
            return fail("--count must be positive".into());
        }
        if self.transactional && (self.send_mode != SendMode::Sync || self.batch != 1) {
            return fail("--transactional needs --send-mode sync and --batch 1".into());
        }
        if self.timer_delay_ms.is_some() && (self.transactional || self.batch != 1) {
            return fail("--timer-delay-ms needs --batch 1 and no --transactional".into());
        }
        if self.mode == Mode::Backlog
            && (self.count.is_none() || self.send_mode == SendMode::Oneway)
        {
            return fail("backlog mode needs --count and a sync or async --send-mode".into());
        }
        if !(self.drain_timeout.is_finite() && self.drain_timeout >= 0.0) {
            return fail("--drain-timeout must be a non-negative number of seconds".into());
        }
        if self.timeout_ms == 0 {
            return fail("--timeout-ms must be positive".into());
        }
        if self.topic.is_empty() || self.topic.len() > 127 {
            return fail("--topic must be 1..=127 bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BenchArgs {
        BenchArgs::try_parse_from(std::iter::once("rmq-bench").chain(args.iter().copied()))
            .expect("parses")
    }

    #[test]
    fn defaults_are_a_ten_second_sync_producer() {
        let args = parse(&[]);
        assert_eq!(args.validate(), Ok(()));
        assert_eq!(args.mode, Mode::Produce);
        assert_eq!(args.producer_connections(), 1);
        assert_eq!(args.consumer_connections(), 0);
        assert_eq!(
            args.stop_rule(),
            StopRule {
                duration: Some(DURATION_DEFAULT),
                count: None
            }
        );
    }

    #[test]
    fn count_alone_has_no_duration() {
        let args = parse(&[
            "--count",
            "1000000000",
            "--mode",
            "backlog",
            "--send-mode",
            "async",
        ]);
        assert_eq!(args.validate(), Ok(()));
        assert_eq!(args.stop_rule().duration, None);
        assert_eq!(args.stop_rule().count, Some(1_000_000_000));
    }

    #[test]
    fn bad_combinations_are_rejected() {
        for bad in [
            vec!["--producers", "2", "--connections", "3"],
            vec!["--mode", "backlog"],
            vec!["--mode", "backlog", "--count", "5", "--send-mode", "oneway"],
            vec!["--mode", "produce", "--consumers", "2"],
            vec!["--size", "0"],
            vec!["--batch", "2000"],
            vec!["--duration", "0"],
            vec!["--rate", "1", "--batch", "4"],
            vec!["--tags", "a,,b"],
            vec!["--transactional", "--send-mode", "async"],
            vec!["--transactional", "--batch", "2"],
            vec!["--timer-delay-ms", "10..20", "--batch", "2"],
            vec!["--timer-delay-ms", "10..20", "--transactional"],
        ] {
            assert!(parse(&bad).validate().is_err(), "{bad:?} must be rejected");
        }
        let tags = parse(&["--tags", "a,b", "--mode", "echo", "--consumers", "2"]);
        assert_eq!(tags.tags, vec!["a".to_owned(), "b".to_owned()]);
        assert!(tags.has_consumers());
        assert_eq!(tags.validate(), Ok(()));
        let timer = parse(&[
            "--timer-delay-ms",
            "3600000..7200000",
            "--timer-anchor",
            "start",
        ]);
        assert_eq!(timer.validate(), Ok(()));
        assert_eq!(
            timer.timer_delay_ms,
            Some(DelayRange {
                min_ms: 3_600_000,
                max_ms: 7_200_000
            })
        );
        assert_eq!(timer.timer_anchor, TimerAnchor::Start);
        let bad = ["rmq-bench", "--timer-delay-ms", "9..1"];
        assert!(BenchArgs::try_parse_from(bad).is_err());
    }
}
