//! The coordinator: validates the parameters, starts the echo server if asked, resolves the
//! route, plans and starts the harness threads, starts them together, decides when producers
//! and consumers stop (duration, count, drain), merges their stats, and hands back a
//! [`RunOutcome`]. Runs on the calling (main) thread, which blocks on the workers' channel;
//! a short-lived compio runtime on it does the setup and the backlog check.
//! Must never touch a worker's state except through [`Control`] messages.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmq_net::codec::codes::{RequestCode, ResponseCode, SerializeType};
use rmq_net::codec::command::RemotingCommand;
use rmq_net::conn::{ClientConfig, RemotingClient};
use serde::Serialize;

use crate::aggregate::{Aggregator, Sample};
use crate::cli::{ArgsError, BenchArgs, HeaderEncoding, Mode, SendMode};
use crate::consumer::{max_offset, ConsumerSpec};
use crate::echo::{EchoConfig, EchoRoutes, EchoServer, EchoStats};
use crate::message::MessageSpec;
use crate::procwatch::{cpu_seconds, ProcessProbe};
use crate::route::{resolve, ResolvedRoute, RouteError};
use crate::stats::IntervalStats;
use crate::timer::{TimerAnchor, TimerSpec};
use crate::usage::ThreadUsage;
use crate::worker::{plan_threads, spawn_worker, Control, RunShared, WorkerEvent};

/// Delay between sending Start and the common time origin, so every thread starts together.
const START_DELAY: Duration = Duration::from_millis(20);
/// How often the coordinator re-checks stop rules when no event arrives.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Most broker config entries kept in the report.
pub const BROKER_CONFIG_ENTRIES_MAX: usize = 1024;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad parameters.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// The echo server or the setup runtime could not start.
    #[error("setup: {0}")]
    Io(#[from] std::io::Error),
    /// The route could not be resolved.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A harness thread could not set up.
    #[error("harness thread {thread}: {error}")]
    Setup {
        /// Thread index.
        thread: usize,
        /// Why.
        error: String,
    },
    /// A harness thread died without reporting.
    #[error("harness thread ended unexpectedly")]
    ThreadLost,
}

/// The backlog check: how much the write queues' max offsets grew during the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BacklogCheck {
    /// Sum of GET_MAX_OFFSET over the write queues before the run.
    pub max_offset_sum_before: i64,
    /// The same after the run.
    pub max_offset_sum_after: i64,
    /// Growth (messages stored during the run, if nobody else wrote).
    pub stored: i64,
    /// Messages the broker acknowledged.
    pub acked: u64,
    /// `stored == acked`.
    pub matches: bool,
}

/// What the live progress display gets once a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The second just completed.
    pub sample: Sample,
    /// Messages sent so far.
    pub sent_total: u64,
    /// Messages acknowledged so far.
    pub acked_total: u64,
    /// Messages consumed so far.
    pub consumed_total: u64,
    /// Errors so far.
    pub errors_total: u64,
    /// Fraction of the run done, by duration or count, if known.
    pub fraction: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// Wall clock at the start, ms since the epoch.
    pub started_at_unix_ms: u64,
    /// The queues used.
    pub route: ResolvedRoute,
    /// Whole-run totals.
    pub stats: IntervalStats,
    /// One sample per second.
    pub samples: Vec<Sample>,
    /// Start → every producer stopped and drained, seconds.
    pub produce_secs: f64,
    /// Start → every consumer stopped, seconds.
    pub consume_secs: f64,
    /// CPU use per harness thread.
    pub threads: Vec<ThreadUsage>,
    /// The echo server's totals (echo mode).
    pub echo: Option<EchoStats>,
    /// Backlog mode's check.
    pub backlog: Option<BacklogCheck>,
    /// The broker's config (GET_BROKER_CONFIG), when it answered.
    pub broker_config: Option<BTreeMap<String, String>>,
    /// `--broker-pid`: CPU seconds the broker process used from the start until producers
    /// drained (until consumers stopped when there are no producers).
    pub broker_cpu_s: Option<f64>,
}

/// The client settings of every harness connection.
#[must_use]
pub fn client_config(args: &BenchArgs) -> ClientConfig {
    ClientConfig {
        serialize_type: match args.serialize {
            HeaderEncoding::Json => SerializeType::Json,
            HeaderEncoding::Rocketmq => SerializeType::RocketMq,
        },
        ..ClientConfig::default()
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Runs the benchmark `args` describes, calling `progress` once per completed second.
///
/// # Errors
/// [`RunError`] when the run cannot start; failures during the run are counted instead.
pub fn run(args: &BenchArgs, progress: &mut dyn FnMut(&Progress)) -> Result<RunOutcome, RunError> {
    args.validate()?;
    let echo = if args.mode == Mode::Echo {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Some(EchoServer::start(EchoConfig {
            queues: i32::try_from(args.queues).unwrap_or(i32::MAX),
            routes: EchoRoutes::AllTopics,
            pull_message_size: args.size,
            core: (!args.no_pin).then(|| args.echo_core.unwrap_or(cores - 1)),
        })?)
    } else {
        None
    };
    let namesrv = echo
        .as_ref()
        .map_or_else(|| args.namesrv.clone(), |server| server.addr().to_string());
    let result = run_with_namesrv(args, &namesrv, echo.is_some(), progress);
    let echo_stats = echo.map(EchoServer::stop);
    result.map(|mut outcome| {
        outcome.echo = echo_stats;
        outcome
    })
}

struct Prepared {
    route: ResolvedRoute,
    backlog_before: Option<i64>,
    broker_config: Option<BTreeMap<String, String>>,
}

fn prepare(args: &BenchArgs, namesrv: &str, is_echo: bool) -> Result<Prepared, RunError> {
    let runtime = compio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = client_config(args);
        let client = RemotingClient::new(namesrv, config.clone());
        let default_queue_nums = i32::try_from(args.queues).unwrap_or(i32::MAX);
        let route = resolve(
            &client,
            &args.topic,
            default_queue_nums,
            args.request_timeout(),
        )
        .await?;
        let backlog_before = if args.mode == Mode::Backlog {
            Some(max_offset_sum(args, &route, &config).await?)
        } else {
            None
        };
        let broker_config = if is_echo {
            None
        } else {
            broker_config(&route, &config, args.request_timeout()).await
        };
        Ok(Prepared {
            route,
            backlog_before,
            broker_config,
        })
    })
}

async fn max_offset_sum(
    args: &BenchArgs,
    route: &ResolvedRoute,
    config: &ClientConfig,
) -> Result<i64, RunError> {
    let mut clients: BTreeMap<&str, RemotingClient> = BTreeMap::new();
    let mut sum = 0_i64;
    for queue in &route.write_queues {
        let client = clients
            .entry(queue.broker_addr.as_str())
            .or_insert_with(|| RemotingClient::new(queue.broker_addr.clone(), config.clone()));
        let offset = max_offset(client, &args.topic, queue.queue_id, args.request_timeout())
            .await
            .map_err(|error| RunError::Setup {
                thread: 0,
                error: format!(
                    "GET_MAX_OFFSET {}:{}: {error:?}",
                    args.topic, queue.queue_id
                ),
            })?;
        sum += offset;
    }
    Ok(sum)
}

/// GET_BROKER_CONFIG (26) of the first broker: `key=value` lines. `None` if it fails.
async fn broker_config(
    route: &ResolvedRoute,
    config: &ClientConfig,
    timeout: Duration,
) -> Option<BTreeMap<String, String>> {
    let addr = route.broker_addrs().into_iter().next()?;
    let client = RemotingClient::new(addr, config.clone());
    let request = RemotingCommand::request(
        RequestCode::GetBrokerConfig,
        rmq_net::codec::command::ExtFields::new(),
    );
    let response = client.invoke(request, timeout).await.ok()?;
    if response.response_code() != ResponseCode::Success {
        return None;
    }
    let text = String::from_utf8_lossy(&response.body);
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            .take(BROKER_CONFIG_ENTRIES_MAX)
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect(),
    )
}

fn run_with_namesrv(
    args: &BenchArgs,
    namesrv: &str,
    is_echo: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RunOutcome, RunError> {
    let prepared = prepare(args, namesrv, is_echo)?;
    let started_at_unix_ms = now_unix_ms();
    let shared = Arc::new(RunShared {
        message: MessageSpec {
            topic: args.topic.clone(),
            producer_group: args.producer_group.clone(),
            default_queue_nums: i32::try_from(args.queues).unwrap_or(i32::MAX),
            size: args.size,
            batch: args.batch,
            tags: args.tags.clone(),
            key_space: args.key_space,
            transactional: args.transactional,
            timer: args.timer_delay_ms.map(|delay| TimerSpec {
                delay,
                start_anchor_ms: (args.timer_anchor == TimerAnchor::Start)
                    .then(|| i64::try_from(started_at_unix_ms).unwrap_or(i64::MAX)),
            }),
        },
        consumer: ConsumerSpec {
            topic: args.topic.clone(),
            subscription: args.subscription.clone(),
            sql92: args.sql92,
            sub_version: i64::try_from(started_at_unix_ms).unwrap_or(i64::MAX),
            pull_batch: args.pull_batch,
            long_poll_ms: args.long_poll_ms,
            timeout: args.request_timeout(),
            consume_from: args.consume_from,
        },
        write_queues: prepared.route.write_queues.clone(),
        client_config: client_config(args),
        send_mode: args.send_mode,
        inflight: args.inflight,
        timeout: args.request_timeout(),
        busy_poll: args.busy_poll,
    });
    let plans = plan_threads(args, &prepared.route.read_queues);
    let (events_tx, events) = mpsc::channel();
    let mut controls = Vec::with_capacity(plans.len());
    let mut handles = Vec::with_capacity(plans.len());
    for plan in plans {
        let (control_tx, control_rx) = flume::unbounded();
        controls.push(control_tx);
        handles.push(spawn_worker(
            plan,
            shared.clone(),
            control_rx,
            events_tx.clone(),
        )?);
    }
    drop(events_tx);
    let broadcast = |message: Control| {
        for control in &controls {
            // A thread that has already ended needs no message.
            let _ = control.send(message);
        }
    };
    let outcome = coordinate(args, &events, &broadcast, progress);
    drop(controls);
    for handle in handles {
        if handle.join().is_err() {
            return Err(RunError::ThreadLost);
        }
    }
    let coordinated = outcome?;
    let backlog = match prepared.backlog_before {
        Some(before) => {
            let runtime = compio::runtime::Runtime::new()?;
            let after =
                runtime.block_on(max_offset_sum(args, &prepared.route, &client_config(args)))?;
            let stored = after - before;
            let acked = coordinated.stats.acked.messages;
            Some(BacklogCheck {
                max_offset_sum_before: before,
                max_offset_sum_after: after,
                stored,
                acked,
                matches: u64::try_from(stored).is_ok_and(|stored| stored == acked),
            })
        }
        None => None,
    };
    Ok(RunOutcome {
        started_at_unix_ms,
        route: prepared.route,
        stats: coordinated.stats,
        samples: coordinated.samples,
        produce_secs: coordinated.produce_secs,
        consume_secs: coordinated.consume_secs,
        threads: coordinated.threads,
        echo: None,
        backlog,
        broker_config: prepared.broker_config,
        broker_cpu_s: coordinated.broker_cpu_s,
    })
}

struct Coordinated {
    broker_cpu_s: Option<f64>,
    stats: IntervalStats,
    samples: Vec<Sample>,
    produce_secs: f64,
    consume_secs: f64,
    threads: Vec<ThreadUsage>,
}

/// State of the stop rules.
struct Phase {
    threads: usize,
    ready: usize,
    producers_done: usize,
    finished: usize,
    produced_sent: u64,
    produced_acked: u64,
    producers_stop_sent: bool,
    consumers_stop_sent: bool,
    produce_end: Option<Instant>,
    /// The broker's CPU seconds when the measured interval ended.
    broker_cpu_end_s: Option<f64>,
}

fn coordinate(
    args: &BenchArgs,
    events: &mpsc::Receiver<WorkerEvent>,
    broadcast: &dyn Fn(Control),
    progress: &mut dyn FnMut(&Progress),
) -> Result<Coordinated, RunError> {
    let threads = args.threads;
    let mut phase = Phase {
        threads,
        ready: 0,
        producers_done: 0,
        finished: 0,
        produced_sent: 0,
        produced_acked: 0,
        producers_stop_sent: false,
        consumers_stop_sent: false,
        produce_end: None,
        broker_cpu_end_s: None,
    };
    while phase.ready < threads {
        match events.recv() {
            Ok(WorkerEvent::Ready { .. }) => phase.ready += 1,
            Ok(WorkerEvent::SetupFailed { thread, error }) => {
                return Err(RunError::Setup { thread, error })
            }
            Ok(_) | Err(_) => return Err(RunError::ThreadLost),
        }
    }
    let start = Instant::now() + START_DELAY;
    broadcast(Control::Start { at: start });
    // Read START_DELAY early; an idle broker uses no CPU in between.
    let broker_cpu_start_s = args
        .broker_pid
        .and_then(|pid| cpu_seconds("/proc", pid).ok());
    let broker_cpu_now = || {
        args.broker_pid
            .and_then(|pid| cpu_seconds("/proc", pid).ok())
    };
    let probe = match args.broker_pid {
        Some(pid) => Some(
            ProcessProbe::new("/proc", pid).map_err(|error| RunError::Setup {
                thread: 0,
                error: format!("--broker-pid {pid}: {error}"),
            })?,
        ),
        None => None,
    };
    let mut aggregator =
        Aggregator::new(threads, args.send_mode != SendMode::Oneway).with_probe(probe);
    let mut usages = vec![ThreadUsage::default(); threads];
    let stop_rule = args.stop_rule();
    while phase.finished < threads {
        let completed = match events.recv_timeout(POLL_INTERVAL) {
            Ok(WorkerEvent::Interval {
                thread,
                index,
                end,
                stats,
            }) => aggregator.add(thread, index, end, &stats),
            Ok(WorkerEvent::ProducersDone { sent, acked, .. }) => {
                phase.producers_done += 1;
                phase.produced_sent += sent;
                phase.produced_acked += acked;
                Vec::new()
            }
            Ok(WorkerEvent::Finished { thread, usage }) => {
                phase.finished += 1;
                usages[thread] = usage;
                aggregator.finish(thread)
            }
            Ok(WorkerEvent::Ready { .. } | WorkerEvent::SetupFailed { .. }) => Vec::new(),
            Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => return Err(RunError::ThreadLost),
        };
        for sample in completed {
            let overall = aggregator.overall();
            progress(&Progress {
                fraction: fraction(args, &sample, overall),
                sent_total: overall.sent.messages,
                acked_total: overall.acked.messages,
                consumed_total: overall.consumed.messages,
                errors_total: overall.errors.total(),
                sample,
            });
        }
        let now = Instant::now();
        if phase.producers_done == threads && phase.produce_end.is_none() {
            phase.produce_end = Some(now);
            if args.has_producers() {
                phase.broker_cpu_end_s = broker_cpu_now();
            }
        }
        apply_stop_rules(
            args,
            &mut phase,
            start,
            now,
            aggregator.overall(),
            broadcast,
            stop_rule,
        );
    }
    let end = Instant::now();
    if phase.broker_cpu_end_s.is_none() {
        phase.broker_cpu_end_s = broker_cpu_now();
    }
    let broker_cpu_s = broker_cpu_start_s
        .zip(phase.broker_cpu_end_s)
        .map(|(start, end)| (end - start).max(0.0));
    let (stats, samples) = aggregator.into_parts();
    let since_start = |instant: Instant| instant.saturating_duration_since(start).as_secs_f64();
    Ok(Coordinated {
        broker_cpu_s,
        stats,
        samples,
        produce_secs: since_start(phase.produce_end.unwrap_or(end)),
        consume_secs: since_start(end),
        threads: usages,
    })
}

fn fraction(args: &BenchArgs, sample: &Sample, overall: &IntervalStats) -> Option<f64> {
    let rule = args.stop_rule();
    let by_time = rule
        .duration
        .map(|duration| sample.t_s / duration.as_secs_f64());
    let done = if args.has_producers() {
        overall.sent.messages
    } else {
        overall.consumed.messages
    };
    let by_count = rule.count.map(|count| done as f64 / count as f64);
    match (by_time, by_count) {
        (Some(time), Some(count)) => Some(time.max(count).min(1.0)),
        (time, count) => time.or(count).map(|value| value.min(1.0)),
    }
}

fn apply_stop_rules(
    args: &BenchArgs,
    phase: &mut Phase,
    start: Instant,
    now: Instant,
    overall: &IntervalStats,
    broadcast: &dyn Fn(Control),
    rule: crate::cli::StopRule,
) {
    let elapsed = now.saturating_duration_since(start);
    let time_up = rule.duration.is_some_and(|duration| elapsed >= duration);
    if args.has_producers() && !phase.producers_stop_sent && time_up {
        broadcast(Control::StopProducers);
        phase.producers_stop_sent = true;
    }
    if !args.has_consumers() || phase.consumers_stop_sent {
        return;
    }
    let stop = if !args.has_producers() {
        time_up
            || rule
                .count
                .is_some_and(|count| overall.consumed.messages >= count)
    } else if args.mode == Mode::Echo {
        // Echoed pulls never run dry: consumers stop with the producers.
        phase.produce_end.is_some()
    } else if let Some(produce_end) = phase.produce_end {
        let produced = if args.send_mode == SendMode::Oneway {
            phase.produced_sent
        } else {
            phase.produced_acked
        };
        let target = produced.saturating_mul(args.groups as u64);
        let drained = overall.consumed.messages >= target;
        drained || now >= produce_end + Duration::from_secs_f64(args.drain_timeout)
    } else {
        false
    };
    if stop {
        broadcast(Control::StopConsumers);
        phase.consumers_stop_sent = true;
    }
    assert!(phase.producers_done <= phase.threads);
}
