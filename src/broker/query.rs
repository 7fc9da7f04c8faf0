//! QUERY_MESSAGE (12, PROTOCOL.md §4.8): a key or UNIQ_KEY lookup in every shard's index (a
//! map-reduce: each shard indexes only the records of its own CommitLog), merged newest first
//! and served as §6.6 records with client-visible physical offsets.
//!
//! Runs on the shard that accepted the request. Must never: return more than
//! [`QUERY_MAX_NUM_MAX`] records, or serve a record without its owner shard's offset bits.

use std::rc::Rc;

use bytes::BytesMut;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::query::{QueryMessageRequestHeader, QueryMessageResponseHeader};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;
use rmq_storage::commitlog::StoredRecord;
use rmq_storage::store::QueryResult;

use crate::runtime::placement::global_offset;
use crate::runtime::ShardId;

use super::message::serve_record;
use super::shard::Shard;
use super::stats::map_shards;
use super::{success, Failure, Outcome};

pub use crate::limits::{QUERY_MAX_NUM_DEFAULT, QUERY_MAX_NUM_MAX};

const _: () = assert!(QUERY_MAX_NUM_DEFAULT <= QUERY_MAX_NUM_MAX);

/// Java's remark when nothing matched.
pub const QUERY_NOT_FOUND_REMARK: &str = "can not find message, maybe time range not correct";

/// How many records a query may return.
#[must_use]
pub fn effective_max_num(header: &QueryMessageRequestHeader) -> usize {
    let asked = if header.is_unique_key_query() {
        QUERY_MAX_NUM_DEFAULT
    } else {
        usize::try_from(header.max_num).unwrap_or(0)
    };
    asked.min(QUERY_MAX_NUM_MAX)
}

/// The merged answer of every shard.
#[derive(Debug, Default)]
struct Merged {
    /// (owner shard, record), newest first, at most the max number.
    records: Vec<(ShardId, StoredRecord)>,
    /// Newest index update over shards: (store time, client-visible physical offset).
    index_last_update: (i64, i64),
}

/// Reduce step: newest first by store time (then by client-visible offset), cut to `max_num`;
/// the index mark is the newest over shards.
fn merge(answers: Vec<(ShardId, QueryResult)>, max_num: usize) -> Merged {
    let mut merged = Merged::default();
    for (shard, result) in answers {
        let local = i64::try_from(result.index_last_update_phys_offset).unwrap_or(0);
        let mark = (
            result.index_last_update_timestamp,
            global_offset(shard, local),
        );
        merged.index_last_update = merged.index_last_update.max(mark);
        merged
            .records
            .extend(result.records.into_iter().map(|record| (shard, record)));
    }
    merged.records.sort_by_key(|(shard, record)| {
        let phys = i64::try_from(record.phys_offset).unwrap_or(0);
        std::cmp::Reverse((record.store_timestamp_ms, global_offset(*shard, phys)))
    });
    merged.records.truncate(max_num);
    assert!(merged.records.len() <= QUERY_MAX_NUM_MAX);
    merged
}

/// Processes QUERY_MESSAGE on the shard that accepted it. A shard whose index read fails is
/// logged and left out of the answer; only when every shard fails is the reply SYSTEM_ERROR.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = QueryMessageRequestHeader::decode_command(request)?;
    let max_num = effective_max_num(&header);
    let (topic, key) = (header.topic.clone(), header.key.clone());
    let (begin_ms, end_ms) = (header.begin_timestamp, header.end_timestamp);
    let answers = map_shards(shard, move |s| async move {
        let result = s
            .store
            .query_by_key(&topic, &key, max_num, begin_ms, end_ms)
            .await;
        (s.id, result.map_err(|err| err.to_string()))
    })
    .await?;
    let shard_count = answers.len();
    let mut found = Vec::with_capacity(shard_count);
    let mut failures = Vec::new();
    for (owner, answer) in answers {
        match answer {
            Ok(result) => found.push((owner, result)),
            Err(err) => {
                tracing::warn!(shard = owner.0, %err, topic = header.topic, "index query failed");
                failures.push(err);
            }
        }
    }
    if failures.len() == shard_count {
        return Err(Failure::Code(
            ResponseCode::SystemError,
            failures.join("; "),
        ));
    }
    let merged = merge(found, max_num);
    let reply = QueryMessageResponseHeader {
        index_last_update_timestamp: merged.index_last_update.0,
        index_last_update_phyoffset: merged.index_last_update.1,
    };
    if merged.records.is_empty() {
        return Ok(
            RemotingCommand::response_to(request, ResponseCode::QueryNotFound)
                .with_remark(QUERY_NOT_FOUND_REMARK)
                .with_ext_fields(reply.to_ext()),
        );
    }
    let size: usize = merged.records.iter().map(|(_, r)| r.payload.len()).sum();
    let mut body = BytesMut::with_capacity(size);
    for (owner, record) in &merged.records {
        serve_record(&mut body, record, *owner)?;
    }
    Ok(success(request)
        .with_ext_fields(reply.to_ext())
        .with_body(body.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(phys_offset: u64, store_timestamp_ms: i64) -> StoredRecord {
        StoredRecord {
            phys_offset,
            size: 0,
            generation: 0,
            sys_flag: 0,
            queue_id: 0,
            queue_offset: 0,
            tags_code: 0,
            store_timestamp_ms,
            topic: Bytes::from_static(b"T"),
            keys: Bytes::from_static(b"k"),
            payload: Bytes::new(),
            raw: Bytes::new(),
        }
    }

    fn result(records: Vec<StoredRecord>, ts: i64, phys: u64) -> QueryResult {
        QueryResult {
            records,
            index_last_update_timestamp: ts,
            index_last_update_phys_offset: phys,
        }
    }

    #[test]
    fn merge_is_newest_first_across_shards_and_capped() {
        let answers = vec![
            (
                ShardId(0),
                result(vec![record(300, 30), record(100, 10)], 30, 300),
            ),
            (
                ShardId(1),
                result(vec![record(200, 20), record(50, 30)], 25, 400),
            ),
        ];
        let merged = merge(answers, 3);
        let order: Vec<(usize, u64)> = merged
            .records
            .iter()
            .map(|(s, r)| (s.0, r.phys_offset))
            .collect();
        // Equal store times: the larger client-visible offset (shard 1's) first.
        assert_eq!(order, vec![(1, 50), (0, 300), (1, 200)]);
        assert_eq!(merged.index_last_update, (30, 300));
        assert!(merge(Vec::new(), 5).records.is_empty());
    }

    #[test]
    fn unique_key_queries_use_the_broker_default_and_everything_is_capped() {
        let mut header = QueryMessageRequestHeader {
            max_num: 1000,
            ..QueryMessageRequestHeader::default()
        };
        assert_eq!(effective_max_num(&header), QUERY_MAX_NUM_MAX);
        header.max_num = -3;
        assert_eq!(effective_max_num(&header), 0);
        header.unique_key_query = Some(true);
        assert_eq!(effective_max_num(&header), QUERY_MAX_NUM_DEFAULT);
        header.max_num = 2;
        assert_eq!(effective_max_num(&header), QUERY_MAX_NUM_DEFAULT);
    }
}
