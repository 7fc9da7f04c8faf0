//! `Shard`: the root of one core's broker state. Created on the shard's own thread and never
//! shared across cores (it is `Rc`, deliberately `!Send`); other shards reach it only through
//! the mesh API ([`crate::runtime::mesh`]: `submit_to`, `broadcast`, `notify`).
//!
//! Data plane (owned here): the shard's [`Store`] (CommitLog, consume queues, index), consumer
//! offsets of the queues it owns, parked long polls (inside the store's notifier), the
//! connections it accepted. Control plane (replicated): snapshots of topics, subscription
//! groups and subscriptions, replaced by versioned broadcasts from the control shard. The
//! control shard (shard 0) additionally holds [`Control`]: the authoritative tables.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rmq_net::codec::message::UniqKeyGenerator;
use rmq_net::conn::{ConnHandle, RemotingClient};
use rmq_storage::store::Store;

use crate::config::BrokerConfig;
use crate::runtime::mesh::{Mesh, ShardContext};
use crate::runtime::ShardId;
use crate::tables::clients::{ClientRegistry, GroupSubscriptions};
use crate::tables::groups::{SubscriptionGroupConfig, SubscriptionGroupTable};
use crate::tables::locks::RebalanceLocks;
use crate::tables::offsets::ConsumerOffsetTable;
use crate::tables::replicated::Replica;
use crate::tables::topics::TopicTable;
use rmq_net::codec::body::topic::TopicConfig;

/// The shard that owns control-plane state.
pub const CONTROL_SHARD: ShardId = ShardId(0);

/// One shard's broker state.
pub struct Shard {
    /// This shard.
    pub id: ShardId,
    /// The broker configuration.
    pub config: Arc<BrokerConfig>,
    /// The settings UPDATE_BROKER_CONFIG may change (read these, not `config`, for them).
    pub live: super::live_config::LiveConfig,
    /// `brokerIP1:listenPort`: the store host in records and msgIds.
    pub store_host: SocketAddr,
    /// The shard's store.
    pub store: Store,
    /// Channels to every shard.
    pub mesh: Mesh<Shard>,
    /// Topic configs (replica).
    pub topics: Replica<TopicConfig>,
    /// Subscription group configs (replica).
    pub groups: Replica<SubscriptionGroupConfig>,
    /// Heartbeat-registered subscriptions (replica).
    pub subscriptions: Replica<GroupSubscriptions>,
    /// Consumer offsets of the queues this shard owns.
    pub offsets: RefCell<ConsumerOffsetTable>,
    /// Where `offsets` is persisted.
    pub offsets_path: PathBuf,
    /// One consumer-offset file write at a time.
    pub offsets_persist: rmq_storage::fifo_lock::FifoLock,
    /// Connections accepted by this shard, by id.
    pub conns: RefCell<HashMap<u64, ConnHandle>>,
    /// UNIQ_KEY generator for messages that arrive without one.
    pub uniq_keys: RefCell<UniqKeyGenerator>,
    /// Delayed-delivery progress of the delay levels this shard owns.
    pub delay_offsets: super::schedule::DelayOffsets,
    /// Timer messages: this shard's timing wheel and its progress.
    pub timer: super::timer::TimerShard,
    /// Pending transactions (used on the half-queue owner only, see
    /// [`super::transaction::half_owner`]).
    pub transactions: super::transaction::Transactions,
    /// Traffic counters (messages put and got, for runtime info).
    pub stats: super::stats::ShardStats,
    /// Authoritative control-plane state (control shard only).
    pub control: Option<Control>,
    /// Shutdown has begun: new client requests are refused, held pulls answer now.
    pub stopping: crate::runtime::latch::Latch,
    /// The drain is over: the serve loop ends (listener and connections close).
    pub stop_serving: crate::runtime::latch::Latch,
    /// Connections closed since the last notice to the control shard (bounded by this
    /// shard's connections; see `control::clients::connection_closed`).
    pub closed_conns: RefCell<Vec<crate::runtime::mesh::ConnKey>>,
    /// A task is sending `closed_conns`.
    pub closed_conns_flushing: std::cell::Cell<bool>,
    /// Client requests this shard's connections are being answered for (the drain waits);
    /// parked SYNC_FLUSH replies count until they are sent.
    pub requests_in_flight: std::cell::Cell<usize>,
    /// SYNC_FLUSH replies waiting for their fdatasync ([`super::durable_replies`]).
    pub parked_replies: super::durable_replies::ParkedReplies,
    /// Replication state (master: the slave's session and progress; slave: the follow loop).
    pub ha: super::ha::HaShard,
    /// The HA address registered with the NameServers (`brokerIP2:<bound haListenPort>`).
    pub ha_server_addr: String,
    /// CommitLog bytes behind the log's end that still count as "in memory" (Java's
    /// `accessMessageInMemoryMaxRatio` % of physical memory, read once at start:
    /// [`crate::runtime::memory`]); reads further behind are cold.
    pub in_memory_window_bytes: u64,
    /// The ACL configuration in force (`None`: `aclEnable=false`), checked by the dispatcher
    /// before routing; replaced on reload ([`crate::acl::reload`]).
    pub acl: crate::acl::AclSlot,
}

impl ShardContext for Shard {
    fn shard_id(&self) -> ShardId {
        self.id
    }

    fn mesh(&self) -> &Mesh<Self> {
        &self.mesh
    }
}

/// Control-plane state, on the control shard only.
pub struct Control {
    /// Topic table (persisted in `config/topics.json`).
    pub topics: RefCell<TopicTable>,
    /// Subscription groups (persisted in `config/subscriptionGroup.json`).
    pub groups: RefCell<SubscriptionGroupTable>,
    /// Producer and consumer clients.
    pub clients: RefCell<ClientRegistry>,
    /// Orderly-consumption locks.
    pub locks: RefCell<RebalanceLocks>,
    /// One client per NameServer, for registration.
    pub namesrv: Vec<RemotingClient>,
    /// Coalesces registrations with the NameServers.
    pub registrar: super::control::register::Registrar,
    /// `config/topics.json` and its journal.
    pub topics_files: super::replicate::TableFiles,
    /// `config/subscriptionGroup.json` and its journal.
    pub groups_files: super::replicate::TableFiles,
    /// Coalesces NOTIFY_CONSUMER_IDS_CHANGED per group.
    pub notifier: super::control::notify::Notifier,
    /// A shard refused a snapshot install; the background loop re-installs.
    pub replicas_stale: std::cell::Cell<bool>,
}

impl Shard {
    /// The number of shards.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.mesh.shards()
    }

    /// Control-plane state.
    ///
    /// # Panics
    /// When called on a shard other than the control shard (a routing bug).
    #[must_use]
    pub fn control(&self) -> &Control {
        self.control
            .as_ref()
            .expect("control-plane request routed to a non-control shard")
    }
}
