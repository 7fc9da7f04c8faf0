//! One Prometheus scrape: every shard's part gathered by a map-reduce ([`map_shards`]: its
//! collectors, CommitLog marks, flush latency, busy time, mesh depth, connections, replication
//! lag, consumer lag of the queues it owns), merged on the serving shard with the node-wide
//! gauges (disk, RSS), and written as Prometheus text format 0.0.4. docs/metrics.md lists the
//! series.
//!
//! Must never: hold a `RefCell` borrow across a store read, read another shard's state but
//! through the mesh, or export more topic or consumer series than the caps in
//! [`crate::limits`] (the rest is summed under [`OVERFLOW_LABEL`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;

use futures_util::StreamExt as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_storage::commitlog::sync_latency::SYNC_LATENCY_BOUNDS_MICROS;
use rmq_storage::file::Disk;

use crate::runtime::clock::now_ms;
use crate::runtime::placement::shard_for;

use super::super::ha::watch::{shard_ha, ShardHa};
use super::super::shard::Shard;
use super::super::Failure;
use super::map_shards;
use super::metrics::{
    HistogramSnapshot, MetricsSnapshot, Traffic, METRICS_CONSUMER_SERIES_MAX,
    METRICS_LAG_READS_IN_FLIGHT, METRICS_LAG_READS_MAX, OVERFLOW_LABEL,
};

/// The content type of the text format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A consumer group's lag on one topic, over the queues one shard owns (or all, merged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Messages stored but not yet committed by the group.
    pub messages: u64,
    /// Age in ms of the oldest uncommitted message (0 without lag).
    pub latency_ms: u64,
}

/// Replication lag of one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationLag {
    /// Bytes the peer is behind (master: the slave's unacknowledged bytes; slave: the
    /// master's end minus its own).
    pub bytes: u64,
    /// Age of the oldest unacknowledged record (master with a slave only).
    pub millis: Option<u64>,
    /// A slave is connected (master) / the master is connected (slave).
    pub connected: bool,
}

/// What one shard contributes to a scrape.
#[derive(Debug, Clone, Default)]
pub struct ShardScrape {
    /// Its collectors.
    pub metrics: MetricsSnapshot,
    /// CommitLog bytes between its min offset and its appended end.
    pub commitlog_bytes: u64,
    /// Appended CommitLog bytes not yet fdatasynced.
    pub flush_pending_bytes: u64,
    /// Durations of its fdatasync rounds (microseconds).
    pub flush_latency: Option<HistogramSnapshot>,
    /// CPU time of the shard's thread, in seconds.
    pub busy_seconds: f64,
    /// Calls waiting in its mesh channel.
    pub mesh_queued: usize,
    /// Calls from other shards running on it.
    pub mesh_in_flight: usize,
    /// Client requests it is handling.
    pub requests_in_flight: usize,
    /// Its client connections by (language, version).
    pub connections: BTreeMap<(String, i32), u64>,
    /// Replication lag (none on a broker without replication state).
    pub replication: Option<ReplicationLag>,
    /// Consumer lag per (topic, group) over the queues it owns.
    pub lag: HashMap<(String, String), Lag>,
}

/// CPU time of the calling thread (the shard's event loop), in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec this function owns; no other memory is passed.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if status != 0 {
        return 0.0;
    }
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

fn replication(ha: &ShardHa) -> Option<ReplicationLag> {
    match ha {
        ShardHa::None => None,
        ShardHa::Master {
            slave: Some(slave), ..
        } => Some(ReplicationLag {
            bytes: slave.lag.bytes,
            millis: slave.lag.millis,
            connected: true,
        }),
        ShardHa::Master {
            slave: None,
            unacked_bytes,
            ..
        } => Some(ReplicationLag {
            bytes: *unacked_bytes,
            millis: None,
            connected: false,
        }),
        ShardHa::Slave {
            follow,
            appended_end,
            ..
        } => Some(ReplicationLag {
            bytes: follow.master_end.saturating_sub(*appended_end),
            millis: None,
            connected: follow.connected,
        }),
    }
}

/// Consumer lag of the queues `shard` owns, per (topic, group), at most
/// [`METRICS_CONSUMER_SERIES_MAX`] pairs (the rest under [`OVERFLOW_LABEL`]). The latency
/// costs one stored-message read per lagging queue, at most [`METRICS_LAG_READS_MAX`] per
/// scrape (queues past it count in the messages, not in the latency).
async fn consumer_lag(shard: &Shard, now_ms: i64) -> HashMap<(String, String), Lag> {
    let committed: Vec<(String, String, i32, i64)> = shard
        .offsets
        .borrow()
        .iter()
        .filter(|(topic, _, queue, _)| shard_for(topic, *queue, shard.shard_count()) == shard.id)
        .map(|(topic, group, queue, offset)| (topic.to_owned(), group.to_owned(), queue, offset))
        .collect();
    // The latency reads, at most METRICS_LAG_READS_MAX, run METRICS_LAG_READS_IN_FLIGHT at a
    // time (each is an O_DIRECT read on a cold queue).
    let lagging: Vec<(usize, u64)> = committed
        .iter()
        .enumerate()
        .filter_map(|(index, (topic, _, queue, offset))| {
            let offset = u64::try_from(*offset).unwrap_or(0);
            (shard.store.max_offset(topic, *queue) > offset).then_some((index, offset))
        })
        .take(METRICS_LAG_READS_MAX)
        .collect();
    let mut latency_ms: HashMap<usize, u64> = futures_util::stream::iter(lagging)
        .map(|(index, offset)| {
            let (topic, _, queue, _) = &committed[index];
            async move {
                let stored = super::offsets::store_time_at(shard, topic, *queue, offset).await;
                (
                    index,
                    stored.map_or(0, |stored| u64::try_from(now_ms - stored).unwrap_or(0)),
                )
            }
        })
        .buffer_unordered(METRICS_LAG_READS_IN_FLIGHT)
        .collect()
        .await;
    let mut lags: HashMap<(String, String), Lag> = HashMap::new();
    for (index, (topic, group, queue, offset)) in committed.into_iter().enumerate() {
        let committed = u64::try_from(offset).unwrap_or(0);
        let messages = shard
            .store
            .max_offset(&topic, queue)
            .saturating_sub(committed);
        let key = (topic, group);
        let key = if lags.len() < METRICS_CONSUMER_SERIES_MAX || lags.contains_key(&key) {
            key
        } else {
            (OVERFLOW_LABEL.to_owned(), OVERFLOW_LABEL.to_owned())
        };
        let lag = lags.entry(key).or_default();
        lag.messages += messages;
        lag.latency_ms = lag.latency_ms.max(latency_ms.remove(&index).unwrap_or(0));
    }
    lags
}

/// This shard's part of a scrape (the map step).
pub async fn shard_scrape(shard: Rc<Shard>) -> ShardScrape {
    let log = shard.store.commitlog();
    let appended = log.appended_offset();
    let mut connections = BTreeMap::new();
    for conn in shard.conns.borrow().values() {
        let language = conn.language().map_or("UNKNOWN", |l| l.name()).to_owned();
        *connections
            .entry((language, conn.version().unwrap_or(-1)))
            .or_insert(0) += 1;
    }
    let ha = shard_ha(&shard).await;
    ShardScrape {
        metrics: shard.stats.metrics.snapshot(),
        commitlog_bytes: appended.saturating_sub(log.min_offset()),
        flush_pending_bytes: appended.saturating_sub(log.durable_offset()),
        flush_latency: Some({
            let synced = log.sync_latency();
            HistogramSnapshot {
                bounds: SYNC_LATENCY_BOUNDS_MICROS,
                counts: synced.counts,
                sum: synced.sum_micros,
            }
        }),
        busy_seconds: thread_cpu_seconds(),
        mesh_queued: shard.mesh.queued(shard.id),
        mesh_in_flight: shard
            .mesh
            .gauge(shard.id)
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed),
        requests_in_flight: shard.requests_in_flight.get(),
        connections,
        replication: replication(&ha),
        lag: consumer_lag(&shard, now_ms()).await,
    }
}

/// Node-wide gauges read on the serving shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeGauges {
    /// Filesystem of the store root: total and used bytes (`None` when statvfs failed).
    pub disk: Option<(u64, u64)>,
    /// Resident set size of the process, in bytes (`None` without /proc).
    pub rss_bytes: Option<u64>,
}

/// Resident set size from `/proc/self/statm` (pages × page size).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the running system; no memory is passed.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Runs a whole scrape from `shard` and returns the exposition text.
///
/// # Errors
/// SYSTEM_BUSY when a shard cannot be reached.
pub async fn scrape(shard: &Rc<Shard>) -> Result<String, Failure> {
    let parts = map_shards(shard, shard_scrape).await?;
    let disk = Disk::real()
        .disk_usage(&shard.config.store_path_root_dir)
        .await
        .ok()
        .map(|usage| (usage.total_bytes, usage.used_bytes));
    let node = NodeGauges {
        disk,
        rss_bytes: rss_bytes(),
    };
    let identity = Identity {
        cluster: &shard.config.broker_cluster_name,
        node_id: &shard.config.broker_name,
    };
    Ok(render(&identity, &parts, &node))
}

/// The labels every series carries (RocketMQ 5's common attributes).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// `brokerClusterName` (label `cluster`).
    pub cluster: &'a str,
    /// `brokerName` (label `node_id`).
    pub node_id: &'a str,
}

/// Writes `value` as a label value (backslash, quote and newline escaped).
fn push_label_value(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// A text-format writer with the common labels.
struct Writer {
    out: String,
    common: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        self.out.push('{');
        self.out.push_str(&self.common);
        for (key, label) in labels {
            self.out.push(',');
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_label_value(&mut self.out, label);
            self.out.push('"');
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    /// Buckets (cumulative), sum and count of a histogram; `scale` divides bounds and sum
    /// (1000: microseconds exported as milliseconds).
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &HistogramSnapshot,
        scale: f64,
    ) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (index, count) in histogram.counts.iter().enumerate() {
            cumulative += count;
            let le = histogram.bounds.get(index).map_or_else(
                || "+Inf".to_owned(),
                |bound| (*bound as f64 / scale).to_string(),
            );
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, histogram.sum as f64 / scale);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// The Java-style name of a code (`RemotingMetricsConstant`: the constant's name in lower
/// case, e.g. `send_message_v2`, `pull_not_found`); unknown codes are their number.
fn code_name(debug: &str) -> String {
    if debug.starts_with("Unknown(") {
        return debug
            .trim_start_matches("Unknown(")
            .trim_end_matches(')')
            .to_owned();
    }
    let mut name = String::with_capacity(debug.len() + 4);
    for (index, character) in debug.chars().enumerate() {
        if character.is_ascii_uppercase() {
            if index > 0 {
                name.push('_');
            }
            name.push(character.to_ascii_lowercase());
        } else {
            name.push(character);
        }
    }
    name
}

/// Sorted (key, value) pairs of a map, so the text is stable from scrape to scrape.
fn sorted<K: Ord + Clone, V: Copy>(map: &HashMap<K, V>) -> Vec<(K, V)> {
    let mut pairs: Vec<(K, V)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// The exposition text of one scrape (the reduce step and the encoding).
///
/// # Panics
/// If `parts` is empty (a broker has at least one shard).
#[must_use]
pub fn render(identity: &Identity<'_>, parts: &[ShardScrape], node: &NodeGauges) -> String {
    assert!(!parts.is_empty(), "a broker has at least one shard");
    let mut merged = MetricsSnapshot::default();
    let mut lag: HashMap<(String, String), Lag> = HashMap::new();
    let mut connections: BTreeMap<(String, i32), u64> = BTreeMap::new();
    for part in parts {
        merged.merge(part.metrics.clone());
        for (key, value) in &part.lag {
            let len = lag.len();
            let key = if len < METRICS_CONSUMER_SERIES_MAX || lag.contains_key(key) {
                key.clone()
            } else {
                (OVERFLOW_LABEL.to_owned(), OVERFLOW_LABEL.to_owned())
            };
            let entry = lag.entry(key).or_default();
            entry.messages += value.messages;
            entry.latency_ms = entry.latency_ms.max(value.latency_ms);
        }
        for (key, count) in &part.connections {
            *connections.entry(key.clone()).or_insert(0) += count;
        }
    }
    let mut common = String::new();
    common.push_str("cluster=\"");
    push_label_value(&mut common, identity.cluster);
    common.push_str("\",node_type=\"broker\",node_id=\"");
    push_label_value(&mut common, identity.node_id);
    common.push('"');
    let per_series = 80 + common.len();
    let series = merged.topics_in.len() * 2 + merged.consumed.len() * 2 + lag.len() * 2 + 256;
    let mut w = Writer {
        out: String::with_capacity(series * per_series),
        common,
    };
    write_traffic(&mut w, &merged);
    write_rpc(&mut w, &merged);
    let mut flush = HistogramSnapshot::empty(SYNC_LATENCY_BOUNDS_MICROS);
    for latency in parts.iter().filter_map(|part| part.flush_latency.as_ref()) {
        flush.merge(latency);
    }
    w.family(
        "rmq_flush_latency",
        "histogram",
        "Duration in milliseconds of the CommitLog fdatasync rounds, all shards.",
    );
    w.histogram("rmq_flush_latency", &[], &flush, 1000.0);
    write_lag(&mut w, &lag);
    write_shards(&mut w, parts);
    w.family(
        "rmq_connections",
        "gauge",
        "Client connections that sent a request, by language and MQVersion ordinal.",
    );
    for ((language, version), count) in &connections {
        let version = version.to_string();
        w.sample(
            "rmq_connections",
            &[("language", language), ("version", &version)],
            count,
        );
    }
    if let Some((total, used)) = node.disk {
        w.family(
            "rmq_commitlog_disk_total_bytes",
            "gauge",
            "Size of the filesystem holding storePathRootDir.",
        );
        w.sample("rmq_commitlog_disk_total_bytes", &[], total);
        w.family(
            "rmq_commitlog_disk_used_bytes",
            "gauge",
            "Bytes in use on the filesystem holding storePathRootDir.",
        );
        w.sample("rmq_commitlog_disk_used_bytes", &[], used);
        let free = if total == 0 {
            0.0
        } else {
            total.saturating_sub(used) as f64 / total as f64
        };
        w.family(
            "rmq_commitlog_disk_free_ratio",
            "gauge",
            "Free fraction (0..1) of the filesystem holding storePathRootDir.",
        );
        w.sample("rmq_commitlog_disk_free_ratio", &[], free);
    }
    if let Some(rss) = node.rss_bytes {
        w.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        w.sample("process_resident_memory_bytes", &[], rss);
    }
    w.out
}

fn write_traffic(w: &mut Writer, merged: &MetricsSnapshot) {
    let topics = sorted(&merged.topics_in);
    let consumed = sorted(&merged.consumed);
    let overflow_in = (merged.topics_in_overflow.messages > 0)
        .then(|| (OVERFLOW_LABEL.to_owned(), merged.topics_in_overflow));
    let overflow_out = (merged.consumed_overflow.messages > 0).then(|| {
        (
            (OVERFLOW_LABEL.to_owned(), OVERFLOW_LABEL.to_owned()),
            merged.consumed_overflow,
        )
    });
    let topics: Vec<(String, Traffic)> = topics.into_iter().chain(overflow_in).collect();
    let consumed: Vec<((String, String), Traffic)> =
        consumed.into_iter().chain(overflow_out).collect();
    for (name, help, bytes) in [
        (
            "rocketmq_messages_in_total",
            "Messages stored by sends, per topic.",
            false,
        ),
        (
            "rocketmq_throughput_in_total",
            "Message body bytes stored by sends, per topic.",
            true,
        ),
    ] {
        w.family(name, "counter", help);
        for (topic, traffic) in &topics {
            let value = if bytes {
                traffic.bytes
            } else {
                traffic.messages
            };
            w.sample(name, &[("topic", topic)], value);
        }
    }
    for (name, help, bytes) in [
        (
            "rocketmq_messages_out_total",
            "Messages returned by pulls, per topic and consumer group.",
            false,
        ),
        (
            "rocketmq_throughput_out_total",
            "Stored record bytes returned by pulls, per topic and consumer group.",
            true,
        ),
    ] {
        w.family(name, "counter", help);
        for ((topic, group), traffic) in &consumed {
            let value = if bytes {
                traffic.bytes
            } else {
                traffic.messages
            };
            w.sample(name, &[("topic", topic), ("consumer_group", group)], value);
        }
    }
    w.family(
        "rocketmq_message_size",
        "histogram",
        "Body size in bytes of each stored message.",
    );
    w.histogram("rocketmq_message_size", &[], &merged.message_size, 1.0);
}

fn write_rpc(w: &mut Writer, merged: &MetricsSnapshot) {
    w.family(
        "rocketmq_rpc_latency",
        "histogram",
        "Send and pull latency in milliseconds on the accepting shard, per request and response code.",
    );
    let mut keys: Vec<&(i32, i32)> = merged.rpc.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let request = code_name(&format!("{:?}", RequestCode::from_value(key.0)));
        let response = code_name(&format!("{:?}", ResponseCode::from_value(key.1)));
        let labels = [
            ("protocol_type", "remoting"),
            ("request_code", request.as_str()),
            ("response_code", response.as_str()),
        ];
        w.histogram("rocketmq_rpc_latency", &labels, &merged.rpc[key], 1000.0);
    }
    w.family(
        "rmq_rpc_latency_dropped_total",
        "counter",
        "Sends and pulls not timed because every latency series slot was taken.",
    );
    w.sample("rmq_rpc_latency_dropped_total", &[], merged.rpc_overflow);
}

fn write_lag(w: &mut Writer, lag: &HashMap<(String, String), Lag>) {
    let lag = sorted(lag);
    w.family(
        "rocketmq_consumer_lag_messages",
        "gauge",
        "Messages stored but not committed by the consumer group, per topic.",
    );
    for ((topic, group), value) in &lag {
        w.sample(
            "rocketmq_consumer_lag_messages",
            &[("topic", topic), ("consumer_group", group)],
            value.messages,
        );
    }
    w.family(
        "rocketmq_consumer_lag_latency",
        "gauge",
        "Age in milliseconds of the oldest message the consumer group has not committed.",
    );
    for ((topic, group), value) in &lag {
        w.sample(
            "rocketmq_consumer_lag_latency",
            &[("topic", topic), ("consumer_group", group)],
            value.latency_ms,
        );
    }
}

fn write_shards(w: &mut Writer, parts: &[ShardScrape]) {
    let shard_names: Vec<String> = (0..parts.len()).map(|index| index.to_string()).collect();
    type Gauge = fn(&ShardScrape) -> Option<f64>;
    let gauges: [(&str, &str, &str, Gauge); 8] = [
        (
            "rmq_commitlog_size_bytes",
            "gauge",
            "CommitLog bytes the shard holds (appended end minus min offset).",
            |p| Some(p.commitlog_bytes as f64),
        ),
        (
            "rmq_flush_pending_bytes",
            "gauge",
            "Appended CommitLog bytes not yet fdatasynced.",
            |p| Some(p.flush_pending_bytes as f64),
        ),
        (
            "rmq_shard_busy_seconds_total",
            "counter",
            "CPU time of the shard's event-loop thread; its rate is the busy ratio (0..1).",
            |p| Some(p.busy_seconds),
        ),
        (
            "rmq_mesh_queue_depth",
            "gauge",
            "Cross-shard calls waiting in the shard's mesh channel.",
            |p| Some(p.mesh_queued as f64),
        ),
        (
            "rmq_mesh_calls_in_flight",
            "gauge",
            "Calls from other shards running on the shard.",
            |p| Some(p.mesh_in_flight as f64),
        ),
        (
            "rmq_requests_in_flight",
            "gauge",
            "Client requests the shard is handling.",
            |p| Some(p.requests_in_flight as f64),
        ),
        (
            "rmq_replication_lag_bytes",
            "gauge",
            "Master: bytes its slave has not acknowledged; slave: bytes behind its master.",
            |p| p.replication.map(|r| r.bytes as f64),
        ),
        (
            "rmq_replication_lag_seconds",
            "gauge",
            "Master with a slave: age in seconds of the oldest record the slave has not acknowledged.",
            |p| p.replication.and_then(|r| r.millis).map(|m| m as f64 / 1000.0),
        ),
    ];
    for (name, kind, help, value) in gauges {
        if parts.iter().all(|part| value(part).is_none()) {
            continue;
        }
        w.family(name, kind, help);
        for (part, shard) in parts.iter().zip(&shard_names) {
            if let Some(value) = value(part) {
                w.sample(name, &[("shard", shard)], value);
            }
        }
    }
    if parts.iter().any(|part| part.replication.is_some()) {
        w.family(
            "rmq_replication_connected",
            "gauge",
            "1 when the shard's replication peer is connected.",
        );
        for (part, shard) in parts.iter().zip(&shard_names) {
            if let Some(replication) = part.replication {
                w.sample(
                    "rmq_replication_connected",
                    &[("shard", shard)],
                    u8::from(replication.connected),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::stats::metrics::ShardMetrics;
    use std::time::Duration;

    #[test]
    fn code_names_follow_remoting_metrics_constant() {
        assert_eq!(
            code_name(&format!("{:?}", RequestCode::SendMessageV2)),
            "send_message_v2"
        );
        assert_eq!(
            code_name(&format!("{:?}", ResponseCode::PullNotFound)),
            "pull_not_found"
        );
        assert_eq!(
            code_name(&format!("{:?}", ResponseCode::from_value(777))),
            "777"
        );
    }

    #[test]
    fn two_shards_render_summed_series_with_escaped_labels() {
        let (a, b) = (ShardMetrics::new(), ShardMetrics::new());
        a.set_enabled(true);
        b.set_enabled(true);
        a.record_in("T", [10, 20]);
        b.record_in("T", [30]);
        b.record_rpc(
            RequestCode::SendMessageV2,
            ResponseCode::Success,
            Duration::from_micros(1500),
        );
        let part = |metrics: &ShardMetrics, lag: u64| ShardScrape {
            metrics: metrics.snapshot(),
            lag: HashMap::from([(
                ("T".to_owned(), "G".to_owned()),
                Lag {
                    messages: lag,
                    latency_ms: lag * 10,
                },
            )]),
            connections: BTreeMap::from([(("JAVA".to_owned(), 479), 2)]),
            ..ShardScrape::default()
        };
        let parts = [part(&a, 1), part(&b, 4)];
        let identity = Identity {
            cluster: "C\"1",
            node_id: "b",
        };
        let node = NodeGauges {
            disk: Some((100, 25)),
            rss_bytes: Some(4096),
        };
        let text = render(&identity, &parts, &node);
        let common = "cluster=\"C\\\"1\",node_type=\"broker\",node_id=\"b\"";
        for line in [
            format!("rocketmq_messages_in_total{{{common},topic=\"T\"}} 3"),
            format!("rocketmq_throughput_in_total{{{common},topic=\"T\"}} 60"),
            format!("rocketmq_message_size_bucket{{{common},le=\"1024\"}} 3"),
            format!(
                "rocketmq_consumer_lag_messages{{{common},topic=\"T\",consumer_group=\"G\"}} 5"
            ),
            format!(
                "rocketmq_consumer_lag_latency{{{common},topic=\"T\",consumer_group=\"G\"}} 40"
            ),
            format!(
                "rocketmq_rpc_latency_bucket{{{common},protocol_type=\"remoting\",\
                 request_code=\"send_message_v2\",response_code=\"success\",le=\"1\"}} 0"
            ),
            format!(
                "rocketmq_rpc_latency_bucket{{{common},protocol_type=\"remoting\",\
                 request_code=\"send_message_v2\",response_code=\"success\",le=\"2.5\"}} 1"
            ),
            format!(
                "rocketmq_rpc_latency_sum{{{common},protocol_type=\"remoting\",\
                 request_code=\"send_message_v2\",response_code=\"success\"}} 1.5"
            ),
            format!("rmq_connections{{{common},language=\"JAVA\",version=\"479\"}} 4"),
            format!("rmq_commitlog_disk_free_ratio{{{common}}} 0.75"),
            format!("rmq_commitlog_size_bytes{{{common},shard=\"1\"}} 0"),
            format!("process_resident_memory_bytes{{{common}}} 4096"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(!text.contains("rmq_replication_lag_bytes"), "no HA state");
    }
}
