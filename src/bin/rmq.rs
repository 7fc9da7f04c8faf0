//! The `rmq` binary: NameServer, broker, standalone (both in one process), admin and tuning
//! commands. Parses arguments and config, starts the runtimes, waits. All logic lives in the
//! library crates; errors here are `anyhow` with the file or peer named.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use rmq::config::{parse_properties, BrokerConfig};
use rmq::namesrv::kv::KvConfig;
use rmq::namesrv::processor::{NameServer, NamesrvOptions};
use rmq_net::conn::ServeConfig;

// The global allocator: jemalloc (default feature `jemalloc`), chosen in
// perf-reports/2026-12-06-allocator/ over glibc malloc, whose per-thread arenas kept the peak of
// every wave of connections, and mimalloc, whose RSS after a wave swung between 50 and 180 MiB.
// `--no-default-features` gives glibc, plus `--features mimalloc` mimalloc; with both features
// (`--all-features`) jemalloc wins.
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL_ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "rmq",
    version,
    about = "RocketMQ-compatible NameServer and broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a NameServer.
    Namesrv(NamesrvArgs),
    /// Run a broker (`-c broker.conf`, RocketMQ's keys).
    Broker(BrokerArgs),
    /// Run a NameServer and a broker in one process, with an embedded default config.
    Standalone(StandaloneArgs),
    /// Administration (topics, routes, clusters, consumer progress, broker status).
    /// With ACL on, set RMQ_ACCESS_KEY and RMQ_SECRET_KEY to sign the requests.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Host tuning tools.
    Tuning {
        #[command(subcommand)]
        command: TuningCommand,
    },
    /// Print a shell completion script (`rmq completions bash > /etc/bash_completion.d/rmq`).
    Completions {
        /// Shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct NamesrvArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 9876)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = Ipv4Addr::UNSPECIFIED)]
    bind: Ipv4Addr,
    /// Where the KV config is persisted.
    #[arg(long, default_value = "./data/namesrv/kvConfig.json")]
    kv_config: PathBuf,
    /// Put `orderTopicConf` from the KV config into routes (`orderMessageEnable`).
    #[arg(long)]
    order_message_enable: bool,
}

#[derive(Args)]
struct BrokerArgs {
    /// broker.conf (Java properties, RocketMQ's keys).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// NameServer addresses, `;`-separated (overrides `namesrvAddr`).
    #[arg(short = 'n', long = "namesrv")]
    namesrv: Option<String>,
    /// Shards (default: `shards` in the config, else one per core; at most 128).
    #[arg(long, value_parser = parse_shards)]
    shards: Option<usize>,
}

#[derive(Args)]
struct StandaloneArgs {
    /// NameServer port (0 = any free port).
    #[arg(long, default_value_t = 9876)]
    namesrv_port: u16,
    /// Broker port (0 = any free port).
    #[arg(long, default_value_t = 10911)]
    broker_port: u16,
    /// Store directory (`storePathRootDir`).
    #[arg(long, default_value = "./data")]
    store_dir: PathBuf,
    /// broker.conf to apply over the embedded defaults.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Shards (default: one per core; at most 128).
    #[arg(long, value_parser = parse_shards)]
    shards: Option<usize>,
    /// Address the NameServer and the broker listen on (default: loopback while `brokerIP1` is
    /// a loopback address, as in the embedded config; every address otherwise).
    #[arg(long)]
    bind: Option<Ipv4Addr>,
}

/// `--shards`: 1 to [`rmq::limits::SHARDS_MAX`] (the shard id must fit a physical offset).
fn parse_shards(text: &str) -> Result<usize, String> {
    let shards: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (1..=rmq::limits::SHARDS_MAX).contains(&shards) {
        Ok(shards)
    } else {
        Err(format!("must be 1 to {}", rmq::limits::SHARDS_MAX))
    }
}

/// CommitLog segment size of the embedded standalone config (Java's 1 GiB default applies
/// when a broker.conf is given): smaller segments keep a first start light.
const STANDALONE_SEGMENT_SIZE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Subcommand)]
enum AdminCommand {
    /// Create or update a topic on every master of a cluster, or on one broker.
    UpdateTopic {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Cluster (default: every cluster).
        #[arg(short = 'c', long)]
        cluster: Option<String>,
        /// One broker address instead of a cluster.
        #[arg(short = 'b', long)]
        broker: Option<String>,
        /// Read queues.
        #[arg(short = 'r', long, default_value_t = 8)]
        read_queues: i32,
        /// Write queues.
        #[arg(short = 'w', long, default_value_t = 8)]
        write_queues: i32,
        /// Permission (6 = read+write, 4 = read, 2 = write).
        #[arg(short = 'p', long, default_value_t = 6)]
        perm: i32,
        /// Order topic.
        #[arg(short = 'o', long)]
        order: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic from every master and from the NameServer.
    DeleteTopic {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Cluster (default: every cluster).
        #[arg(short = 'c', long)]
        cluster: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List topics known to the NameServer.
    TopicList {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's route.
    TopicRoute {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's queues: min/max offsets and last update per queue on every master.
    TopicStatus {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show clusters and brokers (masters and slaves), each with its role and replication lag
    /// per shard.
    ClusterList {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a consumer group's progress (offsets and lag per queue) on every master.
    ConsumerProgress {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Consumer group.
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Only this topic (default: every topic the group has offsets on).
        #[arg(short = 't', long)]
        topic: Option<String>,
        /// Cluster (default: every cluster).
        #[arg(short = 'c', long)]
        cluster: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reset a consumer group's offsets of a topic to a store time on every master serving
    /// the topic; live consumers restart from there. Prints each queue's old and new offset.
    ResetOffsetByTime {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Consumer group.
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Epoch ms, now, -1 (max offsets), yyyy-MM-dd#HH:mm:ss:SSS (UTC), or -<n><ms|s|m|h|d>.
        #[arg(short = 's', long = "timestamp", allow_hyphen_values = true)]
        timestamp: String,
        /// Move offsets forward too (mqadmin's default: true).
        #[arg(short = 'f', long = "force", default_value_t = true, action = clap::ArgAction::Set)]
        force: bool,
        /// One broker address instead of every master in the topic's route.
        #[arg(short = 'b', long)]
        broker: Option<String>,
        /// Print JSON rows instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show each live consumer's own offsets of a topic (asked through every master).
    ConsumerStatus {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Consumer group.
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Only this client id.
        #[arg(short = 'i', long = "client-id")]
        client_id: Option<String>,
        /// One broker address instead of every master in the topic's route.
        #[arg(short = 'b', long)]
        broker: Option<String>,
        /// Print JSON rows instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a broker's pending transactions (half messages without an outcome) per producer
    /// group: count and oldest age.
    TransPending {
        /// Broker address.
        #[arg(short = 'b', long = "broker")]
        broker: String,
        /// Only this producer group.
        #[arg(short = 'g', long = "group")]
        group: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a broker's pending timer messages: count per topic, next due time, per shard.
    TimerStatus {
        /// Broker address.
        #[arg(short = 'b', long = "broker")]
        broker: String,
        /// Only this topic's count.
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a broker's runtime statistics.
    BrokerStatus {
        /// Broker address.
        #[arg(short = 'b', long = "broker")]
        broker: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operator commands (subscription groups, connections, messages, broker config, drain).
    #[command(flatten)]
    Ops(rmq::admin_ops::cli::OpsCommand),
}

#[derive(Subcommand)]
enum TuningCommand {
    /// Check this host against the tuning guide (tuning/README.md); exits 1 on failures.
    Check(TuningCheckArgs),
}

#[derive(Args)]
struct TuningCheckArgs {
    /// The broker's store directory (checks its filesystem and block device).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, conflicts_with = "script")]
    json: bool,
    /// Print the commands that would apply the recommendations.
    #[arg(long)]
    script: bool,
    /// Shards the broker will run (sizes the memlock requirement).
    #[arg(long)]
    shards: Option<usize>,
    /// Check the limits of this running process instead of our own.
    #[arg(long)]
    pid: Option<u32>,
    /// Read /proc and /sys under this root (testing).
    #[arg(long, default_value = "/")]
    root: PathBuf,
}

fn main() -> anyhow::Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "rmq",
                &mut script,
            );
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
                .context("writing the completion script")
        }
        Command::Namesrv(args) => run_namesrv(&args),
        Command::Broker(args) => {
            let mut config = load_broker_config(args.config.as_deref())?;
            if let Some(namesrv) = args.namesrv {
                config.namesrv_addrs = namesrv
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect();
            }
            let shards = args
                .shards
                .or(config.shards)
                .unwrap_or_else(rmq::runtime::default_shard_count);
            run_broker(config, shards, None)
        }
        Command::Standalone(args) => run_standalone(&args),
        Command::Admin { command } => run_admin(command),
        Command::Tuning {
            command: TuningCommand::Check(args),
        } => {
            let format = if args.json {
                rmq_tuning::OutputFormat::Json
            } else if args.script {
                rmq_tuning::OutputFormat::Script
            } else {
                rmq_tuning::OutputFormat::Table
            };
            let options = rmq_tuning::CheckOptions {
                root: args.root,
                format,
                data_dir: args.data_dir,
                shards: args.shards,
                pid: args.pid,
            };
            let outcome = rmq_tuning::run_check(&options, &mut std::io::stdout().lock())
                .context("tuning check")?;
            std::process::exit(outcome.exit_code);
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): one JSON object per line when
/// `RMQ_LOG_FORMAT=json` (for log shippers), else text, with colour codes only when stderr
/// is a terminal (a log file or journald gets plain text).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("RMQ_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().with_ansi(false).init(),
        Ok("text") | Err(_) => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Ok(other) => {
            builder.with_ansi(false).init();
            tracing::warn!(
                RMQ_LOG_FORMAT = other,
                "unknown log format (json or text); logging text"
            );
        }
    }
}

fn load_broker_config(path: Option<&std::path::Path>) -> anyhow::Result<BrokerConfig> {
    let Some(path) = path else {
        return Ok(BrokerConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let props = parse_properties(&text).with_context(|| format!("parsing {}", path.display()))?;
    let loaded =
        BrokerConfig::from_properties(&props).with_context(|| format!("in {}", path.display()))?;
    for key in &loaded.unknown_keys {
        tracing::warn!(key, file = %path.display(), "unknown config key ignored");
    }
    Ok(loaded.config)
}

/// How long a clean shutdown waits for each shard to flush.
const SHUTDOWN_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The open-files budget of this process (raised to the hard limit), logged once.
fn fd_budget(shards: usize, listeners: usize) -> rmq::runtime::fds::FdBudget {
    let budget = rmq::runtime::fds::budget(shards, listeners);
    if budget.connections_per_listener < 1024 {
        tracing::warn!(
            open_files_limit = budget.limit,
            reserved_for_storage = budget.reserved,
            connections_per_listener = budget.connections_per_listener,
            "low open-files limit: raise LimitNOFILE / ulimit -n (RocketMQ asks for 655350)"
        );
    } else {
        tracing::info!(
            open_files_limit = budget.limit,
            reserved_for_storage = budget.reserved,
            connections_per_listener = budget.connections_per_listener,
            "file-descriptor budget"
        );
    }
    budget
}

fn run_broker(
    config: BrokerConfig,
    shards: usize,
    budget: Option<rmq::runtime::fds::FdBudget>,
) -> anyhow::Result<()> {
    rmq::runtime::signal::block_shutdown_signals().context("blocking shutdown signals")?;
    let budget = budget.unwrap_or_else(|| fd_budget(shards, shards));
    let started = rmq::broker::start::start_broker(config, shards, budget.connections_per_listener)
        .context("starting the broker")?;
    tracing::info!(addr = %started.addr, shards, "broker serving");
    if let Some(metrics) = started.metrics_addr {
        println!("READY metrics {metrics}");
    }
    println!("READY broker {}", started.addr);
    let signal =
        rmq::runtime::signal::wait_for_shutdown_signal().context("waiting for a signal")?;
    tracing::info!(signal, "shutting down: flushing every shard");
    rmq::broker::start::shutdown(&started.mesh, SHUTDOWN_FLUSH_TIMEOUT);
    tracing::info!("broker stopped");
    std::process::exit(0);
}

fn run_standalone(args: &StandaloneArgs) -> anyhow::Result<()> {
    let mut config = BrokerConfig {
        mapped_file_size_commit_log: STANDALONE_SEGMENT_SIZE_BYTES,
        broker_name: "broker-a".into(),
        ..BrokerConfig::default()
    };
    if let Some(path) = &args.config {
        config = load_broker_config(Some(path))?;
    }
    config.listen_port = args.broker_port;
    config
        .check_relations()
        .context("--broker-port and broker.conf disagree")?;
    config.store_path_root_dir.clone_from(&args.store_dir);
    config.store_path_commit_log = args.store_dir.join("commitlog");
    // The all-in-one development command stays on loopback unless told otherwise: an
    // advertised address that is not loopback (brokerIP1 in a broker.conf) or --bind.
    let bind = args.bind.unwrap_or(if config.broker_ip1.is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    });
    config.listen_ip = bind;
    let namesrv_args = NamesrvArgs {
        port: args.namesrv_port,
        bind,
        kv_config: args.store_dir.join("namesrv").join("kvConfig.json"),
        order_message_enable: false,
    };
    rmq::runtime::signal::block_shutdown_signals().context("blocking shutdown signals")?;
    let shards = args
        .shards
        .or(config.shards)
        .unwrap_or_else(rmq::runtime::default_shard_count);
    let budget = fd_budget(shards, shards + 1);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("rmq-namesrv".into())
        .spawn(move || {
            if let Err(err) =
                serve_namesrv(&namesrv_args, Some(tx), budget.connections_per_listener)
            {
                tracing::error!(%err, "NameServer stopped");
                std::process::exit(1);
            }
        })
        .context("spawning the NameServer thread")?;
    let namesrv_addr = rx.recv().context("NameServer failed to start")?;
    config.namesrv_addrs = vec![format!("127.0.0.1:{}", namesrv_addr.port())];
    run_broker(config, shards, Some(budget))
}

fn run_admin(command: AdminCommand) -> anyhow::Result<()> {
    use rmq::admin;
    let runtime = compio::runtime::Runtime::new().context("io_uring runtime")?;
    runtime.block_on(async move {
        match command {
            AdminCommand::UpdateTopic {
                namesrv,
                topic,
                cluster,
                broker,
                read_queues,
                write_queues,
                perm,
                order,
                json,
            } => {
                let brokers = match broker {
                    Some(broker) => vec![broker],
                    None => admin::master_addrs(&namesrv, cluster.as_deref()).await?,
                };
                let spec = admin::TopicSpec {
                    topic: topic.clone(),
                    read_queue_nums: read_queues,
                    write_queue_nums: write_queues,
                    perm,
                    order,
                };
                admin::update_topic(&brokers, &spec).await?;
                if json {
                    print_json(&serde_json::json!({"topic": topic, "brokers": brokers}));
                } else {
                    println!(
                        "create topic {topic} on {} broker(s) success: {}",
                        brokers.len(),
                        brokers.join(", ")
                    );
                }
            }
            AdminCommand::DeleteTopic {
                namesrv,
                topic,
                cluster,
                json,
            } => {
                let brokers = admin::master_addrs(&namesrv, cluster.as_deref()).await?;
                admin::delete_topic(&namesrv, &brokers, &topic).await?;
                if json {
                    print_json(&serde_json::json!({"topic": topic, "brokers": brokers}));
                } else {
                    println!("delete topic {topic} success");
                }
            }
            AdminCommand::TopicList { namesrv, json } => {
                let list = admin::topic_list(&namesrv).await?;
                if json {
                    print_json(&serde_json::json!(list.topic_list));
                } else {
                    for topic in list.topic_list {
                        println!("{topic}");
                    }
                }
            }
            AdminCommand::TopicRoute {
                namesrv,
                topic,
                json: _,
            } => {
                // Always JSON (as mqadmin's topicRoute); `--json` is accepted for uniformity.
                let route = admin::topic_route(&namesrv, &topic).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&route).context("route JSON")?
                );
            }
            AdminCommand::TopicStatus {
                namesrv,
                topic,
                json,
            } => {
                let stats = admin::topic_status(&namesrv, &topic).await?;
                if json {
                    print_json(&rmq::admin_ops::json::topic_status(&stats));
                } else {
                    print!("{}", admin::render_topic_status(&stats));
                }
            }
            AdminCommand::ClusterList { namesrv, json } => {
                let brokers = admin::cluster_list(&namesrv).await?;
                if json {
                    print_json(&rmq::admin_ops::json::cluster_list(&brokers));
                } else {
                    print!(
                        "{}",
                        admin::render_cluster_list(&brokers, rmq::runtime::clock::now_ms())
                    );
                }
            }
            AdminCommand::ConsumerProgress {
                namesrv,
                group,
                topic,
                cluster,
                json,
            } => {
                let progress = admin::consumer_progress(
                    &namesrv,
                    cluster.as_deref(),
                    &group,
                    topic.as_deref(),
                )
                .await?;
                if json {
                    print_json(&rmq::admin_ops::json::consumer_progress(&progress));
                } else {
                    print!("{}", progress.render());
                }
            }
            AdminCommand::TransPending {
                broker,
                group,
                json,
            } => {
                let report = admin::transaction_pending(&broker, group.as_deref()).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).context("report JSON")?
                    );
                } else {
                    print!("{}", admin::render_transaction_pending(&report));
                }
            }
            AdminCommand::TimerStatus {
                broker,
                topic,
                json,
            } => {
                let report = rmq::admin_timer::timer_status(&broker, topic.as_deref()).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).context("report JSON")?
                    );
                } else {
                    print!("{}", rmq::admin_timer::render_timer_status(&report));
                }
            }
            AdminCommand::ResetOffsetByTime {
                namesrv,
                group,
                topic,
                timestamp,
                force,
                broker,
                json,
            } => {
                use rmq::admin_reset;
                let now = rmq::runtime::clock::now_ms();
                let timestamp = admin_reset::parse_timestamp(&timestamp, now)?;
                let rows = admin_reset::reset_offset_by_time(
                    &namesrv,
                    broker.map(|b| vec![b]),
                    &topic,
                    &group,
                    timestamp,
                    force,
                )
                .await?;
                if json {
                    println!("{}", serde_json::to_string(&rows).context("rows JSON")?);
                } else {
                    print!("{}", admin_reset::render(&rows));
                }
            }
            AdminCommand::ConsumerStatus {
                namesrv,
                group,
                topic,
                client_id,
                broker,
                json,
            } => {
                use rmq::admin_reset;
                let rows = admin_reset::consumer_status(
                    &namesrv,
                    broker.map(|b| vec![b]),
                    &topic,
                    &group,
                    client_id.as_deref(),
                )
                .await?;
                if json {
                    println!("{}", serde_json::to_string(&rows).context("rows JSON")?);
                } else {
                    print!("{}", admin_reset::render_status(&rows));
                }
            }
            AdminCommand::BrokerStatus { broker, json } => {
                let table = admin::broker_runtime_info(&broker).await?;
                if json {
                    print_json(&serde_json::json!(table.table));
                } else {
                    print!("{}", admin::render_broker_status(&table));
                }
            }
            AdminCommand::Ops(command) => rmq::admin_ops::cli::run(command).await?,
        }
        Ok(())
    })
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value prints")
    );
}

fn run_namesrv(args: &NamesrvArgs) -> anyhow::Result<()> {
    let budget = fd_budget(0, 1);
    serve_namesrv(args, None, budget.connections_per_listener)
}

fn serve_namesrv(
    args: &NamesrvArgs,
    ready: Option<std::sync::mpsc::Sender<SocketAddr>>,
    connections_max: usize,
) -> anyhow::Result<()> {
    let kv = KvConfig::open(Some(&args.kv_config))
        .with_context(|| format!("kv config {}", args.kv_config.display()))?;
    let options = NamesrvOptions {
        order_message_enable: args.order_message_enable,
    };
    let addr = SocketAddr::V4(SocketAddrV4::new(args.bind, args.port));
    let runtime = compio::runtime::Runtime::new().context("io_uring runtime")?;
    runtime.block_on(async move {
        let listener = rmq::namesrv::server::bind(addr).with_context(|| format!("bind {addr}"))?;
        let local = listener.local_addr().context("local address")?;
        tracing::info!(%local, "NameServer listening");
        // One machine-readable line, so scripts and tests can use `--port 0`.
        let mut announced = local;
        if announced.ip().is_unspecified() {
            announced.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        println!("READY namesrv {announced}");
        if let Some(ready) = ready {
            let _ = ready.send(announced);
        }
        let server = Rc::new(NameServer::new(kv, options));
        let serve = ServeConfig {
            connections_max,
            ..ServeConfig::default()
        };
        rmq::namesrv::server::run(listener, server, serve).await;
        Ok(())
    })
}
