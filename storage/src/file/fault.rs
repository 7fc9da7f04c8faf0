//! The [`FaultInjector`] for tests: fail the N-th write or fdatasync, short writes, disk full,
//! injected disk usage, slow devices, a resource gone for a while under one directory
//! ([`ScopedFault`]: every open, write or fdatasync there fails with a chosen errno, e.g.
//! EMFILE or ENOSPC, until cleared), and a simulated power loss ([`CrashMode`]) that reverts or
//! tears every write no completed fdatasync covered (from pre-images [`super::DirectFile`]
//! records as `Undo`s).
//!
//! Must never: inject anything it was not armed for (each N-th fault fires once; disk full, delays
//! and scoped faults last until cleared), retry or repair on the caller's behalf, or touch a file
//! outside a simulated crash. The crash itself uses blocking std I/O and is for tests only.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::limits::BLOCK_SIZE_MIN;

/// What the fault injector decided for one write.
pub(super) enum WriteFault {
    None,
    Fail(io::Error),
    Short,
}

/// The bytes a not-yet-synced write replaced, so a simulated crash can put them back.
#[derive(Debug, Clone)]
pub(super) struct Undo {
    pub(super) pos: u64,
    pub(super) len: u64,
    /// Old contents of `[pos, pos + preimage.len())` (the part that existed before the write).
    pub(super) preimage: Vec<u8>,
    /// File size before the write.
    pub(super) old_len: u64,
}

/// How a simulated crash treats writes that no completed fdatasync covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost (files revert to their last synced content and size).
    DropUnsynced,
    /// Each block written since the last sync independently ends up in any of its versions
    /// (original, after some of the writes, or latest), chosen by a PRNG with this seed: a
    /// torn write as a power failure can leave it.
    Torn {
        /// PRNG seed.
        seed: u64,
    },
}

/// Which call a [`ScopedFault`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// Opening a file or a directory (through [`super::Disk`]): e.g. EMFILE, ENFILE, ENOSPC.
    Open,
    /// A data-file write: e.g. ENOSPC, EIO.
    Write,
    /// A data-file fdatasync: e.g. EIO.
    Sync,
}

/// A fault that fails every `op` on a path under `under` with `errno` until cleared: a
/// resource gone for a while (a process out of file descriptors, a full filesystem), not one
/// failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedFault {
    /// Paths at or under this one are affected.
    pub under: PathBuf,
    /// The call that fails.
    pub op: FaultOp,
    /// The OS error it fails with (`libc::EMFILE`, `libc::ENOSPC`, ...).
    pub errno: i32,
}

/// Injected faults for a [`super::Disk`]. Faults available (and nothing else):
/// - fail the N-th data-file write (`EIO`, nothing written) or fdatasync (`EIO`, data lost);
/// - make the N-th write short (half its length, aligned down; the rest is not written);
/// - disk full: creating a file or writing past a file's end fails with `ENOSPC`;
/// - report a chosen disk usage percentage to retention;
/// - delay every write or fdatasync by a fixed time (a slow device);
/// - [`ScopedFault`]s: every open, write or fdatasync under a directory fails with a chosen
///   errno until cleared (the open of a file or directory, the write or sync before the call);
/// - crash: revert (or tear) every write no successful fdatasync of its file covered.
///
/// "N-th" counts from the call that arms it: `1` is the next write. Each armed fault fires once.
#[derive(Debug, Default)]
pub struct FaultInjector {
    writes: Cell<u64>,
    syncs: Cell<u64>,
    fail_write_at: Cell<Option<u64>>,
    fail_sync_at: Cell<Option<u64>>,
    short_write_at: Cell<Option<u64>>,
    disk_full: Cell<bool>,
    disk_used_percent: Cell<Option<u8>>,
    sync_delay: Cell<Option<Duration>>,
    write_delay: Cell<Option<Duration>>,
    track_unsynced: Cell<bool>,
    unsynced: RefCell<HashMap<PathBuf, Vec<Undo>>>,
    scoped: RefCell<Vec<ScopedFault>>,
    scoped_hits: Cell<u64>,
}

impl FaultInjector {
    /// A fresh injector with no faults armed and unsynced-write tracking off.
    #[must_use]
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Writes seen so far.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// fdatasyncs seen so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.syncs.get()
    }

    /// Fails the `n`-th write from now (`n >= 1`) with EIO.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn fail_nth_write(&self, n: u64) {
        assert!(n >= 1);
        self.fail_write_at.set(Some(self.writes.get() + n));
    }

    /// Fails the `n`-th fdatasync from now (`n >= 1`) with EIO.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn fail_nth_sync(&self, n: u64) {
        assert!(n >= 1);
        self.fail_sync_at.set(Some(self.syncs.get() + n));
    }

    /// Makes the `n`-th write from now (`n >= 1`) short.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn short_nth_write(&self, n: u64) {
        assert!(n >= 1);
        self.short_write_at.set(Some(self.writes.get() + n));
    }

    /// Disk full on / off: file creation and writes past a file's end fail with ENOSPC.
    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.set(full);
    }

    /// Overrides the disk usage [`super::Disk::disk_usage`] reports (`None`: real statvfs).
    pub fn set_disk_used_percent(&self, percent: Option<u8>) {
        self.disk_used_percent.set(percent);
    }

    /// Arms `fault` until [`FaultInjector::clear_scoped_faults`].
    pub fn add_scoped_fault(&self, fault: ScopedFault) {
        self.scoped.borrow_mut().push(fault);
    }

    /// Disarms every scoped fault.
    pub fn clear_scoped_faults(&self) {
        self.scoped.borrow_mut().clear();
    }

    /// Calls failed by scoped faults so far.
    #[must_use]
    pub fn scoped_hits(&self) -> u64 {
        self.scoped_hits.get()
    }

    /// The error a scoped fault gives `op` on `path`, if one is armed for it.
    pub(super) fn scoped_error(&self, path: &Path, op: FaultOp) -> Option<io::Error> {
        let errno = self
            .scoped
            .borrow()
            .iter()
            .find(|fault| fault.op == op && path.starts_with(&fault.under))
            .map(|fault| fault.errno)?;
        self.scoped_hits.set(self.scoped_hits.get() + 1);
        tracing::debug!(path = %path.display(), ?op, errno, "injected scoped fault");
        Some(io::Error::from_raw_os_error(errno))
    }

    /// Delays every later fdatasync by `delay` (`None`: no delay).
    pub fn set_sync_delay(&self, delay: Option<Duration>) {
        self.sync_delay.set(delay);
    }

    /// Delays every later write by `delay` (`None`: no delay).
    pub fn set_write_delay(&self, delay: Option<Duration>) {
        self.write_delay.set(delay);
    }

    /// Starts recording the pre-image of every write so [`FaultInjector::crash`] can revert it.
    /// Costs one read per write; for tests only.
    pub fn track_unsynced(&self, on: bool) {
        self.track_unsynced.set(on);
        if !on {
            self.unsynced.borrow_mut().clear();
        }
    }

    pub(super) fn tracking(&self) -> bool {
        self.track_unsynced.get()
    }

    /// Whether the injected disk is full (file creation and small-file writes fail).
    pub(super) fn disk_full(&self) -> bool {
        self.disk_full.get()
    }

    /// The injected disk usage, if any.
    pub(super) fn disk_used_percent(&self) -> Option<u8> {
        self.disk_used_percent.get()
    }

    /// The delay before every write, if any.
    pub(super) fn write_delay(&self) -> Option<Duration> {
        self.write_delay.get()
    }

    /// The delay before every fdatasync, if any.
    pub(super) fn sync_delay(&self) -> Option<Duration> {
        self.sync_delay.get()
    }

    /// Bytes written since the last fdatasync of their file, summed over files.
    #[must_use]
    pub fn unsynced_bytes(&self) -> u64 {
        self.unsynced
            .borrow()
            .values()
            .flatten()
            .map(|undo| undo.len)
            .sum()
    }

    pub(super) fn before_write(
        &self,
        path: &Path,
        pos: u64,
        len: u64,
        file_len: u64,
    ) -> WriteFault {
        let count = self.writes.get() + 1;
        self.writes.set(count);
        if self.fail_write_at.get() == Some(count) {
            self.fail_write_at.set(None);
            return WriteFault::Fail(io::Error::from_raw_os_error(libc::EIO));
        }
        if let Some(error) = self.scoped_error(path, FaultOp::Write) {
            return WriteFault::Fail(error);
        }
        if self.disk_full.get() && pos + len > file_len {
            tracing::debug!(path = %path.display(), pos, len, "injected ENOSPC");
            return WriteFault::Fail(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        if self.short_write_at.get() == Some(count) {
            self.short_write_at.set(None);
            return WriteFault::Short;
        }
        WriteFault::None
    }

    pub(super) fn before_sync(&self, path: &Path) -> Option<io::Error> {
        let count = self.syncs.get() + 1;
        self.syncs.set(count);
        if self.fail_sync_at.get() == Some(count) {
            self.fail_sync_at.set(None);
            return Some(io::Error::from_raw_os_error(libc::EIO));
        }
        self.scoped_error(path, FaultOp::Sync)
    }

    pub(super) fn record_undo(&self, path: &Path, undo: Undo) {
        self.unsynced
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_default()
            .push(undo);
    }

    pub(super) fn synced(&self, path: &Path) {
        self.unsynced.borrow_mut().remove(path);
    }

    pub(super) fn forget_file(&self, path: &Path) {
        self.unsynced.borrow_mut().remove(path);
    }

    /// Simulates a power loss for data files: every write no completed fdatasync covered is
    /// reverted (or torn, per `mode`). Call only after the storage using this injector has
    /// stopped issuing I/O (e.g. after `CommitLog::abandon`). Uses blocking std I/O: test only.
    ///
    /// # Errors
    /// The I/O error of restoring a file.
    pub fn crash(&self, mode: CrashMode) -> io::Result<()> {
        let unsynced = std::mem::take(&mut *self.unsynced.borrow_mut());
        let mut rng = XorShift(match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::Torn { seed } => seed | 1,
        });
        for (path, undos) in unsynced {
            if undos.is_empty() {
                continue;
            }
            match mode {
                CrashMode::DropUnsynced => revert_all(&path, &undos)?,
                CrashMode::Torn { .. } => tear(&path, &undos, &mut rng)?,
            }
        }
        Ok(())
    }
}

/// Tiny deterministic PRNG for torn crashes (no dependency in the library).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % bound.max(1)
    }
}

fn open_plain(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

fn revert_all(path: &Path, undos: &[Undo]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = open_plain(path)?;
    for undo in undos.iter().rev() {
        file.write_all_at(&undo.preimage, undo.pos)?;
    }
    file.set_len(undos[0].old_len)?;
    file.sync_all()
}

/// Per 4 KiB block touched by unsynced writes, pick one of its versions at random.
fn tear(path: &Path, undos: &[Undo], rng: &mut XorShift) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = BLOCK_SIZE_MIN as u64;
    let file = open_plain(path)?;
    // Size: the original, or the size after some write (all writes extend monotonically here).
    let sizes: Vec<u64> = std::iter::once(undos[0].old_len)
        .chain(undos.iter().map(|u| u.old_len.max(u.pos + u.len)))
        .collect();
    let final_len = sizes[rng.below(sizes.len() as u64) as usize];
    let mut blocks: Vec<u64> = undos
        .iter()
        .flat_map(|u| (u.pos / BLOCK..(u.pos + u.len).div_ceil(BLOCK)).map(|b| b * BLOCK))
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    for block in blocks {
        // Versions of this block before each write touching it; the current content is last.
        let touching: Vec<&Undo> = undos
            .iter()
            .filter(|u| u.pos <= block && block < u.pos + u.len)
            .collect();
        let choice = rng.below(touching.len() as u64 + 1) as usize;
        if choice == touching.len() {
            continue; // keep the latest version
        }
        let undo = touching[choice];
        let offset = (block - undo.pos) as usize;
        if offset + BLOCK as usize <= undo.preimage.len() {
            file.write_all_at(&undo.preimage[offset..offset + BLOCK as usize], block)?;
        } else {
            // The block did not exist before that write: it reads back as zeros.
            file.write_all_at(&[0u8; BLOCK as usize], block)?;
        }
    }
    file.set_len(final_len)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::align::AlignedBuf;
    use crate::file::{block_on, scratch_dir_on_real_disk, DirectFile, Disk, OpenMode};

    /// An initialised 4 KiB-aligned buffer of `len` bytes, all `byte`.
    fn filled(byte: u8, len: usize) -> AlignedBuf {
        let mut buf = AlignedBuf::new_zeroed(len, 4096);
        buf.as_full_mut_slice().fill(byte);
        buf.set_len_initialised(len);
        buf
    }

    /// Creates the file `f` in a fresh scratch directory through a disk with `faults`, runs
    /// `body` on the disk and the file, and returns the file's path.
    fn with_file<F, Fut>(name: &str, faults: &Rc<FaultInjector>, body: F) -> PathBuf
    where
        F: FnOnce(Disk, DirectFile) -> Fut,
        Fut: Future<Output = ()>,
    {
        let path = scratch_dir_on_real_disk(name)
            .expect("scratch dir")
            .join("f");
        block_on(async {
            let disk = Disk::with_faults(faults.clone());
            let file = disk
                .open(&path, OpenMode::CreateNew, 4096)
                .await
                .expect("open");
            body(disk, file).await;
        });
        path
    }

    #[test]
    fn injected_faults_fire_once() {
        let faults = FaultInjector::new();
        let armed = faults.clone();
        with_file("file-faults", &faults, |disk, file| async move {
            let block = || filled(0, 8192);
            armed.fail_nth_write(2);
            assert!(file.write_all_at(block(), 0).await.0.is_ok());
            assert!(file.write_all_at(block(), 0).await.0.is_err());
            assert!(file.write_all_at(block(), 0).await.0.is_ok());
            armed.fail_nth_sync(1);
            assert!(file.sync_data().await.is_err());
            assert!(file.sync_data().await.is_ok());
            // A short write is completed by write_all_at.
            armed.short_nth_write(1);
            let before = armed.writes();
            assert!(file.write_all_at(block(), 8192).await.0.is_ok());
            assert_eq!(armed.writes(), before + 2);
            armed.set_disk_full(true);
            let error = file
                .write_all_at(block(), 16384)
                .await
                .0
                .expect_err("ENOSPC");
            assert!(error.is_disk_full());
            assert!(
                file.write_all_at(block(), 0).await.0.is_ok(),
                "overwrite needs no space"
            );
            let error = disk
                .open(&file.path().with_file_name("g"), OpenMode::CreateNew, 4096)
                .await
                .expect_err("full");
            assert!(error.is_disk_full());
        });
    }

    #[test]
    fn scoped_faults_hit_only_their_op_under_their_directory_until_cleared() {
        let faults = FaultInjector::new();
        let armed = faults.clone();
        with_file("file-scoped", &faults, |disk, file| async move {
            let dir = file.path().parent().expect("dir").to_path_buf();
            let inside = dir.join("sub").join("g");
            armed.add_scoped_fault(ScopedFault {
                under: dir.join("sub"),
                op: FaultOp::Open,
                errno: libc::EMFILE,
            });
            let error = disk
                .open(&inside, OpenMode::CreateOrOpen, 4096)
                .await
                .expect_err("EMFILE under the directory");
            assert!(
                matches!(&error, crate::error::StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::EMFILE)),
                "{error}"
            );
            assert!(
                disk.sync_dir(&dir.join("sub")).await.is_err(),
                "directories too"
            );
            assert!(disk.sync_dir(&dir).await.is_ok(), "outside: untouched");
            assert!(
                file.write_all_at(filled(0, 4096), 0).await.0.is_ok(),
                "writes: untouched"
            );
            armed.add_scoped_fault(ScopedFault {
                under: dir.clone(),
                op: FaultOp::Write,
                errno: libc::ENOSPC,
            });
            for _ in 0..2 {
                let (result, _) = file.write_all_at(filled(0, 4096), 0).await;
                assert!(result.expect_err("until cleared").is_disk_full());
            }
            assert!(file.sync_data().await.is_ok(), "fdatasync: untouched");
            assert_eq!(armed.scoped_hits(), 4);
            armed.clear_scoped_faults();
            assert!(file.write_all_at(filled(0, 4096), 0).await.0.is_ok());
            std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
            assert!(disk
                .open(&inside, OpenMode::CreateOrOpen, 4096)
                .await
                .is_ok());
        });
    }

    #[test]
    fn crash_reverts_unsynced_writes() {
        let faults = FaultInjector::new();
        faults.track_unsynced(true);
        let path = with_file("file-crash", &faults, |_, file| async move {
            file.write_all_at(filled(1, 4096), 0)
                .await
                .0
                .expect("write");
            file.sync_data().await.expect("sync");
            file.write_all_at(filled(2, 4096), 0)
                .await
                .0
                .expect("write");
            file.write_all_at(filled(3, 4096), 4096)
                .await
                .0
                .expect("write");
        });
        assert_eq!(faults.unsynced_bytes(), 8192);
        faults.crash(CrashMode::DropUnsynced).expect("crash");
        let bytes = std::fs::read(&path).expect("read back");
        assert_eq!(bytes.len(), 4096, "the unsynced extension is gone");
        assert!(
            bytes.iter().all(|b| *b == 1),
            "the unsynced overwrite is reverted"
        );
        assert_eq!(faults.unsynced_bytes(), 0);
    }

    #[test]
    fn torn_crash_keeps_some_version_of_each_block() {
        let faults = FaultInjector::new();
        faults.track_unsynced(true);
        let path = with_file("file-torn", &faults, |_, file| async move {
            for byte in [1u8, 2, 3] {
                let buf = filled(byte, 4 * 4096);
                file.write_all_at(buf, 0).await.0.expect("write");
            }
        });
        faults.crash(CrashMode::Torn { seed: 7 }).expect("crash");
        let bytes = std::fs::read(&path).expect("read back");
        for block in bytes.chunks(4096) {
            assert!(
                block.iter().all(|b| *b == block[0]),
                "a block is one version"
            );
            assert!([0u8, 1, 2, 3].contains(&block[0]));
        }
    }
}
