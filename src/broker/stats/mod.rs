//! Node-wide statistics and admin views, each an explicit map-reduce over the shards
//! ([`map_shards`]): GET_BROKER_RUNTIME_INFO (28), GET_TOPIC_STATS_INFO (202),
//! GET_CONSUME_STATS (208), and GET_BROKER_CONFIG (26). Also owns the cheap per-shard traffic
//! counters ([`ShardStats`]: messages put and got, per-second buckets for TPS, UTC-day marks)
//! that [`observe`] feeds from every processed send and pull), the Prometheus collectors
//! ([`metrics`], fed by [`observe`] and [`observe_rpc`]) and the scrape ([`prom`]).
//!
//! Runs on whichever shard accepted the request (the coordinator); each shard answers for the
//! queues it owns and its own store. Must never: read another shard's state except through
//! the mesh, hold a `RefCell` borrow across an `.await`, or put a clock read on a request that
//! is neither a send nor a pull.

mod counters;
pub mod metrics;
mod offsets;
pub mod prom;
mod runtime;
pub mod windows;

use std::future::Future;
use std::rc::Rc;

use rmq_net::codec::body::topic::DataVersion;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::{ExtFields, RemotingCommand};

use crate::runtime::clock::now_ms;
use crate::runtime::mesh::broadcast;

use super::shard::Shard;
use super::{success, Failure, Outcome};

pub use counters::{
    count_records, ShardStats, TrafficCounter, TrafficSnapshot, TPS_SLOTS, TPS_WINDOWS_SECONDS,
};
pub use runtime::{broker_config_text, format_runtime, human_bytes, SERVER_VERSION_DESC};

/// Feeds the traffic counters from a processed request: a send that stored its messages
/// counts one per msgId (batches carry comma-joined ids), a successful pull counts the records
/// in its body. Other requests cost nothing.
pub fn observe(shard: &Shard, request: &RemotingCommand, response: &RemotingCommand) {
    match request.request_code() {
        RequestCode::SendMessage | RequestCode::SendMessageV2 | RequestCode::SendBatchMessage => {
            let stored = matches!(
                response.response_code(),
                ResponseCode::Success
                    | ResponseCode::FlushDiskTimeout
                    | ResponseCode::FlushSlaveTimeout
                    | ResponseCode::SlaveNotAvailable
            );
            if stored {
                let count = response
                    .ext("msgId")
                    .map_or(1, |ids| ids.split(',').filter(|id| !id.is_empty()).count());
                let now = now_ms();
                shard.stats.put.record(count as u64, now);
                let collectors = &shard.stats.metrics;
                if let Some(topic) = metrics::send_topic(request) {
                    shard.stats.topic_put.record(topic, count as u64, now);
                    if collectors.enabled() {
                        collectors.record_in(topic, metrics::message_sizes(request, count));
                    }
                }
            }
        }
        RequestCode::PullMessage | RequestCode::LitePullMessage
            if response.response_code() == ResponseCode::Success =>
        {
            let (count, now) = (count_records(&response.body), now_ms());
            shard.stats.got.record(count, now);
            if let (Some(topic), Some(group)) = (request.ext("topic"), request.ext("consumerGroup"))
            {
                shard
                    .stats
                    .group_get
                    .record(&format!("{topic}@{group}"), count, now);
                let collectors = &shard.stats.metrics;
                if collectors.enabled() {
                    let traffic = metrics::Traffic {
                        messages: count,
                        bytes: response.body.len() as u64,
                    };
                    collectors.record_out(topic, group, traffic);
                }
            }
        }
        _ => {}
    }
}

/// The start of a send or pull, for its latency series (`None` for other requests, or when
/// metrics are off: they cost no clock read). `Instant::now` is a vDSO read, not a syscall.
#[must_use]
pub fn rpc_started(shard: &Shard, request: &RemotingCommand) -> Option<std::time::Instant> {
    let timed = matches!(
        request.request_code(),
        RequestCode::SendMessage
            | RequestCode::SendMessageV2
            | RequestCode::SendBatchMessage
            | RequestCode::PullMessage
            | RequestCode::LitePullMessage
    );
    (timed && shard.stats.metrics.enabled()).then(std::time::Instant::now)
}

/// Records the latency of a send or pull that [`rpc_started`] timed, on the shard that
/// accepted it (a forwarded request's time includes its trip to the owner shard).
pub fn observe_rpc(
    shard: &Shard,
    code: RequestCode,
    response: Option<&RemotingCommand>,
    started: Option<std::time::Instant>,
) {
    let (Some(started), Some(response)) = (started, response) else {
        return;
    };
    shard
        .stats
        .metrics
        .record_rpc(code, response.response_code(), started.elapsed());
}

/// Runs `work` on every shard (this one directly, the others through the mesh, all at once)
/// and returns the answers in shard order: the map step of a node-wide question.
///
/// # Errors
/// SYSTEM_BUSY when a shard cannot be reached.
pub async fn map_shards<T, F, Fut>(shard: &Rc<Shard>, work: F) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    broadcast(shard, work)
        .await
        .into_iter()
        .map(|answer| answer.map_err(Failure::from))
        .collect()
}

/// Processes a statistics request on the shard that accepted it (a map-reduce over shards).
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    match request.request_code() {
        RequestCode::GetBrokerRuntimeInfo => {
            let table = runtime::runtime_info(shard).await?;
            Ok(success(request).with_body(table.to_json()))
        }
        RequestCode::UpdateBrokerConfig => super::live_config::process(shard, request).await,
        RequestCode::CleanExpiredConsumequeue => super::clean_cq::process(shard, request).await,
        RequestCode::GetTopicStatsInfo => offsets::topic_stats(shard, request).await,
        RequestCode::ViewBrokerStatsData => view_broker_stats_data(shard, request).await,
        RequestCode::GetConsumeStats => offsets::consume_stats(shard, request).await,
        RequestCode::GetBrokerConfig => {
            // `listenPort` 0 means "any": report the port actually bound.
            let effective = crate::config::BrokerConfig {
                listen_port: shard.store_host.port(),
                ..shard.live.over(&shard.config)
            };
            let text = broker_config_text(&effective, shard.shard_count());
            let version = DataVersion {
                counter: 0,
                state_version: 0,
                timestamp: shard.stats.boot_timestamp_ms,
            };
            let mut ext = ExtFields::new();
            ext.insert(
                "version",
                String::from_utf8(version.to_json()).expect("serde_json writes UTF-8"),
            );
            Ok(success(request)
                .with_ext_fields(ext)
                .with_body(text.into_bytes()))
        }
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}

/// VIEW_BROKER_STATS_DATA (315): every shard's windows of the item and key, summed; an item
/// or key no shard counted is SYSTEM_ERROR "The stats <name> <key> not exist", as Java.
async fn view_broker_stats_data(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    use rmq_net::codec::header::admin::ViewBrokerStatsDataRequestHeader;
    use rmq_net::codec::header::CommandHeader as _;

    let header = ViewBrokerStatsDataRequestHeader::decode_command(request)?;
    let not_exist = || {
        Failure::Code(
            ResponseCode::SystemError,
            format!(
                "The stats <{}> <{}> not exist",
                header.stats_name, header.stats_key
            ),
        )
    };
    let put = match header.stats_name.as_str() {
        windows::TOPIC_PUT_NUMS => true,
        windows::GROUP_GET_NUMS => false,
        _ => return Err(not_exist()),
    };
    let key = header.stats_key.clone();
    let now = now_ms();
    let answers = map_shards(shard, move |shard| async move {
        let item = if put {
            &shard.stats.topic_put
        } else {
            &shard.stats.group_get
        };
        item.sums(&key, now)
    })
    .await?;
    let mut merged: Option<windows::WindowSums> = None;
    for sums in answers.into_iter().flatten() {
        merged.get_or_insert_with(Default::default).merge(&sums);
    }
    let merged = merged.ok_or_else(not_exist)?;
    Ok(success(request).with_body(merged.to_body().to_json()))
}
