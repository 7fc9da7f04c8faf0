//! Broker and NameServer configuration: RocketMQ's `broker.conf` properties keys, read as they
//! are, parsed once at start into typed structs and validated. Unknown keys are reported (the
//! caller warns), bad values are an error naming the key. No global state: the parsed config is
//! passed to whoever needs it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::limits;

use thiserror::Error;

/// A configuration problem, naming the key and the offending value.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A value does not parse as its type or is out of range.
    #[error("config key `{key}`: invalid value `{value}` ({reason})")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// A line of the properties file is malformed.
    #[error("config line {line}: {reason}")]
    Syntax { line: usize, reason: String },
}

/// Parses Java `.properties` text (the `broker.conf` format): `key=value` or `key: value` or
/// `key value`, `#`/`!` comments, backslash line continuations and `\t \n \r \\ \uXXXX`
/// escapes. Later keys override earlier ones.
///
/// # Errors
/// [`ConfigError::Syntax`] for a bad `\u` escape.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut start_line = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if logical.is_empty() {
            start_line = index + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
        }
        let trailing_backslashes = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing_backslashes % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split_key_value(&logical);
        let key = unescape(key, start_line)?;
        let value = unescape(value, start_line)?;
        if !key.is_empty() {
            out.insert(key, value);
        }
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_key_value(&logical);
        out.insert(unescape(key, start_line)?, unescape(value, start_line)?);
    }
    Ok(out)
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' => {
                let key = &line[..i];
                let mut rest = line[i..].trim_start_matches([' ', '\t']);
                if c == ' ' || c == '\t' {
                    if let Some(r) = rest.strip_prefix(['=', ':']) {
                        rest = r;
                    }
                } else {
                    rest = &rest[1..];
                }
                return (key, rest.trim_start_matches([' ', '\t']).trim_end());
            }
            _ => {}
        }
    }
    (line.trim_end(), "")
}

fn unescape(text: &str, line: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                let Some(ch) = code.filter(|_| hex.len() == 4) else {
                    return Err(ConfigError::Syntax {
                        line,
                        reason: format!("bad \\u escape `{hex}`"),
                    });
                };
                out.push(ch);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// When a send is acknowledged relative to the disk (`flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// Acknowledge once appended in memory; flushed in the background.
    AsyncFlush,
    /// Acknowledge only after the fdatasync that covers the message.
    SyncFlush,
}

/// Which metrics exporter runs (`metricsExporterType`; RocketMQ 5's names). Only `PROM` and
/// `DISABLE` are served: `OTLP_GRPC` and `LOG` are refused at start, naming the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsExporterType {
    /// No exporter, no recording on the hot path (the default, as in RocketMQ).
    #[default]
    Disable,
    /// Prometheus text format on `http://metricsPromExporterHost:metricsPromExporterPort/metrics`.
    Prom,
}

/// Replication role (`brokerRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    /// Master, replies without waiting for a slave.
    AsyncMaster,
    /// Master, replies after a slave acknowledged.
    SyncMaster,
    /// Slave: refuses sends (SERVICE_NOT_AVAILABLE, as Java's store does).
    Slave,
}

impl BrokerRole {
    /// The `brokerRole` value as written in broker.conf.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AsyncMaster => "ASYNC_MASTER",
            Self::SyncMaster => "SYNC_MASTER",
            Self::Slave => "SLAVE",
        }
    }

    /// Whether this is one of the master roles.
    #[must_use]
    pub fn is_master(self) -> bool {
        self != Self::Slave
    }
}

/// `haMasterAddress`: where a slave connects for replication (`host:port`; the host is an IP
/// address, `[IPv6]`, or a name resolved when connecting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaMasterAddress {
    /// IP address or host name (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port, 1 to 65535.
    pub port: u16,
}

impl std::fmt::Display for HaMasterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for HaMasterAddress {
    type Err = String;

    /// Parses `host:port`: `1.2.3.4:10912`, `[::1]:10912` or `master-a.example:10912`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| "expected host:port".to_owned())?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port `{port}` is not 1 to 65535"))?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| "unclosed `[` in an IPv6 address".to_owned())?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map_err(|e| format!("`{inner}`: {e}"))?;
            inner
        } else {
            check_host_name(host)?;
            host
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// A host name or IPv4 address: DNS labels of letters, digits and `-`, dot-separated.
fn check_host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.len() > 253 {
        return Err("host name longer than 253 bytes".into());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err(format!(
            "`{host}` is not a host name or IPv4 address (an IPv6 address needs [brackets])"
        ));
    }
    Ok(())
}

/// Typed broker configuration with RocketMQ's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `brokerClusterName`.
    pub broker_cluster_name: String,
    /// `brokerName`.
    pub broker_name: String,
    /// `brokerId` (0 = master).
    pub broker_id: i64,
    /// `namesrvAddr`, `;`-separated in the file.
    pub namesrv_addrs: Vec<String>,
    /// `listenPort`; 0 binds any free port (then the default HA port is any free one too).
    pub listen_port: u16,
    /// `brokerIP1`: the address put in routes and msgIds.
    pub broker_ip1: Ipv4Addr,
    /// Address the broker listens on (not a Java key: Java listens on every address).
    /// `0.0.0.0` by default; `rmq standalone` uses loopback unless told otherwise.
    pub listen_ip: Ipv4Addr,
    /// `brokerIP2`: the HA address.
    pub broker_ip2: Ipv4Addr,
    /// `haListenPort` when set; [`BrokerConfig::ha_listen_port`] gives the effective port
    /// (default `listenPort + 1`).
    pub ha_listen_port_explicit: Option<u16>,
    /// `storePathRootDir`.
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog` (default `<root>/commitlog`).
    pub store_path_commit_log: PathBuf,
    /// `mappedFileSizeCommitLog`: CommitLog segment size in bytes.
    pub mapped_file_size_commit_log: u64,
    /// `flushDiskType`.
    pub flush_disk_type: FlushDiskType,
    /// `syncFlushTimeout`.
    pub sync_flush_timeout: Duration,
    /// `flushIntervalCommitLog`.
    pub flush_interval_commit_log: Duration,
    /// `commitIntervalCommitLog`: ASYNC_FLUSH writes appended bytes to disk (no fdatasync)
    /// within this interval, so a crash of the process loses at most that much (default 10 ms;
    /// Java's 200 ms default applies to its transient store pool, the closest analogue).
    pub commit_interval_commit_log: Duration,
    /// `brokerRole`.
    pub broker_role: BrokerRole,
    /// `autoCreateTopicEnable`.
    pub auto_create_topic_enable: bool,
    /// `autoCreateTopicMax` (ours): auto-create is refused (TOPIC_NOT_EXIST) once the broker
    /// holds this many ordinary topics (system, retry and DLQ topics not counted), so producers
    /// writing to new names cannot take the topic and queue capacity admin creation needs.
    pub auto_create_topic_max: usize,
    /// `autoCreateSubscriptionGroup`.
    pub auto_create_subscription_group: bool,
    /// `traceTopicEnable` (Java default false): the broker creates the message-trace topic.
    pub trace_topic_enable: bool,
    /// `msgTraceTopicName`: the message-trace topic's name (default `RMQ_SYS_TRACE_TOPIC`).
    pub msg_trace_topic_name: String,
    /// `defaultTopicQueueNums`.
    pub default_topic_queue_nums: i32,
    /// `fileReservedTime` in hours.
    pub file_reserved_time_hours: u32,
    /// `deleteWhen`: hours of day (`04` or `04;05`).
    pub delete_when: Vec<u8>,
    /// `diskMaxUsedSpaceRatio` in percent.
    pub disk_max_used_space_ratio: u8,
    /// `maxMessageSize` in bytes.
    pub max_message_size: usize,
    /// `brokerPermission`.
    pub broker_permission: i32,
    /// `registerNameServerPeriod`, clamped to 10..=60 s as Java does.
    pub register_name_server_period: Duration,
    /// `longPollingEnable`.
    pub long_polling_enable: bool,
    /// `enablePropertyFilter` (Java default false): SQL92 subscriptions are served; off, SQL92
    /// pulls and CHECK_CLIENT_CONFIG get Java's refusal (src/broker/sql92.rs).
    pub enable_property_filter: bool,
    /// `shortPollingTimeMills`.
    pub short_polling_time: Duration,
    /// `slaveReadEnable`: pull replies suggest a slave for cold reads (the group's
    /// `whichBrokerWhenConsumeSlowly`) or the group's `brokerId`; off, they always say 0.
    pub slave_read_enable: bool,
    /// `accessMessageInMemoryMaxRatio` in percent of physical memory (Java's 40): a pull
    /// reading further behind the CommitLog's end than this reads cold data (on a master with
    /// `slaveReadEnable`, consumers are sent to a slave).
    pub access_message_in_memory_max_ratio: u8,
    /// `offsetCheckInSlave`: on a slave, a pull at an offset the slave cannot serve answers
    /// PULL_OFFSET_MOVED (true) or PULL_RETRY_IMMEDIATELY leaving the consumer's offset alone
    /// (false, Java's default: the slave may only be behind its master).
    pub offset_check_in_slave: bool,
    /// `slaveSyncIntervalMillis` (ours): how often a slave copies its master's tables and
    /// offsets ([`limits::SLAVE_SYNC_INTERVAL_DEFAULT`]).
    pub slave_sync_interval: Duration,
    /// `haMasterAddress` (slaves only; a slave without one will learn its master from the
    /// NameServer).
    pub ha_master_address: Option<HaMasterAddress>,
    /// `haSendHeartbeatInterval`.
    pub ha_send_heartbeat_interval: Duration,
    /// `haMaxGapNotInSync`: a slave further behind than this many bytes is not in sync
    /// (SYNC_MASTER then answers SLAVE_NOT_AVAILABLE).
    pub ha_max_gap_not_in_sync: u64,
    /// `haMaxLagMillis` (ours): a master raises its lag alarm when its slave's oldest
    /// unacknowledged record is older than this (or the slave is further behind than
    /// `haMaxGapNotInSync` bytes).
    pub ha_max_lag: Duration,
    /// `haTransferBatchSize`: log bytes per HA Data frame, at most
    /// [`limits::HA_TRANSFER_BATCH_SIZE_MAX`].
    pub ha_transfer_batch_size: usize,
    /// `shards` (ours): shard count; default = number of cores.
    pub shards: Option<usize>,
    /// `idlePollMicros` (ours): how long a shard that just served something polls its ring
    /// before it sleeps (`rmq_net::poll_loop`; [`limits::IDLE_POLL_DEFAULT`], at most
    /// [`limits::IDLE_POLL_MAX`]).
    pub idle_poll: Duration,
    /// `frameCompletionTimeoutMillis` (ours): how long one frame may take to arrive once its
    /// first bytes did (`rmq_net::conn::config::FRAME_COMPLETION_TIMEOUT_DEFAULT`, 60 s).
    pub frame_completion_timeout: Duration,
    /// `partialFrameBytesMax` (ours): bytes of incomplete frames one shard buffers over all its
    /// connections before shedding the largest holders
    /// (`rmq_net::conn::config::PARTIAL_FRAME_BYTES_MAX_DEFAULT`, 256 MiB).
    pub partial_frame_bytes_max: usize,
    /// `messageDelayLevel`: the delay of each level, level 1 first (PROTOCOL.md §7.4).
    pub message_delay_level: Vec<Duration>,
    /// `transactionTimeOut`: a half message younger than this is not checked back yet (Java
    /// 6 s; a `CHECK_IMMUNITY_TIME_IN_SECONDS` property overrides it per message).
    pub transaction_time_out: Duration,
    /// `transactionCheckInterval`: time between two check-backs of one half message (Java 60 s).
    pub transaction_check_interval: Duration,
    /// `transactionCheckMax`: check-backs before a half message is discarded to
    /// `TRANS_CHECK_MAX_TIME_TOPIC` (Java 15).
    pub transaction_check_max: u32,
    /// `rejectTransactionMessage`: refuse half messages with NO_PERMISSION (Java false).
    pub reject_transaction_message: bool,
    /// `aclEnable`: check every request against `plain_acl.yml` (docs/acl.md).
    pub acl_enable: bool,
    /// `aclFile` (ours; Java reads `$ROCKETMQ_HOME/conf/plain_acl.yml`, the default here).
    pub acl_file: Option<PathBuf>,
    /// `metricsExporterType`: `DISABLE` (default) or `PROM` (docs/metrics.md).
    pub metrics_exporter_type: MetricsExporterType,
    /// `metricsPromExporterHost`: the exporter's address; empty (the default) means the
    /// broker's listen address.
    pub metrics_prom_exporter_host: Option<Ipv4Addr>,
    /// `metricsPromExporterPort`: 5557 by default (RocketMQ's); 0 binds any free port.
    pub metrics_prom_exporter_port: u16,
    /// `timerWheelEnable`: accept timer messages (`TIMER_DELIVER_MS` and friends; Java true).
    pub timer_wheel_enable: bool,
    /// `timerMaxDelaySec`: the longest timer accepted (Java 3 days; docs/timer.md).
    pub timer_max_delay_sec: u64,
    /// `timerPrecisionMs`: one slot of the timing wheel (Java 1000; 100 supported).
    pub timer_precision_ms: u64,
    /// `timerRollWindowSlot`: a timer due further than this many slots after its copy was
    /// stored is re-stored ("rolled") then (Java 5 key, default 2 days at 1 s); capped at half
    /// of `fileReservedTime` (`timer::roll::roll_window_ms`, docs/timer.md).
    pub timer_roll_window_slot: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let root = home_store_dir();
        Self {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: default_broker_name(),
            broker_id: 0,
            namesrv_addrs: Vec::new(),
            listen_port: 10911,
            broker_ip1: Ipv4Addr::LOCALHOST,
            listen_ip: Ipv4Addr::UNSPECIFIED,
            broker_ip2: Ipv4Addr::LOCALHOST,
            ha_listen_port_explicit: None,
            store_path_commit_log: root.join("commitlog"),
            store_path_root_dir: root,
            mapped_file_size_commit_log: 1 << 30,
            flush_disk_type: FlushDiskType::AsyncFlush,
            sync_flush_timeout: Duration::from_millis(5000),
            flush_interval_commit_log: Duration::from_millis(500),
            commit_interval_commit_log: Duration::from_millis(
                rmq_storage::limits::COMMIT_INTERVAL_MS_DEFAULT,
            ),
            broker_role: BrokerRole::AsyncMaster,
            auto_create_topic_enable: true,
            auto_create_topic_max: limits::AUTO_CREATE_TOPICS_DEFAULT,
            auto_create_subscription_group: true,
            trace_topic_enable: false,
            msg_trace_topic_name: crate::tables::topics::TRACE_TOPIC.to_owned(),
            default_topic_queue_nums: 8,
            file_reserved_time_hours: 72,
            delete_when: vec![4],
            disk_max_used_space_ratio: 75,
            max_message_size: limits::MESSAGE_SIZE_DEFAULT,
            broker_permission: 6,
            register_name_server_period: Duration::from_secs(30),
            long_polling_enable: true,
            enable_property_filter: false,
            short_polling_time: Duration::from_millis(1000),
            slave_read_enable: false,
            access_message_in_memory_max_ratio: 40,
            offset_check_in_slave: false,
            slave_sync_interval: limits::SLAVE_SYNC_INTERVAL_DEFAULT,
            ha_master_address: None,
            ha_send_heartbeat_interval: limits::HA_SEND_HEARTBEAT_INTERVAL_DEFAULT,
            ha_max_gap_not_in_sync: limits::HA_MAX_GAP_NOT_IN_SYNC_DEFAULT,
            ha_max_lag: limits::HA_MAX_LAG_DEFAULT,
            ha_transfer_batch_size: limits::HA_TRANSFER_BATCH_SIZE_DEFAULT,
            shards: None,
            idle_poll: limits::IDLE_POLL_DEFAULT,
            frame_completion_timeout: rmq_net::conn::config::FRAME_COMPLETION_TIMEOUT_DEFAULT,
            partial_frame_bytes_max: rmq_net::conn::config::PARTIAL_FRAME_BYTES_MAX_DEFAULT,
            message_delay_level: parse_delay_levels(MESSAGE_DELAY_LEVEL_DEFAULT)
                .expect("the default delay levels parse"),
            transaction_time_out: limits::TRANSACTION_TIME_OUT_DEFAULT,
            transaction_check_interval: limits::TRANSACTION_CHECK_INTERVAL_DEFAULT,
            transaction_check_max: limits::TRANSACTION_CHECK_MAX_DEFAULT,
            reject_transaction_message: false,
            acl_enable: false,
            acl_file: None,
            metrics_exporter_type: MetricsExporterType::Disable,
            metrics_prom_exporter_host: None,
            metrics_prom_exporter_port: 5557,
            timer_wheel_enable: true,
            timer_max_delay_sec: limits::TIMER_MAX_DELAY_SEC_DEFAULT,
            timer_precision_ms: limits::TIMER_PRECISION_MS_DEFAULT,
            timer_roll_window_slot: limits::TIMER_ROLL_WINDOW_SLOT_DEFAULT,
        }
    }
}

/// Java's default `messageDelayLevel` (levels 1..=18).
pub const MESSAGE_DELAY_LEVEL_DEFAULT: &str =
    "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";
pub use crate::limits::{MESSAGE_DELAY_LEVELS_MAX, MESSAGE_DELAY_MAX};

/// Parses a `messageDelayLevel` value as Java's `ScheduleMessageService.parseDelayLevel`
/// does: whitespace-separated `<count><unit>` entries, unit `s`, `m`, `h` or `d`; entry `i`
/// (from 0) is the delay of level `i + 1`.
///
/// # Errors
/// A reason string for an empty list, a bad entry, or a list or delay over
/// [`MESSAGE_DELAY_LEVELS_MAX`] / [`MESSAGE_DELAY_MAX`].
pub fn parse_delay_levels(text: &str) -> Result<Vec<Duration>, String> {
    let mut levels = Vec::new();
    for entry in text.split_whitespace() {
        let Some(unit) = entry.chars().last() else {
            continue;
        };
        let unit_secs: u64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("level `{entry}`: unit must be s, m, h or d")),
        };
        let count: u64 = entry[..entry.len() - unit.len_utf8()]
            .parse()
            .map_err(|e| format!("level `{entry}`: {e}"))?;
        let delay = count
            .checked_mul(unit_secs)
            .map(Duration::from_secs)
            .filter(|delay| *delay <= MESSAGE_DELAY_MAX)
            .ok_or_else(|| format!("level `{entry}` is longer than {MESSAGE_DELAY_MAX:?}"))?;
        levels.push(delay);
        if levels.len() > MESSAGE_DELAY_LEVELS_MAX {
            return Err(format!("more than {MESSAGE_DELAY_LEVELS_MAX} levels"));
        }
    }
    if levels.is_empty() {
        return Err("at least one level is required".into());
    }
    Ok(levels)
}

fn home_store_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from("./store"),
        |h| PathBuf::from(h).join("store"),
    )
}

fn default_broker_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "broker-a".into())
}

/// Java broker keys we accept without acting on them (JVM memory knobs and the like), so an
/// existing `broker.conf` does not produce noise.
const IGNORED_KEYS: &[&str] = &[
    "transientStorePoolEnable",
    "transientStorePoolSize",
    "warmMapedFileEnable",
    "useReentrantLockWhenPutMessage",
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "processReplyMessageThreadPoolNums",
    "queryMessageThreadPoolNums",
    "adminBrokerThreadPoolNums",
    "clientManageThreadPoolNums",
    "consumerManageThreadPoolNums",
    "sendThreadPoolQueueCapacity",
    "pullThreadPoolQueueCapacity",
    "osPageCacheBusyTimeOutMills",
    "waitTimeMillsInSendQueue",
    "flushCommitLogLeastPages",
    "flushConsumeQueueLeastPages",
    "flushIntervalConsumeQueue",
    "mappedFileSizeConsumeQueue",
    "storePathConsumeQueue",
    "storePathIndex",
    "storeCheckpoint",
    "abortFile",
    "maxIndexNum",
    "maxHashSlotNum",
    "enablePropertyFilter",
    "enableDLegerCommitLog",
    "fetchNamesrvAddrByAddressServer",
    "rocketmqHome",
    "maxTransferCountOnMessageInMemory",
    "maxTransferBytesOnMessageInMemory",
    "messageIndexEnable",
    "duplicationEnable",
    "haHousekeepingInterval",
    "slaveTimeout",
    "enableControllerMode",
    "cleanFileForciblyEnable",
    "checkCRCOnRecover",
];

/// Outcome of applying a properties map: the config plus the keys we did not recognise.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The typed config.
    pub config: T,
    /// Keys we do not know; the caller warns about each.
    pub unknown_keys: Vec<String>,
}

impl BrokerConfig {
    /// Builds a config from `broker.conf` properties over the defaults.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Loaded<Self>, ConfigError> {
        let mut c = Self::default();
        let mut unknown_keys = Vec::new();
        let mut commit_log_set = false;
        for (key, value) in props {
            let v = value.trim();
            match key.as_str() {
                "brokerClusterName" => c.broker_cluster_name = name(key, v)?,
                "brokerName" => c.broker_name = name(key, v)?,
                "brokerId" => c.broker_id = parse_range(key, v, 0, i64::from(u16::MAX))?,
                "namesrvAddr" => {
                    c.namesrv_addrs = v
                        .split(';')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                        .collect();
                }
                // 0: any free port (the READY line and registrations carry the bound one).
                "listenPort" if v == "0" => c.listen_port = 0,
                "listenPort" => c.listen_port = parse_range(key, v, 3, u16::MAX - 1)?,
                "brokerIP1" => c.broker_ip1 = parse(key, v)?,
                "brokerIP2" => c.broker_ip2 = parse(key, v)?,
                "haListenPort" => {
                    c.ha_listen_port_explicit = Some(parse_range(key, v, 1, u16::MAX)?)
                }
                "storePathRootDir" => c.store_path_root_dir = PathBuf::from(non_empty(key, v)?),
                "storePathCommitLog" => {
                    c.store_path_commit_log = PathBuf::from(non_empty(key, v)?);
                    commit_log_set = true;
                }
                "mappedFileSizeCommitLog" => {
                    c.mapped_file_size_commit_log =
                        parse_range(key, v, limits::SEGMENT_SIZE_MIN, limits::SEGMENT_SIZE_MAX)?;
                }
                "flushDiskType" => {
                    c.flush_disk_type = match v {
                        "ASYNC_FLUSH" => FlushDiskType::AsyncFlush,
                        "SYNC_FLUSH" => FlushDiskType::SyncFlush,
                        _ => return Err(invalid(key, v, "expected ASYNC_FLUSH or SYNC_FLUSH")),
                    };
                }
                "syncFlushTimeout" => c.sync_flush_timeout = millis(key, v)?,
                "flushIntervalCommitLog" => c.flush_interval_commit_log = millis(key, v)?,
                "commitIntervalCommitLog" => c.commit_interval_commit_log = millis(key, v)?,
                "brokerRole" => {
                    c.broker_role = match v {
                        "ASYNC_MASTER" => BrokerRole::AsyncMaster,
                        "SYNC_MASTER" => BrokerRole::SyncMaster,
                        "SLAVE" => BrokerRole::Slave,
                        _ => {
                            return Err(invalid(
                                key,
                                v,
                                "expected ASYNC_MASTER, SYNC_MASTER or SLAVE",
                            ))
                        }
                    };
                }
                "autoCreateTopicEnable" => c.auto_create_topic_enable = boolean(key, v)?,
                "autoCreateTopicMax" => {
                    c.auto_create_topic_max = parse_range(key, v, 0, limits::TOPICS_MAX)?
                }
                "autoCreateSubscriptionGroup" => {
                    c.auto_create_subscription_group = boolean(key, v)?
                }
                "traceTopicEnable" => c.trace_topic_enable = boolean(key, v)?,
                "msgTraceTopicName" => {
                    crate::tables::topics::validate_topic_name(v)
                        .map_err(|e| invalid(key, v, &e.to_string()))?;
                    c.msg_trace_topic_name = v.to_owned();
                }
                "defaultTopicQueueNums" => {
                    c.default_topic_queue_nums = parse_range(key, v, 1, 1024)?
                }
                "fileReservedTime" => {
                    c.file_reserved_time_hours = parse_range(key, v, 0, 24 * 3650)?
                }
                "deleteWhen" => {
                    c.delete_when = v
                        .split(';')
                        .map(|h| parse_range::<u8>(key, h.trim(), 0, 23))
                        .collect::<Result<_, _>>()?;
                }
                "diskMaxUsedSpaceRatio" => {
                    c.disk_max_used_space_ratio = parse_range(key, v, 10, 95)?
                }
                "maxMessageSize" => {
                    c.max_message_size = parse_range(key, v, 1, limits::MESSAGE_SIZE_MAX)?
                }
                "brokerPermission" => c.broker_permission = parse_range(key, v, 0, 7)?,
                "registerNameServerPeriod" => {
                    let ms: u64 = parse(key, v)?;
                    c.register_name_server_period = Duration::from_millis(ms.clamp(10_000, 60_000));
                }
                "longPollingEnable" => c.long_polling_enable = boolean(key, v)?,
                "enablePropertyFilter" => c.enable_property_filter = boolean(key, v)?,
                "shortPollingTimeMills" => c.short_polling_time = millis(key, v)?,
                "slaveReadEnable" => c.slave_read_enable = boolean(key, v)?,
                "accessMessageInMemoryMaxRatio" => {
                    c.access_message_in_memory_max_ratio = parse_range(key, v, 0, 100)?;
                }
                "offsetCheckInSlave" => c.offset_check_in_slave = boolean(key, v)?,
                "slaveSyncIntervalMillis" => {
                    let ms = parse_range(
                        key,
                        v,
                        duration_ms(limits::SLAVE_SYNC_INTERVAL_MIN),
                        duration_ms(limits::SLAVE_SYNC_INTERVAL_MAX),
                    )?;
                    c.slave_sync_interval = Duration::from_millis(ms);
                }
                "haMasterAddress" => {
                    c.ha_master_address = Some(
                        v.parse()
                            .map_err(|reason: String| invalid(key, v, &reason))?,
                    );
                }
                "haSendHeartbeatInterval" => c.ha_send_heartbeat_interval = millis(key, v)?,
                "haMaxGapNotInSync" => {
                    c.ha_max_gap_not_in_sync =
                        parse_range(key, v, 1, limits::HA_MAX_GAP_NOT_IN_SYNC_MAX)?;
                }
                "haMaxLagMillis" => c.ha_max_lag = millis(key, v)?,
                "haTransferBatchSize" => {
                    c.ha_transfer_batch_size =
                        parse_range(key, v, 1, limits::HA_TRANSFER_BATCH_SIZE_MAX)?;
                }
                "shards" | "shardCount" => {
                    c.shards = Some(parse_range(key, v, 1, limits::SHARDS_MAX)?);
                }
                "idlePollMicros" => {
                    let max = u64::try_from(limits::IDLE_POLL_MAX.as_micros()).unwrap_or(u64::MAX);
                    c.idle_poll = Duration::from_micros(parse_range(key, v, 0, max)?);
                }
                "frameCompletionTimeoutMillis" => c.frame_completion_timeout = millis(key, v)?,
                "partialFrameBytesMax" => {
                    c.partial_frame_bytes_max = parse_range(
                        key,
                        v,
                        limits::PARTIAL_FRAME_BYTES_MIN,
                        limits::PARTIAL_FRAME_BYTES_LIMIT,
                    )?;
                }
                "aclEnable" => c.acl_enable = boolean(key, v)?,
                "aclFile" => c.acl_file = Some(PathBuf::from(non_empty(key, v)?)),
                "messageDelayLevel" => {
                    c.message_delay_level =
                        parse_delay_levels(v).map_err(|reason| invalid(key, v, &reason))?;
                }
                "transactionTimeOut" => c.transaction_time_out = millis(key, v)?,
                "transactionCheckInterval" => {
                    c.transaction_check_interval = Duration::from_millis(parse_range(
                        key,
                        v,
                        duration_ms(limits::TRANSACTION_CHECK_INTERVAL_MIN),
                        duration_ms(limits::TRANSACTION_CHECK_INTERVAL_MAX),
                    )?);
                }
                "transactionCheckMax" => {
                    c.transaction_check_max =
                        parse_range(key, v, 1, limits::TRANSACTION_CHECK_MAX_LIMIT)?;
                }
                "rejectTransactionMessage" => c.reject_transaction_message = boolean(key, v)?,
                "metricsExporterType" => {
                    c.metrics_exporter_type =
                        match v.to_ascii_uppercase().as_str() {
                            "DISABLE" | "" => MetricsExporterType::Disable,
                            "PROM" => MetricsExporterType::Prom,
                            _ => return Err(invalid(
                                key,
                                v,
                                "expected PROM or DISABLE (OTLP_GRPC and LOG are not supported)",
                            )),
                        };
                }
                "metricsPromExporterHost" if v.is_empty() => c.metrics_prom_exporter_host = None,
                "metricsPromExporterHost" => c.metrics_prom_exporter_host = Some(parse(key, v)?),
                "metricsPromExporterPort" => c.metrics_prom_exporter_port = parse(key, v)?,
                "timerWheelEnable" => c.timer_wheel_enable = boolean(key, v)?,
                "timerMaxDelaySec" => {
                    c.timer_max_delay_sec =
                        parse_range(key, v, 1, limits::TIMER_MAX_DELAY_SEC_LIMIT)?;
                }
                "timerPrecisionMs" => {
                    let precision = parse_range(
                        key,
                        v,
                        limits::TIMER_PRECISION_MS_MIN,
                        limits::TIMER_ROUND_MS,
                    )?;
                    if limits::TIMER_ROUND_MS % precision != 0 {
                        return Err(invalid(key, v, "must divide one hour (3600000 ms)"));
                    }
                    c.timer_precision_ms = precision;
                }
                "timerRollWindowSlot" => {
                    c.timer_roll_window_slot = parse_range(
                        key,
                        v,
                        limits::TIMER_ROLL_WINDOW_SLOT_MIN,
                        limits::TIMER_ROLL_WINDOW_SLOT_MAX,
                    )?;
                }
                k if IGNORED_KEYS.contains(&k) => {}
                _ => unknown_keys.push(key.clone()),
            }
        }
        if !commit_log_set {
            c.store_path_commit_log = c.store_path_root_dir.join("commitlog");
        }
        let record_max = u64::from(limits::record_size_max_bytes(c.max_message_size));
        if c.mapped_file_size_commit_log < record_max {
            return Err(invalid(
                "mappedFileSizeCommitLog",
                &c.mapped_file_size_commit_log.to_string(),
                &format!(
                    "a segment must hold one whole record of maxMessageSize ({} bytes): at least {record_max}",
                    c.max_message_size
                ),
            ));
        }
        c.check_relations()?;
        Ok(Loaded {
            config: c,
            unknown_keys,
        })
    }

    /// The HA port: `haListenPort`, else `listenPort + 1` (Java's default); 0 (any free port)
    /// when `listenPort` is 0.
    #[must_use]
    pub fn ha_listen_port(&self) -> u16 {
        self.ha_listen_port_explicit
            .unwrap_or(match self.listen_port {
                0 => 0,
                port => port.saturating_add(1),
            })
    }

    /// Checks what keys must agree on. [`BrokerConfig::from_properties`] calls it; call it
    /// again after changing `listenPort`, `brokerRole`, `brokerId` or the HA keys in code.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key that contradicts the others:
    /// - `brokerId`: 0 on a SLAVE (0 is the master's id), or > 0 on a master;
    /// - `haListenPort`: equal to `listenPort`;
    /// - `haMasterAddress`: set on a master (only a slave connects to a master; a master copy
    ///   of a slave's file is refused rather than silently run as a second master).
    pub fn check_relations(&self) -> Result<(), ConfigError> {
        let role = self.broker_role.as_str();
        if self.broker_role == BrokerRole::Slave && self.broker_id == 0 {
            return Err(invalid(
                "brokerId",
                "0",
                "brokerRole=SLAVE needs a brokerId > 0 (0 is the master's id)",
            ));
        }
        if self.broker_role.is_master() && self.broker_id != 0 {
            return Err(invalid(
                "brokerId",
                &self.broker_id.to_string(),
                &format!("brokerRole={role} needs brokerId=0 (ids > 0 are slaves)"),
            ));
        }
        let ha_port = self.ha_listen_port();
        if ha_port != 0 && ha_port == self.listen_port {
            return Err(invalid(
                "haListenPort",
                &ha_port.to_string(),
                "must differ from listenPort",
            ));
        }
        if let Some(address) = self.ha_master_address.as_ref() {
            if self.broker_role.is_master() {
                return Err(invalid(
                    "haMasterAddress",
                    &address.to_string(),
                    &format!("only a SLAVE connects to a master; this broker is {role}"),
                ));
            }
        }
        Ok(())
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn non_empty(key: &str, v: &str) -> Result<String, ConfigError> {
    if v.is_empty() {
        return Err(invalid(key, v, "must not be empty"));
    }
    Ok(v.to_owned())
}

/// A broker or cluster name: non-empty, at most [`limits::BROKER_NAME_LENGTH_MAX`] bytes.
fn name(key: &str, v: &str) -> Result<String, ConfigError> {
    if v.len() > limits::BROKER_NAME_LENGTH_MAX {
        return Err(invalid(
            key,
            v,
            &format!("longer than {} bytes", limits::BROKER_NAME_LENGTH_MAX),
        ));
    }
    non_empty(key, v)
}

fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e: T::Err| invalid(key, v, &e.to_string()))
}

fn parse_range<T>(key: &str, v: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    T::Err: std::fmt::Display,
{
    let n: T = parse(key, v)?;
    if n < min || n > max {
        return Err(invalid(key, v, &format!("must be within {min}..={max}")));
    }
    Ok(n)
}

fn boolean(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, v, "expected true or false")),
    }
}

const fn duration_ms(duration: Duration) -> u64 {
    duration.as_secs() * 1000 + duration.subsec_millis() as u64
}

fn millis(key: &str, v: &str) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(parse_range(key, v, 1, 3_600_000)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# a stock broker.conf
brokerClusterName = DefaultCluster
brokerName = broker-a
brokerId = 0
deleteWhen = 04
fileReservedTime = 48
brokerRole = ASYNC_MASTER
flushDiskType = SYNC_FLUSH
namesrvAddr=10.0.0.1:9876;10.0.0.2:9876
storePathRootDir=/data/rocketmq/store
! another comment
listenPort: 10921
brokerIP1 127.0.0.2
weirdKey = 1
transientStorePoolEnable=false
long\\
Key = continued\\u0041
";

    #[test]
    fn parses_a_stock_broker_conf() {
        let props = parse_properties(SAMPLE).expect("parses");
        assert_eq!(props.get("longKey").map(String::as_str), Some("continuedA"));
        let loaded = BrokerConfig::from_properties(&props).expect("valid");
        let c = loaded.config;
        assert_eq!(c.broker_name, "broker-a");
        assert_eq!(c.flush_disk_type, FlushDiskType::SyncFlush);
        assert_eq!(c.namesrv_addrs, vec!["10.0.0.1:9876", "10.0.0.2:9876"]);
        assert_eq!(c.listen_port, 10921);
        assert_eq!(c.ha_listen_port(), 10922);
        assert_eq!(c.broker_ip1, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            c.store_path_commit_log,
            PathBuf::from("/data/rocketmq/store/commitlog")
        );
        assert_eq!(c.file_reserved_time_hours, 48);
        assert_eq!(c.delete_when, vec![4]);
        assert_eq!(
            loaded.unknown_keys,
            vec!["longKey".to_owned(), "weirdKey".to_owned()]
        );
    }

    #[test]
    fn limits_agree_with_storage_and_name_the_key() {
        let refused = |pairs: &[(&str, String)]| {
            let props: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            match BrokerConfig::from_properties(&props) {
                Err(ConfigError::Invalid { key, .. }) => Some(key),
                Err(other) => panic!("unexpected {other:?}"),
                Ok(_) => None,
            }
        };
        let too_big = (limits::MESSAGE_SIZE_MAX + 1).to_string();
        assert_eq!(
            refused(&[("maxMessageSize", too_big)]).as_deref(),
            Some("maxMessageSize")
        );
        let largest = limits::MESSAGE_SIZE_MAX.to_string();
        assert_eq!(
            refused(&[("maxMessageSize", largest.clone())]),
            None,
            "the largest message fits the default 1 GiB segment and the record limit"
        );
        assert_eq!(
            refused(&[
                ("maxMessageSize", largest),
                ("mappedFileSizeCommitLog", (2_u64 << 20).to_string())
            ])
            .as_deref(),
            Some("mappedFileSizeCommitLog"),
            "a segment smaller than one record is refused with the key named"
        );
        assert_eq!(
            refused(&[("mappedFileSizeCommitLog", (1_u64 << 40).to_string())]).as_deref(),
            Some("mappedFileSizeCommitLog"),
            "storage caps segments at 64 GiB"
        );
        assert_eq!(
            refused(&[("shards", (limits::SHARDS_MAX + 1).to_string())]).as_deref(),
            Some("shards")
        );
        assert_eq!(refused(&[("shards", limits::SHARDS_MAX.to_string())]), None);
    }

    #[test]
    fn trace_topic_keys_parse_and_a_bad_name_is_refused() {
        let load = |pairs: &[(&str, &str)]| {
            let props: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            BrokerConfig::from_properties(&props)
        };
        let defaults = BrokerConfig::default();
        assert!(!defaults.trace_topic_enable);
        assert_eq!(defaults.msg_trace_topic_name, "RMQ_SYS_TRACE_TOPIC");
        let c = load(&[
            ("traceTopicEnable", "true"),
            ("msgTraceTopicName", "MyTrace"),
        ])
        .expect("valid")
        .config;
        assert!(c.trace_topic_enable);
        assert_eq!(c.msg_trace_topic_name, "MyTrace");
        match load(&[("msgTraceTopicName", "bad name")]) {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "msgTraceTopicName"),
            other => panic!("a bad topic name is refused, got {other:?}"),
        }
    }

    #[test]
    fn connection_limits_default_to_the_net_defaults_and_are_checked() {
        let defaults = BrokerConfig::default();
        assert_eq!(
            defaults.frame_completion_timeout,
            rmq_net::conn::config::FRAME_COMPLETION_TIMEOUT_DEFAULT
        );
        assert_eq!(
            defaults.partial_frame_bytes_max,
            rmq_net::conn::config::PARTIAL_FRAME_BYTES_MAX_DEFAULT
        );
        let props: BTreeMap<String, String> = [
            ("frameCompletionTimeoutMillis", "1500"),
            ("partialFrameBytesMax", "33554432"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let loaded = BrokerConfig::from_properties(&props).expect("valid");
        assert!(loaded.unknown_keys.is_empty());
        assert_eq!(
            loaded.config.frame_completion_timeout,
            Duration::from_millis(1500)
        );
        assert_eq!(loaded.config.partial_frame_bytes_max, 32 << 20);
        for (key, value) in [
            ("frameCompletionTimeoutMillis", "0".to_owned()),
            (
                "partialFrameBytesMax",
                (limits::PARTIAL_FRAME_BYTES_MIN - 1).to_string(),
            ),
        ] {
            let props = BTreeMap::from([(key.to_owned(), value)]);
            let err = BrokerConfig::from_properties(&props).expect_err("out of range");
            assert!(matches!(err, ConfigError::Invalid { key: ref k, .. } if k == key));
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut props = BTreeMap::new();
        props.insert("flushDiskType".to_owned(), "SOMETIMES".to_owned());
        let err = BrokerConfig::from_properties(&props).expect_err("invalid");
        assert!(err.to_string().contains("flushDiskType"), "{err}");
        let mut props = BTreeMap::new();
        props.insert("listenPort".to_owned(), "99999".to_owned());
        let err = BrokerConfig::from_properties(&props).expect_err("invalid");
        assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "listenPort"));
        let mut props = BTreeMap::new();
        props.insert("diskMaxUsedSpaceRatio".to_owned(), "abc".to_owned());
        assert!(BrokerConfig::from_properties(&props).is_err());
    }

    #[test]
    fn delay_levels_parse_like_java() {
        let levels = parse_delay_levels(MESSAGE_DELAY_LEVEL_DEFAULT).expect("default parses");
        assert_eq!(levels.len(), 18);
        assert_eq!(levels[0], Duration::from_secs(1));
        assert_eq!(levels[2], Duration::from_secs(10));
        assert_eq!(levels[4], Duration::from_secs(60));
        assert_eq!(levels[17], Duration::from_secs(7200));
        assert_eq!(BrokerConfig::default().message_delay_level, levels);
        assert_eq!(
            parse_delay_levels(" 1s  2m\t3h 1d ").expect("parses"),
            vec![
                Duration::from_secs(1),
                Duration::from_secs(120),
                Duration::from_secs(3 * 3600),
                Duration::from_secs(86_400)
            ]
        );
        assert_eq!(
            parse_delay_levels("0s").expect("zero delay is allowed"),
            vec![Duration::ZERO]
        );
        for bad in [
            "",
            "   ",
            "5",
            "1x",
            "s",
            "-1s",
            "1.5s",
            "31d",
            "99999999999999999999s",
        ] {
            assert!(parse_delay_levels(bad).is_err(), "{bad:?} must be refused");
        }
        let too_many = vec!["1s"; MESSAGE_DELAY_LEVELS_MAX + 1].join(" ");
        assert!(parse_delay_levels(&too_many).is_err());
        let most = vec!["1s"; MESSAGE_DELAY_LEVELS_MAX].join(" ");
        assert_eq!(
            parse_delay_levels(&most).expect("the maximum parses").len(),
            MESSAGE_DELAY_LEVELS_MAX
        );
    }

    #[test]
    fn message_delay_level_key_is_applied_and_checked() {
        let mut props = BTreeMap::new();
        props.insert("messageDelayLevel".to_owned(), "1s 2s 3s".to_owned());
        let loaded = BrokerConfig::from_properties(&props).expect("valid");
        assert!(loaded.unknown_keys.is_empty());
        assert_eq!(
            loaded.config.message_delay_level,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3)
            ]
        );
        props.insert("messageDelayLevel".to_owned(), "1s 2q".to_owned());
        let err = BrokerConfig::from_properties(&props).expect_err("invalid");
        assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "messageDelayLevel"));
    }

    fn load(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let props: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        BrokerConfig::from_properties(&props).map(|loaded| {
            assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
            loaded.config
        })
    }

    /// The key a refused config names (panics if it was accepted).
    fn refused_key(pairs: &[(&str, &str)]) -> String {
        match load(pairs) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{pairs:?} must be refused naming a key, got {other:?}"),
        }
    }

    #[test]
    fn ha_keys_default_as_java() {
        let c = load(&[]).expect("defaults");
        assert_eq!(c.broker_role, BrokerRole::AsyncMaster);
        assert_eq!(c.broker_id, 0);
        assert_eq!(c.ha_listen_port(), 10912, "listenPort + 1");
        assert_eq!(c.ha_master_address, None);
        assert_eq!(c.ha_send_heartbeat_interval, Duration::from_millis(5000));
        assert_eq!(c.ha_max_gap_not_in_sync, 256 * 1024 * 1024);
        assert_eq!(c.ha_max_lag, Duration::from_secs(10), "ours");
        assert_eq!(c.ha_transfer_batch_size, 32 * 1024);
        assert!(!c.slave_read_enable);
        assert_eq!(c.access_message_in_memory_max_ratio, 40);
        assert!(!c.offset_check_in_slave);
        assert_eq!(c.slave_sync_interval, Duration::from_secs(10));
        let c = load(&[("listenPort", "20000")]).expect("valid");
        assert_eq!(c.ha_listen_port(), 20001, "follows listenPort");
        let any = load(&[("listenPort", "0")]).expect("any free port");
        assert_eq!((any.listen_port, any.ha_listen_port()), (0, 0));
        assert_eq!(refused_key(&[("listenPort", "2")]), "listenPort");
    }

    #[test]
    fn a_slave_conf_is_read() {
        let c = load(&[
            ("brokerRole", "SLAVE"),
            ("brokerId", "2"),
            ("haListenPort", "30912"),
            ("haMasterAddress", "10.0.0.1:10912"),
            ("haSendHeartbeatInterval", "1000"),
            ("haMaxGapNotInSync", "1048576"),
            ("haMaxLagMillis", "2500"),
            ("haTransferBatchSize", "65536"),
            ("slaveReadEnable", "true"),
            ("accessMessageInMemoryMaxRatio", "0"),
            ("offsetCheckInSlave", "true"),
            ("slaveSyncIntervalMillis", "250"),
        ])
        .expect("valid");
        assert_eq!(c.access_message_in_memory_max_ratio, 0);
        assert!(c.offset_check_in_slave);
        assert_eq!(c.slave_sync_interval, Duration::from_millis(250));
        assert_eq!(c.broker_role, BrokerRole::Slave);
        assert_eq!(c.broker_id, 2);
        assert_eq!(c.ha_listen_port(), 30912);
        assert_eq!(
            c.ha_master_address,
            Some(HaMasterAddress {
                host: "10.0.0.1".into(),
                port: 10912
            })
        );
        assert_eq!(c.ha_send_heartbeat_interval, Duration::from_secs(1));
        assert_eq!(c.ha_max_gap_not_in_sync, 1 << 20);
        assert_eq!(c.ha_max_lag, Duration::from_millis(2500));
        assert_eq!(c.ha_transfer_batch_size, 1 << 16);
        assert!(c.slave_read_enable);
        let sync = load(&[("brokerRole", "SYNC_MASTER"), ("brokerId", "0")]).expect("valid");
        assert_eq!(sync.broker_role, BrokerRole::SyncMaster);
    }

    #[test]
    fn slave_read_keys_out_of_range_are_refused() {
        for (key, value) in [
            ("accessMessageInMemoryMaxRatio", "101"),
            ("accessMessageInMemoryMaxRatio", "-1"),
            ("slaveSyncIntervalMillis", "99"),
            ("slaveSyncIntervalMillis", "3600001"),
            ("offsetCheckInSlave", "yes"),
        ] {
            assert_eq!(refused_key(&[(key, value)]), key, "{key}={value}");
        }
    }

    #[test]
    fn role_and_id_must_agree() {
        assert_eq!(
            refused_key(&[("brokerRole", "SLAVE")]),
            "brokerId",
            "default id 0"
        );
        assert_eq!(
            refused_key(&[("brokerRole", "SLAVE"), ("brokerId", "0")]),
            "brokerId"
        );
        assert_eq!(
            refused_key(&[("brokerId", "1")]),
            "brokerId",
            "default ASYNC_MASTER"
        );
        assert_eq!(
            refused_key(&[("brokerRole", "SYNC_MASTER"), ("brokerId", "3")]),
            "brokerId"
        );
        let err = load(&[("brokerRole", "ASYNC_MASTER"), ("brokerId", "1")]).expect_err("refused");
        assert!(err.to_string().contains("ASYNC_MASTER"), "{err}");
        assert_eq!(refused_key(&[("brokerId", "-1")]), "brokerId");
        assert_eq!(refused_key(&[("brokerRole", "slave")]), "brokerRole");
    }

    #[test]
    fn ha_listen_port_must_differ_from_listen_port() {
        assert_eq!(
            refused_key(&[("listenPort", "20000"), ("haListenPort", "20000")]),
            "haListenPort"
        );
        assert_eq!(refused_key(&[("haListenPort", "10911")]), "haListenPort");
        assert_eq!(refused_key(&[("haListenPort", "0")]), "haListenPort");
        assert_eq!(refused_key(&[("haListenPort", "65536")]), "haListenPort");
        assert_eq!(
            load(&[("listenPort", "20000"), ("haListenPort", "10911")])
                .expect("valid")
                .ha_listen_port(),
            10911
        );
        // `rmq standalone --broker-port` changes listenPort after the file was read.
        let mut c = load(&[("haListenPort", "20000")]).expect("valid");
        c.listen_port = 20000;
        let err = c.check_relations().expect_err("now equal");
        assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "haListenPort"));
        let mut c = load(&[]).expect("defaults");
        c.listen_port = 0;
        assert_eq!(c.ha_listen_port(), 0, "any free port, as listenPort");
        c.check_relations().expect("both ephemeral");
    }

    #[test]
    fn ha_master_address_is_host_port_on_a_slave_only() {
        let slave = [("brokerRole", "SLAVE"), ("brokerId", "1")];
        for (text, host, port) in [
            ("10.0.0.1:10912", "10.0.0.1", 10912),
            ("[::1]:10912", "::1", 10912),
            ("master-a.example.com:1", "master-a.example.com", 1),
            ("localhost:65535", "localhost", 65535),
        ] {
            let mut pairs = slave.to_vec();
            pairs.push(("haMasterAddress", text));
            let address = load(&pairs).expect(text).ha_master_address.expect("set");
            assert_eq!((address.host.as_str(), address.port), (host, port));
            assert_eq!(address.to_string(), text, "displays as written");
        }
        for bad in [
            "master",
            "master:",
            ":10912",
            "master:0",
            "master:65536",
            "master:port",
            "[::1",
            "[::1:10912",
            "[zz]:1",
            "::1:10912",
            "a b:1",
            "-bad:1",
            "a..b:1",
            "a_b:1",
        ] {
            let mut pairs = slave.to_vec();
            pairs.push(("haMasterAddress", bad));
            assert_eq!(refused_key(&pairs), "haMasterAddress", "{bad:?}");
        }
        let err = load(&[("haMasterAddress", "10.0.0.1:10912")]).expect_err("master");
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "haMasterAddress"),
            "{err}"
        );
        assert_eq!(
            refused_key(&[("brokerRole", "SYNC_MASTER"), ("haMasterAddress", "h:1")]),
            "haMasterAddress"
        );
    }

    #[test]
    fn idle_poll_is_off_by_default_and_range_checked() {
        assert_eq!(load(&[]).expect("defaults").idle_poll, Duration::ZERO);
        assert_eq!(
            load(&[("idlePollMicros", "50")]).expect("50 µs").idle_poll,
            Duration::from_micros(50)
        );
        let max = limits::IDLE_POLL_MAX.as_micros().to_string();
        assert_eq!(
            load(&[("idlePollMicros", max.as_str())])
                .expect("the maximum")
                .idle_poll,
            limits::IDLE_POLL_MAX
        );
        let over = (limits::IDLE_POLL_MAX.as_micros() + 1).to_string();
        for value in [over.as_str(), "-1", "50us"] {
            assert_eq!(refused_key(&[("idlePollMicros", value)]), "idlePollMicros");
        }
    }

    #[test]
    fn ha_numbers_are_range_checked() {
        let batch_max = limits::HA_TRANSFER_BATCH_SIZE_MAX.to_string();
        assert_eq!(
            load(&[("haTransferBatchSize", batch_max.as_str())])
                .expect("the largest batch fits one frame")
                .ha_transfer_batch_size,
            limits::HA_TRANSFER_BATCH_SIZE_MAX
        );
        let over = (limits::HA_TRANSFER_BATCH_SIZE_MAX + 1).to_string();
        for (key, value) in [
            ("haTransferBatchSize", over.as_str()),
            ("haTransferBatchSize", "0"),
            ("haMaxGapNotInSync", "0"),
            ("haMaxGapNotInSync", "9223372036854775808"),
            ("haMaxGapNotInSync", "-1"),
            ("haSendHeartbeatInterval", "0"),
            ("haSendHeartbeatInterval", "5s"),
            ("haMaxLagMillis", "0"),
            ("slaveReadEnable", "yes"),
        ] {
            assert_eq!(refused_key(&[(key, value)]), key, "{key}={value}");
        }
        let long = "b".repeat(limits::BROKER_NAME_LENGTH_MAX + 1);
        assert_eq!(refused_key(&[("brokerName", long.as_str())]), "brokerName");
        assert_eq!(
            refused_key(&[("brokerClusterName", long.as_str())]),
            "brokerClusterName"
        );
        let longest = "b".repeat(limits::BROKER_NAME_LENGTH_MAX);
        assert_eq!(
            load(&[("brokerName", longest.as_str())])
                .expect("valid")
                .broker_name,
            longest
        );
    }

    #[test]
    fn register_period_is_clamped_like_java() {
        let mut props = BTreeMap::new();
        props.insert("registerNameServerPeriod".to_owned(), "1000".to_owned());
        let c = BrokerConfig::from_properties(&props).expect("valid").config;
        assert_eq!(c.register_name_server_period, Duration::from_secs(10));
    }
}
