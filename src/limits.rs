//! The broker's and NameServer's limits, each named once with the reason for its value, and
//! the relations they must keep with the protocol's (`rmq_net::codec::limits`) and the
//! storage's (`rmq_storage::limits`) limits, checked at compile time. Modules re-export what
//! they enforce; `docs/limits.md` lists every limit with what happens when it is hit.
//!
//! Must never: hold a value that another crate's limit contradicts (a config accepted here that
//! storage refuses later), or a limit without its reason.

use std::time::Duration;

use rmq_net::codec::limits as net;
use rmq_storage::limits as storage;

// ---- shards and placement ----------------------------------------------------------------

/// Bits of a physical offset (msgId, VIEW_MESSAGE_BY_ID, send-back) below the shard id: 2^56
/// bytes (64 PiB) of CommitLog per shard.
pub const PHYSICAL_OFFSET_SHARD_SHIFT: u32 = 56;
/// Most shards one broker runs: the shard id sits above [`PHYSICAL_OFFSET_SHARD_SHIFT`] in a
/// physical offset that must stay a positive `i64`, so 7 bits: 128.
pub const SHARDS_MAX: usize = 1 << (63 - PHYSICAL_OFFSET_SHARD_SHIFT);
const _: () = assert!(SHARDS_MAX == 128);
const _: () = assert!(
    1_u64 << PHYSICAL_OFFSET_SHARD_SHIFT == storage::LOCAL_OFFSET_LIMIT,
    "a shard's local offsets must fit below the shard bits"
);

// ---- connections ---------------------------------------------------------------------------

/// Smallest `partialFrameBytesMax` accepted: one frame of the largest size must fit, or a
/// lone large send would be shed.
pub const PARTIAL_FRAME_BYTES_MIN: usize = net::FRAME_SIZE_MAX_DEFAULT;
/// Largest `partialFrameBytesMax` accepted (per shard): 64 GiB, beyond any machine this runs
/// on; a larger value is a typo.
pub const PARTIAL_FRAME_BYTES_LIMIT: usize = 64 << 30;
const _: () = assert!(
    PARTIAL_FRAME_BYTES_MIN <= rmq_net::conn::config::PARTIAL_FRAME_BYTES_MAX_DEFAULT
        && rmq_net::conn::config::PARTIAL_FRAME_BYTES_MAX_DEFAULT <= PARTIAL_FRAME_BYTES_LIMIT,
    "the default partialFrameBytesMax is within what broker.conf accepts"
);

// ---- messages ------------------------------------------------------------------------------

/// Default `maxMessageSize` (Java's, 4 MiB).
pub const MESSAGE_SIZE_DEFAULT: usize = 4 * 1024 * 1024;
/// Largest `maxMessageSize` accepted: the frame cap (16 MiB) less room for the header.
pub const MESSAGE_SIZE_MAX: usize = net::FRAME_SIZE_MAX_DEFAULT - 4096;
/// What a stored record adds to a message body at most: the broker's §6.6 payload fields, the
/// properties (capped by the protocol), topic and keys in the storage envelope, alignment.
pub const RECORD_OVERHEAD_MAX: usize = 64 * 1024;
const _: () = assert!(
    net::PROPERTIES_SIZE_MAX + 2 * net::TOPIC_NAME_RETRY_SIZE_MAX + 1024 < RECORD_OVERHEAD_MAX
);
const _: () = assert!(
    MESSAGE_SIZE_MAX + RECORD_OVERHEAD_MAX <= storage::RECORD_SIZE_BYTES_LIMIT as usize,
    "the largest accepted message must fit the storage's record limit"
);

/// The storage record limit that admits every message of `max_message_size` bytes.
#[must_use]
pub fn record_size_max_bytes(max_message_size: usize) -> u32 {
    assert!(
        max_message_size <= MESSAGE_SIZE_MAX,
        "validated at parse time"
    );
    u32::try_from(max_message_size + RECORD_OVERHEAD_MAX).expect("below RECORD_SIZE_BYTES_LIMIT")
}

/// Smallest `mappedFileSizeCommitLog` accepted (1 MiB); it must also hold one record of
/// `maxMessageSize` (a record never straddles segments), checked after parsing.
pub const SEGMENT_SIZE_MIN: u64 = 1 << 20;
/// Largest `mappedFileSizeCommitLog` accepted: the storage's segment limit.
pub const SEGMENT_SIZE_MAX: u64 = storage::SEGMENT_SIZE_BYTES_MAX;
const _: () = assert!(SEGMENT_SIZE_MIN >= storage::SEGMENT_SIZE_BYTES_MIN);

// ---- replication (HA) -------------------------------------------------------------------------

/// Default `haTransferBatchSize`: log bytes the master ships per Data frame (Java's 32 KiB).
pub const HA_TRANSFER_BATCH_SIZE_DEFAULT: usize = 32 * 1024;
/// Largest `haTransferBatchSize` accepted: 4 MiB (Java's default `maxMessageSize`), far above
/// Java's 32 KiB default; a batch is what the master reads and the slave buffers per frame
/// (a single larger record still ships whole). A larger value stops the start.
pub const HA_TRANSFER_BATCH_SIZE_MAX: usize = 4 * 1024 * 1024;
const _: () = assert!(HA_TRANSFER_BATCH_SIZE_DEFAULT <= HA_TRANSFER_BATCH_SIZE_MAX);
const _: () = assert!(
    HA_TRANSFER_BATCH_SIZE_MAX <= rmq_net::ha::limits::HA_DATA_BYTES_MAX,
    "a configured batch fits one HA Data frame"
);
const _: () = assert!(
    MESSAGE_SIZE_MAX + RECORD_OVERHEAD_MAX <= rmq_net::ha::limits::HA_DATA_BYTES_MAX,
    "HA Data frames carry whole entries: the largest record the broker stores must fit one"
);
/// Default `haMaxGapNotInSync` (Java's 256 MiB): a slave further behind is not in sync.
pub const HA_MAX_GAP_NOT_IN_SYNC_DEFAULT: u64 = 256 * 1024 * 1024;
/// Largest `haMaxGapNotInSync`: offsets are `i64` (the HA protocol refuses larger ones too).
pub const HA_MAX_GAP_NOT_IN_SYNC_MAX: u64 = rmq_net::ha::limits::HA_OFFSET_MAX;
/// Default `haMaxLagMillis` (ours): a master whose slave's oldest unacknowledged record is
/// older than this raises the lag alarm (`docs/replication.md`, "Lag bound"), as it does past
/// `haMaxGapNotInSync` bytes. Ten seconds: two heartbeats, well past a healthy slave's lag
/// (milliseconds) and well short of an operator's patience.
pub const HA_MAX_LAG_DEFAULT: Duration = Duration::from_secs(10);
/// How often a master shard evaluates its slave's lag against the bounds (one record header
/// and one record read while the slave is behind, nothing while it is caught up).
pub const HA_LAG_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A lag alarm crossing is logged at WARN at most this often per shard (a lag hovering at the
/// bound would flap); a crossing inside this window is warned once the window ends, if the
/// lag is still past the bound then.
pub const HA_LAG_WARN_INTERVAL_MIN: Duration = Duration::from_secs(60);
const _: () = assert!(
    HA_LAG_CHECK_INTERVAL.as_millis() < HA_MAX_LAG_DEFAULT.as_millis(),
    "the default time bound is checked several times before it passes"
);
/// Default `haSendHeartbeatInterval` (Java's 5 s): how often an idle HA connection sends a
/// heartbeat (the master an empty Data frame, the slave an Ack).
pub const HA_SEND_HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
/// Default silence limit of an HA connection (Java's `haHousekeepingInterval`, 20 s): either
/// side closes a connection on which nothing arrived for this long, four missed heartbeats.
pub const HA_SILENCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);
const _: () = assert!(
    HA_SILENCE_TIMEOUT_DEFAULT.as_millis() >= 2 * HA_SEND_HEARTBEAT_INTERVAL_DEFAULT.as_millis(),
    "a connection survives one lost heartbeat"
);
/// Most tasks waiting at once on one slave's acknowledgements ([`crate::ha::SlaveProgress`]):
/// one per SYNC_MASTER send in flight on the shard. Past it a waiter is refused at once (the
/// broker answers it as if the slave were not available) instead of growing the list.
pub const HA_PROGRESS_WAITERS_MAX: usize = 16 * 1024;
/// Most bytes per HA Data frame when more than `haTransferBatchSize` is pending (a frame then
/// carries everything pending up to this): group commit for a slave slowed by its fdatasync,
/// and large O_DIRECT reads for a catching-up one. The master holds at most two such chunks
/// per slave (one being written, one read ahead).
pub const HA_CATCH_UP_CHUNK_BYTES: usize = 4 * 1024 * 1024;
const _: () = assert!(
    HA_CATCH_UP_CHUNK_BYTES <= rmq_net::ha::limits::HA_DATA_BYTES_MAX
        && HA_CATCH_UP_CHUNK_BYTES <= rmq_storage::limits::REPLICATION_CHUNK_BYTES_MAX,
    "a catch-up chunk fits one Data frame and one read_log"
);
/// Longest wait for a new HA connection's Hello (the slave sends it at once).
pub const HA_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Most HA connections whose Hello the master's listener is reading at once; more are closed
/// at accept (a slave has one connection per shard, so this is far above any real need).
pub const HA_HANDSHAKES_MAX: usize = 256;
/// Longest TCP connect of a slave to its master's HA port.
pub const HA_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A slave's first reconnect delay after a session ended; doubled per failure up to
/// [`HA_RECONNECT_BACKOFF_MAX`] (a refusal waits the maximum at once).
pub const HA_RECONNECT_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// A slave's longest reconnect delay (Java's HAClient retries every 5 s): a restarted master
/// is followed again within this.
pub const HA_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Free room an HA connection's read buffer gets before a read when the next frame's size is
/// not known yet (a header is incomplete): small, since control frames are tiny and a Data
/// frame's header announces its size, which is then reserved exactly (at most
/// `HA_FRAME_SIZE_MAX`).
pub const HA_READ_SIZE_MIN: usize = 16 * 1024;
/// Frames of this size or more (catch-up Data frames, up to `HA_FRAME_SIZE_MAX`) are read
/// into a block of the store's per-thread I/O buffer pool instead of the connection's
/// `BytesMut`: a fresh multi-MiB allocation per frame faulted in and cleared every page on
/// the receive copy (~3.5 % of a catching-up slave's CPU). The pool's own minimum.
pub const HA_POOLED_FRAME_BYTES_MIN: usize = rmq_storage::limits::READ_POOL_MIN_BYTES;
/// Alignment of pooled HA frame blocks: the CommitLog's read alignment, so the blocks a
/// catch-up's disk reads park are the ones its frames reuse (the pool matches alignments).
pub const HA_POOLED_FRAME_ALIGNMENT: usize = 4096;
/// Longest `brokerName` and `brokerClusterName`: a slave sends both in its HA Hello, whose
/// name fields have a one-byte length.
pub const BROKER_NAME_LENGTH_MAX: usize = rmq_net::ha::limits::HA_NAME_SIZE_MAX;
const _: () = assert!(
    BROKER_NAME_LENGTH_MAX >= 64,
    "room for any real broker name"
);

// ---- slave synchronisation (src/broker/slave_sync.rs) -----------------------------------------

/// Default `slaveSyncIntervalMillis` (ours): how often a slave copies its master's topics,
/// subscription groups, consumer and delay offsets (Java 4.x `SlaveSynchronize` runs every
/// 10 s; 5.x every 60 s). The first copy runs as soon as the master is known.
pub const SLAVE_SYNC_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// Shortest `slaveSyncIntervalMillis` accepted: each sync is four requests and a table diff,
/// so a shorter period is load on the master for no gain.
pub const SLAVE_SYNC_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Longest `slaveSyncIntervalMillis` accepted (an hour); a larger value is a typo.
pub const SLAVE_SYNC_INTERVAL_MAX: Duration = Duration::from_secs(3600);
const _: () = assert!(
    SLAVE_SYNC_INTERVAL_MIN.as_millis() <= SLAVE_SYNC_INTERVAL_DEFAULT.as_millis()
        && SLAVE_SYNC_INTERVAL_DEFAULT.as_millis() <= SLAVE_SYNC_INTERVAL_MAX.as_millis()
);
/// Longest one request of a sync may take (Java's `BrokerOuterAPI` waits 3 s); the next
/// period retries.
pub const SLAVE_SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an idle sync loop looks whether the master became known or changed, so the first
/// copy follows the NameServer's answer closely.
pub const SLAVE_SYNC_MASTER_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A failing sync is logged at most once per this interval (with the count of failures not
/// logged), so a master that is down for hours does not flood the log.
pub const SLAVE_SYNC_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Table entries a shard applies from a sync before yielding to its other tasks (an offset
/// table of a million entries must not stall the shard's requests).
pub const SLAVE_SYNC_APPLY_BATCH: usize = 4096;
/// Largest body of a whole-table reply (GET_ALL_TOPIC_CONFIG, GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
/// GET_ALL_CONSUMER_OFFSET, GET_ALL_DELAY_OFFSET): one frame less the largest header, so the
/// reply always reaches the peer; a larger table is refused with SYSTEM_ERROR naming its size
/// (the slave keeps what it has and says why).
pub const TABLE_REPLY_BODY_BYTES_MAX: usize =
    net::FRAME_SIZE_MAX_DEFAULT - net::HEADER_SIZE_MAX_DEFAULT;
const _: () = assert!(TABLE_REPLY_BODY_BYTES_MAX > 8 * 1024 * 1024);

// ---- file descriptors (src/runtime/fds.rs) ---------------------------------------------------

/// Descriptors kept for everything that is not a client connection, besides the shards' own:
/// NameServer clients, config files, stdio, the runtime threads' io_uring instances.
pub const FD_RESERVED_BASE: u64 = 256;
/// Descriptors kept per shard for its store: open CommitLog segments, the consume-queue and
/// index files being written or read, checkpoint and atomic-replace temporaries.
pub const FD_RESERVED_PER_SHARD: u64 = 1024;
/// Most connections one accept loop serves, whatever the open-files limit allows (the
/// protocol crate's default cap).
pub const CONNECTIONS_PER_LISTENER_MAX: usize = rmq_net::conn::config::CONNECTIONS_MAX_DEFAULT;

// ---- SYNC_FLUSH replies (src/broker/durable_replies.rs) -------------------------------------

/// Most SYNC_FLUSH replies one shard holds parked for their fdatasync, counting answered ones
/// still waiting for room in a slow reader's write queue. A reply is a few hundred bytes, so
/// this is a few MiB; past it a send waits in its request (bounded per connection by the
/// requests it may have in flight), so a peer that never reads cannot grow it.
pub const PARKED_REPLIES_MAX: usize = 16_384;
const _: () = assert!(PARKED_REPLIES_MAX > 0);

// ---- the mesh (src/runtime/mesh.rs) ---------------------------------------------------------

/// Capacity of each shard's inbound channel: calls waiting for the target's inbox loop. 4096
/// covers a burst of pipelined requests from many connections while bounding what waits.
pub const MESH_CHANNEL_CAPACITY: usize = 4096;
/// Calls from other shards one shard runs at once. Held long polls count (one per parked pull
/// that crossed), so this is sized for many consumers: 16,384 small requests are a few MiB of
/// headers; past it a call is refused (SYSTEM_BUSY) instead of queued.
pub const CROSS_CALLS_IN_FLIGHT_MAX: usize = 16_384;
/// Calls one shard may have outstanding on other shards at once; past it a call is not sent
/// (SYSTEM_BUSY). This also bounds how many of a shard's tasks other threads can wake.
pub const CROSS_CALLS_OUTGOING_MAX: usize = 16_384;
/// Slots in each mesh thread's remote-wake queue (compio's `sync_queue_size`): one per
/// outgoing call, plus the inbox loop and spare for the few other cross-thread waiters
/// (shutdown, tests). Never full, so a waking thread never spins.
pub const REMOTE_WAKE_QUEUE_SIZE: usize = CROSS_CALLS_OUTGOING_MAX + 64;
/// How long a sender waits for room in a full channel before giving up (Java's
/// `waitTimeMillsInSendQueue` default is 200 ms).
pub const MESH_SEND_WAIT_BUDGET: Duration = Duration::from_millis(200);
const _: () = assert!(MESH_CHANNEL_CAPACITY > 0 && CROSS_CALLS_IN_FLIGHT_MAX > 0);
const _: () = assert!(
    CROSS_CALLS_IN_FLIGHT_MAX >= MESH_CHANNEL_CAPACITY,
    "a shard must be able to run at least one channel's worth of calls at once"
);
const _: () = assert!(
    REMOTE_WAKE_QUEUE_SIZE > CROSS_CALLS_OUTGOING_MAX,
    "every outgoing call's task must find a remote-wake slot"
);

// ---- names -----------------------------------------------------------------------------------

/// Longest ordinary topic name (Java `TopicValidator.TOPIC_MAX_LENGTH`).
pub const TOPIC_NAME_LENGTH_MAX: usize = net::TOPIC_NAME_SIZE_MAX;
/// Longest `%RETRY%`/`%DLQ%` topic name (Java `RETRY_OR_DLQ_TOPIC_MAX_LENGTH`).
pub const RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX: usize = net::TOPIC_NAME_RETRY_SIZE_MAX;
const _: () = assert!(
    storage::TOPIC_LEN_MAX >= RETRY_OR_DLQ_TOPIC_NAME_LENGTH_MAX,
    "every topic name the broker accepts must be storable (retry and DLQ names included)"
);
/// Longest consumer or producer group name (Java's validator: 255).
pub const GROUP_NAME_LENGTH_MAX: usize = 255;
/// Longest client id, instance name or other client-chosen name kept in the registry.
pub const CLIENT_NAME_LENGTH_MAX: usize = 1_024;

// ---- control-plane tables -------------------------------------------------------------------

/// Most keys per shard of each VIEW_BROKER_STATS_DATA item (`TOPIC_PUT_NUMS` topics,
/// `GROUP_GET_NUMS` `topic@group` pairs): ~1.4 KiB each, so at most ~11 MiB per shard for both.
/// Past it a new key is not counted (its stats answer "not exist"); held keys keep counting.
pub const STATS_ITEM_KEYS_MAX: usize = 4096;

/// Most topics per broker: the NameServer registration body stays under ~20 MiB of JSON and
/// the table's journal and file stay small. Past it creation is refused.
pub const TOPICS_MAX: usize = 100_000;
/// Default `autoCreateTopicMax`: ordinary topics the broker may hold for auto-create to still
/// create one. 4,096 auto-created topics of 4 queues (what clients ask for) are 16,384
/// queues, a fraction of the queue capacity, leaving the rest (and topics up to
/// [`TOPICS_MAX`]) to admin creation.
pub const AUTO_CREATE_TOPICS_DEFAULT: usize = 4_096;
const _: () = assert!(AUTO_CREATE_TOPICS_DEFAULT < TOPICS_MAX);
/// Most read or write queues per topic (Java's largest built-in topic, `BenchmarkTest`, has
/// 1024; every queue costs a consume queue and per-queue offsets).
pub const QUEUE_NUMS_MAX: i32 = 1024;
/// Most subscription groups per broker.
pub const GROUPS_MAX: usize = 100_000;
/// Most live consumer groups in the client registry.
pub const CONSUMER_GROUPS_MAX: usize = 50_000;
/// Most live producer groups in the client registry.
pub const PRODUCER_GROUPS_MAX: usize = 50_000;
/// Most members of one group (a heartbeat past it is refused).
pub const CLIENTS_PER_GROUP_MAX: usize = 4_096;
/// Most topics one group subscribes to.
pub const SUBSCRIPTIONS_PER_GROUP_MAX: usize = 4_096;
/// Most orderly-consumption locks (queue × group) held at once.
pub const LOCKS_MAX: usize = 1_000_000;
/// Most orderly-consumption locks one client id holds: far more queues than one consumer is
/// assigned on one broker, and a client asking for every queue under many group names cannot
/// take the slots other groups need.
pub const LOCKS_PER_CLIENT_MAX: usize = 16_384;
const _: () = assert!(LOCKS_PER_CLIENT_MAX < LOCKS_MAX);
/// Most (topic, group, queue) consumer offsets one shard keeps.
pub const OFFSET_ENTRIES_MAX: usize = 1_000_000;
/// Largest metadata JSON file read back at start: a topic table at [`TOPICS_MAX`] is ~30 MiB
/// of pretty JSON, an offset table at [`OFFSET_ENTRIES_MAX`] ~40 MiB.
pub const METADATA_FILE_SIZE_MAX: u64 = 256 * 1024 * 1024;
/// Largest journal record (one change set of a table); thousands of entries fit.
pub const JOURNAL_RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// A table's journal shorter than this is never folded into its file.
pub const JOURNAL_COMPACT_BYTES_MIN: u64 = 1024 * 1024;
/// Topic names one pending incremental NameServer registration collects before it becomes a
/// full one.
pub const REGISTER_PENDING_TOPICS_MAX: usize = 1024;

/// NOTIFY_CONSUMER_IDS_CHANGED: a group's first membership change is notified at once, later
/// ones within this interval fold into one trailing notification (Java's
/// `notifyConsumerChangeInterval` default is 1 s). Bounds what a storm of N joins costs each
/// member: one notification per interval instead of N.
pub const NOTIFY_GROUP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a shard gathers connection closes before telling the control shard about them in
/// one notice (a wave of closes costs a few notices, not one each).
pub const CLOSED_CONNS_BATCH_DELAY: Duration = Duration::from_millis(10);

// ---- admin ----

/// Most bytes of a client's key or value an admin refusal's remark echoes (the rest is cut,
/// with the full length named): a remark travels in the reply header, which clients cap.
pub const ADMIN_REMARK_ECHO_MAX: usize = 256;
/// Most keys one UPDATE_BROKER_CONFIG body may carry (only two can change at run time; a
/// body with more is refused with INVALID_PARAMETER before its keys are looked at).
pub const UPDATE_BROKER_CONFIG_KEYS_MAX: usize = 64;

// ---- shutdown ----

/// How long a clean stop waits for the client requests being handled when it began (sends
/// waiting for their flush, forwarded calls) before closing connections anyway. Java's
/// remoting server waits for nothing; 5 s covers a SYNC_FLUSH group commit many times over.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

// ---- requests ---------------------------------------------------------------------------------

/// Longest a pull may be held (`suspendTimeoutMillis` is capped to this).
pub const SUSPEND_TIMEOUT_MAX: Duration = Duration::from_secs(25);
/// Most messages one pull returns.
pub const PULL_MESSAGES_MAX: u32 = 1024;
/// Most body bytes one pull returns.
pub const PULL_BYTES_MAX: u64 = 256 * 1024;
/// Default and most records QUERY_MESSAGE returns.
pub const QUERY_MAX_NUM_DEFAULT: usize = 32;
/// See [`QUERY_MAX_NUM_DEFAULT`].
pub const QUERY_MAX_NUM_MAX: usize = 64;
const _: () = assert!(QUERY_MAX_NUM_DEFAULT <= QUERY_MAX_NUM_MAX);
/// How long PUSH_REPLY_MESSAGE_TO_CLIENT waits for the requesting client's answer (Java's
/// `callClient` waits 10 s); the responder's SEND_REPLY_MESSAGE is answered SYSTEM_ERROR past it.
pub const REPLY_PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long INVOKE_BROKER_TO_GET_CONSUMER_STATUS waits for each member's
/// GET_CONSUMER_STATUS_FROM_CLIENT answer (Java's 5 s); a member past it is left out.
pub const CONSUMER_STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Most delay levels in `messageDelayLevel`.
pub const MESSAGE_DELAY_LEVELS_MAX: usize = 64;
/// Longest delay level.
pub const MESSAGE_DELAY_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

// ---- NameServer ---------------------------------------------------------------------------------

/// Most live brokers one NameServer tracks.
pub const NAMESRV_BROKERS_MAX: usize = 4096;
/// Most topics one NameServer routes.
pub const NAMESRV_TOPICS_MAX: usize = 1_000_000;
const _: () = assert!(NAMESRV_TOPICS_MAX >= TOPICS_MAX);
/// KV config: most namespaces, keys per namespace, bytes per item.
pub const KV_NAMESPACES_MAX: usize = 1024;
/// See [`KV_NAMESPACES_MAX`].
pub const KV_KEYS_PER_NAMESPACE_MAX: usize = 100_000;
/// See [`KV_NAMESPACES_MAX`].
pub const KV_ITEM_SIZE_MAX: usize = 64 * 1024;

// ---- transactions --------------------------------------------------------------------------

/// Most half messages without an outcome the half-queue owner tracks in memory (one entry of
/// about 100 bytes plus the producer group name each, so ~10-20 MiB at the limit). Past it a
/// new half message is refused with SYSTEM_BUSY before it is stored (producers retry); half
/// messages recovered beyond it after a restart are logged and left unchecked until a restart
/// finds room (docs/transactions.md).
pub const TRANSACTION_PENDING_MAX: usize = 100_000;
/// Java's `transactionTimeOut` default: a half message is first checked back after this.
pub const TRANSACTION_TIME_OUT_DEFAULT: Duration = Duration::from_secs(6);
/// Java's `transactionCheckInterval` default: time between two check-backs of one message.
pub const TRANSACTION_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Shortest `transactionCheckInterval` accepted: the check loop's tick; shorter is not honoured.
pub const TRANSACTION_CHECK_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Longest `transactionCheckInterval` accepted (a day); a larger value is a typo.
pub const TRANSACTION_CHECK_INTERVAL_MAX: Duration = Duration::from_secs(86_400);
/// Java's `transactionCheckMax` default.
pub const TRANSACTION_CHECK_MAX_DEFAULT: u32 = 15;
/// Largest `transactionCheckMax` accepted: more check-backs than this is a typo.
pub const TRANSACTION_CHECK_MAX_LIMIT: u32 = 10_000;
/// Longest `CHECK_IMMUNITY_TIME_IN_SECONDS` a half message may ask for (a day); larger values
/// are capped so a typo cannot park a transaction for years.
pub const TRANSACTION_IMMUNITY_MAX: Duration = Duration::from_secs(86_400);
/// Op-log records read per page while rebuilding the pending set at start.
pub const TRANSACTION_RECOVERY_PAGE: u32 = 256;
const _: () = assert!(
    TRANSACTION_CHECK_INTERVAL_MIN.as_millis() <= TRANSACTION_CHECK_INTERVAL_DEFAULT.as_millis()
        && TRANSACTION_CHECK_INTERVAL_DEFAULT.as_millis()
            <= TRANSACTION_CHECK_INTERVAL_MAX.as_millis()
);
const _: () = assert!(TRANSACTION_CHECK_MAX_DEFAULT <= TRANSACTION_CHECK_MAX_LIMIT);
// ---- ACL (plain_acl.yml) -------------------------------------------------------------------

/// Largest `plain_acl.yml` read: 1 MiB holds thousands of accounts; a larger file is a mistake
/// and is refused (the configuration in force stays).
pub const ACL_FILE_BYTES_MAX: usize = 1 << 20;
/// Most accounts in `plain_acl.yml` (each request looks its account up in a hash map, so the
/// count costs memory only).
pub const ACL_ACCOUNTS_MAX: usize = 4096;
/// Most `topicPerms` + `groupPerms` items over all accounts.
pub const ACL_RESOURCE_PERMS_MAX: usize = 65_536;
/// Most entries in `globalWhiteRemoteAddresses`, and most addresses in one list pattern.
pub const ACL_ADDRESS_ENTRIES_MAX: usize = 1024;
/// Deepest nesting of YAML sequences and mappings in `plain_acl.yml` (the format needs 4: the
/// top mapping, `accounts`, an account, its `topicPerms`). The YAML loader recurses per level,
/// so a deeper file is refused before it is loaded.
pub const ACL_YAML_DEPTH_MAX: usize = 16;
/// Shortest accessKey and secretKey (Java's `checkPlainAccessConfig`: longer than 6).
pub const ACL_ACCESS_KEY_LENGTH_MIN: usize = 7;
/// How often the control shard re-reads `plain_acl.yml` for changes (Java's FileWatchService
/// polls every 500 ms; a second is as prompt for an operator and reads the file half as often).
pub const ACL_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
const _: () = assert!(
    ACL_ACCOUNTS_MAX * 32 <= ACL_FILE_BYTES_MAX,
    "a full account list fits the file limit"
);
// ---- metrics (Prometheus exporter) ---------------------------------------------------------

/// Topics each shard keeps a `rocketmq_messages_in_total` series for (and the merged scrape
/// exports): enough for the 10,000-topic brokers benchmarked; traffic of further topics is
/// summed under `topic="_other"`, so a client creating topics cannot grow the scrape without
/// bound.
pub const METRICS_TOPICS_MAX: usize = 10_000;
/// (topic, consumer group) pairs each shard keeps an out-traffic series for, and consumer lag
/// series a scrape exports; further pairs are summed under `_other`.
pub const METRICS_CONSUMER_SERIES_MAX: usize = 10_000;
/// Stored-message reads one shard makes per scrape for `rocketmq_consumer_lag_latency` (one
/// per lagging queue): bounds a scrape's disk work on a broker with many lagging queues; the
/// queues past it count in the lag messages but not in the latency.
pub const METRICS_LAG_READS_MAX: usize = 20_000;
/// Of those reads, how many one shard runs at once (each is an O_DIRECT read of a possibly cold
/// queue; a sequential walk made a 10,000-lagging-topic scrape take ~0.5 s).
pub const METRICS_LAG_READS_IN_FLIGHT: usize = 64;
/// (request code, response code) latency histograms each shard keeps: only send and pull codes
/// are recorded, each with the few response codes the broker answers them with.
pub const METRICS_RPC_SERIES_MAX: usize = 256;
/// Scrape connections the exporter serves at once; more are closed at accept.
pub const METRICS_HTTP_CONNECTIONS_MAX: usize = 4;
/// Bytes of one HTTP request head (request line and headers) the exporter reads; a larger one
/// is answered 431.
pub const METRICS_HTTP_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Time a scraper has to send its request head, and to read the whole answer.
pub const METRICS_HTTP_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinct SQL92 expressions one shard keeps compiled (src/broker/sql92.rs); when full the
/// cache is emptied and refilled by the next pulls, so clients sending ever-new expressions
/// cost compile time, never memory.
pub const SQL92_SELECTOR_CACHE_MAX: usize = 1024;

/// Java's `timerMaxDelaySec` default: three days.
pub const TIMER_MAX_DELAY_SEC_DEFAULT: u64 = 3 * 24 * 3600;
/// Largest `timerMaxDelaySec` accepted: two years (the coarse level holds one slot per hour:
/// 17,523 slots, 280 KiB; `broker::timer::wheel::COARSE_SLOTS_MAX` bounds it).
pub const TIMER_MAX_DELAY_SEC_LIMIT: u64 = 2 * 365 * 24 * 3600;
/// Java's `timerPrecisionMs` default.
pub const TIMER_PRECISION_MS_DEFAULT: u64 = 1_000;
/// Finest `timerPrecisionMs`: 100 ms (72,000 fine slots over two rounds, 1.1 MiB).
pub const TIMER_PRECISION_MS_MIN: u64 = 100;
/// One round of the timing wheel (a coarse slot): an hour. The precision divides it.
pub const TIMER_ROUND_MS: u64 = 3_600_000;
/// Timer messages the enqueue task reads from the timer system queue per batch.
pub const TIMER_ENQUEUE_BATCH: u32 = 256;
/// Timers the delivery loop reads from a slot's chain per batch (delivered by windows of
/// [`TIMER_DELIVER_WINDOW`]).
pub const TIMER_DELIVER_BATCH: usize = 256;
/// Due timers whose records the delivery loop reads and re-stores at once (a window of a
/// [`TIMER_DELIVER_BATCH`], sorted by timer-queue offset: adjacent copies share one ranged
/// read, the others are reads in flight together; their re-stores are appends in flight
/// together). Bounds the records a shard holds for delivery to this many.
pub const TIMER_DELIVER_WINDOW: usize = 32;
/// Topics the timer admin view counts pending timers for, per shard; timers of further
/// topics are counted under `<other>` (the map is keyed by the senders' topics).
pub const TIMER_TOPICS_COUNTED_MAX: usize = 4_096;
/// `timerRollWindowSlot` default: Java 5's two days of 1 s slots.
pub const TIMER_ROLL_WINDOW_SLOT_DEFAULT: u64 = 2 * 24 * 3600;
/// Fewest slots in a roll window (Java's floor too): a timer rolls at most every other slot.
pub const TIMER_ROLL_WINDOW_SLOT_MIN: u64 = 2;
/// Most slots in a roll window: 40 days at 1 s (beyond it half of `fileReservedTime` caps it
/// anyway).
pub const TIMER_ROLL_WINDOW_SLOT_MAX: u64 = 40 * 24 * 3600;
/// Most roll origins remembered while a restarted shard re-enqueues its timer queue (8 bytes
/// each plus the set's overhead): a roll whose copy is found again after a crash is not
/// rolled twice. Past it a repeated roll is possible and logged (docs/timer.md).
pub const TIMER_ROLL_DEDUP_MAX: usize = 1 << 20;
const _: () = assert!(TIMER_ROLL_WINDOW_SLOT_MIN <= TIMER_ROLL_WINDOW_SLOT_DEFAULT);
const _: () = assert!(TIMER_ROLL_WINDOW_SLOT_DEFAULT <= TIMER_ROLL_WINDOW_SLOT_MAX);
const _: () = assert!(TIMER_ROUND_MS % TIMER_PRECISION_MS_DEFAULT == 0);
const _: () = assert!(TIMER_ROUND_MS % TIMER_PRECISION_MS_MIN == 0);
const _: () = assert!(TIMER_MAX_DELAY_SEC_DEFAULT <= TIMER_MAX_DELAY_SEC_LIMIT);

/// `idlePollMicros` (ours) default: how long a shard that just served something polls its
/// ring before it sleeps (`rmq_net::poll_loop`). Off: polling spends the core's idle time,
/// which an operator chooses; 50 µs took the p50 of 1-in-flight round trips from 151–171 to
/// 118–130 µs here, at 0.94–1.23× the loaded throughput of off
/// (`perf-reports/2026-12-08-poll-allocs/`).
pub const IDLE_POLL_DEFAULT: Duration = Duration::ZERO;

/// `idlePollMicros` maximum: a shard never spins longer than this without sleeping.
pub const IDLE_POLL_MAX: Duration = Duration::from_millis(10);
