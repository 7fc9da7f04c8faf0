//! Cold read of a large CommitLog (`storage_bench --cold-read-gib N`): writes N GiB with async
//! flush, closes the log, drops the page cache, reopens it (timed recovery) and reads every
//! record back with `read_batch`, verifying the record count, the order and a CRC over all
//! payloads, while a sampler thread records the process RSS every 100 ms. The system page cache
//! (`Cached:`) and the page-cache residency of the log's own files (`mincore`) are taken before
//! and after, to show that O_DIRECT reads do not fill the page cache.
//!
//! Must never: start below twice the log size of free space, or leave the log directory behind
//! (it is removed on success and on error).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rmq_bench::usage::ThreadUsage;
use rmq_storage::commitlog::{AppendRecord, CommitLog, FlushPolicy};
use rmq_storage::file::{fd_has_o_direct, Disk};
use serde_json::json;

use crate::{bench_config, fresh_log};

/// Free space required on the log's filesystem, as a multiple of the log size.
const FREE_SPACE_FACTOR_MIN: u64 = 2;
/// RSS sampling period.
const SAMPLE_INTERVAL_MS: u64 = 100;
/// Largest log this mode writes (a typo guard: 1 TiB).
const COLD_READ_GIB_MAX: u64 = 1024;

/// Parameters of one cold-read run.
pub struct ColdReadParams {
    /// Log bytes to append (encoded records plus end-of-segment fillers).
    pub log_bytes: u64,
    /// Segment file size.
    pub segment_bytes: u64,
    /// Payload bytes per record.
    pub payload_bytes: usize,
    /// `max_bytes` of every `read_batch` call.
    pub batch_bytes: usize,
}

/// Removes the log directory when dropped (also on an early error return).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cold read: could not remove {}: {error}", self.0.display());
        }
    }
}

/// Runs the whole cold-read case in `parent` and returns its JSON result.
pub async fn run(parent: &Path, params: &ColdReadParams) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        params.log_bytes > 0 && params.log_bytes <= COLD_READ_GIB_MAX << 30,
        "cold read size must be in (0, {COLD_READ_GIB_MAX}] GiB"
    );
    let free_bytes = free_bytes(parent)?;
    let free_needed = params.log_bytes * FREE_SPACE_FACTOR_MIN;
    anyhow::ensure!(
        free_bytes >= free_needed,
        "only {free_bytes} bytes free under {}; the cold read needs {free_needed}",
        parent.display()
    );
    let name = "cold-read-log";
    let dir = parent.join(name);
    let _guard = RemoveOnDrop(dir.clone());
    let cached_start_kib = meminfo_kib("Cached:")?;
    let rss_start_kib = status_kib("VmRSS:")?;

    let write = write_log(parent, name, params).await?;
    let cached_after_write_kib = meminfo_kib("Cached:")?;
    let log_resident_after_write = resident_bytes_of_files(&dir)?;

    // SAFETY: `sync` takes no arguments and only asks the kernel to write back dirty pages.
    unsafe { libc::sync() };
    let drop_caches = match std::fs::write("/proc/sys/vm/drop_caches", "1") {
        Ok(()) => json!("ok"),
        Err(error) => {
            eprintln!("cold read: drop_caches failed: {error}");
            json!(format!("failed: {error}"))
        }
    };
    let cached_after_drop_kib = meminfo_kib("Cached:")?;
    let log_resident_after_drop = resident_bytes_of_files(&dir)?;

    let rss_before_reopen_kib = status_kib("VmRSS:")?;
    let open_start = Instant::now();
    let (log, report) = CommitLog::open(
        &dir,
        bench_config(FlushPolicy::Async, params.segment_bytes),
        Disk::real(),
    )
    .await?;
    let reopen_seconds = open_start.elapsed().as_secs_f64();
    let rss_after_reopen_kib = status_kib("VmRSS:")?;
    for fd in log.segment_fds() {
        anyhow::ensure!(fd_has_o_direct(fd)?, "reopened segment without O_DIRECT");
    }
    let reopen = json!({
        "seconds": reopen_seconds,
        "rss_before_kib": rss_before_reopen_kib,
        "rss_after_kib": rss_after_reopen_kib,
        "clean_shutdown": report.clean_shutdown,
        "scan_start": report.scan_start,
        "recovered_end": report.recovered_end,
        "records_scanned": report.records_scanned,
        "stop_reason": report.stop_reason,
        "checkpoint_ignored": report.checkpoint_ignored,
    });
    println!("cold read: reopened in {reopen_seconds:.3} s: {reopen}");
    anyhow::ensure!(
        log.appended_offset() == write.end_offset,
        "reopened log ends at {}, written up to {}",
        log.appended_offset(),
        write.end_offset
    );

    let hwm_before_read_kib = status_kib("VmHWM:")?;
    // Resets VmHWM to the current RSS, so the peak below is the read's own (Linux >= 4.0).
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let sampler = Sampler::start();
    let cpu_before = ThreadUsage::of_current_thread();
    let read = read_log(&log, params.batch_bytes).await;
    let cpu_after = ThreadUsage::of_current_thread();
    let rss = sampler.stop();
    let read = read?;
    // CPU time of the runtime thread during the read (it runs on this thread): how far the
    // read rate is CPU-bound (parse, CRC-32C check, payload CRC) rather than I/O-bound.
    let read_cpu_seconds = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| after.since(before).cpu_ns as f64 / 1e9);
    let hwm_after_read_kib = status_kib("VmHWM:")?;
    let cached_after_read_kib = meminfo_kib("Cached:")?;
    let log_resident_after_read = resident_bytes_of_files(&dir)?;
    log.close().await?;

    anyhow::ensure!(
        read.records == write.records,
        "read {} records, wrote {}",
        read.records,
        write.records
    );
    anyhow::ensure!(
        read.payload_crc == write.payload_crc,
        "payload checksum differs: read {:08x}, wrote {:08x}",
        read.payload_crc,
        write.payload_crc
    );
    let read_rss = rss_summary(&rss);
    let read_mb_per_s = read.log_bytes as f64 / read.seconds / 1e6;
    println!(
        "cold read: read {} records ({} log bytes) in {:.2} s = {read_mb_per_s:.0} MB/s; RSS {read_rss}; VmHWM {hwm_after_read_kib} KiB",
        read.records, read.log_bytes, read.seconds
    );
    Ok(json!({
        "log_bytes": write.end_offset - write.start_offset,
        "segment_bytes": params.segment_bytes,
        "payload_bytes": params.payload_bytes,
        "record_bytes": write.record_bytes,
        "records": write.records,
        "payload_crc32": format!("{:08x}", write.payload_crc),
        "free_bytes_at_start": free_bytes,
        "rss_before_write_kib": rss_start_kib,
        "write": {
            "seconds": write.seconds,
            "log_mb_per_s": (write.end_offset - write.start_offset) as f64 / write.seconds / 1e6,
            "rss_kib": rss_summary(&write.rss),
        },
        "drop_caches": drop_caches,
        "reopen": reopen,
        "read": {
            "batch_bytes": params.batch_bytes,
            "batches": read.batches,
            "records": read.records,
            "log_bytes": read.log_bytes,
            "seconds": read.seconds,
            "log_mb_per_s": read_mb_per_s,
            "payload_mb_per_s": read.payload_bytes as f64 / read.seconds / 1e6,
            "runtime_thread_cpu_seconds": read_cpu_seconds,
            "records_verified": true,
            "payload_crc_matches": true,
        },
        "rss_during_read_kib": read_rss,
        "rss_samples_read_kib": rss.iter().map(|s| s.rss_kib).collect::<Vec<_>>(),
        "vm_hwm_kib": {
            "before_read_whole_process": hwm_before_read_kib,
            "reset_before_read": hwm_reset,
            "after_read": hwm_after_read_kib,
        },
        "page_cache_cached_kib": {
            "start": cached_start_kib,
            "after_write": cached_after_write_kib,
            "after_drop": cached_after_drop_kib,
            "after_read": cached_after_read_kib,
            "delta_during_read": cached_after_read_kib as i64 - cached_after_drop_kib as i64,
        },
        "log_files_resident_in_page_cache_bytes": {
            "after_write": log_resident_after_write,
            "after_drop": log_resident_after_drop,
            "after_read": log_resident_after_read,
        },
    }))
}

struct WriteOutcome {
    start_offset: u64,
    end_offset: u64,
    records: u64,
    record_bytes: u64,
    payload_crc: u32,
    seconds: f64,
    rss: Vec<RssSample>,
}

/// Record `index`'s payload: the base pattern with the index in the first 8 bytes, so the
/// checksum also catches reordered or repeated records.
fn stamp(payload: &mut [u8], index: u64) {
    let width = payload.len().min(8);
    payload[..width].copy_from_slice(&index.to_le_bytes()[..width]);
}

/// The record with index `index` (its queue offset and timestamp).
fn record_of(payload: &[u8], index: u64) -> AppendRecord<'_> {
    AppendRecord {
        topic: b"ColdReadTopic",
        queue_id: 0,
        queue_offset: index as i64,
        tags_code: 0,
        keys: b"cold-read",
        store_timestamp_ms: index as i64,
        sys_flag: 0,
        payload,
    }
}

async fn write_log(
    parent: &Path,
    name: &str,
    params: &ColdReadParams,
) -> anyhow::Result<WriteOutcome> {
    let log = fresh_log(
        parent,
        name,
        bench_config(FlushPolicy::Async, params.segment_bytes),
    )
    .await?;
    let mut payload = crate::payload_of(params.payload_bytes);
    let mut hasher = crc32fast::Hasher::new();
    let start_offset = log.appended_offset();
    let sampler = Sampler::start();
    let start = Instant::now();
    let mut records = 0u64;
    let record_bytes = record_of(&payload, 0).encoded_size();
    loop {
        stamp(&mut payload, records);
        let record = record_of(&payload, records);
        assert_eq!(record.encoded_size(), record_bytes, "records have one size");
        if log.appended_offset() - start_offset + record_bytes > params.log_bytes {
            break;
        }
        if log.try_append(&record)?.is_none() {
            log.append(&record).await?;
        }
        hasher.update(&payload);
        records += 1;
    }
    log.flush().await?;
    let seconds = start.elapsed().as_secs_f64();
    let rss = sampler.stop();
    let end_offset = log.appended_offset();
    log.close().await?;
    let outcome = WriteOutcome {
        start_offset,
        end_offset,
        records,
        record_bytes,
        payload_crc: hasher.finalize(),
        seconds,
        rss,
    };
    println!(
        "cold read: wrote {records} records, {} log bytes in {seconds:.2} s = {:.0} MB/s",
        end_offset - start_offset,
        (end_offset - start_offset) as f64 / seconds / 1e6
    );
    Ok(outcome)
}

struct ReadOutcome {
    batches: u64,
    records: u64,
    log_bytes: u64,
    payload_bytes: u64,
    payload_crc: u32,
    seconds: f64,
}

async fn read_log(log: &CommitLog, batch_bytes: usize) -> anyhow::Result<ReadOutcome> {
    let mut hasher = crc32fast::Hasher::new();
    let (mut batches, mut records, mut payload_bytes) = (0u64, 0u64, 0u64);
    let start_offset = log.min_offset();
    let end_offset = log.appended_offset();
    let start = Instant::now();
    let mut from = start_offset;
    while from < end_offset {
        let batch = log
            .read_batch(from, batch_bytes)
            .await
            .with_context(|| format!("read_batch at {from}"))?;
        assert!(
            batch.next_offset > from,
            "read_batch made no progress at {from}"
        );
        for record in &batch.records {
            anyhow::ensure!(
                record.queue_offset == records as i64,
                "record {records} at {} has queue offset {}",
                record.phys_offset,
                record.queue_offset
            );
            let index = record
                .payload
                .get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("slice of 8 bytes")));
            anyhow::ensure!(
                index.is_none_or(|index| index == records),
                "record {records} carries payload index {index:?}"
            );
            hasher.update(&record.payload);
            payload_bytes += record.payload.len() as u64;
            records += 1;
        }
        batches += 1;
        from = batch.next_offset;
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(from, end_offset, "read past the append mark");
    Ok(ReadOutcome {
        batches,
        records,
        log_bytes: end_offset - start_offset,
        payload_bytes,
        payload_crc: hasher.finalize(),
        seconds,
    })
}

#[derive(Debug, Clone, Copy)]
struct RssSample {
    rss_kib: u64,
}

/// A thread that reads this process's VmRSS every [`SAMPLE_INTERVAL_MS`] until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<RssSample>>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            loop {
                if let Ok(rss_kib) = status_kib("VmRSS:") {
                    samples.push(RssSample { rss_kib });
                }
                if flag.load(Ordering::Relaxed) {
                    return samples;
                }
                std::thread::sleep(Duration::from_millis(SAMPLE_INTERVAL_MS));
            }
        });
        Self { stop, thread }
    }

    fn stop(self) -> Vec<RssSample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn rss_summary(samples: &[RssSample]) -> serde_json::Value {
    let mut values: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    values.sort_unstable();
    if values.is_empty() {
        return json!({ "samples": 0 });
    }
    json!({
        "samples": values.len(),
        "min": values[0],
        "median": values[values.len() / 2],
        "max": values[values.len() - 1],
    })
}

/// A `kB` field of `/proc/self/status` (e.g. `VmRSS:`).
fn status_kib(field: &str) -> anyhow::Result<u64> {
    kib_field(&std::fs::read_to_string("/proc/self/status")?, field)
}

/// A `kB` field of `/proc/meminfo` (e.g. `Cached:`).
fn meminfo_kib(field: &str) -> anyhow::Result<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo")?, field)
}

fn kib_field(text: &str, field: &str) -> anyhow::Result<u64> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .with_context(|| format!("no {field} line"))?;
    let number = line.trim().trim_end_matches("kB").trim();
    number
        .parse()
        .with_context(|| format!("{field} is not a number: {number:?}"))
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir` (`statvfs`).
fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: `statvfs` is plain old data, so all-zero bytes are a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` an exclusively borrowed
    // `statvfs`, both alive for the duration of the call.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if result != 0 {
        return Err(std::io::Error::last_os_error()).context("statvfs");
    }
    Ok(stat.f_bavail * stat.f_frsize)
}

/// Bytes of the regular files in `dir` that are resident in the page cache (`mincore` on a
/// read-only mapping, which does not fault pages in).
fn resident_bytes_of_files(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            total += resident_bytes(&entry.path())?;
        }
    }
    Ok(total)
}

fn resident_bytes(path: &Path) -> anyhow::Result<u64> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())?;
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: `sysconf` has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })?;
    // SAFETY: a fresh shared read-only mapping of an open file; the kernel picks the address.
    // It is never dereferenced here, only passed to `mincore` and unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error()).context("mmap");
    }
    let mut vector = vec![0u8; len.div_ceil(page)];
    // SAFETY: `map` is a mapping of `len` bytes made above; `vector` holds one byte per page.
    let result = unsafe { libc::mincore(map, len, vector.as_mut_ptr()) };
    let error = std::io::Error::last_os_error();
    // SAFETY: `map` and `len` are exactly the mapping made above, unmapped once.
    unsafe { libc::munmap(map, len) };
    if result != 0 {
        return Err(error).context("mincore");
    }
    let pages = vector.iter().filter(|&&flag| flag & 1 != 0).count();
    Ok((pages * page) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_field_parses_proc_lines() {
        let text = "Name:\tx\nVmHWM:\t  12345 kB\nVmRSS:\t    678 kB\n";
        assert_eq!(kib_field(text, "VmRSS:").expect("present"), 678);
        assert_eq!(kib_field(text, "VmHWM:").expect("present"), 12345);
        assert!(kib_field(text, "Cached:").is_err());
    }

    #[test]
    fn rss_summary_sorts() {
        let samples: Vec<RssSample> = [5, 1, 9, 3]
            .iter()
            .map(|&rss_kib| RssSample { rss_kib })
            .collect();
        let summary = rss_summary(&samples);
        assert_eq!(summary["min"], 1);
        assert_eq!(summary["median"], 5);
        assert_eq!(summary["max"], 9);
    }

    #[test]
    fn stamp_writes_the_index() {
        let mut payload = vec![0xAA; 16];
        stamp(&mut payload, 0x0102);
        assert_eq!(&payload[..8], &0x0102u64.to_le_bytes());
        assert_eq!(payload[8], 0xAA);
    }
}
