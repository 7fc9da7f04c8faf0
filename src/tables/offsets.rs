//! Consumer offsets (PROTOCOL.md §4.5) for the queues one shard owns: (topic, group) ->
//! queueId -> committed logical offset, with a dirty flag for the periodic flush, Java's
//! `consumerOffset.json` layout (`{"offsetTable":{"topic@group":{"0":12}}}`; Java's unquoted
//! integer keys are read too), and the QUERY_CONSUMER_OFFSET decision as a pure function.
//!
//! One table per shard, touched only by that shard; the caller picks a per-shard file name.
//! Pure and synchronous; [`ConsumerOffsetTable::save`] does blocking file I/O and belongs in
//! the shard's background flush task, never in a request path. Must never: hold more than
//! [`OFFSET_ENTRIES_MAX`] entries (a commit that would add one more is refused), or load a
//! corrupt file as empty.
//!
//! [`OffsetError::Limit`] and [`OffsetError::Persist`] map to SYSTEM_ERROR with the message as
//! remark; [`OffsetNotFound`] maps to QUERY_NOT_FOUND.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::persist::{self, PersistError};

pub use crate::limits::OFFSET_ENTRIES_MAX;
/// Separator of the persisted `topic@group` key (neither name may contain it).
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// Why an offset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    /// The table already holds [`OFFSET_ENTRIES_MAX`] entries.
    #[error(
        "consumer offset table full ({OFFSET_ENTRIES_MAX} entries): cannot add {topic}@{group}"
    )]
    Limit {
        /// Topic of the refused entry.
        topic: String,
        /// Group of the refused entry.
        group: String,
    },
    /// A persisted key is not `topic@group`.
    #[error("consumer offset file {path}: key `{key}` is not topic@group")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// Reading or writing the file failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// QUERY_CONSUMER_OFFSET has no offset to answer with (reply QUERY_NOT_FOUND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no committed consumer offset")]
pub struct OffsetNotFound;

/// Inputs of the QUERY_CONSUMER_OFFSET decision (named, so they cannot be swapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetQuery {
    /// The committed offset, if any.
    pub stored: Option<i64>,
    /// The request's `setZeroIfNotFound`; an absent header field means `true` (Java).
    pub set_zero_if_not_found: bool,
    /// The queue's min logical offset.
    pub queue_min_offset: i64,
    /// Whether offset 0 of the queue is still in memory (the queue is new).
    pub offset_zero_in_memory: bool,
}

/// PROTOCOL.md §4.5: a committed offset ≥ 0 is returned; otherwise, unless
/// `setZeroIfNotFound` is false, a new queue (min offset ≤ 0 and offset 0 still in memory)
/// answers 0; everything else is QUERY_NOT_FOUND.
///
/// # Errors
/// [`OffsetNotFound`].
pub fn query_offset_decision(query: &OffsetQuery) -> Result<i64, OffsetNotFound> {
    if let Some(offset) = query.stored.filter(|offset| *offset >= 0) {
        return Ok(offset);
    }
    if query.set_zero_if_not_found && query.queue_min_offset <= 0 && query.offset_zero_in_memory {
        return Ok(0);
    }
    Err(OffsetNotFound)
}

/// The persisted file (Java `ConsumerOffsetManager`); other Java fields are ignored.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OffsetFile<T> {
    offset_table: BTreeMap<String, T>,
}

/// Queue id -> offset.
pub type QueueOffsets = BTreeMap<i32, i64>;

/// One shard's consumer offsets.
#[derive(Debug)]
pub struct ConsumerOffsetTable {
    /// topic -> group -> queueId -> offset.
    topics: BTreeMap<String, BTreeMap<String, QueueOffsets>>,
    entries: usize,
    dirty: bool,
    /// [`OFFSET_ENTRIES_MAX`], lowered only by tests.
    entries_max: usize,
}

impl Default for ConsumerOffsetTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsumerOffsetTable {
    /// An empty, clean table.
    #[must_use]
    pub fn new() -> Self {
        Self {
            topics: BTreeMap::new(),
            entries: 0,
            dirty: false,
            entries_max: OFFSET_ENTRIES_MAX,
        }
    }

    /// Loads the file at `path` (standard JSON or Java's unquoted integer keys); a missing
    /// file gives an empty table. The loaded table is clean.
    ///
    /// # Errors
    /// [`OffsetError::Persist`] for an unreadable or corrupt file; [`OffsetError::BadKey`];
    /// [`OffsetError::Limit`] for a file over [`OFFSET_ENTRIES_MAX`] entries.
    pub fn load(path: &Path) -> Result<Self, OffsetError> {
        let mut table = Self::new();
        let Some(file) = persist::read_json::<OffsetFile<QueueOffsets>>(path)? else {
            return Ok(table);
        };
        for (key, queues) in file.offset_table {
            let Some((topic, group)) = key.split_once(TOPIC_GROUP_SEPARATOR) else {
                return Err(OffsetError::BadKey {
                    path: path.to_path_buf(),
                    key,
                });
            };
            for (queue_id, offset) in queues {
                table.commit(topic, group, queue_id, offset)?;
            }
        }
        table.dirty = false;
        Ok(table)
    }

    /// Writes the table atomically to `path` and marks it clean (blocking; a shard uses
    /// [`Self::encode_for_save`] and writes in the blocking pool).
    ///
    /// # Errors
    /// [`OffsetError::Persist`]; the table stays dirty then.
    pub fn save(&mut self, path: &Path) -> Result<(), OffsetError> {
        let bytes = self.encode_for_save(path)?;
        persist::write_bytes_atomic(path, &bytes)?;
        Ok(())
    }

    /// The file contents [`Self::save`] writes, and the table marked clean: a failed write must
    /// call [`Self::mark_dirty`].
    ///
    /// # Errors
    /// [`OffsetError::Persist`] if encoding fails (the table stays dirty).
    pub fn encode_for_save(&mut self, path: &Path) -> Result<Vec<u8>, OffsetError> {
        let offset_table: BTreeMap<String, &QueueOffsets> = self
            .topics
            .iter()
            .flat_map(|(topic, groups)| {
                groups.iter().map(move |(group, queues)| {
                    (format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}"), queues)
                })
            })
            .collect();
        let bytes = persist::encode_json(path, &OffsetFile { offset_table })?;
        self.dirty = false;
        Ok(bytes)
    }

    /// A save failed: the next one must write again.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// UPDATE_CONSUMER_OFFSET and the pull COMMIT flag. Like Java, any value is stored, even
    /// one below the current offset (a consumer rewinding); returns the previous offset.
    ///
    /// # Errors
    /// [`OffsetError::Limit`] when a new entry would exceed [`OFFSET_ENTRIES_MAX`].
    pub fn commit(
        &mut self,
        topic: &str,
        group: &str,
        queue_id: i32,
        offset: i64,
    ) -> Result<Option<i64>, OffsetError> {
        let existing = self
            .topics
            .get_mut(topic)
            .and_then(|groups| groups.get_mut(group))
            .and_then(|queues| queues.get_mut(&queue_id));
        if let Some(stored) = existing {
            let previous = *stored;
            *stored = offset;
            self.dirty = true;
            return Ok(Some(previous));
        }
        if self.entries >= self.entries_max {
            return Err(OffsetError::Limit {
                topic: topic.to_owned(),
                group: group.to_owned(),
            });
        }
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .entry(group.to_owned())
            .or_default()
            .insert(queue_id, offset);
        self.entries += 1;
        assert!(self.entries <= self.entries_max);
        self.dirty = true;
        Ok(None)
    }

    /// Makes the offsets of (topic, group) in this table exactly `queues` (queue id ->
    /// offset): a slave applying its master's table, as Java's `offsetTable.putAll` replaces a
    /// `topic@group` entry whole. Empty `queues` removes the pair. Returns whether anything
    /// changed (the table is dirty then).
    ///
    /// # Errors
    /// [`OffsetError::Limit`] when the new entries would pass [`OFFSET_ENTRIES_MAX`]; nothing
    /// changes then.
    pub fn replace_queues(
        &mut self,
        topic: &str,
        group: &str,
        queues: QueueOffsets,
    ) -> Result<bool, OffsetError> {
        let current = self.offsets(topic, group);
        let current_len = current.map_or(0, BTreeMap::len);
        if current.map_or(queues.is_empty(), |current| *current == queues) {
            return Ok(false);
        }
        let entries = self.entries - current_len + queues.len();
        if entries > self.entries_max {
            return Err(OffsetError::Limit {
                topic: topic.to_owned(),
                group: group.to_owned(),
            });
        }
        if queues.is_empty() {
            let groups = self.topics.get_mut(topic).expect("the pair has offsets");
            groups.remove(group);
            if groups.is_empty() {
                self.topics.remove(topic);
            }
        } else {
            self.topics
                .entry(topic.to_owned())
                .or_default()
                .insert(group.to_owned(), queues);
        }
        self.entries = entries;
        assert!(self.entries <= self.entries_max);
        self.dirty = true;
        Ok(true)
    }

    /// The committed offset of one queue.
    #[must_use]
    pub fn query(&self, topic: &str, group: &str, queue_id: i32) -> Option<i64> {
        self.offsets(topic, group)?.get(&queue_id).copied()
    }

    /// Every committed queue offset of (topic, group) (GET_CONSUME_STATS).
    #[must_use]
    pub fn offsets(&self, topic: &str, group: &str) -> Option<&QueueOffsets> {
        self.topics.get(topic)?.get(group)
    }

    /// Groups with offsets on `topic`.
    #[must_use]
    pub fn groups_of_topic(&self, topic: &str) -> Vec<&str> {
        self.topics
            .get(topic)
            .map(|groups| groups.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every committed offset: (topic, group, queue id, offset).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, i32, i64)> {
        self.topics.iter().flat_map(|(topic, groups)| {
            groups.iter().flat_map(move |(group, queues)| {
                queues
                    .iter()
                    .map(move |(queue, offset)| (topic.as_str(), group.as_str(), *queue, *offset))
            })
        })
    }

    /// Topics `group` has offsets on.
    #[must_use]
    pub fn topics_of_group(&self, group: &str) -> Vec<&str> {
        self.topics
            .iter()
            .filter(|(_, groups)| groups.contains_key(group))
            .map(|(topic, _)| topic.as_str())
            .collect()
    }

    /// Drops every offset of a topic (DELETE_TOPIC_IN_BROKER). Returns how many entries.
    pub fn delete_topic(&mut self, topic: &str) -> usize {
        let removed = self
            .topics
            .remove(topic)
            .map_or(0, |groups| groups.values().map(BTreeMap::len).sum());
        self.removed(removed)
    }

    /// Drops every offset of a group (DELETE_SUBSCRIPTIONGROUP with `cleanOffset`). Returns
    /// how many entries.
    pub fn delete_group(&mut self, group: &str) -> usize {
        let mut removed = 0;
        for groups in self.topics.values_mut() {
            removed += groups.remove(group).map_or(0, |queues| queues.len());
        }
        self.topics.retain(|_, groups| !groups.is_empty());
        self.removed(removed)
    }

    fn removed(&mut self, count: usize) -> usize {
        assert!(count <= self.entries);
        self.entries -= count;
        if count > 0 {
            self.dirty = true;
        }
        count
    }

    /// Whether there are changes not yet saved.
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Number of (topic, group, queueId) entries.
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
    use crate::tables::persist::test_dir;

    #[test]
    fn commit_query_and_rewind() {
        let mut table = ConsumerOffsetTable::new();
        assert!(!table.is_dirty());
        assert_eq!(table.query("T", "G", 0), None);
        assert_eq!(table.commit("T", "G", 0, 12).expect("ok"), None);
        assert!(table.is_dirty());
        assert_eq!(table.commit("T", "G", 0, 20).expect("ok"), Some(12));
        assert_eq!(
            table.commit("T", "G", 0, 5).expect("ok"),
            Some(20),
            "rewind is stored, as Java"
        );
        assert_eq!(table.query("T", "G", 0), Some(5));
        assert_eq!(table.query("T", "G", 1), None);
        assert_eq!(table.query("T", "H", 0), None);
        table.commit("T", "G", 3, 7).expect("ok");
        assert_eq!(
            table.offsets("T", "G"),
            Some(&BTreeMap::from([(0, 5), (3, 7)]))
        );
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn deletes_and_lookups() {
        let mut table = ConsumerOffsetTable::new();
        for (topic, group) in [("T", "G"), ("T", "H"), ("U", "G")] {
            table.commit(topic, group, 0, 1).expect("ok");
            table.commit(topic, group, 1, 2).expect("ok");
        }
        assert_eq!(table.groups_of_topic("T"), vec!["G", "H"]);
        assert_eq!(table.topics_of_group("G"), vec!["T", "U"]);
        assert!(table.groups_of_topic("X").is_empty());
        let mut saved = ConsumerOffsetTable::new();
        std::mem::swap(&mut saved, &mut table);
        saved.dirty = false;
        assert_eq!(saved.delete_group("G"), 4);
        assert!(saved.is_dirty());
        assert_eq!(saved.topics_of_group("G"), Vec::<&str>::new());
        assert_eq!(
            saved.groups_of_topic("U"),
            Vec::<&str>::new(),
            "emptied topic dropped"
        );
        saved.dirty = false;
        assert_eq!(saved.delete_group("G"), 0);
        assert!(!saved.is_dirty(), "nothing removed, still clean");
        assert_eq!(saved.delete_topic("T"), 2);
        assert!(saved.is_empty());
        assert_eq!(saved.delete_topic("T"), 0);
    }

    #[test]
    fn persistence_round_trip_and_dirty_flag() {
        let dir = test_dir("offsets-round-trip");
        let path = dir.join("consumerOffset-shard1.json");
        let mut table = ConsumerOffsetTable::new();
        table.commit("T", "G", 0, 12).expect("ok");
        table.commit("T", "G", 10, 99).expect("ok");
        table.commit("%RETRY%G", "G", 0, 3).expect("ok");
        table.save(&path).expect("save");
        assert!(!table.is_dirty());
        let text = std::fs::read_to_string(&path).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("standard JSON");
        assert_eq!(json["offsetTable"]["T@G"]["10"], 99);

        let loaded = ConsumerOffsetTable::load(&path).expect("load");
        assert!(!loaded.is_dirty());
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded.query("T", "G", 10), Some(99));
        assert_eq!(loaded.query("%RETRY%G", "G", 0), Some(3));
        assert!(ConsumerOffsetTable::load(&dir.join("absent.json"))
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn reads_java_unquoted_keys_and_rejects_bad_input() {
        let dir = test_dir("offsets-java");
        let path = dir.join("consumerOffset.json");
        std::fs::write(
            &path,
            r#"{"offsetTable":{"T@G":{0:12,1:5},"U@H":{"3":8}},"dataVersion":{"counter":1}}"#,
        )
        .expect("write");
        let loaded = ConsumerOffsetTable::load(&path).expect("lenient");
        assert_eq!(loaded.query("T", "G", 0), Some(12));
        assert_eq!(loaded.query("T", "G", 1), Some(5));
        assert_eq!(loaded.query("U", "H", 3), Some(8));

        std::fs::write(&path, r#"{"offsetTable":{"no-separator":{"0":1}}}"#).expect("write");
        assert!(matches!(
            ConsumerOffsetTable::load(&path),
            Err(OffsetError::BadKey { .. })
        ));
        std::fs::write(&path, r#"{"offsetTable":{"T@G":{"0":"#).expect("write");
        assert!(matches!(
            ConsumerOffsetTable::load(&path),
            Err(OffsetError::Persist(_))
        ));
    }

    #[test]
    fn query_offset_decision_table() {
        let query = |stored, set_zero_if_not_found, queue_min_offset, offset_zero_in_memory| {
            query_offset_decision(&OffsetQuery {
                stored,
                set_zero_if_not_found,
                queue_min_offset,
                offset_zero_in_memory,
            })
        };
        // (stored, setZeroIfNotFound, queue min, offset 0 in memory) -> answer
        assert_eq!(query(Some(42), false, 100, false), Ok(42), "stored wins");
        assert_eq!(query(Some(0), false, 5, false), Ok(0));
        assert_eq!(
            query(Some(-1), true, 0, true),
            Ok(0),
            "negative stored counts as absent"
        );
        assert_eq!(query(Some(-1), false, 0, true), Err(OffsetNotFound));
        assert_eq!(
            query(None, false, 0, true),
            Err(OffsetNotFound),
            "setZeroIfNotFound=false"
        );
        assert_eq!(query(None, true, 0, true), Ok(0), "new queue");
        assert_eq!(query(None, true, -1, true), Ok(0));
        assert_eq!(
            query(None, true, 0, false),
            Err(OffsetNotFound),
            "offset 0 swapped out"
        );
        assert_eq!(
            query(None, true, 1, true),
            Err(OffsetNotFound),
            "messages already deleted"
        );
    }

    #[test]
    fn replace_queues_makes_a_pair_exactly_the_given_offsets() {
        let mut table = ConsumerOffsetTable {
            entries_max: 4,
            ..ConsumerOffsetTable::new()
        };
        table.commit("T", "G", 0, 1).expect("ok");
        table.commit("T", "G", 1, 2).expect("ok");
        table.commit("T", "H", 0, 9).expect("ok");
        table.dirty = false;
        let same = BTreeMap::from([(0, 1), (1, 2)]);
        assert!(!table.replace_queues("T", "G", same).expect("ok"));
        assert!(!table.is_dirty(), "nothing changed");
        let master = BTreeMap::from([(1, 5), (2, 7)]);
        assert!(table.replace_queues("T", "G", master.clone()).expect("ok"));
        assert!(table.is_dirty());
        assert_eq!(
            table.offsets("T", "G"),
            Some(&master),
            "queue 0 dropped, as putAll"
        );
        assert_eq!(table.query("T", "H", 0), Some(9), "other pairs untouched");
        assert_eq!(table.len(), 3);
        let too_many = BTreeMap::from([(0, 1), (1, 1), (2, 1), (3, 1)]);
        assert!(matches!(
            table.replace_queues("T", "G", too_many),
            Err(OffsetError::Limit { .. })
        ));
        assert_eq!(table.offsets("T", "G"), Some(&master), "refused: unchanged");
        assert!(table
            .replace_queues("T", "G", QueueOffsets::new())
            .expect("ok"));
        assert_eq!(table.offsets("T", "G"), None);
        assert!(table
            .replace_queues("T", "H", QueueOffsets::new())
            .expect("ok"));
        assert!(table.is_empty());
        assert!(
            table.groups_of_topic("T").is_empty(),
            "emptied topic dropped"
        );
        assert!(!table
            .replace_queues("U", "G", QueueOffsets::new())
            .expect("ok"));
        assert!(table
            .replace_queues("U", "G", BTreeMap::from([(3, 4)]))
            .expect("ok"));
        assert_eq!(table.query("U", "G", 3), Some(4));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn limit_refuses_new_entries_but_not_updates() {
        // The real limit is 1 000 000 entries; the logic is the same at 8.
        let mut table = ConsumerOffsetTable {
            entries_max: 8,
            ..ConsumerOffsetTable::new()
        };
        assert_eq!(ConsumerOffsetTable::new().entries_max, OFFSET_ENTRIES_MAX);
        for queue_id in 0..8 {
            table.commit("T", "G", queue_id, 1).expect("below limit");
        }
        assert!(matches!(
            table.commit("T", "G", 8, 1),
            Err(OffsetError::Limit { .. })
        ));
        assert!(matches!(
            table.commit("U", "H", 0, 1),
            Err(OffsetError::Limit { .. })
        ));
        assert_eq!(
            table.commit("T", "G", 7, 2).expect("update at limit"),
            Some(1)
        );
        table.delete_topic("T");
        table.commit("U", "H", 0, 1).expect("room again");
    }
}
