//! The node-wide offset tables, both ways across the shards: GET_ALL_CONSUMER_OFFSET (43) and
//! GET_ALL_DELAY_OFFSET (45) gather every shard's consumer offsets and delay-level offsets
//! into Java's bodies (a map-reduce from the accepting shard), and a slave applies its
//! master's copies onto the shards that own each queue and level ([`apply_consumer_offsets`],
//! [`apply_delay_offsets`]).
//!
//! Owns no state: each shard's tables stay its own (`Shard::offsets`,
//! `Shard::delay_offsets`). Must never: touch another shard's table except through the mesh,
//! hold a `RefCell` borrow across an `.await`, or apply an entry whose names a broker would
//! refuse (bad `topic@group` keys, queue ids or levels out of range are counted and skipped).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use rmq_net::codec::body::offsets::{
    ConsumerOffsetSerializeWrapper, DelayOffsetSerializeWrapper, TOPIC_GROUP_SEPARATOR,
};
use rmq_net::codec::body::topic::DataVersion;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::RemotingCommand;

use crate::limits::{QUEUE_NUMS_MAX, SLAVE_SYNC_APPLY_BATCH};
use crate::runtime::clock::now_ms;
use crate::runtime::cooperate::yield_now;
use crate::runtime::mesh::{broadcast, MeshError};
use crate::runtime::placement::shard_for;
use crate::tables::groups::validate_group_name;
use crate::tables::offsets::QueueOffsets;
use crate::tables::topics::{validate_topic_name, SCHEDULE_TOPIC};

use super::shard::Shard;
use super::stats::map_shards;
use super::{table_reply, Failure, Outcome};

/// Processes GET_ALL_CONSUMER_OFFSET or GET_ALL_DELAY_OFFSET on the shard that accepted it.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    match request.request_code() {
        RequestCode::GetAllConsumerOffset => {
            let wrapper = gather_consumer_offsets(shard).await?;
            table_reply(request, "consumer offset", wrapper.to_json())
        }
        RequestCode::GetAllDelayOffset => {
            let wrapper = gather_delay_offsets(shard).await?;
            table_reply(request, "delay offset", wrapper.to_json())
        }
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}

/// The version stamped on a gathered table: our offset tables keep none (Java 5.x slaves
/// copy it without comparing it; 4.x has none), so it says when the table was read.
fn read_now() -> DataVersion {
    DataVersion {
        counter: 0,
        state_version: 0,
        timestamp: now_ms(),
    }
}

/// Every shard's committed consumer offsets, merged by `topic@group` (each queue has one
/// owner, so the shards' parts never overlap).
///
/// # Errors
/// SYSTEM_BUSY when a shard cannot be reached.
pub async fn gather_consumer_offsets(
    shard: &Rc<Shard>,
) -> Result<ConsumerOffsetSerializeWrapper, Failure> {
    let parts = map_shards(shard, |s: Rc<Shard>| async move {
        let mut part: BTreeMap<String, QueueOffsets> = BTreeMap::new();
        for (topic, group, queue_id, offset) in s.offsets.borrow().iter() {
            part.entry(format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}"))
                .or_default()
                .insert(queue_id, offset);
        }
        part
    })
    .await?;
    let mut offset_table: BTreeMap<String, QueueOffsets> = BTreeMap::new();
    for part in parts {
        for (key, queues) in part {
            offset_table.entry(key).or_default().extend(queues);
        }
    }
    Ok(ConsumerOffsetSerializeWrapper {
        data_version: Some(read_now()),
        offset_table,
    })
}

/// Every shard's delay-level offsets (each level has one owner).
///
/// # Errors
/// SYSTEM_BUSY when a shard cannot be reached.
pub async fn gather_delay_offsets(
    shard: &Rc<Shard>,
) -> Result<DelayOffsetSerializeWrapper, Failure> {
    let parts = map_shards(
        shard,
        |s: Rc<Shard>| async move { s.delay_offsets.levels() },
    )
    .await?;
    let offset_table = parts
        .into_iter()
        .flatten()
        .map(|(level, offset)| (level, i64::try_from(offset).unwrap_or(i64::MAX)))
        .collect();
    Ok(DelayOffsetSerializeWrapper {
        data_version: Some(read_now()),
        offset_table,
    })
}

/// One `topic@group` entry of a master's table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    /// Topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Queue id -> offset, every queue of the pair on the master.
    pub queues: QueueOffsets,
}

/// Splits a master's consumer-offset table into checked entries; returns them and how many
/// (topic, group, queue) entries were skipped (a key that is not `topic@group` with legal
/// names, or a queue id outside `0..QUEUE_NUMS_MAX`).
#[must_use]
pub fn check_consumer_offsets(
    wrapper: ConsumerOffsetSerializeWrapper,
) -> (Vec<GroupOffsets>, usize) {
    let mut skipped = 0;
    let mut checked = Vec::with_capacity(wrapper.offset_table.len());
    for (key, queues) in wrapper.offset_table {
        let names = ConsumerOffsetSerializeWrapper::split_key(&key).filter(|(topic, group)| {
            validate_topic_name(topic).is_ok() && validate_group_name(group).is_ok()
        });
        let Some((topic, group)) = names else {
            skipped += queues.len().max(1);
            continue;
        };
        let total = queues.len();
        let queues: QueueOffsets = queues
            .into_iter()
            .filter(|(queue_id, _)| (0..QUEUE_NUMS_MAX).contains(queue_id))
            .collect();
        skipped += total - queues.len();
        checked.push(GroupOffsets {
            topic: topic.to_owned(),
            group: group.to_owned(),
            queues,
        });
    }
    (checked, skipped)
}

/// What applying a table did on the shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Entries that changed (`topic@group` pairs, or levels).
    pub changed: usize,
    /// Entries a shard could not take (its offset table is full).
    pub refused: usize,
}

/// Sets the consumer offsets of every pair in `entries` on the shards owning each queue:
/// each shard makes the pair's queues it owns exactly the master's (Java's `putAll` of a
/// `topic@group` entry). Pairs the master does not have are left alone, as in Java; so are
/// offsets a consumer committed on this slave (the master's value overwrites them).
///
/// # Errors
/// The mesh error of a shard that could not be reached (the others applied their part).
pub async fn apply_consumer_offsets(
    shard: &Rc<Shard>,
    entries: Vec<GroupOffsets>,
) -> Result<Applied, MeshError> {
    let entries = Arc::new(entries);
    let answers = broadcast(shard, move |s: Rc<Shard>| async move {
        apply_offsets_on(&s, &entries).await
    })
    .await;
    sum(answers)
}

async fn apply_offsets_on(shard: &Shard, entries: &[GroupOffsets]) -> Applied {
    let shards = shard.shard_count();
    let mut applied = Applied::default();
    for (index, entry) in entries.iter().enumerate() {
        if index % SLAVE_SYNC_APPLY_BATCH == SLAVE_SYNC_APPLY_BATCH - 1 {
            yield_now().await;
        }
        let owned: QueueOffsets = entry
            .queues
            .iter()
            .filter(|(queue_id, _)| shard_for(&entry.topic, **queue_id, shards) == shard.id)
            .map(|(queue_id, offset)| (*queue_id, *offset))
            .collect();
        let replaced = shard
            .offsets
            .borrow_mut()
            .replace_queues(&entry.topic, &entry.group, owned);
        match replaced {
            Ok(true) => applied.changed += 1,
            Ok(false) => {}
            Err(err) => {
                applied.refused += 1;
                tracing::debug!(shard = shard.id.0, %err, "synced consumer offset refused");
            }
        }
    }
    applied
}

/// Sets the delay-level offsets of a master's table on the shards owning each level's
/// schedule queue, and persists the tables that changed (Java writes its file and reloads:
/// levels the master does not have are left alone). Levels outside this broker's
/// `messageDelayLevel` and negative offsets are skipped and counted as refused.
///
/// # Errors
/// The mesh error of a shard that could not be reached (the others applied their part).
pub async fn apply_delay_offsets(
    shard: &Rc<Shard>,
    wrapper: DelayOffsetSerializeWrapper,
) -> Result<Applied, MeshError> {
    let levels = i32::try_from(shard.config.message_delay_level.len()).unwrap_or(i32::MAX);
    let total = wrapper.offset_table.len();
    let checked: BTreeMap<i32, u64> = wrapper
        .offset_table
        .into_iter()
        .filter(|(level, _)| (1..=levels).contains(level))
        .filter_map(|(level, offset)| Some((level, u64::try_from(offset).ok()?)))
        .collect();
    let skipped = total - checked.len();
    let checked = Arc::new(checked);
    let answers = broadcast(shard, move |s: Rc<Shard>| async move {
        let shards = s.shard_count();
        let mut applied = Applied::default();
        for (level, offset) in checked.iter() {
            let owner = shard_for(SCHEDULE_TOPIC, level - 1, shards);
            if owner == s.id && s.delay_offsets.assign(*level, *offset) {
                applied.changed += 1;
            }
        }
        if applied.changed > 0 {
            super::schedule::persist(&s).await;
        }
        applied
    })
    .await;
    let mut applied = sum(answers)?;
    applied.refused += skipped;
    Ok(applied)
}

fn sum(answers: Vec<Result<Applied, MeshError>>) -> Result<Applied, MeshError> {
    let mut total = Applied::default();
    let mut failed = None;
    for answer in answers {
        match answer {
            Ok(applied) => {
                total.changed += applied.changed;
                total.refused += applied.refused;
            }
            Err(err) => failed = Some(err),
        }
    }
    failed.map_or(Ok(total), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masters_offset_table_is_checked_before_it_is_applied() {
        let mut wrapper = ConsumerOffsetSerializeWrapper::default();
        let table = &mut wrapper.offset_table;
        table.insert(
            "T@G".into(),
            BTreeMap::from([(0, 5), (1, 6), (-1, 1), (1024, 2)]),
        );
        table.insert("%RETRY%G@G".into(), BTreeMap::from([(0, 3)]));
        table.insert("no-separator".into(), BTreeMap::from([(0, 1), (1, 1)]));
        table.insert("bad topic@G".into(), BTreeMap::from([(0, 1)]));
        table.insert("T@".into(), BTreeMap::new());
        let (checked, skipped) = check_consumer_offsets(wrapper);
        assert_eq!(
            checked,
            vec![
                GroupOffsets {
                    topic: "%RETRY%G".into(),
                    group: "G".into(),
                    queues: BTreeMap::from([(0, 3)]),
                },
                GroupOffsets {
                    topic: "T".into(),
                    group: "G".into(),
                    queues: BTreeMap::from([(0, 5), (1, 6)]),
                },
            ]
        );
        assert_eq!(
            skipped,
            2 + 2 + 1 + 1,
            "queue ids, the bad keys, the empty group"
        );
    }

    #[test]
    fn sums_count_every_shard_and_report_an_unreachable_one() {
        let one = Applied {
            changed: 2,
            refused: 1,
        };
        assert_eq!(
            sum(vec![Ok(one), Ok(one)]),
            Ok(Applied {
                changed: 4,
                refused: 2
            })
        );
        let busy = MeshError::Busy(crate::runtime::ShardId(1));
        assert_eq!(sum(vec![Ok(one), Err(busy)]), Err(busy));
    }
}
