//! The master side of replication: the log's raw bytes from an entry boundary, in chunks of
//! whole entries, and the header of the entry at an offset (for divergence checks).
//!
//! Owns [`LogChunk`], [`ShipLimit`], `read_log`, `entry_header_at` and the range read under
//! them: bytes at or above the tail ring's floor are copied out of the ring, older ones come
//! from the segment file with one aligned O_DIRECT read, trimmed. A chunk is built from a read
//! of at most its size (one entry if that is larger), so memory does not depend on the backlog.
//! Every entry shipped is fully validated (length, CRC, own offset): the pair check of the one
//! made when it was placed.
//!
//! Must never: ship a partial entry, bytes past the chosen limit (appended or durable), a
//! filler's unused span (a filler ships as its 16-byte header), or read disk bytes past the
//! written mark.

use bytes::Bytes;

use super::read::read_disk;
use super::record::{
    parse_entry, peek_header, Entry, EntryHeader, ParseError, FILLER_BYTES, RECORD_HEADER_BYTES,
};
use super::{CommitLog, Inner};
use crate::error::{Result, StorageError};
use crate::limits::REPLICATION_CHUNK_BYTES_MAX;

/// How far a chunk may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipLimit {
    /// Up to the append mark: what readers see (the usual choice; the slave acks back).
    Appended,
    /// Up to the durable mark: only what a completed fdatasync covers.
    Durable,
}

/// Whole entries read from the log for shipping to a slave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Log offset of the first entry.
    pub from: u64,
    /// The entries back to back as shipped: records whole, a filler as its 16-byte header.
    pub bytes: Bytes,
    /// Offset after the last entry (past a filler: its segment's end); `from` when empty.
    pub next_offset: u64,
    /// Entries in the chunk (fillers included).
    pub entries: u32,
}

impl LogChunk {
    fn empty(from: u64) -> Self {
        Self {
            from,
            bytes: Bytes::new(),
            next_offset: from,
            entries: 0,
        }
    }

    /// True when the chunk holds no entry (nothing new up to the limit).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

impl CommitLog {
    /// Reads whole entries from `from` (an entry boundary) up to `limit`, at most `max_bytes`
    /// of them (clamped to [`REPLICATION_CHUNK_BYTES_MAX`]) unless the first entry alone is
    /// larger, in which case that entry comes whole. A chunk never crosses a segment end: a
    /// filler is its last entry. Empty when `from` is the limit, or when the first entry is not
    /// complete below it (a durable mark inside an entry).
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] if `from` is outside `[min_offset, limit]`;
    /// [`StorageError::NotAnEntry`] if no valid entry starts at `from`;
    /// [`StorageError::Corrupt`] if a later entry fails validation; [`StorageError::Io`].
    pub async fn read_log(
        &self,
        from: u64,
        max_bytes: usize,
        limit: ShipLimit,
    ) -> Result<LogChunk> {
        let inner = &self.inner;
        let max_bytes = max_bytes.clamp(1, REPLICATION_CHUNK_BYTES_MAX) as u64;
        let (end, segment_end) = {
            let state = inner.state.borrow();
            let limit_end = match limit {
                ShipLimit::Appended => state.appended,
                ShipLimit::Durable => state.durable.min(state.appended),
            };
            let min_offset = state.min_offset();
            if from < min_offset || from > limit_end {
                return Err(StorageError::OffsetOutOfRange {
                    offset: from,
                    min_offset,
                    max_offset: limit_end,
                });
            }
            if from == limit_end {
                return Ok(LogChunk::empty(from));
            }
            let segment = state
                .segments
                .iter()
                .find(|s| s.contains(from))
                .expect("an offset below the append mark lies in a segment");
            (limit_end.min(segment.end()), segment.end())
        };
        // At least a record header, so a too-large first entry is known by its length.
        let want = max_bytes.max(RECORD_HEADER_BYTES as u64).min(end - from);
        let bytes = inner.read_range(from, from + want).await?;
        match self.take_entries(&bytes, from, segment_end)? {
            Taken::Entries {
                bytes_len,
                next_offset,
                entries,
            } => Ok(LogChunk {
                from,
                bytes: bytes.slice(..bytes_len),
                next_offset,
                entries,
            }),
            Taken::FirstNeeds(total_len) => {
                self.read_first_entry(from, total_len, end, segment_end)
                    .await
            }
        }
    }

    /// The chunk of the single entry at `from` that needs `total_len` bytes, more than the
    /// first read: read exactly it if it is complete below `end`; empty if it completes only
    /// past the limit (a durable mark inside it).
    async fn read_first_entry(
        &self,
        from: u64,
        total_len: u64,
        end: u64,
        segment_end: u64,
    ) -> Result<LogChunk> {
        if total_len > segment_end - from {
            return Err(not_an_entry(from, "entry would cross its segment end"));
        }
        if from + total_len > end {
            return Ok(LogChunk::empty(from));
        }
        let bytes = self.inner.read_range(from, from + total_len).await?;
        match self.take_entries(&bytes, from, segment_end)? {
            Taken::Entries {
                bytes_len,
                next_offset,
                entries,
            } => {
                assert_eq!(entries, 1, "exactly the first entry was read");
                Ok(LogChunk {
                    from,
                    bytes: bytes.slice(..bytes_len),
                    next_offset,
                    entries,
                })
            }
            Taken::FirstNeeds(_) => Err(not_an_entry(from, "entry length changed")),
        }
    }

    /// The header of the entry at `offset` (an entry boundary below the append mark): its
    /// span, generation and stored CRC, read from at most 64 bytes (the record's CRC is not
    /// verified: [`CommitLog::read_log`] does that).
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] outside `[min_offset, appended)`;
    /// [`StorageError::NotAnEntry`] if no entry starts there; [`StorageError::Io`].
    pub async fn entry_header_at(&self, offset: u64) -> Result<EntryHeader> {
        let inner = &self.inner;
        let (to, segment_end) = {
            let state = inner.state.borrow();
            let min_offset = state.min_offset();
            if offset < min_offset || offset >= state.appended {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    min_offset,
                    max_offset: state.appended,
                });
            }
            let segment = state
                .segments
                .iter()
                .find(|s| s.contains(offset))
                .expect("an offset below the append mark lies in a segment");
            let to = (offset + RECORD_HEADER_BYTES as u64)
                .min(state.appended)
                .min(segment.end());
            (to, segment.end())
        };
        let bytes = inner.read_range(offset, to).await?;
        let header = peek_header(&bytes, offset, inner.config.record_size_max_bytes)
            .map_err(|error| not_an_entry(offset, &describe(&error)))?;
        let fits = match header.kind {
            super::EntryKind::Record => header.end() <= segment_end,
            super::EntryKind::Filler => header.end() == segment_end,
        };
        if !fits {
            return Err(not_an_entry(offset, "entry does not fit its segment"));
        }
        Ok(header)
    }

    /// Splits the whole, valid entries off the front of `bytes` (read at log offset `from`).
    fn take_entries(&self, bytes: &[u8], from: u64, segment_end: u64) -> Result<Taken> {
        let record_max = self.inner.config.record_size_max_bytes;
        let mut at = 0usize;
        let mut offset = from;
        let mut entries = 0u32;
        while at < bytes.len() {
            match parse_entry(&bytes[at..], offset, record_max) {
                Ok(Entry::Record(view)) => {
                    at += view.total_len as usize;
                    offset += u64::from(view.total_len);
                    entries += 1;
                }
                Ok(Entry::Filler { total_len, .. }) => {
                    if offset + total_len != segment_end {
                        return Err(self.invalid_at(
                            entries,
                            offset,
                            "filler misses its segment end",
                        ));
                    }
                    at += FILLER_BYTES;
                    offset = segment_end;
                    entries += 1;
                    break;
                }
                Err(ParseError::NeedMore { total_len }) if entries == 0 => {
                    return Ok(Taken::FirstNeeds(total_len));
                }
                Err(ParseError::NeedMore { .. }) => break,
                Err(ParseError::Invalid(reason)) => {
                    return Err(self.invalid_at(entries, offset, &reason));
                }
            }
        }
        assert!(offset <= segment_end, "entries stay inside their segment");
        Ok(Taken::Entries {
            bytes_len: at,
            next_offset: offset,
            entries,
        })
    }

    /// The error for an invalid entry: a bad start offset if it is the first one, else
    /// damaged bytes inside the log.
    fn invalid_at(&self, entries_before: u32, offset: u64, reason: &str) -> StorageError {
        if entries_before == 0 {
            return not_an_entry(offset, reason);
        }
        StorageError::Corrupt {
            path: self.inner.dir.clone(),
            offset,
            reason: format!("entry after a valid one: {reason}"),
        }
    }
}

/// What [`CommitLog::take_entries`] found.
enum Taken {
    /// `entries` whole entries in `bytes[..bytes_len]`, ending at log offset `next_offset`.
    Entries {
        bytes_len: usize,
        next_offset: u64,
        entries: u32,
    },
    /// The first entry needs this many bytes, more than were read.
    FirstNeeds(u64),
}

impl Inner {
    /// The log bytes `[from, to)` (below the append mark, inside one segment): the part at or
    /// above the ring floor copied out of the ring first (no await in between), then the part
    /// below it read from the segment file (written there, never changed again).
    pub(super) async fn read_range(&self, from: u64, to: u64) -> Result<Bytes> {
        assert!(from <= to, "range inverted");
        let (ring_part, disk) = {
            let state = self.state.borrow();
            assert!(to <= state.appended, "reads stay below the append mark");
            let floor = self.ring_floor(&state);
            let ring_from = floor.clamp(from, to);
            let ring_part = (ring_from < to).then(|| {
                let len = usize::try_from(to - ring_from).expect("a chunk fits memory");
                self.ring.read_to_vec(ring_from, len)
            });
            let disk = (from < ring_from).then(|| {
                assert!(
                    ring_from <= state.written,
                    "bytes below the ring floor are written"
                );
                let segment = state
                    .segments
                    .iter()
                    .find(|s| s.contains(from))
                    .expect("an offset below the append mark lies in a segment");
                assert!(to <= segment.end(), "a range read stays in one segment");
                (std::rc::Rc::clone(&segment.file), segment.start, ring_from)
            });
            (ring_part, disk)
        };
        let Some((file, segment_start, disk_end)) = disk else {
            return Ok(ring_part.map_or_else(Bytes::new, Bytes::from));
        };
        let on_disk =
            read_disk(&file, segment_start, from, disk_end - from, self.alignment).await?;
        assert_eq!(
            on_disk.len() as u64,
            disk_end - from,
            "the disk part read whole"
        );
        // Usually all of a catch-up chunk is on disk: its bytes are returned without a copy.
        let Some(ring_part) = ring_part else {
            return Ok(on_disk);
        };
        let mut out = Vec::with_capacity(on_disk.len() + ring_part.len());
        out.extend_from_slice(&on_disk);
        out.extend_from_slice(&ring_part);
        Ok(Bytes::from(out))
    }
}

fn describe(error: &ParseError) -> String {
    match error {
        ParseError::NeedMore { total_len } => {
            format!("header claims {total_len} bytes past the data")
        }
        ParseError::Invalid(reason) => reason.clone(),
    }
}

fn not_an_entry(offset: u64, reason: &str) -> StorageError {
    StorageError::NotAnEntry {
        offset,
        reason: reason.to_string(),
    }
}
