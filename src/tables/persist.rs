//! Atomic JSON metadata files: `topics.json`, `subscriptionGroup.json` and the per-shard
//! consumer-offset files. A write goes to `<file>.tmp`, is fsynced, the previous version is
//! kept as `<file>.bak` (as Java's `MixAll.string2File` does), the temp file is renamed over
//! the target and the directory is fsynced, so a crash leaves either the old or the new file,
//! never a torn one.
//!
//! Uses blocking `std::fs` on purpose; the atomic replace itself is the storage crate's
//! (`rmq_storage::atomic_file`, the one implementation in the workspace). Replicated tables are
//! written on the blocking pool (`broker::replicate`); consumer and delay offsets are encoded by
//! the owning shard and written on the blocking pool too ([`write_bytes_off_loop`]). Must never: return an empty value for a corrupt file, or write in
//! place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::limits::METADATA_FILE_SIZE_MAX;

/// Why reading or writing a metadata file failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A file-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file exists but does not hold the expected JSON.
    #[error("corrupt metadata file {path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parser message.
        detail: String,
    },
    /// The file is larger than [`METADATA_FILE_SIZE_MAX`].
    #[error("metadata file {path} is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The value could not be turned into JSON.
    #[error("serialize {path}: {detail}")]
    Serialize {
        /// The target file.
        path: PathBuf,
        /// Serializer message.
        detail: String,
    },
}

/// Maps an `io::Error` of `op` on `path` to [`PersistError::Io`].
pub(crate) fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The backup kept of the previous version of `path`.
#[must_use]
pub fn backup_path(path: &Path) -> PathBuf {
    rmq_storage::atomic_file::backup_path(path)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `value` as pretty JSON to `path` atomically through the one atomic-replace
/// implementation (`rmq_storage::atomic_file`: temp file, fsync, keep the previous version as
/// `.bak`, rename, directory fsync). Creates the parent directory if needed.
///
/// # Errors
/// [`PersistError::Serialize`] if `value` cannot be encoded; [`PersistError::Io`] for any
/// failed file-system call (then `path` still holds the previous version).
pub fn write_json_atomic<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<(), PersistError> {
    let bytes = encode_json(path, value)?;
    write_bytes_atomic(path, &bytes)
}

/// `value` as the pretty JSON [`write_json_atomic`] writes (`path` only names the file in the
/// error).
///
/// # Errors
/// [`PersistError::Serialize`] if `value` cannot be encoded.
pub fn encode_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<Vec<u8>, PersistError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| PersistError::Serialize {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    assert!(!bytes.is_empty(), "serde_json never produces empty output");
    Ok(bytes)
}

/// Replaces `path` with `bytes` atomically (blocking: temp file, fsync, `.bak`, rename,
/// directory fsync); callers on a shard run it in the blocking pool.
///
/// # Errors
/// [`PersistError::Io`] for any failed file-system call (then `path` still holds the previous
/// version).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    rmq_storage::atomic_file::replace_blocking(path, bytes, true).map_err(|e| PersistError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

/// [`write_bytes_atomic`] in the runtime's blocking pool, so a shard's event loop never waits
/// for the fsyncs.
///
/// # Errors
/// As [`write_bytes_atomic`]; a panicked blocking task is reported as an I/O error.
pub async fn write_bytes_off_loop(path: PathBuf, bytes: Vec<u8>) -> Result<(), PersistError> {
    let shown = path.clone();
    compio::runtime::spawn_blocking(move || write_bytes_atomic(&path, &bytes))
        .await
        .unwrap_or_else(|_| {
            Err(PersistError::Io {
                op: "write (blocking task panicked)",
                path: shown,
                source: std::io::Error::other("blocking task panicked"),
            })
        })
}

/// Reads a file's bytes; `None` when it does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("stat", path)(e)),
    };
    if size > METADATA_FILE_SIZE_MAX {
        return Err(PersistError::TooLarge {
            path: path.to_path_buf(),
            size,
            max: METADATA_FILE_SIZE_MAX,
        });
    }
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path)(e)),
    }
}

/// Reads JSON written by [`write_json_atomic`] (or by a Java broker: parsed leniently, so
/// fastjson's unquoted integer keys are accepted).
///
/// Like Java's `ConfigManager.load`, a missing or empty file falls back to `<path>.bak`.
/// Returns `Ok(None)` when neither exists (first start).
///
/// # Errors
/// [`PersistError::Corrupt`] when the file (or the backup it fell back to) is not valid
/// JSON of type `T` (a corrupt file is never treated as empty); [`PersistError::TooLarge`];
/// [`PersistError::Io`].
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    let (source, bytes) = match read_bounded(path)? {
        Some(bytes) if !bytes.is_empty() => (path.to_path_buf(), bytes),
        _ => {
            let backup = backup_path(path);
            match read_bounded(&backup)? {
                Some(bytes) if !bytes.is_empty() => (backup, bytes),
                _ => return Ok(None),
            }
        }
    };
    rmq_net::codec::body::parse_lenient("metadata file", &bytes)
        .map(Some)
        .map_err(|e| PersistError::Corrupt {
            path: source,
            detail: e.to_string(),
        })
}

/// A fresh, empty directory under the workspace `target/` for one test.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("rmq-broker-tests")
        .join(format!("{name}-{}", std::process::id()));
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot clear test dir {}: {e}", dir.display()),
    }
    fs::create_dir_all(&dir).expect("test dir is creatable under target/");
    dir
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        table: BTreeMap<i32, i64>,
    }

    fn sample(name: &str) -> Sample {
        Sample {
            name: name.to_owned(),
            table: BTreeMap::from([(0, 12), (3, -1)]),
        }
    }

    #[test]
    fn absent_file_reads_as_none() {
        let dir = test_dir("persist-absent");
        let read: Option<Sample> = read_json(&dir.join("none.json")).expect("absent is fine");
        assert_eq!(read, None);
    }

    #[test]
    fn round_trip_keeps_previous_version_as_backup() {
        let dir = test_dir("persist-round-trip");
        let path = dir.join("nested").join("file.json");
        write_json_atomic(&path, &sample("first")).expect("write 1");
        assert!(
            !backup_path(&path).exists(),
            "no backup before a second write"
        );
        write_json_atomic(&path, &sample("second")).expect("write 2");

        let read: Sample = read_json(&path).expect("read").expect("present");
        assert_eq!(read, sample("second"));
        let backup: Sample = read_json(&backup_path(&path))
            .expect("read")
            .expect("present");
        assert_eq!(backup, sample("first"));
        assert!(
            !rmq_storage::atomic_file::temp_path(&path).exists(),
            "temp file renamed away"
        );
    }

    #[test]
    fn corrupt_file_is_an_error_not_empty() {
        let dir = test_dir("persist-corrupt");
        let path = dir.join("file.json");
        fs::write(&path, b"{\"name\":\"x\",\"table\":{").expect("write");
        let result: Result<Option<Sample>, _> = read_json(&path);
        assert!(
            matches!(result, Err(PersistError::Corrupt { .. })),
            "{result:?}"
        );
        fs::write(&path, b"[1,2]").expect("write");
        let wrong_shape: Result<Option<Sample>, _> = read_json(&path);
        assert!(matches!(wrong_shape, Err(PersistError::Corrupt { .. })));
    }

    #[test]
    fn empty_or_missing_file_falls_back_to_backup() {
        let dir = test_dir("persist-backup");
        let path = dir.join("file.json");
        write_json_atomic(&path, &sample("old")).expect("write 1");
        write_json_atomic(&path, &sample("new")).expect("write 2");
        fs::write(&path, b"").expect("truncate");
        let read: Sample = read_json(&path).expect("read").expect("backup");
        assert_eq!(read.name, "old");
        fs::remove_file(&path).expect("remove");
        let read: Sample = read_json(&path).expect("read").expect("backup");
        assert_eq!(read.name, "old");
    }

    #[test]
    fn java_unquoted_integer_keys_are_read() {
        let dir = test_dir("persist-lenient");
        let path = dir.join("file.json");
        fs::write(&path, b"{\"name\":\"j\",\"table\":{0:5,7:9}}").expect("write");
        let read: Sample = read_json(&path).expect("read").expect("present");
        assert_eq!(read.table, BTreeMap::from([(0, 5), (7, 9)]));
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = test_dir("persist-too-large");
        let path = dir.join("file.json");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(METADATA_FILE_SIZE_MAX + 1)
            .expect("sparse extend");
        let result: Result<Option<Sample>, _> = read_json(&path);
        assert!(
            matches!(result, Err(PersistError::TooLarge { .. })),
            "{result:?}"
        );
    }
}
