//! GET_TOPIC_STATS_INFO (202) and GET_CONSUME_STATS (208): per-queue offsets, each queue
//! answered by the shard that owns it (a map-reduce), merged into the MessageQueue-keyed
//! tables Java admin tools read.
//! Must never: answer for a queue from a shard that does not own it, or hold a `RefCell`
//! borrow across a store read.

use std::collections::BTreeSet;
use std::rc::Rc;

use rmq_net::codec::body::queue::MessageQueue;
use rmq_net::codec::body::stats::{ConsumeStats, OffsetWrapper, TopicOffset, TopicStatsTable};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::admin::{GetConsumeStatsRequestHeader, GetTopicStatsInfoRequestHeader};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;
use rmq_storage::store::{GetRequest, GetStatus, TagFilter};

use crate::runtime::placement::shard_for;

use super::super::shard::Shard;
use super::super::{success, Failure, Outcome};
use super::map_shards;

/// Store time of the message at `offset` in a queue this shard owns, if it is readable.
pub(super) async fn store_time_at(
    shard: &Shard,
    topic: &str,
    queue_id: i32,
    offset: u64,
) -> Option<i64> {
    let get = GetRequest {
        topic,
        queue_id,
        queue_offset: offset,
        max_count: 1,
        max_bytes: 1,
        filter: TagFilter::All,
    };
    let result = shard.store.get_messages(&get).await.ok()?;
    if result.status != GetStatus::Found {
        return None;
    }
    result
        .records
        .first()
        .map(|record| record.store_timestamp_ms)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Queues `0..queue_count` of `topic` that `shard` owns.
fn owned_queues(shard: &Shard, topic: &str, queue_count: i32) -> Vec<i32> {
    (0..queue_count.max(0))
        .filter(|queue_id| shard_for(topic, *queue_id, shard.shard_count()) == shard.id)
        .collect()
}

async fn topic_offsets(
    shard: Rc<Shard>,
    topic: String,
    queue_count: i32,
) -> Vec<(i32, TopicOffset)> {
    let mut out = Vec::new();
    for queue_id in owned_queues(&shard, &topic, queue_count) {
        let min_offset = shard.store.min_offset(&topic, queue_id);
        let max_offset = shard.store.max_offset(&topic, queue_id);
        let last_update_timestamp = if max_offset > 0 {
            store_time_at(&shard, &topic, queue_id, max_offset - 1)
                .await
                .unwrap_or(0)
        } else {
            0
        };
        out.push((
            queue_id,
            TopicOffset {
                last_update_timestamp,
                max_offset: to_i64(max_offset),
                min_offset: to_i64(min_offset),
            },
        ));
    }
    out
}

/// GET_TOPIC_STATS_INFO: min/max offset and last store time of every write queue, each from
/// its owner shard.
pub(super) async fn topic_stats(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = GetTopicStatsInfoRequestHeader::decode_command(request)?;
    let Some(config) = shard.topics.get().get(&header.topic).cloned() else {
        return Err(Failure::Code(
            ResponseCode::TopicNotExist,
            format!("topic[{}] not exist", header.topic),
        ));
    };
    let topic = header.topic.clone();
    let queue_count = config.write_queue_nums;
    let parts = map_shards(shard, move |s| topic_offsets(s, topic, queue_count)).await?;
    let mut table = TopicStatsTable::default();
    for (queue_id, offset) in parts.into_iter().flatten() {
        let queue = MessageQueue::new(&header.topic, &shard.config.broker_name, queue_id);
        let previous = table.offset_table.insert(queue, offset);
        assert!(previous.is_none(), "two shards answered for one queue");
    }
    assert_eq!(
        table.offset_table.len(),
        usize::try_from(queue_count.max(0)).unwrap_or(0),
        "every queue has exactly one owner"
    );
    Ok(success(request).with_body(table.to_json()))
}

/// The topics a GET_CONSUME_STATS request asks about: `topicList` (5.x, `;`-separated), else
/// `topic`, else every topic the group has offsets on (a map-reduce: offsets live with their
/// queues).
pub(super) async fn consume_stats_topics(
    shard: &Rc<Shard>,
    header: &GetConsumeStatsRequestHeader,
) -> Result<BTreeSet<String>, Failure> {
    let listed: BTreeSet<String> = header
        .topic_list
        .iter()
        .flat_map(|list| list.split(';'))
        .map(str::trim)
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned)
        .collect();
    if !listed.is_empty() {
        return Ok(listed);
    }
    if let Some(topic) = header.topic.as_deref().map(str::trim) {
        if !topic.is_empty() {
            return Ok(BTreeSet::from([topic.to_owned()]));
        }
    }
    let group = header.consumer_group.clone();
    let parts = map_shards(shard, move |s| async move {
        s.offsets
            .borrow()
            .topics_of_group(&group)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(parts.into_iter().flatten().collect())
}

async fn group_offsets(
    shard: Rc<Shard>,
    group: String,
    topics: Vec<(String, i32)>,
) -> Vec<(String, i32, OffsetWrapper)> {
    let mut out = Vec::new();
    for (topic, queue_count) in topics {
        for queue_id in owned_queues(&shard, &topic, queue_count) {
            let broker_offset = to_i64(shard.store.max_offset(&topic, queue_id));
            let committed = shard.offsets.borrow().query(&topic, &group, queue_id);
            let consumer_offset = committed.unwrap_or(0).max(0);
            let last_timestamp = if consumer_offset > 0 {
                let offset = u64::try_from(consumer_offset - 1).expect("positive");
                store_time_at(&shard, &topic, queue_id, offset)
                    .await
                    .filter(|time| *time > 0)
                    .unwrap_or(0)
            } else {
                0
            };
            let wrapper = OffsetWrapper {
                broker_offset,
                consumer_offset,
                last_timestamp,
                // Pull positions are not tracked; the committed offset is their lower bound.
                pull_offset: consumer_offset,
            };
            out.push((topic.clone(), queue_id, wrapper));
        }
    }
    out
}

/// GET_CONSUME_STATS: per read queue of each topic, the queue's max offset and the group's
/// committed offset, each from the queue's owner shard. Topics the broker does not know, and
/// topics a live group does not subscribe to, are skipped (as Java does). `consumeTps` is 0:
/// per-group rates are not tracked.
pub(super) async fn consume_stats(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = GetConsumeStatsRequestHeader::decode_command(request)?;
    let group = header.consumer_group.clone();
    let topics = consume_stats_topics(shard, &header).await?;
    let wanted: Vec<(String, i32)> = {
        let configs = shard.topics.get();
        let subscriptions = shard.subscriptions.get();
        let live = subscriptions
            .group(&group)
            .is_some_and(|g| !g.subscriptions.is_empty());
        topics
            .into_iter()
            .filter_map(|topic| {
                let config = configs.get(&topic)?;
                let subscribed = subscriptions.subscription(&group, &topic).is_some();
                (subscribed || !live).then_some((topic, config.read_queue_nums))
            })
            .collect()
    };
    let parts = map_shards(shard, move |s| group_offsets(s, group, wanted)).await?;
    let mut stats = ConsumeStats::default();
    for (topic, queue_id, wrapper) in parts.into_iter().flatten() {
        let queue = MessageQueue::new(topic, &shard.config.broker_name, queue_id);
        let previous = stats.offset_table.insert(queue, wrapper);
        assert!(previous.is_none(), "two shards answered for one queue");
    }
    Ok(success(request).with_body(stats.to_json()))
}
