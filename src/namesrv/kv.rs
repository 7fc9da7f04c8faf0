//! NameServer KV config (PROTOCOL.md §4.10.6): namespace -> key -> value, the only NameServer
//! state that is persisted (`kvConfig.json`, written atomically on each change).
//! Runs on the NameServer thread; writes are rare admin operations, so it uses blocking file
//! I/O there. Must never: grow past its named limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::limits::{KV_ITEM_SIZE_MAX, KV_KEYS_PER_NAMESPACE_MAX, KV_NAMESPACES_MAX};

/// Why a KV write was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// A named limit would be exceeded.
    #[error("kv config limit: {0}")]
    Limit(&'static str),
    /// Loading or persisting failed (a corrupt file is an error, never silently empty); a
    /// failed persist leaves the change unapplied.
    #[error("kv config {path}: {reason}")]
    Persist { path: PathBuf, reason: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    #[serde(rename = "configTable")]
    config_table: BTreeMap<String, BTreeMap<String, String>>,
}

/// The KV table and where it is persisted (`None`: memory only).
#[derive(Debug, Default)]
pub struct KvConfig {
    table: BTreeMap<String, BTreeMap<String, String>>,
    path: Option<PathBuf>,
}

impl KvConfig {
    /// Loads `path` if it exists (an unreadable or corrupt file is an error, not silently empty).
    ///
    /// # Errors
    /// I/O or JSON errors reading an existing file.
    pub fn open(path: Option<&Path>) -> Result<Self, KvError> {
        let mut kv = Self {
            table: BTreeMap::new(),
            path: path.map(Path::to_path_buf),
        };
        if let Some(path) = path {
            let persisted: Option<Persisted> =
                crate::tables::persist::read_json(path).map_err(|e| KvError::Persist {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            if let Some(persisted) = persisted {
                kv.table = persisted.config_table;
            }
        }
        Ok(kv)
    }

    /// PUT_KV_CONFIG.
    ///
    /// # Errors
    /// Limits, or a failed persist (then nothing changed).
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) -> Result<(), KvError> {
        if key.len() > KV_ITEM_SIZE_MAX
            || value.len() > KV_ITEM_SIZE_MAX
            || namespace.len() > KV_ITEM_SIZE_MAX
        {
            return Err(KvError::Limit("item size"));
        }
        if !self.table.contains_key(namespace) && self.table.len() >= KV_NAMESPACES_MAX {
            return Err(KvError::Limit("namespaces"));
        }
        let keys = self.table.get(namespace).map_or(0, BTreeMap::len);
        let exists = self
            .table
            .get(namespace)
            .is_some_and(|n| n.contains_key(key));
        if !exists && keys >= KV_KEYS_PER_NAMESPACE_MAX {
            return Err(KvError::Limit("keys per namespace"));
        }
        let old = self
            .table
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        if let Err(e) = self.persist() {
            let ns = self.table.get_mut(namespace).expect("inserted above");
            match old {
                Some(old) => {
                    ns.insert(key.to_owned(), old);
                }
                None => {
                    ns.remove(key);
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// GET_KV_CONFIG.
    #[must_use]
    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// DELETE_KV_CONFIG.
    ///
    /// # Errors
    /// A failed persist.
    pub fn delete(&mut self, namespace: &str, key: &str) -> Result<(), KvError> {
        let removed = self.table.get_mut(namespace).and_then(|n| n.remove(key));
        if removed.is_some() {
            if self.table.get(namespace).is_some_and(BTreeMap::is_empty) {
                self.table.remove(namespace);
            }
            self.persist()?;
        }
        Ok(())
    }

    /// GET_KVLIST_BY_NAMESPACE: `None` when the namespace is empty.
    #[must_use]
    pub fn list(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace).filter(|n| !n.is_empty())
    }

    fn persist(&self) -> Result<(), KvError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        crate::tables::persist::write_json_atomic(
            path,
            &PersistedRef {
                config_table: &self.table,
            },
        )
        .map_err(|e| KvError::Persist {
            path: path.clone(),
            reason: e.to_string(),
        })
    }
}

#[derive(Serialize)]
struct PersistedRef<'a> {
    #[serde(rename = "configTable")]
    config_table: &'a BTreeMap<String, BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_and_persist_across_reopen() {
        let dir = std::env::temp_dir().join(format!("rmq-kv-{}", std::process::id()));
        let path = dir.join("kvConfig.json");
        let mut kv = KvConfig::open(Some(&path)).expect("open");
        kv.put("ORDER_TOPIC_CONFIG", "T", "broker-a:4")
            .expect("put");
        kv.put("NS", "k", "v").expect("put");
        kv.delete("NS", "k").expect("delete");
        assert!(kv.list("NS").is_none());
        let kv = KvConfig::open(Some(&path)).expect("reopen");
        assert_eq!(kv.get("ORDER_TOPIC_CONFIG", "T"), Some("broker-a:4"));
        assert_eq!(kv.get("NS", "k"), None);
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn limits_refuse_oversized_items() {
        let mut kv = KvConfig::open(None).expect("open");
        let big = "x".repeat(KV_ITEM_SIZE_MAX + 1);
        assert!(matches!(kv.put("N", "k", &big), Err(KvError::Limit(_))));
        assert_eq!(kv.get("N", "k"), None);
    }
}
