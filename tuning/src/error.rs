//! Errors of the tuning checker. Owns only the error type.
//! A missing or unreadable host file is NOT an error (it becomes a "not available" result);
//! errors are reserved for a bad root, bad options and a failed write of the report.

use std::io;
use std::path::PathBuf;

/// What can stop `rmq tuning check` from producing a report at all.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The root to read the host through is not a readable directory.
    #[error("root {path} is not a readable directory: {source}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// Why it could not be used.
        source: io::Error,
    },
    /// The shard count used to size requirements is out of range.
    #[error("shard count must be between 1 and {max}, got {got}")]
    Shards {
        /// The value given.
        got: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// Writing the table, JSON or script to the output failed.
    #[error("writing the report failed: {0}")]
    Output(#[from] io::Error),
    /// The results could not be serialised as JSON.
    #[error("serialising the report as JSON failed: {0}")]
    Json(#[from] serde_json::Error),
}
