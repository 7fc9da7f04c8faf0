//! The flusher: group commit of appended bytes (O_DIRECT write from the ring, then fdatasync),
//! the durable mark, and the periodic checkpoint.
//!
//! Owns the flusher task loop, the flush decision (sync policy: at once; async: interval, least
//! bytes, eager threshold, waiters), one flush round, and checkpoint writing. One round at a
//! time: consecutive rounds rewrite the same partly filled block, so they must not overlap; the
//! pieces of one round cover disjoint blocks and are submitted together.
//!
//! Must never: advance `written` before every piece of the round completed, advance `durable`
//! before every file written in the round was fdatasynced, or retry after a failure (it poisons
//! the log; see fsyncgate).

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::ring::RingSlice;
use super::wait::Signal;
use super::{Inner, Lifecycle, Segment, CHECKPOINT_FILE_NAME};
use crate::align::{align_down, align_up};
use crate::error::{Result, StorageError};
use crate::file::DirectFile;
use crate::limits::{FLUSH_EAGER_DIVISOR, WRITE_CHUNK_BYTES_MAX};

use super::config::FlushPolicy;
use super::record::FILLER_BYTES;

/// What the flusher does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Flush,
    Wait(Duration),
    Stop,
}

/// One O_DIRECT write of a flush round.
struct Piece {
    file: Rc<DirectFile>,
    file_pos: u64,
    slice: RingSlice,
}

/// A flush round: the pieces to write, the files to fdatasync, and the new marks.
struct FlushPlan {
    end: u64,
    pieces: Vec<Piece>,
    files: Vec<Rc<DirectFile>>,
}

/// The flusher task: decides, flushes, repeats. Holds only a weak reference while idle.
pub(super) async fn flusher_task(weak: Weak<Inner>, signal: Rc<Signal>) {
    loop {
        let decision = match weak.upgrade() {
            Some(inner) => inner.flush_decision(Instant::now()),
            None => Decision::Stop,
        };
        match decision {
            Decision::Stop => return,
            Decision::Wait(duration) => {
                let _ = compio::time::timeout(duration, signal.wait()).await;
            }
            Decision::Flush => {
                let Some(inner) = weak.upgrade() else { return };
                inner.flush_round().await;
            }
        }
    }
}

impl Inner {
    pub(super) fn flush_decision(&self, now: Instant) -> Decision {
        let state = self.state.borrow();
        if state.poison.is_some() {
            return Decision::Stop;
        }
        let pending = state.appended - state.written;
        match state.lifecycle {
            Lifecycle::Abandoning | Lifecycle::Closed => return Decision::Stop,
            Lifecycle::Closing if pending == 0 => return Decision::Stop,
            Lifecycle::Closing => return Decision::Flush,
            Lifecycle::Open if self.stop.get() => return Decision::Stop,
            Lifecycle::Open => {}
        }
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        if pending == 0 {
            return Decision::Wait(interval);
        }
        let eager = (self.config.flush_pending_bytes_max / FLUSH_EAGER_DIVISOR) as u64;
        if self.config.flush_policy == FlushPolicy::Sync
            || pending >= eager
            || self.flush_requested.replace(false)
            || self.durable_waiters.has_waiters()
            || self.room.has_waiters()
        {
            return Decision::Flush;
        }
        let since = now.saturating_duration_since(state.last_flush);
        let thorough = Duration::from_millis(self.config.flush_thorough_interval_ms);
        if since >= interval
            && (pending >= self.config.flush_least_bytes as u64 || since >= thorough)
        {
            return Decision::Flush;
        }
        if since < interval {
            Decision::Wait(interval - since)
        } else {
            Decision::Wait((thorough - since).min(interval))
        }
    }

    /// Writes everything appended since the last round, fdatasyncs, advances the marks.
    pub(super) async fn flush_round(self: &Rc<Self>) {
        let Some(plan) = self.plan_flush() else {
            self.state.borrow_mut().last_flush = Instant::now();
            return;
        };
        let writes = plan.pieces.into_iter().map(|piece| async move {
            let (result, _) = piece.file.write_all_at(piece.slice, piece.file_pos).await;
            result
        });
        let results = futures_util::future::join_all(writes).await;
        if let Some(error) = results.into_iter().find_map(Result::err) {
            self.poison(&error);
            return;
        }
        {
            let mut state = self.state.borrow_mut();
            assert!(
                plan.end > state.written,
                "a round moves the written mark forward"
            );
            assert!(
                plan.end <= state.appended,
                "nothing is written past the append mark"
            );
            state.written = plan.end;
        }
        self.room.wake_all();
        if self.state.borrow().lifecycle == Lifecycle::Abandoning {
            return; // a crash: the writes landed, the fdatasync never happens
        }
        let syncs = plan.files.iter().map(|file| file.sync_data());
        let results = futures_util::future::join_all(syncs).await;
        if let Some(error) = results.into_iter().find_map(Result::err) {
            self.poison(&error);
            return;
        }
        {
            let mut state = self.state.borrow_mut();
            assert!(plan.end > state.durable, "durable moves forward");
            assert!(plan.end <= state.written, "durable never passes written");
            state.durable = plan.end;
            state.last_flush = Instant::now();
        }
        self.durable_waiters.wake_all();
        self.maybe_checkpoint();
    }

    /// Plans a round over `[align_down(written), align_up(appended))`, split at segment ends
    /// (a sealed segment is written only up to its filler), at the ring end, and into pieces of
    /// at most [`WRITE_CHUNK_BYTES_MAX`]. Zeroes the ring past the append mark up to the block
    /// end so the padding written is zeros.
    fn plan_flush(&self) -> Option<FlushPlan> {
        let state = self.state.borrow();
        let (start, end) = (state.written, state.appended);
        if start == end {
            return None;
        }
        assert!(start < end, "written never passes appended");
        let block = self.alignment as u64;
        let end_aligned = align_up(end, block);
        let active = state
            .segments
            .back()
            .expect("an active segment always exists");
        if end < active.end() {
            self.ring.zero(end, (end_aligned - end) as usize);
        }
        let mut pieces = Vec::new();
        let mut files: Vec<Rc<DirectFile>> = Vec::new();
        let from = align_down(start, block);
        for segment in state
            .segments
            .iter()
            .filter(|s| s.end() > from && s.start < end)
        {
            let piece_start = from.max(segment.start);
            let piece_end = end_aligned.min(write_limit(segment, block));
            if piece_start >= piece_end {
                continue;
            }
            self.split_into_pieces(segment, piece_start, piece_end, &mut pieces);
            files.push(Rc::clone(&segment.file));
        }
        assert!(!pieces.is_empty(), "a non-empty round writes something");
        Some(FlushPlan { end, pieces, files })
    }

    fn split_into_pieces(&self, segment: &Segment, start: u64, end: u64, pieces: &mut Vec<Piece>) {
        let mut at = start;
        while at < end {
            let piece_end = end
                .min(self.ring.contiguous_end(at))
                .min(at + WRITE_CHUNK_BYTES_MAX as u64);
            let len = (piece_end - at) as usize;
            pieces.push(Piece {
                file: Rc::clone(&segment.file),
                file_pos: at - segment.start,
                slice: self.ring.slice(at, len),
            });
            at = piece_end;
        }
    }

    /// Spawns a checkpoint write if the durable mark moved and the interval passed.
    fn maybe_checkpoint(self: &Rc<Self>) {
        let durable = {
            let mut state = self.state.borrow_mut();
            let interval = Duration::from_millis(self.config.checkpoint_interval_ms);
            if self.checkpoint_busy.get()
                || state.durable == state.checkpointed
                || state.last_checkpoint.elapsed() < interval
                || self.stop.get()
            {
                return;
            }
            state.last_checkpoint = Instant::now();
            state.durable
        };
        let weak = Rc::downgrade(self);
        let handle = compio::runtime::spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            if let Err(error) = inner.write_checkpoint(durable).await {
                tracing::warn!(%error, "commit log checkpoint failed; recovery scans from the previous one");
            }
        });
        let previous = self.tasks.borrow_mut().checkpoint.replace(handle);
        if let Some(previous) = previous {
            previous.detach();
        }
    }

    /// Writes the checkpoint `{durable, generation}` atomically, one writer at a time; skips an
    /// offset older than the newest checkpoint.
    pub(super) async fn write_checkpoint(&self, durable: u64) -> Result<()> {
        assert!(
            durable <= self.state.borrow().durable,
            "checkpoint only durable offsets"
        );
        while self.checkpoint_busy.replace(true) {
            self.wait_for_change(&self.checkpoint_idle).await;
        }
        let result = if durable < self.state.borrow().checkpointed {
            Ok(())
        } else {
            let checkpoint = Checkpoint {
                durable_offset: durable,
                generation: self.generation,
            };
            let payload = encode_checkpoint(&checkpoint);
            crate::checkpoint::write_atomic(&self.disk, &self.dir, CHECKPOINT_FILE_NAME, &payload)
                .await
        };
        if result.is_ok() {
            let mut state = self.state.borrow_mut();
            state.checkpointed = state.checkpointed.max(durable);
        }
        self.checkpoint_busy.set(false);
        self.checkpoint_idle.wake_all();
        result
    }
}

/// Where the flusher may write in `segment`: its end, or just past its filler once sealed.
fn write_limit(segment: &Segment, block: u64) -> u64 {
    match segment.sealed_at.get() {
        None => segment.end(),
        Some(at) if at == segment.end() => at,
        Some(at) => align_up(at + FILLER_BYTES as u64, block).min(segment.end()),
    }
}

/// The CommitLog checkpoint contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// Every record below this offset was covered by a completed fdatasync.
    pub(super) durable_offset: u64,
    /// Generation of the open that wrote it; records written later have a generation >= it.
    pub(super) generation: u32,
}

const CHECKPOINT_FORMAT: u32 = 1;
const CHECKPOINT_PAYLOAD_BYTES: usize = 16;

pub(super) fn encode_checkpoint(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut payload = Vec::with_capacity(CHECKPOINT_PAYLOAD_BYTES);
    payload.extend_from_slice(&CHECKPOINT_FORMAT.to_le_bytes());
    payload.extend_from_slice(&checkpoint.generation.to_le_bytes());
    payload.extend_from_slice(&checkpoint.durable_offset.to_le_bytes());
    assert_eq!(payload.len(), CHECKPOINT_PAYLOAD_BYTES);
    payload
}

pub(super) fn decode_checkpoint(payload: &[u8]) -> std::result::Result<Checkpoint, StorageError> {
    let bad = |reason: String| StorageError::Corrupt {
        path: CHECKPOINT_FILE_NAME.into(),
        offset: 0,
        reason,
    };
    if payload.len() != CHECKPOINT_PAYLOAD_BYTES {
        return Err(bad(format!(
            "checkpoint payload of {} bytes",
            payload.len()
        )));
    }
    let format = u32::from_le_bytes(payload[0..4].try_into().expect("4 bytes"));
    if format != CHECKPOINT_FORMAT {
        return Err(bad(format!("unknown checkpoint format {format}")));
    }
    Ok(Checkpoint {
        generation: u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes")),
        durable_offset: u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_roundtrip() {
        let checkpoint = Checkpoint {
            durable_offset: 1 << 40,
            generation: 7,
        };
        assert_eq!(
            decode_checkpoint(&encode_checkpoint(&checkpoint)).expect("decode"),
            checkpoint
        );
        assert!(decode_checkpoint(&[0u8; 15]).is_err());
        let mut other_format = encode_checkpoint(&checkpoint);
        other_format[0] = 9;
        assert!(decode_checkpoint(&other_format).is_err());
    }
}
