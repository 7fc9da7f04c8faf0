//! Orderly-consumption queue locks (PROTOCOL.md §4.7, Java `RebalanceLockManager`):
//! (consumer group, MessageQueue) -> (client id, last lock time). A lock lives
//! [`LOCK_MAX_LIVE_MS`] after the last LOCK_BATCH_MQ that covered it; clients re-lock every
//! 20 s. The send path asks [`RebalanceLocks::has_unexpired_locks`] to route retries of an
//! orderly group to its DLQ (§4.1 step 5).
//!
//! Lives on the control shard (locks are per group, not per queue owner). Pure and
//! synchronous: time comes in as `now_ms`. Must never: hold more than [`LOCKS_MAX`] entries,
//! or more than [`LOCKS_PER_CLIENT_MAX`] for one client id (expired ones are purged first; a
//! lock that still does not fit is simply not granted, and the client retries), or grant one
//! queue to two live clients.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rmq_net::codec::body::queue::MessageQueue;

/// How long a lock lives after its last refresh (Java
/// `rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_MAX_LIVE_MS: i64 = 60_000;
pub use crate::limits::{LOCKS_MAX, LOCKS_PER_CLIENT_MAX};

#[derive(Debug, Clone, PartialEq, Eq)]
struct LockEntry {
    client_id: String,
    last_update_ms: i64,
}

impl LockEntry {
    fn is_expired(&self, now_ms: i64) -> bool {
        now_ms - self.last_update_ms > LOCK_MAX_LIVE_MS
    }

    fn is_held_by(&self, client_id: &str, now_ms: i64) -> bool {
        self.client_id == client_id && !self.is_expired(now_ms)
    }
}

/// All queue locks of the broker.
#[derive(Debug)]
pub struct RebalanceLocks {
    groups: BTreeMap<String, BTreeMap<MessageQueue, LockEntry>>,
    entries: usize,
    /// [`LOCKS_MAX`], lowered only by tests.
    entries_max: usize,
    /// Entries (live or expired) per client id; no zero counts.
    per_client: HashMap<String, usize>,
    /// [`LOCKS_PER_CLIENT_MAX`], lowered only by tests.
    per_client_max: usize,
}

impl Default for RebalanceLocks {
    fn default() -> Self {
        Self::new()
    }
}

impl RebalanceLocks {
    /// No locks.
    #[must_use]
    pub fn new() -> Self {
        Self {
            groups: BTreeMap::new(),
            entries: 0,
            entries_max: LOCKS_MAX,
            per_client: HashMap::new(),
            per_client_max: LOCKS_PER_CLIENT_MAX,
        }
    }

    fn client_count(&self, client_id: &str) -> usize {
        self.per_client.get(client_id).copied().unwrap_or(0)
    }

    fn hold(&mut self, client_id: &str) {
        *self.per_client.entry(client_id.to_owned()).or_default() += 1;
    }

    fn release(per_client: &mut HashMap<String, usize>, client_id: &str) {
        let count = per_client
            .get_mut(client_id)
            .expect("every entry is counted for its client");
        *count -= 1;
        if *count == 0 {
            per_client.remove(client_id);
        }
    }

    /// Room for one more entry of `client_id`, purging expired entries first if needed (once
    /// per batch: `purged` says whether this batch already did).
    fn has_room(&mut self, client_id: &str, now_ms: i64, purged: &mut bool) -> bool {
        let full =
            |s: &Self| s.entries >= s.entries_max || s.client_count(client_id) >= s.per_client_max;
        if full(self) && !*purged {
            *purged = true;
            self.purge_expired(now_ms);
        }
        !full(self)
    }

    /// LOCK_BATCH_MQ: locks each queue for `client_id` if it is free, already this client's
    /// (refreshed), or held by an expired lock (taken over). Returns the queues the client now
    /// holds; queues live-locked by another client are left out.
    pub fn try_lock_batch<'a>(
        &mut self,
        group: &str,
        client_id: &str,
        mqs: impl IntoIterator<Item = &'a MessageQueue>,
        now_ms: i64,
    ) -> BTreeSet<MessageQueue> {
        let mut locked = BTreeSet::new();
        let mut purged = false;
        for mq in mqs {
            if self.try_lock(group, client_id, mq, now_ms, &mut purged) {
                locked.insert(mq.clone());
            }
        }
        assert!(self.entries <= self.entries_max);
        locked
    }

    fn try_lock(
        &mut self,
        group: &str,
        client_id: &str,
        mq: &MessageQueue,
        now_ms: i64,
        purged: &mut bool,
    ) -> bool {
        let client_at_cap = self.client_count(client_id) >= self.per_client_max;
        if let Some(entry) = self
            .groups
            .get_mut(group)
            .and_then(|locks| locks.get_mut(mq))
        {
            if entry.client_id == client_id {
                entry.last_update_ms = now_ms;
                return true;
            }
            if !entry.is_expired(now_ms) || client_at_cap {
                return false;
            }
            // Take the expired lock over.
            let previous = std::mem::replace(&mut entry.client_id, client_id.to_owned());
            entry.last_update_ms = now_ms;
            Self::release(&mut self.per_client, &previous);
            self.hold(client_id);
            return true;
        }
        if !self.has_room(client_id, now_ms, purged) {
            return false;
        }
        let entry = LockEntry {
            client_id: client_id.to_owned(),
            last_update_ms: now_ms,
        };
        self.groups
            .entry(group.to_owned())
            .or_default()
            .insert(mq.clone(), entry);
        self.entries += 1;
        self.hold(client_id);
        true
    }

    /// UNLOCK_BATCH_MQ: releases the queues this client holds (expired or not); locks of
    /// other clients stay. Returns how many were released.
    pub fn unlock_batch<'a>(
        &mut self,
        group: &str,
        client_id: &str,
        mqs: impl IntoIterator<Item = &'a MessageQueue>,
    ) -> usize {
        let Some(locks) = self.groups.get_mut(group) else {
            return 0;
        };
        let mut released = 0;
        for mq in mqs {
            if locks
                .get(mq)
                .is_some_and(|entry| entry.client_id == client_id)
            {
                locks.remove(mq);
                Self::release(&mut self.per_client, client_id);
                released += 1;
            }
        }
        if locks.is_empty() {
            self.groups.remove(group);
        }
        assert!(released <= self.entries);
        self.entries -= released;
        released
    }

    /// Whether `mq` is live-locked by a client other than `client_id` (the pull path refuses
    /// orderly pulls from a non-holder).
    #[must_use]
    pub fn is_locked_by_other(
        &self,
        group: &str,
        mq: &MessageQueue,
        client_id: &str,
        now_ms: i64,
    ) -> bool {
        self.holder(group, mq, now_ms)
            .is_some_and(|holder| holder != client_id)
    }

    /// Whether `client_id` holds a live lock on `mq`.
    #[must_use]
    pub fn is_locked_by(
        &self,
        group: &str,
        mq: &MessageQueue,
        client_id: &str,
        now_ms: i64,
    ) -> bool {
        self.groups
            .get(group)
            .and_then(|locks| locks.get(mq))
            .is_some_and(|entry| entry.is_held_by(client_id, now_ms))
    }

    /// The client holding a live lock on `mq`.
    #[must_use]
    pub fn holder(&self, group: &str, mq: &MessageQueue, now_ms: i64) -> Option<&str> {
        self.groups
            .get(group)?
            .get(mq)
            .filter(|entry| !entry.is_expired(now_ms))
            .map(|entry| entry.client_id.as_str())
    }

    /// Whether any lock of `group` is still live (Java `!isLockAllExpired`).
    #[must_use]
    pub fn has_unexpired_locks(&self, group: &str, now_ms: i64) -> bool {
        self.groups
            .get(group)
            .is_some_and(|locks| locks.values().any(|entry| !entry.is_expired(now_ms)))
    }

    /// Drops every expired lock (Java keeps them forever; we bound memory). Returns how many.
    pub fn purge_expired(&mut self, now_ms: i64) -> usize {
        let mut purged = 0;
        let per_client = &mut self.per_client;
        for locks in self.groups.values_mut() {
            locks.retain(|_, entry| {
                let expired = entry.is_expired(now_ms);
                if expired {
                    Self::release(per_client, &entry.client_id);
                    purged += 1;
                }
                !expired
            });
        }
        self.groups.retain(|_, locks| !locks.is_empty());
        assert!(purged <= self.entries);
        self.entries -= purged;
        purged
    }

    /// Number of lock entries (live or expired).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(queue_id: i32) -> MessageQueue {
        MessageQueue::new("T", "broker-a", queue_id)
    }

    fn set(ids: &[i32]) -> BTreeSet<MessageQueue> {
        ids.iter().copied().map(mq).collect()
    }

    #[test]
    fn lock_refresh_and_conflict() {
        let mut locks = RebalanceLocks::new();
        let queues = [mq(0), mq(1)];
        assert_eq!(locks.try_lock_batch("G", "c1", &queues, 0), set(&[0, 1]));
        assert_eq!(locks.len(), 2);
        assert_eq!(
            locks.try_lock_batch("G", "c1", &queues, 10_000),
            set(&[0, 1]),
            "own locks refresh"
        );
        assert_eq!(
            locks.try_lock_batch("G", "c2", &[mq(1), mq(2)], 20_000),
            set(&[2])
        );
        assert!(locks.is_locked_by_other("G", &mq(1), "c2", 20_000));
        assert!(!locks.is_locked_by_other("G", &mq(1), "c1", 20_000));
        assert!(locks.is_locked_by("G", &mq(2), "c2", 20_000));
        assert_eq!(locks.holder("G", &mq(0), 20_000), Some("c1"));
        assert_eq!(
            locks.try_lock_batch("H", "c2", &[mq(0)], 20_000),
            set(&[0]),
            "groups are independent"
        );
        assert_eq!(locks.len(), 4);
    }

    #[test]
    fn expired_lock_is_taken_over_after_60_seconds() {
        let mut locks = RebalanceLocks::new();
        locks.try_lock_batch("G", "c1", &[mq(0)], 0);
        assert!(
            locks
                .try_lock_batch("G", "c2", &[mq(0)], LOCK_MAX_LIVE_MS)
                .is_empty(),
            "exactly 60 s still held"
        );
        assert!(locks.has_unexpired_locks("G", LOCK_MAX_LIVE_MS));
        assert!(!locks.has_unexpired_locks("G", LOCK_MAX_LIVE_MS + 1));
        assert!(!locks.is_locked_by_other("G", &mq(0), "c2", LOCK_MAX_LIVE_MS + 1));
        assert_eq!(
            locks.try_lock_batch("G", "c2", &[mq(0)], LOCK_MAX_LIVE_MS + 1),
            set(&[0])
        );
        assert_eq!(locks.holder("G", &mq(0), LOCK_MAX_LIVE_MS + 1), Some("c2"));
        assert!(locks.is_locked_by_other("G", &mq(0), "c1", LOCK_MAX_LIVE_MS + 1));
        assert_eq!(locks.len(), 1, "takeover reuses the entry");
    }

    #[test]
    fn unlock_only_releases_own_locks() {
        let mut locks = RebalanceLocks::new();
        locks.try_lock_batch("G", "c1", &[mq(0), mq(1)], 0);
        assert_eq!(locks.unlock_batch("G", "c2", &[mq(0)]), 0);
        assert_eq!(locks.unlock_batch("G", "c1", &[mq(0), mq(5)]), 1);
        assert_eq!(locks.holder("G", &mq(0), 1), None);
        assert_eq!(locks.holder("G", &mq(1), 1), Some("c1"));
        assert_eq!(locks.unlock_batch("Missing", "c1", &[mq(1)]), 0);
        assert_eq!(locks.unlock_batch("G", "c1", &[mq(1)]), 1);
        assert!(locks.is_empty());
        assert!(!locks.has_unexpired_locks("G", 1));
        assert_eq!(
            locks.try_lock_batch("G", "c2", &[mq(0)], 2),
            set(&[0]),
            "free after unlock"
        );
    }

    #[test]
    fn purge_drops_expired_entries() {
        let mut locks = RebalanceLocks::new();
        locks.try_lock_batch("G", "c1", &[mq(0)], 0);
        locks.try_lock_batch("G", "c1", &[mq(1)], 50_000);
        locks.try_lock_batch("H", "c1", &[mq(0)], 0);
        assert_eq!(locks.purge_expired(LOCK_MAX_LIVE_MS + 1), 2);
        assert_eq!(locks.len(), 1);
        assert!(locks.has_unexpired_locks("G", LOCK_MAX_LIVE_MS + 1));
        assert!(!locks.has_unexpired_locks("H", 0), "group H removed");
    }

    #[test]
    fn one_client_cannot_take_every_slot() {
        let mut locks = RebalanceLocks {
            per_client_max: 8,
            ..RebalanceLocks::new()
        };
        assert_eq!(RebalanceLocks::new().per_client_max, LOCKS_PER_CLIENT_MAX);
        let queues: Vec<MessageQueue> = (0..20).map(mq).collect();
        // Across groups, one client id gets at most its cap.
        assert_eq!(
            locks.try_lock_batch("G", "greedy", &queues[..5], 0).len(),
            5
        );
        assert_eq!(locks.try_lock_batch("H", "greedy", &queues, 0).len(), 3);
        assert_eq!(locks.len(), 8);
        // Others are unaffected.
        assert_eq!(locks.try_lock_batch("H", "fair", &queues[10..], 0).len(), 8);
        // Refreshing held locks works at the cap; unlocking frees room.
        assert_eq!(
            locks.try_lock_batch("G", "greedy", &queues[..5], 1).len(),
            5
        );
        assert_eq!(locks.unlock_batch("G", "greedy", &queues[..2]), 2);
        assert_eq!(
            locks.try_lock_batch("G", "greedy", &queues[5..9], 2).len(),
            2
        );
        // Expired locks of the greedy client are purged when it asks again later, and an
        // expired lock taken over moves to the new holder's count.
        let later = LOCK_MAX_LIVE_MS + 10;
        assert_eq!(
            locks
                .try_lock_batch("G", "fair2", &queues[2..4], later)
                .len(),
            2
        );
        assert_eq!(locks.holder("G", &mq(2), later), Some("fair2"));
        let expired = locks.len() - 2;
        assert_eq!(locks.purge_expired(later), expired);
        assert_eq!(locks.per_client.get("fair2"), Some(&2));
        assert!(!locks.per_client.contains_key("greedy"));
    }

    #[test]
    fn limit_purges_then_refuses() {
        // The real limit is 1 000 000 entries; the logic is the same at 64.
        let mut locks = RebalanceLocks {
            entries_max: 64,
            ..RebalanceLocks::new()
        };
        let max = 64;
        let queues: Vec<MessageQueue> = (0..max).map(mq).collect();
        assert_eq!(locks.try_lock_batch("G", "c1", &queues, 0).len(), 64);
        assert_eq!(RebalanceLocks::new().entries_max, LOCKS_MAX);
        let extra = [mq(max)];
        assert!(
            locks.try_lock_batch("G", "c2", &extra, 1).is_empty(),
            "full and nothing expired"
        );
        assert_eq!(
            locks.try_lock_batch("G", "c1", &queues[..1], 1).len(),
            1,
            "refresh works when full"
        );
        assert_eq!(
            locks.try_lock_batch("G", "c2", &extra, LOCK_MAX_LIVE_MS + 1),
            set(&[max]),
            "expired entries purged"
        );
        assert_eq!(locks.len(), 2);
    }
}
