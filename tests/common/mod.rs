//! Shared helpers for black-box tests: start the built `rmq` binary on ephemeral ports, wait
//! for its READY line, kill it on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `rmq` child process; killed when dropped.
pub struct Server {
    child: Child,
    /// Addresses announced on READY lines, by role (`namesrv`, `broker`).
    pub addrs: Vec<(String, SocketAddr)>,
}

impl Server {
    /// Starts `rmq <args>` and waits until it printed `expect` READY lines.
    pub fn start(args: &[&str], expect: usize) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rmq"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rmq");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("READY ") {
                    let mut parts = rest.split_whitespace();
                    if let (Some(role), Some(addr)) = (parts.next(), parts.next()) {
                        let addr: SocketAddr = addr.parse().expect("READY address");
                        if tx.send((role.to_owned(), addr)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut addrs = Vec::new();
        while addrs.len() < expect {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(entry) => addrs.push(entry),
                Err(_) => {
                    let _ = child.kill();
                    panic!("rmq {args:?} did not print {expect} READY lines within 30 s");
                }
            }
        }
        Self { child, addrs }
    }

    /// The address announced for `role`.
    pub fn addr(&self, role: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, a)| *a)
            .expect("role announced")
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
