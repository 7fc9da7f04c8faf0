//! The slave's side of one shard's replication session ([`follow_master`]): sends the Hello
//! from its log's end, answers Probes from its own log, obeys the Welcome (truncate, refused,
//! or accept), then appends each Data frame's entries verbatim and acknowledges them. Publishes
//! what it learns of the master into a [`FollowProgress`] the caller shares (broker-status).
//!
//! Runs on the shard that owns `store`. Must never: append bytes anywhere but at its log's
//! end, answer a Probe from anything but its log, or keep going after a frame breaks the
//! protocol (it returns; the caller reconnects after a backoff).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::net::TcpStream;
use futures_util::future::{select, Either};
use rmq_net::ha::limits::HA_PROBES_PER_HANDSHAKE_MAX;
use rmq_net::ha::{
    Ack, Body, Data, EntrySummary, Frame, Hello, ProbeReply, Sender, Welcome, HA_PROTOCOL_VERSION,
};
use rmq_storage::commitlog::{FlushPolicy, Preallocation};
use rmq_storage::error::StorageError;
use rmq_storage::store::{PlacedChunk, Store};

use super::conn::{peer_of, write_frame, FrameReader};
use super::dispatch::Pipeline;
use super::master::{next_before, out_of_turn, summary};
use super::HaError;

/// What the slave side of a session needs besides the store and the socket.
#[derive(Debug, Clone)]
pub struct SlaveParams {
    /// The shard this connection replicates (the store's).
    pub shard_id: u16,
    /// This broker's shard count (must equal the master's).
    pub shard_count: u16,
    /// This broker's `brokerId` (> 0).
    pub broker_id: u64,
    /// `brokerClusterName` (must equal the master's).
    pub cluster_name: String,
    /// `brokerName` (must equal the master's).
    pub broker_name: String,
    /// `haSendHeartbeatInterval`: an Ack at least this often.
    pub heartbeat_interval: Duration,
    /// Close the connection when no frame arrived for this long.
    pub silence_timeout: Duration,
    /// Where the session publishes the master's end as its frames tell it.
    pub follow: Rc<FollowProgress>,
}

/// What a slave's sessions learnt of the master on one shard (single-shard: `Cell`s, shared
/// by `Rc` between the session and whoever reports on it). Kept across sessions.
#[derive(Debug, Default)]
pub struct FollowProgress {
    master_end: Cell<u64>,
    last_data: Cell<Option<Instant>>,
    caught_up: Cell<bool>,
}

impl FollowProgress {
    /// Nothing heard yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The master's appended end in its latest Data frame, or its Accept welcome (0 before
    /// any).
    #[must_use]
    pub fn master_end(&self) -> u64 {
        self.master_end.get()
    }

    /// When the latest Data frame (a heartbeat included) arrived.
    #[must_use]
    pub fn last_data(&self) -> Option<Instant> {
        self.last_data.get()
    }

    /// Whether the current (or last) session has replicated everything the master held when
    /// it accepted this slave.
    #[must_use]
    pub fn caught_up(&self) -> bool {
        self.caught_up.get()
    }

    fn begin_session(&self, master_end: u64) {
        self.master_end.set(master_end);
        self.caught_up.set(false);
    }

    fn data(&self, master_end: u64) {
        // A frame's end is the master's end when it was sent: it never goes back within a
        // session, but a new master (after a truncation) may hold less.
        self.master_end.set(master_end);
        self.last_data.set(Some(Instant::now()));
    }
}

/// Follows the master on one connection. `Ok(())` after a Truncate welcome: the log was cut to
/// the common prefix; reconnect at once. Otherwise it runs until the connection ends.
///
/// Not cancel-safe while a chunk is being appended: to stop it, close the master's end (the
/// session returns [`HaError::Closed`]).
///
/// # Panics
/// If `params.silence_timeout` is not longer than `params.heartbeat_interval`.
///
/// # Errors
/// [`HaError::Refused`] with the master's reason; [`HaError::Storage`] when appending or
/// truncating failed (an append refusal means the logs disagree: reconnect, the handshake
/// decides again); [`HaError::Closed`], [`HaError::Silent`], [`HaError::Io`],
/// [`HaError::Codec`], [`HaError::Protocol`] for the connection.
pub async fn follow_master(
    store: &Store,
    stream: TcpStream,
    params: SlaveParams,
) -> Result<(), HaError> {
    assert!(
        params.silence_timeout > params.heartbeat_interval,
        "silence limit above the heartbeat interval"
    );
    let hello = hello(store, &params).await?;
    write_frame(&stream, &frame_of(&params, Body::Hello(hello))).await?;
    let mut reader = FrameReader::new(params.shard_id, Sender::Master);
    let mut probes = 0usize;
    let welcome = loop {
        let frame = next_before(&mut reader, &stream, params.silence_timeout).await?;
        match frame.body {
            Body::Probe(probe) => {
                probes += 1;
                if probes > HA_PROBES_PER_HANDSHAKE_MAX {
                    return Err(HaError::Protocol(format!("more than {probes} probes")));
                }
                let entry = own_entry(store, probe.offset).await?;
                let reply = Body::ProbeReply(ProbeReply {
                    offset: probe.offset,
                    entry,
                });
                write_frame(&stream, &frame_of(&params, reply)).await?;
            }
            Body::Welcome(welcome) => break welcome,
            other => return Err(out_of_turn(&other, "before the Welcome")),
        }
    };
    match welcome {
        Welcome::Refused { reason, text } => Err(HaError::Refused { reason, text }),
        Welcome::Truncate { to } => {
            let log = store.commitlog();
            let (to, from) = (to.max(log.min_offset()), log.appended_offset());
            tracing::warn!(
                shard = params.shard_id,
                master = %peer_of(&stream),
                from,
                to,
                dropped_bytes = from.saturating_sub(to),
                "HA: truncating this slave's log to the master's"
            );
            store.truncate_to(to).await?;
            Ok(())
        }
        Welcome::Accept {
            start_offset,
            master_appended_end,
        } => {
            let end = store.commitlog().appended_offset();
            if start_offset != end {
                return Err(HaError::Protocol(format!(
                    "accepted at {start_offset}, this log ends at {end}"
                )));
            }
            params.follow.begin_session(master_appended_end);
            // Behind: new segments are reserved, not zero-filled, until caught up (the
            // catch-up's writes are large, and nothing waits on this slave's fdatasyncs yet).
            store
                .commitlog()
                .set_preallocation(if master_appended_end > end {
                    Preallocation::Sparse
                } else {
                    caught_up_preallocation(store)
                });
            let catch_up = CatchUp {
                from: start_offset,
                to: master_appended_end,
                started: Instant::now(),
            };
            catch_up.check(store, &stream, &params);
            apply(store, &stream, reader, &params, &catch_up).await
        }
    }
}

/// The Hello from the log's end and its last entry.
async fn hello(store: &Store, params: &SlaveParams) -> Result<Hello, HaError> {
    let log = store.commitlog();
    let appended_end = log.appended_offset();
    Ok(Hello {
        protocol_version: HA_PROTOCOL_VERSION,
        shard_count: params.shard_count,
        segment_size: log.config().segment_size_bytes,
        slave_broker_id: params.broker_id,
        appended_end,
        durable_end: log.durable_offset().min(appended_end),
        last_entry: last_entry(store, appended_end).await?,
        cluster_name: params.cluster_name.clone(),
        broker_name: params.broker_name.clone(),
    })
}

/// The entry ending at `end`, found by walking from the start of the segment holding the
/// byte before it (segment starts are entry boundaries; the walk reads one header per entry
/// of that segment). `None` for an empty log.
async fn last_entry(store: &Store, end: u64) -> Result<Option<EntrySummary>, HaError> {
    let log = store.commitlog();
    if end == log.min_offset() {
        return Ok(None);
    }
    let segment_start = log
        .segment_starts()
        .into_iter()
        .filter(|start| *start < end)
        .max()
        .expect("a non-empty log has a segment below its end");
    let mut at = segment_start;
    loop {
        let header = store.entry_header_at(at).await?;
        if header.end() == end {
            return Ok(Some(summary(&header)));
        }
        assert!(header.end() < end, "entries tile the log up to its end");
        at = header.end();
    }
}

/// This log's entry starting at `offset`, for a ProbeReply.
async fn own_entry(store: &Store, offset: u64) -> Result<Option<EntrySummary>, HaError> {
    match store.entry_header_at(offset).await {
        Ok(header) => Ok(Some(summary(&header))),
        Err(StorageError::OffsetOutOfRange { .. } | StorageError::NotAnEntry { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The master's end when it accepted this slave: reaching it is "caught up" (logged once per
/// session; later appends keep coming, so the master's live end is a moving target).
struct CatchUp {
    from: u64,
    to: u64,
    started: Instant,
}

impl CatchUp {
    fn check(&self, store: &Store, stream: &TcpStream, params: &SlaveParams) {
        if params.follow.caught_up() || store.commitlog().appended_offset() < self.to {
            return;
        }
        params.follow.caught_up.set(true);
        store
            .commitlog()
            .set_preallocation(caught_up_preallocation(store));
        tracing::info!(
            shard = params.shard_id,
            master = %peer_of(stream),
            end = self.to,
            bytes = self.to.saturating_sub(self.from),
            took_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "HA: caught up with the master"
        );
    }
}

/// How a caught-up slave prepares its next segments. A SYNC_FLUSH slave zero-fills them: its
/// Acks wait on its fdatasyncs, which would also commit the extent conversions of a reserved
/// segment. An ASYNC_FLUSH slave acknowledges placed bytes, so its fdatasyncs delay no Ack: it
/// only reserves them, and writes no zeros that its own writes would queue behind (zero-fill
/// writes at every roll delayed its dispatch, and with it its Acks, by 5-20 ms: a SYNC_MASTER's
/// p99 at 1 KiB was 2.3x an ASYNC_MASTER's).
fn caught_up_preallocation(store: &Store) -> Preallocation {
    if store.commitlog().config().flush_policy == FlushPolicy::Sync {
        Preallocation::Zeroed
    } else {
        Preallocation::Sparse
    }
}

/// Appends Data frames as they come and acknowledges them; an Ack also goes out every
/// heartbeat interval and, on a SYNC_FLUSH slave, whenever more of the log became durable.
/// Appends do not wait for the fdatasync: frames that arrive while one runs are appended at
/// once and the next fdatasync covers them all (group commit across frames), and a SYNC_FLUSH
/// slave acknowledges as appended only what is durable ([`ack`]). The next frame is read off
/// the socket while one is appended (pipelining: a catching-up slave's socket copy and CRC
/// check overlap its placement, reput and disk writes), at most one frame ahead. A frame's
/// records are placed and acknowledged at once, then dispatched (consume queues, index) while
/// the next frame is placed ([`Pipeline`]); a pull returns only dispatched records. The read
/// stays pending across the timer, the durability wait, the dispatch and the append (a
/// dropped read would lose bytes). The dispatch in flight is finished before this returns,
/// whatever it returns.
async fn apply(
    store: &Store,
    stream: &TcpStream,
    reader: FrameReader,
    params: &SlaveParams,
    catch_up: &CatchUp,
) -> Result<(), HaError> {
    let mut pipeline = Pipeline::new(store);
    let result = apply_frames(store, stream, reader, params, catch_up, &mut pipeline).await;
    let drained = pipeline.drain().await;
    result?;
    drained.map_err(HaError::from)
}

async fn apply_frames<'a>(
    store: &'a Store,
    stream: &TcpStream,
    reader: FrameReader,
    params: &SlaveParams,
    catch_up: &CatchUp,
    pipeline: &mut Pipeline<'a>,
) -> Result<(), HaError> {
    let log = store.commitlog();
    let sync_flush = log.config().flush_policy == FlushPolicy::Sync;
    let mut last_heard = Instant::now();
    let mut last_acked = Instant::now();
    // Since when this loop waited for a frame (trace of where a catch-up's time goes).
    let mut idle_since = Instant::now();
    let mut reading = Some(Box::pin(reader.next_owned(stream)));
    // A frame read while the previous one was appended; never more than this one.
    let mut read_ahead = None;
    // What the last Ack said. An fdatasync that finished while that Ack was being written
    // (after its ends were read) is acknowledged at once instead of waiting for the next frame
    // or heartbeat: a SYNC_MASTER whose sends all waited on it stalled for seconds (256-1,280
    // send timeouts in 15 s runs of SYNC_MASTER + SYNC_FLUSH at 128 B).
    let mut last_ack: Option<Ack> = None;
    loop {
        // Whether this turn must send an Ack even if it says what the last one said: after a
        // frame, and when the heartbeat is due.
        let mut ack_anyway = true;
        let received = match read_ahead.take() {
            Some(received) => Some(received),
            None if last_ack.is_some_and(|sent| sent != current_ack(store)) => None,
            None => {
                let pending = reading
                    .take()
                    .expect("a read is pending unless one is ahead");
                let until_ack = params
                    .heartbeat_interval
                    .saturating_sub(last_acked.elapsed());
                let timer = std::pin::pin!(compio::time::sleep(until_ack));
                let appended = log.appended_offset();
                let more_durable = std::pin::pin!(async move {
                    if sync_flush && log.durable_offset() < appended {
                        log.wait_durable(appended).await
                    } else {
                        std::future::pending().await
                    }
                });
                // Polled here so that the dispatch in flight progresses while the session waits
                // (it changes nothing an Ack says).
                let settled = std::pin::pin!(pipeline.settled());
                let news = select(timer, select(more_durable, settled));
                match select(pending, news).await {
                    Either::Left((received, _)) => Some(received),
                    Either::Right((Either::Left(((), _)), pending)) => {
                        if last_heard.elapsed() >= params.silence_timeout {
                            return Err(HaError::Silent(params.silence_timeout));
                        }
                        reading = Some(pending);
                        None
                    }
                    Either::Right((Either::Right((Either::Left((durable, _)), _)), pending)) => {
                        durable?;
                        reading = Some(pending);
                        None
                    }
                    Either::Right((Either::Right((Either::Right((settled, _)), _)), pending)) => {
                        settled?;
                        reading = Some(pending);
                        ack_anyway = false;
                        None
                    }
                }
            }
        };
        if let Some((reader, frame)) = received {
            last_heard = Instant::now();
            let Body::Data(data) = frame?.body else {
                return Err(HaError::Protocol(
                    "a non-Data frame after the Welcome".into(),
                ));
            };
            assert!(reading.is_none(), "one read at a time");
            let appending_since = Instant::now();
            let next = Box::pin(reader.next_owned(stream));
            let placed = {
                let placing = std::pin::pin!(place(store, &data));
                match pipeline.alongside(select(placing, next)).await? {
                    Either::Left((placed, next)) => {
                        reading = Some(next);
                        placed?
                    }
                    Either::Right((received, placing)) => {
                        read_ahead = Some(received);
                        pipeline.alongside(placing).await??
                    }
                }
            };
            let placed_us = appending_since.elapsed().as_micros();
            let (offset, bytes) = (data.start_offset, data.bytes.len());
            let master_end = data.master_appended_end;
            // Acknowledged before the previous chunk's dispatch is awaited (`hand_over`).
            last_ack = Some(pipeline.alongside(ack(store, stream, params)).await??);
            last_acked = Instant::now();
            ack_anyway = false;
            if let Some(placed) = placed {
                pipeline.hand_over(data, placed).await?;
            }
            tracing::trace!(
                shard = params.shard_id,
                offset,
                bytes,
                waited_us = last_heard.duration_since(idle_since).as_micros(),
                placed_us,
                append_us = appending_since.elapsed().as_micros(),
                read_ahead = read_ahead.is_some(),
                "HA Data frame applied"
            );
            params.follow.data(master_end);
            catch_up.check(store, stream, params);
        }
        if ack_anyway || last_ack != Some(current_ack(store)) {
            last_ack = Some(pipeline.alongside(ack(store, stream, params)).await??);
            last_acked = Instant::now();
        }
        idle_since = Instant::now();
    }
}

/// Places one Data frame's entries at this log's end (a heartbeat places nothing: `None`);
/// the caller dispatches them.
async fn place(store: &Store, data: &Data) -> Result<Option<PlacedChunk>, HaError> {
    let end = store.commitlog().appended_offset();
    if data.start_offset != end {
        return Err(HaError::Protocol(format!(
            "Data at {}, this log ends at {end}",
            data.start_offset
        )));
    }
    if data.bytes.is_empty() {
        return Ok(None);
    }
    let placed = store
        .place_replicated(data.start_offset, &data.bytes)
        .await?;
    if placed.end() <= end {
        // The storage refuses bytes that are not whole entries; this is the master's fault.
        return Err(HaError::Protocol(format!(
            "Data at {end} with {} bytes placed no entry",
            data.bytes.len()
        )));
    }
    // Appends do not wait for the fdatasync here (see `apply`); the flusher runs at once.
    store.commitlog().request_flush();
    Ok(Some(placed))
}

/// Acknowledges this log's ends: what it placed, before its dispatch (as RocketMQ's slave
/// reports its CommitLog's end, not its reput's), so a SYNC_MASTER's round trip does not
/// include this slave's consume-queue and index work. A record acknowledged and not yet
/// dispatched is not pullable here for that long; a crash of this slave loses no dispatch
/// (recovery re-dispatches from the log). A SYNC_FLUSH slave reports as appended only what is
/// durable: such a master then waits on this slave's disk, and the acknowledged end never
/// counts bytes this slave could lose.
async fn ack(store: &Store, stream: &TcpStream, params: &SlaveParams) -> Result<Ack, HaError> {
    let ack = current_ack(store);
    write_frame(stream, &frame_of(params, Body::Ack(ack))).await?;
    Ok(ack)
}

/// What an Ack sent now would say (see [`ack`]).
fn current_ack(store: &Store) -> Ack {
    let log = store.commitlog();
    let placed_end = log.appended_offset();
    let durable_end = log.durable_offset().min(placed_end);
    let appended_end = if log.config().flush_policy == FlushPolicy::Sync {
        durable_end
    } else {
        placed_end
    };
    Ack {
        appended_end,
        durable_end,
    }
}

fn frame_of(params: &SlaveParams, body: Body) -> Frame {
    Frame {
        shard_id: params.shard_id,
        body,
    }
}
