//! Loading `plain_acl.yml` at start-up and reloading it when its content changes: the control
//! shard re-reads the file every [`ACL_RELOAD_INTERVAL`] (size-checked first), and when the
//! bytes differ from the last ones seen it parses them; a valid file is published to every
//! shard with one `broadcast` (each installs the new `Arc` in its [`super::AclSlot`]), a bad
//! or missing one is logged once per change and the configuration in force stays.
//!
//! Must never: log the file's content or a secret key; install a configuration that did not
//! validate whole; block the shard (the reads go through the runtime).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::file::{self, AclFileError};
use super::AclConfig;
use crate::broker::shard::Shard;
use crate::config::BrokerConfig;
use crate::limits::{ACL_FILE_BYTES_MAX, ACL_RELOAD_INTERVAL};
use crate::runtime::mesh::broadcast;

/// The default `plain_acl.yml` when broker.conf names none: Java's
/// `$ROCKETMQ_HOME/conf/plain_acl.yml`, or `conf/plain_acl.yml` under the working directory.
#[must_use]
pub fn acl_file_path(config: &BrokerConfig) -> PathBuf {
    if let Some(path) = &config.acl_file {
        return path.clone();
    }
    let home = std::env::var_os("ROCKETMQ_HOME").map_or_else(PathBuf::new, PathBuf::from);
    home.join("conf").join("plain_acl.yml")
}

/// Why the ACL file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AclLoadError {
    /// The file could not be read.
    #[error("cannot read the ACL file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file did not validate.
    #[error("the ACL file {path} is refused: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: AclFileError,
    },
}

fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<AclConfig, AclLoadError> {
    let invalid = |source| AclLoadError::Invalid {
        path: path.to_owned(),
        source,
    };
    if bytes.len() > ACL_FILE_BYTES_MAX {
        return Err(invalid(AclFileError::TooLarge {
            bytes: bytes.len() as u64,
            max: ACL_FILE_BYTES_MAX,
        }));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|err| invalid(AclFileError::Yaml(format!("not UTF-8: {err}"))))?;
    file::parse(text).map_err(invalid)
}

/// The ACL file as loaded at start-up (before any shard serves): the configuration every
/// shard starts with, and the file and bytes the reload loop starts from.
#[derive(Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Arc<AclConfig>,
    /// The file.
    pub path: PathBuf,
    /// The bytes it was parsed from.
    pub bytes: Arc<Vec<u8>>,
}

impl Loaded {
    /// Reads and validates `path` (blocking: start-up only).
    ///
    /// # Errors
    /// [`AclLoadError`]: the broker does not start without a valid ACL file when ACL is on.
    pub fn read(path: PathBuf) -> Result<Self, AclLoadError> {
        let read_error = |source| AclLoadError::Read {
            path: path.clone(),
            source,
        };
        let length = std::fs::metadata(&path).map_err(read_error)?.len();
        if length > ACL_FILE_BYTES_MAX as u64 {
            return Err(AclLoadError::Invalid {
                path,
                source: AclFileError::TooLarge {
                    bytes: length,
                    max: ACL_FILE_BYTES_MAX,
                },
            });
        }
        let bytes = std::fs::read(&path).map_err(read_error)?;
        let config = parse_bytes(&path, &bytes)?;
        Ok(Self {
            config: Arc::new(config),
            path,
            bytes: Arc::new(bytes),
        })
    }
}

/// Reads the file through the runtime, refusing one over the size limit before reading it.
async fn read_limited(path: &Path) -> Result<Vec<u8>, AclLoadError> {
    let read_error = |source| AclLoadError::Read {
        path: path.to_owned(),
        source,
    };
    let length = compio::fs::metadata(path).await.map_err(read_error)?.len();
    if length > ACL_FILE_BYTES_MAX as u64 {
        return Err(AclLoadError::Invalid {
            path: path.to_owned(),
            source: AclFileError::TooLarge {
                bytes: length,
                max: ACL_FILE_BYTES_MAX,
            },
        });
    }
    compio::fs::read(path).await.map_err(read_error)
}

/// What the loop last saw: the bytes, or the error text (so one problem is logged once).
enum Seen {
    Bytes(Vec<u8>),
    Failed(String),
}

/// The reload loop (control shard only; ends when the broker stops).
pub async fn watch(shard: Rc<Shard>, loaded: Loaded) {
    assert_eq!(
        shard.id,
        crate::broker::shard::CONTROL_SHARD,
        "one shard reloads the ACL file"
    );
    let path = loaded.path;
    let mut seen = Seen::Bytes(Arc::unwrap_or_clone(loaded.bytes));
    loop {
        compio::time::sleep(ACL_RELOAD_INTERVAL).await;
        if shard.stopping.is_set() {
            return;
        }
        let read = read_limited(&path).await;
        let unchanged = match (&read, &seen) {
            (Ok(bytes), Seen::Bytes(last)) => bytes == last,
            (Err(err), Seen::Failed(last)) => err.to_string() == *last,
            _ => false,
        };
        if unchanged {
            continue;
        }
        let parsed = match read {
            Ok(bytes) => {
                let parsed = parse_bytes(&path, &bytes);
                seen = Seen::Bytes(bytes);
                parsed
            }
            Err(err) => {
                seen = Seen::Failed(err.to_string());
                Err(err)
            }
        };
        match parsed {
            Ok(config) => {
                if !publish(&shard, &path, config).await {
                    // A shard kept the old configuration: publish again at the next poll.
                    seen = Seen::Failed(String::new());
                }
            }
            Err(err) => tracing::error!(
                %err,
                "ACL file not reloaded; the configuration in force stays"
            ),
        }
    }
}

/// Installs `config` on every shard; false when a shard could not be reached.
async fn publish(shard: &Rc<Shard>, path: &Path, config: AclConfig) -> bool {
    let accounts = config.accounts.len();
    let config = Arc::new(config);
    let answers = broadcast(shard, move |target: Rc<Shard>| async move {
        target.acl.install(config);
    })
    .await;
    let missed = answers.iter().filter(|answer| answer.is_err()).count();
    if missed == 0 {
        tracing::info!(path = %path.display(), accounts, "ACL file reloaded on every shard");
    } else {
        tracing::error!(path = %path.display(), missed, "ACL reload did not reach every shard");
    }
    missed == 0
}
