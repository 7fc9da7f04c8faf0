//! The persisted two-level timing wheel of one shard (design: `docs/timer.md`).
//!
//! Owns the timer log (append-only 32-byte entries in segment files `timerlog/<first index>`)
//! and the wheel (two slot arrays: a fine level of `precision` slots covering two rounds, a
//! coarse level of one slot per round covering the maximum delay). A slot is the head of a
//! chain linked backwards through the log plus a count; a timer is one log entry in the fine
//! chain of its due slot, or first in the coarse chain of its round and moved (re-appended)
//! to the fine level one round ahead. Every timer is written at most twice: O(1).
//!
//! Memory is the two slot arrays, the per-segment live counts and one write buffer: bounded by
//! the configuration, never by the number of pending timers.
//!
//! Durability: nothing is durable until a checkpoint completes. The wheel is sans-io for it:
//! [`TimerWheel::prepare_checkpoint`] writes the buffered log entries out (page cache) and
//! returns a [`CheckpointPlan`] (the segment files to fdatasync, the wheel file's bytes, the
//! segment files to delete); the caller carries it out (io_uring in the broker,
//! `super::io::write_checkpoint`) and reports back with [`TimerWheel::checkpoint_done`] or
//! [`TimerWheel::checkpoint_failed`]. After a crash [`TimerWheel::open`] returns the last
//! checkpoint; the caller re-schedules what it enqueued since (its source is the system topic)
//! and re-delivers what it delivered since (at-least-once).
//!
//! Must never: hold per-timer memory, fire a slot before its time, lose an entry of a slot
//! not yet finished, or change precision/round of an existing wheel (refused at open), or
//! fsync or replace a file itself (the plan's executor does). The broker writes the buffered
//! entries out on io_uring too ([`TimerWheel::log_writes`]). What stays blocking here, on
//! small buffered entries: opening the wheel at start-up, the backstop write of a buffer
//! filled to [`WRITE_BUFFER_BYTES_MAX`] inside one operation (page cache, no sync) and chain
//! reads (page cache: the log is written shortly before it is read); `docs/timer.md` says so.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of one timer-log entry: deliver ms (8), queue offset (8), previous entry (8), magic
/// (4), CRC of the first 28 bytes (4).
pub const ENTRY_SIZE: usize = 32;
/// Entries per timer-log segment file (32 MiB): a segment is deleted once none of its entries
/// is pending.
pub const SEGMENT_ENTRIES: u64 = 1 << 20;
/// Bytes the log buffers before writing them out itself, with a blocking page-cache write
/// (bounded memory; reads see the buffer). The broker writes the buffer out on io_uring from
/// [`WRITE_BUFFER_BYTES_ASYNC`] on, between wheel operations, so this is reached only inside
/// one large operation (a round promotion of many timers).
pub const WRITE_BUFFER_BYTES_MAX: usize = 256 * 1024;
/// Buffered bytes from which the broker writes the log out on io_uring after a wheel
/// operation (`super::io::write_log`).
pub const WRITE_BUFFER_BYTES_ASYNC: usize = 64 * 1024;
const _: () = assert!(WRITE_BUFFER_BYTES_ASYNC < WRITE_BUFFER_BYTES_MAX);
/// Most fine slots (precision 100 ms over two one-hour rounds is 72,000).
pub const FINE_SLOTS_MAX: u64 = 1 << 20;
/// Most coarse slots (one per round: 2^16 one-hour rounds is over 7 years).
pub const COARSE_SLOTS_MAX: u64 = 1 << 16;

const ENTRY_MAGIC: u32 = 0x7431_6d72;
const WHEEL_MAGIC: u32 = 0x7768_6c31;
const NO_ENTRY: u64 = u64::MAX;
const _: () = assert!(
    WRITE_BUFFER_BYTES_MAX % ENTRY_SIZE == 0,
    "whole entries buffered"
);
const _: () = assert!(SEGMENT_ENTRIES > (WRITE_BUFFER_BYTES_MAX / ENTRY_SIZE) as u64);

/// What can go wrong with the timer files.
#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    /// A file operation failed.
    #[error("timer {op} failed on {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the wheel wrote.
    #[error("timer file {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The stored wheel was built with other settings.
    #[error("the timer wheel in {path} was built with {stored}; the configuration asks for {configured} (delete the timer directory and let it rebuild, or restore the settings)")]
    Settings {
        /// The wheel file.
        path: PathBuf,
        /// Its settings.
        stored: String,
        /// The configured ones.
        configured: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WheelError + 'a {
    move |source| WheelError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The wheel's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelSettings {
    /// One fine slot, ms (`timerPrecisionMs`).
    pub precision_ms: u64,
    /// One coarse slot, ms (a multiple of the precision).
    pub round_ms: u64,
    /// The longest delay accepted, ms (`timerMaxDelaySec` * 1000).
    pub max_delay_ms: u64,
}

impl WheelSettings {
    /// Fine slots: two rounds.
    #[must_use]
    pub fn fine_slots(&self) -> u64 {
        2 * self.round_ms / self.precision_ms
    }

    /// Coarse slots: every round up to the maximum delay, plus the two the fine level covers
    /// and one for rounding.
    #[must_use]
    pub fn coarse_slots(&self) -> u64 {
        self.max_delay_ms / self.round_ms + 3
    }

    /// Checks the shape.
    ///
    /// # Errors
    /// A sentence saying which bound is broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.precision_ms == 0 || self.round_ms % self.precision_ms != 0 {
            return Err("the round must be a positive multiple of the precision".into());
        }
        if self.fine_slots() > FINE_SLOTS_MAX {
            return Err(format!(
                "{} fine slots exceed FINE_SLOTS_MAX {FINE_SLOTS_MAX}",
                self.fine_slots()
            ));
        }
        if self.coarse_slots() > COARSE_SLOTS_MAX {
            return Err(format!(
                "{} coarse slots exceed COARSE_SLOTS_MAX {COARSE_SLOTS_MAX}",
                self.coarse_slots()
            ));
        }
        Ok(())
    }
}

/// One pending timer as the log holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    /// When it is due, ms since the epoch.
    pub deliver_ms: i64,
    /// Its message's offset in the timer system queue.
    pub queue_offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    head: u64,
    count: u64,
}

const EMPTY: Slot = Slot {
    head: NO_ENTRY,
    count: 0,
};

/// A chain being read in batches (see [`TimerWheel::read_chain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCursor(u64);

impl ChainCursor {
    /// Nothing more to read.
    #[must_use]
    pub fn is_done(self) -> bool {
        self.0 == NO_ENTRY
    }
}

/// One shard's timer wheel and log.
#[derive(Debug)]
pub struct TimerWheel {
    dir: PathBuf,
    settings: WheelSettings,
    fine: Vec<Slot>,
    coarse: Vec<Slot>,
    /// The next fine slot to fire (ms, a multiple of the precision): every earlier one fired.
    cursor_ms: i64,
    /// Entries appended (the next entry's index).
    log_len: u64,
    /// Entries written to segment files; the rest are in `buffer`.
    written: u64,
    buffer: Vec<u8>,
    /// Pending entries per live segment, from `first_segment`.
    first_segment: u64,
    live: Vec<u64>,
    pending: u64,
    segment: Option<(u64, File)>,
    /// Segments with nothing pending, deleted after the next checkpoint (bounded by the
    /// segments the log ever had since).
    dead: Vec<u64>,
    /// Entries per segment file ([`SEGMENT_ENTRIES`]; smaller in tests).
    segment_entries: u64,
    /// The segment file last read (chains are read segment after segment).
    reader: Option<(u64, File)>,
    /// Segments written since the last checkpoint, not yet fdatasynced (at most the segments
    /// one checkpoint interval of appends spans).
    unsynced: Vec<u64>,
}

/// The durable writes of one checkpoint, in order: fdatasync every file of `sync`, replace
/// `wheel_path` with `wheel_bytes` atomically, then delete every file of `remove`. Produced by
/// [`TimerWheel::prepare_checkpoint`]; nothing in it is durable until its executor says so.
#[derive(Debug)]
pub struct CheckpointPlan {
    /// Timer-log segment files written since the last checkpoint.
    pub sync: Vec<PathBuf>,
    /// The wheel file.
    pub wheel_path: PathBuf,
    /// Its new contents (shape, cursor, log length, live counts, the caller's bytes, slots).
    pub wheel_bytes: Vec<u8>,
    /// Segment files holding nothing pending: deleted only after the wheel file is durable.
    pub remove: Vec<PathBuf>,
    synced_segments: Vec<u64>,
    removed_segments: Vec<u64>,
}

impl TimerWheel {
    /// Opens the wheel in `dir` (created if missing) at its last checkpoint, or a new empty
    /// wheel whose cursor is `now_ms`. Returns the wheel and the caller's checkpointed bytes.
    ///
    /// # Errors
    /// [`WheelError`] for an unreadable or corrupt file or changed settings.
    ///
    /// # Panics
    /// If `settings` are invalid (the config validated them).
    pub fn open(
        dir: &Path,
        settings: WheelSettings,
        now_ms: i64,
    ) -> Result<(Self, Vec<u8>), WheelError> {
        Self::open_segmented(dir, settings, now_ms, SEGMENT_ENTRIES)
    }

    fn open_segmented(
        dir: &Path,
        settings: WheelSettings,
        now_ms: i64,
        segment_entries: u64,
    ) -> Result<(Self, Vec<u8>), WheelError> {
        settings.validate().expect("validated settings");
        assert!(segment_entries > 0, "segments hold entries");
        std::fs::create_dir_all(dir.join("timerlog")).map_err(io("create", dir))?;
        let fine_slots = usize::try_from(settings.fine_slots()).expect("bounded");
        let coarse_slots = usize::try_from(settings.coarse_slots()).expect("bounded");
        let mut wheel = Self {
            dir: dir.to_owned(),
            settings,
            fine: vec![EMPTY; fine_slots],
            coarse: vec![EMPTY; coarse_slots],
            cursor_ms: align_down(now_ms, settings.precision_ms),
            log_len: 0,
            written: 0,
            buffer: Vec::new(),
            first_segment: 0,
            live: Vec::new(),
            pending: 0,
            segment: None,
            dead: Vec::new(),
            segment_entries,
            reader: None,
            unsynced: Vec::new(),
        };
        let path = wheel.wheel_path();
        let extra = match std::fs::read(&path) {
            Ok(bytes) => wheel.restore(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read", &path)(e)),
        };
        wheel.written = wheel.log_len;
        wheel.remove_segments_outside()?;
        Ok((wheel, extra))
    }

    fn wheel_path(&self) -> PathBuf {
        self.dir.join("wheel")
    }

    fn segment_path(&self, segment: u64) -> PathBuf {
        self.dir
            .join("timerlog")
            .join(format!("{:020}", segment * self.segment_entries))
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> WheelSettings {
        self.settings
    }

    /// Timers scheduled and not yet finished.
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Entries ever appended to the log (grows with every schedule, promotion and move).
    #[must_use]
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// The next slot to fire, ms.
    #[must_use]
    pub fn cursor_ms(&self) -> i64 {
        self.cursor_ms
    }

    /// The earliest slot time with a pending timer (admin's "next due"), scanning the fine
    /// level then the coarse one (bounded by the slot counts).
    #[must_use]
    pub fn next_due_ms(&self) -> Option<i64> {
        let p = i64::try_from(self.settings.precision_ms).expect("bounded");
        let r = i64::try_from(self.settings.round_ms).expect("bounded");
        let fine = i64::try_from(self.fine.len()).expect("bounded");
        for step in 0..fine {
            let at = self.cursor_ms + step * p;
            if self.fine[self.fine_index(at)].count > 0 {
                return Some(at);
            }
        }
        let coarse = i64::try_from(self.coarse.len()).expect("bounded");
        let round = self.cursor_ms.div_euclid(r);
        (2..coarse)
            .map(|k| (round + k) * r)
            .find(|at| self.coarse[self.coarse_index(*at)].count > 0)
    }

    fn fine_index(&self, at_ms: i64) -> usize {
        let p = i64::try_from(self.settings.precision_ms).expect("bounded");
        let n = i64::try_from(self.fine.len()).expect("bounded");
        usize::try_from(at_ms.div_euclid(p).rem_euclid(n)).expect("non-negative")
    }

    fn coarse_index(&self, at_ms: i64) -> usize {
        let r = i64::try_from(self.settings.round_ms).expect("bounded");
        let n = i64::try_from(self.coarse.len()).expect("bounded");
        usize::try_from(at_ms.div_euclid(r).rem_euclid(n)).expect("non-negative")
    }

    fn round_of(&self, at_ms: i64) -> i64 {
        at_ms.div_euclid(i64::try_from(self.settings.round_ms).expect("bounded"))
    }

    /// Whether `deliver_ms` is within the maximum delay of `now_ms` (the send check).
    #[must_use]
    pub fn accepts(&self, deliver_ms: i64, now_ms: i64) -> bool {
        let max = i64::try_from(self.settings.max_delay_ms).expect("bounded");
        deliver_ms <= now_ms.saturating_add(max)
    }

    /// Schedules a timer: O(1), one log append. A time at or before the cursor fires with the
    /// cursor's slot. A time beyond the coarse level (only possible after a restart whose
    /// cursor is far behind the clock) waits in the farthest coarse slot and is placed again
    /// when that slot is promoted.
    ///
    /// # Errors
    /// [`WheelError::Io`] writing out the buffer.
    pub fn schedule(&mut self, entry: TimerEntry) -> Result<(), WheelError> {
        let at = entry.deliver_ms.max(self.cursor_ms);
        let round = self.round_of(at);
        let cursor_round = self.round_of(self.cursor_ms);
        let coarse = i64::try_from(self.coarse.len()).expect("bounded");
        self.pending += 1;
        if round <= cursor_round + 1 {
            let index = self.fine_index(at);
            self.push(Level::Fine, index, entry)
        } else {
            let r = i64::try_from(self.settings.round_ms).expect("bounded");
            let parked = round.min(cursor_round + coarse - 1);
            let index = self.coarse_index(parked * r);
            self.push(Level::Coarse, index, entry)
        }
    }

    fn push(&mut self, level: Level, index: usize, entry: TimerEntry) -> Result<(), WheelError> {
        let slot = match level {
            Level::Fine => &mut self.fine[index],
            Level::Coarse => &mut self.coarse[index],
        };
        let prev = slot.head;
        let at = self.log_len;
        slot.head = at;
        slot.count += 1;
        self.log_len += 1;
        let segment = at / self.segment_entries;
        if at % self.segment_entries == 0 && segment > self.first_segment {
            // The segment just filled may have emptied while it was the current one.
            let previous = usize::try_from(segment - 1 - self.first_segment).expect("bounded");
            if self.live.get(previous) == Some(&0) {
                self.dead.push(segment - 1);
            }
        }
        let position = usize::try_from(segment - self.first_segment).expect("bounded");
        if self.live.len() <= position {
            self.live.resize(position + 1, 0);
        }
        self.live[position] += 1;
        self.buffer.extend_from_slice(&encode_entry(entry, prev));
        if self.buffer.len() >= WRITE_BUFFER_BYTES_MAX {
            self.write_out()?;
        }
        Ok(())
    }

    /// The slot due at `now_ms`, if any: the cursor once its whole slot has passed (a slot
    /// fires at its end, so no timer fires before its time). Its chain is read with
    /// [`Self::read_chain`] from [`Self::due_chain`] and ended by [`Self::finish_slot`].
    #[must_use]
    pub fn due_slot(&self, now_ms: i64) -> Option<i64> {
        (self.fires_at_ms() <= now_ms).then_some(self.cursor_ms)
    }

    /// When the cursor slot fires: its end.
    #[must_use]
    pub fn fires_at_ms(&self) -> i64 {
        self.cursor_ms + i64::try_from(self.settings.precision_ms).expect("bounded")
    }

    /// The start of the cursor slot's chain.
    #[must_use]
    pub fn due_chain(&self) -> ChainCursor {
        ChainCursor(self.fine[self.fine_index(self.cursor_ms)].head)
    }

    /// Reads up to `max` entries of a chain (newest first).
    ///
    /// # Errors
    /// [`WheelError`] reading the log.
    pub fn read_chain(
        &mut self,
        cursor: &mut ChainCursor,
        max: usize,
    ) -> Result<Vec<TimerEntry>, WheelError> {
        let mut entries = Vec::new();
        while !cursor.is_done() && entries.len() < max {
            let (entry, prev) = self.read_entry(cursor.0)?;
            entries.push(entry);
            cursor.0 = prev;
        }
        Ok(entries)
    }

    /// Ends the cursor slot whose chain was read from `delivered` (the [`Self::due_chain`]
    /// taken before reading: every entry of it was delivered), moves the cursor one slot on and,
    /// entering a new round, moves the coarse chain of the round after it into the fine level.
    /// Entries scheduled into the slot after `delivered` was taken are due now and move to the
    /// next slot (their count is bounded by what was enqueued while the slot was delivered).
    ///
    /// # Errors
    /// [`WheelError`] reading or writing the log.
    pub fn finish_slot(&mut self, delivered: ChainCursor) -> Result<(), WheelError> {
        let index = self.fine_index(self.cursor_ms);
        let slot = std::mem::replace(&mut self.fine[index], EMPTY);
        let mut late = Vec::new();
        let mut at = slot.head;
        while at != NO_ENTRY && (delivered.0 == NO_ENTRY || at > delivered.0) {
            let (entry, prev) = self.read_entry(at)?;
            late.push(entry);
            at = prev;
        }
        assert!(
            at == delivered.0,
            "the delivered chain is the tail of the slot's chain"
        );
        self.release(slot)?;
        self.pending -= slot.count;
        let before = self.round_of(self.cursor_ms);
        self.cursor_ms += i64::try_from(self.settings.precision_ms).expect("bounded");
        if self.round_of(self.cursor_ms) != before {
            self.promote_round()?;
        }
        for entry in late.into_iter().rev() {
            self.schedule(entry)?;
        }
        Ok(())
    }

    /// Moves the coarse slot of the round after the cursor's into the fine level.
    fn promote_round(&mut self) -> Result<(), WheelError> {
        let r = i64::try_from(self.settings.round_ms).expect("bounded");
        let next = (self.round_of(self.cursor_ms) + 1) * r;
        let index = self.coarse_index(next);
        let slot = std::mem::replace(&mut self.coarse[index], EMPTY);
        let mut cursor = ChainCursor(slot.head);
        let mut moved = 0;
        while !cursor.is_done() {
            for entry in self.read_chain(&mut cursor, 1024)? {
                assert!(
                    self.round_of(entry.deliver_ms) >= self.round_of(next),
                    "a coarse chain holds no timer of an earlier round"
                );
                self.schedule(entry)?;
                moved += 1;
            }
        }
        assert_eq!(moved, slot.count, "a coarse chain holds its count");
        self.release(slot)?;
        self.pending -= slot.count;
        Ok(())
    }

    /// Drops a finished chain's entries from the live counts (walking it: the entries of one
    /// chain may span segments) and deletes segments that hold nothing pending.
    fn release(&mut self, slot: Slot) -> Result<(), WheelError> {
        let mut at = slot.head;
        let mut released = 0;
        while at != NO_ENTRY {
            let (_, prev) = self.read_entry(at)?;
            let position = usize::try_from(at / self.segment_entries - self.first_segment)
                .expect("a pending entry's segment is live");
            self.live[position] -= 1;
            let segment = at / self.segment_entries;
            if self.live[position] == 0 && segment < self.log_len / self.segment_entries {
                // Nothing pending in a full segment: its file goes after the next checkpoint.
                self.dead.push(segment);
            }
            released += 1;
            at = prev;
        }
        assert_eq!(released, slot.count, "a chain holds its count");
        self.remove_dead_segments();
        Ok(())
    }

    fn remove_dead_segments(&mut self) {
        let current = self.log_len / self.segment_entries;
        while self.first_segment < current && self.live.first() == Some(&0) {
            // Its file is already listed in `dead` (by `release` or `push`).
            self.live.remove(0);
            self.first_segment += 1;
        }
    }

    fn remove_segments_outside(&mut self) -> Result<(), WheelError> {
        let dir = self.dir.join("timerlog");
        let read = std::fs::read_dir(&dir).map_err(io("list", &dir))?;
        for item in read {
            let item = item.map_err(io("list", &dir))?;
            let name = item.file_name();
            let Some(first) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let segment = first / self.segment_entries;
            let current = self.log_len / self.segment_entries;
            let empty = segment < current
                && segment >= self.first_segment
                && self
                    .live
                    .get(usize::try_from(segment - self.first_segment).unwrap_or(usize::MAX))
                    .is_none_or(|live| *live == 0);
            if segment < self.first_segment || segment > current || empty {
                let path = item.path();
                std::fs::remove_file(&path).map_err(io("remove", &path))?;
            }
        }
        Ok(())
    }

    fn read_entry(&mut self, at: u64) -> Result<(TimerEntry, u64), WheelError> {
        assert!(
            at < self.log_len,
            "entry {at} beyond the log {}",
            self.log_len
        );
        let mut bytes = [0u8; ENTRY_SIZE];
        let path;
        if at >= self.written {
            let start = usize::try_from(at - self.written).expect("bounded") * ENTRY_SIZE;
            bytes.copy_from_slice(&self.buffer[start..start + ENTRY_SIZE]);
            path = PathBuf::from("<buffer>");
        } else {
            let segment = at / self.segment_entries;
            path = self.segment_path(segment);
            if self.reader.as_ref().map(|(s, _)| *s) != Some(segment) {
                let file = File::open(&path).map_err(io("open", &path))?;
                self.reader = Some((segment, file));
            }
            let (_, file) = self.reader.as_ref().expect("opened above");
            let offset = (at % self.segment_entries) * ENTRY_SIZE as u64;
            file.read_exact_at(&mut bytes, offset)
                .map_err(io("read", &path))?;
        }
        decode_entry(&bytes).ok_or_else(|| WheelError::Corrupt {
            path,
            detail: format!("entry {at} fails its checksum"),
        })
    }

    /// Bytes of log entries buffered, not yet written out.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// The buffered log entries as positional writes, one per segment file they fall in
    /// (path, byte offset, bytes), for the caller to write (io_uring in the broker) before
    /// [`Self::log_written`]. The wheel is unchanged until then: a failed write leaves the
    /// entries buffered (reads keep seeing them) and the next call hands them out again.
    #[must_use]
    pub fn log_writes(&self) -> Vec<(PathBuf, u64, Vec<u8>)> {
        let mut writes = Vec::new();
        let mut start = 0;
        while start < self.buffer.len() {
            let at = self.written + (start / ENTRY_SIZE) as u64;
            let room =
                usize::try_from(self.segment_entries - at % self.segment_entries).expect("bounded");
            let end = self.buffer.len().min(start + room * ENTRY_SIZE);
            let offset = (at % self.segment_entries) * ENTRY_SIZE as u64;
            let path = self.segment_path(at / self.segment_entries);
            writes.push((path, offset, self.buffer[start..end].to_vec()));
            start = end;
        }
        writes
    }

    /// The writes [`Self::log_writes`] returned are done: the entries are in their segment
    /// files (to be fdatasynced by the next checkpoint) and leave the buffer.
    pub fn log_written(&mut self) {
        let mut at = self.written;
        while at < self.log_len {
            let segment = at / self.segment_entries;
            if !self.unsynced.contains(&segment) {
                self.unsynced.push(segment);
            }
            at = (segment + 1) * self.segment_entries;
        }
        self.written = self.log_len;
        self.buffer.clear();
    }

    fn write_out(&mut self) -> Result<(), WheelError> {
        let mut start = 0;
        while start < self.buffer.len() {
            let at = self.written + (start / ENTRY_SIZE) as u64;
            let segment = at / self.segment_entries;
            let room =
                usize::try_from(self.segment_entries - at % self.segment_entries).expect("bounded");
            let end = self.buffer.len().min(start + room * ENTRY_SIZE);
            let path = self.segment_path(segment);
            if !self.unsynced.contains(&segment) {
                self.unsynced.push(segment);
            }
            if self.segment.as_ref().map(|(s, _)| *s) != Some(segment) {
                // The previous segment is fdatasynced by the next checkpoint's plan.
                self.segment = None;
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(io("open", &path))?;
                self.segment = Some((segment, file));
            }
            let (_, file) = self.segment.as_mut().expect("opened above");
            let offset = (at % self.segment_entries) * ENTRY_SIZE as u64;
            file.write_all_at(&self.buffer[start..end], offset)
                .map_err(io("write", &path))?;
            start = end;
        }
        self.written = self.log_len;
        self.buffer.clear();
        Ok(())
    }

    /// Starts a checkpoint: writes the buffered log entries out (page cache) and returns what
    /// must be made durable, in order ([`CheckpointPlan`]). The wheel must not change until
    /// the plan is reported back ([`Self::checkpoint_done`] or [`Self::checkpoint_failed`]):
    /// the broker holds its step lock throughout.
    ///
    /// # Errors
    /// [`WheelError::Io`] writing the buffer out.
    pub fn prepare_checkpoint(&mut self, extra: &[u8]) -> Result<CheckpointPlan, WheelError> {
        self.write_out()?;
        let synced_segments = std::mem::take(&mut self.unsynced);
        let removed_segments = std::mem::take(&mut self.dead);
        Ok(CheckpointPlan {
            sync: synced_segments
                .iter()
                .map(|s| self.segment_path(*s))
                .collect(),
            wheel_path: self.wheel_path(),
            wheel_bytes: self.encode(extra),
            remove: removed_segments
                .iter()
                .map(|s| self.segment_path(*s))
                .collect(),
            synced_segments,
            removed_segments,
        })
    }

    /// The plan was carried out: every file synced, the wheel replaced, the dead segments
    /// deleted.
    pub fn checkpoint_done(&mut self, plan: CheckpointPlan) {
        assert!(
            self.dead.is_empty(),
            "the wheel changed during a checkpoint"
        );
        if let Some((segment, _)) = &self.reader {
            if plan.removed_segments.contains(segment) {
                self.reader = None;
            }
        }
    }

    /// The plan failed part-way: its syncs and deletions are owed again by the next
    /// checkpoint (a deletion that already happened is skipped then).
    pub fn checkpoint_failed(&mut self, plan: CheckpointPlan) {
        for segment in plan.synced_segments {
            if !self.unsynced.contains(&segment) {
                self.unsynced.push(segment);
            }
        }
        self.dead.extend(plan.removed_segments);
    }

    /// A whole checkpoint with blocking `std::fs` calls, for the wheel used alone (its tests,
    /// `examples/timer_wheel_bench.rs`). Never on a shard thread: the broker carries the plan
    /// out on io_uring (`super::io::write_checkpoint`).
    ///
    /// # Errors
    /// [`WheelError::Io`].
    pub fn checkpoint_blocking(&mut self, extra: &[u8]) -> Result<(), WheelError> {
        let plan = self.prepare_checkpoint(extra)?;
        let executed = (|| {
            for path in &plan.sync {
                File::open(path)
                    .and_then(|f| f.sync_data())
                    .map_err(io("fdatasync", path))?;
            }
            rmq_storage::atomic_file::replace_blocking(&plan.wheel_path, &plan.wheel_bytes, false)
                .map_err(|e| WheelError::Io {
                    op: "replace",
                    path: plan.wheel_path.clone(),
                    source: e.source,
                })?;
            for path in &plan.remove {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("remove", path)(e)),
                }
            }
            Ok(())
        })();
        match executed {
            Ok(()) => {
                self.checkpoint_done(plan);
                Ok(())
            }
            Err(e) => {
                self.checkpoint_failed(plan);
                Err(e)
            }
        }
    }

    fn encode(&self, extra: &[u8]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(128 + extra.len() + 16 * (self.fine.len() + self.coarse.len()));
        out.extend_from_slice(&WHEEL_MAGIC.to_le_bytes());
        for value in [
            self.settings.precision_ms,
            self.settings.round_ms,
            self.settings.max_delay_ms,
            self.cursor_ms as u64,
            self.log_len,
            self.first_segment,
            self.pending,
            self.live.len() as u64,
            extra.len() as u64,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for live in &self.live {
            out.extend_from_slice(&live.to_le_bytes());
        }
        out.extend_from_slice(extra);
        for slot in self.fine.iter().chain(&self.coarse) {
            out.extend_from_slice(&slot.head.to_le_bytes());
            out.extend_from_slice(&slot.count.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn restore(&mut self, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, WheelError> {
        let corrupt = |detail: &str| WheelError::Corrupt {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        if bytes.len() < 8 + 9 * 8 {
            return Err(corrupt("too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut reader = Reader { bytes: body, at: 4 };
        if body[..4] != WHEEL_MAGIC.to_le_bytes() {
            return Err(corrupt("bad magic"));
        }
        let stored = WheelSettings {
            precision_ms: reader.u64().ok_or_else(|| corrupt("short"))?,
            round_ms: reader.u64().ok_or_else(|| corrupt("short"))?,
            max_delay_ms: reader.u64().ok_or_else(|| corrupt("short"))?,
        };
        if stored != self.settings {
            return Err(WheelError::Settings {
                path: path.to_owned(),
                stored: format!("{stored:?}"),
                configured: format!("{:?}", self.settings),
            });
        }
        let mut next = || reader.u64().ok_or_else(|| corrupt("short"));
        self.cursor_ms = next()? as i64;
        self.log_len = next()?;
        self.first_segment = next()?;
        self.pending = next()?;
        let live_len = next()?;
        let extra_len = next()?;
        if live_len > self.log_len / self.segment_entries + 1 {
            return Err(corrupt("more live segments than the log has"));
        }
        self.live = (0..live_len)
            .map(|_| reader.u64().ok_or_else(|| corrupt("short")))
            .collect::<Result<_, _>>()?;
        let extra = reader
            .take(usize::try_from(extra_len).map_err(|_| corrupt("extra length"))?)
            .ok_or_else(|| corrupt("short extra"))?
            .to_vec();
        for slot in self.fine.iter_mut().chain(self.coarse.iter_mut()) {
            let head = reader.u64().ok_or_else(|| corrupt("short slots"))?;
            let count = reader.u64().ok_or_else(|| corrupt("short slots"))?;
            if head != NO_ENTRY && head >= self.log_len {
                return Err(corrupt("a slot points past the log"));
            }
            *slot = Slot { head, count };
        }
        if reader.at != body.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(extra)
    }
}

#[derive(Debug, Clone, Copy)]
enum Level {
    Fine,
    Coarse,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

fn align_down(ms: i64, precision_ms: u64) -> i64 {
    let p = i64::try_from(precision_ms).expect("bounded");
    ms.div_euclid(p) * p
}

fn encode_entry(entry: TimerEntry, prev: u64) -> [u8; ENTRY_SIZE] {
    let mut bytes = [0u8; ENTRY_SIZE];
    bytes[0..8].copy_from_slice(&entry.deliver_ms.to_le_bytes());
    bytes[8..16].copy_from_slice(&entry.queue_offset.to_le_bytes());
    bytes[16..24].copy_from_slice(&prev.to_le_bytes());
    bytes[24..28].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..28]) ^ ENTRY_MAGIC;
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode_entry(bytes: &[u8; ENTRY_SIZE]) -> Option<(TimerEntry, u64)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if u32_at(28) != crc32fast::hash(&bytes[..28]) ^ ENTRY_MAGIC || u32_at(24) != ENTRY_MAGIC {
        return None;
    }
    Some((
        TimerEntry {
            deliver_ms: u64_at(0) as i64,
            queue_offset: u64_at(8),
        },
        u64_at(16),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const SETTINGS: WheelSettings = WheelSettings {
        precision_ms: 10,
        round_ms: 100,
        max_delay_ms: 1_000,
    };

    fn temp_dir(name: &str) -> PathBuf {
        let root =
            std::env::var_os("MQ_TEST_DISK_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = root.join(format!(
            "rmq-timer-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn entry(deliver_ms: i64, queue_offset: u64) -> TimerEntry {
        TimerEntry {
            deliver_ms,
            queue_offset,
        }
    }

    /// Fires every slot due at `now`, returning (slot time, entry) per delivery.
    fn fire(wheel: &mut TimerWheel, now: i64) -> Vec<(i64, TimerEntry)> {
        let mut out = Vec::new();
        while let Some(slot) = wheel.due_slot(now) {
            let start = wheel.due_chain();
            let mut cursor = start;
            while !cursor.is_done() {
                for entry in wheel.read_chain(&mut cursor, 7).expect("read") {
                    out.push((slot, entry));
                }
            }
            wheel.finish_slot(start).expect("finish");
        }
        out
    }

    #[test]
    fn timers_fire_in_their_slot_across_rounds_and_restarts() {
        let dir = temp_dir("basic");
        let start = 1_000_000;
        let (mut wheel, extra) = TimerWheel::open(&dir, SETTINGS, start).expect("open");
        assert!(extra.is_empty());
        for (offset, delay) in [(0u64, 5i64), (1, 250), (2, 999), (3, -50), (4, 250)] {
            wheel
                .schedule(entry(start + delay, offset))
                .expect("schedule");
        }
        assert_eq!(wheel.pending(), 5);
        assert_eq!(wheel.next_due_ms(), Some(start));
        assert!(
            fire(&mut wheel, start + 9).is_empty(),
            "a slot fires at its end"
        );
        let fired = fire(&mut wheel, start + 10);
        let offsets: Vec<u64> = fired.iter().map(|(_, e)| e.queue_offset).collect();
        assert_eq!(offsets, vec![3, 0]);
        wheel.checkpoint_blocking(b"caller").expect("checkpoint");
        drop(wheel);
        let (mut wheel, extra) = TimerWheel::open(&dir, SETTINGS, start + 500).expect("reopen");
        assert_eq!(extra, b"caller");
        assert_eq!(wheel.pending(), 3);
        assert_eq!(
            wheel.cursor_ms(),
            start + 10,
            "the cursor is the checkpoint's"
        );
        let fired = fire(&mut wheel, start + 260);
        let mut offsets: Vec<u64> = fired.iter().map(|(_, e)| e.queue_offset).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, vec![1, 4]);
        assert!(fired.iter().all(|(slot, _)| *slot == start + 250));
        let fired = fire(&mut wheel, start + 2_000);
        assert_eq!(fired, vec![(start + 990, entry(start + 999, 2))]);
        assert_eq!(wheel.pending(), 0);
        assert_eq!(wheel.next_due_ms(), None);
        wheel.checkpoint_blocking(&[]).expect("checkpoint");
        let other = WheelSettings {
            precision_ms: 20,
            ..SETTINGS
        };
        assert!(matches!(
            TimerWheel::open(&dir, other, start),
            Err(WheelError::Settings { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_timer_scheduled_while_its_slot_is_delivered_fires_with_the_next_slot() {
        let dir = temp_dir("late");
        let (mut wheel, _) = TimerWheel::open(&dir, SETTINGS, 0).expect("open");
        wheel.schedule(entry(0, 1)).expect("schedule");
        let start = wheel.due_chain();
        let mut cursor = start;
        let first = wheel.read_chain(&mut cursor, 10).expect("read");
        assert_eq!(first, vec![entry(0, 1)]);
        wheel
            .schedule(entry(0, 2))
            .expect("schedule during delivery");
        wheel.finish_slot(start).expect("finish");
        assert_eq!(wheel.pending(), 1);
        assert_eq!(fire(&mut wheel, 20), vec![(10, entry(0, 2))]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn log_writes_handed_out_are_read_back_after_log_written() {
        let dir = temp_dir("handed");
        let (mut wheel, _) = TimerWheel::open_segmented(&dir, SETTINGS, 0, 4).expect("open");
        for offset in 0..10u64 {
            wheel.schedule(entry(500, offset)).expect("schedule");
        }
        let writes = wheel.log_writes();
        assert_eq!(writes.len(), 3, "10 entries over segments of 4");
        assert_eq!(
            wheel.buffered_bytes(),
            10 * ENTRY_SIZE,
            "unchanged until written"
        );
        for (path, offset, bytes) in &writes {
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(path)
                .expect("open");
            file.write_all_at(bytes, *offset).expect("write");
        }
        wheel.log_written();
        assert_eq!(wheel.buffered_bytes(), 0);
        assert!(wheel.log_writes().is_empty());
        let mut fired: Vec<u64> = fire(&mut wheel, 1_000)
            .into_iter()
            .map(|(_, e)| e.queue_offset)
            .collect();
        fired.sort_unstable();
        assert_eq!(
            fired,
            (0..10).collect::<Vec<_>>(),
            "read back from the files"
        );
        wheel.checkpoint_blocking(&[]).expect("checkpoint");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_wheel_file_is_refused() {
        let dir = temp_dir("corrupt");
        let (mut wheel, _) = TimerWheel::open(&dir, SETTINGS, 0).expect("open");
        wheel.schedule(entry(500, 1)).expect("schedule");
        wheel.checkpoint_blocking(&[]).expect("checkpoint");
        drop(wheel);
        let path = dir.join("wheel");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            TimerWheel::open(&dir, SETTINGS, 0),
            Err(WheelError::Corrupt { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule(i64),
        Advance(i64),
        Checkpoint,
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (-30i64..1_000).prop_map(Op::Schedule),
            3 => (0i64..250).prop_map(Op::Advance),
            1 => Just(Op::Checkpoint),
            1 => Just(Op::Crash),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Against a model: no timer fires early, none is lost across crashes (the caller
        /// re-schedules what it scheduled since the checkpoint, as the broker re-scans its
        /// system queue), and only what fired since the last checkpoint fires twice.
        #[test]
        fn wheel_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
            let dir = temp_dir("model");
            let mut now = 5_000i64;
            let (mut wheel, _) = TimerWheel::open_segmented(&dir, SETTINGS, now, 8).expect("open");
            let mut scheduled: BTreeMap<u64, i64> = BTreeMap::new();
            let mut since_checkpoint: Vec<TimerEntry> = Vec::new();
            let mut fired_since_checkpoint: Vec<u64> = Vec::new();
            let mut fired: BTreeMap<u64, u32> = BTreeMap::new();
            let mut allowed_duplicates: BTreeMap<u64, u32> = BTreeMap::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Schedule(delay) => {
                        let timer = entry(now + delay, next);
                        next += 1;
                        wheel.schedule(timer).expect("schedule");
                        scheduled.insert(timer.queue_offset, timer.deliver_ms);
                        since_checkpoint.push(timer);
                    }
                    Op::Advance(ms) => {
                        now += ms;
                        for (slot, timer) in fire(&mut wheel, now) {
                            prop_assert!(slot + 10 <= now);
                            prop_assert!(timer.deliver_ms <= now, "early: {timer:?} at {now}");
                            prop_assert!(timer.deliver_ms < slot + 10, "early: {timer:?} at {slot}");
                            *fired.entry(timer.queue_offset).or_default() += 1;
                            fired_since_checkpoint.push(timer.queue_offset);
                        }
                    }
                    Op::Checkpoint => {
                        wheel.checkpoint_blocking(&[]).expect("checkpoint");
                        since_checkpoint.clear();
                        fired_since_checkpoint.clear();
                    }
                    Op::Crash => {
                        drop(wheel);
                        wheel = TimerWheel::open_segmented(&dir, SETTINGS, now, 8).expect("reopen").0;
                        for timer in since_checkpoint.iter().copied() {
                            wheel.schedule(timer).expect("re-schedule");
                        }
                        for offset in fired_since_checkpoint.drain(..) {
                            *allowed_duplicates.entry(offset).or_default() += 1;
                        }
                    }
                }
            }
            now += 20_000;
            for (slot, timer) in fire(&mut wheel, now) {
                prop_assert!(timer.deliver_ms < slot + 10, "early: {timer:?} at {slot}");
                *fired.entry(timer.queue_offset).or_default() += 1;
            }
            prop_assert_eq!(wheel.pending(), 0);
            wheel.checkpoint_blocking(&[]).expect("checkpoint");
            let files = std::fs::read_dir(dir.join("timerlog")).expect("list").count();
            prop_assert!(files <= 1, "{} timer-log segments left with nothing pending", files);
            for offset in scheduled.keys() {
                let times = fired.get(offset).copied().unwrap_or(0);
                let extra = allowed_duplicates.get(offset).copied().unwrap_or(0);
                prop_assert!(times >= 1, "timer {} lost", offset);
                prop_assert!(times <= 1 + extra, "timer {} fired {} times", offset, times);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
