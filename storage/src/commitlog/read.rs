//! The CommitLog read path: recent records from the tail ring, older ones with O_DIRECT reads.
//!
//! Owns [`StoredRecord`], [`ReadBatch`], `read` (one record by offset) and `read_batch` (records
//! from an offset, for reput and replay; replication ships raw entries: `ship.rs`). Reads from disk are aligned (the buffer is sized
//! to the request, at most [`READ_BATCH_BYTES_MAX`] plus a record) and trimmed to the record, so
//! memory use does not depend on the backlog. Every record read is validated (pair assertion
//! with the checks before writing): from the ring a failure is a bug (panic), from disk it is
//! [`StorageError::Corrupt`].
//!
//! Must never: read through the page cache, return bytes past the append mark, or read disk
//! bytes past the written mark.

use std::rc::Rc;

use bytes::Bytes;

use super::record::{
    parse_entry, peek_total_len, Entry, ParseError, RecordView, FILLER_BYTES, FILLER_MAGIC,
    RECORD_HEADER_BYTES,
};
use super::{CommitLog, Inner, State};
use crate::align::{align_down, align_up, AlignedBuf};
use crate::error::{Result, StorageError};
use crate::file::DirectFile;
use crate::limits::{READ_BATCH_BYTES_MAX, READ_SPAN_BYTES_MAX};

/// A record read back from the log (owned; the fields are slices of `raw`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Log offset of the record.
    pub phys_offset: u64,
    /// Encoded size in bytes.
    pub size: u32,
    /// Generation (log open count) that wrote it.
    pub generation: u32,
    /// RocketMQ `MessageSysFlag` as stored.
    pub sys_flag: i32,
    /// Queue id.
    pub queue_id: i32,
    /// Offset in the consume queue.
    pub queue_offset: i64,
    /// Tags hash.
    pub tags_code: i64,
    /// Store time, ms since the epoch.
    pub store_timestamp_ms: i64,
    /// Topic bytes.
    pub topic: Bytes,
    /// Space-separated index keys.
    pub keys: Bytes,
    /// Opaque payload.
    pub payload: Bytes,
    /// The whole encoded record as stored (for replication and byte-for-byte checks).
    pub raw: Bytes,
}

impl StoredRecord {
    fn from_raw(raw: Bytes, view: &RecordView<'_>) -> Self {
        let base = raw.as_ptr() as usize;
        let range = |field: &[u8]| {
            let start = field.as_ptr() as usize - base;
            raw.slice(start..start + field.len())
        };
        Self {
            phys_offset: view.phys_offset,
            size: view.total_len,
            generation: view.generation,
            sys_flag: view.sys_flag,
            queue_id: view.queue_id,
            queue_offset: view.queue_offset,
            tags_code: view.tags_code,
            store_timestamp_ms: view.store_timestamp_ms,
            topic: range(view.topic),
            keys: range(view.keys),
            payload: range(view.payload),
            raw: raw.clone(),
        }
    }

    /// End offset (`phys_offset + size`).
    #[must_use]
    pub fn end_offset(&self) -> u64 {
        self.phys_offset + u64::from(self.size)
    }
}

/// Records read from an offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// Records in log order.
    pub records: Vec<StoredRecord>,
    /// Where the next batch starts (past the last record, or past a segment's filler).
    pub next_offset: u64,
}

/// Where the bytes of an offset can be read right now.
enum Source {
    Ring,
    Disk {
        file: Rc<DirectFile>,
        segment_start: u64,
        data_end: u64,
    },
}

impl CommitLog {
    /// Reads the record at `phys_offset`. `size_hint` (e.g. from a consume-queue unit) lets a
    /// disk read fetch it in one go.
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] outside `[min_offset, appended)`;
    /// [`StorageError::Corrupt`] if the bytes there are not a valid record (wrong offset, filler,
    /// bad CRC on disk); [`StorageError::Io`].
    pub async fn read(&self, phys_offset: u64, size_hint: Option<u32>) -> Result<StoredRecord> {
        let inner = &self.inner;
        let record_max = inner.config.record_size_max_bytes;
        let bytes = match inner.source(phys_offset)? {
            Source::Ring => inner.ring_record_bytes(phys_offset)?,
            Source::Disk {
                file,
                segment_start,
                data_end,
            } => {
                let first = size_hint
                    .map_or(inner.alignment as u64, u64::from)
                    .max(FILLER_BYTES as u64);
                let want = first.min(data_end - phys_offset);
                let bytes =
                    read_disk(&file, segment_start, phys_offset, want, inner.alignment).await?;
                match parse_entry(&bytes, phys_offset, record_max) {
                    Err(ParseError::NeedMore { total_len })
                        if total_len <= data_end - phys_offset =>
                    {
                        read_disk(
                            &file,
                            segment_start,
                            phys_offset,
                            total_len,
                            inner.alignment,
                        )
                        .await?
                    }
                    _ => bytes,
                }
            }
        };
        match parse_entry(&bytes, phys_offset, record_max) {
            Ok(Entry::Record(view)) => {
                let raw = bytes.slice(..view.total_len as usize);
                Ok(StoredRecord::from_raw(raw, &view))
            }
            Ok(Entry::Filler { .. }) => Err(not_a_record(phys_offset, "end-of-segment filler")),
            Err(error) => Err(not_a_record(phys_offset, &format!("{error:?}"))),
        }
    }

    /// Reads the records at `wanted` (offset and size, ascending offsets: one queue's
    /// consume-queue entries). Records close together on disk come from one O_DIRECT read that
    /// covers them and the gaps between (at most [`READ_SPAN_BYTES_MAX`], never past the written
    /// mark or a segment end); the others are read one by one as [`CommitLog::read`] does. One
    /// result per wanted record, in order: the same as `read(offset, Some(size))` would give.
    pub async fn read_many(&self, wanted: &[(u64, u32)]) -> Vec<Result<StoredRecord>> {
        let inner = &self.inner;
        let mut out = Vec::with_capacity(wanted.len());
        let mut at = 0;
        while at < wanted.len() {
            let (first, first_size) = wanted[at];
            let mut last = at;
            let mut span = None;
            if let Ok(Source::Disk {
                file,
                segment_start,
                data_end,
            }) = inner.source(first)
            {
                let mut end = first + u64::from(first_size);
                while let Some(&(next, size)) = wanted.get(last + 1) {
                    let next_end = next + u64::from(size);
                    let fits = next >= end
                        && next_end <= data_end
                        && next_end - first <= READ_SPAN_BYTES_MAX;
                    if !fits {
                        break;
                    }
                    last += 1;
                    end = next_end;
                }
                if last > at && end <= data_end {
                    let read = read_disk(&file, segment_start, first, end - first, inner.alignment);
                    span = read.await.ok();
                }
            }
            match span {
                Some(bytes) => {
                    for &(phys_offset, size) in &wanted[at..=last] {
                        let record = match self.record_in_span(&bytes, first, phys_offset, size) {
                            Some(record) => Ok(record),
                            // Not a valid record of exactly `size` bytes: `read` decides.
                            None => self.read(phys_offset, Some(size)).await,
                        };
                        out.push(record);
                    }
                    at = last + 1;
                }
                // Ring, a lone record, or a failed span read: one by one (errors per record).
                None => {
                    out.push(self.read(first, Some(first_size)).await);
                    at += 1;
                }
            }
        }
        out
    }

    /// The record at `phys_offset` inside `span` (bytes read from `span_start`) if a valid
    /// record of exactly `size` bytes starts there; `None` otherwise (the caller falls back to
    /// [`CommitLog::read`], which treats the size as a hint and reports what is wrong).
    fn record_in_span(
        &self,
        span: &Bytes,
        span_start: u64,
        phys_offset: u64,
        size: u32,
    ) -> Option<StoredRecord> {
        let begin = usize::try_from(phys_offset - span_start).expect("span fits memory");
        let bytes = span.slice(begin..begin + size as usize);
        match parse_entry(&bytes, phys_offset, self.inner.config.record_size_max_bytes) {
            Ok(Entry::Record(view)) if view.total_len == size => {
                let raw = bytes.slice(..view.total_len as usize);
                Some(StoredRecord::from_raw(raw, &view))
            }
            _ => None,
        }
    }

    /// Reads records from `from` (a record start or a filler), up to about `max_bytes` (at least
    /// one record if any is available, at most [`READ_BATCH_BYTES_MAX`]). Stops at the append
    /// mark and at a segment end (`next_offset` then points at the next segment).
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] if `from` is outside `[min_offset, appended]`;
    /// [`StorageError::Corrupt`] for invalid bytes on disk; [`StorageError::Io`].
    pub async fn read_batch(&self, from: u64, max_bytes: usize) -> Result<ReadBatch> {
        let inner = &self.inner;
        if from == self.appended_offset() {
            return Ok(ReadBatch {
                records: Vec::new(),
                next_offset: from,
            });
        }
        let max_bytes = max_bytes.clamp(1, READ_BATCH_BYTES_MAX) as u64;
        match inner.source(from)? {
            Source::Ring => inner.ring_batch(from, max_bytes),
            Source::Disk {
                file,
                segment_start,
                data_end,
            } => {
                let want = max_bytes
                    .max(RECORD_HEADER_BYTES as u64)
                    .min(data_end - from);
                let bytes = read_disk(&file, segment_start, from, want, inner.alignment).await?;
                let mut batch = parse_batch(inner, &bytes, from, data_end, max_bytes)?;
                if batch.records.is_empty() && batch.next_offset == from {
                    // The first record is larger than the request: read exactly it.
                    let total = peek_total_len(&bytes).map_or(0, u64::from);
                    if total == 0 || total > data_end - from {
                        return Err(not_a_record(from, "record length past the written data"));
                    }
                    let bytes =
                        read_disk(&file, segment_start, from, total, inner.alignment).await?;
                    batch = parse_batch(inner, &bytes, from, data_end, total)?;
                }
                Ok(batch)
            }
        }
    }
}

impl Inner {
    /// Lowest offset currently served from the ring.
    pub(super) fn ring_floor(&self, state: &State) -> u64 {
        let block = self.alignment as u64;
        let lap = align_up(state.appended, block).saturating_sub(self.ring.capacity() as u64);
        state.cache_floor.max(lap)
    }

    fn source(&self, offset: u64) -> Result<Source> {
        let state = self.state.borrow();
        let min_offset = state.min_offset();
        if offset < min_offset || offset >= state.appended {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                min_offset,
                max_offset: state.appended,
            });
        }
        if offset >= self.ring_floor(&state) {
            return Ok(Source::Ring);
        }
        let segment = state
            .segments
            .iter()
            .find(|s| s.contains(offset))
            .expect("offset within the segments");
        // Below the ring floor everything up to `written` is on disk; never read past it.
        let data_end = segment.end().min(state.written);
        assert!(
            offset < data_end,
            "an offset below the ring floor is written"
        );
        Ok(Source::Disk {
            file: Rc::clone(&segment.file),
            segment_start: segment.start,
            data_end,
        })
    }

    /// Copies the entry at `offset` out of the ring: 16 bytes for a filler, else the record
    /// length its header claims (bounded by the append mark and the record maximum).
    fn ring_record_bytes(&self, offset: u64) -> Result<Bytes> {
        let appended = self.state.borrow().appended;
        let mut head = [0u8; FILLER_BYTES];
        self.ring.read(offset, &mut head);
        let length = if head[8..12] == FILLER_MAGIC.to_le_bytes() {
            FILLER_BYTES as u64
        } else {
            let total = u64::from(peek_total_len(&head).expect("16 bytes"));
            let fits = offset + total <= appended;
            if total < RECORD_HEADER_BYTES as u64
                || total > u64::from(self.config.record_size_max_bytes)
                || !fits
            {
                return Err(not_a_record(offset, "no record starts here"));
            }
            total
        };
        let mut bytes = vec![0u8; length as usize];
        self.ring.read(offset, &mut bytes);
        Ok(Bytes::from(bytes))
    }

    /// Whole records from `from` out of the ring, at most `max_bytes` of them (the first one
    /// whole whatever its size): one copy of the batch's bytes out of the ring, the records are
    /// slices of it (a copy and an allocation per record made the reput of a catching-up slave
    /// a third of its CPU).
    fn ring_batch(&self, from: u64, max_bytes: u64) -> Result<ReadBatch> {
        let appended = self.state.borrow().appended;
        let window = (appended - from).min(max_bytes);
        if window == 0 {
            return Ok(ReadBatch {
                records: Vec::new(),
                next_offset: from,
            });
        }
        let bytes = self
            .ring
            .read_to_vec(from, usize::try_from(window).expect("a batch fits memory"));
        let batch = parse_batch(self, &Bytes::from(bytes), from, from + window, max_bytes)?;
        if batch.next_offset > from {
            return Ok(batch);
        }
        // The first record alone is larger than `max_bytes`: exactly it.
        let raw = self.ring_record_bytes(from)?;
        let len = raw.len() as u64;
        let batch = parse_batch(self, &raw, from, from + len, len)?;
        assert!(batch.next_offset > from, "the first entry read whole");
        Ok(batch)
    }
}

/// Parses consecutive entries of `bytes` (starting at log offset `from`) into a batch.
fn parse_batch(
    inner: &Inner,
    bytes: &Bytes,
    from: u64,
    data_end: u64,
    max_bytes: u64,
) -> Result<ReadBatch> {
    let mut batch = ReadBatch {
        records: Vec::new(),
        next_offset: from,
    };
    let mut at = from;
    let limit = (bytes.len() as u64).min(data_end - from);
    while at - from < limit && at - from < max_bytes {
        let offset_in = (at - from) as usize;
        match parse_entry(
            &bytes[offset_in..limit as usize],
            at,
            inner.config.record_size_max_bytes,
        ) {
            Ok(Entry::Record(view)) => {
                let size = u64::from(view.total_len);
                let raw = bytes.slice(offset_in..offset_in + size as usize);
                batch.records.push(StoredRecord::from_raw(raw, &view));
                at += size;
            }
            Ok(Entry::Filler { total_len, .. }) => {
                at += total_len;
                break;
            }
            Err(ParseError::NeedMore { .. }) => break,
            Err(ParseError::Invalid(reason)) => return Err(not_a_record(at, &reason)),
        }
    }
    batch.next_offset = at;
    Ok(batch)
}

/// O_DIRECT read of `[offset, offset + len)` of a segment: aligned read, trimmed.
pub(super) async fn read_disk(
    file: &DirectFile,
    segment_start: u64,
    offset: u64,
    len: u64,
    alignment: usize,
) -> Result<Bytes> {
    let block = alignment as u64;
    let file_pos = offset - segment_start;
    let aligned_start = align_down(file_pos, block);
    let aligned_end = align_up(file_pos + len, block);
    let span = (aligned_end - aligned_start) as usize;
    // A recycled buffer: a catch-up or cold pull reads MiBs per call, and a fresh block would
    // be faulted in and cleared page by page by the read itself.
    let buffer = AlignedBuf::for_read(span, alignment);
    let (result, buffer) = file.read_exact_at(buffer, aligned_start, span).await;
    result?;
    let skip = (file_pos - aligned_start) as usize;
    if buffer.len() < skip + len as usize {
        return Err(StorageError::Corrupt {
            path: file.path().to_path_buf(),
            offset,
            reason: format!("segment file ends before offset {}", offset + len),
        });
    }
    // No copy: the aligned buffer becomes the `Bytes` (a catch-up chunk is MiBs).
    Ok(buffer.into_bytes(skip, skip + len as usize))
}

fn not_a_record(offset: u64, reason: &str) -> StorageError {
    StorageError::NotARecord {
        offset,
        reason: reason.to_string(),
    }
}
