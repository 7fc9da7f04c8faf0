//! The broker's replication wiring (issue 13; the sessions themselves are [`crate::ha`]):
//! the master's HA listener and the hand-off of each connection to the shard its Hello names,
//! one slave session slot per shard, the SYNC_MASTER wait on the slave's acknowledgement, and
//! the slave's per-shard connect loop with backoff to the master it was configured with or
//! learnt from the NameServer.
//!
//! Owns [`HaShard`] (per shard: the slot, the slave's progress, the follow state). Must never:
//! serve a slave session on a shard other than the one its Hello names (the store is per shard),
//! keep two sessions of one shard alive at once (a reconnecting slave replaces its old session),
//! let a SYNC_MASTER send wait without a bound, or block the event loop (name resolution runs on
//! the blocking pool).
//!
//! What operators see of it (runtime info keys, the lag alarm) is [`watch`].

pub mod watch;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{select, Either};
use rmq_net::ha::{Body, Frame, RefuseReason, Sender};

use crate::config::BrokerRole;
use crate::ha::conn::FrameReader;
use crate::ha::master::{read_hello, refuse, serve_slave_after_hello};
use crate::ha::{
    AckLevel, AckWaitError, FollowProgress, HaError, MasterParams, SlaveParams, SlaveProgress,
};
use crate::limits::{
    HA_CONNECT_TIMEOUT, HA_HANDSHAKES_MAX, HA_HELLO_TIMEOUT, HA_RECONNECT_BACKOFF_MAX,
    HA_RECONNECT_BACKOFF_MIN, HA_SILENCE_TIMEOUT_DEFAULT,
};
use crate::runtime::clock::now_ms;
use crate::runtime::latch::Latch;
use crate::runtime::mesh::{broadcast, submit_to};
use crate::runtime::ShardId;

use super::shard::Shard;

/// A session that lasted this long resets the slave's reconnect backoff.
const SESSION_HEALTHY_AFTER: Duration = Duration::from_secs(1);

/// One shard's replication state.
#[derive(Debug, Default)]
pub struct HaShard {
    /// Master: the connected slave's acknowledged ends (one per shard, kept across sessions so
    /// a send waiting through a reconnect is woken by the new session).
    pub progress: Rc<SlaveProgress>,
    /// Master: the live session, if any.
    slot: RefCell<Option<SlaveSlot>>,
    next_session: Cell<u64>,
    /// Master, control shard only: handshakes being read by the listener.
    handshakes: Cell<usize>,
    /// Slave: where the master's HA port is (configured, or learnt from the NameServer).
    master_ha_addr: RefCell<Option<String>>,
    /// Slave: the master's remoting address (learnt from the NameServer).
    master_addr: RefCell<Option<String>>,
    /// Slave: a shard missed the last master-address broadcast (the next one is sent even
    /// when the address did not change).
    master_stale: Cell<bool>,
    /// Slave: the follow loop's state.
    follow: RefCell<FollowState>,
    /// Slave: what the sessions heard of the master (its end, the last Data frame).
    follow_progress: Rc<FollowProgress>,
    /// Master: the lag alarm's state ([`watch`]).
    alarm: RefCell<watch::LagAlarm>,
}

/// The live slave session of a master shard.
#[derive(Debug)]
struct SlaveSlot {
    broker_id: u64,
    session: u64,
    peer: SocketAddr,
    since_ms: i64,
    cancel: Rc<Latch>,
}

/// What a slave shard's follow loop is doing (for broker-status and cluster-list).
#[derive(Debug, Clone, Default)]
pub struct FollowState {
    /// Connected to the master now.
    pub connected: bool,
    /// The master's appended end in its latest Data frame or Accept welcome (0 before any).
    pub master_end: u64,
    /// The current (or last) session replicated what the master held when it accepted it.
    pub caught_up: bool,
    /// How long ago the latest Data frame (a heartbeat included) arrived.
    pub last_data_ago: Option<Duration>,
    /// When the current or last session started (ms since the epoch, 0 never).
    pub since_ms: i64,
    /// Sessions started.
    pub sessions: u64,
    /// Truncations the master asked for.
    pub truncations: u64,
    /// Why the last session ended.
    pub last_error: Option<String>,
}

/// A master shard's view of its slave (for broker-status and cluster-list).
#[derive(Debug, Clone)]
pub struct SlaveView {
    /// The slave's brokerId.
    pub broker_id: u64,
    /// Its address.
    pub peer: SocketAddr,
    /// Connected since (ms since the epoch).
    pub since_ms: i64,
    /// Its acknowledged appended end.
    pub acked: u64,
    /// Its acknowledged durable end.
    pub durable: u64,
    /// This shard's appended end minus `acked`.
    pub lag_bytes: u64,
    /// How long ago its last Ack arrived (`None` before the first).
    pub last_ack_ago: Option<Duration>,
}

impl HaShard {
    /// The slave connected to this master shard, if any.
    #[must_use]
    pub fn slave(&self, appended_end: u64) -> Option<SlaveView> {
        self.slot.borrow().as_ref().map(|slot| SlaveView {
            broker_id: slot.broker_id,
            peer: slot.peer,
            since_ms: slot.since_ms,
            acked: self.progress.appended(),
            durable: self.progress.durable(),
            lag_bytes: appended_end.saturating_sub(self.progress.appended()),
            last_ack_ago: self.progress.last_ack().map(|at| at.elapsed()),
        })
    }

    /// This slave shard's follow state.
    #[must_use]
    pub fn follow_state(&self) -> FollowState {
        FollowState {
            master_end: self.follow_progress.master_end(),
            caught_up: self.follow_progress.caught_up(),
            last_data_ago: self.follow_progress.last_data().map(|at| at.elapsed()),
            ..self.follow.borrow().clone()
        }
    }

    /// The master's remoting address, as last learnt from the NameServer (slaves).
    #[must_use]
    pub fn master_addr(&self) -> Option<String> {
        self.master_addr.borrow().clone()
    }

    /// Sets the master's HA address from `haMasterAddress` (at start, before any task runs).
    pub fn configure_master(&self, ha_addr: String) {
        *self.master_ha_addr.borrow_mut() = Some(ha_addr);
    }

    /// The master's HA address this slave connects to.
    #[must_use]
    pub fn master_ha_addr(&self) -> Option<String> {
        self.master_ha_addr.borrow().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Master side

/// Accepts slave connections on `haListenPort` (control shard) until shutdown begins; each
/// connection's Hello is read here and the connection moves to the shard it names.
pub async fn listen(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            let stop = std::pin::pin!(shard.stopping.wait());
            match select(accept, stop).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(((), _)) => return,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                if shard.ha.handshakes.get() >= HA_HANDSHAKES_MAX {
                    tracing::warn!(%peer, limit = HA_HANDSHAKES_MAX, "HA handshakes at their limit; connection closed");
                    continue;
                }
                shard.ha.handshakes.set(shard.ha.handshakes.get() + 1);
                let shard = Rc::clone(&shard);
                compio::runtime::spawn(async move {
                    route_connection(&shard, stream, peer).await;
                    shard.ha.handshakes.set(shard.ha.handshakes.get() - 1);
                })
                .detach();
            }
            Err(err) => {
                tracing::warn!(%err, "HA accept failed");
                compio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads the Hello and hands the connection to the shard it names.
async fn route_connection(shard: &Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let mut reader = FrameReader::new(0, Sender::Slave);
    let first = match read_hello(&mut reader, &stream, HA_HELLO_TIMEOUT).await {
        Ok(first) => first,
        Err(err) => {
            tracing::warn!(%peer, %err, "HA connection closed before its Hello");
            return;
        }
    };
    let shards = shard.shard_count();
    let target = usize::from(first.shard_id);
    if target >= shards {
        let text = format!("shard {target} does not exist: this master has {shards} shards");
        let _ = refuse(&stream, first.shard_id, RefuseReason::ShardId, text).await;
        return;
    }
    // The connection crosses as a descriptor: a duplicate moves, this shard's copy closes.
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor `stream` owns; the result is a new descriptor
    // owned by `OwnedFd` below (or -1 on failure, checked).
    let duplicate = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if duplicate < 0 {
        tracing::warn!(%peer, err = %std::io::Error::last_os_error(), "HA connection not handed over");
        return;
    }
    // SAFETY: `duplicate` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(duplicate) };
    drop(stream);
    let buffered = reader.into_buffered();
    let handed = submit_to(shard, ShardId(target), move |owner: Rc<Shard>| async move {
        start_master_session(&owner, fd, buffered, first, peer);
    })
    .await;
    if let Err(err) = handed {
        tracing::warn!(%peer, shard = target, %err, "HA connection not handed over");
    }
}

/// On the shard the Hello names: runs the session as a task of its own.
fn start_master_session(
    shard: &Rc<Shard>,
    fd: OwnedFd,
    buffered: BytesMut,
    first: Frame,
    peer: SocketAddr,
) {
    let stream = match TcpStream::from_std(std::net::TcpStream::from(fd)) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(%peer, %err, "HA connection lost in hand-over");
            return;
        }
    };
    let shard_id = u16::try_from(shard.id.0).expect("shard ids fit the protocol's u16");
    let reader = FrameReader::with_buffered(shard_id, Sender::Slave, buffered);
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move {
        run_master_session(&shard, stream, reader, first, peer).await;
    })
    .detach();
}

async fn run_master_session(
    shard: &Rc<Shard>,
    stream: TcpStream,
    reader: FrameReader,
    first: Frame,
    peer: SocketAddr,
) {
    let shard_id = u16::try_from(shard.id.0).expect("shard ids fit the protocol's u16");
    let Body::Hello(hello) = &first.body else {
        tracing::warn!(%peer, "HA connection's first frame is not a Hello");
        return;
    };
    let slave_id = hello.slave_broker_id;
    if !shard.config.broker_role.is_master() {
        let text = format!("broker {} is a SLAVE", shard.config.broker_name);
        let _ = refuse(&stream, shard_id, RefuseReason::NotMaster, text).await;
        return;
    }
    let session = shard.ha.next_session.get() + 1;
    shard.ha.next_session.set(session);
    let cancel = Rc::new(Latch::default());
    let refusal = claim_slot(shard, slave_id, session, peer, &cancel);
    if let Some(text) = refusal {
        let _ = refuse(&stream, shard_id, RefuseReason::BrokerId, text).await;
        return;
    }
    let params = master_params(shard, shard_id);
    tracing::info!(shard = shard.id.0, slave = slave_id, %peer, "HA slave connected");
    let serving = std::pin::pin!(serve_slave_after_hello(
        &shard.store,
        stream,
        reader,
        first,
        params
    ));
    let cancelled = std::pin::pin!(cancel.wait());
    let ended = match select(serving, cancelled).await {
        Either::Left((ended, _)) => ended,
        Either::Right(((), _)) => Err(HaError::Protocol("replaced by a newer connection".into())),
    };
    {
        let mut slot = shard.ha.slot.borrow_mut();
        if slot.as_ref().is_some_and(|live| live.session == session) {
            *slot = None;
        }
    }
    // Sends waiting on this session's acks answer now instead of at their timeout.
    if !cancel.is_set() {
        shard.ha.progress.end_session();
    }
    cancel.set();
    match ended {
        Ok(()) => tracing::info!(
            shard = shard.id.0,
            slave = slave_id,
            "HA slave told to truncate; it reconnects"
        ),
        Err(err) => {
            tracing::warn!(shard = shard.id.0, slave = slave_id, %peer, %err, "HA slave disconnected")
        }
    }
}

/// Takes this shard's slave slot for `slave_id`'s new session (cancelling the same slave's
/// older one); the refusal text when another slave holds it.
fn claim_slot(
    shard: &Shard,
    slave_id: u64,
    session: u64,
    peer: SocketAddr,
    cancel: &Rc<Latch>,
) -> Option<String> {
    let mut slot = shard.ha.slot.borrow_mut();
    if let Some(live) = slot.as_ref() {
        if live.broker_id != slave_id {
            return Some(format!(
                "slave {} is connected to shard {}; one slave per master",
                live.broker_id, shard.id.0
            ));
        }
        // The same slave again: its old connection is dead or dying; this one wins.
        live.cancel.set();
    }
    *slot = Some(SlaveSlot {
        broker_id: slave_id,
        session,
        peer,
        since_ms: now_ms(),
        cancel: Rc::clone(cancel),
    });
    None
}

fn master_params(shard: &Shard, shard_id: u16) -> MasterParams {
    let config = &shard.config;
    MasterParams {
        shard_id,
        shard_count: u16::try_from(shard.shard_count()).expect("shard count fits u16"),
        cluster_name: config.broker_cluster_name.clone(),
        broker_name: config.broker_name.clone(),
        transfer_batch_bytes: config.ha_transfer_batch_size,
        heartbeat_interval: config.ha_send_heartbeat_interval,
        silence_timeout: silence_timeout(config.ha_send_heartbeat_interval),
        progress: Rc::clone(&shard.ha.progress),
    }
}

/// A session is closed after this long without a frame: four heartbeats, at least the default.
fn silence_timeout(heartbeat: Duration) -> Duration {
    (heartbeat * 4).max(HA_SILENCE_TIMEOUT_DEFAULT)
}

/// The slave's answer to a SYNC_MASTER send ([`await_slave`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaveAck {
    /// Not a SYNC_MASTER, or the send asked not to wait (`WAIT=false`).
    NotAsked,
    /// The slave acknowledged the record.
    Acked,
    /// No acknowledgement within `syncFlushTimeout` (FLUSH_SLAVE_TIMEOUT).
    Timeout,
    /// No slave, or one further behind than `haMaxGapNotInSync` (SLAVE_NOT_AVAILABLE).
    NotAvailable(&'static str),
}

/// On a SYNC_MASTER: waits until the slave acknowledged the log up to `end_offset` (one Ack
/// serves every send it covers), at most `syncFlushTimeout`. Runs on the shard that owns the
/// record. A SYNC_FLUSH slave acknowledges only what it made durable
/// ([`crate::ha::follow_master`]).
pub async fn await_slave(shard: &Shard, end_offset: u64) -> SlaveAck {
    if shard.config.broker_role != BrokerRole::SyncMaster {
        return SlaveAck::NotAsked;
    }
    let ha = &shard.ha;
    if ha.slot.borrow().is_none() {
        return SlaveAck::NotAvailable("no slave connected");
    }
    let gap = shard
        .store
        .commitlog()
        .appended_offset()
        .saturating_sub(ha.progress.appended());
    if gap > shard.config.ha_max_gap_not_in_sync {
        return SlaveAck::NotAvailable("the slave is further behind than haMaxGapNotInSync");
    }
    let deadline = Instant::now() + shard.config.sync_flush_timeout;
    match ha
        .progress
        .wait_acked(end_offset, AckLevel::Appended, Some(deadline))
        .await
    {
        Ok(()) => SlaveAck::Acked,
        Err(AckWaitError::WaitersFull) => {
            SlaveAck::NotAvailable("too many sends wait on the slave")
        }
        Err(AckWaitError::SessionEnded) => SlaveAck::NotAvailable("the slave disconnected"),
        Err(AckWaitError::TimedOut) => SlaveAck::Timeout,
    }
}

// ---------------------------------------------------------------------------------------------
// Slave side

/// A slave shard's life: connect to the master's HA address, follow it, reconnect after a
/// backoff (1 s doubling to 5 s; at once after a truncation; reset by a session that lasted).
/// Ends when shutdown begins (a live session ends with the store's close).
pub async fn follow(shard: Rc<Shard>) {
    let mut backoff = HA_RECONNECT_BACKOFF_MIN;
    loop {
        if shard.stopping.is_set() {
            return;
        }
        let Some(addr) = shard.ha.master_ha_addr() else {
            compio::time::sleep(HA_RECONNECT_BACKOFF_MIN).await;
            continue;
        };
        let started = Instant::now();
        let outcome = follow_once(&shard, &addr).await;
        let retry_now = match &outcome {
            Ok(()) => {
                shard.ha.follow.borrow_mut().truncations += 1;
                true
            }
            Err(err) => {
                let refused = matches!(err, HaError::Refused { .. });
                if refused {
                    tracing::error!(shard = shard.id.0, master = %addr, %err, "HA: the master refused this slave");
                } else {
                    tracing::warn!(shard = shard.id.0, master = %addr, %err, "HA: session with the master ended");
                }
                shard.ha.follow.borrow_mut().last_error = Some(err.to_string());
                if refused {
                    backoff = HA_RECONNECT_BACKOFF_MAX;
                } else if started.elapsed() >= SESSION_HEALTHY_AFTER {
                    backoff = HA_RECONNECT_BACKOFF_MIN;
                }
                false
            }
        };
        shard.ha.follow.borrow_mut().connected = false;
        if retry_now {
            continue;
        }
        compio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(HA_RECONNECT_BACKOFF_MAX);
    }
}

async fn follow_once(shard: &Rc<Shard>, addr: &str) -> Result<(), HaError> {
    let target = resolve(addr).await?;
    let stream = compio::time::timeout(HA_CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| {
            HaError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr} took over {HA_CONNECT_TIMEOUT:?}"),
            ))
        })??;
    let _ = stream.set_nodelay(true);
    {
        let mut follow = shard.ha.follow.borrow_mut();
        follow.connected = true;
        follow.sessions += 1;
        follow.since_ms = now_ms();
    }
    tracing::info!(shard = shard.id.0, master = %addr, "HA: connected to the master");
    let config = &shard.config;
    let params = SlaveParams {
        shard_id: u16::try_from(shard.id.0).expect("shard ids fit the protocol's u16"),
        shard_count: u16::try_from(shard.shard_count()).expect("shard count fits u16"),
        broker_id: u64::try_from(config.broker_id)
            .expect("a slave's brokerId is > 0 (config check)"),
        cluster_name: config.broker_cluster_name.clone(),
        broker_name: config.broker_name.clone(),
        heartbeat_interval: config.ha_send_heartbeat_interval,
        silence_timeout: silence_timeout(config.ha_send_heartbeat_interval),
        follow: Rc::clone(&shard.ha.follow_progress),
    };
    crate::ha::follow_master(&shard.store, stream, params).await
}

/// `host:port` to a socket address; names are resolved on the blocking pool.
async fn resolve(addr: &str) -> Result<SocketAddr, HaError> {
    if let Ok(parsed) = addr.parse::<SocketAddr>() {
        return Ok(parsed);
    }
    let name = addr.to_owned();
    let resolved = compio::runtime::spawn_blocking(move || {
        use std::net::ToSocketAddrs;
        name.to_socket_addrs().map(|mut addrs| addrs.next())
    })
    .await
    .map_err(|_| HaError::Protocol("name resolution task panicked".into()))?;
    match resolved {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(HaError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to no address"),
        ))),
        Err(err) => Err(HaError::Io(err)),
    }
}

/// Sets where every shard's follow loop connects (from `haMasterAddress` at start, or from a
/// REGISTER_BROKER reply), and the master's remoting address when known. Logs a change.
pub async fn set_master(shard: &Rc<Shard>, ha_addr: String, master_addr: Option<String>) {
    if !shard.ha.master_stale.get()
        && shard.ha.master_ha_addr().as_deref() == Some(ha_addr.as_str())
        && (master_addr.is_none() || shard.ha.master_addr() == master_addr)
    {
        return;
    }
    tracing::info!(master_ha = %ha_addr, master = ?master_addr, "HA: master address learnt");
    let answers = broadcast(shard, move |target: Rc<Shard>| async move {
        *target.ha.master_ha_addr.borrow_mut() = Some(ha_addr);
        if master_addr.is_some() {
            *target.ha.master_addr.borrow_mut() = master_addr;
        }
    })
    .await;
    shard.ha.master_stale.set(false);
    for (index, answer) in answers.into_iter().enumerate() {
        if let Err(err) = answer {
            shard.ha.master_stale.set(true);
            tracing::warn!(shard = index, %err, "HA: master address not installed (next registration retries)");
        }
    }
}
