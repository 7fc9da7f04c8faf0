//! One harness thread: a pinned OS thread running its own compio runtime, with the producers
//! and pull loops the plan gives it. It sets up (connections, start offsets), reports ready,
//! waits for the coordinator's start, ships its [`IntervalStats`] once a second, and stops
//! producers and consumers when told. Talks to the coordinator only through the two channels.
//! Must never share `Rc` state with another thread, nor block its runtime.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmq_net::codec::body::heartbeat::{HeartbeatData, ProducerData};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::RequestCode;
use rmq_net::codec::command::{ExtFields, RemotingCommand};
use rmq_net::conn::{ClientConfig, RemotingClient};

use crate::cli::{BenchArgs, SendMode};
use crate::consumer::{heartbeat_loop, heartbeat_request, ConsumerSpec, QueueConsumer};
use crate::lean::conn::{LeanLinks, LeanSettings};
use crate::lean::request::LeanRequests;
use crate::message::{MessageFactory, MessageSpec};
use crate::producer::{wall_clock_ms, Producer, ProducerConnection, ProducerContext};
use crate::rate::TokenBucket;
use crate::route::QueueTarget;
use crate::stats::IntervalStats;
use crate::sync::{Event, Window};
use crate::usage::ThreadUsage;

/// Length of one stats interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Pins the calling thread to `core` (modulo the cores there are); false if it could not.
pub fn pin_to_core(core: usize) -> bool {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.is_empty() {
        return false;
    }
    core_affinity::set_for_current(cores[core % cores.len()])
}

/// What every thread of a run shares (read-only).
#[derive(Debug)]
pub struct RunShared {
    /// Message shape.
    pub message: MessageSpec,
    /// Consumer settings.
    pub consumer: ConsumerSpec,
    /// Write queues.
    pub write_queues: Vec<QueueTarget>,
    /// Client settings of every connection.
    pub client_config: ClientConfig,
    /// Send mode.
    pub send_mode: SendMode,
    /// Async window per connection.
    pub inflight: usize,
    /// Send timeout.
    pub timeout: Duration,
    /// Threads poll their ring until the run ends instead of sleeping (`--busy-poll`).
    pub busy_poll: bool,
}

/// One producer of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerPlan {
    /// Global producer index.
    pub index: usize,
    /// Messages it sends; `None` = until stopped.
    pub quota: Option<u64>,
}

/// One consumer connection of a thread: the queues of one group it pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConnectionPlan {
    /// Group.
    pub group: String,
    /// Queues it pulls, one loop each.
    pub queues: Vec<QueueTarget>,
}

/// Everything one thread runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadPlan {
    /// Thread index.
    pub index: usize,
    /// Core to pin to.
    pub core: Option<usize>,
    /// Producer connections, each with the producers sharing it.
    pub producer_connections: Vec<Vec<ProducerPlan>>,
    /// Consumer connections.
    pub consumer_connections: Vec<ConsumerConnectionPlan>,
    /// This thread's share of `--rate`.
    pub rate_per_second: Option<f64>,
}

impl ThreadPlan {
    /// Producers on this thread.
    #[must_use]
    pub fn producer_count(&self) -> usize {
        self.producer_connections.iter().map(Vec::len).sum()
    }

    /// Pull loops on this thread.
    #[must_use]
    pub fn queue_loop_count(&self) -> usize {
        self.consumer_connections
            .iter()
            .map(|c| c.queues.len())
            .sum()
    }
}

/// Splits producers, connections, pull loops and the rate over `args.threads` threads.
/// Connection `c` runs on thread `c % threads`; producer `p` uses connection `p % connections`;
/// group `g`'s consumer connection `j` pulls the queues `q` with `q % consumers == j`.
#[must_use]
pub fn plan_threads(args: &BenchArgs, read_queues: &[QueueTarget]) -> Vec<ThreadPlan> {
    let threads = args.threads;
    let mut plans: Vec<ThreadPlan> = (0..threads)
        .map(|index| ThreadPlan {
            index,
            core: (!args.no_pin).then_some(args.first_core + index),
            producer_connections: Vec::new(),
            consumer_connections: Vec::new(),
            rate_per_second: None,
        })
        .collect();
    if args.has_producers() {
        let connections = args.producer_connections();
        let mut per_connection: Vec<Vec<ProducerPlan>> = vec![Vec::new(); connections];
        let producers = args.producers as u64;
        for index in 0..args.producers {
            let quota = args
                .count
                .map(|count| count / producers + u64::from((index as u64) < count % producers));
            per_connection[index % connections].push(ProducerPlan { index, quota });
        }
        for (connection, producers) in per_connection.into_iter().enumerate() {
            plans[connection % threads]
                .producer_connections
                .push(producers);
        }
        if args.rate > 0 {
            for plan in &mut plans {
                let share = plan.producer_count() as f64 / args.producers as f64;
                if share > 0.0 {
                    plan.rate_per_second = Some(args.rate as f64 * share);
                }
            }
        }
    }
    if args.has_consumers() {
        let consumers = args.consumer_connections();
        for group in 0..args.groups {
            for connection in 0..consumers {
                let queues: Vec<QueueTarget> = read_queues
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| index % consumers == connection)
                    .map(|(_, queue)| queue.clone())
                    .collect();
                if queues.is_empty() {
                    continue;
                }
                plans[(group * consumers + connection) % threads]
                    .consumer_connections
                    .push(ConsumerConnectionPlan {
                        group: format!("{}-{group}", args.group_prefix),
                        queues,
                    });
            }
        }
    }
    assert_eq!(
        plans.iter().map(ThreadPlan::producer_count).sum::<usize>(),
        if args.has_producers() {
            args.producers
        } else {
            0
        }
    );
    plans
}

/// Coordinator → thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Start producing and consuming; intervals count from `at`.
    Start {
        /// Common time origin of every thread.
        at: Instant,
    },
    /// Producers stop (and drain their in-flight requests).
    StopProducers,
    /// Pull loops stop.
    StopConsumers,
}

/// Thread → coordinator.
#[derive(Debug)]
pub enum WorkerEvent {
    /// Set up; waiting for [`Control::Start`].
    Ready {
        /// Thread index.
        thread: usize,
    },
    /// Could not set up; the thread has ended.
    SetupFailed {
        /// Thread index.
        thread: usize,
        /// Why.
        error: String,
    },
    /// Stats of interval `index` (`[index, end)` seconds after the start).
    Interval {
        /// Thread index.
        thread: usize,
        /// Interval number (second since the start).
        index: u64,
        /// End of the interval, since the start.
        end: Duration,
        /// What happened in it.
        stats: Box<IntervalStats>,
    },
    /// Every producer of the thread has stopped and drained.
    ProducersDone {
        /// Thread index.
        thread: usize,
        /// Messages the thread's producers sent, in total.
        sent: u64,
        /// Messages acknowledged, in total.
        acked: u64,
    },
    /// The thread has finished; its last interval was sent before this.
    Finished {
        /// Thread index.
        thread: usize,
        /// CPU used from start to finish.
        usage: ThreadUsage,
    },
}

/// Starts the thread for `plan`.
///
/// # Errors
/// When the OS thread cannot be spawned.
pub fn spawn_worker(
    plan: ThreadPlan,
    shared: Arc<RunShared>,
    control: flume::Receiver<Control>,
    events: mpsc::Sender<WorkerEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("rmq-bench-{}", plan.index))
        .spawn(move || {
            if let Some(core) = plan.core {
                // An unpinned thread still runs; the report records whether pinning was asked.
                let _ = pin_to_core(core);
            }
            let thread = plan.index;
            match compio::runtime::Runtime::new() {
                Ok(runtime) => {
                    let idle_poll = if shared.busy_poll {
                        rmq_net::poll_loop::NEVER_SLEEP
                    } else {
                        Duration::ZERO
                    };
                    let worker = run_worker(plan, shared, control, events);
                    rmq_net::poll_loop::block_on(&runtime, worker, idle_poll);
                }
                Err(error) => {
                    let _ = events.send(WorkerEvent::SetupFailed {
                        thread,
                        error: format!("cannot start the io_uring runtime: {error}"),
                    });
                }
            }
        })
}

/// Per-thread state built during setup.
struct Setup {
    producers: Vec<(Producer, ProducerConnection)>,
    /// Every producer connection once (for the oneway flush).
    producer_connections: Vec<ProducerConnection>,
    consumers: Vec<QueueConsumer>,
    heartbeats: Vec<(RemotingClient, RemotingCommand)>,
}

fn clients_for(
    addrs: impl Iterator<Item = String>,
    config: &ClientConfig,
) -> BTreeMap<String, RemotingClient> {
    addrs
        .map(|addr| {
            let client = RemotingClient::new(addr.clone(), config.clone());
            (addr, client)
        })
        .collect()
}

/// Async mode: the lean connections of one harness connection.
async fn lean_links(
    queues: &[QueueTarget],
    shared: &RunShared,
    inflight_max: usize,
    stats: &Rc<RefCell<IntervalStats>>,
) -> Result<Rc<LeanLinks>, String> {
    let settings = LeanSettings {
        inflight_max,
        stats: stats.clone(),
        timeout: shared.timeout,
        frame_limits: shared.client_config.conn.frame_limits,
    };
    let addrs = queues.iter().map(|queue| queue.broker_addr.clone());
    LeanLinks::open(addrs, shared.client_config.connect_timeout, settings)
        .await
        .map(Rc::new)
        .map_err(|(addr, error)| format!("cannot connect to {addr}: {error}"))
}

async fn set_up(
    plan: &ThreadPlan,
    shared: &RunShared,
    stats: &Rc<RefCell<IntervalStats>>,
) -> Result<Setup, String> {
    let now_ms = wall_clock_ms();
    let queues = Rc::new(shared.write_queues.clone());
    let mut producers = Vec::new();
    let mut producer_connections = Vec::new();
    let is_async = shared.send_mode == SendMode::Async;
    // Sync sends take the lean path too (each producer with a window of one), so the
    // unloaded round trip measures the broker, not the general client; a transactional run
    // keeps the general client (it reads the half message's reply to commit it).
    let is_lean_sync = shared.send_mode == SendMode::Sync && !shared.message.transactional;
    let is_lean = is_async || is_lean_sync;
    for producer_plans in &plan.producer_connections {
        let addrs = queues.iter().map(|queue| queue.broker_addr.clone());
        let lean = if is_lean {
            // Async: the connection's window; sync: one request per producer on it.
            let inflight_max = if is_async {
                shared.inflight
            } else {
                producer_plans.len()
            };
            Some(lean_links(&queues, shared, inflight_max, stats).await?)
        } else {
            None
        };
        let connection = ProducerConnection {
            clients: Rc::new(clients_for(addrs, &shared.client_config)),
            window: is_async.then(|| Window::new(shared.inflight)),
            lean,
        };
        for producer_plan in producer_plans {
            let factory =
                MessageFactory::new(shared.message.clone(), &queues, producer_plan.index, now_ms)
                    .map_err(|error| format!("bad message parameters: {error}"))?;
            let lean = if is_lean {
                let requests = LeanRequests::new(
                    shared.message.clone(),
                    &queues,
                    producer_plan.index,
                    now_ms,
                    shared.client_config.serialize_type,
                )
                .map_err(|error| format!("bad message parameters: {error}"))?;
                Some(requests)
            } else {
                None
            };
            let producer = Producer {
                factory,
                queues: queues.clone(),
                next_queue: producer_plan.index,
                quota: producer_plan.quota,
                batch: shared.message.batch,
                lean,
                own_window: is_lean_sync.then(|| Window::new(1)),
            };
            producers.push((producer, connection.clone()));
        }
        producer_connections.push(connection);
    }
    let mut consumers = Vec::new();
    let mut heartbeats = Vec::new();
    for (index, connection) in plan.consumer_connections.iter().enumerate() {
        let addrs = connection
            .queues
            .iter()
            .map(|queue| queue.broker_addr.clone());
        let clients = clients_for(addrs, &shared.client_config);
        let client_id = format!(
            "127.0.0.1@rmq-bench-{}-{}-{index}",
            std::process::id(),
            plan.index
        );
        for client in clients.values() {
            heartbeats.push((
                client.clone(),
                heartbeat_request(&client_id, &connection.group, &shared.consumer),
            ));
        }
        for queue in &connection.queues {
            let mut consumer = QueueConsumer {
                client: clients[&queue.broker_addr].clone(),
                group: connection.group.clone(),
                queue: queue.clone(),
                offset: 0,
            };
            consumer
                .init_offset(&shared.consumer)
                .await
                .map_err(|error| error.to_string())?;
            consumers.push(consumer);
        }
    }
    Ok(Setup {
        producers,
        producer_connections,
        consumers,
        heartbeats,
    })
}

async fn run_worker(
    plan: ThreadPlan,
    shared: Arc<RunShared>,
    control: flume::Receiver<Control>,
    events: mpsc::Sender<WorkerEvent>,
) {
    let thread = plan.index;
    // Made before the setup so the lean connections can hold it; nothing counts before Start.
    let stats = Rc::new(RefCell::new(IntervalStats::new()));
    let setup = match set_up(&plan, &shared, &stats).await {
        Ok(setup) => setup,
        Err(error) => {
            let _ = events.send(WorkerEvent::SetupFailed { thread, error });
            return;
        }
    };
    // The coordinator is gone if a send fails; the thread then simply ends.
    if events.send(WorkerEvent::Ready { thread }).is_err() {
        return;
    }
    let Ok(Control::Start { at: start }) = control.recv_async().await else {
        return;
    };
    // Every thread starts at the same instant, so interval boundaries line up.
    compio::time::sleep_until(start).await;
    let usage_start = ThreadUsage::of_current_thread().unwrap_or_default();
    let producers_stop = Event::new();
    let consumers_stop = Event::new();
    let control_task = compio::runtime::spawn(listen(
        control,
        producers_stop.clone(),
        consumers_stop.clone(),
    ));
    let interval_index = Rc::new(Cell::new(0_u64));
    let shipped = Rc::new(Cell::new(ShippedTotals::default()));
    let ticker = compio::runtime::spawn(tick(
        TickerState {
            thread,
            start,
            index: interval_index.clone(),
            shipped: shipped.clone(),
        },
        stats.clone(),
        events.clone(),
    ));

    let bucket = plan.rate_per_second.map(|rate| {
        Rc::new(RefCell::new(TokenBucket::new(
            rate,
            shared.message.batch,
            Instant::now(),
        )))
    });
    let context = ProducerContext {
        stats: stats.clone(),
        stop: producers_stop.clone(),
        bucket,
        timeout: shared.timeout,
        mode: shared.send_mode,
        transaction_group: shared
            .message
            .transactional
            .then(|| shared.message.producer_group.clone()),
    };
    let setup_connections = setup.producer_connections;
    let producer_tasks: Vec<_> = setup
        .producers
        .into_iter()
        .map(|(producer, connection)| {
            compio::runtime::spawn(producer.run(connection, context.clone()))
        })
        .collect();
    let consumer_spec = Rc::new(shared.consumer.clone());
    let heartbeat_tasks: Vec<_> = setup
        .heartbeats
        .into_iter()
        .map(|(client, request)| {
            compio::runtime::spawn(heartbeat_loop(
                client,
                request,
                shared.consumer.timeout,
                stats.clone(),
                consumers_stop.clone(),
            ))
        })
        .collect();
    let consumer_tasks: Vec<_> = setup
        .consumers
        .into_iter()
        .map(|consumer| {
            compio::runtime::spawn(consumer.run(
                consumer_spec.clone(),
                stats.clone(),
                consumers_stop.clone(),
            ))
        })
        .collect();

    for task in producer_tasks {
        // A panicking producer aborts the process (panic = abort in release); in tests the
        // JoinError is the panic, which the test harness reports.
        let _ = task.await;
    }
    let (sent, acked) = {
        let current = stats.borrow();
        let shipped = shipped.get();
        (
            shipped.sent + current.sent.messages,
            shipped.acked + current.acked.messages,
        )
    };
    if shared.send_mode == SendMode::Oneway {
        flush_oneway(&setup_connections, &shared, &stats).await;
    }
    let _ = events.send(WorkerEvent::ProducersDone {
        thread,
        sent,
        acked,
    });
    for task in consumer_tasks.into_iter().chain(heartbeat_tasks) {
        let _ = task.await;
    }
    drop(ticker);
    drop(control_task);
    let last = std::mem::take(&mut *stats.borrow_mut());
    let _ = events.send(WorkerEvent::Interval {
        thread,
        index: interval_index.get(),
        end: start.elapsed(),
        stats: Box::new(last),
    });
    let usage = ThreadUsage::of_current_thread()
        .unwrap_or_default()
        .since(usage_start);
    let _ = events.send(WorkerEvent::Finished { thread, usage });
}

/// Oneway sends return once queued; a request/response on each connection after them
/// returns only when the peer has read everything before it, so the run counts (and times)
/// oneway messages the peer actually received. A producer heartbeat serves: every broker
/// answers it. Failures are counted as `send:flush`.
async fn flush_oneway(
    connections: &[ProducerConnection],
    shared: &RunShared,
    stats: &RefCell<IntervalStats>,
) {
    let heartbeat = HeartbeatData {
        client_id: format!("127.0.0.1@rmq-bench-{}", std::process::id()),
        producer_data_set: vec![ProducerData {
            group_name: shared.message.producer_group.clone(),
        }],
        ..HeartbeatData::default()
    };
    let request = RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new())
        .with_body(heartbeat.to_json());
    for connection in connections {
        for client in connection.clients.values() {
            if client
                .invoke(request.clone(), shared.timeout)
                .await
                .is_err()
            {
                stats.borrow_mut().errors.add("send:flush", 1);
            }
        }
    }
}

/// Applies control messages until the channel closes.
async fn listen(control: flume::Receiver<Control>, producers_stop: Event, consumers_stop: Event) {
    while let Ok(message) = control.recv_async().await {
        match message {
            Control::Start { .. } => {}
            Control::StopProducers => producers_stop.set(),
            Control::StopConsumers => consumers_stop.set(),
        }
    }
    // The coordinator is gone: stop everything.
    producers_stop.set();
    consumers_stop.set();
}

/// Producer totals of the intervals shipped so far.
#[derive(Debug, Clone, Copy, Default)]
struct ShippedTotals {
    sent: u64,
    acked: u64,
}

/// What the ticker needs besides the stats and the channel.
struct TickerState {
    thread: usize,
    start: Instant,
    /// Index of the interval being filled.
    index: Rc<Cell<u64>>,
    shipped: Rc<Cell<ShippedTotals>>,
}

/// Ships the thread's stats at every whole second after the start.
async fn tick(
    state: TickerState,
    stats: Rc<RefCell<IntervalStats>>,
    events: mpsc::Sender<WorkerEvent>,
) {
    loop {
        let current = state.index.get();
        let end = INTERVAL * u32::try_from(current + 1).unwrap_or(u32::MAX);
        compio::time::sleep_until(state.start + end).await;
        let snapshot = std::mem::take(&mut *stats.borrow_mut());
        state.index.set(current + 1);
        let totals = state.shipped.get();
        state.shipped.set(ShippedTotals {
            sent: totals.sent + snapshot.sent.messages,
            acked: totals.acked + snapshot.acked.messages,
        });
        let event = WorkerEvent::Interval {
            thread: state.thread,
            index: current,
            end,
            stats: Box::new(snapshot),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn queues(count: i32) -> Vec<QueueTarget> {
        (0..count)
            .map(|queue_id| QueueTarget {
                broker_name: "b".into(),
                broker_addr: "127.0.0.1:1".into(),
                queue_id,
            })
            .collect()
    }

    fn args(extra: &[&str]) -> BenchArgs {
        BenchArgs::parse_from(std::iter::once("rmq-bench").chain(extra.iter().copied()))
    }

    #[test]
    fn producers_quotas_and_rate_are_split() {
        let args = args(&[
            "--producers",
            "5",
            "--connections",
            "3",
            "--threads",
            "2",
            "--count",
            "11",
            "--rate",
            "1000",
        ]);
        let plans = plan_threads(&args, &queues(4));
        assert_eq!(plans.len(), 2);
        // Connections 0 and 2 on thread 0 (producers 0,3 and 2), connection 1 on thread 1.
        assert_eq!(plans[0].producer_count(), 3);
        assert_eq!(plans[1].producer_count(), 2);
        let quotas: u64 = plans
            .iter()
            .flat_map(|plan| plan.producer_connections.iter().flatten())
            .map(|producer| producer.quota.expect("count given"))
            .sum();
        assert_eq!(quotas, 11);
        let rates: f64 = plans.iter().filter_map(|plan| plan.rate_per_second).sum();
        assert!((rates - 1000.0).abs() < 1e-6);
        assert_eq!(plans[1].core, Some(1));
    }

    #[test]
    fn every_group_gets_every_queue() {
        let args = args(&[
            "--mode",
            "consume",
            "--consumers",
            "3",
            "--groups",
            "2",
            "--threads",
            "2",
        ]);
        let plans = plan_threads(&args, &queues(8));
        assert_eq!(
            plans.iter().map(ThreadPlan::producer_count).sum::<usize>(),
            0
        );
        for group in ["rmq-bench-group-0", "rmq-bench-group-1"] {
            let mut ids: Vec<i32> = plans
                .iter()
                .flat_map(|plan| &plan.consumer_connections)
                .filter(|connection| connection.group == group)
                .flat_map(|connection| connection.queues.iter().map(|queue| queue.queue_id))
                .collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..8).collect::<Vec<_>>());
        }
        assert_eq!(
            plans
                .iter()
                .map(ThreadPlan::queue_loop_count)
                .sum::<usize>(),
            16
        );
    }
}
