//! Benchmark parameters and the runtime-independent helpers both drivers share.
//!
//! Owns: the named limits of every test (message size, write size, alignment, connection
//! counts), the `Config` each driver reads, thread pinning, and the O_DIRECT check on an open fd.
//! Must never: touch a runtime (each driver owns its own) or write outside the test directory.

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

/// Bytes in one echo request and in its response.
pub const MESSAGE_BYTES: usize = 64;

/// Connections of the concurrent TCP test (the single-connection test uses 1).
pub const CONNECTIONS_MANY: usize = 16;

/// Bytes per write in the sequential append test.
pub const APPEND_WRITE_BYTES: usize = 256 * 1024;

/// Bytes per write in the write + fdatasync latency test.
pub const SYNC_WRITE_BYTES: usize = 4096;

/// Alignment of every O_DIRECT buffer, offset and length: the page size, which is at least the
/// logical block size of any disk this runs on (glommio asserts the device's own value).
pub const DIRECT_ALIGN: usize = 4096;

/// Highest write concurrency the append test accepts (one buffer per write in flight).
pub const IN_FLIGHT_MAX: usize = 64;

const _: () = assert!(
    APPEND_WRITE_BYTES.is_multiple_of(DIRECT_ALIGN),
    "append writes must stay aligned"
);
const _: () = assert!(
    SYNC_WRITE_BYTES.is_multiple_of(DIRECT_ALIGN),
    "sync writes must stay aligned"
);

/// What every driver needs to run its five measurements.
#[derive(Debug, Clone)]
pub struct Config {
    /// Core of the echo server's runtime.
    pub server_core: usize,
    /// Core of the client runtime and of the disk tests.
    pub client_core: usize,
    /// Round trips before the measured window, not recorded.
    pub tcp_warmup: Duration,
    /// Length of the measured window of each TCP test.
    pub tcp_measure: Duration,
    /// Preallocated, zero-filled file the append test overwrites from offset 0.
    pub append_path: PathBuf,
    /// Bytes written by each append test; a multiple of `APPEND_WRITE_BYTES`.
    pub append_bytes: u64,
    /// Preallocated, zero-filled file of the fdatasync test.
    pub sync_path: PathBuf,
    /// Recorded write + fdatasync iterations.
    pub sync_iterations: u64,
    /// Unrecorded iterations before them.
    pub sync_warmup_iterations: u64,
}

impl Config {
    /// Bytes the fdatasync test file must hold.
    pub fn sync_file_bytes(&self) -> u64 {
        (self.sync_iterations + self.sync_warmup_iterations) * SYNC_WRITE_BYTES as u64
    }
}

/// A heap buffer whose visible bytes start on a `DIRECT_ALIGN` boundary, for O_DIRECT writes.
///
/// Safe by construction: it over-allocates a `Vec` and exposes the aligned window; the `Vec` is
/// never resized, so the window's address is stable while the kernel reads it.
pub struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        assert!(
            len.is_multiple_of(DIRECT_ALIGN),
            "O_DIRECT length {len} not aligned"
        );
        let storage = vec![0u8; len + DIRECT_ALIGN];
        let offset = storage.as_ptr().align_offset(DIRECT_ALIGN);
        assert!(
            offset < DIRECT_ALIGN,
            "align_offset on u8 always succeeds below the alignment"
        );
        let buf = Self {
            storage,
            offset,
            len,
        };
        assert!((buf.as_slice().as_ptr() as usize).is_multiple_of(DIRECT_ALIGN));
        buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// CPU time and involuntary context switches of the calling thread (getrusage RUSAGE_THREAD).
///
/// Work the kernel does for io_uring in io-wq worker threads (fdatasync, punted writes) is not
/// counted: it belongs to those threads, not to the runtime's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadUsage {
    pub cpu_ns: u64,
    pub involuntary_switches: u64,
}

impl ThreadUsage {
    pub fn now() -> io::Result<Self> {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` is writable memory of the size getrusage(2) fills; it is read only
        // after the call reports success.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getrusage returned 0, so it initialised the whole struct.
        let usage = unsafe { usage.assume_init() };
        let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        Ok(Self {
            cpu_ns: (micros(usage.ru_utime) + micros(usage.ru_stime)) * 1_000,
            involuntary_switches: usage.ru_nivcsw as u64,
        })
    }

    /// What this thread used between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        assert!(
            self.cpu_ns >= earlier.cpu_ns,
            "thread CPU time went backwards"
        );
        Self {
            cpu_ns: self.cpu_ns - earlier.cpu_ns,
            involuntary_switches: self.involuntary_switches - earlier.involuntary_switches,
        }
    }
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "could not pin thread to core {core}"
        )))
    }
}

/// Whether the open file description `fd` has O_DIRECT set.
pub fn o_direct_enabled(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL only reads the flags of `fd`, which the caller keeps open for the call;
    // an invalid fd makes it return -1, handled below.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_DIRECT != 0)
}

/// Fills `buf` with a pattern that depends on `seed`, so written blocks are not all zero.
pub fn fill_pattern(buf: &mut [u8], seed: u8) {
    for (index, byte) in buf.iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

/// Checks that a write moved the whole buffer.
pub fn check_full_write(written: usize, expected: usize) -> io::Result<()> {
    if written == expected {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short O_DIRECT write: {written} of {expected} bytes"),
        ))
    }
}

/// Checks that an echo response equals its request.
pub fn check_echo(sent: &[u8], received: &[u8]) -> io::Result<()> {
    if sent == received {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "echo response differs from request",
        ))
    }
}

/// Builds the request of round trip `sequence` on connection `connection`.
pub fn request_bytes(connection: usize, sequence: u64) -> [u8; MESSAGE_BYTES] {
    let mut message = [0u8; MESSAGE_BYTES];
    message[8..16].copy_from_slice(&(connection as u64).to_le_bytes());
    fill_pattern(&mut message[16..], connection as u8);
    stamp_sequence(&mut message, sequence);
    message
}

/// Rewrites the sequence number at the head of a request built by `request_bytes`.
pub fn stamp_sequence(message: &mut [u8; MESSAGE_BYTES], sequence: u64) {
    message[..8].copy_from_slice(&sequence.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn aligned_buffer_is_aligned_and_sized() {
        for len in [DIRECT_ALIGN, APPEND_WRITE_BYTES] {
            let mut buf = AlignedBuf::new(len);
            buf.as_mut_slice().fill(1);
            assert_eq!(buf.as_slice().len(), len);
            assert_eq!(buf.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0);
        }
    }

    #[test]
    fn thread_usage_counts_cpu_work() {
        let before = ThreadUsage::now().expect("getrusage");
        let mut x = 1u64;
        let spin_until = std::time::Instant::now() + Duration::from_millis(30);
        while std::time::Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
        let used = ThreadUsage::now().expect("getrusage").since(before);
        assert!(
            used.cpu_ns >= 5_000_000,
            "30 ms of spinning used {} ns",
            used.cpu_ns
        );
    }

    #[test]
    fn o_direct_flag_is_reported() {
        let dir = std::env::temp_dir().join(format!("rc-odirect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("plain");
        let plain = std::fs::File::create(&path).expect("create");
        assert!(!o_direct_enabled(plain.as_raw_fd()).expect("fcntl"));
        // tmpfs refuses O_DIRECT on some kernels; only assert when the open succeeds.
        if let Ok(direct) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
        {
            assert!(o_direct_enabled(direct.as_raw_fd()).expect("fcntl"));
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn requests_differ_per_sequence_and_connection() {
        assert_ne!(request_bytes(0, 1), request_bytes(0, 2));
        assert_ne!(request_bytes(0, 1), request_bytes(1, 1));
        assert!(check_echo(&request_bytes(3, 4), &request_bytes(3, 4)).is_ok());
        assert!(check_echo(&request_bytes(3, 4), &request_bytes(3, 5)).is_err());
    }
}
