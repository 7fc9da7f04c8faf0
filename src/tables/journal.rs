//! The change journal of a replicated table: `<file>.journal` beside its full JSON file (e.g.
//! `topics.json.journal`), so that persisting one change costs O(change), not a rewrite of the
//! whole table.
//!
//! Owns the journal's format and its blocking file operations: append a record (write +
//! fdatasync; the directory is fsynced when the journal is created), read every whole record
//! back (a torn or damaged tail ends the journal and is cut off), and reset it after the full
//! file was rewritten (compaction, decided by [`should_compact`]).
//!
//! Format: a sequence of frames `[len u32 LE][crc u32 LE][len bytes of JSON]`, the CRC being
//! CRC-32 of the JSON xored with [`JOURNAL_CRC_XOR`] (zeros never validate). The JSON is a
//! [`Record`]: the table's `dataVersion` after the change and the changed entries. On load a
//! record whose version counter is not above the full file's is already in the file (a crash
//! between compaction's rename and the journal reset) and is skipped.
//!
//! Must never: acknowledge a change before its record is fdatasynced, apply a record that
//! fails its CRC, or grow past [`JOURNAL_RECORD_BYTES_MAX`] per record. Runs on a blocking
//! thread (callers use the runtime's blocking pool), never on a shard's event loop.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rmq_net::codec::body::topic::DataVersion;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::persist::{self, io_error, parent_dir, PersistError};

pub use crate::limits::{JOURNAL_COMPACT_BYTES_MIN, JOURNAL_RECORD_BYTES_MAX};

/// Xored into every frame's CRC.
pub const JOURNAL_CRC_XOR: u32 = 0x5A17_C3E1;

const FRAME_HEADER_BYTES: usize = 8;

/// One entry's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Change<V> {
    /// The entry `name` is now `value`.
    Put {
        /// Entry name.
        name: String,
        /// New value.
        value: V,
    },
    /// The entry `name` was removed.
    Delete {
        /// Entry name.
        name: String,
    },
}

/// One journal record: the table's version after `changes` were applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<V> {
    /// The table's version after this record.
    pub data_version: DataVersion,
    /// What changed, in order.
    pub changes: Vec<Change<V>>,
}

/// The journal path of a table file (`topics.json` -> `topics.json.journal`).
#[must_use]
pub fn journal_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Encodes one record as a frame.
///
/// # Errors
/// [`PersistError::Serialize`] if it cannot be encoded or is over the record limit.
pub fn encode<V: Serialize>(path: &Path, record: &Record<V>) -> Result<Vec<u8>, PersistError> {
    let json = serde_json::to_vec(record).map_err(|e| PersistError::Serialize {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if json.len() > JOURNAL_RECORD_BYTES_MAX {
        return Err(PersistError::Serialize {
            path: path.to_path_buf(),
            detail: format!(
                "journal record of {} bytes is over the {JOURNAL_RECORD_BYTES_MAX}-byte limit",
                json.len()
            ),
        });
    }
    let len = u32::try_from(json.len()).expect("bounded by JOURNAL_RECORD_BYTES_MAX");
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + json.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&(crc32fast::hash(&json) ^ JOURNAL_CRC_XOR).to_le_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// Appends `frames` (one or more encoded records) to the journal and makes them durable.
/// Returns the journal's length afterwards.
///
/// # Errors
/// [`PersistError::Io`]; the journal may then hold a torn tail, which loading cuts off.
pub fn append_blocking(journal: &Path, frames: &[u8]) -> Result<u64, PersistError> {
    let created = !journal.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .map_err(io_error("open", journal))?;
    file.write_all(frames).map_err(io_error("write", journal))?;
    file.sync_data().map_err(io_error("fdatasync", journal))?;
    if created {
        let dir = parent_dir(journal);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("fsync directory", dir))?;
    }
    file.metadata()
        .map(|m| m.len())
        .map_err(io_error("stat", journal))
}

/// Empties the journal (after the full file was rewritten to cover it).
///
/// # Errors
/// [`PersistError::Io`].
pub fn reset_blocking(journal: &Path) -> Result<(), PersistError> {
    match File::options().write(true).open(journal) {
        Ok(file) => {
            file.set_len(0).map_err(io_error("truncate", journal))?;
            file.sync_all().map_err(io_error("fsync", journal))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("open", journal)(e)),
    }
}

/// Folds a table's journal into its full file: writes `full` (the whole table) to `file`
/// atomically, then empties `file`'s journal, in that order, so a crash in between leaves
/// records the file already covers (skipped at load by their version), never a gap. Returns
/// the full file's size.
///
/// # Errors
/// [`PersistError`] of the failed step; the journal is emptied only after the file is whole.
pub fn fold_blocking<T: Serialize + ?Sized>(file: &Path, full: &T) -> Result<u64, PersistError> {
    persist::write_json_atomic(file, full)?;
    reset_blocking(&journal_path(file))?;
    std::fs::metadata(file)
        .map(|m| m.len())
        .map_err(io_error("stat", file))
}

/// Every whole record in the journal, in order; a missing journal has none. A torn or damaged
/// tail (a crash during an append that was never acknowledged) ends the journal and is cut
/// off the file, so later appends follow the last good record.
///
/// # Errors
/// [`PersistError::Io`]; [`PersistError::Corrupt`] for a record whose CRC holds but whose JSON
/// does not parse (a format bug, not a torn write).
pub fn read_blocking<V: DeserializeOwned>(journal: &Path) -> Result<Vec<Record<V>>, PersistError> {
    let mut bytes = Vec::new();
    match File::open(journal) {
        Ok(mut file) => file
            .read_to_end(&mut bytes)
            .map_err(io_error("read", journal))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("open", journal)(e)),
    };
    let (records, valid) = decode_all(journal, &bytes)?;
    if valid < bytes.len() {
        tracing::warn!(
            journal = %journal.display(),
            kept = valid,
            cut = bytes.len() - valid,
            "journal has a torn tail; cutting it off"
        );
        let file = File::options()
            .write(true)
            .open(journal)
            .map_err(io_error("open", journal))?;
        file.set_len(valid as u64)
            .map_err(io_error("truncate", journal))?;
        file.sync_all().map_err(io_error("fsync", journal))?;
    }
    Ok(records)
}

/// Decodes whole frames from the start of `bytes`; returns them and how many bytes they span.
///
/// # Errors
/// [`PersistError::Corrupt`] for a frame whose CRC holds but whose JSON does not parse.
pub fn decode_all<V: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<Record<V>>, usize), PersistError> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + FRAME_HEADER_BYTES) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > JOURNAL_RECORD_BYTES_MAX {
            break;
        }
        let start = at + FRAME_HEADER_BYTES;
        let Some(json) = bytes.get(start..start + len) else {
            break;
        };
        if crc32fast::hash(json) ^ JOURNAL_CRC_XOR != crc {
            break;
        }
        let record = serde_json::from_slice(json).map_err(|e| PersistError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("journal record at byte {at}: {e}"),
        })?;
        records.push(record);
        at = start + len;
    }
    assert!(at <= bytes.len());
    Ok((records, at))
}

/// Whether a journal of `journal_bytes` should be folded into the full file, whose last
/// rewrite was `full_file_bytes` long: when the journal outgrows both the floor and the full
/// file, so each rewrite (O(table)) is paid for by at least as many bytes of changes, and the
/// cost per change stays O(change) amortised.
#[must_use]
pub fn should_compact(journal_bytes: u64, full_file_bytes: u64) -> bool {
    journal_bytes >= JOURNAL_COMPACT_BYTES_MIN.max(full_file_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::persist::test_dir;

    fn record(counter: i64, name: &str) -> Record<u32> {
        Record {
            data_version: DataVersion {
                counter,
                state_version: 0,
                timestamp: 7,
            },
            changes: vec![
                Change::Put {
                    name: name.to_owned(),
                    value: 5,
                },
                Change::Delete {
                    name: "gone".to_owned(),
                },
            ],
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut_off() {
        let dir = test_dir("journal-torn");
        let journal = journal_path(&dir.join("t.json"));
        assert!(read_blocking::<u32>(&journal).expect("missing").is_empty());
        let frames = [
            encode(&journal, &record(1, "a")).expect("encode"),
            encode(&journal, &record(2, "b")).expect("encode"),
        ]
        .concat();
        append_blocking(&journal, &frames).expect("append");
        let third = encode(&journal, &record(3, "c")).expect("encode");
        let whole = append_blocking(&journal, &third[..third.len() - 3]).expect("torn append");
        assert_eq!(whole as usize, frames.len() + third.len() - 3);
        let read: Vec<Record<u32>> = read_blocking(&journal).expect("read");
        assert_eq!(read, vec![record(1, "a"), record(2, "b")]);
        assert_eq!(
            std::fs::metadata(&journal).expect("stat").len() as usize,
            frames.len(),
            "torn tail cut"
        );
        append_blocking(&journal, &third).expect("append after cut");
        let read: Vec<Record<u32>> = read_blocking(&journal).expect("read");
        assert_eq!(read.len(), 3);
        reset_blocking(&journal).expect("reset");
        assert!(read_blocking::<u32>(&journal).expect("read").is_empty());
    }

    #[test]
    fn damaged_frames_end_the_journal() {
        let path = Path::new("x");
        let good = encode(path, &record(1, "a")).expect("encode");
        let mut damaged = good.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x20;
        let (records, used) = decode_all::<u32>(path, &damaged).expect("decode");
        assert!(records.is_empty());
        assert_eq!(used, 0);
        let zeros = vec![0_u8; 64];
        assert_eq!(decode_all::<u32>(path, &zeros).expect("zeros").1, 0);
        let huge = [u32::MAX.to_le_bytes(), 0_u32.to_le_bytes()].concat();
        assert_eq!(decode_all::<u32>(path, &huge).expect("huge").1, 0);
    }

    #[test]
    fn compaction_waits_for_the_journal_to_outgrow_the_table() {
        assert!(!should_compact(10, 0));
        assert!(should_compact(JOURNAL_COMPACT_BYTES_MIN, 10));
        assert!(!should_compact(
            JOURNAL_COMPACT_BYTES_MIN * 2,
            JOURNAL_COMPACT_BYTES_MIN * 3
        ));
        assert!(should_compact(
            JOURNAL_COMPACT_BYTES_MIN * 3,
            JOURNAL_COMPACT_BYTES_MIN * 3
        ));
    }
}
