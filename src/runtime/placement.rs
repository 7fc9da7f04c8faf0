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

/// Top bits of a client-visible physical offset that carry the owning shard.
pub const PHYSICAL_OFFSET_SHARD_SHIFT: u32 = 56;
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
    assert!(shard.0 < 128, "shard id must keep the offset positive");
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

    #[test]
    fn queues_spread_over_shards_and_placement_is_stable() {
        let shards = 2;
        let owners: Vec<_> = (0..8)
            .map(|q| shard_for("TopicTest", q, shards).0)
            .collect();
        assert_eq!(owners.iter().filter(|s| **s == 0).count(), 4);
        assert_eq!(
            owners,
            (0..8)
                .map(|q| shard_for("TopicTest", q, shards).0)
                .collect::<Vec<_>>()
        );
        assert!((0..64).all(|q| shard_for("x", q, 1) == ShardId(0)));
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
