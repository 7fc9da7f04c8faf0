//! The slave side of replication in the CommitLog: checking a chunk of shipped entries against
//! this log, and placing them verbatim at the offsets they carry.
//!
//! Owns [`ReplicatedEntry`], `check_replicated` (pure against the current state: every entry
//! parses with its CRC and own offset, generations never decrease, records stay inside this
//! log's segments and fillers end exactly at them) and `place_replicated` (one entry at the
//! append mark into the tail ring; the flusher writes it like any append). A filler seals the
//! active segment at its offset; the next entry rolls to the next segment, which must start
//! exactly there, so the slave's segment files line up with the master's.
//!
//! Must never: place an entry that was not checked against the state it lands in, encode
//! anything itself (the bytes are the master's, byte for byte), or let a record straddle a
//! segment end.

use super::record::{
    parse_entry, Entry, EntryHeader, EntryKind, ParseError, RecordView, FILLER_BYTES,
};
use super::{CommitLog, Inner, NextSegment, State, Want};
use crate::error::{ReplicationRefusal, Result, StorageError};
use crate::limits::{LOCAL_OFFSET_LIMIT, REPLICATION_CHUNK_BYTES_MAX};

/// One entry of a replicated chunk, checked by [`CommitLog::check_replicated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicatedEntry<'a> {
    /// Where it goes and what it is.
    pub header: EntryHeader,
    /// Its bytes as shipped (a record whole, a filler's 16-byte header).
    pub bytes: &'a [u8],
    /// The record's fields; `None` for a filler.
    pub record: Option<RecordView<'a>>,
}

impl CommitLog {
    /// Parses `bytes` (entries as [`CommitLog::read_log`] ships them) as the continuation of
    /// this log at `offset`, checking every entry before anything is placed: it parses (length,
    /// CRC, own offset, padding), its generation is not below the previous entry's, a record
    /// stays inside this log's segment and a filler ends exactly at it (so master and slave
    /// segment sizes must agree), and a filler spans no more than a record.
    ///
    /// # Errors
    /// [`StorageError::ReplicationGap`] if `offset` is not the append mark;
    /// [`StorageError::ReplicationRefused`] naming the first entry that fails;
    /// [`StorageError::Poisoned`], [`StorageError::Closed`].
    pub fn check_replicated<'a>(
        &self,
        offset: u64,
        bytes: &'a [u8],
    ) -> Result<Vec<ReplicatedEntry<'a>>> {
        let inner = &self.inner;
        let record_max = inner.config.record_size_max_bytes;
        let state = inner.state.borrow();
        state.usable()?;
        if offset != state.appended {
            return Err(StorageError::ReplicationGap {
                expected: state.appended,
                got: offset,
            });
        }
        let chunk_max = REPLICATION_CHUNK_BYTES_MAX.max(record_max as usize);
        if bytes.len() > chunk_max {
            return Err(refused(
                offset,
                ReplicationRefusal::ChunkTooLarge {
                    len: bytes.len(),
                    max: chunk_max,
                },
            ));
        }
        let mut segment_end = state
            .segments
            .back()
            .expect("an active segment always exists")
            .end();
        let mut last_generation = state.generations.last();
        drop(state);
        let mut entries = Vec::new();
        let mut at = 0usize;
        let mut log = offset;
        while at < bytes.len() {
            if log == segment_end {
                segment_end += inner.config.segment_size_bytes;
            }
            let (header, record) = parse_shipped(&bytes[at..], log, record_max)?;
            check_geometry(&header, segment_end, record_max)?;
            if header.generation < last_generation {
                let refusal = ReplicationRefusal::GenerationDecreased {
                    last: last_generation,
                    got: header.generation,
                };
                return Err(refused(log, refusal));
            }
            if header.end() > LOCAL_OFFSET_LIMIT {
                let refusal = ReplicationRefusal::InvalidField {
                    field: "phys_offset",
                    reason: format!("past the local offset limit {LOCAL_OFFSET_LIMIT}"),
                };
                return Err(refused(log, refusal));
            }
            last_generation = header.generation;
            let shipped = usize::try_from(header.shipped_len()).expect("bounded by the chunk");
            entries.push(ReplicatedEntry {
                header,
                bytes: &bytes[at..at + shipped],
                record,
            });
            at += shipped;
            log = header.end();
        }
        Ok(entries)
    }

    /// Places a checked entry at the append mark, waiting for room in the tail ring or for
    /// the next segment (an entry at a segment end rolls to it); returns the new append mark.
    /// The caller serialises appends and checks entries with
    /// [`CommitLog::check_replicated`] right before (no append in between).
    ///
    /// # Errors
    /// [`StorageError::DiskFull`] (or another preallocation error) when the next segment
    /// cannot be created; [`StorageError::Poisoned`]; [`StorageError::Closed`].
    ///
    /// # Panics
    /// If the entry does not continue the log (the caller skipped the check).
    pub async fn place_replicated(&self, entry: &ReplicatedEntry<'_>) -> Result<u64> {
        loop {
            if let Some(end) = self.try_place_replicated(entry)? {
                return Ok(end);
            }
            self.ready_for(Want::Entry(entry.header.span)).await?;
        }
    }

    fn try_place_replicated(&self, entry: &ReplicatedEntry<'_>) -> Result<Option<u64>> {
        let inner = &self.inner;
        let header = entry.header;
        let mut state = inner.state.borrow_mut();
        state.usable()?;
        assert_eq!(
            header.offset, state.appended,
            "replicated entry continues the log"
        );
        let (footprint, rolls) = inner.footprint_of(&state, Want::Entry(header.span));
        if !inner.has_room(&state, footprint) {
            return Ok(None);
        }
        if rolls {
            if !matches!(state.next, NextSegment::Ready(_)) {
                return Ok(None);
            }
            roll(&mut state);
        }
        inner.write_replicated(&state, entry);
        state.generations.appended(header.offset, header.generation);
        state.appended = header.end();
        let end = state.appended;
        drop(state);
        inner.appended_waiters.wake_all();
        if rolls {
            inner.start_preallocation();
        }
        inner.flusher_signal.notify();
        Ok(Some(end))
    }
}

/// Activates the prepared next segment (the active one is full: sealed by a filler, or filled
/// exactly by the master's last record).
fn roll(state: &mut State) {
    let NextSegment::Ready(next) = std::mem::replace(&mut state.next, NextSegment::Idle) else {
        unreachable!("the caller checked the next segment is ready");
    };
    let active = state.segments.back().expect("an active segment exists");
    if active.sealed_at.get().is_none() {
        active.sealed_at.set(Some(active.end()));
    }
    assert_eq!(
        next.start, state.appended,
        "next segment starts at the mark"
    );
    state.segments.push_back(next);
}

impl Inner {
    /// Copies a checked entry into the ring at its offset (a filler: its header, then zeros to
    /// the segment end) and reads it back (pair check).
    fn write_replicated(&self, state: &State, entry: &ReplicatedEntry<'_>) {
        let header = entry.header;
        let active = state.segments.back().expect("an active segment exists");
        assert!(
            active.contains(header.offset),
            "entry inside the active segment"
        );
        let inner = self;
        match header.kind {
            EntryKind::Record => {
                assert!(
                    header.end() <= active.end(),
                    "record would straddle segments"
                );
                inner.ring.write(header.offset, entry.bytes);
                let mut check = [0u8; FILLER_BYTES];
                inner.ring.read(header.offset, &mut check);
                assert_eq!(
                    check[..],
                    entry.bytes[..FILLER_BYTES],
                    "replicated record reads back from the ring as placed"
                );
                if cfg!(debug_assertions) {
                    let mut placed = vec![0u8; entry.bytes.len()];
                    inner.ring.read(header.offset, &mut placed);
                    let max = inner.config.record_size_max_bytes;
                    assert!(
                        matches!(
                            parse_entry(&placed, header.offset, max),
                            Ok(Entry::Record(_))
                        ),
                        "placed replicated record validates"
                    );
                }
            }
            EntryKind::Filler => {
                assert_eq!(header.end(), active.end(), "a filler ends its segment");
                inner
                    .ring
                    .write(header.offset, &entry.bytes[..FILLER_BYTES]);
                // The unused span is written as zeros, as after a local filler; checked to be
                // no longer than a record, so it fits the ring.
                let filler_end = header.offset + FILLER_BYTES as u64;
                inner
                    .ring
                    .zero(filler_end, (active.end() - filler_end) as usize);
                active.sealed_at.set(Some(header.offset));
            }
        }
    }
}

/// The entry at the front of `bytes` (shipped: a filler is its 16-byte header), at `offset`.
fn parse_shipped(
    bytes: &[u8],
    offset: u64,
    record_max: u32,
) -> Result<(EntryHeader, Option<RecordView<'_>>)> {
    match parse_entry(bytes, offset, record_max) {
        Ok(Entry::Record(view)) => Ok((record_header(&view), Some(view))),
        Ok(Entry::Filler {
            total_len,
            generation,
        }) => Ok((filler_header(bytes, offset, total_len, generation), None)),
        Err(ParseError::NeedMore { total_len }) => {
            let refusal = ReplicationRefusal::Incomplete {
                needed: total_len,
                available: bytes.len() as u64,
            };
            Err(refused(offset, refusal))
        }
        Err(ParseError::Invalid(reason)) => {
            Err(refused(offset, ReplicationRefusal::Malformed(reason)))
        }
    }
}

fn record_header(view: &RecordView<'_>) -> EntryHeader {
    EntryHeader {
        offset: view.phys_offset,
        span: u64::from(view.total_len),
        generation: view.generation,
        crc: view.crc,
        kind: EntryKind::Record,
    }
}

fn filler_header(bytes: &[u8], offset: u64, span: u64, generation: u32) -> EntryHeader {
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    EntryHeader {
        offset,
        span,
        generation,
        crc,
        kind: EntryKind::Filler,
    }
}

/// A record inside `[.., segment_end)`; a filler ending exactly at `segment_end` and no longer
/// than a record (the room check of its placement assumes it; no master writes a longer one).
fn check_geometry(header: &EntryHeader, segment_end: u64, record_max: u32) -> Result<()> {
    let refusal = match header.kind {
        EntryKind::Record if header.end() > segment_end => ReplicationRefusal::CrossesSegmentEnd {
            segment_end,
            entry_end: header.end(),
        },
        EntryKind::Filler if header.end() != segment_end || header.span > u64::from(record_max) => {
            ReplicationRefusal::FillerMisplaced {
                segment_end,
                filler_end: header.end(),
            }
        }
        EntryKind::Record | EntryKind::Filler => return Ok(()),
    };
    Err(refused(header.offset, refusal))
}

fn refused(offset: u64, refusal: ReplicationRefusal) -> StorageError {
    StorageError::ReplicationRefused { offset, refusal }
}
