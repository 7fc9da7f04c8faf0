//! Opening a CommitLog: find the segments, scan from the checkpoint validating every entry,
//! truncate the torn tail, make the recovered bytes durable, start a new generation.
//!
//! Owns [`open`], the recovery scan and [`RecoveryReport`]. The scan trusts only entries that
//! parse (length, magic, CRC, own offset) and whose generation never decreases along the log, so
//! a zero-filled, torn or stale tail ends it. Everything past the end is ignored (and overwritten
//! by later appends); segment files after the active one are removed, except one preallocated
//! next segment of the configured size.
//!
//! Must never: trust bytes past the first invalid entry, accept a checkpoint beyond the
//! segments on disk, or let a record be appended before the new generation's checkpoint and the
//! abort marker are durable.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use super::flush::{decode_checkpoint, encode_checkpoint, flusher_task, Checkpoint};
use super::generations::Generations;
use super::record::{parse_entry, Entry, ParseError};
use super::ring::Ring;
use super::segment::{parse_segment_file_name, preallocate, segment_file_name, Segment};
use super::wait::{Signal, WaitList};
use super::{
    CommitLog, CommitLogConfig, Inner, Lifecycle, NextSegment, State, Tasks,
    ABORT_MARKER_FILE_NAME, CHECKPOINT_FILE_NAME,
};
use crate::align::{align_down, align_up, AlignedBuf};
use crate::error::{Result, StorageError};
use crate::file::{io_alignment, Disk, OpenMode};
use crate::limits::RECOVERY_READ_CHUNK_BYTES;
use crate::offset_wait::OffsetWaiters;

/// What [`CommitLog::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// `false` if the abort marker was present (the last run did not close cleanly).
    pub clean_shutdown: bool,
    /// Offset the scan started from (the checkpoint's durable offset, or the first segment).
    pub scan_start: u64,
    /// Recovered end: the append mark after open.
    pub recovered_end: u64,
    /// Records validated by the scan.
    pub records_scanned: u64,
    /// Why the scan stopped before the end of the last segment (torn tail etc.), if it did.
    pub stop_reason: Option<String>,
    /// Generation of this open.
    pub generation: u32,
    /// Lowest offset stored.
    pub min_offset: u64,
    /// Segment files removed at open (past the recovered end, or partial preallocations).
    pub removed_segments: Vec<u64>,
    /// A checkpoint existed but was damaged and was ignored (full scan instead).
    pub checkpoint_ignored: Option<String>,
}

/// Result of scanning the segments.
struct ScanOutcome {
    end: u64,
    records: u64,
    max_generation: u32,
    /// Generation of the last entry scanned (the floor if none was).
    last_generation: u32,
    stop_reason: Option<String>,
}

pub(super) async fn open(
    dir: &Path,
    config: CommitLogConfig,
    disk: Disk,
) -> Result<(CommitLog, RecoveryReport)> {
    disk.create_dir_all(dir).await?;
    let alignment = io_alignment(dir).await;
    config.validate(alignment)?;
    let (checkpoint, checkpoint_ignored) =
        match crate::checkpoint::read(&disk, dir, CHECKPOINT_FILE_NAME).await {
            Ok(Some(payload)) => match decode_checkpoint(&payload) {
                Ok(checkpoint) => (Some(checkpoint), None),
                Err(error) => (None, Some(error.to_string())),
            },
            Ok(None) => (None, None),
            Err(error @ StorageError::Corrupt { .. }) => (None, Some(error.to_string())),
            Err(error) => return Err(error),
        };
    let clean_shutdown = !disk.exists(&dir.join(ABORT_MARKER_FILE_NAME)).await;
    let mut removed_segments = Vec::new();
    let mut segments = open_segments(&disk, dir, alignment, &mut removed_segments).await?;

    let first_start = segments.front().map_or(0, |s| s.start);
    let last_end = segments.back().map_or(0, Segment::end);
    let (scan_start, min_generation) = match checkpoint {
        Some(cp) if cp.durable_offset > last_end => {
            return Err(StorageError::Corrupt {
                path: dir.to_path_buf(),
                offset: cp.durable_offset,
                reason: format!("checkpoint beyond the last segment end {last_end}"),
            });
        }
        Some(cp) if cp.durable_offset >= first_start => (cp.durable_offset, cp.floor_generation),
        _ => (first_start, 0),
    };
    let scan = scan(
        &segments,
        scan_start,
        min_generation,
        config.record_size_max_bytes,
        alignment,
    )
    .await?;
    let end = scan.end;
    match &scan.stop_reason {
        Some(reason) if reason.ends_with(super::record::UNWRITTEN_SPACE) => {
            tracing::debug!(end, "commit log recovery: the written log ends here");
        }
        Some(reason) => tracing::warn!(end, reason, "commit log recovery truncated the tail"),
        None => {}
    }

    // Keep segments up to the one holding `end`, plus one full-size next segment.
    let mut next = None;
    if let Some(holder) = segments.iter().position(|s| s.contains(end)) {
        let tail: Vec<Segment> = segments.drain(holder + 1..).collect();
        for (index, segment) in tail.into_iter().enumerate() {
            if index == 0 && segment.size == config.segment_size_bytes {
                next = Some(segment);
            } else {
                removed_segments.push(segment.start);
                disk.remove_file(segment.file.path()).await?;
            }
        }
    } else {
        assert!(
            segments.back().is_none_or(|s| s.end() == end),
            "scan ends inside the chain"
        );
        let active = preallocate(
            &disk,
            dir,
            end,
            config.segment_size_bytes,
            alignment,
            config.preallocation,
            || false,
        )
        .await?;
        segments.push_back(active);
    }
    if !removed_segments.is_empty() {
        disk.sync_dir(dir).await?;
    }
    let active = segments.back().expect("an active segment exists");
    assert!(
        active.contains(end),
        "the active segment holds the recovered end"
    );
    assert!(
        next.as_ref().is_none_or(|n| n.start == active.end()),
        "next follows the active segment"
    );
    for segment in segments.iter().take(segments.len().saturating_sub(1)) {
        segment.sealed_at.set(Some(segment.end()));
    }

    // Recovered bytes may sit in a device cache: make them durable before trusting them.
    for segment in segments.iter().filter(|s| s.end() > scan_start) {
        segment.file.sync_data().await?;
    }
    let generation = checkpoint
        .map_or(0, |c| c.generation)
        .max(scan.max_generation)
        + 1;
    let checkpoint = Checkpoint {
        durable_offset: end,
        generation,
        floor_generation: scan.last_generation,
    };
    crate::checkpoint::write_atomic(
        &disk,
        dir,
        CHECKPOINT_FILE_NAME,
        &encode_checkpoint(&checkpoint),
    )
    .await?;
    crate::checkpoint::create_marker(&disk, dir, ABORT_MARKER_FILE_NAME).await?;

    let ring = Ring::new(config.tail_cache_bytes, alignment);
    load_partial_block(&ring, active, end, alignment).await?;
    let min_offset = segments.front().map_or(end, |s| s.start);
    let report = RecoveryReport {
        clean_shutdown,
        scan_start,
        recovered_end: end,
        records_scanned: scan.records,
        stop_reason: scan.stop_reason,
        generation,
        min_offset,
        removed_segments,
        checkpoint_ignored,
    };
    let log = start(
        dir,
        config,
        disk,
        alignment,
        (generation, scan.last_generation),
        ring,
        segments,
        next,
        end,
    );
    Ok((log, report))
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces are built by open() above
fn start(
    dir: &Path,
    config: CommitLogConfig,
    disk: Disk,
    alignment: usize,
    (generation, last_generation): (u32, u32),
    ring: Rc<Ring>,
    segments: VecDeque<Segment>,
    next: Option<Segment>,
    end: u64,
) -> CommitLog {
    let now = Instant::now();
    let has_next = next.is_some();
    let state = State {
        appended: end,
        written: end,
        durable: end,
        cache_floor: end,
        segments,
        next: next.map_or(NextSegment::Idle, NextSegment::Ready),
        poison: None,
        lifecycle: Lifecycle::Open,
        last_sync: now,
        last_write: now,
        unsynced_files: Vec::new(),
        last_checkpoint: now,
        checkpointed: end,
        generations: Generations::new(end, last_generation),
    };
    let inner = Rc::new(Inner {
        dir: dir.to_path_buf(),
        preallocation: Cell::new(config.preallocation),
        config,
        disk,
        alignment,
        generation,
        ring,
        state: RefCell::new(state),
        flusher_signal: Rc::new(Signal::default()),
        flush_requested: Cell::new(false),
        sync_in_flight: Cell::new(false),
        sync_latency: super::sync_latency::SyncLatency::default(),
        room: WaitList::default(),
        durable_waiters: OffsetWaiters::new(),
        appended_waiters: WaitList::default(),
        stop: Rc::new(Cell::new(false)),
        checkpoint_busy: Cell::new(false),
        checkpoint_idle: WaitList::default(),
        truncations: Cell::new(0),
        tasks: RefCell::new(Tasks::default()),
    });
    let flusher = compio::runtime::spawn(flusher_task(
        Rc::downgrade(&inner),
        Rc::clone(&inner.flusher_signal),
    ));
    inner.tasks.borrow_mut().flusher = Some(flusher);
    if !has_next {
        inner.start_preallocation();
    }
    CommitLog { inner }
}

/// Opens every segment file in `dir`, checks they form a gap-free chain, and removes a trailing
/// partial preallocation.
async fn open_segments(
    disk: &Disk,
    dir: &Path,
    alignment: usize,
    removed: &mut Vec<u64>,
) -> Result<VecDeque<Segment>> {
    let mut found: Vec<(u64, u64)> = disk
        .list_dir(dir)
        .await?
        .into_iter()
        .filter_map(|entry| parse_segment_file_name(&entry.name).map(|start| (start, entry.len)))
        .collect();
    found.sort_unstable();
    let mut segments: VecDeque<Segment> = VecDeque::new();
    let count = found.len();
    for (index, (start, len)) in found.into_iter().enumerate() {
        let path = dir.join(segment_file_name(start));
        let well_formed = len > 0 && len % alignment as u64 == 0 && start % alignment as u64 == 0;
        let follows = segments.back().is_none_or(|prev| prev.end() == start);
        if !well_formed && index + 1 == count {
            // An interrupted preallocation: never used, safe to drop.
            removed.push(start);
            disk.remove_file(&path).await?;
            continue;
        }
        if !well_formed || !follows {
            return Err(StorageError::Corrupt {
                path,
                offset: start,
                reason: format!("segment of {len} bytes does not continue the chain"),
            });
        }
        let file = disk.open(&path, OpenMode::Existing, alignment).await?;
        assert_eq!(file.len(), len, "segment size seen by listing and fstat");
        segments.push_back(Segment::new(start, len, file));
    }
    Ok(segments)
}

/// Scans entries from `start`, validating each, across segments (fillers and exact segment
/// ends continue in the next segment). Stops at the first invalid entry or the last segment end.
async fn scan(
    segments: &VecDeque<Segment>,
    start: u64,
    min_generation: u32,
    record_size_max: u32,
    alignment: usize,
) -> Result<ScanOutcome> {
    let mut outcome = ScanOutcome {
        end: start,
        records: 0,
        max_generation: min_generation,
        last_generation: min_generation,
        stop_reason: None,
    };
    let mut last_generation = min_generation;
    let mut buffer = AlignedBuf::new_zeroed(RECOVERY_READ_CHUNK_BYTES, alignment);
    let mut pos = start;
    for segment in segments.iter().filter(|s| s.end() > start) {
        pos = pos.max(segment.start);
        let mut chunk_start = u64::MAX; // nothing buffered
        while pos < segment.end() {
            let in_buffer = chunk_start != u64::MAX
                && pos >= chunk_start
                && pos - chunk_start < buffer.len() as u64;
            if !in_buffer {
                chunk_start = align_down(pos, alignment as u64);
                buffer =
                    read_chunk(segment, chunk_start, RECOVERY_READ_CHUNK_BYTES, buffer).await?;
            }
            let bytes = &buffer.as_slice()[(pos - chunk_start) as usize..];
            match parse_entry(bytes, pos, record_size_max) {
                Ok(entry) => {
                    if entry.generation() < last_generation {
                        outcome.stop_reason = Some(format!(
                            "stale entry of generation {} at {pos}",
                            entry.generation()
                        ));
                        outcome.end = pos;
                        return Ok(outcome);
                    }
                    if pos + entry.span() > segment.end() {
                        outcome.stop_reason =
                            Some(format!("entry at {pos} crosses the segment end"));
                        outcome.end = pos;
                        return Ok(outcome);
                    }
                    last_generation = entry.generation();
                    outcome.max_generation = outcome.max_generation.max(last_generation);
                    outcome.last_generation = last_generation;
                    if let Entry::Filler { total_len, .. } = entry {
                        if pos + total_len != segment.end() {
                            outcome.stop_reason =
                                Some(format!("filler at {pos} does not reach the segment end"));
                            outcome.end = pos;
                            return Ok(outcome);
                        }
                    } else {
                        outcome.records += 1;
                    }
                    pos += entry.span();
                }
                Err(ParseError::NeedMore { total_len }) => {
                    let available = segment.end() - pos;
                    if total_len > available
                        || (pos - chunk_start) + total_len <= buffer.len() as u64
                    {
                        outcome.stop_reason = Some(format!(
                            "entry at {pos} claims {total_len} bytes past the data"
                        ));
                        outcome.end = pos;
                        return Ok(outcome);
                    }
                    chunk_start = align_down(pos, alignment as u64);
                    let want = align_up(pos - chunk_start + total_len, alignment as u64) as usize;
                    let capacity = want.max(RECOVERY_READ_CHUNK_BYTES);
                    let fresh = if buffer.capacity() >= capacity {
                        buffer
                    } else {
                        AlignedBuf::new_zeroed(capacity, alignment)
                    };
                    buffer = read_chunk(segment, chunk_start, capacity, fresh).await?;
                }
                Err(ParseError::Invalid(reason)) => {
                    outcome.stop_reason = Some(format!("invalid entry at {pos}: {reason}"));
                    outcome.end = pos;
                    return Ok(outcome);
                }
            }
        }
    }
    outcome.end = pos;
    Ok(outcome)
}

async fn read_chunk(
    segment: &Segment,
    chunk_start: u64,
    want: usize,
    buffer: AlignedBuf,
) -> Result<AlignedBuf> {
    let len = (want as u64).min(segment.end() - chunk_start) as usize;
    let (result, buffer) = segment
        .file
        .read_exact_at(buffer, chunk_start - segment.start, len)
        .await;
    result?;
    Ok(buffer)
}

/// Loads `[align_down(end), end)` of the active segment into the ring, so the next write
/// rewrites that block with its existing bytes (the rest of the block is zero in the ring).
async fn load_partial_block(
    ring: &Ring,
    active: &Segment,
    end: u64,
    alignment: usize,
) -> Result<()> {
    let block_start = align_down(end, alignment as u64).max(active.start);
    if block_start == end {
        return Ok(());
    }
    let buffer = AlignedBuf::new_zeroed(alignment, alignment);
    let (result, buffer) = active
        .file
        .read_exact_at(buffer, block_start - active.start, alignment)
        .await;
    result?;
    let keep = (end - block_start) as usize;
    assert!(
        buffer.len() >= keep,
        "the partial block is inside the segment file"
    );
    ring.write(block_start, &buffer.as_slice()[..keep]);
    Ok(())
}
