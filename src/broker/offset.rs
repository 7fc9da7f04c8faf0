//! Offset requests on the shard that owns the queue (PROTOCOL.md §4.5): consumer offsets
//! (query/update), min/max offset, search by timestamp, earliest store time.
//! Must never: answer for a queue another shard owns (the dispatcher routes by placement).

use std::rc::Rc;

use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::offset::{
    BoundaryType, GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;
use rmq_storage::consume_queue::search::Boundary;
use rmq_storage::store::{GetRequest, GetStatus, TagFilter};

use crate::runtime::memory::is_cold;
use crate::tables::groups::validate_group_name;
use crate::tables::offsets::{query_offset_decision, OffsetQuery};
use crate::tables::topics::queue_id_in_range;

use super::shard::Shard;
use super::{storage_failure, success, Failure, Outcome};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Processes an offset request on the owner shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    match request.request_code() {
        RequestCode::QueryConsumerOffset => {
            let header = QueryConsumerOffsetRequestHeader::decode_command(request)?;
            let stored = shard.offsets.borrow().query(
                &header.topic,
                &header.consumer_group,
                header.queue_id,
            );
            let min = shard.store.min_offset(&header.topic, header.queue_id);
            let offset_zero_in_memory = stored.is_none()
                && min == 0
                && offset_zero_is_recent(shard, &header.topic, header.queue_id).await;
            let decision = query_offset_decision(&OffsetQuery {
                stored,
                set_zero_if_not_found: header.set_zero_if_not_found.unwrap_or(true),
                queue_min_offset: to_i64(min),
                offset_zero_in_memory,
            });
            match decision {
                Ok(offset) => Ok(success(request)
                    .with_ext_fields(QueryConsumerOffsetResponseHeader { offset }.to_ext())),
                Err(_) => Err(Failure::Code(
                    ResponseCode::QueryNotFound,
                    "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".into(),
                )),
            }
        }
        RequestCode::UpdateConsumerOffset => {
            let header = UpdateConsumerOffsetRequestHeader::decode_command(request)?;
            check_offset_target(
                shard,
                &header.topic,
                &header.consumer_group,
                header.queue_id,
            )?;
            shard
                .offsets
                .borrow_mut()
                .commit(
                    &header.topic,
                    &header.consumer_group,
                    header.queue_id,
                    header.commit_offset,
                )
                .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
            Ok(success(request))
        }
        RequestCode::GetMaxOffset => {
            let header = GetMaxOffsetRequestHeader::decode_command(request)?;
            let offset = to_i64(shard.store.max_offset(&header.topic, header.queue_id));
            Ok(success(request).with_ext_fields(GetMaxOffsetResponseHeader { offset }.to_ext()))
        }
        RequestCode::GetMinOffset => {
            let header = GetMinOffsetRequestHeader::decode_command(request)?;
            let offset = to_i64(shard.store.min_offset(&header.topic, header.queue_id));
            Ok(success(request).with_ext_fields(GetMinOffsetResponseHeader { offset }.to_ext()))
        }
        RequestCode::SearchOffsetByTimestamp => {
            let header = SearchOffsetRequestHeader::decode_command(request)?;
            let boundary = match header.boundary_type {
                BoundaryType::Lower => Boundary::Lower,
                BoundaryType::Upper => Boundary::Upper,
            };
            let offset = shard
                .store
                .search_offset_by_timestamp(
                    &header.topic,
                    header.queue_id,
                    header.timestamp,
                    boundary,
                )
                .await
                .map_err(|e| storage_failure(&e))?;
            Ok(success(request).with_ext_fields(
                SearchOffsetResponseHeader {
                    offset: to_i64(offset),
                }
                .to_ext(),
            ))
        }
        RequestCode::GetEarliestMsgStoretime => {
            let header = GetEarliestMsgStoretimeRequestHeader::decode_command(request)?;
            let timestamp = shard
                .store
                .earliest_store_time(&header.topic, header.queue_id)
                .await
                .map_err(|e| storage_failure(&e))?
                .unwrap_or(-1);
            Ok(success(request)
                .with_ext_fields(GetEarliestMsgStoretimeResponseHeader { timestamp }.to_ext()))
        }
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}

/// What UPDATE_CONSUMER_OFFSET may create an entry for (each one is kept and persisted): a
/// group named as group names must be, and a queue of an existing topic.
fn check_offset_target(
    shard: &Shard,
    topic: &str,
    group: &str,
    queue_id: i32,
) -> Result<(), Failure> {
    validate_group_name(group)
        .map_err(|e| Failure::Code(ResponseCode::InvalidParameter, e.to_string()))?;
    let Some(config) = shard.topics.entry(topic) else {
        return Err(Failure::Code(
            ResponseCode::TopicNotExist,
            format!("topic[{topic}] not exist"),
        ));
    };
    if !queue_id_in_range(&config, queue_id) {
        return Err(Failure::Code(
            ResponseCode::InvalidParameter,
            format!("queueId[{queue_id}] is illegal, topic:[{topic}]"),
        ));
    }
    Ok(())
}

/// Java answers offset 0 to a new group only while message 0 is still "in memory"
/// (`checkInDiskByConsumeOffset`), i.e. the queue is young. Ours: the first message's record
/// is within the last `accessMessageInMemoryMaxRatio` % of RAM of CommitLog bytes
/// ([`Shard::in_memory_window_bytes`]), or the queue is empty.
async fn offset_zero_is_recent(shard: &Shard, topic: &str, queue_id: i32) -> bool {
    let get = GetRequest {
        topic,
        queue_id,
        queue_offset: 0,
        max_count: 1,
        max_bytes: 1,
        filter: TagFilter::All,
    };
    let Ok(result) = shard.store.get_messages(&get).await else {
        return false;
    };
    let Some(first) = result
        .records
        .first()
        .filter(|_| result.status == GetStatus::Found)
    else {
        return result.max_offset == 0;
    };
    let appended = shard.store.commitlog().appended_offset();
    !is_cold(appended, first.phys_offset, shard.in_memory_window_bytes)
}
