//! The master's side of one shard's replication session ([`serve_slave`]): reads the slave's
//! Hello, checks its identity, finds where the logs agree (the fast path, or a bounded Probe
//! search), answers the Welcome, then ships whole CommitLog entries as Data frames while it
//! reads the slave's Acks into a [`SlaveProgress`].
//!
//! Runs on the shard that owns `store`. Must never: ship bytes other than whole entries as
//! `Store::read_log` returns them, accept a slave whose log does not agree with its own up to
//! the start, send more than one Data frame ahead of the socket, or write to the store.

use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::net::TcpStream;
use rmq_net::ha::limits::HA_PROBES_PER_HANDSHAKE_MAX;
use rmq_net::ha::{
    Body, EntrySummary, Frame, Hello, Probe, RefuseReason, Sender, Welcome, HA_PROTOCOL_VERSION,
};
use rmq_storage::commitlog::{EntryHeader, LogChunk, ShipLimit};
use rmq_storage::error::StorageError;
use rmq_storage::store::Store;

use super::conn::{peer_of, write_data, write_frame, FrameReader};
use super::progress::SlaveProgress;
use super::HaError;
use crate::limits::HA_CATCH_UP_CHUNK_BYTES;

/// What the master side of a session needs besides the store and the socket.
#[derive(Debug, Clone)]
pub struct MasterParams {
    /// The shard this connection replicates (the store's).
    pub shard_id: u16,
    /// The broker's shard count.
    pub shard_count: u16,
    /// `brokerClusterName`.
    pub cluster_name: String,
    /// `brokerName`.
    pub broker_name: String,
    /// `haTransferBatchSize`: log bytes per Data frame (one larger entry is sent whole).
    pub transfer_batch_bytes: usize,
    /// `haSendHeartbeatInterval`: an empty Data frame this often while caught up.
    pub heartbeat_interval: Duration,
    /// Close the connection when no Ack arrived for this long.
    pub silence_timeout: Duration,
    /// Where the slave's Acks are published.
    pub progress: Rc<SlaveProgress>,
}

/// Serves one slave on one connection until it closes, fails, is refused or told to truncate
/// (`Ok(())`: the slave cuts its log and reconnects). Cancel-safe: dropping the future only
/// closes the connection (the store is only read).
///
/// # Panics
/// If `params.silence_timeout` is not longer than `params.heartbeat_interval` (a session would
/// close on a healthy idle peer).
///
/// # Errors
/// [`HaError::Refused`] when this master refused the slave (the Welcome was sent);
/// [`HaError::Closed`], [`HaError::Silent`], [`HaError::Io`], [`HaError::Codec`],
/// [`HaError::Protocol`] for the connection; [`HaError::Storage`] when reading the log failed.
pub async fn serve_slave(
    store: &Store,
    stream: TcpStream,
    params: MasterParams,
) -> Result<(), HaError> {
    assert!(
        params.silence_timeout > params.heartbeat_interval,
        "silence limit above the heartbeat interval"
    );
    let mut reader = FrameReader::new(params.shard_id, Sender::Slave);
    let first = read_hello(&mut reader, &stream, params.silence_timeout).await?;
    serve_slave_after_hello(store, stream, reader, first, params).await
}

/// The first frame of an HA connection, whichever shard it names (the listener reads it to
/// hand the connection to that shard).
///
/// # Errors
/// [`HaError::Silent`] when nothing arrives within `silence_timeout`; the connection's errors.
pub(crate) async fn read_hello(
    reader: &mut FrameReader,
    stream: &TcpStream,
    silence_timeout: Duration,
) -> Result<Frame, HaError> {
    compio::time::timeout(silence_timeout, reader.next_any_shard(stream))
        .await
        .map_err(|_| HaError::Silent(silence_timeout))?
}

/// [`serve_slave`] once the first frame was read (by the HA listener, on another shard):
/// `reader` holds whatever arrived after it.
///
/// # Errors
/// As [`serve_slave`].
pub(crate) async fn serve_slave_after_hello(
    store: &Store,
    stream: TcpStream,
    mut reader: FrameReader,
    first: Frame,
    params: MasterParams,
) -> Result<(), HaError> {
    assert!(
        params.silence_timeout > params.heartbeat_interval,
        "silence limit above the heartbeat interval"
    );
    let Body::Hello(hello) = first.body else {
        return Err(out_of_turn(&first.body, "before the Hello"));
    };
    if let Some((reason, text)) = identity_refusal(store, &params, &hello) {
        // Answered on the Hello's shard id, so the slave reads the refusal.
        return refuse(&stream, first.shard_id, reason, text).await;
    }
    if first.shard_id != params.shard_id {
        let text = format!(
            "shard {} reached shard {}'s session",
            first.shard_id, params.shard_id
        );
        return refuse(&stream, first.shard_id, RefuseReason::ShardId, text).await;
    }
    let welcome = match decide_start(store, &mut reader, &stream, &params, &hello).await? {
        Start::Accept(start_offset) => Welcome::Accept {
            start_offset,
            master_appended_end: store.commitlog().appended_offset(),
        },
        Start::Truncate(to) => Welcome::Truncate { to },
        Start::Refuse(reason, text) => {
            return refuse(&stream, params.shard_id, reason, text).await;
        }
    };
    let frame = Frame {
        shard_id: params.shard_id,
        body: Body::Welcome(welcome.clone()),
    };
    write_frame(&stream, &frame).await?;
    let Welcome::Accept {
        start_offset,
        master_appended_end,
    } = welcome
    else {
        tracing::info!(
            shard = params.shard_id,
            slave = hello.slave_broker_id,
            peer = %peer_of(&stream),
            ?welcome,
            slave_end = hello.appended_end,
            "HA slave told to truncate"
        );
        return Ok(());
    };
    tracing::info!(
        shard = params.shard_id,
        slave = hello.slave_broker_id,
        peer = %peer_of(&stream),
        start_offset,
        behind_bytes = master_appended_end.saturating_sub(start_offset),
        "HA slave accepted"
    );
    params
        .progress
        .begin_session(hello.appended_end, hello.durable_end);
    let shipped = std::cell::Cell::new(start_offset);
    let catch_up = CatchUp {
        slave: hello.slave_broker_id,
        from: start_offset,
        to: master_appended_end,
        started: Instant::now(),
    };
    let shipping = std::pin::pin!(ship(store, &stream, &params, &shipped));
    let acking = std::pin::pin!(read_acks(reader, &stream, &params, &shipped, catch_up));
    match futures_util::future::select(shipping, acking).await {
        futures_util::future::Either::Left((result, _))
        | futures_util::future::Either::Right((result, _)) => result,
    }
}

/// Where the slave continues, as decided by the handshake.
enum Start {
    Accept(u64),
    Truncate(u64),
    Refuse(RefuseReason, String),
}

/// The identity checks of `docs/replication-protocol.md` §4, in order. Not checked here (the
/// caller's: `crate::broker::ha` checks both): that the broker is a master, and that no other
/// slave holds the shard's session (the same slave again replaces its old session).
fn identity_refusal(
    store: &Store,
    params: &MasterParams,
    hello: &Hello,
) -> Option<(RefuseReason, String)> {
    let segment_size = store.commitlog().config().segment_size_bytes;
    if hello.protocol_version != HA_PROTOCOL_VERSION {
        let text = format!(
            "protocol {} (this master speaks {HA_PROTOCOL_VERSION})",
            hello.protocol_version
        );
        return Some((RefuseReason::ProtocolVersion, text));
    }
    if hello.cluster_name != params.cluster_name {
        let text = format!(
            "cluster {} is not {}",
            hello.cluster_name, params.cluster_name
        );
        return Some((RefuseReason::ClusterName, text));
    }
    if hello.broker_name != params.broker_name {
        let text = format!("broker {} is not {}", hello.broker_name, params.broker_name);
        return Some((RefuseReason::BrokerName, text));
    }
    if hello.slave_broker_id == 0 {
        return Some((RefuseReason::BrokerId, "broker id 0 is a master's".into()));
    }
    if hello.shard_count != params.shard_count {
        let text = format!(
            "{} shards, this master has {}",
            hello.shard_count, params.shard_count
        );
        return Some((RefuseReason::ShardCount, text));
    }
    if hello.segment_size != segment_size {
        let text = format!(
            "segment size {}, this master's is {segment_size}",
            hello.segment_size
        );
        return Some((RefuseReason::SegmentSize, text));
    }
    // Last: the shard id (`serve_slave`, from the frame header).
    None
}

/// Sends a Welcome Refused and returns the refusal as an error.
pub(crate) async fn refuse(
    stream: &TcpStream,
    shard_id: u16,
    reason: RefuseReason,
    text: String,
) -> Result<(), HaError> {
    tracing::warn!(shard = shard_id, peer = %peer_of(stream), ?reason, %text, "HA slave refused");
    let frame = Frame {
        shard_id,
        body: Body::Welcome(Welcome::Refused {
            reason,
            text: text.clone(),
        }),
    };
    write_frame(stream, &frame).await?;
    Err(HaError::Refused { reason, text })
}

/// Decides where the slave continues (`docs/replication-protocol.md` §4–5).
async fn decide_start(
    store: &Store,
    reader: &mut FrameReader,
    stream: &TcpStream,
    params: &MasterParams,
    hello: &Hello,
) -> Result<Start, HaError> {
    let log = store.commitlog();
    let (min_offset, master_end) = (log.min_offset(), log.appended_offset());
    let Some(last) = hello.last_entry else {
        // An empty slave log: the storage places replicated bytes only at the log's own end,
        // so the slave can start only where its (empty) log ends.
        if hello.appended_end == min_offset || hello.appended_end == master_end {
            return Ok(Start::Accept(hello.appended_end));
        }
        let text = format!(
            "the slave's empty log ends at {}, this master's starts at {min_offset}",
            hello.appended_end
        );
        return Ok(Start::Refuse(RefuseReason::NoCommonPrefix, text));
    };
    if master_entry(store, last.offset).await? == Some(last) {
        return Ok(Start::Accept(hello.appended_end));
    }
    let bound = hello.appended_end.min(master_end);
    let mut probes = Prober {
        reader,
        stream,
        shard_id: params.shard_id,
        silence_timeout: params.silence_timeout,
        sent: 0,
    };
    match common_prefix_end(store, &mut probes, bound).await? {
        Some(end) if end == hello.appended_end => Ok(Start::Accept(end)),
        Some(end) => Ok(Start::Truncate(end)),
        None => Ok(Start::Refuse(
            RefuseReason::NoCommonPrefix,
            format!("no common prefix within {HA_PROBES_PER_HANDSHAKE_MAX} probes"),
        )),
    }
}

/// Sends Probes and reads their replies during the handshake, counting them.
struct Prober<'a> {
    reader: &'a mut FrameReader,
    stream: &'a TcpStream,
    shard_id: u16,
    silence_timeout: Duration,
    sent: usize,
}

impl Prober<'_> {
    /// Whether the slave holds the master's entry `entry` (`None`: out of probes).
    async fn matches(&mut self, entry: EntrySummary) -> Result<Option<bool>, HaError> {
        if self.sent == HA_PROBES_PER_HANDSHAKE_MAX {
            return Ok(None);
        }
        self.sent += 1;
        let probe = Frame {
            shard_id: self.shard_id,
            body: Body::Probe(Probe {
                offset: entry.offset,
            }),
        };
        write_frame(self.stream, &probe).await?;
        let reply = next_before(self.reader, self.stream, self.silence_timeout).await?;
        match reply.body {
            Body::ProbeReply(reply) if reply.offset == entry.offset => {
                Ok(Some(reply.entry == Some(entry)))
            }
            Body::ProbeReply(reply) => Err(HaError::Protocol(format!(
                "ProbeReply for {} to a Probe for {}",
                reply.offset, entry.offset
            ))),
            other => Err(out_of_turn(&other, "during the probes")),
        }
    }
}

/// The end of the longest prefix both logs share below `bound`, 0 when they share none;
/// `None` when the probes ran out. Agreement is a prefix (§5), so it bisects: first over the
/// segment starts (always entry boundaries), then over the entries of the last agreeing
/// segment, walked header by header (one header read per entry of that segment, and 8 bytes
/// of memory each).
async fn common_prefix_end(
    store: &Store,
    probes: &mut Prober<'_>,
    bound: u64,
) -> Result<Option<u64>, HaError> {
    let mut segments = Vec::new();
    for start in store.commitlog().segment_starts() {
        match master_entry(store, start).await? {
            Some(entry) if entry.end() <= bound => segments.push(entry),
            _ => break,
        }
    }
    let Some(segment) = last_match(probes, &segments).await? else {
        return Ok(None);
    };
    let Some(segment) = segment else {
        return Ok(Some(0));
    };
    let mut entries = vec![segment];
    let (mut at, segment_end) = (segment.end(), segment_end_of(store, segment.offset));
    while at < segment_end {
        match master_entry(store, at).await? {
            Some(entry) if entry.end() <= bound => {
                entries.push(entry);
                at = entry.end();
            }
            _ => break,
        }
    }
    // entries[0] is known to match.
    let Some(found) = last_match(probes, &entries[1..]).await? else {
        return Ok(None);
    };
    Ok(Some(found.unwrap_or(segment).end()))
}

/// The last entry of `candidates` the slave holds, given that agreement is a prefix:
/// `Some(None)` when it holds none of them, `None` when the probes ran out.
async fn last_match(
    probes: &mut Prober<'_>,
    candidates: &[EntrySummary],
) -> Result<Option<Option<EntrySummary>>, HaError> {
    // Invariant: candidates[..low] match, candidates[high..] do not.
    let (mut low, mut high) = (0, candidates.len());
    while low < high {
        let middle = low + (high - low) / 2;
        match probes.matches(candidates[middle]).await? {
            None => return Ok(None),
            Some(true) => low = middle + 1,
            Some(false) => high = middle,
        }
    }
    Ok(Some(low.checked_sub(1).map(|last| candidates[last])))
}

/// End of the segment that starts at `start`.
fn segment_end_of(store: &Store, start: u64) -> u64 {
    start + store.commitlog().config().segment_size_bytes
}

/// The master's entry starting at `offset`, `None` where none starts (outside the log, or
/// inside an entry).
async fn master_entry(store: &Store, offset: u64) -> Result<Option<EntrySummary>, HaError> {
    match store.entry_header_at(offset).await {
        Ok(header) => Ok(Some(summary(&header))),
        Err(StorageError::OffsetOutOfRange { .. } | StorageError::NotAnEntry { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The protocol's summary of an entry header.
///
/// # Panics
/// If the entry spans more than `u32::MAX` bytes: a record is at most the record limit, and a
/// filler spans no more than a record.
pub(crate) fn summary(header: &EntryHeader) -> EntrySummary {
    EntrySummary {
        offset: header.offset,
        size: u32::try_from(header.span).expect("an entry spans no more than a record"),
        generation: header.generation,
        crc: header.crc,
    }
}

/// Ships from the shipped offset forever: a Data frame per `read_log` chunk, an empty one per
/// heartbeat interval while caught up.
async fn ship(
    store: &Store,
    stream: &TcpStream,
    params: &MasterParams,
    shipped: &std::cell::Cell<u64>,
) -> Result<(), HaError> {
    let mut last_sent = Instant::now();
    // The next chunk, read while the previous one was being written (catch-up pipelining).
    let mut prefetched: Option<LogChunk> = None;
    loop {
        let next = shipped.get();
        let chunk = match prefetched.take() {
            Some(chunk) => chunk,
            None => {
                store
                    .read_log(next, batch_bytes(store, params, next), ShipLimit::Appended)
                    .await?
            }
        };
        let master_end = store.commitlog().appended_offset();
        if chunk.is_empty() {
            if last_sent.elapsed() >= params.heartbeat_interval {
                write_data(stream, params.shard_id, next, master_end, chunk.bytes).await?;
                last_sent = Instant::now();
            }
            // Caught up: the next append wakes this session (or the heartbeat is due).
            let heartbeat_due = params
                .heartbeat_interval
                .saturating_sub(last_sent.elapsed());
            let appended = std::pin::pin!(store.commitlog().wait_appended_past(next));
            let heartbeat = std::pin::pin!(compio::time::sleep(heartbeat_due));
            futures_util::future::select(appended, heartbeat).await;
            // Let the tasks that are ready now (requests being appended) run first: a frame
            // then carries all they append, and one Ack completes them all.
            crate::runtime::cooperate::yield_now().await;
            continue;
        }
        assert_eq!(chunk.from, next, "a chunk starts where it was asked");
        assert!(chunk.next_offset > next, "a chunk moves forward");
        // Counted as shipped before the write completes: an Ack for these bytes may be read
        // as soon as they leave, before this future runs again.
        shipped.set(chunk.next_offset);
        let after = chunk.next_offset;
        let started = Instant::now();
        let bytes_len = chunk.bytes.len();
        let written = write_data(stream, params.shard_id, next, master_end, chunk.bytes);
        if after < master_end {
            // Behind: read the next chunk while this one is written (a disk read and a socket
            // write overlap; at most one chunk is held besides the one in the socket).
            let reading = store.read_log(
                after,
                batch_bytes(store, params, after),
                ShipLimit::Appended,
            );
            let written = async {
                let result = written.await;
                (result, started.elapsed())
            };
            let reading = async {
                let result = reading.await;
                (result, started.elapsed())
            };
            let ((written, write_took), (read, read_took)) =
                futures_util::future::join(written, reading).await;
            written?;
            prefetched = Some(read?);
            tracing::trace!(
                shard = params.shard_id,
                offset = next,
                bytes = bytes_len,
                write_us = write_took.as_micros(),
                read_ahead_us = read_took.as_micros(),
                "HA Data frame shipped"
            );
        } else {
            written.await?;
        }
        last_sent = Instant::now();
    }
}

/// Bytes per Data frame from `from`: `haTransferBatchSize` while the slave keeps up; when more
/// is pending, everything pending up to [`HA_CATCH_UP_CHUNK_BYTES`]. So frames grow with the
/// lag: a slave slowed by its fdatasync (SYNC_FLUSH) gets all that accumulated meanwhile in its
/// next frame and one fdatasync and one Ack cover it (group commit across the replication
/// hop), and a catching-up slave gets large O_DIRECT reads (32 KiB reads would bound catch-up
/// far below the disk's bandwidth).
fn batch_bytes(store: &Store, params: &MasterParams, from: u64) -> usize {
    let pending = store.commitlog().appended_offset().saturating_sub(from);
    let pending = usize::try_from(pending).unwrap_or(usize::MAX);
    pending
        .min(HA_CATCH_UP_CHUNK_BYTES)
        .max(params.transfer_batch_bytes)
}

/// The master's end when it accepted the slave: the slave acknowledging it is "caught up"
/// (logged once per session).
struct CatchUp {
    slave: u64,
    from: u64,
    to: u64,
    started: Instant,
}

/// Reads Acks until the connection ends, publishing each.
async fn read_acks(
    mut reader: FrameReader,
    stream: &TcpStream,
    params: &MasterParams,
    shipped: &std::cell::Cell<u64>,
    catch_up: CatchUp,
) -> Result<(), HaError> {
    let mut caught_up = false;
    // Acks never go back within a session. The first may be below the Hello's appended end: a
    // SYNC_FLUSH slave acknowledges only its durable end.
    let mut appended = 0;
    loop {
        let frame = next_before(&mut reader, stream, params.silence_timeout).await?;
        let Body::Ack(ack) = frame.body else {
            return Err(out_of_turn(&frame.body, "after the Welcome"));
        };
        if ack.appended_end < appended {
            return Err(HaError::Protocol(format!(
                "Ack went back from {appended} to {}",
                ack.appended_end
            )));
        }
        if ack.appended_end > shipped.get() {
            return Err(HaError::Protocol(format!(
                "Ack of {} past the {} shipped",
                ack.appended_end,
                shipped.get()
            )));
        }
        appended = ack.appended_end;
        params.progress.acked(ack.appended_end, ack.durable_end);
        if !caught_up && appended >= catch_up.to {
            caught_up = true;
            tracing::info!(
                shard = params.shard_id,
                slave = catch_up.slave,
                peer = %peer_of(stream),
                end = catch_up.to,
                bytes = catch_up.to.saturating_sub(catch_up.from),
                took_ms = u64::try_from(catch_up.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "HA slave caught up"
            );
        }
    }
}

/// The next frame, or [`HaError::Silent`] when none arrives within `silence_timeout`.
pub(crate) async fn next_before(
    reader: &mut FrameReader,
    stream: &TcpStream,
    silence_timeout: Duration,
) -> Result<Frame, HaError> {
    compio::time::timeout(silence_timeout, reader.next(stream))
        .await
        .map_err(|_| HaError::Silent(silence_timeout))?
}

pub(crate) fn out_of_turn(body: &Body, when: &str) -> HaError {
    HaError::Protocol(format!("{:?} {when}", body.frame_type()))
}
