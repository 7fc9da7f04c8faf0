//! Accept loop for one listener on one core: a connection cap (stop accepting when reached,
//! so the kernel backlog pushes back), backoff on accept errors (EMFILE and friends), after
//! mini-redis `server.rs`, and the budget for bytes of incomplete frames that every connection
//! of the loop shares. Connections run inside this future, so dropping it closes every
//! connection it accepted. Must never spawn work onto another core, nor exceed the cap.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use compio::net::{TcpListener, TcpStream};
use futures_util::future::{Fuse, FusedFuture, FutureExt};

use super::budget::PartialFrameBudget;
use super::config::{ConnConfig, ServeConfig};
use super::connection::{Connection, Handler};
use super::quiet_set::QuietSet;

/// First pause after a failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(1);
/// Longest pause between failed accepts: a persistent error (fd exhaustion) is retried once
/// a second, not in a busy loop.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What woke the accept loop.
enum ServeEvent {
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
    BackoffOver,
    ConnectionEnded,
}

/// Accepts connections on `listener` and serves each with `handler` until the future is
/// dropped (it never returns). At most `config.connections_max` connections are live.
///
/// # Panics
/// If `config.connections_max` or `config.partial_frame_bytes_max` is zero, or
/// `config.conn` has a zero limit.
pub async fn serve<H: Handler>(listener: &TcpListener, handler: Rc<H>, config: ServeConfig) {
    assert!(config.connections_max > 0, "connection cap is zero");
    config.conn.assert_valid();
    let budget = Rc::new(PartialFrameBudget::new(config.partial_frame_bytes_max));
    let handler = &*handler;
    let conn_config = &config.conn;
    let mut connections = QuietSet::new();
    let mut accept = pin!(Fuse::terminated());
    let mut backoff = pin!(Fuse::terminated());
    let mut backoff_delay = ACCEPT_BACKOFF_MIN;
    loop {
        if accept.is_terminated()
            && backoff.is_terminated()
            && connections.len() < config.connections_max
        {
            accept.set(listener.accept().fuse());
        }
        let event = poll_fn(|cx| {
            if !accept.is_terminated() {
                if let Poll::Ready(result) = accept.as_mut().poll(cx) {
                    return Poll::Ready(ServeEvent::Accepted(result));
                }
            }
            if !backoff.is_terminated() && backoff.as_mut().poll(cx).is_ready() {
                return Poll::Ready(ServeEvent::BackoffOver);
            }
            if !connections.is_empty() {
                if let Poll::Ready(Some(())) = connections.poll_next(cx) {
                    return Poll::Ready(ServeEvent::ConnectionEnded);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            ServeEvent::Accepted(Ok((stream, peer))) => {
                backoff_delay = ACCEPT_BACKOFF_MIN;
                tracing::debug!(%peer, live = connections.len() + 1, "accepted");
                let budget = Rc::clone(&budget);
                connections.push(serve_one(stream, peer, handler, conn_config, budget));
                assert!(connections.len() <= config.connections_max);
            }
            ServeEvent::Accepted(Err(error)) => {
                tracing::warn!(%error, delay = ?backoff_delay, "accept failed, backing off");
                backoff.set(compio::time::sleep(backoff_delay).fuse());
                backoff_delay = (backoff_delay * 2).min(ACCEPT_BACKOFF_MAX);
            }
            ServeEvent::BackoffOver | ServeEvent::ConnectionEnded => {}
        }
    }
}

/// Runs one accepted connection to its end; errors are logged by the connection.
async fn serve_one<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: &H,
    config: &ConnConfig,
    budget: Rc<PartialFrameBudget>,
) {
    match Connection::accept_in(stream, config.clone(), budget) {
        Ok(connection) => {
            // The connection logs why it ended.
            let _ended = connection.run(handler).await;
        }
        Err(error) => tracing::debug!(%peer, %error, "cannot set up accepted connection"),
    }
}
