//! Listening sockets for shards: every shard binds its own socket on the same address with
//! SO_REUSEPORT, so the kernel spreads incoming connections over the shards.
//! Must never: accept on behalf of another shard.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_shards_can_bind_the_same_port() {
        let first = bind_reuseport("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = first.local_addr().expect("addr");
        let second = bind_reuseport(addr).expect("second bind on the same port");
        assert_eq!(second.local_addr().expect("addr"), addr);
    }
}
