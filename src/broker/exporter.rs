//! The Prometheus exporter's HTTP server (`metricsExporterType=PROM`): a minimal HTTP/1.1
//! server on one shard's runtime that answers `GET /metrics` (and `HEAD`) with a scrape
//! ([`super::stats::prom::scrape`]), one request per connection (`Connection: close`).
//!
//! Limits: [`METRICS_HTTP_CONNECTIONS_MAX`] scrapes at once; a connection arriving at the
//! limit takes the slot of the oldest connection still waiting for its request head (closed
//! without an answer), so idle sockets cannot lock scrapers out for [`METRICS_HTTP_IO_TIMEOUT`];
//! when every slot is past its head (scrapes being answered), the new connection is closed.
//! [`METRICS_HTTP_HEAD_BYTES_MAX`] bytes of request head (431 past it), and
//! [`METRICS_HTTP_IO_TIMEOUT`] for reading the head and for writing the answer, so a slow or
//! stuck scraper holds one task and one slot, never the shard. Other paths get 404, other
//! methods 405, a malformed head 400.
//!
//! Must never: block the event loop (every read and write is awaited under a timeout), hold
//! more than one request head per connection, or read another shard's state but through the
//! scrape's map-reduce.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use futures_util::future::{select, Either};

pub use crate::limits::{
    METRICS_HTTP_CONNECTIONS_MAX, METRICS_HTTP_HEAD_BYTES_MAX, METRICS_HTTP_IO_TIMEOUT,
};

use super::shard::Shard;
use super::stats::prom;
use crate::runtime::latch::Latch;

/// The one path served.
pub const METRICS_PATH: &str = "/metrics";

/// What a request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (`head`: `HEAD /metrics`, the same answer without its body).
    Metrics {
        /// A HEAD request.
        head: bool,
    },
    /// Another path.
    NotFound,
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Where the head ends (the index after `\r\n\r\n`, or after `\n\n` from lenient clients).
#[must_use]
pub fn head_end(buffer: &[u8]) -> Option<usize> {
    let crlf = buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4);
    let lf = buffer
        .windows(2)
        .position(|window| window == b"\n\n")
        .map(|at| at + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses the request line of a complete head.
#[must_use]
pub fn parse_head(head: &[u8]) -> Request {
    let line_end = head
        .iter()
        .position(|byte| *byte == b'\n')
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Request::BadRequest;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if path != METRICS_PATH {
        return Request::NotFound;
    }
    match method {
        "GET" => Request::Metrics { head: false },
        "HEAD" => Request::Metrics { head: true },
        _ => Request::MethodNotAllowed,
    }
}

/// An HTTP/1.1 answer with `Connection: close`.
fn answer(status: &str, content_type: &str, extra: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn plain(status: &str, extra: &str, text: &str) -> Vec<u8> {
    answer(
        status,
        "text/plain; charset=utf-8",
        extra,
        text.as_bytes(),
        false,
    )
}

/// Reads a request head: `Ok(Some(head))`, `Ok(None)` when the peer closed first, or the
/// answer to send for a head over [`METRICS_HTTP_HEAD_BYTES_MAX`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Result<Option<Vec<u8>>, Vec<u8>>> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(Ok(Some(head)));
        }
        if head.len() >= METRICS_HTTP_HEAD_BYTES_MAX {
            return Ok(Err(plain(
                "431 Request Header Fields Too Large",
                "",
                "request head too large\n",
            )));
        }
        let room = METRICS_HTTP_HEAD_BYTES_MAX - head.len();
        let chunk = Vec::with_capacity(room.min(4096));
        let BufResult(read, chunk) = stream.read(chunk).await;
        match read? {
            0 => return Ok(Ok(None)),
            _ => head.extend_from_slice(&chunk),
        }
    }
}

/// The exporter's connection slots: how many are taken, and the connections still waiting for
/// their request head, oldest first (each with the latch that evicts it).
#[derive(Default)]
struct Slots {
    active: Cell<usize>,
    reading: RefCell<VecDeque<(u64, Rc<Latch>)>>,
    next_id: Cell<u64>,
}

impl Slots {
    /// Takes a slot for a new connection: a free one, else the slot of the oldest connection
    /// still reading its head (evicted: its task ends without touching the count). `None` when
    /// every slot is serving a scrape.
    fn take(&self) -> Option<(u64, Rc<Latch>)> {
        if self.active.get() >= METRICS_HTTP_CONNECTIONS_MAX {
            let (_, oldest) = self.reading.borrow_mut().pop_front()?;
            oldest.set();
        } else {
            self.active.set(self.active.get() + 1);
        }
        assert!(self.active.get() <= METRICS_HTTP_CONNECTIONS_MAX);
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let evict = Rc::new(Latch::default());
        self.reading.borrow_mut().push_back((id, Rc::clone(&evict)));
        assert!(self.reading.borrow().len() <= METRICS_HTTP_CONNECTIONS_MAX);
        Some((id, evict))
    }

    /// The connection `id` has its head (or gave up): it can no longer be evicted.
    fn head_done(&self, id: u64) {
        self.reading.borrow_mut().retain(|(held, _)| *held != id);
    }

    /// A connection that was not evicted ends.
    fn release(&self) {
        assert!(self.active.get() > 0, "scrape count underflow");
        self.active.set(self.active.get() - 1);
    }
}

/// Serves one scrape connection; returns `false` when it was evicted before its head arrived
/// (its slot went to a newer connection).
async fn serve_connection(
    shard: &Rc<Shard>,
    mut stream: TcpStream,
    peer: SocketAddr,
    (slots, id, evict): (&Slots, u64, &Latch),
) -> bool {
    let head = {
        let read = std::pin::pin!(compio::time::timeout(
            METRICS_HTTP_IO_TIMEOUT,
            read_head(&mut stream)
        ));
        let evicted = std::pin::pin!(evict.wait());
        match select(read, evicted).await {
            Either::Left((head, _)) => {
                slots.head_done(id);
                head
            }
            Either::Right(((), _)) => {
                tracing::debug!(%peer, "metrics scrape: idle connection closed for a newer one");
                return false;
            }
        }
    };
    serve_head(shard, stream, peer, head).await;
    true
}

type HeadRead = Result<std::io::Result<Result<Option<Vec<u8>>, Vec<u8>>>, compio::time::Elapsed>;

/// Answers a connection whose head was read (or timed out, or failed).
async fn serve_head(shard: &Rc<Shard>, mut stream: TcpStream, peer: SocketAddr, head: HeadRead) {
    let response = match head {
        Err(_) => {
            tracing::debug!(%peer, "metrics scrape: request head timed out");
            plain("408 Request Timeout", "", "request head timed out\n")
        }
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "metrics scrape: read failed");
            return;
        }
        Ok(Ok(Ok(None))) => return,
        Ok(Ok(Err(too_large))) => too_large,
        Ok(Ok(Ok(Some(head)))) => match parse_head(&head) {
            Request::Metrics { head } => match prom::scrape(shard).await {
                Ok(text) => answer("200 OK", prom::CONTENT_TYPE, "", text.as_bytes(), head),
                Err(super::Failure::Code(_, remark)) => {
                    plain("503 Service Unavailable", "", &format!("{remark}\n"))
                }
            },
            Request::NotFound => plain(
                "404 Not Found",
                "",
                "not found: the metrics are at /metrics\n",
            ),
            Request::MethodNotAllowed => plain(
                "405 Method Not Allowed",
                "Allow: GET, HEAD\r\n",
                "method not allowed\n",
            ),
            Request::BadRequest => plain("400 Bad Request", "", "bad request\n"),
        },
    };
    let written = compio::time::timeout(METRICS_HTTP_IO_TIMEOUT, stream.write_all(response)).await;
    match written {
        Ok(BufResult(Ok(()), _)) => {}
        Ok(BufResult(Err(err), _)) => tracing::debug!(%peer, %err, "metrics scrape: write failed"),
        Err(_) => tracing::debug!(%peer, "metrics scrape: write timed out"),
    }
}

/// Accepts scrapes on `listener` until shutdown begins. Runs on one shard; each connection is
/// its own task, at most [`METRICS_HTTP_CONNECTIONS_MAX`] at once.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    let slots = Rc::new(Slots::default());
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            let stop = std::pin::pin!(shard.stopping.wait());
            match select(accept, stop).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(((), _)) => return,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some((id, evict)) = slots.take() else {
                    tracing::warn!(%peer, limit = METRICS_HTTP_CONNECTIONS_MAX, "metrics scrapes at their limit; connection closed");
                    continue;
                };
                let (shard, slots) = (Rc::clone(&shard), Rc::clone(&slots));
                compio::runtime::spawn(async move {
                    let served = serve_connection(&shard, stream, peer, (&slots, id, &evict)).await;
                    if served {
                        slots.release();
                    }
                })
                .detach();
            }
            Err(err) => {
                tracing::warn!(%err, "metrics accept failed");
                compio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, ConfigError, MetricsExporterType};
    use std::collections::BTreeMap;

    #[test]
    fn a_newcomer_at_the_limit_takes_the_oldest_head_waiting_slot() {
        let slots = Slots::default();
        let taken: Vec<(u64, Rc<Latch>)> = (0..METRICS_HTTP_CONNECTIONS_MAX)
            .map(|_| slots.take().expect("a free slot"))
            .collect();
        assert_eq!(slots.active.get(), METRICS_HTTP_CONNECTIONS_MAX);
        // Full: the newcomer evicts the oldest, the count stays at the limit.
        let newcomer = slots.take().expect("the oldest idle slot");
        assert!(taken[0].1.is_set() && !taken[1].1.is_set());
        assert_eq!(slots.active.get(), METRICS_HTTP_CONNECTIONS_MAX);
        // Every holder has its head (being answered): nothing can be evicted.
        for (id, _) in taken.iter().skip(1).chain(std::iter::once(&newcomer)) {
            slots.head_done(*id);
        }
        assert!(slots.take().is_none());
        // One answered: its slot is free again.
        slots.release();
        assert!(slots.take().is_some());
        assert_eq!(slots.active.get(), METRICS_HTTP_CONNECTIONS_MAX);
    }

    #[test]
    fn request_lines_map_to_answers() {
        let cases: [(&[u8], Request); 8] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Request::Metrics { head: false },
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                Request::Metrics { head: false },
            ),
            (
                b"HEAD /metrics HTTP/1.1\r\n\r\n",
                Request::Metrics { head: true },
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Request::MethodNotAllowed),
            (b"GET /metrics\r\n\r\n", Request::BadRequest),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", Request::BadRequest),
        ];
        for (head, expected) in cases {
            assert_eq!(
                parse_head(head),
                expected,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn answers_carry_length_and_close() {
        let text =
            String::from_utf8(answer("200 OK", "text/plain", "", b"abc", false)).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\n"), "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\nabc"), "{text}");
        let head = answer("200 OK", "text/plain", "", b"abc", true);
        assert!(head.ends_with(b"\r\n\r\n"), "HEAD has no body");
    }

    #[test]
    fn exporter_keys_parse_and_unsupported_types_name_the_key() {
        let load = |pairs: &[(&str, &str)]| {
            let props: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            BrokerConfig::from_properties(&props).map(|loaded| loaded.config)
        };
        let defaults = load(&[]).expect("defaults");
        assert_eq!(defaults.metrics_exporter_type, MetricsExporterType::Disable);
        assert_eq!(defaults.metrics_prom_exporter_port, 5557);
        assert_eq!(defaults.metrics_prom_exporter_host, None);
        let on = load(&[
            ("metricsExporterType", "PROM"),
            ("metricsPromExporterHost", "127.0.0.1"),
            ("metricsPromExporterPort", "0"),
        ])
        .expect("valid");
        assert_eq!(on.metrics_exporter_type, MetricsExporterType::Prom);
        assert_eq!(
            on.metrics_prom_exporter_host,
            Some(std::net::Ipv4Addr::LOCALHOST)
        );
        assert_eq!(on.metrics_prom_exporter_port, 0);
        for bad in ["OTLP_GRPC", "LOG", "prometheus"] {
            let err = load(&[("metricsExporterType", bad)]).expect_err("refused");
            assert!(
                matches!(err, ConfigError::Invalid { ref key, .. } if key == "metricsExporterType"),
                "{err}"
            );
            assert!(err.to_string().contains("PROM"), "{err}");
        }
        let err = load(&[("metricsPromExporterPort", "70000")]).expect_err("refused");
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "metricsPromExporterPort")
        );
    }
}
