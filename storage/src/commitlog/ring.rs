//! The CommitLog's tail ring: one aligned buffer that is both the write buffer and the tail cache.
//!
//! Owns the bytes of the most recent `capacity` log offsets, stored at `offset % capacity`.
//! Appends copy record bytes in; the flusher hands block-aligned [`RingSlice`]s of it straight to
//! O_DIRECT writes (no second copy); reads of recent records copy out of it. The caller (the
//! CommitLog state) guarantees which offsets are valid and that appends never overwrite bytes
//! not yet written to disk.
//!
//! Must never: reallocate (in-flight writes point into it), hand out a `&mut` to its memory, or
//! be shared across threads (`Rc` and a raw pointer: `!Send`, `!Sync`).
//!
//! Aliasing note: while a write of `[a, b)` is in flight, the kernel reads those bytes. Appends
//! only write at or after the append mark, which is `>= b - (b mod block)`: the one byte range
//! both touch is the tail of the last, partly filled block, past the write's data end. Whatever
//! the kernel sees there lands on disk past the durable mark and is rewritten by the next write
//! (records past a durable mark are validated by CRC on recovery). No Rust reference to ring
//! memory outlives a method call, so the concurrent accesses are by the kernel and raw pointers.

use std::rc::Rc;

use compio::buf::IoBuf;

use crate::align::AlignedBuf;

/// The ring buffer. See the module doc for the aliasing rules.
pub(crate) struct Ring {
    /// Owns the allocation `base` points into; never accessed through a reference after `new`.
    _storage: AlignedBuf,
    base: *mut u8,
    capacity: usize,
}

impl Ring {
    /// A zeroed ring of `capacity` bytes aligned to `alignment`.
    pub(crate) fn new(capacity: usize, alignment: usize) -> Rc<Self> {
        let mut buf = AlignedBuf::new_zeroed(capacity, alignment);
        assert_eq!(
            buf.capacity(),
            capacity,
            "ring capacity must be a multiple of the alignment"
        );
        let base = buf.as_mut_ptr();
        Rc::new(Self {
            _storage: buf,
            base,
            capacity,
        })
    }

    /// Ring size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn index(&self, offset: u64) -> usize {
        (offset % self.capacity as u64) as usize
    }

    /// Copies `bytes` to log offset `offset` (wrapping at the ring end).
    pub(crate) fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(bytes.len() <= self.capacity, "write larger than the ring");
        let start = self.index(offset);
        let first = bytes.len().min(self.capacity - start);
        // SAFETY: `base` points to `capacity` bytes owned by `self._storage` (never reallocated);
        // `start + first <= capacity` and `bytes.len() - first <= start`. `bytes` cannot alias the
        // ring: callers pass record fields from their own buffers.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(start), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.base,
                bytes.len() - first,
            );
        }
    }

    /// Copies `pieces` back to back starting at log offset `offset`; returns the bytes copied.
    /// One index computation when the run does not wrap (the common case).
    pub(crate) fn write_pieces(&self, offset: u64, pieces: &[&[u8]]) -> usize {
        let total: usize = pieces.iter().map(|piece| piece.len()).sum();
        assert!(total <= self.capacity, "write larger than the ring");
        let start = self.index(offset);
        if start + total > self.capacity {
            let mut at = offset;
            for piece in pieces {
                self.write(at, piece);
                at += piece.len() as u64;
            }
            return total;
        }
        let mut cursor = start;
        for piece in pieces {
            // SAFETY: `start + total <= capacity`, so every piece lands inside the allocation;
            // pieces come from caller buffers that cannot alias the ring.
            unsafe {
                std::ptr::copy_nonoverlapping(piece.as_ptr(), self.base.add(cursor), piece.len());
            }
            cursor += piece.len();
        }
        total
    }

    /// Zeroes `len` bytes at log offset `offset` (wrapping).
    pub(crate) fn zero(&self, offset: u64, len: usize) {
        assert!(len <= self.capacity, "zero larger than the ring");
        let start = self.index(offset);
        let first = len.min(self.capacity - start);
        // SAFETY: as in `write`: both ranges lie inside the ring allocation.
        unsafe {
            std::ptr::write_bytes(self.base.add(start), 0, first);
            std::ptr::write_bytes(self.base, 0, len - first);
        }
    }

    /// Copies the bytes at log offset `offset` into `out` (wrapping).
    pub(crate) fn read(&self, offset: u64, out: &mut [u8]) {
        assert!(out.len() <= self.capacity, "read larger than the ring");
        let start = self.index(offset);
        let first = out.len().min(self.capacity - start);
        // SAFETY: source ranges lie inside the ring allocation (initialised: zeroed at
        // allocation); `out` is a distinct caller buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.base,
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }

    /// The `len` bytes at log offset `offset` (wrapping) in a new `Vec`, copied once into
    /// uninitialised memory: no zero-fill first (a zeroed allocation of a batch's size was paid
    /// as page faults on every reput batch, a fifth of a catching-up slave's CPU).
    pub(crate) fn read_to_vec(&self, offset: u64, len: usize) -> Vec<u8> {
        assert!(len <= self.capacity, "read larger than the ring");
        let mut out = Vec::with_capacity(len);
        let start = self.index(offset);
        let first = len.min(self.capacity - start);
        // SAFETY: source ranges lie inside the ring allocation (initialised: zeroed at
        // allocation); the destination is `out`'s own allocation of at least `len` bytes, and
        // all `len` bytes are written before `set_len`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(start), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.base, out.as_mut_ptr().add(first), len - first);
            out.set_len(len);
        }
        out
    }

    /// An owned view of `len` bytes at log offset `offset` for an O_DIRECT write. The range must
    /// not wrap.
    pub(crate) fn slice(self: &Rc<Self>, offset: u64, len: usize) -> RingSlice {
        let start = self.index(offset);
        assert!(
            start + len <= self.capacity,
            "ring slice wraps: split it at the ring end"
        );
        RingSlice {
            ring: Rc::clone(self),
            start,
            len,
        }
    }

    /// The log offset at which the ring wraps next after `offset` (exclusive end of the
    /// contiguous run starting at `offset`).
    pub(crate) fn contiguous_end(&self, offset: u64) -> u64 {
        offset + (self.capacity - self.index(offset)) as u64
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A contiguous, owned view into the ring, handed to io_uring as a write buffer. Keeps the ring
/// alive until the write completes (compio holds it even if the future is dropped).
pub(crate) struct RingSlice {
    ring: Rc<Ring>,
    start: usize,
    len: usize,
}

impl IoBuf for RingSlice {
    fn as_init(&self) -> &[u8] {
        // SAFETY: `start + len <= capacity` (checked in `Ring::slice`); the bytes are
        // initialised. The shared reference lives only while compio builds the request; see the
        // module doc for why appends past the data end do not conflict with the kernel's read.
        unsafe { std::slice::from_raw_parts(self.ring.base.add(self.start), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_on_write_read_zero() {
        let ring = Ring::new(8192, 4096);
        let data: Vec<u8> = (0..100u8).collect();
        ring.write(8192 * 3 - 40, &data);
        let mut out = vec![0u8; 100];
        assert_eq!(
            ring.write_pieces(8192 * 3 - 40, &[&data[..10], &data[10..]]),
            100
        );
        ring.read(8192 * 3 - 40, &mut out);
        assert_eq!(out, data);
        assert_eq!(
            ring.read_to_vec(8192 * 3 - 40, 100),
            data,
            "one copy, wrapping"
        );
        ring.zero(8192 * 3 - 10, 20);
        ring.read(8192 * 3 - 40, &mut out);
        assert!(out[30..50].iter().all(|b| *b == 0));
        assert_eq!(out[29], 29);
        assert_eq!(out[50], 50);
        assert_eq!(ring.contiguous_end(8192 * 3 - 40), 8192 * 3);
    }

    #[test]
    fn slice_is_aligned_view() {
        let ring = Ring::new(8192, 4096);
        ring.write(4096, b"abc");
        let slice = ring.slice(4096, 4096);
        assert_eq!(&slice.as_init()[..3], b"abc");
        assert_eq!(slice.as_init().as_ptr() as usize % 4096, 0);
    }

    #[test]
    #[should_panic(expected = "wraps")]
    fn slice_must_not_wrap() {
        let ring = Ring::new(8192, 4096);
        let _ = ring.slice(4096, 8192);
    }
}
