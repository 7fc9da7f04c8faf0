//! Broker start-up: loads the control-plane files, binds the listener (SO_REUSEPORT, one
//! socket per shard on the same port), builds the mesh and starts one pinned compio runtime
//! per shard, each opening its own store under `<storePathRootDir>/shard-<n>`.
//!
//! Must never: let a shard serve before its store has recovered (the READY report is sent
//! only after every shard opened its store and bound its socket).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rmq_net::codec::body::topic::TopicConfig;
use rmq_net::codec::message::UniqKeyGenerator;
use rmq_net::conn::{serve, ClientConfig, ConnConfig, RemotingClient, ServeConfig};
use rmq_storage::commitlog::{
    CommitLogConfig, FlushPolicy, Preallocation, RetentionClock, RetentionPolicy,
};
use rmq_storage::file::Disk;
use rmq_storage::store::{Store, StoreConfig};

use crate::config::{BrokerConfig, FlushDiskType};
use crate::limits::SHUTDOWN_DRAIN_TIMEOUT;
use crate::runtime::clock::now_ms;
use crate::runtime::listener::{
    bind_exclusive, bind_reuseport, probe_exclusive, retry_while_in_use,
};
use crate::runtime::mesh::{serve_inbox, Inbox, Mesh};
use crate::runtime::{spawn_shards, ShardId};
use crate::tables::clients::{ClientRegistry, GroupSubscriptions};
use crate::tables::groups::{SubscriptionGroupConfig, SubscriptionGroupTable};
use crate::tables::locks::RebalanceLocks;
use crate::tables::offsets::ConsumerOffsetTable;
use crate::tables::replicated::{Replica, Snapshot};
use crate::tables::topics::{TopicTable, TopicTableOptions};

use super::control::register::Registrar;
use super::dispatch::BrokerHandler;
use super::replicate::TableFiles;
use super::shard::{Control, Shard, CONTROL_SHARD};

/// How often each shard persists dirty consumer offsets (Java `flushConsumerOffsetInterval`).
pub const OFFSET_PERSIST_INTERVAL: Duration = Duration::from_secs(5);
/// How often each shard runs retention (expired segments, disk usage above the ratio).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(10);
/// How often each shard writes its store checkpoint (bounds replay work after a crash).
pub const STORE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// What a started broker reports.
pub struct Started {
    /// The address clients connect to (`brokerIP1:port`).
    pub addr: SocketAddr,
    /// Shard threads.
    pub threads: Vec<JoinHandle<()>>,
    /// Channels into the shards (for shutdown).
    pub mesh: Mesh<Shard>,
    /// The store root's `lock` file, locked for the life of the process.
    pub store_lock: std::fs::File,
    /// Where the Prometheus exporter listens (`metricsExporterType=PROM`).
    pub metrics_addr: Option<SocketAddr>,
}

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or thread creation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// Cause.
        source: io::Error,
    },
    /// A control-plane file could not be loaded.
    #[error("loading {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another process holds the store root's lock file.
    #[error("store {path} is in use by another broker process (its `lock` file is locked); two brokers must never share a store")]
    StoreInUse {
        /// The store root.
        path: PathBuf,
    },
    /// A shard failed to open its store.
    #[error("shard {shard}: {reason}")]
    Shard {
        /// Which shard.
        shard: usize,
        /// Why.
        reason: String,
    },
}

/// File in the store root recording the shard count the store was written with: placement of
/// (topic, queueId) depends on it, so reopening with another count would strand data.
pub const SHARD_COUNT_FILE: &str = "shards";

fn check_shard_count(root: &Path, shards: usize) -> Result<(), StartError> {
    let path = root.join(SHARD_COUNT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: usize = text.trim().parse().map_err(|_| StartError::Load {
                path: path.clone(),
                reason: format!("not a shard count: {text:?}"),
            })?;
            if recorded != shards {
                return Err(StartError::Load {
                    path,
                    reason: format!(
                        "this store was written with {recorded} shards; start with --shards {recorded} (placement depends on the count)"
                    ),
                });
            }
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{shards}\n")).map_err(|source| StartError::Io {
                what: format!("write {}", path.display()),
                source,
            })
        }
        Err(source) => Err(StartError::Io {
            what: format!("read {}", path.display()),
            source,
        }),
    }
}

fn commitlog_config(config: &BrokerConfig) -> CommitLogConfig {
    CommitLogConfig {
        segment_size_bytes: config.mapped_file_size_commit_log,
        flush_policy: match config.flush_disk_type {
            FlushDiskType::SyncFlush => FlushPolicy::Sync,
            FlushDiskType::AsyncFlush => FlushPolicy::Async,
        },
        flush_interval_ms: u64::try_from(config.flush_interval_commit_log.as_millis())
            .unwrap_or(500),
        commit_interval_ms: u64::try_from(config.commit_interval_commit_log.as_millis())
            .unwrap_or(rmq_storage::limits::COMMIT_INTERVAL_MS_DEFAULT),
        sync_flush_timeout_ms: u64::try_from(config.sync_flush_timeout.as_millis()).unwrap_or(5000),
        record_size_max_bytes: crate::limits::record_size_max_bytes(config.max_message_size),
        // A slave starts out behind its master (it was down, or is new): its segments are
        // reserved, not zero-filled, until it has caught up (`ha::slave`), so a catch-up does
        // not write every byte twice.
        preallocation: if config.broker_role == crate::config::BrokerRole::Slave {
            Preallocation::Sparse
        } else {
            Preallocation::Zeroed
        },
        ..CommitLogConfig::default()
    }
}

/// Starts the broker's shards and waits until every shard serves.
///
/// # Errors
/// [`StartError`] naming what failed.
pub fn start_broker(
    config: BrokerConfig,
    shards: usize,
    connections_max: usize,
) -> Result<Started, StartError> {
    let config = Arc::new(config);
    let root = &config.store_path_root_dir;
    std::fs::create_dir_all(root).map_err(|source| StartError::Io {
        what: format!("create {}", root.display()),
        source,
    })?;
    let store_lock = lock_store(root)?;
    check_shard_count(root, shards)?;
    let tables = load_tables(&config)?;
    let acl = load_acl(&config)?;
    let snapshots = Snapshots {
        topics: tables.topics.snapshot(),
        groups: tables.groups.snapshot(),
        subscriptions: ClientRegistry::new().subscriptions_snapshot(),
    };
    let (first, listen_addr, store_host) = bind_first(&config)?;
    let (ha_listener, ha_server_addr) = bind_ha(&config)?;
    let (metrics_listener, metrics_addr) = bind_metrics(&config)?;
    let mut metrics_listener = metrics_listener;
    // The exporter runs on the last shard: the control shard (0) has the control plane.
    let metrics_shard = shards - 1;
    let in_memory_window_bytes = crate::runtime::memory::in_memory_window_bytes(
        crate::runtime::memory::physical_memory_bytes(),
        config.access_message_in_memory_max_ratio,
    );
    let mut ha_listener = Some(ha_listener).flatten();
    let (mesh, inboxes) = Mesh::<Shard>::new(shards);
    let mut tables = Some(tables);
    let mut first = Some(first);
    let seeds: Vec<Option<ShardSeed>> = inboxes
        .into_iter()
        .enumerate()
        .map(|(index, inbox)| {
            let control = index == CONTROL_SHARD.0;
            Some(ShardSeed {
                id: ShardId(index),
                config: Arc::clone(&config),
                mesh: mesh.clone(),
                inbox,
                tables: if control { tables.take() } else { None },
                listener: if control { first.take() } else { None },
                ha_listener: if control { ha_listener.take() } else { None },
                metrics_listener: if index == metrics_shard {
                    metrics_listener.take()
                } else {
                    None
                },
                ha_server_addr: ha_server_addr.clone(),
                in_memory_window_bytes,
                listen_addr,
                store_host,
                snapshots: snapshots.clone(),
                connections_max,
                acl: acl.clone(),
            })
        })
        .collect();
    let seeds = Arc::new(std::sync::Mutex::new(seeds));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, StartError>>();
    let threads = spawn_shards("rmq-shard", shards, config.idle_poll, move |id: ShardId| {
        let seed = seeds
            .lock()
            .expect("seed lock")
            .get_mut(id.0)
            .and_then(Option::take);
        let ready_tx = ready_tx.clone();
        async move {
            if let Some(seed) = seed {
                run_shard(seed, ready_tx).await;
            }
        }
    })
    .map_err(|source| StartError::Io {
        what: "spawn shard threads".into(),
        source,
    })?;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(err),
            Err(_) => {
                return Err(StartError::Shard {
                    shard: 0,
                    reason: "a shard thread exited during start-up".into(),
                })
            }
        }
    }
    first_registration(&mesh);
    Ok(Started {
        addr: store_host,
        threads,
        mesh,
        store_lock,
        metrics_addr,
    })
}

/// Binds the Prometheus exporter (`metricsExporterType=PROM`) on
/// `metricsPromExporterHost:metricsPromExporterPort` (the host defaults to the broker's listen
/// address; port 0 picks one); returns the listener and its address.
fn bind_metrics(
    config: &BrokerConfig,
) -> Result<(Option<std::net::TcpListener>, Option<SocketAddr>), StartError> {
    if config.metrics_exporter_type != crate::config::MetricsExporterType::Prom {
        return Ok((None, None));
    }
    let host = config
        .metrics_prom_exporter_host
        .unwrap_or(config.listen_ip);
    let bind_addr = SocketAddr::V4(SocketAddrV4::new(host, config.metrics_prom_exporter_port));
    let listener =
        retry_while_in_use(|| bind_exclusive(bind_addr)).map_err(|source| StartError::Io {
            what: format!(
                "bind metricsPromExporterHost:metricsPromExporterPort {bind_addr} \
                 (metricsExporterType=PROM; is another process using it?)"
            ),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Io {
        what: "metrics exporter local address".into(),
        source,
    })?;
    Ok((Some(listener), Some(addr)))
}

/// Registers with the NameServers once before start-up returns, so a script that acts on
/// READY (e.g. `rmq admin update-topic`) finds the broker in the routes. An unreachable
/// NameServer is logged and start-up goes on (the background loop keeps registering).
fn first_registration(mesh: &Mesh<Shard>) {
    let registered = crate::runtime::new_runtime().map(|runtime| {
        runtime.block_on(mesh.submit(CONTROL_SHARD, |control: Rc<Shard>| async move {
            super::control::register::request_full_and_wait(&control).await;
        }))
    });
    match registered {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%err, "first registration not run"),
        Err(err) => tracing::warn!(%err, "no runtime for the first registration"),
    }
}

/// The lock file in the store root (RocketMQ keeps one there too).
pub const STORE_LOCK_FILE: &str = "lock";

/// Takes the store root's lock (`flock`, exclusive, not waiting): a second broker on the same
/// store is refused at start instead of corrupting it. The kernel drops the lock when the
/// process dies, so a crash never leaves a stale lock.
fn lock_store(root: &Path) -> Result<std::fs::File, StartError> {
    use std::os::fd::AsRawFd;
    let path = root.join(STORE_LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::Io {
            what: format!("open {}", path.display()),
            source,
        })?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Err(StartError::StoreInUse {
                path: root.to_path_buf(),
            });
        }
        return Err(StartError::Io {
            what: format!("lock {}", path.display()),
            source: err,
        });
    }
    Ok(file)
}

/// The control-plane tables loaded at start (they move to the control shard).
struct Tables {
    topics: TopicTable,
    groups: SubscriptionGroupTable,
    config_dir: PathBuf,
}

/// The replicated snapshots every shard starts from.
#[derive(Clone)]
struct Snapshots {
    topics: Arc<Snapshot<TopicConfig>>,
    groups: Arc<Snapshot<SubscriptionGroupConfig>>,
    subscriptions: Arc<Snapshot<GroupSubscriptions>>,
}

/// Everything one shard thread starts with.
struct ShardSeed {
    id: ShardId,
    config: Arc<BrokerConfig>,
    mesh: Mesh<Shard>,
    inbox: Inbox<Shard>,
    /// The control shard's tables (control shard only).
    tables: Option<Tables>,
    /// The first listener, bound before the threads start (control shard only; the others
    /// bind the same port).
    listener: Option<std::net::TcpListener>,
    listen_addr: SocketAddr,
    store_host: SocketAddr,
    /// The HA listener (masters, control shard only).
    ha_listener: Option<std::net::TcpListener>,
    /// The Prometheus exporter's listener (the exporter's shard only).
    metrics_listener: Option<std::net::TcpListener>,
    /// `brokerIP2:<HA port>`, registered with the NameServers.
    ha_server_addr: String,
    /// [`Shard::in_memory_window_bytes`].
    in_memory_window_bytes: u64,
    snapshots: Snapshots,
    /// This shard's connection cap ([`crate::runtime::fds`]).
    connections_max: usize,
    /// The ACL configuration loaded at start (`aclEnable=true`).
    acl: Option<crate::acl::reload::Loaded>,
}

/// Loads `plain_acl.yml` when `aclEnable=true`: the broker does not serve with ACL on and no
/// valid file.
fn load_acl(config: &BrokerConfig) -> Result<Option<crate::acl::reload::Loaded>, StartError> {
    if !config.acl_enable {
        return Ok(None);
    }
    let path = crate::acl::reload::acl_file_path(config);
    let loaded =
        crate::acl::reload::Loaded::read(path.clone()).map_err(|err| StartError::Load {
            path,
            reason: err.to_string(),
        })?;
    tracing::info!(
        path = %loaded.path.display(),
        accounts = loaded.config.accounts.len(),
        "ACL enabled"
    );
    Ok(Some(loaded))
}

/// Loads `topics.json` and `subscriptionGroup.json` (with their journals) and folds the
/// journals into the files, so both exist, hold the built-in entries and start with empty
/// journals.
fn load_tables(config: &BrokerConfig) -> Result<Tables, StartError> {
    let now = now_ms();
    let config_dir = config.store_path_root_dir.join("config");
    std::fs::create_dir_all(&config_dir).map_err(|source| StartError::Io {
        what: format!("create {}", config_dir.display()),
        source,
    })?;
    let load_error = |path: &Path| {
        let path = path.to_path_buf();
        move |reason: String| StartError::Load { path, reason }
    };
    let topics_path = config_dir.join("topics.json");
    let topics = TopicTable::load(TopicTableOptions::from_config(config), &topics_path, now)
        .map_err(|e| load_error(&topics_path)(e.to_string()))?;
    let groups_path = config_dir.join("subscriptionGroup.json");
    let groups =
        SubscriptionGroupTable::load(config.auto_create_subscription_group, &groups_path, now)
            .map_err(|e| load_error(&groups_path)(e.to_string()))?;
    // Fold the journals into the files, so both exist, hold the built-in entries and start
    // with empty journals.
    topics
        .save(&topics_path)
        .map_err(|e| load_error(&topics_path)(e.to_string()))?;
    groups
        .save(&groups_path)
        .map_err(|e| load_error(&groups_path)(e.to_string()))?;
    Ok(Tables {
        topics,
        groups,
        config_dir,
    })
}

/// Binds the broker port once (port 0 picks one) before the shard threads start, so every
/// shard binds the same port; returns the listener, the address the shards bind and the store
/// host (`brokerIP1:port`, the address in routes and msgIds).
fn bind_first(
    config: &BrokerConfig,
) -> Result<(std::net::TcpListener, SocketAddr, SocketAddr), StartError> {
    let any = config.listen_ip;
    let bind_addr = SocketAddr::V4(SocketAddrV4::new(any, config.listen_port));
    if config.listen_port != 0 {
        retry_while_in_use(|| probe_exclusive(bind_addr)).map_err(|source| StartError::Io {
            what: format!("bind {bind_addr} (is another broker or process using listenPort?)"),
            source,
        })?;
    }
    let first = bind_reuseport(bind_addr).map_err(|source| StartError::Io {
        what: format!("bind {bind_addr}"),
        source,
    })?;
    let port = first
        .local_addr()
        .map_err(|source| StartError::Io {
            what: "local address".into(),
            source,
        })?
        .port();
    let listen_addr = SocketAddr::V4(SocketAddrV4::new(any, port));
    let store_host = SocketAddr::V4(SocketAddrV4::new(config.broker_ip1, port));
    Ok((first, listen_addr, store_host))
}

/// Binds `haListenPort` on a master (port 0 picks one); returns the listener and the HA address
/// registered with the NameServers (`brokerIP2:port`). A slave does not listen.
fn bind_ha(config: &BrokerConfig) -> Result<(Option<std::net::TcpListener>, String), StartError> {
    let port = config.ha_listen_port();
    if !config.broker_role.is_master() {
        return Ok((None, format!("{}:{port}", config.broker_ip2)));
    }
    let bind_addr = SocketAddr::V4(SocketAddrV4::new(config.listen_ip, port));
    let listener =
        retry_while_in_use(|| bind_exclusive(bind_addr)).map_err(|source| StartError::Io {
            what: format!("bind haListenPort {bind_addr} (is another broker or process using it?)"),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| StartError::Io {
            what: "HA local address".into(),
            source,
        })?
        .port();
    Ok((Some(listener), format!("{}:{port}", config.broker_ip2)))
}

/// One shard thread's life: open its state, start its tasks, report ready, serve forever.
async fn run_shard(mut seed: ShardSeed, ready: mpsc::Sender<Result<usize, StartError>>) {
    let id = seed.id;
    let connections_max = seed.connections_max;
    let acl = seed.acl.clone();
    let metrics_listener = seed.metrics_listener.take();
    let inbox_and_listener = open_shard(seed).await;
    let (shard, inbox, listener, ha_listener) = match inbox_and_listener {
        Ok(opened) => opened,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    compio::runtime::spawn(serve_inbox(Rc::clone(&shard), inbox)).detach();
    compio::runtime::spawn(maintenance(Rc::clone(&shard))).detach();
    compio::runtime::spawn(super::durable_replies::run(Rc::clone(&shard))).detach();
    // As Java's ScheduleMessageService: only a master delivers delayed messages; a slave's
    // schedule queues are its master's, delivered there and replicated.
    if shard.config.broker_role.is_master() {
        super::schedule::start(&shard);
        super::timer::start(&shard);
        super::transaction::check::start(&shard);
    }
    if id == CONTROL_SHARD {
        compio::runtime::spawn(super::control::register::run_background(Rc::clone(&shard)))
            .detach();
        if let Some(acl) = acl {
            compio::runtime::spawn(crate::acl::reload::watch(Rc::clone(&shard), acl)).detach();
        }
    }
    if let Some(ha_listener) = ha_listener {
        compio::runtime::spawn(super::ha::listen(Rc::clone(&shard), ha_listener)).detach();
    }
    if let Some(metrics_listener) = metrics_listener {
        match compio::net::TcpListener::from_std(metrics_listener) {
            Ok(listener) => {
                compio::runtime::spawn(super::exporter::serve(Rc::clone(&shard), listener))
                    .detach();
            }
            Err(source) => {
                let _ = ready.send(Err(StartError::Io {
                    what: "metrics exporter listener (metricsPromExporterPort)".into(),
                    source,
                }));
                return;
            }
        }
    }
    if shard.config.broker_role.is_master() {
        compio::runtime::spawn(super::ha::watch::watch(Rc::clone(&shard))).detach();
    } else {
        compio::runtime::spawn(super::ha::follow(Rc::clone(&shard))).detach();
        if id == CONTROL_SHARD {
            compio::runtime::spawn(super::slave_sync::run(Rc::clone(&shard))).detach();
        }
    }
    let _ = ready.send(Ok(id.0));
    let serve_config = ServeConfig {
        connections_max,
        ..serve_config(&shard.config)
    };
    let handler = Rc::new(BrokerHandler {
        shard: Rc::clone(&shard),
    });
    // Until shutdown has drained the requests in flight: then the listener and every
    // connection close with the serve loop.
    let serving = pin!(serve(&listener, handler, serve_config));
    let stop = pin!(shard.stop_serving.wait());
    futures_util::future::select(serving, stop).await;
    tracing::debug!(shard = id.0, "listener and connections closed");
    // The shard keeps serving its inbox (the rest of the shutdown runs through it) until the
    // process exits.
    std::future::pending::<()>().await;
}

/// The client-facing listener's limits: the defaults, with what broker.conf may change.
fn serve_config(config: &BrokerConfig) -> ServeConfig {
    ServeConfig {
        conn: ConnConfig {
            frame_completion_timeout: Some(config.frame_completion_timeout),
            ..ConnConfig::default()
        },
        partial_frame_bytes_max: config.partial_frame_bytes_max,
        ..ServeConfig::default()
    }
}

/// Binds the shard's listener and opens its store, offsets and delay offsets.
type Opened = (
    Rc<Shard>,
    Inbox<Shard>,
    compio::net::TcpListener,
    Option<compio::net::TcpListener>,
);

async fn open_shard(seed: ShardSeed) -> Result<Opened, StartError> {
    let ShardSeed {
        id,
        config,
        mesh,
        inbox,
        tables,
        listener,
        listen_addr,
        store_host,
        ha_listener,
        ha_server_addr,
        in_memory_window_bytes,
        snapshots,
        connections_max: _,
        acl,
        metrics_listener: _,
    } = seed;
    let ha_listener = ha_listener
        .map(compio::net::TcpListener::from_std)
        .transpose()
        .map_err(|source| StartError::Io {
            what: format!("shard {} HA listener", id.0),
            source,
        })?;
    let listener = listener
        .map_or_else(|| bind_reuseport(listen_addr), Ok)
        .and_then(compio::net::TcpListener::from_std)
        .map_err(|source| StartError::Io {
            what: format!("shard {} bind {listen_addr}", id.0),
            source,
        })?;
    let store_root = config.store_path_root_dir.join(format!("shard-{}", id.0));
    let mut store_config = StoreConfig::new(&store_root);
    store_config.commitlog = commitlog_config(&config);
    let (store, recovery) = Store::open(store_config, Disk::real())
        .await
        .map_err(|err| StartError::Shard {
            shard: id.0,
            reason: err.to_string(),
        })?;
    tracing::info!(
        shard = id.0,
        replayed = recovery.records_replayed,
        "store opened"
    );
    let config_dir = config.store_path_root_dir.join("config");
    let offsets_path = config_dir.join(format!("consumerOffset-{}.json", id.0));
    let offsets = ConsumerOffsetTable::load(&offsets_path).map_err(|err| StartError::Load {
        path: offsets_path.clone(),
        reason: err.to_string(),
    })?;
    let delay_offsets_path = config_dir.join(format!("delayOffset-{}.json", id.0));
    let delay_offsets =
        super::schedule::DelayOffsets::load(delay_offsets_path.clone()).map_err(|err| {
            StartError::Load {
                path: delay_offsets_path,
                reason: err.to_string(),
            }
        })?;
    let timer_dir = store_root.join("timer");
    let timer =
        super::timer::TimerShard::open(&timer_dir, &config).map_err(|err| StartError::Load {
            path: timer_dir,
            reason: err.to_string(),
        })?;
    let control = tables.map(|tables| Control {
        registrar: Registrar::default(),
        topics_files: TableFiles::new(tables.config_dir.join("topics.json")),
        groups_files: TableFiles::new(tables.config_dir.join("subscriptionGroup.json")),
        replicas_stale: Cell::new(false),
        notifier: super::control::notify::Notifier::default(),
        topics: RefCell::new(tables.topics),
        groups: RefCell::new(tables.groups),
        clients: RefCell::new(ClientRegistry::new()),
        locks: RefCell::new(RebalanceLocks::new()),
        namesrv: config
            .namesrv_addrs
            .iter()
            .map(|a| RemotingClient::new(a.clone(), ClientConfig::default()))
            .collect(),
    });
    let uniq = UniqKeyGenerator::new(
        IpAddr::V4(config.broker_ip1),
        std::process::id(),
        rand::random::<i32>(),
        now_ms(),
    );
    let shard = Rc::new(Shard {
        id,
        live: super::live_config::LiveConfig::new(&config),
        config,
        store_host,
        store,
        mesh,
        topics: Replica::new(snapshots.topics),
        groups: Replica::new(snapshots.groups),
        subscriptions: Replica::new(snapshots.subscriptions),
        offsets: RefCell::new(offsets),
        offsets_path,
        offsets_persist: rmq_storage::fifo_lock::FifoLock::default(),
        stopping: crate::runtime::latch::Latch::default(),
        stop_serving: crate::runtime::latch::Latch::default(),
        requests_in_flight: Cell::new(0),
        parked_replies: super::durable_replies::ParkedReplies::default(),
        closed_conns: RefCell::new(Vec::new()),
        closed_conns_flushing: Cell::new(false),
        conns: RefCell::new(HashMap::new()),
        uniq_keys: RefCell::new(uniq),
        delay_offsets,
        timer,
        transactions: super::transaction::Transactions::default(),
        stats: super::stats::ShardStats::new(now_ms()),
        control,
        ha: super::ha::HaShard::default(),
        ha_server_addr,
        in_memory_window_bytes,
        acl: crate::acl::AclSlot::new(acl.map(|loaded| loaded.config)),
    });
    if let Some(master) = &shard.config.ha_master_address {
        shard.ha.configure_master(master.to_string());
    }
    shard.stats.metrics.set_enabled(
        shard.config.metrics_exporter_type == crate::config::MetricsExporterType::Prom,
    );
    Ok((shard, inbox, listener, ha_listener))
}

/// Stops the broker cleanly: new requests are refused and those in flight drained
/// (phase 0, `drain`), then every shard flushes its CommitLog, writes its store checkpoint and
/// persists consumer offsets; the control shard unregisters from the NameServers. Returns when
/// all shards answered (or after `timeout`).
pub fn shutdown(mesh: &Mesh<Shard>, timeout: Duration) {
    let runtime = match crate::runtime::new_runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start a runtime for shutdown");
            return;
        }
    };
    runtime.block_on(async {
        drain(mesh).await;
        // Phase 1, every shard: unregister (control shard), fold the table journals, persist
        // delay and consumer offsets. Persisting delay offsets flushes the CommitLogs of the
        // shards that received deliveries, so no store may be closed before all are done.
        for target in (0..mesh.shards()).map(ShardId) {
            let done = mesh.submit(target, |shard: Rc<Shard>| async move {
                if shard.id == CONTROL_SHARD {
                    super::control::register::unregister_all(&shard).await;
                    super::replicate::compact_all(&shard).await;
                }
                super::schedule::persist(&shard).await;
                super::timer::persist_final(&shard).await;
                persist_offsets(&shard).await;
            });
            if let Err(why) = answered(compio::time::timeout(timeout, done).await) {
                tracing::warn!(shard = target.0, why, "offsets not persisted at shutdown");
            }
        }
        // Phase 2, every shard: close the store (flush, seal the index, checkpoint, remove the
        // abort marker), so a clean restart replays nothing.
        for target in (0..mesh.shards()).map(ShardId) {
            let done = mesh.submit(target, |shard: Rc<Shard>| async move {
                let closed = shard.store.close().await;
                if let Err(err) = &closed {
                    tracing::error!(shard = shard.id.0, %err, "closing the store failed");
                }
                closed.is_ok()
            });
            match answered(compio::time::timeout(timeout, done).await) {
                Ok(true) => tracing::info!(shard = target.0, "shard flushed and closed"),
                Ok(false) => {
                    tracing::error!(shard = target.0, "shard stopped without closing its store")
                }
                Err(why) => tracing::warn!(shard = target.0, why, "shard not closed"),
            }
        }
    });
}

/// Phase 0 of a clean stop. Every shard first refuses new client requests
/// (SERVICE_NOT_AVAILABLE, which clients retry on another broker) and answers its held pulls;
/// then each waits, up to [`SHUTDOWN_DRAIN_TIMEOUT`] in all, for the requests it was handling
/// (sends waiting for their flush or replica included) to be answered; then its listener and
/// connections close. Nothing acknowledged is lost: an answered send is in the CommitLog the
/// next phases flush.
async fn drain(mesh: &Mesh<Shard>) {
    for target in (0..mesh.shards()).map(ShardId) {
        let stopping = mesh.submit(
            target,
            |shard: Rc<Shard>| async move { shard.stopping.set() },
        );
        if let Err(why) = answered(compio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, stopping).await) {
            tracing::warn!(shard = target.0, why, "shard not told to stop");
        }
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_DRAIN_TIMEOUT;
    for target in (0..mesh.shards()).map(ShardId) {
        let drained = mesh.submit(target, move |shard: Rc<Shard>| async move {
            while shard.requests_in_flight.get() > 0 && std::time::Instant::now() < deadline {
                compio::time::sleep(Duration::from_millis(5)).await;
            }
            let left = shard.requests_in_flight.get();
            shard.stop_serving.set();
            left
        });
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match answered(compio::time::timeout(left + Duration::from_secs(1), drained).await) {
            Ok(0) => tracing::info!(shard = target.0, "requests drained, connections closed"),
            Ok(left) => tracing::warn!(
                shard = target.0,
                left,
                "drain deadline passed; closing connections with requests unanswered"
            ),
            Err(why) => tracing::warn!(shard = target.0, why, "shard not drained"),
        }
    }
}

/// A shutdown step's answer, or why there is none.
fn answered<T>(
    outcome: Result<Result<T, crate::runtime::mesh::MeshError>, compio::time::Elapsed>,
) -> Result<T, &'static str> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err("the shard did not answer"),
        Err(_) => Err("timed out"),
    }
}

/// Per-shard housekeeping: persist dirty consumer offsets, write store checkpoints.
async fn maintenance(shard: Rc<Shard>) {
    let mut last_offsets = std::time::Instant::now();
    let mut last_retention = std::time::Instant::now();
    loop {
        compio::time::sleep(STORE_CHECKPOINT_INTERVAL).await;
        // The store logs failures itself, rate-limited, and says when they stop.
        if let Err(err) = shard.store.checkpoint().await {
            tracing::debug!(shard = shard.id.0, %err, "store checkpoint failed");
        }
        if last_offsets.elapsed() >= OFFSET_PERSIST_INTERVAL {
            last_offsets = std::time::Instant::now();
            persist_offsets(&shard).await;
        }
        if last_retention.elapsed() >= RETENTION_INTERVAL {
            last_retention = std::time::Instant::now();
            run_retention(&shard).await;
        }
    }
}

/// Deletes expired CommitLog segments at the `deleteWhen` hours, and the oldest ones at any
/// time when disk usage passes `diskMaxUsedSpaceRatio` (the store decides per segment).
async fn run_retention(shard: &Shard) {
    let clock = RetentionClock {
        now: std::time::SystemTime::now(),
        local_hour: local_hour(),
    };
    let config = &shard.config;
    let delete_when_hour = if config.delete_when.contains(&clock.local_hour) {
        clock.local_hour
    } else {
        config.delete_when.first().copied().unwrap_or(4)
    };
    let policy = RetentionPolicy {
        // Never a file a pending timer copy lives in (docs/timer.md, "Retention").
        file_reserved_time: Duration::from_secs(u64::from(config.file_reserved_time_hours) * 3600)
            .max(super::timer::retention_hold(shard)),
        delete_when_hour,
        disk_max_used_space_percent: config.disk_max_used_space_ratio,
    };
    match shard.store.delete_expired(clock, &policy).await {
        // Above diskMaxUsedSpaceRatio segments go whatever their age: messages consumers have
        // not read yet may be among them, which an operator must hear about.
        Ok(outcome)
            if !outcome.deleted_segments.is_empty()
                && outcome.disk_used_percent > f64::from(config.disk_max_used_space_ratio) =>
        {
            let (groups_behind, unconsumed) = unconsumed_below_min(shard);
            tracing::warn!(
                shard = shard.id.0,
                deleted_segments = outcome.deleted_segments.len(),
                groups_behind,
                unconsumed,
                min_offset = outcome.min_offset,
                disk_used_percent = outcome.disk_used_percent,
                disk_max_used_space_ratio = config.disk_max_used_space_ratio,
                "disk above diskMaxUsedSpaceRatio: deleted the oldest CommitLog segments whatever \
                 their age; unconsumed messages in them are gone"
            );
        }
        Ok(outcome) if !outcome.deleted_segments.is_empty() => tracing::info!(
            shard = shard.id.0,
            deleted = outcome.deleted_segments.len(),
            min_offset = outcome.min_offset,
            disk_used_percent = outcome.disk_used_percent,
            "retention deleted expired CommitLog segments"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(shard = shard.id.0, %err, "retention failed"),
    }
}

/// After retention moved queue minimums up: the (group, queue) pairs whose committed offset
/// is now below their queue's minimum, and how many messages between the two they will never
/// read (deleted unconsumed, here or by earlier retention).
fn unconsumed_below_min(shard: &Shard) -> (usize, u64) {
    let offsets = shard.offsets.borrow();
    let mut behind = 0;
    let mut unconsumed = 0_u64;
    for (topic, _group, queue, committed) in offsets.iter() {
        let min = shard.store.min_offset(topic, queue);
        let committed = u64::try_from(committed).unwrap_or(0);
        if committed < min {
            behind += 1;
            unconsumed += min - committed;
        }
    }
    (behind, unconsumed)
}

/// The local hour of day (0..24), as `deleteWhen` means it.
fn local_hour() -> u8 {
    let now = libc::time_t::try_from(now_ms() / 1000).unwrap_or(0);
    // SAFETY: `tm` is plain data written by localtime_r, which is thread-safe and only reads
    // `now`; on failure it returns null and we fall back to UTC.
    let hour = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            (now / 3600 % 24) as i32
        } else {
            tm.tm_hour
        }
    };
    u8::try_from(hour.clamp(0, 23)).unwrap_or(0)
}

/// Writes the shard's consumer offsets if they changed: encoded on the shard, written and
/// fsynced in the blocking pool (tens of MB must not stall the event loop). One write at a
/// time per shard (the maintenance loop and shutdown may both ask).
async fn persist_offsets(shard: &Shard) {
    let _one_at_a_time = shard.offsets_persist.lock().await;
    let encoded = {
        let mut offsets = shard.offsets.borrow_mut();
        if !offsets.is_dirty() {
            return;
        }
        offsets.encode_for_save(&shard.offsets_path)
    };
    let written = match encoded {
        Ok(bytes) => {
            crate::tables::persist::write_bytes_off_loop(shard.offsets_path.clone(), bytes)
                .await
                .map_err(crate::tables::offsets::OffsetError::from)
        }
        Err(err) => Err(err),
    };
    if let Err(err) = written {
        shard.offsets.borrow_mut().mark_dirty();
        tracing::warn!(shard = shard.id.0, %err, "persisting consumer offsets failed");
    }
}
