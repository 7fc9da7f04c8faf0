//! The flusher: group commit of appended bytes (O_DIRECT write from the ring, then fdatasync),
//! the durable mark, and the periodic checkpoint.
//!
//! Owns the flusher task loop (carrying out what `decision.rs` chooses: sync policy, write and
//! fdatasync at once; async, write on the commit interval or when enough is pending, fdatasync
//! on the flush interval; waiters force both), one round, and checkpoint writing. One write
//! round at a time: consecutive rounds rewrite the same partly filled block, so they must not
//! overlap; the pieces of one round cover disjoint blocks and are submitted together. At most
//! one fdatasync is in flight, and writes go on while it runs (it covers only what was written
//! before it started), so under ASYNC_FLUSH a slow fdatasync never delays the writes that bound
//! what a process crash loses (`commit_interval_ms`).
//!
//! Must never: advance `written` before every piece of the round completed, advance `durable`
//! past the written mark as it was when the fdatasync started, have two fdatasyncs in flight, or
//! retry after a failure (it poisons the log; see fsyncgate).

use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::decision::{decide, Decision, DecisionInputs};
use super::ring::RingSlice;
use super::wait::Signal;
use super::{Inner, Lifecycle, Segment, CHECKPOINT_FILE_NAME};
use crate::align::{align_down, align_up};
use crate::error::{Result, StorageError};
use crate::file::DirectFile;
use crate::limits::{STREAM_PIECE_BYTES_MIN, STREAM_WRITES_IN_FLIGHT, WRITE_CHUNK_BYTES_MAX};
use futures_util::future::{select, Either};
use futures_util::stream::{FuturesOrdered, StreamExt};

/// One O_DIRECT write of a flush round.
struct Piece {
    file: Rc<DirectFile>,
    file_pos: u64,
    slice: RingSlice,
}

/// One streamed whole-block write.
struct StreamPiece {
    file: Rc<DirectFile>,
    file_pos: u64,
    slice: RingSlice,
    log_end: u64,
}

/// A flush round: the pieces to write, the files they touch, and the new written mark.
struct FlushPlan {
    end: u64,
    pieces: Vec<Piece>,
    files: Vec<Rc<DirectFile>>,
}

/// The fdatasync in flight, polled by the flusher loop alongside its writes.
type SyncInFlight = Pin<Box<dyn Future<Output = ()>>>;

/// The flusher task: decides, flushes, repeats. Holds only a weak reference while idle (and a
/// strong one while a write round or an fdatasync runs).
pub(super) async fn flusher_task(weak: Weak<Inner>, signal: Rc<Signal>) {
    let mut syncing: Option<SyncInFlight> = None;
    loop {
        let decision = match weak.upgrade() {
            Some(inner) => inner.flush_decision(Instant::now()),
            None => Decision::Stop,
        };
        match decision {
            Decision::Stop => {
                // A stop (close, abandon, poison) still lets a started fdatasync finish: its
                // completion only ever makes more durable.
                if let Some(sync) = syncing.take() {
                    sync.await;
                }
                return;
            }
            Decision::Wait(duration) => {
                // The fdatasync ending is also a reason to decide again (a waiter may need the
                // next one).
                let wait = compio::time::timeout(duration, signal.wait());
                wait_or_synced(&mut syncing, wait).await;
            }
            Decision::Flush { write, sync } => {
                let Some(inner) = weak.upgrade() else {
                    continue;
                };
                if write && !alongside_sync(&mut syncing, inner.write_pending()).await {
                    continue; // poisoned: the next decision stops
                }
                if !sync || inner.state.borrow().lifecycle == Lifecycle::Abandoning {
                    continue; // a crash: the writes landed, the fdatasync never happens
                }
                assert!(syncing.is_none(), "one fdatasync in flight at a time");
                inner.sync_in_flight.set(true);
                syncing = Some(Box::pin(async move {
                    inner.sync_written().await;
                    inner.sync_in_flight.set(false);
                }));
            }
            Decision::Stream => {
                let Some(inner) = weak.upgrade() else {
                    continue;
                };
                let streamed = alongside_sync(&mut syncing, inner.stream_full_blocks()).await;
                // Nothing whole to stream although a quarter of the pending bound is unwritten:
                // the rest is a partial block or the unused span after a filler. One write
                // round instead, so the loop never spins deciding to stream.
                if !streamed {
                    alongside_sync(&mut syncing, inner.write_pending()).await;
                }
            }
        }
    }
}

/// Runs `work` to completion while also driving the fdatasync in flight (which may end first).
async fn alongside_sync<T>(syncing: &mut Option<SyncInFlight>, work: impl Future<Output = T>) -> T {
    let mut work = pin!(work);
    let Some(sync) = syncing.as_mut() else {
        return work.await;
    };
    if let Either::Left((output, _)) = select(work.as_mut(), sync.as_mut()).await {
        return output;
    }
    *syncing = None;
    work.await
}

/// Waits for `wait` or for the fdatasync in flight to end, whichever comes first.
async fn wait_or_synced(syncing: &mut Option<SyncInFlight>, wait: impl Future) {
    let wait = pin!(wait);
    let Some(sync) = syncing.as_mut() else {
        wait.await;
        return;
    };
    if let Either::Right(_) = select(wait, sync.as_mut()).await {
        *syncing = None;
    }
}

impl Inner {
    /// The next step of the flusher ([`decide`] on the current state). Starting an fdatasync
    /// consumes a `request_flush`.
    pub(super) fn flush_decision(&self, now: Instant) -> Decision {
        let inputs = {
            let state = self.state.borrow();
            DecisionInputs {
                lifecycle: state.lifecycle,
                poisoned: state.poison.is_some(),
                stop: self.stop.get(),
                unwritten: state.appended - state.written,
                undurable: state.appended - state.durable,
                since_sync: now.saturating_duration_since(state.last_sync),
                since_write: now.saturating_duration_since(state.last_write),
                sync_wanted: self.flush_requested.get() || !self.durable_waiters.is_empty(),
                room_wanted: self.room.has_waiters(),
                sync_in_flight: self.sync_in_flight.get(),
            }
        };
        let decision = decide(&inputs, &self.config);
        if matches!(decision, Decision::Flush { sync: true, .. }) {
            self.flush_requested.set(false);
        }
        decision
    }

    /// Async eager writing: streams whole blocks only (never the partly filled last block, so
    /// no later write overlaps one in flight) with up to [`STREAM_WRITES_IN_FLIGHT`] writes in
    /// flight, for as long as whole blocks keep coming. `written` advances in submission order
    /// as writes complete. Stops submitting when the log stops being open, and always waits for
    /// the writes it submitted. Returns whether it submitted any.
    async fn stream_full_blocks(&self) -> bool {
        let mut next = align_down(self.state.borrow().written, self.alignment as u64);
        let truncations = self.truncations.get();
        let mut in_flight = FuturesOrdered::new();
        let mut submitted = false;
        loop {
            while in_flight.len() < STREAM_WRITES_IN_FLIGHT {
                let Some(piece) = self.next_stream_piece(next, !in_flight.is_empty()) else {
                    break;
                };
                submitted = true;
                next = piece.log_end;
                in_flight.push_back(async move {
                    let (result, _) = piece.file.write_all_at(piece.slice, piece.file_pos).await;
                    (piece.log_end, piece.file, result)
                });
            }
            let Some((end, file, result)) = in_flight.next().await else {
                return submitted;
            };
            assert_eq!(
                self.truncations.get(),
                truncations,
                "a truncation waits until nothing is left to write"
            );
            if let Err(error) = result {
                self.poison(&error);
                while in_flight.next().await.is_some() {}
                return true;
            }
            {
                let mut state = self.state.borrow_mut();
                assert!(end > state.written, "stream writes complete in order");
                assert!(end <= state.appended, "only appended bytes are written");
                state.written = end;
                state.last_write = Instant::now();
                if !state
                    .unsynced_files
                    .iter()
                    .any(|known| Rc::ptr_eq(known, &file))
                {
                    state.unsynced_files.push(file);
                }
            }
            self.room.wake_all();
        }
    }

    /// The next whole-block write starting at `next`, or `None` if there is none worth
    /// submitting now.
    fn next_stream_piece(&self, next: u64, have_in_flight: bool) -> Option<StreamPiece> {
        let state = self.state.borrow();
        if state.lifecycle != Lifecycle::Open || self.stop.get() || state.poison.is_some() {
            return None;
        }
        // Hand back to the decision loop when durability is due, so streaming under continuous
        // load never starves the interval fdatasync (or a waiter, or `request_flush`); while an
        // fdatasync runs there is nothing to start, so streaming goes on.
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        if !self.sync_in_flight.get()
            && (!self.durable_waiters.is_empty()
                || self.flush_requested.get()
                || state.last_sync.elapsed() >= interval)
        {
            return None;
        }
        let block = self.alignment as u64;
        let whole_end = align_down(state.appended, block);
        let mut at = next;
        for segment in state.segments.iter() {
            if segment.end() <= at {
                continue;
            }
            let limit = write_limit(segment);
            at = at.max(segment.start);
            if at >= limit {
                continue; // sealed and fully written: continue in the next segment
            }
            let end = limit
                .min(whole_end)
                .min(self.ring.contiguous_end(at))
                .min(at + WRITE_CHUNK_BYTES_MAX as u64);
            if end <= at {
                return None;
            }
            if have_in_flight && end - at < STREAM_PIECE_BYTES_MIN as u64 && end != limit {
                return None;
            }
            return Some(StreamPiece {
                file: Rc::clone(&segment.file),
                file_pos: at - segment.start,
                slice: self.ring.slice(at, (end - at) as usize),
                log_end: end,
            });
        }
        None
    }

    /// One write round of everything appended since the last one; `false` if it failed (the
    /// log is poisoned then).
    async fn write_pending(&self) -> bool {
        let Some(plan) = self.plan_flush() else {
            return true;
        };
        let truncations = self.truncations.get();
        let writes = plan.pieces.into_iter().map(|piece| async move {
            let (result, _) = piece.file.write_all_at(piece.slice, piece.file_pos).await;
            result
        });
        let results = futures_util::future::join_all(writes).await;
        assert_eq!(
            self.truncations.get(),
            truncations,
            "a truncation waits until nothing is left to write"
        );
        if let Some(error) = results.into_iter().find_map(Result::err) {
            self.poison(&error);
            return false;
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
            state.last_write = Instant::now();
            for file in plan.files {
                if !state
                    .unsynced_files
                    .iter()
                    .any(|known| Rc::ptr_eq(known, &file))
                {
                    state.unsynced_files.push(file);
                }
            }
        }
        self.room.wake_all();
        true
    }

    /// fdatasyncs every file written since the last fdatasync; the durable mark becomes the
    /// written mark as it was when the fdatasyncs were issued.
    async fn sync_written(self: &Rc<Self>) {
        let (target, files) = {
            let mut state = self.state.borrow_mut();
            (state.written, std::mem::take(&mut state.unsynced_files))
        };
        let truncations = self.truncations.get();
        let started = Instant::now();
        let syncs = files.iter().map(|file| file.sync_data());
        let results = futures_util::future::join_all(syncs).await;
        if !files.is_empty() {
            self.sync_latency.record(started.elapsed());
        }
        if let Some(error) = results.into_iter().find_map(Result::err) {
            self.poison(&error);
            return;
        }
        if self.truncations.get() != truncations {
            // The log was truncated meanwhile: `target` may lie past its new end, and the
            // truncation made its own bytes durable.
            self.durable_waiters.wake_all();
            return;
        }
        {
            let mut state = self.state.borrow_mut();
            assert!(target >= state.durable, "durable never moves back");
            assert!(target <= state.written, "durable never passes written");
            state.durable = target;
            state.last_sync = Instant::now();
        }
        self.durable_waiters.wake_reached(target);
        self.maybe_checkpoint();
    }

    /// Plans a round over `[align_down(written), align_up(appended))`, split at segment ends
    /// (a sealed segment's unused span after its filler included, as zeros), at the ring end, and into pieces of
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
            let piece_end = end_aligned.min(write_limit(segment));
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

    /// Writes the checkpoint `{durable, generation, floor}` atomically, one writer at a time;
    /// skips an offset older than the newest checkpoint, or one a truncation took back.
    pub(super) async fn write_checkpoint(&self, durable: u64) -> Result<()> {
        while self.checkpoint_busy.replace(true) {
            self.wait_for_change(&self.checkpoint_idle).await;
        }
        let result = self.write_checkpoint_locked(durable).await;
        self.checkpoint_busy.set(false);
        self.checkpoint_idle.wake_all();
        result
    }

    /// [`Inner::write_checkpoint`] with the checkpoint slot held (truncation holds it too).
    pub(super) async fn write_checkpoint_locked(&self, durable: u64) -> Result<()> {
        let floor_generation = {
            let state = self.state.borrow();
            if durable > state.durable {
                // Only a truncation moves the durable mark back: `durable` was read before it.
                assert!(
                    self.truncations.get() > 0,
                    "checkpoint only durable offsets"
                );
                return Ok(());
            }
            if durable < state.checkpointed {
                return Ok(());
            }
            state
                .generations
                .before(durable)
                .expect("the generation base never passes the newest checkpoint")
        };
        let checkpoint = Checkpoint {
            durable_offset: durable,
            generation: self.generation,
            floor_generation,
        };
        let payload = encode_checkpoint(&checkpoint);
        crate::checkpoint::write_atomic(&self.disk, &self.dir, CHECKPOINT_FILE_NAME, &payload)
            .await?;
        let mut state = self.state.borrow_mut();
        if durable >= state.checkpointed {
            state.checkpointed = durable;
            state.generations.forget_before(durable);
        }
        Ok(())
    }
}

/// Where the flusher may write in `segment`: its end. A sealed segment's unused span after
/// its filler is written too (the ring holds zeros there), so no bytes of an earlier run (a
/// tail that recovery dropped) stay inside the log's range, where an entry-header read, e.g. a
/// replication divergence check, could take them for entries.
fn write_limit(segment: &Segment) -> u64 {
    segment.end()
}

/// The CommitLog checkpoint contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// Every record below this offset was covered by a completed fdatasync.
    pub(super) durable_offset: u64,
    /// Generation of the open that wrote it; the next open takes a higher one.
    pub(super) generation: u32,
    /// Generation of the last entry before `durable_offset`: every entry after it has at least
    /// this one (the recovery scan's floor). Below `generation` in a slave's log, whose entries
    /// carry the master's generations.
    pub(super) floor_generation: u32,
}

/// Format 1 (16 bytes) had no floor: the open's generation served as one.
const CHECKPOINT_FORMAT_V1: u32 = 1;
const CHECKPOINT_PAYLOAD_BYTES_V1: usize = 16;
const CHECKPOINT_FORMAT: u32 = 2;
const CHECKPOINT_PAYLOAD_BYTES: usize = 24;

pub(super) fn encode_checkpoint(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut payload = Vec::with_capacity(CHECKPOINT_PAYLOAD_BYTES);
    payload.extend_from_slice(&CHECKPOINT_FORMAT.to_le_bytes());
    payload.extend_from_slice(&checkpoint.generation.to_le_bytes());
    payload.extend_from_slice(&checkpoint.durable_offset.to_le_bytes());
    payload.extend_from_slice(&checkpoint.floor_generation.to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(payload.len(), CHECKPOINT_PAYLOAD_BYTES);
    payload
}

pub(super) fn decode_checkpoint(payload: &[u8]) -> std::result::Result<Checkpoint, StorageError> {
    let bad = |reason: String| StorageError::Corrupt {
        path: CHECKPOINT_FILE_NAME.into(),
        offset: 0,
        reason,
    };
    if payload.len() < 4 {
        return Err(bad(format!(
            "checkpoint payload of {} bytes",
            payload.len()
        )));
    }
    let format = u32::from_le_bytes(payload[0..4].try_into().expect("4 bytes"));
    let expected_len = match format {
        CHECKPOINT_FORMAT_V1 => CHECKPOINT_PAYLOAD_BYTES_V1,
        CHECKPOINT_FORMAT => CHECKPOINT_PAYLOAD_BYTES,
        _ => return Err(bad(format!("unknown checkpoint format {format}"))),
    };
    if payload.len() != expected_len {
        return Err(bad(format!(
            "checkpoint payload of {} bytes for format {format}",
            payload.len()
        )));
    }
    let generation = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes"));
    let floor_generation = if format == CHECKPOINT_FORMAT_V1 {
        generation
    } else {
        u32::from_le_bytes(payload[16..20].try_into().expect("4 bytes"))
    };
    Ok(Checkpoint {
        generation,
        durable_offset: u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes")),
        floor_generation,
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
            floor_generation: 4,
        };
        assert_eq!(
            decode_checkpoint(&encode_checkpoint(&checkpoint)).expect("decode"),
            checkpoint
        );
        assert!(decode_checkpoint(&[0u8; 15]).is_err());
        let mut other_format = encode_checkpoint(&checkpoint);
        other_format[0] = 9;
        assert!(decode_checkpoint(&other_format).is_err());
        let short = &encode_checkpoint(&checkpoint)[..16];
        assert!(decode_checkpoint(short).is_err(), "format 2 is 24 bytes");
    }

    #[test]
    fn format_1_checkpoints_use_their_generation_as_the_floor() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&6u32.to_le_bytes());
        v1.extend_from_slice(&4096u64.to_le_bytes());
        assert_eq!(
            decode_checkpoint(&v1).expect("v1"),
            Checkpoint {
                durable_offset: 4096,
                generation: 6,
                floor_generation: 6
            }
        );
    }
}
