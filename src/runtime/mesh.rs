//! The shard mesh: the one API through which work crosses cores (in the spirit of Seastar's
//! `submit_to` / `invoke_on_all`).
//!
//! Owns: one bounded channel into every shard, the calls that travel on it, each shard's inbox
//! loop ([`serve_inbox`]) and the per-shard gauges of cross-core work ([`MeshGauge`]). Every
//! cross-core interaction is one of:
//! - [`submit_to`]: run a closure on a shard and await its value (local short-circuit: on the
//!   calling shard it runs inline, nothing crosses);
//! - [`broadcast`]: run a closure on every shard (all at once) and await every answer, in shard
//!   order; used to install replicated tables (the caller answers its client only once every
//!   shard installed the change) and for node-wide map-reduce questions;
//! - [`notify`]: fire-and-forget (server-initiated commands to a connection another shard
//!   owns, a closed connection reported to the control shard); dropped and counted when the
//!   target's channel is full, never queued without bound;
//! - [`Mesh::submit`]: `submit_to` from a thread that is not a shard (shutdown).
//!
//! Bounds: a channel holds at most [`MESH_CHANNEL_CAPACITY`] calls; a sender waits at most
//! [`MESH_SEND_WAIT_BUDGET`] for room. A shard runs at most [`CROSS_CALLS_IN_FLIGHT_MAX`] calls
//! that arrived through its inbox at once (a held long poll counts until it is answered); past
//! it, calls are refused at once with [`MeshError::Busy`], which request paths answer with
//! SYSTEM_BUSY. So the memory a shard spends on other shards' work is bounded by
//! `MESH_CHANNEL_CAPACITY + CROSS_CALLS_IN_FLIGHT_MAX` calls.
//!
//! Must never: use an unbounded queue, deliver a call to the wrong shard, block a shard's
//! thread on another shard (every wait is an `.await`), or let `Rc`/`RefCell` state cross (the
//! closures are `Send`; they capture owned data: `Arc` snapshots, strings, ids, `Bytes`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rmq_net::codec::codes::{LanguageCode, SerializeType};

use super::ShardId;

pub use crate::limits::{
    CROSS_CALLS_IN_FLIGHT_MAX, CROSS_CALLS_OUTGOING_MAX, MESH_CHANNEL_CAPACITY,
    MESH_SEND_WAIT_BUDGET, REMOTE_WAKE_QUEUE_SIZE,
};

/// The shard context a mesh serves: each shard's root state knows its id and its mesh.
pub trait ShardContext: Sized + 'static {
    /// This shard.
    fn shard_id(&self) -> ShardId;
    /// Channels to every shard.
    fn mesh(&self) -> &Mesh<Self>;
}

/// Identifies a client connection anywhere in the process: the shard that owns it and the
/// connection id on that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    /// Shard that accepted the connection.
    pub shard: ShardId,
    /// Connection id on that shard.
    pub conn: u64,
}

/// What a processor on another shard may know about the requesting client.
#[derive(Debug, Clone)]
pub struct ClientMeta {
    /// The connection.
    pub key: ConnKey,
    /// Peer address (born host of sends).
    pub peer_addr: SocketAddr,
    /// Language the client announced.
    pub language: LanguageCode,
    /// `MQVersion` ordinal the client announced.
    pub version: i32,
    /// Header encoding the client uses.
    pub serialize_type: SerializeType,
}

/// Why a cross-core call did not run.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum MeshError {
    /// The target's channel stayed full past the wait budget, or it already runs
    /// [`CROSS_CALLS_IN_FLIGHT_MAX`] calls.
    #[error("shard {} busy", .0.0)]
    Busy(ShardId),
    /// The target shard stopped.
    #[error("shard {} stopped", .0.0)]
    Stopped(ShardId),
}

/// Counters of one shard's cross-core work, readable from any thread (metrics, tests).
#[derive(Debug, Default)]
pub struct MeshGauge {
    /// Calls from other shards running on this shard now.
    pub in_flight: AtomicUsize,
    /// Calls refused because [`CROSS_CALLS_IN_FLIGHT_MAX`] were running.
    pub refused: AtomicU64,
    /// Calls from this shard outstanding on other shards now.
    pub outgoing: AtomicUsize,
    /// Calls this shard did not send because [`CROSS_CALLS_OUTGOING_MAX`] were outstanding.
    pub outgoing_refused: AtomicU64,
    /// Notices to this shard dropped because its channel was full.
    pub notices_dropped: AtomicU64,
}

/// The limits of one mesh (production uses [`MeshLimits::DEFAULT`]; tests shrink them).
#[derive(Debug, Clone, Copy)]
pub struct MeshLimits {
    /// Per-shard channel capacity.
    pub channel_capacity: usize,
    /// Per-shard calls in flight.
    pub in_flight_max: usize,
    /// Per-shard outgoing calls.
    pub outgoing_max: usize,
}

impl MeshLimits {
    /// The named limits above.
    pub const DEFAULT: Self = Self {
        channel_capacity: MESH_CHANNEL_CAPACITY,
        in_flight_max: CROSS_CALLS_IN_FLIGHT_MAX,
        outgoing_max: CROSS_CALLS_OUTGOING_MAX,
    };
}

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A call travelling to a shard: run it there, or refuse it.
trait Work<S>: Send {
    fn run(self: Box<Self>, shard: Rc<S>) -> LocalFuture;
    fn refuse(self: Box<Self>, err: MeshError);
}

/// A closure and the slot its answer goes to (`None` for a notice).
struct Submitted<F, T> {
    work: F,
    reply: Option<flume::Sender<Result<T, MeshError>>>,
}

impl<S, F, Fut, T> Work<S> for Submitted<F, T>
where
    S: 'static,
    F: FnOnce(Rc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, shard: Rc<S>) -> LocalFuture {
        let Self { work, reply } = *self;
        Box::pin(async move {
            let value = work(shard).await;
            if let Some(reply) = reply {
                // The caller may have given up (timeout, closed connection): nothing to do.
                let _ = reply.send(Ok(value));
            }
        })
    }

    fn refuse(self: Box<Self>, err: MeshError) {
        if let Some(reply) = self.reply {
            let _ = reply.send(Err(err));
        }
    }
}

type Call<S> = Box<dyn Work<S>>;

/// Senders into every shard's channel, cloned into each shard, plus every shard's gauge.
pub struct Mesh<S> {
    senders: Vec<flume::Sender<Call<S>>>,
    gauges: Arc<[MeshGauge]>,
    limits: MeshLimits,
}

impl<S> Clone for Mesh<S> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
            gauges: Arc::clone(&self.gauges),
            limits: self.limits,
        }
    }
}

/// One shard's end of the mesh, consumed by [`serve_inbox`].
pub struct Inbox<S> {
    receiver: flume::Receiver<Call<S>>,
}

impl<S: 'static> Mesh<S> {
    /// A mesh of `shards` channels with the default limits; returns the senders and each
    /// shard's inbox, in shard order.
    ///
    /// # Panics
    /// If `shards` is 0.
    #[must_use]
    pub fn new(shards: usize) -> (Self, Vec<Inbox<S>>) {
        Self::with_limits(shards, MeshLimits::DEFAULT)
    }

    /// As [`Self::new`] with explicit limits.
    ///
    /// # Panics
    /// If `shards` or a limit is 0.
    #[must_use]
    pub fn with_limits(shards: usize, limits: MeshLimits) -> (Self, Vec<Inbox<S>>) {
        assert!(shards > 0, "at least one shard");
        assert!(limits.channel_capacity > 0 && limits.in_flight_max > 0);
        assert!(
            limits.outgoing_max > 0 && limits.outgoing_max <= CROSS_CALLS_OUTGOING_MAX,
            "the remote-wake queue is sized for CROSS_CALLS_OUTGOING_MAX"
        );
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| flume::bounded(limits.channel_capacity))
            .unzip();
        let gauges = (0..shards).map(|_| MeshGauge::default()).collect();
        let inboxes = receivers
            .into_iter()
            .map(|receiver| Inbox { receiver })
            .collect();
        (
            Self {
                senders,
                gauges,
                limits,
            },
            inboxes,
        )
    }

    /// Number of shards.
    #[must_use]
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// The cross-core gauge of `shard`.
    ///
    /// # Panics
    /// If `shard` is not a shard of this mesh.
    #[must_use]
    pub fn gauge(&self, shard: ShardId) -> &MeshGauge {
        &self.gauges[shard.0]
    }

    /// Calls waiting in `shard`'s channel now.
    #[must_use]
    pub fn queued(&self, shard: ShardId) -> usize {
        self.senders[shard.0].len()
    }

    /// Runs `work` on `target` (which must not be the calling thread's shard: use
    /// [`submit_to`] there) and awaits its value.
    ///
    /// # Errors
    /// [`MeshError::Busy`] when the target's channel stays full past the wait budget or it
    /// refused the call; [`MeshError::Stopped`] when the target is gone.
    ///
    /// # Panics
    /// If `target` is not a shard of this mesh (a caller bug).
    pub async fn submit<T, F, Fut>(&self, target: ShardId, work: F) -> Result<T, MeshError>
    where
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = flume::bounded(1);
        let call: Call<S> = Box::new(Submitted {
            work,
            reply: Some(reply),
        });
        self.send(target, call).await?;
        answer
            .recv_async()
            .await
            .map_err(|_| MeshError::Stopped(target))?
    }

    async fn send(&self, target: ShardId, call: Call<S>) -> Result<(), MeshError> {
        let sender = &self.senders[target.0];
        let call = match sender.try_send(call) {
            Ok(()) => return Ok(()),
            Err(flume::TrySendError::Disconnected(_)) => return Err(MeshError::Stopped(target)),
            Err(flume::TrySendError::Full(call)) => call,
        };
        match compio::time::timeout(MESH_SEND_WAIT_BUDGET, sender.send_async(call)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MeshError::Stopped(target)),
            Err(_) => Err(MeshError::Busy(target)),
        }
    }

    fn try_notice(&self, target: ShardId, call: Call<S>) -> Result<(), MeshError> {
        match self.senders[target.0].try_send(call) {
            Ok(()) => Ok(()),
            Err(flume::TrySendError::Disconnected(_)) => Err(MeshError::Stopped(target)),
            Err(flume::TrySendError::Full(_)) => {
                self.gauges[target.0]
                    .notices_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Err(MeshError::Busy(target))
            }
        }
    }
}

/// Runs `work` on `target` and awaits its value. On the calling shard itself it runs inline
/// (nothing crosses, no limit applies).
///
/// # Errors
/// As [`Mesh::submit`] when `target` is another shard.
pub async fn submit_to<S, T, F, Fut>(
    local: &Rc<S>,
    target: ShardId,
    work: F,
) -> Result<T, MeshError>
where
    S: ShardContext,
    F: FnOnce(Rc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    if target == local.shard_id() {
        return Ok(work(Rc::clone(local)).await);
    }
    let mesh = local.mesh();
    let gauge = mesh.gauge(local.shard_id());
    if gauge.outgoing.load(Ordering::Relaxed) >= mesh.limits.outgoing_max {
        gauge.outgoing_refused.fetch_add(1, Ordering::Relaxed);
        return Err(MeshError::Busy(target));
    }
    let _outgoing = GaugeUnit::take(&mesh.gauges, local.shard_id(), |g| &g.outgoing);
    mesh.submit(target, work).await
}

/// Holds one unit of a shard's gauge (in flight or outgoing) until the call finishes, is
/// answered or is dropped unfinished.
struct GaugeUnit {
    gauges: Arc<[MeshGauge]>,
    shard: ShardId,
    gauge: fn(&MeshGauge) -> &AtomicUsize,
}

impl GaugeUnit {
    fn take(
        gauges: &Arc<[MeshGauge]>,
        shard: ShardId,
        gauge: fn(&MeshGauge) -> &AtomicUsize,
    ) -> Self {
        gauge(&gauges[shard.0]).fetch_add(1, Ordering::Relaxed);
        Self {
            gauges: Arc::clone(gauges),
            shard,
            gauge,
        }
    }
}

impl Drop for GaugeUnit {
    fn drop(&mut self) {
        let previous = (self.gauge)(&self.gauges[self.shard.0]).fetch_sub(1, Ordering::Relaxed);
        assert!(previous > 0, "mesh gauge underflow");
    }
}

/// Runs `work` on every shard at once (a clone each; this shard's inline) and awaits every
/// answer, in shard order. A shard that could not be reached answers its [`MeshError`]; the
/// others still ran.
pub async fn broadcast<S, T, F, Fut>(local: &Rc<S>, work: F) -> Vec<Result<T, MeshError>>
where
    S: ShardContext,
    F: FnOnce(Rc<S>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, MeshError>> + 'a>>;
    let shards = local.mesh().shards();
    let answers: Vec<Answer<'_, T>> = (0..shards)
        .map(|target| -> Answer<'_, T> {
            Box::pin(submit_to(local, ShardId(target), work.clone()))
        })
        .collect();
    let answers = futures_util::future::join_all(answers).await;
    assert_eq!(answers.len(), shards, "one answer per shard");
    answers
}

/// Runs `work` on `target` without waiting for it (this shard: spawned as a local task). When
/// the target's channel is full the notice is dropped and counted
/// ([`MeshGauge::notices_dropped`]): notices must be safe to lose (the client re-syncs on its
/// next heartbeat or rebalance).
///
/// # Errors
/// [`MeshError::Busy`] when dropped, [`MeshError::Stopped`] when the target is gone.
pub fn notify<S, F, Fut>(local: &Rc<S>, target: ShardId, work: F) -> Result<(), MeshError>
where
    S: ShardContext,
    F: FnOnce(Rc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if target == local.shard_id() {
        compio::runtime::spawn(work(Rc::clone(local))).detach();
        return Ok(());
    }
    let call: Call<S> = Box::new(Submitted::<F, ()> { work, reply: None });
    local.mesh().try_notice(target, call)
}

/// Serves `shard`'s inbox until every sender is gone: each call runs as its own task (a held
/// pull must not block the inbox), at most the mesh's in-flight limit at once; calls past it
/// are refused at once.
pub async fn serve_inbox<S: ShardContext>(shard: Rc<S>, inbox: Inbox<S>) {
    let id = shard.shard_id();
    let limit = shard.mesh().limits.in_flight_max;
    while let Ok(call) = inbox.receiver.recv_async().await {
        let gauge = shard.mesh().gauge(id);
        if gauge.in_flight.load(Ordering::Relaxed) >= limit {
            gauge.refused.fetch_add(1, Ordering::Relaxed);
            call.refuse(MeshError::Busy(id));
            continue;
        }
        let unit = GaugeUnit::take(&shard.mesh().gauges, id, |g| &g.in_flight);
        let running = call.run(Rc::clone(&shard));
        compio::runtime::spawn(async move {
            let _unit = unit;
            running.await;
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A minimal shard for driving the mesh without a broker.
    struct TestShard {
        id: ShardId,
        mesh: Mesh<TestShard>,
    }

    impl ShardContext for TestShard {
        fn shard_id(&self) -> ShardId {
            self.id
        }
        fn mesh(&self) -> &Mesh<Self> {
            &self.mesh
        }
    }

    /// Shard 1 of a 2-shard mesh, serving on its own thread until `stop` is dropped.
    struct Remote {
        stop: Option<flume::Sender<()>>,
        worker: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Remote {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(worker) = self.worker.take() {
                worker.join().expect("shard 1 thread");
            }
        }
    }

    /// Starts shard 1 of a 2-shard mesh on its own thread; returns shard 0's context (to be
    /// used on the caller's runtime) and shard 1, which stops when dropped.
    fn two_shards(limits: MeshLimits) -> (Rc<TestShard>, Remote) {
        let (mesh, mut inboxes) = Mesh::<TestShard>::with_limits(2, limits);
        let inbox = inboxes.remove(1);
        let remote_mesh = mesh.clone();
        let (stop, stopped) = flume::bounded::<()>(1);
        let worker = std::thread::spawn(move || {
            let runtime = crate::runtime::new_runtime().expect("runtime");
            let shard = Rc::new(TestShard {
                id: ShardId(1),
                mesh: remote_mesh,
            });
            runtime.block_on(async move {
                let serving = std::pin::pin!(serve_inbox(shard, inbox));
                let stopping = std::pin::pin!(stopped.recv_async());
                futures_util::future::select(serving, stopping).await;
            });
        });
        let local = Rc::new(TestShard {
            id: ShardId(0),
            mesh,
        });
        drop(inboxes);
        (
            local,
            Remote {
                stop: Some(stop),
                worker: Some(worker),
            },
        )
    }

    #[test]
    fn submit_to_runs_on_the_target_and_locally_inline() {
        let (local, worker) = two_shards(MeshLimits::DEFAULT);
        let runtime = crate::runtime::new_runtime().expect("runtime");
        runtime.block_on(async {
            let remote = submit_to(&local, ShardId(1), |s: Rc<TestShard>| async move {
                (s.id, std::thread::current().id())
            })
            .await
            .expect("delivered");
            assert_eq!(remote.0, ShardId(1));
            assert_ne!(remote.1, std::thread::current().id());
            let here = submit_to(&local, ShardId(0), |s: Rc<TestShard>| async move {
                (s.id, std::thread::current().id())
            })
            .await
            .expect("inline");
            assert_eq!(here, (ShardId(0), std::thread::current().id()));
            let all = broadcast(&local, |s: Rc<TestShard>| async move { s.id.0 * 10 }).await;
            assert_eq!(all, vec![Ok(0), Ok(10)]);
        });
        drop((local, worker));
    }

    #[test]
    fn a_flooded_shard_refuses_past_its_in_flight_limit_and_stays_bounded() {
        let limits = MeshLimits {
            channel_capacity: 64,
            in_flight_max: 256,
            outgoing_max: 1_024,
        };
        let (local, worker) = two_shards(limits);
        let runtime = crate::runtime::new_runtime().expect("runtime");
        // Calls that never finish while `hold` lives (like held long polls).
        let (hold, held) = flume::bounded::<()>(1);
        let floods = 5_000;
        let (busy, released) = (
            Rc::new(std::cell::Cell::new(0_usize)),
            Rc::new(std::cell::Cell::new(0_usize)),
        );
        runtime.block_on(async {
            for _ in 0..floods {
                let held = held.clone();
                let (local, busy, released) =
                    (Rc::clone(&local), Rc::clone(&busy), Rc::clone(&released));
                compio::runtime::spawn(async move {
                    let outcome = submit_to(&local, ShardId(1), move |_s| async move {
                        let _ = held.recv_async().await;
                    })
                    .await;
                    match outcome {
                        Err(MeshError::Busy(_)) => busy.set(busy.get() + 1),
                        Ok(()) => released.set(released.get() + 1),
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                })
                .detach();
            }
            let gauge = local.mesh.gauge(ShardId(1));
            // Wait until every call is either refused or running on shard 1.
            let settled = || busy.get() + gauge.in_flight.load(Ordering::Relaxed) == floods;
            for _ in 0..2_000 {
                let running = gauge.in_flight.load(Ordering::Relaxed);
                assert!(running <= limits.in_flight_max, "in flight {running}");
                assert!(local.mesh.queued(ShardId(1)) <= limits.channel_capacity);
                if settled() {
                    break;
                }
                compio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(settled(), "calls still unsettled");
            assert_eq!(
                gauge.in_flight.load(Ordering::Relaxed),
                limits.in_flight_max,
                "the limit is reached, not passed"
            );
            assert_eq!(
                busy.get(),
                floods - limits.in_flight_max,
                "the rest is refused"
            );
            let sender = local.mesh.gauge(ShardId(0));
            assert!(sender.outgoing.load(Ordering::Relaxed) <= limits.outgoing_max);
            assert_eq!(
                gauge.refused.load(Ordering::Relaxed)
                    + sender.outgoing_refused.load(Ordering::Relaxed),
                u64::try_from(busy.get()).expect("small"),
                "refused by the receiver or not sent past the sender's bound"
            );
            assert!(gauge.refused.load(Ordering::Relaxed) > 0);
            assert!(sender.outgoing_refused.load(Ordering::Relaxed) > 0);
            // Release the held calls while this runtime still runs, so their answers land.
            drop(hold);
            for _ in 0..2_000 {
                if released.get() == limits.in_flight_max {
                    break;
                }
                compio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(released.get(), limits.in_flight_max, "held calls answered");
            assert_eq!(gauge.in_flight.load(Ordering::Relaxed), 0);
        });
        drop((local, worker));
    }

    #[test]
    fn notices_to_a_full_channel_are_dropped_and_counted() {
        let (mesh, inboxes) = Mesh::<TestShard>::with_limits(
            2,
            MeshLimits {
                channel_capacity: 4,
                in_flight_max: 4,
                outgoing_max: 4,
            },
        );
        let local = Rc::new(TestShard {
            id: ShardId(0),
            mesh,
        });
        let runtime = crate::runtime::new_runtime().expect("runtime");
        runtime.block_on(async {
            let results: Vec<_> = (0..10)
                .map(|_| notify(&local, ShardId(1), |_s: Rc<TestShard>| async {}))
                .collect();
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
            assert_eq!(
                local
                    .mesh
                    .gauge(ShardId(1))
                    .notices_dropped
                    .load(Ordering::Relaxed),
                6
            );
        });
        drop(inboxes);
        let runtime = crate::runtime::new_runtime().expect("runtime");
        let gone = runtime.block_on(local.mesh.submit(ShardId(1), |_s: Rc<TestShard>| async {}));
        assert_eq!(gone, Err(MeshError::Stopped(ShardId(1))));
    }
}
