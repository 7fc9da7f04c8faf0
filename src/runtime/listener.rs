//! Listening sockets: every broker shard binds its own socket on the same address with
//! SO_REUSEPORT, so the kernel spreads incoming connections over the shards; the NameServer
//! (one thread) binds exclusively. Before the shards bind, [`probe_exclusive`] makes sure no
//! other process holds the port: SO_REUSEPORT would otherwise let a second broker share it
//! and silently take half the connections.
//! Must never: accept on behalf of another shard, or share a port with another process.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept backlog per shard listener (`net.core.somaxconn` caps it).
pub const LISTEN_BACKLOG: i32 = 4096;

/// A std listener bound with SO_REUSEADDR and SO_REUSEPORT, non-blocking, ready to be handed
/// to the shard's runtime (`compio::net::TcpListener::from_std`).
///
/// # Errors
/// When the socket cannot be created or bound.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Fails with [`io::ErrorKind::AddrInUse`] when any socket is bound to `addr` (a bind without
/// SO_REUSEPORT cannot share a port; SO_REUSEADDR only lets it past TIME_WAIT leftovers of an
/// earlier run). The probe socket is closed at once.
///
/// # Errors
/// The bind's error.
pub fn probe_exclusive(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())
}

/// A std listener that owns its port alone (SO_REUSEADDR, no SO_REUSEPORT), non-blocking.
///
/// # Errors
/// When the socket cannot be created or bound (AddrInUse when anything holds the port).
pub fn bind_exclusive(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_shards_can_bind_the_same_port() {
        let first = bind_reuseport("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = first.local_addr().expect("addr");
        let second = bind_reuseport(addr).expect("second bind on the same port");
        assert_eq!(second.local_addr().expect("addr"), addr);
        let probed = probe_exclusive(addr).expect_err("a held port is not free");
        assert_eq!(probed.kind(), io::ErrorKind::AddrInUse);
        drop((first, second));
        probe_exclusive(addr).expect("a released port is free");
    }

    #[test]
    fn an_exclusive_listener_shares_its_port_with_nobody() {
        let only = bind_exclusive("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = only.local_addr().expect("addr");
        let shared = bind_reuseport(addr).expect_err("SO_REUSEPORT cannot join");
        assert_eq!(shared.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            bind_exclusive(addr).expect_err("second").kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
