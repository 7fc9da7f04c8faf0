//! The lean async send connection: one TCP connection to one broker on one harness thread.
//! Producers render frames straight into its output buffer; a writer task flushes everything
//! buffered in one write per wake-up; a reader task reads responses in bulk and reads only
//! code, opaque and flag of each (see [`super::wire`]); a sweeper fails requests past their
//! timeout. Requests in flight sit in a fixed table indexed by opaque, sized once from the
//! window, so the steady state allocates nothing per message.
//! Must never outlive its thread's runtime, hold more requests than its table (the producers'
//! [`Window`](crate::sync::Window) bounds them), or answer for a response it did not ask for
//! (a late or unknown opaque is counted and dropped).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::JoinHandle;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::command::FLAG_RESPONSE;
use rmq_net::codec::limits::FrameLimits;

use super::wire::next_frame;
use crate::stats::{record_latency, IntervalStats};
use crate::sync::Permit;

/// Bytes read per read syscall (responses of a whole window of small sends fit).
pub const READ_CHUNK_SIZE: usize = 64 * 1024;
/// Output bytes above which a producer waits for the writer before rendering more (bounds
/// the buffer when the window is large and the socket slow).
pub const OUTPUT_BUFFERED_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Shortest and longest period of the timeout sweep (a tenth of the request timeout, within
/// these), so a timeout fires at most ~10 % late.
const SWEEP_PERIOD_MIN: Duration = Duration::from_millis(10);
const SWEEP_PERIOD_MAX: Duration = Duration::from_millis(200);

/// One request in flight.
struct InFlight {
    opaque: i32,
    started: Instant,
    messages: u64,
    bytes: u64,
    /// Returned to the producers' window when the request ends.
    _permit: Permit,
}

/// Requests in flight by `opaque & mask`; opaques that would land on a taken slot are
/// skipped, so a slot never holds two requests.
struct PendingTable {
    slots: Vec<Option<InFlight>>,
    mask: usize,
    next_opaque: i32,
    len: usize,
}

impl PendingTable {
    fn new(inflight_max: usize) -> Self {
        // Twice the window: a free slot is always within a few probes.
        let capacity = (inflight_max.max(1) * 2).next_power_of_two();
        Self {
            slots: (0..capacity).map(|_| None).collect(),
            mask: capacity - 1,
            next_opaque: 1,
            len: 0,
        }
    }

    fn slot_of(&self, opaque: i32) -> usize {
        // Two's complement bits of the opaque; the mask keeps the index in range.
        (opaque as u32 as usize) & self.mask
    }

    /// A fresh opaque whose slot is free.
    ///
    /// # Panics
    /// If the table is full (more requests than the window allows: a bug).
    fn allocate(&mut self) -> i32 {
        assert!(self.len < self.slots.len(), "pending table full");
        loop {
            let opaque = self.next_opaque;
            self.next_opaque = self.next_opaque.wrapping_add(1);
            if self.slots[self.slot_of(opaque)].is_none() {
                return opaque;
            }
        }
    }

    fn insert(&mut self, entry: InFlight) {
        let slot = self.slot_of(entry.opaque);
        assert!(
            self.slots[slot].is_none(),
            "opaque allocated on a free slot"
        );
        self.slots[slot] = Some(entry);
        self.len += 1;
    }

    fn take(&mut self, opaque: i32) -> Option<InFlight> {
        let slot = self.slot_of(opaque);
        if self.slots[slot].as_ref()?.opaque != opaque {
            return None;
        }
        self.len -= 1;
        self.slots[slot].take()
    }

    /// Removes every entry started before `deadline` and hands it to `expired`.
    fn expire(&mut self, deadline: Instant, mut expired: impl FnMut(InFlight)) {
        if self.len == 0 {
            return;
        }
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|entry| entry.started < deadline) {
                self.len -= 1;
                expired(slot.take().expect("checked just above"));
            }
        }
    }

    fn drain(&mut self, mut each: impl FnMut(InFlight)) {
        for slot in &mut self.slots {
            if let Some(entry) = slot.take() {
                each(entry);
            }
        }
        self.len = 0;
    }
}

/// What the tasks and the producers share.
struct Shared {
    out: RefCell<Vec<u8>>,
    writer_waker: RefCell<Option<Waker>>,
    /// Producers waiting for the output buffer to drain.
    room_wakers: RefCell<Vec<Waker>>,
    pending: RefCell<PendingTable>,
    broken: Cell<bool>,
    stats: Rc<RefCell<IntervalStats>>,
    timeout: Duration,
}

impl Shared {
    fn wake_writer(&self) {
        if let Some(waker) = self.writer_waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn wake_room(&self) {
        let wakers = std::mem::take(&mut *self.room_wakers.borrow_mut());
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Marks the connection dead and fails everything in flight.
    fn break_connection(&self) {
        if self.broken.replace(true) {
            return;
        }
        let mut failed = 0;
        self.pending.borrow_mut().drain(|_| failed += 1);
        self.stats
            .borrow_mut()
            .errors
            .add("send:connection", failed);
        self.out.borrow_mut().clear();
        self.wake_writer();
        self.wake_room();
    }

    /// Accounts one response.
    fn complete(&self, opaque: i32, code: i32, now: Instant) {
        let Some(entry) = self.pending.borrow_mut().take(opaque) else {
            // Late (already timed out) or not ours.
            self.stats.borrow_mut().events.add("send:late-response", 1);
            return;
        };
        let mut stats = self.stats.borrow_mut();
        match ResponseCode::from_value(code) {
            ResponseCode::Success => {
                stats.acked.add(entry.messages, entry.bytes);
                let elapsed = now.saturating_duration_since(entry.started).as_nanos();
                record_latency(
                    &mut stats.send_latency,
                    u64::try_from(elapsed).unwrap_or(u64::MAX),
                );
            }
            ResponseCode::FlushDiskTimeout
            | ResponseCode::FlushSlaveTimeout
            | ResponseCode::SlaveNotAvailable => {
                // Stored, but not as durably as asked (PROTOCOL.md §4.1).
                stats.acked.add(entry.messages, entry.bytes);
                stats.events.add(&format!("send:code:{code}"), 1);
            }
            _ => stats.errors.add(&format!("send:code:{code}"), 1),
        }
    }
}

/// A lean connection; clones share it. The tasks end when the last clone is dropped.
#[derive(Clone)]
pub struct LeanConnection {
    shared: Rc<Shared>,
    _tasks: Rc<Tasks>,
}

impl std::fmt::Debug for LeanConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanConnection")
            .field("broken", &self.shared.broken.get())
            .field("pending", &self.shared.pending.borrow().len)
            .finish_non_exhaustive()
    }
}

/// The connection's tasks, cancelled on drop.
struct Tasks {
    _handles: Vec<JoinHandle<()>>,
}

/// How a send request went onto the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Buffered; its outcome will reach the stats.
    Yes,
    /// The connection is dead; counted as `send:connection`.
    ConnectionDead,
}

impl LeanConnection {
    /// Connects to `addr`, within `connect_timeout`.
    ///
    /// # Errors
    /// The connect error, or `TimedOut`.
    pub async fn connect(
        addr: &str,
        connect_timeout: Duration,
        settings: LeanSettings,
    ) -> std::io::Result<Self> {
        let stream = compio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        let stream = Rc::new(stream);
        let shared = Rc::new(Shared {
            out: RefCell::new(Vec::with_capacity(READ_CHUNK_SIZE)),
            writer_waker: RefCell::new(None),
            room_wakers: RefCell::new(Vec::new()),
            pending: RefCell::new(PendingTable::new(settings.inflight_max)),
            broken: Cell::new(false),
            stats: settings.stats,
            timeout: settings.timeout,
        });
        let tasks = vec![
            compio::runtime::spawn(write_loop(stream.clone(), shared.clone())),
            compio::runtime::spawn(read_loop(stream, shared.clone(), settings.frame_limits)),
            compio::runtime::spawn(sweep_loop(shared.clone())),
        ];
        Ok(Self {
            shared,
            _tasks: Rc::new(Tasks { _handles: tasks }),
        })
    }

    /// Whether the connection has failed.
    #[must_use]
    pub fn is_broken(&self) -> bool {
        self.shared.broken.get()
    }

    /// Waits while the output buffer holds more than [`OUTPUT_BUFFERED_BYTES_MAX`].
    pub async fn room(&self) {
        poll_fn(|cx| {
            if self.shared.broken.get()
                || self.shared.out.borrow().len() <= OUTPUT_BUFFERED_BYTES_MAX
            {
                return Poll::Ready(());
            }
            self.shared
                .room_wakers
                .borrow_mut()
                .push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Buffers one request carrying `messages` messages of `bytes` body bytes: `render`
    /// appends its frame for the given opaque. `permit` is held until the request ends.
    pub fn send(
        &self,
        permit: Permit,
        messages: u64,
        bytes: u64,
        render: impl FnOnce(&mut Vec<u8>, i32),
    ) -> Queued {
        let shared = &*self.shared;
        if shared.broken.get() {
            shared.stats.borrow_mut().errors.add("send:connection", 1);
            return Queued::ConnectionDead;
        }
        let opaque = shared.pending.borrow_mut().allocate();
        let was_empty = {
            let mut out = shared.out.borrow_mut();
            let was_empty = out.is_empty();
            render(&mut out, opaque);
            was_empty
        };
        shared.pending.borrow_mut().insert(InFlight {
            opaque,
            started: Instant::now(),
            messages,
            bytes,
            _permit: permit,
        });
        if was_empty {
            shared.wake_writer();
        }
        Queued::Yes
    }
}

/// What a lean connection needs besides its address.
#[derive(Clone)]
pub struct LeanSettings {
    /// Requests in flight at most (the window).
    pub inflight_max: usize,
    /// Where outcomes go.
    pub stats: Rc<RefCell<IntervalStats>>,
    /// Per request.
    pub timeout: Duration,
    /// Frame limits of responses.
    pub frame_limits: FrameLimits,
}

impl std::fmt::Debug for LeanSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanSettings")
            .field("inflight_max", &self.inflight_max)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One lean connection per broker address, for the producers of one harness connection;
/// a broken one is replaced by [`Self::repair`].
#[derive(Debug)]
pub struct LeanLinks {
    connections: RefCell<std::collections::BTreeMap<String, LeanConnection>>,
    connect_timeout: Duration,
    settings: LeanSettings,
}

impl LeanLinks {
    /// Connects to every address of `addrs`.
    ///
    /// # Errors
    /// The first address that cannot be reached, with its error.
    pub async fn open(
        addrs: impl IntoIterator<Item = String>,
        connect_timeout: Duration,
        settings: LeanSettings,
    ) -> Result<Self, (String, std::io::Error)> {
        let mut connections = std::collections::BTreeMap::new();
        for addr in addrs {
            if connections.contains_key(&addr) {
                continue;
            }
            match LeanConnection::connect(&addr, connect_timeout, settings.clone()).await {
                Ok(connection) => {
                    connections.insert(addr, connection);
                }
                Err(error) => return Err((addr, error)),
            }
        }
        Ok(Self {
            connections: RefCell::new(connections),
            connect_timeout,
            settings,
        })
    }

    /// The connection to `addr`.
    ///
    /// # Panics
    /// If `addr` was not among the addresses opened (a caller bug).
    #[must_use]
    pub fn get(&self, addr: &str) -> LeanConnection {
        self.connections.borrow()[addr].clone()
    }

    /// Reconnects to `addr` if its connection is broken; a failed attempt is counted as
    /// `send:connection` and leaves the broken one (the next send fails fast again).
    pub async fn repair(&self, addr: &str) {
        if !self.get(addr).is_broken() {
            return;
        }
        match LeanConnection::connect(addr, self.connect_timeout, self.settings.clone()).await {
            Ok(connection) => {
                self.connections
                    .borrow_mut()
                    .insert(addr.to_owned(), connection);
            }
            Err(_) => self
                .settings
                .stats
                .borrow_mut()
                .errors
                .add("send:connection", 1),
        }
    }
}

/// Writes whatever is buffered, one write per wake-up, swapping two buffers.
async fn write_loop(stream: Rc<TcpStream>, shared: Rc<Shared>) {
    let mut spare: Vec<u8> = Vec::with_capacity(READ_CHUNK_SIZE);
    let mut writer = &*stream;
    loop {
        poll_fn(|cx| {
            if shared.broken.get() || !shared.out.borrow().is_empty() {
                return Poll::Ready(());
            }
            *shared.writer_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        if shared.broken.get() {
            return;
        }
        spare.clear();
        std::mem::swap(&mut *shared.out.borrow_mut(), &mut spare);
        shared.wake_room();
        let BufResult(result, returned) = writer.write_all(spare).await;
        spare = returned;
        if result.is_err() {
            shared.break_connection();
            return;
        }
    }
}

/// Reads responses in bulk and completes their requests.
async fn read_loop(stream: Rc<TcpStream>, shared: Rc<Shared>, limits: FrameLimits) {
    let mut reader = &*stream;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_SIZE);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK_SIZE / 4 {
            buf.reserve(READ_CHUNK_SIZE);
        }
        let BufResult(result, returned) = reader.append(buf).await;
        buf = returned;
        match result {
            Ok(0) | Err(_) => {
                shared.break_connection();
                return;
            }
            Ok(_) => {}
        }
        let now = Instant::now();
        let mut consumed = 0;
        loop {
            match next_frame(&buf[consumed..], &limits) {
                Ok(Some(frame)) => {
                    consumed += frame.bytes.len();
                    match frame.head() {
                        Ok(head) if head.flag & FLAG_RESPONSE != 0 => {
                            shared.complete(head.opaque, head.code, now);
                        }
                        // A request from the broker (none is expected on a send connection).
                        Ok(_) => shared
                            .stats
                            .borrow_mut()
                            .events
                            .add("send:request-ignored", 1),
                        Err(_) => {
                            shared.stats.borrow_mut().errors.add("send:malformed", 1);
                            shared.break_connection();
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    shared.stats.borrow_mut().errors.add("send:malformed", 1);
                    shared.break_connection();
                    return;
                }
            }
        }
        buf.drain(..consumed);
    }
}

/// Fails requests past the timeout, a few times per timeout.
async fn sweep_loop(shared: Rc<Shared>) {
    let period = (shared.timeout / 10).clamp(SWEEP_PERIOD_MIN, SWEEP_PERIOD_MAX);
    loop {
        compio::time::sleep(period).await;
        if shared.broken.get() {
            return;
        }
        let Some(deadline) = Instant::now().checked_sub(shared.timeout) else {
            continue;
        };
        let mut expired = 0;
        shared
            .pending
            .borrow_mut()
            .expire(deadline, |_| expired += 1);
        if expired > 0 {
            shared
                .stats
                .borrow_mut()
                .errors
                .add("send:timeout", expired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Window;

    fn entry(table: &mut PendingTable, window: &Window, started: Instant) -> i32 {
        let opaque = table.allocate();
        let permit = futures_util::FutureExt::now_or_never(window.acquire()).expect("room");
        table.insert(InFlight {
            opaque,
            started,
            messages: 1,
            bytes: 1,
            _permit: permit,
        });
        opaque
    }

    /// A lean connection to a listener that reads but never answers, then closes.
    #[test]
    fn unanswered_requests_time_out_and_a_closed_peer_fails_the_rest() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let listener = compio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr").to_string();
            let (close_tx, close_rx) = flume::bounded::<()>(1);
            let peer = compio::runtime::spawn(async move {
                let (stream, _) = listener.accept().await.expect("accept");
                // Hold the connection open, unanswered, until told to close it.
                let _ = close_rx.recv_async().await;
                drop(stream);
            });
            let stats = Rc::new(RefCell::new(IntervalStats::new()));
            let settings = LeanSettings {
                inflight_max: 4,
                stats: stats.clone(),
                timeout: Duration::from_millis(50),
                frame_limits: FrameLimits::default(),
            };
            let connection = LeanConnection::connect(&addr, Duration::from_secs(5), settings)
                .await
                .expect("connects");
            let window = Window::new(4);
            for _ in 0..3 {
                let permit = window.acquire().await;
                let queued = connection.send(permit, 1, 10, |out, _opaque| {
                    out.extend_from_slice(&[0; 16]);
                });
                assert_eq!(queued, Queued::Yes);
            }
            assert_eq!(window.available(), 1);
            compio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(stats.borrow().errors.get("send:timeout"), 3);
            assert_eq!(
                window.available(),
                4,
                "timed-out requests return their permits"
            );
            let permit = window.acquire().await;
            assert_eq!(connection.send(permit, 1, 10, |_, _| {}), Queued::Yes);
            close_tx.send(()).expect("peer alive");
            let _ = peer.await;
            compio::time::sleep(Duration::from_millis(100)).await;
            assert!(connection.is_broken());
            assert_eq!(stats.borrow().errors.get("send:connection"), 1);
            assert_eq!(window.available(), 4);
            let permit = window.acquire().await;
            assert_eq!(
                connection.send(permit, 1, 10, |_, _| {}),
                Queued::ConnectionDead
            );
            assert_eq!(stats.borrow().errors.get("send:connection"), 2);
            assert_eq!(window.available(), 4);
        });
    }

    #[test]
    fn the_table_skips_taken_slots_and_matches_opaques_exactly() {
        let window = Window::new(4);
        let mut table = PendingTable::new(4);
        assert_eq!(table.slots.len(), 8);
        let now = Instant::now();
        let old = entry(&mut table, &window, now - Duration::from_secs(10));
        for _ in 0..7 {
            let opaque = entry(&mut table, &window, now);
            assert!(table.take(opaque).is_some());
        }
        // The next opaque would land on the old request's slot: it is skipped.
        let next = table.allocate();
        assert_ne!(table.slot_of(next), table.slot_of(old));
        assert!(table.take(old + 8).is_none(), "same slot, other opaque");
        assert_eq!(window.available(), 3);
        let mut expired = 0;
        table.expire(now - Duration::from_secs(1), |_| expired += 1);
        assert_eq!((expired, table.len), (1, 0));
        assert_eq!(window.available(), 4, "the permit went back");
        assert!(table.take(old).is_none());
    }
}
