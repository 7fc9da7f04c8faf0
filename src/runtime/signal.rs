//! Shutdown signals: SIGINT and SIGTERM are blocked in every thread (the mask is set before any
//! shard thread starts, so they inherit it) and taken synchronously by the main thread with
//! `sigwait`. Shards therefore never see an asynchronous signal in the middle of io_uring work.
//! Must never: be called after shard threads started (they would not inherit the mask).

use std::io;

fn shutdown_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use and sigaddset
    // only adds valid signal numbers to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM for this thread and every thread it spawns afterwards.
///
/// # Errors
/// When the signal mask cannot be changed.
pub fn block_shutdown_signals() -> io::Result<()> {
    let set = shutdown_set();
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits until SIGINT or SIGTERM arrives; returns the signal number.
///
/// # Errors
/// When `sigwait` fails.
pub fn wait_for_shutdown_signal() -> io::Result<i32> {
    let set = shutdown_set();
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is initialised and `signal` is a valid out-pointer for the call.
    let rc = unsafe { libc::sigwait(&set, &mut signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(signal)
}
