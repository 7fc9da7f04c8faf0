//! Placement: which shard owns a (topic, queueId). A pure function of its inputs, so every
//! shard computes the same answer without shared state.
//! Must never: depend on load, time or anything that differs between shards or restarts
//! (queue data lives on the owner's disk; moving a queue needs its data).

use super::ShardId;

/// Java `String.hashCode` of the topic (the codec's tag hash), so placement is stable across
/// releases and platforms.
fn topic_hash(topic: &str) -> u32 {
    rmq_net::codec::message::tag_hash(topic) as u32
}

/// The shard that owns `(topic, queue_id)`: consecutive queues of a topic land on consecutive
/// shards, so a topic with at least `shards` queues uses every core.
///
/// # Panics
/// If `shards` is 0.
#[must_use]
pub fn shard_for(topic: &str, queue_id: i32, shards: usize) -> ShardId {
    assert!(shards > 0, "at least one shard");
    let base = topic_hash(topic) as usize;
    let queue = queue_id.unsigned_abs() as usize;
    ShardId(base.wrapping_add(queue) % shards)
}

pub use crate::limits::PHYSICAL_OFFSET_SHARD_SHIFT;
const LOCAL_OFFSET_MASK: i64 = (1 << PHYSICAL_OFFSET_SHARD_SHIFT) - 1;

/// The client-visible physical offset of a shard-local CommitLog offset.
///
/// # Panics
/// If the local offset does not fit 56 bits (64 PiB per shard).
#[must_use]
pub fn global_offset(shard: ShardId, local: i64) -> i64 {
    assert!(
        (0..=LOCAL_OFFSET_MASK).contains(&local),
        "local offset out of range"
    );
    assert!(
        shard.0 < crate::limits::SHARDS_MAX,
        "shard id must keep the offset positive"
    );
    ((shard.0 as i64) << PHYSICAL_OFFSET_SHARD_SHIFT) | local
}

/// Splits a client-visible physical offset into (shard, local offset); `None` if negative.
#[must_use]
pub fn split_offset(global: i64) -> Option<(ShardId, i64)> {
    if global < 0 {
        return None;
    }
    Some((
        ShardId((global >> PHYSICAL_OFFSET_SHARD_SHIFT) as usize),
        global & LOCAL_OFFSET_MASK,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_hash_is_java_string_hash() {
        assert_eq!(topic_hash("TagA") as i32, 2_598_919);
        assert_eq!(topic_hash("*") as i32, 42);
        assert_eq!(topic_hash(""), 0);
    }

    /// Placement is part of the disk format: a queue's data lives on its owner's disk, so an
    /// upgrade that moved a queue would lose it. These values were computed once from this
    /// implementation and must never change.
    const PLACEMENT_GOLDEN: &[(&str, i32, usize, usize)] = &[
        // (topic, queueId, shards, owner). Java hash of "TopicTest" is -1902610879.
        ("TopicTest", 0, 2, 1),
        ("TopicTest", 1, 2, 0),
        ("TopicTest", 2, 2, 1),
        ("TopicTest", 3, 2, 0),
        ("TopicTest", 4, 2, 1),
        ("TopicTest", 5, 2, 0),
        ("TopicTest", 6, 2, 1),
        ("TopicTest", 7, 2, 0),
        ("TopicTest", 0, 4, 1),
        ("TopicTest", 1, 4, 2),
        ("TopicTest", 2, 4, 3),
        ("TopicTest", 3, 4, 0),
        ("TopicTest", 4, 4, 1),
        ("TopicTest", 5, 4, 2),
        ("TopicTest", 6, 4, 3),
        ("TopicTest", 7, 4, 0),
        ("TopicTest", 1023, 256, 64),
        // Negative and extreme queue ids place by their magnitude.
        ("TopicTest", -1, 4, 2),
        ("TopicTest", i32::MAX, 4, 0),
        ("TopicTest", i32::MIN, 4, 1),
        ("BenchmarkTest", 0, 2, 1),
        ("BenchmarkTest", 1, 2, 0),
        ("%RETRY%group", 0, 4, 1),
        ("%RETRY%group", 1, 3, 2),
        ("%RETRY%please_rename_unique_group_name_4", 0, 4, 0),
        ("%DLQ%group", 0, 8, 6),
        ("SCHEDULE_TOPIC_XXXX", 0, 4, 0),
        ("SCHEDULE_TOPIC_XXXX", 17, 4, 1),
        ("RMQ_SYS_TRANS_HALF_TOPIC", 0, 6, 3),
        // Non-ASCII: hashed over UTF-16 units as Java does (a surrogate pair is two units).
        ("主题-测试", 0, 4, 2),
        ("主题-测试", 3, 7, 2),
        ("🎉topic", 2, 5, 1),
        // Edge cases: empty topic (hash 0), single-letter topics, one shard.
        ("", 0, 4, 0),
        ("", 5, 3, 2),
        ("a", 0, 16, 1),
        ("x", 63, 1, 0),
    ];

    #[test]
    fn placement_matches_golden_values() {
        for &(topic, queue_id, shards, owner) in PLACEMENT_GOLDEN {
            assert_eq!(
                shard_for(topic, queue_id, shards),
                ShardId(owner),
                "shard_for({topic:?}, {queue_id}, {shards})"
            );
        }
    }

    #[test]
    fn queues_spread_over_shards() {
        for shards in [2, 3, 4, 8] {
            let mut per_shard = vec![0; shards];
            for queue_id in 0..(4 * shards as i32) {
                per_shard[shard_for("TopicTest", queue_id, shards).0] += 1;
            }
            assert!(per_shard.iter().all(|n| *n == 4), "{shards}: {per_shard:?}");
        }
        assert!((0..64).all(|q| shard_for("x", q, 1) == ShardId(0)));
    }

    #[test]
    fn offsets_match_golden_values() {
        // (shard, local) -> client-visible physical offset, as stored in msgIds and
        // ConsumeQueue entries: never to change.
        for (shard, local, global) in [
            (0, 0, 0),
            (0, 4096, 4096),
            (1, 0, 0x0100_0000_0000_0000),
            (1, 123_456_789, 72_057_594_161_384_725),
            (3, 1, 0x0300_0000_0000_0001),
            (7, 1 << 40, 504_404_257_777_123_328),
            (127, LOCAL_OFFSET_MASK, i64::MAX),
        ] {
            assert_eq!(global_offset(ShardId(shard), local), global);
            assert_eq!(split_offset(global), Some((ShardId(shard), local)));
        }
        assert_eq!(
            split_offset(0x00FF_FFFF_FFFF_FFFF),
            Some((ShardId(0), 0x00FF_FFFF_FFFF_FFFF))
        );
        assert_eq!(split_offset(72_057_594_037_927_941), Some((ShardId(1), 5)));
        assert_eq!(split_offset(-1), None);
        assert_eq!(split_offset(i64::MIN), None);
    }

    #[test]
    fn offsets_round_trip_through_the_shard_bits() {
        for shard in [0, 1, 7, 127] {
            for local in [0, 1, 4096, (1 << 40) + 3] {
                let global = global_offset(ShardId(shard), local);
                assert!(global >= 0);
                assert_eq!(split_offset(global), Some((ShardId(shard), local)));
            }
        }
        assert_eq!(split_offset(-1), None);
    }
}
