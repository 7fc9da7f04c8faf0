//! The compio 0.19 side of the comparison: echo TCP, O_DIRECT append and write + fdatasync.
//!
//! Owns: one `compio::runtime::Runtime` per pinned thread (server on `server_core`, client and
//! disk on `client_core`), built and dropped inside each measurement.
//! Must never: share a runtime or a file between measurements, or use buffered I/O on the
//! measured files (every file is opened with O_DIRECT and checked).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use compio::buf::{BufResult, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadExt, AsyncWriteAt, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use compio::runtime::Runtime;
use hdrhistogram::Histogram;

use crate::common::{
    check_echo, check_full_write, fill_pattern, o_direct_enabled, pin_current_thread,
    request_bytes, stamp_sequence, AlignedBuf, Config, ThreadUsage, APPEND_WRITE_BYTES,
    IN_FLIGHT_MAX, MESSAGE_BYTES, SYNC_WRITE_BYTES,
};
use crate::stats::{new_histogram, AppendResult, CpuCost, LatencySummary, SyncResult, TcpResult};

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

fn join_error(error: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("compio task failed: {error:?}"))
}

fn thread_error(_: Box<dyn std::any::Any + Send>) -> io::Error {
    io::Error::other("benchmark thread panicked")
}

/// Runs `body` on a new thread pinned to `core`, inside a fresh compio runtime.
fn spawn_pinned<T, F, Fut>(
    name: &str,
    core: usize,
    body: F,
) -> io::Result<thread::JoinHandle<io::Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    thread::Builder::new().name(name.to_owned()).spawn(move || {
        pin_current_thread(core)?;
        let runtime = Runtime::new()?;
        runtime.block_on(body())
    })
}

/// Echo TCP round trips with `connections` concurrent connections, each sequential.
pub fn tcp(config: &Config, connections: usize) -> io::Result<TcpResult> {
    assert!(connections > 0);
    let (address_tx, address_rx) = mpsc::channel::<SocketAddr>();
    let server = spawn_pinned("compio-server", config.server_core, move || async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let usage_start = ThreadUsage::now()?;
        address_tx
            .send(listener.local_addr()?)
            .map_err(io::Error::other)?;
        let mut echoes = Vec::with_capacity(connections);
        for _ in 0..connections {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            echoes.push(compio::runtime::spawn(echo(stream)));
        }
        let mut echoed = 0u64;
        for echo in echoes {
            echoed += echo.await.map_err(join_error)??;
        }
        Ok(CpuCost::new(ThreadUsage::now()?.since(usage_start), echoed))
    })?;
    let Ok(address) = address_rx.recv() else {
        server.join().map_err(thread_error)??;
        return Err(io::Error::other("compio server exited before listening"));
    };
    let (warmup, measure) = (config.tcp_warmup, config.tcp_measure);
    let client = spawn_pinned("compio-client", config.client_core, move || async move {
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        let usage_start = ThreadUsage::now()?;
        let measure_from = Instant::now() + warmup;
        let measure_until = measure_from + measure;
        let pingers: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(index, stream)| {
                compio::runtime::spawn(ping(stream, index, measure_from, measure_until))
            })
            .collect();
        let mut histogram = new_histogram();
        let mut sent = 0u64;
        for pinger in pingers {
            let (own, own_sent) = pinger.await.map_err(join_error)??;
            histogram.add(&own).map_err(io::Error::other)?;
            sent += own_sent;
        }
        Ok((
            histogram,
            CpuCost::new(ThreadUsage::now()?.since(usage_start), sent),
        ))
    })?;
    let (histogram, client_cpu) = client.join().map_err(thread_error)??;
    let server_cpu = server.join().map_err(thread_error)??;
    Ok(TcpResult::new(
        connections,
        measure,
        &histogram,
        client_cpu,
        server_cpu,
    ))
}

/// Server side of one connection: echo 64-byte messages until the client closes.
async fn echo(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; MESSAGE_BYTES];
    let mut echoed = 0u64;
    loop {
        let BufResult(read, returned) = stream.read_exact(buf).await;
        buf = returned;
        match read {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(echoed),
            Err(error) => return Err(error),
        }
        let BufResult(written, returned) = stream.write_all(buf).await;
        buf = returned;
        written?;
        echoed += 1;
    }
}

/// Client side of one connection: sequential round trips until `measure_until`; those that
/// start at or after `measure_from` are recorded. Drops (closes) the stream at the end.
async fn ping(
    mut stream: TcpStream,
    connection: usize,
    measure_from: Instant,
    measure_until: Instant,
) -> io::Result<(Histogram<u64>, u64)> {
    let mut histogram = new_histogram();
    let mut request = request_bytes(connection, 0);
    let mut response = [0u8; MESSAGE_BYTES];
    let mut sequence = 0u64;
    loop {
        let started = Instant::now();
        if started >= measure_until {
            return Ok((histogram, sequence));
        }
        sequence += 1;
        stamp_sequence(&mut request, sequence);
        let BufResult(written, returned) = stream.write_all(request).await;
        request = returned;
        written?;
        let BufResult(read, returned) = stream.read_exact(response).await;
        response = returned;
        read?;
        let elapsed_ns = started.elapsed().as_nanos() as u64;
        check_echo(&request, &response)?;
        if started >= measure_from {
            histogram.record(elapsed_ns).map_err(io::Error::other)?;
        }
    }
}

async fn open_direct(path: &PathBuf) -> io::Result<(File, bool)> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .await?;
    let o_direct = o_direct_enabled(file.as_raw_fd())?;
    Ok((file, o_direct))
}

/// Sequential O_DIRECT overwrite of the preallocated append file with `in_flight` writes.
pub fn append(config: &Config, in_flight: usize) -> io::Result<AppendResult> {
    assert!(
        (1..=IN_FLIGHT_MAX).contains(&in_flight),
        "in_flight {in_flight} out of range"
    );
    let total = config.append_bytes;
    assert!(total.is_multiple_of(APPEND_WRITE_BYTES as u64));
    let path = config.append_path.clone();
    let disk = spawn_pinned("compio-disk", config.client_core, move || async move {
        let (file, o_direct) = open_direct(&path).await?;
        let buffers: Vec<AlignedBuf> = (0..in_flight)
            .map(|index| {
                let mut buf = AlignedBuf::new(APPEND_WRITE_BYTES);
                fill_pattern(buf.as_mut_slice(), index as u8);
                buf
            })
            .collect();
        let next = Rc::new(Cell::new(0u64));
        let usage_start = ThreadUsage::now()?;
        let started = Instant::now();
        let writers: Vec<_> = buffers
            .into_iter()
            .map(|buf| {
                compio::runtime::spawn(append_writer(file.clone(), next.clone(), total, buf))
            })
            .collect();
        for writer in writers {
            writer.await.map_err(join_error)??;
        }
        let seconds = started.elapsed().as_secs_f64();
        let writes = total / APPEND_WRITE_BYTES as u64;
        let cpu = CpuCost::new(ThreadUsage::now()?.since(usage_start), writes);
        assert!(
            next.get() >= total,
            "writers stopped before the end of the file"
        );
        file.close().await?;
        Ok((seconds, o_direct, cpu))
    })?;
    let (seconds, o_direct, cpu) = disk.join().map_err(thread_error)??;
    Ok(AppendResult {
        in_flight,
        write_bytes: APPEND_WRITE_BYTES,
        total_bytes: total,
        seconds,
        megabytes_per_second: total as f64 / seconds / 1e6,
        o_direct,
        cpu,
    })
}

/// Claims the next offset, writes one buffer there, repeats until `total`.
async fn append_writer(
    file: File,
    next: Rc<Cell<u64>>,
    total: u64,
    mut buf: AlignedBuf,
) -> io::Result<()> {
    let mut target = &file;
    loop {
        let position = next.get();
        if position >= total {
            return Ok(());
        }
        next.set(position + APPEND_WRITE_BYTES as u64);
        let BufResult(written, returned) = target.write_at(buf, position).await;
        buf = returned;
        check_full_write(written?, APPEND_WRITE_BYTES)?;
    }
}

/// 4 KiB O_DIRECT write at the next offset, then fdatasync; latency of the pair.
pub fn write_fdatasync(config: &Config) -> io::Result<SyncResult> {
    let path = config.sync_path.clone();
    let (warmup, iterations) = (config.sync_warmup_iterations, config.sync_iterations);
    let disk = spawn_pinned("compio-sync", config.client_core, move || async move {
        let (file, o_direct) = open_direct(&path).await?;
        let mut buf = AlignedBuf::new(SYNC_WRITE_BYTES);
        fill_pattern(buf.as_mut_slice(), 7);
        let mut histogram = new_histogram();
        let mut target = &file;
        let usage_start = ThreadUsage::now()?;
        for iteration in 0..warmup + iterations {
            let position = iteration * SYNC_WRITE_BYTES as u64;
            let started = Instant::now();
            let BufResult(written, returned) = target.write_at(buf, position).await;
            buf = returned;
            check_full_write(written?, SYNC_WRITE_BYTES)?;
            file.sync_data().await?;
            let elapsed_ns = started.elapsed().as_nanos() as u64;
            if iteration >= warmup {
                histogram.record(elapsed_ns).map_err(io::Error::other)?;
            }
        }
        let cpu = CpuCost::new(ThreadUsage::now()?.since(usage_start), warmup + iterations);
        file.close().await?;
        Ok((histogram, o_direct, cpu))
    })?;
    let (histogram, o_direct, cpu) = disk.join().map_err(thread_error)??;
    Ok(SyncResult {
        write_bytes: SYNC_WRITE_BYTES,
        iterations: histogram.len(),
        o_direct,
        latency: LatencySummary::from_histogram(&histogram),
        cpu,
    })
}
