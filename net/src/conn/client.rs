//! `RemotingClient`: one lazily opened TCP connection to one address, for our admin CLI,
//! benchmark harness and replication. Requests are pipelined on that connection and matched
//! by opaque; a dead connection fails its pending requests at once and the next call
//! reconnects. Requests the server starts (`NOTIFY_CONSUMER_IDS_CHANGED`, ...) go to an
//! optional callback. Lives on one compio runtime thread (`Rc`, `!Send`).
//! Must never retry a request on its own, nor keep more than one connection per address.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compio::net::TcpStream;
use compio::runtime::JoinHandle;

use crate::codec::codes::ResponseCode;
use crate::codec::command::RemotingCommand;

use super::config::ClientConfig;
use super::connection::{Connection, Handler};
use super::error::{ClientError, ConnError};
use super::handle::{ConnContext, ConnHandle};
use super::local::{oneshot, OneshotSender};

/// Callback for requests the server sends to this client. Returns the response, or `None`
/// (always `None` for oneway requests; the connection drops responses to them anyway).
pub type RequestCallback = Rc<dyn Fn(&ConnContext, RemotingCommand) -> Option<RemotingCommand>>;

/// What a caller waiting for the connection receives.
type ConnectResult = Result<ConnHandle, ClientError>;

/// Serves server-initiated requests with the callback; without one, answers
/// `REQUEST_CODE_NOT_SUPPORTED` as the Java client does.
struct CallbackHandler {
    callback: Option<RequestCallback>,
}

impl Handler for CallbackHandler {
    fn handle(
        &self,
        ctx: &ConnContext,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> {
        let response = if let Some(callback) = &self.callback {
            callback(ctx, request)
        } else {
            tracing::debug!(
                peer = %ctx.peer_addr(),
                code = request.code,
                "no callback for server request"
            );
            let remark = format!(" request type {} not supported", request.code);
            Some(
                RemotingCommand::response_to(&request, ResponseCode::RequestCodeNotSupported)
                    .with_remark(remark),
            )
        };
        std::future::ready(response)
    }
}

/// Connection state of a client.
enum State {
    /// No connection; the next call opens one.
    Idle,
    /// A connect task runs; these callers wait for its outcome.
    Connecting(Vec<OneshotSender<ConnectResult>>),
    /// Connected; the task runs the connection and is cancelled when the state is replaced.
    Connected {
        handle: ConnHandle,
        _task: JoinHandle<()>,
    },
}

struct ClientInner {
    addr: String,
    config: ClientConfig,
    handler: Rc<CallbackHandler>,
    state: RefCell<State>,
}

/// A client for one remoting address. Cheap to clone (all clones share the connection);
/// dropping the last clone closes the connection.
#[derive(Clone)]
pub struct RemotingClient {
    inner: Rc<ClientInner>,
}

impl std::fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotingClient")
            .field("addr", &self.inner.addr)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl RemotingClient {
    /// A client for `addr` (`host:port`). Connects on first use.
    ///
    /// # Panics
    /// If `config.conn` has a zero limit ([`super::ConnConfig::assert_valid`]).
    #[must_use]
    pub fn new(addr: impl Into<String>, config: ClientConfig) -> Self {
        Self::build(addr.into(), config, None)
    }

    /// Like [`Self::new`], delivering server-initiated requests to `callback`.
    ///
    /// # Panics
    /// As [`Self::new`].
    #[must_use]
    pub fn with_request_callback(
        addr: impl Into<String>,
        config: ClientConfig,
        callback: RequestCallback,
    ) -> Self {
        Self::build(addr.into(), config, Some(callback))
    }

    fn build(addr: String, config: ClientConfig, callback: Option<RequestCallback>) -> Self {
        config.conn.assert_valid();
        Self {
            inner: Rc::new(ClientInner {
                addr,
                config,
                handler: Rc::new(CallbackHandler { callback }),
                state: RefCell::new(State::Idle),
            }),
        }
    }

    /// The address this client talks to.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The live connection's handle, if connected.
    #[must_use]
    pub fn connection(&self) -> Option<ConnHandle> {
        match &*self.inner.state.borrow() {
            State::Connected { handle, .. } if !handle.is_closed() => Some(handle.clone()),
            _ => None,
        }
    }

    /// Whether a live connection exists.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// Requests awaiting responses on the live connection.
    #[must_use]
    pub fn pending_count(&self) -> usize {
        self.connection().map_or(0, |handle| handle.pending_count())
    }

    /// Closes the live connection, failing its pending requests; the next call reconnects.
    pub fn close(&self) {
        if let Some(handle) = self.connection() {
            handle.close();
        }
    }

    /// Sends `request` and awaits its response. `timeout` covers connecting, queueing and
    /// the response. The client sets opaque, flag and serialize type.
    ///
    /// # Errors
    /// [`ClientError::Connect`]/[`ClientError::ConnectTimeout`] when no connection could be
    /// made, otherwise as [`ConnHandle::invoke`].
    pub async fn invoke(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        let deadline = Instant::now() + timeout;
        let handle = match compio::time::timeout(timeout, self.inner.connect()).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                return Err(ClientError::ConnectTimeout {
                    addr: self.inner.addr.clone(),
                    timeout,
                })
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        handle.invoke(request, remaining).await
    }

    /// Like [`Self::invoke`], but runs in its own task and hands the outcome to `callback`;
    /// returns at once.
    pub fn invoke_async(
        &self,
        request: RemotingCommand,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, ClientError>) + 'static,
    ) {
        let client = self.clone();
        compio::runtime::spawn(async move {
            callback(client.invoke(request, timeout).await);
        })
        .detach();
    }

    /// Sends `request` as a oneway request; returns once it is queued for writing.
    ///
    /// # Errors
    /// [`ClientError::Connect`]/[`ClientError::ConnectTimeout`], or
    /// [`ClientError::ConnectionClosed`].
    pub async fn invoke_oneway(&self, request: RemotingCommand) -> Result<(), ClientError> {
        let handle = self.inner.connect().await?;
        handle.send_oneway(request).await
    }
}

impl ClientInner {
    /// The live connection, opening one if needed. Concurrent callers share one connect
    /// attempt, which runs in its own task so a caller giving up cannot strand the others.
    async fn connect(self: &Rc<Self>) -> ConnectResult {
        let (sender, receiver) = oneshot();
        let stale = {
            let mut state = self.state.borrow_mut();
            match &mut *state {
                State::Connected { handle, .. } if !handle.is_closed() => {
                    return Ok(handle.clone());
                }
                State::Connecting(waiters) => {
                    if waiters.len() >= self.config.conn.pending_requests_max {
                        return Err(ClientError::PendingFull {
                            max: self.config.conn.pending_requests_max,
                        });
                    }
                    waiters.push(sender);
                    None
                }
                State::Idle | State::Connected { .. } => {
                    let previous = std::mem::replace(&mut *state, State::Connecting(vec![sender]));
                    compio::runtime::spawn(connect_task(self.clone())).detach();
                    Some(previous)
                }
            }
        };
        // Dropped outside the borrow: a finished connection task's handle.
        drop(stale);
        receiver.await.unwrap_or_else(|| {
            Err(ClientError::ConnectionClosed {
                reason: "connect task dropped".to_owned(),
            })
        })
    }

    /// Opens the socket and starts the connection task.
    async fn open(&self) -> Result<(ConnHandle, JoinHandle<()>), ClientError> {
        let timeout = self.config.connect_timeout;
        let stream =
            match compio::time::timeout(timeout, TcpStream::connect(self.addr.as_str())).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => return Err(self.connect_error(source)),
                Err(_elapsed) => {
                    return Err(ClientError::ConnectTimeout {
                        addr: self.addr.clone(),
                        timeout,
                    })
                }
            };
        let connection =
            Connection::connect(stream, self.config.conn.clone(), self.config.serialize_type)
                .map_err(|error| match error {
                    ConnError::Setup(source) => self.connect_error(source),
                    other => ClientError::ConnectionClosed {
                        reason: other.to_string(),
                    },
                })?;
        let handle = connection.handle().clone();
        let handler = self.handler.clone();
        let addr = self.addr.clone();
        let task = compio::runtime::spawn(async move {
            if let Err(error) = connection.run(&*handler).await {
                tracing::debug!(%addr, %error, "client connection ended");
            }
        });
        Ok((handle, task))
    }

    fn connect_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Connect {
            addr: self.addr.clone(),
            source: Arc::new(source),
        }
    }
}

/// Connects, publishes the outcome in the state, and wakes every waiting caller.
async fn connect_task(inner: Rc<ClientInner>) {
    let outcome = inner.open().await;
    let (next, result) = match outcome {
        Ok((handle, task)) => (
            State::Connected {
                handle: handle.clone(),
                _task: task,
            },
            Ok(handle),
        ),
        Err(error) => (State::Idle, Err(error)),
    };
    let previous = std::mem::replace(&mut *inner.state.borrow_mut(), next);
    let State::Connecting(waiters) = previous else {
        unreachable!("only the connect task leaves the Connecting state");
    };
    for waiter in waiters {
        waiter.send(result.clone());
    }
}
