//! The machine's physical memory, read once at start from `/proc/meminfo` (`MemTotal`), and
//! the "in memory" window Java derives from it: `accessMessageInMemoryMaxRatio` percent of
//! RAM (`StoreUtil.TOTAL_PHYSICAL_MEMORY_SIZE`). Our CommitLog is read with O_DIRECT and has
//! no page cache, so "in memory" means what Java means by it: within that many bytes of the
//! CommitLog's end. Pulls further behind read cold data (a master with `slaveReadEnable`
//! suggests a slave), and a new group's offset 0 counts as young only inside the window.
//!
//! Must never: be read on a request path (once at start, before the shards run), or fail the
//! start (an unreadable `/proc/meminfo` falls back to `sysconf`, then to
//! [`PHYSICAL_MEMORY_FALLBACK_BYTES`]).

/// What physical memory counts as when neither `/proc/meminfo` nor `sysconf` tells: 8 GiB, a
/// small server.
pub const PHYSICAL_MEMORY_FALLBACK_BYTES: u64 = 8 << 30;

/// Physical memory in bytes (blocking file read: call once, at start).
#[must_use]
pub fn physical_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_bytes(&text))
        .or_else(sysconf_bytes)
        .unwrap_or(PHYSICAL_MEMORY_FALLBACK_BYTES)
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes (the file gives kB).
#[must_use]
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?;
    let mut words = line.split_whitespace();
    let kilobytes: u64 = words.next()?.parse().ok()?;
    if words.next() != Some("kB") {
        return None;
    }
    kilobytes.checked_mul(1024).filter(|bytes| *bytes > 0)
}

fn sysconf_bytes() -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let pages = u64::try_from(pages).ok()?;
    let page_size = u64::try_from(page_size).ok()?;
    pages.checked_mul(page_size).filter(|bytes| *bytes > 0)
}

/// Java's in-memory window: `ratio_percent` % of `physical_bytes` (rounded down).
///
/// # Panics
/// If `ratio_percent` is above 100 (the config refuses it).
#[must_use]
pub fn in_memory_window_bytes(physical_bytes: u64, ratio_percent: u8) -> u64 {
    assert!(ratio_percent <= 100, "a ratio is a percentage");
    let window = u128::from(physical_bytes) * u128::from(ratio_percent) / 100;
    u64::try_from(window).expect("at most physical_bytes")
}

/// Whether a pull reads cold data (Java's `isSuggestPullingFromSlave`): the CommitLog bytes
/// between what it read (`pulled_phys_offset`) and the log's end are more than the window.
#[must_use]
pub fn is_cold(log_end_offset: u64, pulled_phys_offset: u64, window_bytes: u64) -> bool {
    log_end_offset.saturating_sub(pulled_phys_offset) > window_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:       16303708 kB\nMemFree:          123 kB\n";
        assert_eq!(mem_total_bytes(text), Some(16_303_708 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: 5 MB\n"), None, "unknown unit");
        assert_eq!(mem_total_bytes("MemTotal: 0 kB\n"), None);
        assert!(physical_memory_bytes() > 0);
    }

    #[test]
    fn window_and_cold_reads_follow_java() {
        let ram = 10 * 1024;
        assert_eq!(in_memory_window_bytes(ram, 40), 4096);
        assert_eq!(in_memory_window_bytes(ram, 0), 0);
        assert_eq!(in_memory_window_bytes(u64::MAX, 100), u64::MAX);
        // Java: diff > memory, so exactly the window is still warm.
        assert!(!is_cold(5000, 904, 4096));
        assert!(is_cold(5000, 903, 4096));
        assert!(
            is_cold(100, 0, 0),
            "a zero ratio makes every read behind the end cold"
        );
        assert!(!is_cold(100, 100, 0));
        assert!(
            !is_cold(100, 200, 0),
            "a position past the end (truncation) is not cold"
        );
    }
}
