//! The glommio 0.9 side of the comparison: echo TCP, O_DIRECT append and write + fdatasync.
//!
//! Owns: one glommio `LocalExecutor` per measurement role, placed with `Placement::Fixed`
//! (server on `server_core`, client and disk on `client_core`), with glommio's default settings.
//! Must never: share an executor or a file between measurements, or measure a file that is not
//! O_DIRECT (glommio silently turns Direct I/O off on tmpfs; every file is checked).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::net::{TcpListener, TcpStream};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use crate::common::{
    check_echo, check_full_write, fill_pattern, o_direct_enabled, request_bytes, stamp_sequence,
    Config, ThreadUsage, APPEND_WRITE_BYTES, IN_FLIGHT_MAX, MESSAGE_BYTES, SYNC_WRITE_BYTES,
};
use crate::stats::{new_histogram, AppendResult, CpuCost, LatencySummary, SyncResult, TcpResult};

/// Runs `body` in a new glommio executor whose thread is pinned to `core`.
fn spawn_pinned<T, F, Fut>(
    name: &str,
    core: usize,
    body: F,
) -> io::Result<ExecutorJoinHandle<io::Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<T>> + 'static,
{
    LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(name)
        .spawn(body)
        .map_err(io::Error::from)
}

fn join<T: Send + 'static>(handle: ExecutorJoinHandle<io::Result<T>>) -> io::Result<T> {
    handle.join().map_err(io::Error::from)?
}

/// Echo TCP round trips with `connections` concurrent connections, each sequential.
pub fn tcp(config: &Config, connections: usize) -> io::Result<TcpResult> {
    assert!(connections > 0);
    let (address_tx, address_rx) = mpsc::channel::<SocketAddr>();
    let server = spawn_pinned("glommio-server", config.server_core, move || async move {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let usage_start = ThreadUsage::now()?;
        address_tx
            .send(listener.local_addr()?)
            .map_err(io::Error::other)?;
        let mut echoes = Vec::with_capacity(connections);
        for _ in 0..connections {
            let stream = listener.accept().await?;
            stream.set_nodelay(true)?;
            echoes.push(glommio::spawn_local(echo(stream)));
        }
        let mut echoed = 0u64;
        for echo in echoes {
            echoed += echo.await?;
        }
        Ok(CpuCost::new(ThreadUsage::now()?.since(usage_start), echoed))
    })?;
    let Ok(address) = address_rx.recv() else {
        join(server)?;
        return Err(io::Error::other("glommio server exited before listening"));
    };
    let (warmup, measure) = (config.tcp_warmup, config.tcp_measure);
    let client = spawn_pinned("glommio-client", config.client_core, move || async move {
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
                glommio::spawn_local(ping(stream, index, measure_from, measure_until))
            })
            .collect();
        let mut histogram = new_histogram();
        let mut sent = 0u64;
        for pinger in pingers {
            let (own, own_sent) = pinger.await?;
            histogram.add(&own).map_err(io::Error::other)?;
            sent += own_sent;
        }
        Ok((
            histogram,
            CpuCost::new(ThreadUsage::now()?.since(usage_start), sent),
        ))
    })?;
    let (histogram, client_cpu) = join(client)?;
    let server_cpu = join(server)?;
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
        match stream.read_exact(&mut buf).await {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(echoed),
            Err(error) => return Err(error),
        }
        stream.write_all(&buf).await?;
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
        stream.write_all(&request).await?;
        stream.read_exact(&mut response).await?;
        let elapsed_ns = started.elapsed().as_nanos() as u64;
        check_echo(&request, &response)?;
        if started >= measure_from {
            histogram.record(elapsed_ns).map_err(io::Error::other)?;
        }
    }
}

async fn open_direct(path: &PathBuf) -> io::Result<(DmaFile, bool)> {
    let file = OpenOptions::new().write(true).dma_open(path).await?;
    let o_direct = o_direct_enabled(file.as_raw_fd())?;
    Ok((file, o_direct))
}

fn pattern_buffer(file: &DmaFile, len: usize, seed: u8) -> Rc<DmaBuffer> {
    let mut buf = file.alloc_dma_buffer(len);
    assert_eq!(
        buf.len(),
        len,
        "glommio returned a DMA buffer of the wrong size"
    );
    fill_pattern(buf.as_bytes_mut(), seed);
    Rc::new(buf)
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
    let disk = spawn_pinned("glommio-disk", config.client_core, move || async move {
        let (file, o_direct) = open_direct(&path).await?;
        let file = Rc::new(file);
        let buffers: Vec<Rc<DmaBuffer>> = (0..in_flight)
            .map(|index| pattern_buffer(&file, APPEND_WRITE_BYTES, index as u8))
            .collect();
        let next = Rc::new(Cell::new(0u64));
        let usage_start = ThreadUsage::now()?;
        let started = Instant::now();
        let writers: Vec<_> = buffers
            .into_iter()
            .map(|buf| glommio::spawn_local(append_writer(file.clone(), next.clone(), total, buf)))
            .collect();
        for writer in writers {
            writer.await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let writes = total / APPEND_WRITE_BYTES as u64;
        let cpu = CpuCost::new(ThreadUsage::now()?.since(usage_start), writes);
        assert!(
            next.get() >= total,
            "writers stopped before the end of the file"
        );
        let file = Rc::try_unwrap(file)
            .map_err(|_| io::Error::other("DMA file still shared after all writers ended"))?;
        file.close().await?;
        Ok((seconds, o_direct, cpu))
    })?;
    let (seconds, o_direct, cpu) = join(disk)?;
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
    file: Rc<DmaFile>,
    next: Rc<Cell<u64>>,
    total: u64,
    buf: Rc<DmaBuffer>,
) -> io::Result<()> {
    loop {
        let position = next.get();
        if position >= total {
            return Ok(());
        }
        next.set(position + APPEND_WRITE_BYTES as u64);
        let written = file.write_rc_at(buf.clone(), position).await?;
        check_full_write(written, APPEND_WRITE_BYTES)?;
    }
}

/// 4 KiB O_DIRECT write at the next offset, then fdatasync; latency of the pair.
pub fn write_fdatasync(config: &Config) -> io::Result<SyncResult> {
    let path = config.sync_path.clone();
    let (warmup, iterations) = (config.sync_warmup_iterations, config.sync_iterations);
    let disk = spawn_pinned("glommio-sync", config.client_core, move || async move {
        let (file, o_direct) = open_direct(&path).await?;
        let buf = pattern_buffer(&file, SYNC_WRITE_BYTES, 7);
        let mut histogram = new_histogram();
        let usage_start = ThreadUsage::now()?;
        for iteration in 0..warmup + iterations {
            let position = iteration * SYNC_WRITE_BYTES as u64;
            let started = Instant::now();
            let written = file.write_rc_at(buf.clone(), position).await?;
            check_full_write(written, SYNC_WRITE_BYTES)?;
            file.fdatasync().await?;
            let elapsed_ns = started.elapsed().as_nanos() as u64;
            if iteration >= warmup {
                histogram.record(elapsed_ns).map_err(io::Error::other)?;
            }
        }
        let cpu = CpuCost::new(ThreadUsage::now()?.since(usage_start), warmup + iterations);
        drop(buf);
        file.close().await?;
        Ok((histogram, o_direct, cpu))
    })?;
    let (histogram, o_direct, cpu) = join(disk)?;
    Ok(SyncResult {
        write_bytes: SYNC_WRITE_BYTES,
        iterations: histogram.len(),
        o_direct,
        latency: LatencySummary::from_histogram(&histogram),
        cpu,
    })
}
