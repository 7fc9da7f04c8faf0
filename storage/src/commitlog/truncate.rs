//! Truncating the CommitLog to an entry boundary (a slave dropping what diverged from its
//! master), durable bytes included.
//!
//! Owns `CommitLog::truncate`. Steps, in crash-safe order: everything appended is first made
//! durable and the next segment's preparation settled (nothing is in flight); the marks move
//! back in memory; the checkpoint is rewritten at the new end (a crash now recovers the old
//! tail whole: a longer, consistent log); the block holding the new end is rewritten with its
//! tail zeroed and fdatasynced (a crash now recovers exactly the new end, as the scan stops at
//! zeros), then the rest of the holding segment's old data is zeroed; segment files after it
//! are removed. The tail ring keeps serving only offsets it still holds validly, and the block
//! holding the new end is reloaded into it, so the next flush rewrites it correctly.
//!
//! Must never: run while an append, a write round or a preallocation is in flight (the caller
//! serialises appends; this waits for the rest), leave a checkpoint above the new end, or let
//! recovery find a record at or past the new end.

use std::rc::Rc;

use bytes::Bytes;

use super::read::read_disk;
use super::record::{peek_header, RECORD_HEADER_BYTES};
use super::segment::Segment;
use super::{CommitLog, Inner, NextSegment};
use crate::align::{align_down, align_up, AlignedBuf};
use crate::error::{Result, StorageError};
use crate::file::DirectFile;
use crate::limits::{PREALLOCATE_CHUNK_BYTES, RECOVERY_READ_CHUNK_BYTES};

/// What the in-memory part of a truncation hands to its I/O part.
struct Plan {
    /// Segments after the one holding the new end, and a prepared next segment that no
    /// longer follows it: their files are removed.
    removed: Vec<Segment>,
    holder_file: Rc<DirectFile>,
    holder_start: u64,
    /// End of the holding segment's old data, block aligned: zeroed from the new end to here.
    zero_end: u64,
}

impl CommitLog {
    /// Drops every entry at and after `offset`, which must be an entry boundary in
    /// `[min_offset, appended]` (`appended`: nothing to do). Durable bytes are dropped too:
    /// the marks (appended, written, durable, checkpoint) move back to `offset`, and recovery
    /// after a crash at any point ends at `offset` or, before the checkpoint is rewritten, at
    /// the old end. The caller must not append meanwhile (the store holds its append lock).
    /// Costs an fdatasync of what is appended, writes of zeros over the holding segment's old
    /// data past `offset`, and, when `offset` lies below the newest checkpoint, a header scan
    /// of up to one segment to learn the generation of the entry before it.
    ///
    /// # Errors
    /// [`StorageError::OffsetOutOfRange`] / [`StorageError::NotAnEntry`] for a bad `offset`
    /// (nothing changed); I/O errors, after which the log is poisoned (reopen it: recovery ends
    /// at `offset` or at the old end); [`StorageError::Poisoned`], [`StorageError::Closed`].
    ///
    /// # Panics
    /// If an append happens while it runs.
    pub async fn truncate(&self, offset: u64) -> Result<()> {
        let inner = &self.inner;
        let appended = {
            let state = inner.state.borrow();
            state.usable()?;
            let min_offset = state.min_offset();
            if offset < min_offset || offset > state.appended {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    min_offset,
                    max_offset: state.appended,
                });
            }
            state.appended
        };
        if offset == appended {
            return Ok(());
        }
        self.entry_header_at(offset).await?;
        self.wait_durable(appended).await?;
        inner.settle_preallocation().await;
        let known = inner.state.borrow().generations.before(offset);
        let floor = match known {
            Some(generation) => generation,
            None => inner.generation_before(offset).await?,
        };
        while inner.checkpoint_busy.replace(true) {
            inner.wait_for_change(&inner.checkpoint_idle).await;
        }
        assert_eq!(
            self.appended_offset(),
            appended,
            "no append while the log is truncated"
        );
        let result = inner.truncate_locked(offset, floor).await;
        inner.checkpoint_busy.set(false);
        inner.checkpoint_idle.wake_all();
        if let Err(error) = &result {
            inner.poison(error);
        }
        inner.room.wake_all();
        inner.flusher_signal.notify();
        result
    }
}

impl Inner {
    /// Waits until no next segment is being prepared (a truncation may drop it).
    async fn settle_preallocation(&self) {
        while matches!(self.state.borrow().next, NextSegment::Running) {
            self.wait_for_change(&self.room).await;
        }
    }

    /// The in-memory truncation, then its I/O; the caller holds the checkpoint slot.
    async fn truncate_locked(self: &Rc<Self>, offset: u64, floor: u32) -> Result<()> {
        let plan = self.truncate_state(offset, floor);
        self.write_checkpoint_locked(offset).await?;
        let block = self.alignment as u64;
        let block_start = align_down(offset, block);
        assert!(
            block_start >= plan.holder_start,
            "segments are block aligned"
        );
        if block_start < plan.zero_end {
            let file_pos = block_start - plan.holder_start;
            let buffer = AlignedBuf::new_zeroed(self.alignment, self.alignment);
            let (result, mut buffer) = plan
                .holder_file
                .read_exact_at(buffer, file_pos, self.alignment)
                .await;
            result?;
            let keep = usize::try_from(offset - block_start).expect("less than a block");
            assert!(buffer.len() >= keep, "the holding block is in the file");
            // The next flush rewrites this block from the ring: give it the kept bytes.
            self.ring.write(block_start, &buffer.as_slice()[..keep]);
            buffer.as_full_mut_slice()[keep..].fill(0);
            buffer.set_len_initialised(self.alignment);
            let (result, _) = plan.holder_file.write_all_at(buffer, file_pos).await;
            result?;
            plan.holder_file.sync_data().await?;
            let rest_start = block_start + block;
            if rest_start < plan.zero_end {
                zero_range(
                    &plan.holder_file,
                    rest_start - plan.holder_start,
                    plan.zero_end - rest_start,
                    self.alignment,
                )
                .await?;
                plan.holder_file.sync_data().await?;
            }
        }
        if !plan.removed.is_empty() {
            for segment in &plan.removed {
                self.disk.remove_file(segment.file.path()).await?;
            }
            self.disk.sync_dir(&self.dir).await?;
        }
        self.start_preallocation();
        Ok(())
    }

    /// Moves the marks, segments, ring floor and generations back to `offset` (no await).
    fn truncate_state(&self, offset: u64, floor: u32) -> Plan {
        let mut state = self.state.borrow_mut();
        assert_eq!(
            state.written, state.appended,
            "everything appended is written"
        );
        assert!(
            state.durable >= state.appended,
            "everything appended is durable"
        );
        let old_floor = self.ring_floor(&state);
        let old_appended = state.appended;
        let holder_index = state
            .segments
            .iter()
            .position(|s| s.contains(offset))
            .expect("a truncation point below the append mark lies in a segment");
        let mut removed: Vec<Segment> = state.segments.drain(holder_index + 1..).collect();
        let holder = state.segments.back().expect("the holding segment stays");
        holder.sealed_at.set(None);
        let data_end = old_appended.min(holder.end());
        let zero_end = align_up(data_end, self.alignment as u64).min(holder.end());
        let (holder_file, holder_start, holder_end) =
            (Rc::clone(&holder.file), holder.start, holder.end());
        match std::mem::replace(&mut state.next, NextSegment::Idle) {
            NextSegment::Ready(next) if next.start == holder_end => {
                state.next = NextSegment::Ready(next);
            }
            NextSegment::Ready(stale) => removed.push(stale),
            NextSegment::Running => unreachable!("preallocation settled before truncating"),
            NextSegment::Idle | NextSegment::Failed(_) => {}
        }
        state.appended = offset;
        state.written = offset;
        state.durable = offset;
        // The ring still holds valid bytes from the old floor up to `offset`; below the old
        // floor its slots were reused, and the holding block is reloaded from disk.
        state.cache_floor = if offset >= old_floor {
            old_floor
        } else {
            offset
        };
        state.checkpointed = state.checkpointed.min(offset);
        state.generations.reset(offset, floor);
        state.unsynced_files.clear();
        self.truncations.set(self.truncations.get() + 1);
        Plan {
            removed,
            holder_file,
            holder_start,
            zero_end,
        }
    }

    /// Generation of the last entry before `offset`, by walking the headers of the segment
    /// holding it from the segment's start (every segment starts with an entry). 0 when nothing
    /// is stored before `offset`.
    async fn generation_before(&self, offset: u64) -> Result<u32> {
        let (file, start, end) = {
            let state = self.state.borrow();
            let index = state
                .segments
                .iter()
                .position(|s| s.contains(offset))
                .expect("offset inside a segment");
            let holder = &state.segments[index];
            if offset > holder.start {
                (Rc::clone(&holder.file), holder.start, offset)
            } else if index > 0 {
                let previous = &state.segments[index - 1];
                (Rc::clone(&previous.file), previous.start, previous.end())
            } else {
                return Ok(0);
            }
        };
        let record_max = self.config.record_size_max_bytes;
        let mut generation = 0;
        let mut pos = start;
        let mut chunk: Option<(u64, Bytes)> = None;
        while pos < end {
            let need = (RECORD_HEADER_BYTES as u64).min(end - pos);
            let covered = chunk
                .as_ref()
                .is_some_and(|(at, bytes)| pos >= *at && pos + need <= *at + bytes.len() as u64);
            if !covered {
                let len = (RECOVERY_READ_CHUNK_BYTES as u64).min(end - pos);
                let bytes = read_disk(&file, start, pos, len, self.alignment).await?;
                chunk = Some((pos, bytes));
            }
            let (at, bytes) = chunk.as_ref().expect("read above");
            let within = &bytes[usize::try_from(pos - at).expect("fits")..];
            let header =
                peek_header(within, pos, record_max).map_err(|error| StorageError::Corrupt {
                    path: file.path().to_path_buf(),
                    offset: pos,
                    reason: format!("walking entries to {offset}: {error:?}"),
                })?;
            generation = header.generation;
            pos = header.end();
        }
        if pos != end {
            return Err(StorageError::NotAnEntry {
                offset,
                reason: format!("the entry walk from {start} passes it (ends at {pos})"),
            });
        }
        Ok(generation)
    }
}

/// Writes zeros over `[file_pos, file_pos + len)` (aligned) in chunks of one reused buffer.
async fn zero_range(file: &DirectFile, file_pos: u64, len: u64, alignment: usize) -> Result<()> {
    let chunk = PREALLOCATE_CHUNK_BYTES.min(usize::try_from(len).expect("fits"));
    let mut zeros = AlignedBuf::new_zeroed(chunk, alignment);
    let mut done = 0u64;
    while done < len {
        let piece = chunk.min(usize::try_from(len - done).expect("fits"));
        zeros.set_len_initialised(piece);
        let (result, buffer) = file.write_all_at(zeros, file_pos + done).await;
        zeros = buffer;
        result?;
        done += piece as u64;
    }
    Ok(())
}
