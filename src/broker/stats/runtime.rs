//! GET_BROKER_RUNTIME_INFO (28) and GET_BROKER_CONFIG (26): Java's runtime keys, summed over
//! the shards by a map-reduce (with each shard's replication keys, [`crate::broker::ha::watch`]),
//! and the effective configuration as properties text.
//! Must never: report one shard's CommitLog offsets as the broker's (they are shard-local).

use std::fmt::Write as _;
use std::rc::Rc;

use rmq_net::codec::body::table::KvTable;
use rmq_net::codec::codes::SERVER_VERSION;
use rmq_storage::file::Disk;

use crate::config::{BrokerConfig, BrokerRole, FlushDiskType};
use crate::runtime::clock::now_ms;

use super::super::ha::watch::{insert_runtime_keys, shard_ha, ShardHa};
use super::super::shard::Shard;
use super::super::Failure;
use super::counters::TrafficSnapshot;
use super::map_shards;

/// `MQVersion` name of [`SERVER_VERSION`] (the `brokerVersionDesc` runtime key).
pub const SERVER_VERSION_DESC: &str = "V5_3_3";

/// What one shard contributes to GET_BROKER_RUNTIME_INFO.
#[derive(Debug, Clone, Default)]
struct ShardRuntime {
    boot_timestamp_ms: i64,
    put: TrafficSnapshot,
    got: TrafficSnapshot,
    commitlog_min_offset: u64,
    commitlog_max_offset: u64,
    commitlog_durable_offset: u64,
    earliest_store_time_ms: Option<i64>,
    ha: ShardHa,
}

async fn shard_runtime(shard: Rc<Shard>) -> ShardRuntime {
    let now = now_ms();
    let log = shard.store.commitlog();
    let (min, max) = (log.min_offset(), log.appended_offset());
    let earliest = if max > min {
        shard
            .store
            .read_by_phys_offset(min)
            .await
            .ok()
            .map(|record| record.store_timestamp_ms)
    } else {
        None
    };
    let ha = shard_ha(&shard).await;
    ShardRuntime {
        boot_timestamp_ms: shard.stats.boot_timestamp_ms,
        put: shard.stats.put.snapshot(now),
        got: shard.stats.got.snapshot(now),
        commitlog_min_offset: min,
        commitlog_max_offset: max,
        commitlog_durable_offset: log.durable_offset(),
        earliest_store_time_ms: earliest,
        ha,
    }
}

/// GET_BROKER_RUNTIME_INFO: Java's keys, summed over shards (see [`runtime_table`]), plus the
/// disk usage of the store directory.
pub(super) async fn runtime_info(shard: &Rc<Shard>) -> Result<KvTable, Failure> {
    let parts = map_shards(shard, shard_runtime).await?;
    let mut table = runtime_table(&parts, shard.config.broker_role, now_ms());
    match Disk::real()
        .disk_usage(&shard.config.store_path_root_dir)
        .await
    {
        Ok(usage) => {
            let ratio = if usage.total_bytes == 0 {
                1.0
            } else {
                usage.used_bytes as f64 / usage.total_bytes as f64
            };
            let capacity = format!(
                "Total : {}, Free : {}.",
                human_bytes(usage.total_bytes),
                human_bytes(usage.total_bytes.saturating_sub(usage.used_bytes))
            );
            // Every shard's CommitLog and consume queues live under the store root, so both
            // ratios are that filesystem's.
            for (key, value) in [
                ("commitLogDiskRatio", ratio.to_string()),
                ("consumeQueueDiskRatio", ratio.to_string()),
                ("commitLogDirCapacity", capacity),
            ] {
                table.table.insert(key.to_owned(), value);
            }
        }
        Err(err) => tracing::warn!(%err, "statvfs of the store directory failed"),
    }
    Ok(table)
}

/// Reduce step: sums of counters and CommitLog offsets, the earliest boot and message time
/// (replication keys are reduced by [`insert_runtime_keys`]).
fn reduce(parts: &[ShardRuntime]) -> ShardRuntime {
    let mut total = ShardRuntime {
        boot_timestamp_ms: i64::MAX,
        ..ShardRuntime::default()
    };
    for part in parts {
        total.boot_timestamp_ms = total.boot_timestamp_ms.min(part.boot_timestamp_ms);
        total.put.merge(&part.put);
        total.got.merge(&part.got);
        total.commitlog_min_offset += part.commitlog_min_offset;
        total.commitlog_max_offset += part.commitlog_max_offset;
        total.commitlog_durable_offset += part.commitlog_durable_offset;
        total.earliest_store_time_ms =
            match (total.earliest_store_time_ms, part.earliest_store_time_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
    }
    total
}

/// The runtime keys from every shard's part. CommitLog offsets are shard-local, so
/// `commitLogMinOffset`/`commitLogMaxOffset` are sums over shards (their difference is the
/// bytes the broker holds); each shard's own pair is under `shard<N>.commitLog{Min,Max}Offset`.
/// Message counts are UTC-day based; TPS windows are cut to the uptime.
fn runtime_table(parts: &[ShardRuntime], role: BrokerRole, now_ms: i64) -> KvTable {
    assert!(!parts.is_empty(), "a broker has at least one shard");
    let total = reduce(parts);
    let boot = total.boot_timestamp_ms;
    let uptime_seconds = (now_ms - boot).div_euclid(1000);
    let unflushed = total
        .commitlog_max_offset
        .saturating_sub(total.commitlog_durable_offset);
    let mut table = KvTable::default();
    for (index, part) in parts.iter().enumerate() {
        for (key, value) in [
            ("commitLogMinOffset", part.commitlog_min_offset),
            ("commitLogMaxOffset", part.commitlog_max_offset),
        ] {
            table
                .table
                .insert(format!("shard{index}.{key}"), value.to_string());
        }
    }
    let entries = [
        ("brokerVersionDesc", SERVER_VERSION_DESC.to_owned()),
        ("brokerVersion", SERVER_VERSION.to_string()),
        ("bootTimestamp", boot.to_string()),
        ("runtime", format_runtime(now_ms - boot)),
        ("brokerActive", (role != BrokerRole::Slave).to_string()),
        ("brokerRole", role.as_str().to_owned()),
        ("shardCount", parts.len().to_string()),
        ("msgPutTotalTodayNow", total.put.total.to_string()),
        (
            "msgPutTotalTodayMorning",
            total.put.today_morning().to_string(),
        ),
        (
            "msgPutTotalYesterdayMorning",
            total.put.yesterday_morning().to_string(),
        ),
        ("msgGetTotalTodayNow", total.got.total.to_string()),
        (
            "msgGetTotalTodayMorning",
            total.got.today_morning().to_string(),
        ),
        (
            "msgGetTotalYesterdayMorning",
            total.got.yesterday_morning().to_string(),
        ),
        ("putMessageTimesTotal", total.put.total.to_string()),
        ("putTps", total.put.tps_text(uptime_seconds)),
        ("getTransferedTps", total.got.tps_text(uptime_seconds)),
        ("commitLogMinOffset", total.commitlog_min_offset.to_string()),
        ("commitLogMaxOffset", total.commitlog_max_offset.to_string()),
        ("remainHowManyDataToFlush", human_bytes(unflushed)),
        (
            "earliestMessageTimeStamp",
            total.earliest_store_time_ms.unwrap_or(-1).to_string(),
        ),
    ];
    for (key, value) in entries {
        table.table.insert(key.to_owned(), value);
    }
    let ha: Vec<ShardHa> = parts.iter().map(|part| part.ha.clone()).collect();
    insert_runtime_keys(&ha, now_ms, &mut table.table);
    table
}

/// Java's `[ D days, H hours, M minutes, S seconds ]`.
#[must_use]
pub fn format_runtime(elapsed_ms: i64) -> String {
    let elapsed = elapsed_ms.max(0) / 1000;
    format!(
        "[ {} days, {} hours, {} minutes, {} seconds ]",
        elapsed / 86_400,
        elapsed % 86_400 / 3600,
        elapsed % 3600 / 60,
        elapsed % 60
    )
}

/// Java `MixAll.humanReadableByteCount(bytes, false)`: `"512 B"`, `"1.5 KiB"`, ...
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    value /= 1024.0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}B", UNITS[unit])
}

/// GET_BROKER_CONFIG (26) body: the effective configuration as `key=value` lines (Java
/// `MixAll.properties2String`), keys sorted, RocketMQ's key names.
#[must_use]
pub fn broker_config_text(config: &BrokerConfig, shards: usize) -> String {
    let millis = |d: std::time::Duration| d.as_millis().to_string();
    let mut entries: Vec<(&str, String)> = vec![
        ("brokerClusterName", config.broker_cluster_name.clone()),
        ("brokerName", config.broker_name.clone()),
        ("brokerId", config.broker_id.to_string()),
        ("namesrvAddr", config.namesrv_addrs.join(";")),
        ("listenPort", config.listen_port.to_string()),
        ("brokerIP1", config.broker_ip1.to_string()),
        ("brokerIP2", config.broker_ip2.to_string()),
        ("haListenPort", config.ha_listen_port().to_string()),
        (
            "storePathRootDir",
            config.store_path_root_dir.display().to_string(),
        ),
        (
            "storePathCommitLog",
            config.store_path_commit_log.display().to_string(),
        ),
        (
            "mappedFileSizeCommitLog",
            config.mapped_file_size_commit_log.to_string(),
        ),
        (
            "flushDiskType",
            match config.flush_disk_type {
                FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
                FlushDiskType::SyncFlush => "SYNC_FLUSH",
            }
            .to_owned(),
        ),
        ("syncFlushTimeout", millis(config.sync_flush_timeout)),
        (
            "flushIntervalCommitLog",
            millis(config.flush_interval_commit_log),
        ),
        (
            "commitIntervalCommitLog",
            millis(config.commit_interval_commit_log),
        ),
        ("brokerRole", config.broker_role.as_str().to_owned()),
        (
            "autoCreateTopicEnable",
            config.auto_create_topic_enable.to_string(),
        ),
        (
            "autoCreateSubscriptionGroup",
            config.auto_create_subscription_group.to_string(),
        ),
        ("traceTopicEnable", config.trace_topic_enable.to_string()),
        ("msgTraceTopicName", config.msg_trace_topic_name.clone()),
        (
            "defaultTopicQueueNums",
            config.default_topic_queue_nums.to_string(),
        ),
        (
            "fileReservedTime",
            config.file_reserved_time_hours.to_string(),
        ),
        (
            "deleteWhen",
            config
                .delete_when
                .iter()
                .map(|hour| format!("{hour:02}"))
                .collect::<Vec<_>>()
                .join(";"),
        ),
        (
            "diskMaxUsedSpaceRatio",
            config.disk_max_used_space_ratio.to_string(),
        ),
        ("maxMessageSize", config.max_message_size.to_string()),
        ("brokerPermission", config.broker_permission.to_string()),
        (
            "registerNameServerPeriod",
            millis(config.register_name_server_period),
        ),
        ("longPollingEnable", config.long_polling_enable.to_string()),
        (
            "enablePropertyFilter",
            config.enable_property_filter.to_string(),
        ),
        ("shortPollingTimeMills", millis(config.short_polling_time)),
        ("slaveReadEnable", config.slave_read_enable.to_string()),
        (
            "accessMessageInMemoryMaxRatio",
            config.access_message_in_memory_max_ratio.to_string(),
        ),
        (
            "offsetCheckInSlave",
            config.offset_check_in_slave.to_string(),
        ),
        (
            "slaveSyncIntervalMillis",
            millis(config.slave_sync_interval),
        ),
        (
            "haSendHeartbeatInterval",
            millis(config.ha_send_heartbeat_interval),
        ),
        (
            "haMaxGapNotInSync",
            config.ha_max_gap_not_in_sync.to_string(),
        ),
        ("haMaxLagMillis", millis(config.ha_max_lag)),
        (
            "haTransferBatchSize",
            config.ha_transfer_batch_size.to_string(),
        ),
        ("shards", shards.to_string()),
        (
            "defaultQueryMaxNum",
            super::super::query::QUERY_MAX_NUM_DEFAULT.to_string(),
        ),
    ];
    if let Some(master) = &config.ha_master_address {
        entries.push(("haMasterAddress", master.to_string()));
    }
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    for (key, value) in entries {
        let _ = writeln!(text, "{key}={value}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_table_sums_shards_and_keeps_each_shards_offsets() {
        let traffic = |total, today| TrafficSnapshot {
            total,
            today,
            yesterday: 0,
            windows: [20, 60, 60],
        };
        let parts = [
            ShardRuntime {
                boot_timestamp_ms: 1_000_000,
                put: traffic(7, 7),
                got: traffic(3, 1),
                commitlog_min_offset: 0,
                commitlog_max_offset: 4096,
                commitlog_durable_offset: 4096,
                earliest_store_time_ms: Some(1_500_000),
                ha: ShardHa::None,
            },
            ShardRuntime {
                boot_timestamp_ms: 1_000_050,
                put: traffic(5, 5),
                got: traffic(0, 0),
                commitlog_min_offset: 100,
                commitlog_max_offset: 2148,
                commitlog_durable_offset: 100,
                earliest_store_time_ms: Some(1_200_000),
                ha: ShardHa::None,
            },
        ];
        let table = runtime_table(&parts, BrokerRole::AsyncMaster, 1_000_000 + 65_000).table;
        assert_eq!(table["msgPutTotalTodayNow"], "12");
        assert_eq!(table["msgPutTotalTodayMorning"], "0");
        assert_eq!(table["msgGetTotalTodayNow"], "3");
        assert_eq!(table["msgGetTotalTodayMorning"], "2");
        assert_eq!(table["commitLogMinOffset"], "100");
        assert_eq!(table["commitLogMaxOffset"], "6244");
        assert_eq!(table["shard1.commitLogMaxOffset"], "2148");
        assert_eq!(table["shard0.commitLogMinOffset"], "0");
        assert_eq!(table["remainHowManyDataToFlush"], "2.0 KiB");
        assert_eq!(table["earliestMessageTimeStamp"], "1200000");
        assert_eq!(table["bootTimestamp"], "1000000");
        assert_eq!(
            table["runtime"],
            "[ 0 days, 0 hours, 1 minutes, 5 seconds ]"
        );
        assert_eq!(table["putTps"], "4.00 2.00 1.85");
        assert_eq!(table["shardCount"], "2");
        assert_eq!(table["brokerActive"], "true");
        assert_eq!(table["brokerRole"], "ASYNC_MASTER");
        let slave = runtime_table(&parts[..1], BrokerRole::Slave, 1_000_000).table;
        assert_eq!(slave["brokerActive"], "false");
        assert_eq!(slave["earliestMessageTimeStamp"], "1500000");
    }

    #[test]
    fn runtime_and_byte_formats_match_java() {
        assert_eq!(
            format_runtime(0),
            "[ 0 days, 0 hours, 0 minutes, 0 seconds ]"
        );
        let ms = ((2 * 86_400) + (3 * 3600) + (4 * 60) + 5) * 1000 + 999;
        assert_eq!(
            format_runtime(ms),
            "[ 2 days, 3 hours, 4 minutes, 5 seconds ]"
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024 * 1024), "10.0 GiB");
    }

    #[test]
    fn version_desc_names_the_server_version() {
        // MQVersion.Version.V5_3_3.ordinal() == 479.
        assert_eq!((SERVER_VERSION, SERVER_VERSION_DESC), (479, "V5_3_3"));
    }

    #[test]
    fn broker_config_text_is_sorted_properties_that_parse_back() {
        let config = BrokerConfig {
            broker_name: "broker-x".into(),
            namesrv_addrs: vec!["a:1".into(), "b:2".into()],
            delete_when: vec![4, 5],
            ..BrokerConfig::default()
        };
        let text = broker_config_text(&config, 3);
        let keys: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let parsed = crate::config::parse_properties(&text).expect("properties");
        assert_eq!(parsed["brokerName"], "broker-x");
        assert_eq!(parsed["namesrvAddr"], "a:1;b:2");
        assert_eq!(parsed["deleteWhen"], "04;05");
        assert_eq!(parsed["shards"], "3");
        let reloaded = BrokerConfig::from_properties(&parsed).expect("valid");
        assert_eq!(reloaded.config.broker_name, "broker-x");
        assert_eq!(reloaded.config.delete_when, vec![4, 5]);
        assert_eq!(
            reloaded.config.mapped_file_size_commit_log,
            config.mapped_file_size_commit_log
        );
    }
}
