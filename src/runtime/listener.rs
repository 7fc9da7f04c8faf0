//! Listening sockets: every broker shard binds its own socket on the same address with
//! SO_REUSEPORT, so the kernel spreads incoming connections over the shards; the NameServer
//! (one thread) binds exclusively. Before the shards bind, [`probe_exclusive`] makes sure no
//! other process holds the port: SO_REUSEPORT would otherwise let a second broker share it
//! and silently take half the connections. Start-up binds through [`retry_while_in_use`], so a
//! restart right after a kill does not fail on a port the dead process's ring still holds.
//! Must never: accept on behalf of another shard, or share a port with another process.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept backlog per shard listener (`net.core.somaxconn` caps it).
pub const LISTEN_BACKLOG: i32 = 4096;

/// How long start-up keeps retrying a bind that fails with AddrInUse. A process that was just
/// killed can hold its listening port for a moment after it has been reaped: sockets its
/// io_uring still references (a pending accept) are released when the kernel tears the ring
/// down, in the background. A restart in a crash loop would otherwise fail at random; a port
/// held by a live process still fails, after this long.
pub const ADDR_IN_USE_RETRY_WINDOW: Duration = Duration::from_secs(5);
/// Pause between two such attempts.
const ADDR_IN_USE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Runs `bind` (at start-up, off any event loop: it sleeps the thread) until it succeeds, fails
/// with another error than AddrInUse, or [`ADDR_IN_USE_RETRY_WINDOW`] has passed.
///
/// # Errors
/// The last attempt's error.
pub fn retry_while_in_use<T>(mut bind: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let deadline = Instant::now() + ADDR_IN_USE_RETRY_WINDOW;
    loop {
        match bind() {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(ADDR_IN_USE_RETRY_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

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
    fn a_bind_is_retried_while_the_port_is_in_use_and_only_then() {
        let held = bind_exclusive("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = held.local_addr().expect("addr");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let listener = retry_while_in_use(|| bind_exclusive(addr)).expect("bound once released");
        assert_eq!(listener.local_addr().expect("addr"), addr);
        release.join().expect("release");
        let mut attempts = 0;
        let refused = retry_while_in_use(|| {
            attempts += 1;
            Err::<(), _>(io::Error::from(io::ErrorKind::PermissionDenied))
        });
        assert_eq!(
            refused.expect_err("other errors").kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(attempts, 1, "only AddrInUse is retried");
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
