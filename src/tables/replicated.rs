//! Replicated control-plane tables: one snapshot type, one supersedes rule, one install.
//!
//! Owns [`Table`] (the authoritative copy on the control shard: entries, `dataVersion`, the
//! change list the journal persists, the entry limit), [`Snapshot`] (an immutable, versioned
//! map from name to entry, broadcast from the control shard to every shard) and [`Replica`]
//! (a shard's current copy). The map is a
//! persistent B-tree (`imbl::OrdMap`): taking a snapshot of a table is O(1) and one change to
//! the table costs O(log n), so creating N topics one by one costs O(N log N) in total, not
//! the O(N²) of cloning the whole table per change.
//!
//! The rule: a snapshot replaces a replica's copy only when its version is higher, so
//! broadcasts that arrive out of order, or twice, never move a shard back.
//!
//! Must never: be mutated after it is shared (snapshots are values), read a clock, or do I/O.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rmq_net::codec::body::topic::DataVersion;
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::Serialize;

use super::journal::{self, Change, Record};
use super::persist::PersistError;

/// The persistent map every replicated table keeps its entries in.
pub type Entries<V> = imbl::OrdMap<String, V>;

/// An immutable, versioned copy of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<V: Clone> {
    version: u64,
    entries: Entries<V>,
}

impl<V: Clone> Snapshot<V> {
    /// A snapshot of `entries` at `version` (O(1): the map is shared, not copied).
    #[must_use]
    pub fn new(version: u64, entries: Entries<V>) -> Self {
        Self { version, entries }
    }

    /// The table's change counter when this copy was taken.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// One entry.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&V> {
        self.entries.get(name)
    }

    /// Whether `name` has an entry.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter()
    }

    /// The entries themselves.
    #[must_use]
    pub fn entries(&self) -> &Entries<V> {
        &self.entries
    }

    /// The one supersedes rule: newer means a higher change counter.
    #[must_use]
    pub fn supersedes(&self, other: &Self) -> bool {
        self.version > other.version
    }
}

/// One shard's copy of a replicated table.
#[derive(Debug)]
pub struct Replica<V: Clone> {
    current: RefCell<Arc<Snapshot<V>>>,
}

impl<V: Clone> Replica<V> {
    /// A replica starting at `initial`.
    #[must_use]
    pub fn new(initial: Arc<Snapshot<V>>) -> Self {
        Self {
            current: RefCell::new(initial),
        }
    }

    /// The current copy (cheap: an `Arc` clone). Hold it, not a borrow, across `.await`s.
    #[must_use]
    pub fn get(&self) -> Arc<Snapshot<V>> {
        Arc::clone(&self.current.borrow())
    }

    /// One entry of the current copy, cloned.
    #[must_use]
    pub fn entry(&self, name: &str) -> Option<V> {
        self.current.borrow().get(name).cloned()
    }

    /// The version of the current copy.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.current.borrow().version()
    }

    /// Installs `next` if it supersedes the current copy; returns whether it did.
    pub fn install(&self, next: Arc<Snapshot<V>>) -> bool {
        let mut current = self.current.borrow_mut();
        if !next.supersedes(&current) {
            return false;
        }
        *current = next;
        true
    }
}

/// Why a table could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its file or journal could not be read, or is corrupt.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// They hold more entries than the table's limit.
    #[error(transparent)]
    Full(#[from] TableFull),
}

/// A new entry would pass the table's entry limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: the table is full ({max} entries)")]
pub struct TableFull {
    /// The entry that did not fit.
    pub name: String,
    /// The limit.
    pub max: usize,
}

/// The authoritative copy of a replicated table (control shard only): entries under a limit,
/// Java's `dataVersion` (counter + 1 and timestamp = now on every change), the changes not yet
/// journaled, and a cached snapshot. Reads go through [`Snapshot`]'s accessors (`Deref`): the
/// table's current state is itself a snapshot value, shared O(1) with the next broadcast.
#[derive(Debug)]
pub struct Table<V: Clone> {
    current: Snapshot<V>,
    data_version: DataVersion,
    max: usize,
    changes: Vec<Change<V>>,
    shared: OnceCell<Arc<Snapshot<V>>>,
}

impl<V: Clone> std::ops::Deref for Table<V> {
    type Target = Snapshot<V>;

    fn deref(&self) -> &Snapshot<V> {
        &self.current
    }
}

impl<V: Clone> Table<V> {
    /// A table holding `initial` (built-in entries) at version counter 0.
    ///
    /// # Panics
    /// If `initial` already passes `max`.
    #[must_use]
    pub fn new(max: usize, initial: Entries<V>, now_ms: i64) -> Self {
        assert!(initial.len() <= max, "built-in entries within the limit");
        Self {
            current: Snapshot::new(0, initial),
            data_version: DataVersion {
                counter: 0,
                state_version: 0,
                timestamp: now_ms,
            },
            max,
            changes: Vec::new(),
            shared: OnceCell::new(),
        }
    }

    /// Overlays what a full file held (startup; nothing is recorded as a change).
    ///
    /// # Errors
    /// [`TableFull`] when the file holds more entries than the limit.
    pub fn restore(
        &mut self,
        version: DataVersion,
        entries: impl IntoIterator<Item = (String, V)>,
    ) -> Result<(), TableFull> {
        for (name, value) in entries {
            self.check_room(&name)?;
            self.current.entries.insert(name, value);
        }
        self.set_version(version);
        Ok(())
    }

    /// Applies journal records newer than the current version (startup), in order.
    ///
    /// # Errors
    /// [`TableFull`] when a record would pass the limit.
    pub fn replay(&mut self, records: Vec<Record<V>>) -> Result<usize, TableFull> {
        let mut applied = 0;
        for record in records {
            if record.data_version.counter <= self.data_version.counter {
                continue; // already in the full file (compacted before the journal reset)
            }
            for change in record.changes {
                match change {
                    Change::Put { name, value } => {
                        self.check_room(&name)?;
                        self.current.entries.insert(name, value);
                    }
                    Change::Delete { name } => {
                        self.current.entries.remove(&name);
                    }
                }
            }
            self.set_version(record.data_version);
            applied += 1;
        }
        Ok(applied)
    }

    /// Loads, on top of the built-in entries, what the full file held (`file`: its
    /// `dataVersion` and entries by name; `rename` makes each entry's own name field agree with
    /// its key, as Java's loader does) and then the changes journaled beside `path` since.
    /// Returns how many journal records were applied.
    ///
    /// # Errors
    /// [`LoadError`].
    pub fn load(
        &mut self,
        path: &Path,
        file: Option<(DataVersion, BTreeMap<String, V>)>,
        rename: fn(&mut V, &str),
    ) -> Result<usize, LoadError>
    where
        V: DeserializeOwned,
    {
        if let Some((version, entries)) = file {
            let entries = entries.into_iter().map(|(name, mut value)| {
                rename(&mut value, &name);
                (name, value)
            });
            self.restore(version, entries)?;
        }
        let records = journal::read_blocking(&journal::journal_path(path))?;
        Ok(self.replay(records)?)
    }

    fn check_room(&self, name: &str) -> Result<(), TableFull> {
        if !self.current.contains(name) && self.current.len() >= self.max {
            return Err(TableFull {
                name: name.to_owned(),
                max: self.max,
            });
        }
        Ok(())
    }

    fn set_version(&mut self, version: DataVersion) {
        self.data_version = version;
        self.current.version = u64::try_from(version.counter).unwrap_or(0);
        self.shared = OnceCell::new();
    }

    /// The current `dataVersion`.
    #[must_use]
    pub fn data_version(&self) -> DataVersion {
        self.data_version
    }

    /// Every value, by name.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.current.entries.values()
    }

    /// Inserts or replaces `name` (a change: the version moves).
    ///
    /// # Errors
    /// [`TableFull`] for a new entry in a full table (nothing changes).
    pub fn put(&mut self, name: String, value: V, now_ms: i64) -> Result<(), TableFull> {
        self.check_room(&name)?;
        self.current.entries.insert(name.clone(), value.clone());
        assert!(self.current.len() <= self.max);
        self.changes.push(Change::Put { name, value });
        self.changed(now_ms);
        Ok(())
    }

    /// Removes `name` (a change when it existed).
    pub fn remove(&mut self, name: &str, now_ms: i64) -> Option<V> {
        let removed = self.current.entries.remove(name)?;
        self.changes.push(Change::Delete {
            name: name.to_owned(),
        });
        self.changed(now_ms);
        Some(removed)
    }

    /// Java `DataVersion.nextVersion`: counter + 1, timestamp = now.
    fn changed(&mut self, now_ms: i64) {
        let mut next = self.data_version;
        next.counter += 1;
        next.timestamp = now_ms;
        self.set_version(next);
    }

    /// The snapshot of the current state (O(1), cached until the next change).
    pub fn snapshot(&self) -> Arc<Snapshot<V>> {
        Arc::clone(self.shared.get_or_init(|| Arc::new(self.current.clone())))
    }

    /// The changes since the last call as one journal record (`None` when nothing changed),
    /// with the snapshot of the state they lead to: the unit the persist path writes and
    /// broadcasts.
    pub fn take_changes(&mut self) -> Option<(Record<V>, Arc<Snapshot<V>>)> {
        if self.changes.is_empty() {
            return None;
        }
        let record = Record {
            data_version: self.data_version,
            changes: std::mem::take(&mut self.changes),
        };
        Some((record, self.snapshot()))
    }

    /// The full file in Java's form: `{"dataVersion": ..., "<key>": {name: entry, ...}}`.
    #[must_use]
    pub fn file(&self, key: &'static str) -> TableFile<V> {
        TableFile {
            key,
            version: self.data_version,
            entries: self.current.entries.clone(),
        }
    }
}

/// What replacing a whole table with another broker's copy did (a slave applying its
/// master's topics or groups): names written, names removed, and entries refused with the
/// reason (an invalid name or config, or a full table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaceOutcome {
    /// Entries added or changed.
    pub written: Vec<String>,
    /// Entries removed (absent from the new copy).
    pub deleted: Vec<String>,
    /// Entries not taken, with why.
    pub refused: Vec<(String, String)>,
}

impl ReplaceOutcome {
    /// Whether the table changed.
    #[must_use]
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.deleted.is_empty()
    }
}

/// A domain table (topics, groups) built on a [`Table`]: the persist and publish paths reach
/// its generic part through this, so they are written once.
pub trait HasTable {
    /// The entry type.
    type Entry: Clone;
    /// The JSON key of the entry map in the table's full file.
    const FILE_KEY: &'static str;
    /// The generic table.
    fn table(&self) -> &Table<Self::Entry>;
    /// The generic table, to take its changes.
    fn table_mut(&mut self) -> &mut Table<Self::Entry>;
}

/// A table's full file, ready to serialize on any thread (it owns a shared copy of the map).
#[derive(Debug, Clone)]
pub struct TableFile<V: Clone> {
    /// The JSON key of the entry map (`topicConfigTable`, `subscriptionGroupTable`).
    pub key: &'static str,
    /// `dataVersion`.
    pub version: DataVersion,
    /// The entries.
    pub entries: Entries<V>,
}

impl<V: Clone + Serialize> Serialize for TableFile<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("dataVersion", &self.version)?;
        map.serialize_entry(self.key, &self.entries)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(version: u64, names: &[&str]) -> Arc<Snapshot<u32>> {
        let entries = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), u32::try_from(i).expect("small")))
            .collect();
        Arc::new(Snapshot::new(version, entries))
    }

    #[test]
    fn only_a_newer_snapshot_is_installed() {
        let replica = Replica::new(snapshot(1, &["a"]));
        assert!(!replica.install(snapshot(1, &["b"])), "same version loses");
        assert!(!replica.install(snapshot(0, &["c"])), "older loses");
        assert!(replica.entry("a").is_some());
        assert!(replica.install(snapshot(3, &["a", "d"])));
        assert_eq!(replica.version(), 3);
        assert!(
            !replica.install(snapshot(2, &["x"])),
            "late broadcast loses"
        );
        assert_eq!(replica.get().len(), 2);
        assert_eq!(replica.entry("d"), Some(1));
    }

    #[test]
    fn table_changes_become_records_and_replay_rebuilds_the_table() {
        let mut table: Table<u32> = Table::new(3, Entries::new(), 5);
        table.put("a".to_owned(), 1, 10).expect("room");
        table.put("b".to_owned(), 2, 11).expect("room");
        let (first, snap) = table.take_changes().expect("changes");
        assert_eq!(first.data_version.counter, 2);
        assert_eq!(first.changes.len(), 2);
        assert_eq!(snap.version(), 2);
        assert!(table.take_changes().is_none(), "drained");
        table.remove("a", 12).expect("present");
        assert!(table.remove("zz", 13).is_none());
        table.put("c".to_owned(), 3, 14).expect("room");
        table.put("d".to_owned(), 4, 15).expect("room");
        assert_eq!(
            table.put("e".to_owned(), 5, 16),
            Err(TableFull {
                name: "e".to_owned(),
                max: 3
            })
        );
        let (second, _) = table.take_changes().expect("changes");
        let mut rebuilt: Table<u32> = Table::new(3, Entries::new(), 0);
        let applied = rebuilt
            .replay(vec![first.clone(), second.clone(), first])
            .expect("fits");
        assert_eq!(applied, 2, "a record at or below the version is skipped");
        assert_eq!(rebuilt.data_version(), table.data_version());
        assert_eq!(rebuilt.snapshot().entries(), table.snapshot().entries());
        let json = serde_json::to_string(&table.file("t")).expect("json");
        assert!(json.starts_with(r#"{"dataVersion":{"#), "{json}");
        assert!(json.ends_with(r#""t":{"b":2,"c":3,"d":4}}"#), "{json}");
    }

    #[test]
    fn a_snapshot_is_unaffected_by_later_changes_to_the_table() {
        let mut table: Entries<u32> = Entries::new();
        table.insert("a".to_owned(), 1);
        let taken = Snapshot::new(1, table.clone());
        table.insert("b".to_owned(), 2);
        table.remove("a");
        assert_eq!(taken.get("a"), Some(&1));
        assert!(!taken.contains("b"));
        assert_eq!(table.len(), 1);
    }
}
