//! [`TopicQueues`]: the queues of one topic, a vector sorted by queue id. Pure, no I/O.
//!
//! A topic has a handful of queues (RocketMQ's default is 4, rarely more than a few dozen),
//! and the store may hold tens of thousands of them, so the per-queue overhead of the container
//! matters: a `BTreeMap` allocates leaf nodes of 11 slots, which cost 7 unused queue states
//! (about 1.2 KiB) per 4-queue topic; a vector grows to exactly 4. Lookups are a binary search,
//! an insert shifts the queues with a higher id (O(queues of the topic)).
//!
//! Must never: hold two queues with the same id, or let the order by queue id break.

use super::queue::QueueState;

/// The queues of one topic, sorted by queue id.
#[derive(Debug, Default)]
pub struct TopicQueues {
    queues: Vec<(i32, QueueState)>,
}

impl TopicQueues {
    fn find(&self, queue_id: i32) -> Result<usize, usize> {
        self.queues.binary_search_by_key(&queue_id, |(id, _)| *id)
    }

    /// The queue with `queue_id`.
    #[must_use]
    pub fn get(&self, queue_id: i32) -> Option<&QueueState> {
        let index = self.find(queue_id).ok()?;
        Some(&self.queues[index].1)
    }

    /// The queue with `queue_id`, mutably.
    pub fn get_mut(&mut self, queue_id: i32) -> Option<&mut QueueState> {
        let index = self.find(queue_id).ok()?;
        Some(&mut self.queues[index].1)
    }

    /// Adds a queue.
    ///
    /// # Panics
    /// If a queue with `queue_id` exists already.
    pub fn insert(&mut self, queue_id: i32, queue: QueueState) {
        let index = self
            .find(queue_id)
            .expect_err("a queue id is inserted once");
        self.queues.insert(index, (queue_id, queue));
        assert!(
            index == 0 || self.queues[index - 1].0 < queue_id,
            "queues stay sorted by id"
        );
    }

    /// Queue ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.queues.iter().map(|(id, _)| *id)
    }

    /// (queue id, queue), ascending by id.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &QueueState)> + '_ {
        self.queues.iter().map(|(id, queue)| (*id, queue))
    }

    /// (queue id, queue), ascending by id, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (i32, &mut QueueState)> + '_ {
        self.queues.iter_mut().map(|(id, queue)| (*id, queue))
    }

    /// Number of queues.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// True when the topic has no queue.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(uid: u64) -> QueueState {
        QueueState::new(uid, 256, (0, 0), None, None)
    }

    #[test]
    fn sorted_by_id_whatever_the_insert_order() {
        let mut queues = TopicQueues::default();
        for id in [3, 0, 7, 1] {
            queues.insert(id, state(u64::try_from(id).expect("small")));
        }
        assert_eq!(queues.ids().collect::<Vec<_>>(), vec![0, 1, 3, 7]);
        assert_eq!(queues.get(7).map(QueueState::uid), Some(7));
        assert!(queues.get(2).is_none());
        assert_eq!(queues.len(), 4);
        assert!(
            queues.queues.capacity() <= 4,
            "no slack for a 4-queue topic"
        );
    }

    #[test]
    #[should_panic(expected = "inserted once")]
    fn a_duplicate_id_panics() {
        let mut queues = TopicQueues::default();
        queues.insert(1, state(1));
        queues.insert(1, state(2));
    }
}
