//! Loading `plain_acl.yml` at start-up and reloading it when its content changes: the control
//! shard re-reads the file every [`ACL_RELOAD_INTERVAL`] (size-checked first), and when the
//! bytes differ from the last ones seen and read the same on two polls in a row (so a file
//! caught half-written is not installed unless the writer stalls a whole interval) it parses
//! them; a valid file is published to every
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
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Bytes(Vec<u8>),
    Failed(String),
}

/// What one poll leads to.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing new (or a change seen once: wait for the next poll).
    Wait,
    /// The file changed and read the same twice in a row: parse and install these bytes.
    Install(Vec<u8>),
    /// A new read error: log it once.
    Report(String),
}

/// The reload decision, apart from I/O: a change is acted on only once two consecutive polls
/// read the same bytes, so a file caught half-written (an editor writing in place) is not
/// installed; a read error is reported once until something else is seen.
#[derive(Debug)]
struct Watcher {
    seen: Seen,
    candidate: Option<Vec<u8>>,
}

impl Watcher {
    fn new(loaded: Vec<u8>) -> Self {
        Self {
            seen: Seen::Bytes(loaded),
            candidate: None,
        }
    }

    fn observe(&mut self, read: Result<Vec<u8>, String>) -> Step {
        match read {
            Ok(bytes) => {
                if matches!(&self.seen, Seen::Bytes(last) if *last == bytes) {
                    self.candidate = None;
                    return Step::Wait;
                }
                if self.candidate.as_ref() != Some(&bytes) {
                    self.candidate = Some(bytes);
                    return Step::Wait;
                }
                self.candidate = None;
                self.seen = Seen::Bytes(bytes.clone());
                Step::Install(bytes)
            }
            Err(text) => {
                self.candidate = None;
                if matches!(&self.seen, Seen::Failed(last) if *last == text) {
                    return Step::Wait;
                }
                self.seen = Seen::Failed(text.clone());
                Step::Report(text)
            }
        }
    }

    /// The install did not reach every shard: install again at the next stable read.
    fn forget(&mut self) {
        self.seen = Seen::Failed(String::new());
    }
}

/// The reload loop (control shard only; ends when the broker stops).
pub async fn watch(shard: Rc<Shard>, loaded: Loaded) {
    assert_eq!(
        shard.id,
        crate::broker::shard::CONTROL_SHARD,
        "one shard reloads the ACL file"
    );
    let path = loaded.path;
    let mut watcher = Watcher::new(Arc::unwrap_or_clone(loaded.bytes));
    loop {
        compio::time::sleep(ACL_RELOAD_INTERVAL).await;
        if shard.stopping.is_set() {
            return;
        }
        let read = read_limited(&path).await.map_err(|err| err.to_string());
        match watcher.observe(read) {
            Step::Wait => {}
            Step::Report(err) => tracing::error!(
                %err,
                "ACL file not reloaded; the configuration in force stays"
            ),
            Step::Install(bytes) => match parse_bytes(&path, &bytes) {
                Ok(config) => {
                    if !publish(&shard, &path, config).await {
                        watcher.forget();
                    }
                }
                Err(err) => tracing::error!(
                    %err,
                    "ACL file not reloaded; the configuration in force stays"
                ),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_conf_keys_select_the_file() {
        let props = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let off = BrokerConfig::from_properties(&props(&[]))
            .expect("defaults")
            .config;
        assert!(!off.acl_enable);
        assert!(acl_file_path(&off).ends_with("conf/plain_acl.yml"));
        let on = BrokerConfig::from_properties(&props(&[
            ("aclEnable", "true"),
            ("aclFile", "/etc/rmq/acl.yml"),
        ]))
        .expect("ACL keys")
        .config;
        assert!(on.acl_enable);
        assert_eq!(acl_file_path(&on), PathBuf::from("/etc/rmq/acl.yml"));
        let bad = BrokerConfig::from_properties(&props(&[("aclEnable", "yes")]));
        assert!(bad.is_err(), "aclEnable is true or false");
    }

    fn bytes(text: &str) -> Result<Vec<u8>, String> {
        Ok(text.as_bytes().to_vec())
    }

    #[test]
    fn a_change_is_installed_once_it_reads_the_same_twice() {
        let mut watcher = Watcher::new(b"v1".to_vec());
        assert_eq!(watcher.observe(bytes("v1")), Step::Wait);
        // Caught mid-write, then complete: only the stable content is installed.
        assert_eq!(watcher.observe(bytes("v")), Step::Wait);
        assert_eq!(watcher.observe(bytes("v2")), Step::Wait);
        assert_eq!(watcher.observe(bytes("v2")), Step::Install(b"v2".to_vec()));
        assert_eq!(watcher.observe(bytes("v2")), Step::Wait);
        // Back to a content seen before is still a change.
        assert_eq!(watcher.observe(bytes("v1")), Step::Wait);
        assert_eq!(watcher.observe(bytes("v1")), Step::Install(b"v1".to_vec()));
    }

    #[test]
    fn a_read_error_is_reported_once_and_recovery_reinstalls() {
        let mut watcher = Watcher::new(b"v1".to_vec());
        let missing = || Err::<Vec<u8>, _>("cannot read: not found".to_owned());
        assert_eq!(
            watcher.observe(missing()),
            Step::Report("cannot read: not found".into())
        );
        assert_eq!(watcher.observe(missing()), Step::Wait);
        assert_eq!(watcher.observe(bytes("v1")), Step::Wait);
        assert_eq!(watcher.observe(bytes("v1")), Step::Install(b"v1".to_vec()));
    }

    #[test]
    fn an_install_that_missed_a_shard_is_repeated() {
        let mut watcher = Watcher::new(b"v1".to_vec());
        assert_eq!(watcher.observe(bytes("v2")), Step::Wait);
        assert_eq!(watcher.observe(bytes("v2")), Step::Install(b"v2".to_vec()));
        watcher.forget();
        assert_eq!(watcher.observe(bytes("v2")), Step::Wait);
        assert_eq!(watcher.observe(bytes("v2")), Step::Install(b"v2".to_vec()));
    }
}
