//! The shard mesh: one bounded channel into every shard, and [`ShardMsg`], the only
//! data-plane type that crosses cores. Payloads are owned (`Bytes`, `String`, ids); state
//! never crosses.
//!
//! Back-pressure: a full channel makes the sender wait (the sending connection stops reading
//! its socket meanwhile); past [`MESH_SEND_WAIT_BUDGET`] the request is answered SYSTEM_BUSY by
//! the caller. Must never: use an unbounded channel, or deliver a message to the wrong shard.

use std::net::SocketAddr;
use std::time::Duration;

use rmq_net::codec::codes::{LanguageCode, SerializeType};
use rmq_net::RemotingCommand;

use super::ShardId;

/// Capacity of each shard's inbound channel. Each message is one in-flight request or one
/// broadcast; 4096 covers a burst of pipelined requests from many connections while bounding
/// memory to a few MiB of headers per shard.
pub const MESH_CHANNEL_CAPACITY: usize = 4096;

/// How long a connection waits for room in a full mesh channel before answering SYSTEM_BUSY
/// (Java's `waitTimeMillsInSendQueue` default is 200 ms).
pub const MESH_SEND_WAIT_BUDGET: Duration = Duration::from_millis(200);

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

/// Reply slot for a forwarded request (a one-shot over a bounded(1) channel).
pub type ReplySender = flume::Sender<Option<RemotingCommand>>;

/// Work run on the target shard with its context (Redpanda's `invoke_on`): control-plane
/// changes, broadcasts, notifications to connections the target owns. The closure must be
/// `Send`, so it can only capture owned, thread-safe data; it runs on the target's thread.
pub type Invoke<S> = Box<dyn FnOnce(&std::rc::Rc<S>) + Send>;

/// Everything that crosses cores. `S` is the shard context type the target runs with.
pub enum ShardMsg<S> {
    /// A client request for state the receiving shard owns (a queue, or control-plane state on
    /// the control shard). The receiver processes it and answers on `reply`.
    Request {
        /// The request, as decoded on the accepting shard.
        request: RemotingCommand,
        /// Who sent it.
        client: ClientMeta,
        /// Where the response goes (`None` for oneway or no reply).
        reply: ReplySender,
    },
    /// Run a closure on the receiving shard.
    Invoke(Invoke<S>),
}

impl<S> std::fmt::Debug for ShardMsg<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request {
                request, client, ..
            } => f
                .debug_struct("Request")
                .field("code", &request.code)
                .field("opaque", &request.opaque)
                .field("client", &client.key)
                .finish(),
            Self::Invoke(_) => f.write_str("Invoke"),
        }
    }
}

/// Senders into every shard's channel, cloned into each shard.
pub struct Mesh<S> {
    senders: Vec<flume::Sender<ShardMsg<S>>>,
}

impl<S> Clone for Mesh<S> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
        }
    }
}

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MeshError {
    /// The target shard's channel stayed full past the wait budget.
    #[error("shard {0:?} busy")]
    Busy(ShardId),
    /// The target shard stopped.
    #[error("shard {0:?} stopped")]
    Stopped(ShardId),
}

impl<S> Mesh<S> {
    /// A mesh of `shards` channels; returns the senders and each shard's receiver.
    ///
    /// # Panics
    /// If `shards` is 0.
    #[must_use]
    pub fn new(shards: usize) -> (Self, Vec<flume::Receiver<ShardMsg<S>>>) {
        assert!(shards > 0, "at least one shard");
        let (senders, receivers) = (0..shards)
            .map(|_| flume::bounded(MESH_CHANNEL_CAPACITY))
            .unzip();
        (Self { senders }, receivers)
    }

    /// Number of shards.
    #[must_use]
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// Sends `msg` to `target`, waiting at most [`MESH_SEND_WAIT_BUDGET`] for room.
    ///
    /// # Errors
    /// [`MeshError::Busy`] past the budget, [`MeshError::Stopped`] if the shard is gone.
    ///
    /// # Panics
    /// If `target` is not a shard of this mesh (a caller bug).
    pub async fn send(&self, target: ShardId, msg: ShardMsg<S>) -> Result<(), MeshError> {
        let sender = &self.senders[target.0];
        let msg = match sender.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(flume::TrySendError::Disconnected(_)) => return Err(MeshError::Stopped(target)),
            Err(flume::TrySendError::Full(msg)) => msg,
        };
        let send = sender.send_async(msg);
        match compio::time::timeout(MESH_SEND_WAIT_BUDGET, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MeshError::Stopped(target)),
            Err(_) => Err(MeshError::Busy(target)),
        }
    }

    /// Forwards a request to `target` and waits for its response.
    ///
    /// # Errors
    /// As [`Self::send`]; [`MeshError::Stopped`] if the target dropped the reply slot.
    pub async fn request(
        &self,
        target: ShardId,
        request: RemotingCommand,
        client: ClientMeta,
    ) -> Result<Option<RemotingCommand>, MeshError> {
        let (reply, response) = flume::bounded(1);
        self.send(
            target,
            ShardMsg::Request {
                request,
                client,
                reply,
            },
        )
        .await?;
        response
            .recv_async()
            .await
            .map_err(|_| MeshError::Stopped(target))
    }

    /// Runs `work` on `target` and waits for the value it sends back.
    ///
    /// # Errors
    /// As [`Self::send`]; [`MeshError::Stopped`] if the target dropped the work unanswered.
    pub async fn call<T, F>(&self, target: ShardId, work: F) -> Result<T, MeshError>
    where
        T: Send + 'static,
        F: FnOnce(&std::rc::Rc<S>, flume::Sender<T>) + Send + 'static,
    {
        let (reply, result) = flume::bounded(1);
        self.send(
            target,
            ShardMsg::Invoke(Box::new(move |shard| work(shard, reply))),
        )
        .await?;
        result
            .recv_async()
            .await
            .map_err(|_| MeshError::Stopped(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ClientMeta {
        ClientMeta {
            key: ConnKey {
                shard: ShardId(0),
                conn: 1,
            },
            peer_addr: "127.0.0.1:1".parse().expect("addr"),
            language: LanguageCode::Java,
            version: 401,
            serialize_type: SerializeType::Json,
        }
    }

    #[test]
    fn request_crosses_to_the_target_and_back() {
        let (mesh, mut receivers) = Mesh::<()>::new(2);
        let inbox = receivers.remove(1);
        let worker = std::thread::spawn(move || {
            let ShardMsg::Request { request, reply, .. } = inbox.recv().expect("message") else {
                panic!("expected a request");
            };
            let response = RemotingCommand::response_to(
                &request,
                rmq_net::codec::codes::ResponseCode::Success,
            );
            reply.send(Some(response)).expect("reply");
        });
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        let request = RemotingCommand::default().with_opaque(9);
        let response = runtime
            .block_on(mesh.request(ShardId(1), request, meta()))
            .expect("delivered");
        assert_eq!(response.expect("response").opaque, 9);
        worker.join().expect("worker");
    }

    #[test]
    fn a_full_channel_is_busy_after_the_budget_and_a_dropped_shard_is_stopped() {
        let (mesh, receivers) = Mesh::<()>::new(1);
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        for _ in 0..MESH_CHANNEL_CAPACITY {
            runtime
                .block_on(mesh.send(ShardId(0), ShardMsg::Invoke(Box::new(|_| {}))))
                .expect("room");
        }
        let full = runtime.block_on(mesh.send(ShardId(0), ShardMsg::Invoke(Box::new(|_| {}))));
        assert_eq!(full, Err(MeshError::Busy(ShardId(0))));
        drop(receivers);
        let gone = runtime.block_on(mesh.send(ShardId(0), ShardMsg::Invoke(Box::new(|_| {}))));
        assert_eq!(gone, Err(MeshError::Stopped(ShardId(0))));
    }
}
