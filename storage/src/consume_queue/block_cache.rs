//! A small, bounded, least-recently-used cache of 4 KiB blocks read from (or just written to)
//! consume-queue and index files. Pure in-memory; no I/O.
//!
//! Keys are (owner id, block number): owner ids are handed out once per opened queue or index
//! file and never reused, so a deleted and re-created queue can never see the old blocks. Must
//! never: hold more than its block budget (the eldest block is evicted first).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Cache key: (owner id, block number within the owner).
pub type BlockKey = (u64, u64);

/// LRU cache of immutable blocks.
#[derive(Debug)]
pub struct BlockCache {
    blocks_max: usize,
    tick: u64,
    blocks: HashMap<BlockKey, (Rc<[u8]>, u64)>,
    by_age: BTreeMap<u64, BlockKey>,
    hits: u64,
    misses: u64,
}

impl BlockCache {
    /// A cache holding at most `blocks_max` blocks (0 disables caching).
    #[must_use]
    pub fn new(blocks_max: usize) -> Self {
        Self {
            blocks_max,
            tick: 0,
            blocks: HashMap::new(),
            by_age: BTreeMap::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The block, marking it recently used.
    pub fn get(&mut self, key: BlockKey) -> Option<Rc<[u8]>> {
        let Some((block, age)) = self.blocks.get_mut(&key) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        self.tick += 1;
        let removed = self.by_age.remove(age);
        assert_eq!(removed, Some(key), "age index out of sync with the cache");
        *age = self.tick;
        self.by_age.insert(self.tick, key);
        Some(Rc::clone(block))
    }

    /// Inserts or replaces a block, evicting the least recently used ones beyond the budget.
    pub fn insert(&mut self, key: BlockKey, block: Rc<[u8]>) {
        if self.blocks_max == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, age)) = self.blocks.insert(key, (block, self.tick)) {
            self.by_age.remove(&age);
        }
        self.by_age.insert(self.tick, key);
        while self.blocks.len() > self.blocks_max {
            let (_, eldest) = self
                .by_age
                .pop_first()
                .expect("cache over budget is not empty");
            self.blocks.remove(&eldest);
        }
        assert_eq!(
            self.blocks.len(),
            self.by_age.len(),
            "age index out of sync with the cache"
        );
    }

    /// Drops every block of `owner` (its file was deleted or truncated).
    pub fn remove_owner(&mut self, owner: u64) {
        let by_age = &mut self.by_age;
        self.blocks.retain(|&(key_owner, _), (_, age)| {
            let keep = key_owner != owner;
            if !keep {
                by_age.remove(age);
            }
            keep
        });
    }

    /// Drops one block.
    pub fn remove(&mut self, key: BlockKey) {
        if let Some((_, age)) = self.blocks.remove(&key) {
            self.by_age.remove(&age);
        }
    }

    /// Blocks held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// (hits, misses) so far.
    #[must_use]
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> Rc<[u8]> {
        Rc::from(vec![byte; 8])
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut cache = BlockCache::new(2);
        cache.insert((1, 0), block(0));
        cache.insert((1, 1), block(1));
        assert!(cache.get((1, 0)).is_some());
        cache.insert((1, 2), block(2));
        assert_eq!(cache.len(), 2);
        assert!(
            cache.get((1, 1)).is_none(),
            "the least recently used block goes first"
        );
        assert_eq!(cache.get((1, 0)).expect("kept")[0], 0);
        assert_eq!(cache.get((1, 2)).expect("kept")[0], 2);
        cache.insert((1, 2), block(9));
        assert_eq!(cache.get((1, 2)).expect("replaced")[0], 9);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn remove_owner_drops_only_that_owner() {
        let mut cache = BlockCache::new(10);
        for number in 0..3 {
            cache.insert((1, number), block(1));
            cache.insert((2, number), block(2));
        }
        cache.remove_owner(1);
        assert_eq!(cache.len(), 3);
        assert!(cache.get((1, 0)).is_none());
        assert!(cache.get((2, 0)).is_some());
        cache.remove((2, 0));
        assert_eq!(cache.len(), 2);
        cache.insert((3, 0), block(3));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn zero_budget_caches_nothing() {
        let mut cache = BlockCache::new(0);
        cache.insert((1, 0), block(0));
        assert!(cache.is_empty());
    }
}
