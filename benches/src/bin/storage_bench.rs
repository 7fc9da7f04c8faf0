//! CommitLog benchmark: append throughput (async flush) for 128 B / 1 KiB / 16 KiB payloads next
//! to a raw O_DIRECT sequential write, and SYNC_FLUSH append latency next to a raw 4 KiB
//! write + fdatasync, all in one run on one real-disk directory, pinned to one core.
//!
//! With `--cold-read-gib N` it runs only the cold-read case instead (see [`cold_read`]): an
//! N GiB log is written, reopened after dropping the page cache, and read back while the RSS is
//! sampled.
//!
//! Usage: `cargo run --release -p rmq-bench --bin storage_bench -- [--dir DIR] [--out FILE]`
//! The JSON result goes to `--out` (and a summary to stdout).

#[path = "storage_bench/cold_read.rs"]
mod cold_read;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rmq_storage::align::AlignedBuf;
use rmq_storage::commitlog::{AppendRecord, CommitLog, CommitLogConfig, FlushPolicy};
use rmq_storage::file::{fd_has_o_direct, io_alignment, scratch_dir_on_real_disk, Disk, OpenMode};
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// Directory on the disk under test (default: a fresh dir under target/mq-test-disk).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "storage-bench.json")]
    out: PathBuf,
    /// Bytes appended per throughput case (and written by the raw baseline).
    #[arg(long, default_value_t = 1 << 30)]
    bytes_per_case: u64,
    /// Time limit per throughput case.
    #[arg(long, default_value_t = 20)]
    seconds_per_case: u64,
    /// Latency samples per sync case.
    #[arg(long, default_value_t = 5000)]
    latency_samples: u64,
    /// Payload sizes of the throughput cases.
    #[arg(long, value_delimiter = ',', default_values_t = [128usize, 1024, 16384])]
    payloads: Vec<usize>,
    /// Skip the sync-flush latency cases.
    #[arg(long)]
    skip_latency: bool,
    /// Repetitions of every case (raw and log interleaved).
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// CPU the runtime is pinned to.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// Run only the cold-read case with a log of this many GiB (none of the cases above).
    #[arg(long)]
    cold_read_gib: Option<u64>,
    /// Cold read: segment size in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    cold_read_segment_bytes: u64,
    /// Cold read: payload bytes per record.
    #[arg(long, default_value_t = 16384)]
    cold_read_payload: usize,
    /// Cold read: `max_bytes` of each `read_batch`.
    #[arg(long, default_value_t = 4 << 20)]
    cold_read_batch_bytes: usize,
}

/// Raw baseline: O_DIRECT writes of this size, this many in flight.
const RAW_WRITE_BYTES: usize = 2 * 1024 * 1024;
const RAW_QUEUE_DEPTH: usize = 4;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => scratch_dir_on_real_disk("storage-bench")?,
    };
    let runtime = compio::runtime::Runtime::builder()
        .thread_affinity(HashSet::from([args.cpu]))
        .build()
        .context("compio runtime")?;
    let result = match args.cold_read_gib {
        Some(gib) => {
            let params = cold_read::ColdReadParams {
                log_bytes: gib << 30,
                segment_bytes: args.cold_read_segment_bytes,
                payload_bytes: args.cold_read_payload,
                batch_bytes: args.cold_read_batch_bytes,
            };
            let mut result = runtime.block_on(cold_read::run(&dir, &params))?;
            result["dir"] = json!(dir.display().to_string());
            result["cpu"] = json!(args.cpu);
            if args.dir.is_none() {
                // The scratch directory is empty now (the log removed itself); never a user's.
                let _ = std::fs::remove_dir(&dir);
            }
            result
        }
        None => runtime.block_on(run(&args, &dir))?,
    };
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

async fn run(args: &Args, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let alignment = io_alignment(dir).await;
    // One raw file, zero-filled once and overwritten by every raw run (the same situation as
    // the log's preallocated segments).
    let raw_bytes = args.bytes_per_case / RAW_WRITE_BYTES as u64 * RAW_WRITE_BYTES as u64;
    let raw_file = Rc::new(prepared_file(dir, "raw-seq", raw_bytes, alignment).await?);
    let mut throughput = Vec::new();
    for round in 0..args.rounds {
        for &payload in &args.payloads {
            let raw = raw_sequential_write(&raw_file, alignment, raw_bytes).await?;
            let log = append_throughput(dir, payload, args).await?;
            let ratio = log["log_mb_per_s"].as_f64().unwrap_or(0.0)
                / raw["mb_per_s"].as_f64().unwrap_or(1.0);
            println!(
                "round {round} payload {payload} B: raw {raw} | log {log} | log/raw {ratio:.2}"
            );
            throughput.push(json!({ "round": round, "payload_bytes": payload, "raw": raw, "log": log, "log_to_raw": ratio }));
        }
    }
    drop(raw_file);
    let _ = std::fs::remove_file(dir.join("raw-seq"));
    let mut latency = Vec::new();
    let latency_rounds = if args.skip_latency { 0 } else { args.rounds };
    for round in 0..latency_rounds {
        let raw = raw_write_sync_latency(dir, alignment, args.latency_samples).await?;
        println!("round {round} raw 4 KiB write + fdatasync: {raw}");
        latency.push(json!({ "round": round, "case": "raw_4k_write_fdatasync", "result": raw }));
        for (payload, clients) in [(128usize, 1usize), (1024, 1), (1024, 16)] {
            let case = sync_append_latency(dir, payload, clients, args.latency_samples).await?;
            println!("round {round} sync append {payload} B x{clients}: {case}");
            latency.push(json!({ "round": round, "case": format!("sync_append_{payload}B_x{clients}"), "result": case }));
        }
    }
    Ok(json!({
        "dir": dir.display().to_string(),
        "alignment": alignment,
        "raw_write_bytes": RAW_WRITE_BYTES,
        "raw_queue_depth": RAW_QUEUE_DEPTH,
        "async_append_throughput": throughput,
        "sync_latency": latency,
    }))
}

/// Zero-fills `len` bytes of a new O_DIRECT file and fdatasyncs it (untimed preparation).
async fn prepared_file(
    dir: &Path,
    name: &str,
    len: u64,
    alignment: usize,
) -> anyhow::Result<rmq_storage::file::DirectFile> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let file = Disk::real()
        .open(&path, OpenMode::CreateNew, alignment)
        .await?;
    anyhow::ensure!(
        fd_has_o_direct(file.raw_fd())?,
        "O_DIRECT is not set on {}",
        path.display()
    );
    let mut zeros = AlignedBuf::new_zeroed(RAW_WRITE_BYTES, alignment);
    zeros.set_len_initialised(RAW_WRITE_BYTES);
    let mut at = 0;
    while at < len {
        let (result, buffer) = file.write_all_at(zeros, at).await;
        result?;
        zeros = buffer;
        at += RAW_WRITE_BYTES as u64;
    }
    file.sync_data().await?;
    Ok(file)
}

async fn raw_sequential_write(
    file: &Rc<rmq_storage::file::DirectFile>,
    alignment: usize,
    bytes: u64,
) -> anyhow::Result<serde_json::Value> {
    let mut buffers: Vec<AlignedBuf> = (0..RAW_QUEUE_DEPTH)
        .map(|i| {
            let mut buffer = AlignedBuf::new_zeroed(RAW_WRITE_BYTES, alignment);
            buffer.as_full_mut_slice().fill(i as u8 + 1);
            buffer.set_len_initialised(RAW_WRITE_BYTES);
            buffer
        })
        .collect();
    let start = Instant::now();
    let mut at = 0u64;
    while at < bytes {
        let mut batch = Vec::new();
        let take = buffers
            .len()
            .min(((bytes - at) / RAW_WRITE_BYTES as u64) as usize);
        for buffer in buffers.drain(..take) {
            let file = Rc::clone(file);
            let pos = at;
            at += RAW_WRITE_BYTES as u64;
            batch.push(async move { file.write_all_at(buffer, pos).await });
        }
        for (result, buffer) in futures_join(batch).await {
            result?;
            buffers.push(buffer);
        }
    }
    file.sync_data().await?;
    let elapsed = start.elapsed();
    let mb_per_s = bytes as f64 / elapsed.as_secs_f64() / 1e6;
    Ok(json!({ "bytes": bytes, "seconds": elapsed.as_secs_f64(), "mb_per_s": mb_per_s }))
}

/// Polls the futures together (the order of results matches the input).
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("all ready")).collect()
}

fn bench_config(policy: FlushPolicy, segment_size_bytes: u64) -> CommitLogConfig {
    CommitLogConfig {
        segment_size_bytes,
        flush_policy: policy,
        ..CommitLogConfig::default()
    }
}

/// Opens a fresh log in `dir/name` and waits until its next segment is preallocated, so the
/// measurement does not include the background zero-fill.
async fn fresh_log(dir: &Path, name: &str, config: CommitLogConfig) -> anyhow::Result<CommitLog> {
    let path = dir.join(name);
    let _ = std::fs::remove_dir_all(&path);
    let (log, _) = CommitLog::open(&path, config, Disk::real()).await?;
    for fd in log.segment_fds() {
        anyhow::ensure!(fd_has_o_direct(fd)?, "segment without O_DIRECT");
    }
    while !log.next_segment_ready() {
        compio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(log)
}

fn payload_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn append_throughput(
    dir: &Path,
    payload_len: usize,
    args: &Args,
) -> anyhow::Result<serde_json::Value> {
    // One segment holds the whole case: no roll (and no zero-fill) inside the measurement.
    let segment = (args.bytes_per_case + (64 << 20)) / (64 << 10) * (64 << 10);
    let log = fresh_log(
        dir,
        &format!("log-async-{payload_len}"),
        bench_config(FlushPolicy::Async, segment),
    )
    .await?;
    let payload = payload_of(payload_len);
    let keys = b"key-0000000000 UNIQ00000000000000000000";
    let mut record = AppendRecord {
        topic: b"BenchTopic",
        queue_id: 0,
        queue_offset: 0,
        tags_code: 0,
        keys,
        store_timestamp_ms: 0,
        sys_flag: 0,
        payload: &payload,
    };
    let record_size = record.encoded_size();
    let start_offset = log.appended_offset();
    let deadline = Instant::now() + Duration::from_secs(args.seconds_per_case);
    let start = Instant::now();
    let mut count = 0u64;
    while log.appended_offset() - start_offset + record_size <= args.bytes_per_case {
        record.queue_offset = count as i64;
        record.store_timestamp_ms = count as i64;
        if log.try_append(&record)?.is_none() {
            log.append(&record).await?;
        }
        count += 1;
        if count % 4096 == 0 && Instant::now() > deadline {
            break;
        }
    }
    log.flush().await?;
    let elapsed = start.elapsed();
    let bytes = log.appended_offset() - start_offset;
    log.close().await?;
    let _ = std::fs::remove_dir_all(dir.join(format!("log-async-{payload_len}")));
    Ok(json!({
        "payload_bytes": payload_len,
        "record_bytes": record_size,
        "appends": count,
        "seconds": elapsed.as_secs_f64(),
        "appends_per_s": count as f64 / elapsed.as_secs_f64(),
        "log_mb_per_s": bytes as f64 / elapsed.as_secs_f64() / 1e6,
        "payload_mb_per_s": (count * payload_len as u64) as f64 / elapsed.as_secs_f64() / 1e6,
    }))
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn summary(histogram: &Histogram<u64>) -> serde_json::Value {
    json!({
        "samples": histogram.len(),
        "p50_us": histogram.value_at_quantile(0.50),
        "p99_us": histogram.value_at_quantile(0.99),
        "p999_us": histogram.value_at_quantile(0.999),
        "max_us": histogram.max(),
        "mean_us": histogram.mean(),
    })
}

async fn raw_write_sync_latency(
    dir: &Path,
    alignment: usize,
    samples: u64,
) -> anyhow::Result<serde_json::Value> {
    let len = samples * 4096;
    let file = prepared_file(
        dir,
        "raw-latency",
        len.max(RAW_WRITE_BYTES as u64),
        alignment,
    )
    .await?;
    let mut buffer = AlignedBuf::new_zeroed(4096, alignment);
    buffer.as_full_mut_slice().fill(7);
    buffer.set_len_initialised(4096);
    let mut latencies = histogram();
    for i in 0..samples {
        let start = Instant::now();
        let (result, returned) = file.write_all_at(buffer, i * 4096).await;
        result?;
        buffer = returned;
        file.sync_data().await?;
        latencies.record(start.elapsed().as_micros() as u64)?;
    }
    let _ = std::fs::remove_file(dir.join("raw-latency"));
    let result = summary(&latencies);
    println!("raw 4 KiB write + fdatasync: {result}");
    Ok(result)
}

async fn sync_append_latency(
    dir: &Path,
    payload_len: usize,
    clients: usize,
    samples: u64,
) -> anyhow::Result<serde_json::Value> {
    let name = format!("log-sync-{payload_len}-{clients}");
    let log = Rc::new(fresh_log(dir, &name, bench_config(FlushPolicy::Sync, 256 << 20)).await?);
    let latencies = Rc::new(std::cell::RefCell::new(histogram()));
    let per_client = samples / clients as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (log, latencies) = (Rc::clone(&log), Rc::clone(&latencies));
        tasks.push(compio::runtime::spawn(async move {
            let payload = payload_of(payload_len);
            for i in 0..per_client {
                let record = AppendRecord {
                    topic: b"BenchTopic",
                    queue_id: client as i32,
                    queue_offset: i as i64,
                    tags_code: 0,
                    keys: b"key",
                    store_timestamp_ms: 0,
                    sys_flag: 0,
                    payload: &payload,
                };
                let begin = Instant::now();
                let appended = log.append(&record).await.expect("append");
                log.wait_durable(appended.end_offset)
                    .await
                    .expect("durable");
                let micros = begin.elapsed().as_micros() as u64;
                latencies
                    .borrow_mut()
                    .record(micros)
                    .expect("record latency");
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|_| anyhow::anyhow!("client task failed"))?;
    }
    let elapsed = start.elapsed();
    let total = per_client * clients as u64;
    let mut result = summary(&latencies.borrow());
    result["payload_bytes"] = json!(payload_len);
    result["clients"] = json!(clients);
    result["appends_per_s"] = json!(total as f64 / elapsed.as_secs_f64());
    Rc::try_unwrap(log)
        .map_err(|_| anyhow::anyhow!("log still shared"))?
        .close()
        .await?;
    let _ = std::fs::remove_dir_all(dir.join(&name));
    Ok(result)
}
