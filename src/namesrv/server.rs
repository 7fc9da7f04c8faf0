//! NameServer serving loop: binds the listener, serves every connection with the
//! [`NameServer`] processor, expires silent brokers every 5 s and removes brokers whose
//! connection closed. Runs on one thread with its own compio runtime.
//! Must never: block that thread outside the KV persist (rare admin writes).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rmq_net::conn::{serve, ConnContext, ConnHandle, Handler, ServeConfig};
use rmq_net::RemotingCommand;

use super::processor::NameServer;
use crate::runtime::clock::now_ms;

/// How often silent brokers are looked for (`scanNotActiveBrokerInterval`).
pub const SCAN_NOT_ACTIVE_BROKER_INTERVAL: Duration = Duration::from_secs(5);

struct NamesrvHandler {
    server: Rc<NameServer>,
}

impl Handler for NamesrvHandler {
    async fn handle(&self, ctx: &ConnContext, request: RemotingCommand) -> Option<RemotingCommand> {
        Some(self.server.process(&request, ctx.handle().id(), now_ms()))
    }

    fn on_close(&self, handle: &ConnHandle) {
        for addr in self.server.connection_closed(handle.id()) {
            tracing::info!(broker = %addr, "broker connection closed, removed from routes");
        }
    }
}

/// Serves `server` on `listener` until the future is dropped.
pub async fn run(listener: compio::net::TcpListener, server: Rc<NameServer>, config: ServeConfig) {
    let expiry = {
        let server = server.clone();
        compio::runtime::spawn(async move {
            loop {
                compio::time::sleep(SCAN_NOT_ACTIVE_BROKER_INTERVAL).await;
                for addr in server.expire(now_ms()) {
                    tracing::warn!(broker = %addr, "broker expired: no heartbeat within its timeout");
                }
            }
        })
    };
    let handler = Rc::new(NamesrvHandler { server });
    serve(&listener, handler, config).await;
    drop(expiry);
}

/// Binds `addr` for the NameServer (retrying a moment while a just-killed predecessor's port is
/// released: `runtime::listener::retry_while_in_use`).
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<compio::net::TcpListener> {
    use crate::runtime::listener::{bind_exclusive, retry_while_in_use};
    compio::net::TcpListener::from_std(retry_while_in_use(|| bind_exclusive(addr))?)
}
