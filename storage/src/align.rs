//! Aligned heap buffers and alignment arithmetic for O_DIRECT I/O.
//!
//! Owns [`AlignedBuf`], a zero-initialised heap block whose address and capacity are multiples of
//! an I/O alignment (the device's logical block size, at least [`crate::limits::BLOCK_SIZE_MIN`]),
//! and the `align_up` / `align_down` helpers. It implements compio's `IoBuf` / `IoBufMut`, so it
//! can be handed to io_uring reads and writes by value. Large buffers that are filled whole
//! before use (disk reads, sealed index files, HA frames) are recycled through a small
//! per-thread pool ([`AlignedBuf::for_read`]): a fresh multi-MiB block costs a page fault and a
//! kernel page clear per 4 KiB on its first touch (the allocator hands freed large blocks back
//! to the kernel), which was a third of a master's CPU while it shipped a catch-up.
//!
//! Must never: hand out uninitialised bytes (every byte is zeroed at allocation), reallocate
//! (its address is pinned for in-flight I/O), accept an alignment that is not a power of two,
//! or hold more than [`READ_POOL_BYTES_MAX`] per thread in the pool.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use compio::buf::{IoBuf, IoBufMut, SetLen};

use crate::limits::{READ_POOL_BYTES_MAX, READ_POOL_GRANULE_BYTES, READ_POOL_MIN_BYTES};

thread_local! {
    /// This thread's idle read buffers (see [`AlignedBuf::for_read`]).
    static READ_POOL: RefCell<Vec<AlignedBuf>> = const { RefCell::new(Vec::new()) };
}

/// Rounds `value` down to a multiple of `alignment` (a power of two).
///
/// # Panics
/// If `alignment` is not a power of two.
#[must_use]
pub const fn align_down(value: u64, alignment: u64) -> u64 {
    assert!(
        alignment.is_power_of_two(),
        "alignment must be a power of two"
    );
    value & !(alignment - 1)
}

/// Rounds `value` up to a multiple of `alignment` (a power of two).
///
/// # Panics
/// If `alignment` is not a power of two, or the result overflows `u64`.
#[must_use]
pub const fn align_up(value: u64, alignment: u64) -> u64 {
    assert!(
        alignment.is_power_of_two(),
        "alignment must be a power of two"
    );
    match value.checked_add(alignment - 1) {
        Some(v) => v & !(alignment - 1),
        None => panic!("align_up overflow"),
    }
}

/// `true` if `value` is a multiple of `alignment` (a power of two).
#[must_use]
pub const fn is_aligned(value: u64, alignment: u64) -> bool {
    assert!(
        alignment.is_power_of_two(),
        "alignment must be a power of two"
    );
    value & (alignment - 1) == 0
}

/// A heap buffer whose start address and capacity are multiples of `alignment`.
///
/// `len` is the number of bytes that I/O writes use (`IoBuf::as_init`); reads fill from the start
/// of the buffer up to the capacity and set `len` to the bytes read. Bytes past `len` are always
/// initialised (zeroed at allocation, or left over from earlier use), never garbage memory.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
    len: usize,
    alignment: usize,
    /// Returned to the freeing thread's read pool when dropped (if there is room).
    pooled: bool,
}

impl AlignedBuf {
    /// Allocates a zeroed buffer of `capacity` bytes (rounded up to `alignment`), with `len` 0.
    ///
    /// # Panics
    /// If `alignment` is not a power of two, `capacity` is 0, or the allocation fails.
    #[must_use]
    pub fn new_zeroed(capacity: usize, alignment: usize) -> Self {
        assert!(
            alignment.is_power_of_two(),
            "alignment must be a power of two"
        );
        assert!(capacity > 0, "empty aligned buffer");
        let capacity = usize::try_from(align_up(capacity as u64, alignment as u64))
            .expect("capacity rounded up to the alignment still fits usize");
        let layout = Layout::from_size_align(capacity, alignment).expect("valid layout");
        // SAFETY: `layout` has a non-zero size (capacity > 0 was asserted).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        Self {
            ptr,
            capacity,
            len: 0,
            alignment,
            pooled: false,
        }
    }

    /// A buffer of at least `capacity` bytes for a read to fill, with `len` 0: a pooled one
    /// left by an earlier read on this thread when one fits (its bytes are that read's data,
    /// initialised), else a new zeroed one. Buffers of [`READ_POOL_MIN_BYTES`] or more go back
    /// to the pool of the thread that drops them, up to [`READ_POOL_BYTES_MAX`] per thread.
    ///
    /// # Panics
    /// As [`AlignedBuf::new_zeroed`].
    #[must_use]
    pub fn for_read(capacity: usize, alignment: usize) -> Self {
        if capacity < READ_POOL_MIN_BYTES {
            return Self::new_zeroed(capacity, alignment);
        }
        let rounded = usize::try_from(align_up(
            capacity as u64,
            READ_POOL_GRANULE_BYTES.max(alignment) as u64,
        ))
        .expect("a read buffer fits usize");
        let reused = READ_POOL
            .try_with(|pool| {
                let mut pool = pool.try_borrow_mut().ok()?;
                // The smallest idle buffer that fits, of the same alignment.
                let (index, _) = pool
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.alignment == alignment && b.capacity >= rounded)
                    .min_by_key(|(_, b)| b.capacity)?;
                Some(pool.swap_remove(index))
            })
            .ok()
            .flatten();
        let mut buffer = reused.unwrap_or_else(|| Self::new_zeroed(rounded, alignment));
        buffer.len = 0;
        buffer.pooled = true;
        buffer
    }

    /// The alignment of the start address and of the capacity.
    #[must_use]
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Total bytes available.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes in use (what a write sends; what a read returned).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when `len` is 0.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes in use, `[0, len)`.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `capacity` initialised bytes (zeroed at allocation) and
        // `len <= capacity` is kept by every setter.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole buffer, `[0, capacity)`, for filling in place.
    #[must_use]
    pub fn as_full_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is valid for `capacity` initialised bytes and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }

    /// Sets the bytes in use. The bytes are already initialised.
    ///
    /// # Panics
    /// If `len` exceeds the capacity.
    pub fn set_len_initialised(&mut self, len: usize) {
        assert!(
            len <= self.capacity,
            "len {len} > capacity {}",
            self.capacity
        );
        self.len = len;
    }

    /// Zeroes the whole buffer and sets `len` to 0.
    pub fn clear_zeroed(&mut self) {
        self.as_full_mut_slice().fill(0);
        self.len = 0;
    }

    /// Raw start pointer (for the ring buffer in the CommitLog, which writes through it).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Raw start pointer for reads.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

// SAFETY: an `AlignedBuf` owns its allocation exclusively (as a `Box<[u8]>` does): nothing else
// holds `ptr`, and `&self` methods only read. Needed to hand a filled buffer to `Bytes` without a
// copy ([`AlignedBuf::into_bytes`]).
unsafe impl Send for AlignedBuf {}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AlignedBuf {
    /// `[start, end)` of the filled bytes as `Bytes`, without copying: the buffer is kept alive
    /// (and freed) by the returned `Bytes` and its clones.
    ///
    /// # Panics
    /// If `start > end` or `end > len`.
    #[must_use]
    pub fn into_bytes(self, start: usize, end: usize) -> bytes::Bytes {
        assert!(
            start <= end && end <= self.len,
            "a slice of the filled bytes"
        );
        bytes::Bytes::slice(&bytes::Bytes::from_owner(self), start..end)
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.pooled && self.park() {
            return;
        }
        let layout = Layout::from_size_align(self.capacity, self.alignment).expect("valid layout");
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl AlignedBuf {
    /// Moves this buffer's block into the thread's read pool if it has room: `true` if parked
    /// (the block is then owned by the pooled entry and must not be freed by `self`).
    fn park(&mut self) -> bool {
        let (ptr, capacity, alignment) = (self.ptr, self.capacity, self.alignment);
        READ_POOL
            .try_with(|pool| {
                let Ok(mut pool) = pool.try_borrow_mut() else {
                    return false;
                };
                let held: usize = pool.iter().map(|b| b.capacity).sum();
                if held + capacity > READ_POOL_BYTES_MAX {
                    return false;
                }
                pool.push(Self {
                    ptr,
                    capacity,
                    len: 0,
                    alignment,
                    pooled: true,
                });
                true
            })
            // The pool is gone (thread exit): `self` frees the block.
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("capacity", &self.capacity)
            .field("len", &self.len)
            .field("alignment", &self.alignment)
            .finish_non_exhaustive()
    }
}

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

impl SetLen for AlignedBuf {
    unsafe fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity,
            "len {len} > capacity {}",
            self.capacity
        );
        self.len = len;
    }
}

impl IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `ptr` is valid for `capacity` bytes; `MaybeUninit<u8>` has the layout of `u8`.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().cast::<MaybeUninit<u8>>(),
                self.capacity,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_helpers() {
        assert_eq!(align_down(0, 4096), 0);
        assert_eq!(align_down(4095, 4096), 0);
        assert_eq!(align_down(4096, 4096), 4096);
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_up(0, 512), 0);
        assert!(is_aligned(8192, 4096));
        assert!(!is_aligned(8193, 4096));
    }

    fn pool_bytes() -> usize {
        READ_POOL.with(|pool| pool.borrow().iter().map(AlignedBuf::capacity).sum())
    }

    #[test]
    fn read_buffers_are_recycled_per_thread_within_the_bound() {
        // Small buffers are never pooled.
        drop(AlignedBuf::for_read(READ_POOL_MIN_BYTES - 4096, 4096));
        assert_eq!(pool_bytes(), 0);

        let mut first = AlignedBuf::for_read(1 << 20, 4096);
        assert!(first.capacity() >= 1 << 20 && first.is_empty());
        first.as_full_mut_slice()[..4].copy_from_slice(b"data");
        first.set_len_initialised(4);
        let address = first.as_ptr();
        drop(first);
        assert_eq!(pool_bytes(), 1 << 20);
        // A nearby size reuses the block, handed out empty; another alignment does not.
        let other_alignment = AlignedBuf::for_read(1 << 20, 8192);
        assert_ne!(other_alignment.as_ptr(), address);
        let again = AlignedBuf::for_read((1 << 20) - 12_288, 4096);
        assert_eq!(again.as_ptr(), address);
        assert!(again.is_empty());
        assert_eq!(pool_bytes(), 0);
        drop(again);
        drop(other_alignment);

        // The pool never holds more than its bound; the rest is freed.
        let many: Vec<_> = (0..READ_POOL_BYTES_MAX / (1 << 20) + 8)
            .map(|_| AlignedBuf::for_read(1 << 20, 4096))
            .collect();
        drop(many);
        assert!(pool_bytes() <= READ_POOL_BYTES_MAX);
        assert!(pool_bytes() >= READ_POOL_BYTES_MAX - (2 << 20));

        // A buffer freed on another thread goes to that thread's pool (or is freed there).
        let sent = AlignedBuf::for_read(1 << 20, 4096);
        std::thread::spawn(move || {
            drop(sent);
            assert_eq!(pool_bytes(), 1 << 20);
        })
        .join()
        .expect("thread");
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn align_rejects_non_power_of_two() {
        let _ = align_up(10, 3000);
    }

    #[test]
    fn buffer_is_aligned_and_zeroed() {
        for alignment in [512usize, 4096, 65536] {
            let mut buf = AlignedBuf::new_zeroed(5000, alignment);
            assert_eq!(buf.as_ptr() as usize % alignment, 0);
            assert_eq!(buf.capacity() % alignment, 0);
            assert!(buf.capacity() >= 5000);
            assert!(buf.as_full_mut_slice().iter().all(|b| *b == 0));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn len_is_what_io_sees() {
        let mut buf = AlignedBuf::new_zeroed(4096, 4096);
        buf.as_full_mut_slice()[..3].copy_from_slice(b"abc");
        buf.set_len_initialised(3);
        assert_eq!(buf.as_init(), b"abc");
        assert_eq!(buf.as_uninit().len(), 4096);
        buf.clear_zeroed();
        assert_eq!(buf.len(), 0);
        assert_eq!(buf.as_full_mut_slice()[0], 0);
    }

    #[test]
    #[should_panic(expected = "capacity")]
    fn len_past_capacity_panics() {
        let mut buf = AlignedBuf::new_zeroed(4096, 4096);
        buf.set_len_initialised(4097);
    }
}
