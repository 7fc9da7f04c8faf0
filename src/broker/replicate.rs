//! The one path a control-plane change takes before its request is answered: the table's
//! changes are journaled (durable), then the new snapshot is installed on every shard
//! (awaited), for the three replicated tables: topics, subscription groups, subscriptions.
//!
//! Owns [`TableFiles`] (a table's full JSON file and its journal, written only here, one write
//! at a time in FIFO order on the blocking pool) and the publish functions. A journal that
//! outgrows the full file is folded into it ([`journal::should_compact`]), so persisting one
//! change costs O(change) amortised. A failed write is logged and the next write rewrites the
//! whole file (the journal may then lack a change the table holds). An install a busy shard
//! refused marks the replicas stale; the control shard's background loop re-installs the
//! current snapshots ([`resync_if_stale`]).
//!
//! Must never: run on a shard other than the control shard, write a table file on the event
//! loop, or reorder two changes of one table on disk.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use rmq_storage::fifo_lock::FifoLock;
use serde::Serialize;

use crate::runtime::mesh::broadcast;
use crate::tables::journal::{self, Record};
use crate::tables::persist::PersistError;
use crate::tables::replicated::{HasTable, Replica, Snapshot, TableFile};

use super::shard::{Shard, CONTROL_SHARD};

/// A replicated table's files: `<name>.json` in Java's format and `<name>.json.journal`.
#[derive(Debug)]
pub struct TableFiles {
    path: PathBuf,
    journal: PathBuf,
    lock: FifoLock,
    full_bytes: Cell<u64>,
    rewrite: Cell<bool>,
}

impl TableFiles {
    /// The files of the table at `path` (its journal beside it).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        let full_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        Self {
            journal: journal::journal_path(&path),
            path,
            lock: FifoLock::new(),
            full_bytes: Cell::new(full_bytes),
            rewrite: Cell::new(false),
        }
    }

    /// The full file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` to the journal (and folds the journal into the full file when it has
    /// grown enough, or after a failed write), durable when this returns `Ok`.
    ///
    /// # Errors
    /// The failed file operation; the next write then rewrites the full file.
    pub async fn persist<V>(
        &self,
        record: &Record<V>,
        file: TableFile<V>,
    ) -> Result<(), PersistError>
    where
        V: Clone + Serialize + Send + Sync + 'static,
    {
        let frame = journal::encode(&self.journal, record)?;
        let _turn = self.lock.lock().await;
        let result = if self.rewrite.get() {
            self.rewrite_full(file).await
        } else {
            let journal_path = self.journal.clone();
            let appended = compio::runtime::spawn_blocking(move || {
                journal::append_blocking(&journal_path, &frame)
            })
            .await
            .unwrap_or_else(|_| Err(panicked(&self.journal)));
            match appended {
                Ok(length) if journal::should_compact(length, self.full_bytes.get()) => {
                    self.rewrite_full(file).await
                }
                Ok(_) => Ok(()),
                Err(err) => Err(err),
            }
        };
        self.rewrite.set(result.is_err());
        result
    }

    /// Folds the journal into the full file now (clean shutdown), so the file Java tools and
    /// operators read is whole.
    ///
    /// # Errors
    /// The failed file operation.
    pub async fn compact<V>(&self, file: TableFile<V>) -> Result<(), PersistError>
    where
        V: Clone + Serialize + Send + Sync + 'static,
    {
        let _turn = self.lock.lock().await;
        let result = self.rewrite_full(file).await;
        self.rewrite.set(result.is_err());
        result
    }

    /// Writes the full file from `file` and empties the journal.
    async fn rewrite_full<V>(&self, file: TableFile<V>) -> Result<(), PersistError>
    where
        V: Clone + Serialize + Send + Sync + 'static,
    {
        let path = self.path.clone();
        let written = compio::runtime::spawn_blocking(move || journal::fold_blocking(&path, &file))
            .await
            .unwrap_or_else(|_| Err(panicked(&self.path)))?;
        self.full_bytes.set(written);
        Ok(())
    }
}

fn panicked(path: &Path) -> PersistError {
    PersistError::Io {
        op: "blocking write",
        path: path.to_path_buf(),
        source: std::io::Error::other("the blocking task panicked"),
    }
}

/// Folds both tables' journals into their full files (clean shutdown).
pub async fn compact_all(shard: &Rc<Shard>) {
    let control = shard.control();
    compact(&control.topics, &control.topics_files).await;
    compact(&control.groups, &control.groups_files).await;
}

async fn compact<T>(table: &RefCell<T>, files: &TableFiles)
where
    T: HasTable,
    T::Entry: Serialize + Send + Sync + 'static,
{
    let file = table.borrow().table().file(T::FILE_KEY);
    if let Err(err) = files.compact(file).await {
        tracing::warn!(%err, file = %files.path().display(), "not compacted; its journal is replayed at start");
    }
}

/// Journals a table's changes, then installs its snapshot on every shard: the one publish
/// path of the persisted tables.
async fn publish<T>(
    shard: &Rc<Shard>,
    table: &RefCell<T>,
    files: &TableFiles,
    replica: fn(&Shard) -> &Replica<T::Entry>,
) where
    T: HasTable,
    T::Entry: Serialize + Send + Sync + 'static,
{
    let taken = {
        let mut table = table.borrow_mut();
        let changes = table.table_mut().take_changes();
        changes.map(|(record, snapshot)| (record, snapshot, table.table().file(T::FILE_KEY)))
    };
    let Some((record, snapshot, file)) = taken else {
        return;
    };
    if let Err(err) = files.persist(&record, file).await {
        tracing::error!(
            %err,
            file = %files.path().display(),
            "persisting a table change failed; the next change rewrites the whole file"
        );
    }
    install_everywhere(shard, snapshot, replica).await;
}

/// Journals the topic table's changes and installs its snapshot on every shard.
pub async fn publish_topics(shard: &Rc<Shard>) {
    let control = shard.control();
    publish(shard, &control.topics, &control.topics_files, |s| &s.topics).await;
}

/// Journals the subscription-group table's changes and installs its snapshot everywhere.
pub async fn publish_groups(shard: &Rc<Shard>) {
    let control = shard.control();
    publish(shard, &control.groups, &control.groups_files, |s| &s.groups).await;
}

/// Installs the client registry's subscription snapshot everywhere if it changed (live client
/// state is not persisted: clients re-register by heartbeat).
pub async fn publish_subscriptions(shard: &Rc<Shard>) {
    let snapshot = shard.control().clients.borrow().subscriptions_snapshot();
    if snapshot.supersedes(&shard.subscriptions.get()) {
        install_everywhere(shard, snapshot, |s| &s.subscriptions).await;
    }
}

/// Installs `snapshot` into the replica `select` picks, on every shard, and waits for all.
async fn install_everywhere<V>(
    shard: &Rc<Shard>,
    snapshot: Arc<Snapshot<V>>,
    select: fn(&Shard) -> &Replica<V>,
) where
    V: Clone + Send + Sync + 'static,
{
    assert_eq!(
        shard.id, CONTROL_SHARD,
        "tables change on the control shard only"
    );
    let answers = broadcast(shard, move |s: Rc<Shard>| async move {
        select(&s).install(snapshot);
    })
    .await;
    for (target, answer) in answers.iter().enumerate() {
        if let Err(err) = answer {
            tracing::warn!(%err, target, "replica install refused; re-synced later");
            shard.control().replicas_stale.set(true);
        }
    }
}

/// Re-installs every table's current snapshot on every shard if an install was refused.
pub async fn resync_if_stale(shard: &Rc<Shard>) {
    let control = shard.control();
    if !control.replicas_stale.replace(false) {
        return;
    }
    tracing::info!("re-installing control-plane snapshots on every shard");
    install_everywhere(shard, shard.topics.get(), |s| &s.topics).await;
    install_everywhere(shard, shard.groups.get(), |s| &s.groups).await;
    install_everywhere(shard, shard.subscriptions.get(), |s| &s.subscriptions).await;
}
