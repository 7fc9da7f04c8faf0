//! Server side of the connection layer, driven by a real `RemotingClient` and by raw sockets:
//! pipelining, out-of-order responses, oneway, malformed input, idle timeout, in-flight cap,
//! and how `serve_connection` reports the way a connection ended.

#![cfg(feature = "runtime")]

mod conn_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::net::{TcpListener, TcpStream};
use conn_support::{
    eventually, frame_bytes, read_frames, request, start_server, write_raw, RawEnd,
    ScriptedHandler, CODE_BLOCK, CODE_DELAY, CODE_ECHO,
};
use futures_util::future::join_all;
use rmq_net::codec::codes::{ResponseCode, SerializeType};
use rmq_net::codec::error::CodecError;
use rmq_net::conn::{
    serve_connection, ClientConfig, ClientError, ConnConfig, ConnError, RemotingClient, ServeConfig,
};

const WAIT: Duration = Duration::from_secs(5);

fn client_config(serialize_type: SerializeType) -> ClientConfig {
    ClientConfig {
        serialize_type,
        ..ClientConfig::default()
    }
}

async fn pipelined_on_one_connection(serialize_type: SerializeType) {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), client_config(serialize_type));
    let count = 500;
    let calls = (0..count).map(|seq| {
        let body = vec![u8::try_from(seq % 251).expect("below 251"); seq % 97];
        // Every third response comes back from the handler with the wrong encoding, opaque
        // and flag; the connection must fix all three.
        let sloppy: &[(&str, &str)] = if seq % 3 == 0 {
            &[("sloppy", "1")]
        } else {
            &[]
        };
        client.invoke(request(CODE_ECHO, seq, sloppy).with_body(body), WAIT)
    });
    let responses = join_all(calls).await;
    for (seq, response) in responses.into_iter().enumerate() {
        let response = response.expect("echo succeeds");
        assert_eq!(response.response_code(), ResponseCode::Success);
        assert_eq!(response.ext("seq"), Some(seq.to_string().as_str()));
        assert_eq!(response.body.len(), seq % 97);
        assert!(response.body.iter().all(|b| usize::from(*b) == seq % 251));
        assert_eq!(response.serialize_type, serialize_type);
    }
    assert_eq!(handler.calls.get(), count);
    assert_eq!(
        handler.connections.borrow().len(),
        1,
        "all requests on one connection"
    );
    assert_eq!(client.pending_count(), 0);

    // Writes coalesce: many frames per write syscall, on both sides.
    let client_stats = client.connection().expect("connected").stats();
    assert_eq!(client_stats.frames_written, count as u64);
    assert_eq!(client_stats.frames_read, count as u64);
    assert!(
        client_stats.write_calls * 4 <= client_stats.frames_written,
        "{client_stats:?}"
    );
    let server_stats = handler
        .connections
        .borrow()
        .values()
        .next()
        .expect("one")
        .stats();
    assert_eq!(server_stats.frames_read, count as u64);
    assert_eq!(server_stats.frames_written, count as u64);
    assert_eq!(server_stats.bytes_written, client_stats.bytes_read);
    assert!(
        server_stats.write_calls * 4 <= server_stats.frames_written,
        "{server_stats:?}"
    );
}

#[compio::test]
async fn large_bodies_cross_read_and_write_buffers() {
    let (addr, _server) = start_server(ScriptedHandler::new(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    let sizes = [3 * 1024 * 1024, 700 * 1024, 1, 64 * 1024 + 7];
    let calls = sizes.iter().enumerate().map(|(seq, size)| {
        let body: Vec<u8> = (0..*size).map(|i| (i % 253) as u8).collect();
        client.invoke(request(CODE_ECHO, seq, &[]).with_body(body), WAIT)
    });
    for (seq, response) in join_all(calls).await.into_iter().enumerate() {
        let response = response.expect("large echo succeeds");
        assert_eq!(response.body.len(), sizes[seq]);
        assert!(response
            .body
            .iter()
            .enumerate()
            .all(|(i, b)| usize::from(*b) == i % 253));
    }
    let oversized = vec![0_u8; 17 * 1024 * 1024];
    let refused = client
        .invoke(request(CODE_ECHO, 9, &[]).with_body(oversized), WAIT)
        .await;
    assert!(
        matches!(refused, Err(ClientError::ConnectionClosed { .. })),
        "a frame over the server's limit closes the connection: {refused:?}"
    );
}

#[compio::test]
async fn pipelined_requests_json() {
    pipelined_on_one_connection(SerializeType::Json).await;
}

#[compio::test]
async fn pipelined_requests_rocketmq_binary() {
    pipelined_on_one_connection(SerializeType::RocketMq).await;
}

#[compio::test]
async fn slow_request_does_not_block_later_ones() {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler, ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    let order = Rc::new(RefCell::new(Vec::new()));
    let slow = async {
        let response = client
            .invoke(request(CODE_DELAY, 1, &[("delay_ms", "300")]), WAIT)
            .await
            .expect("slow request succeeds");
        order
            .borrow_mut()
            .push(response.ext("seq").map(str::to_owned));
    };
    let fast = async {
        let response = client
            .invoke(request(CODE_DELAY, 2, &[("delay_ms", "0")]), WAIT)
            .await
            .expect("fast request succeeds");
        order
            .borrow_mut()
            .push(response.ext("seq").map(str::to_owned));
    };
    futures_util::future::join(slow, fast).await;
    assert_eq!(
        *order.borrow(),
        vec![Some("2".to_owned()), Some("1".to_owned())],
        "request 2 answered first, both matched by opaque"
    );
}

#[compio::test]
async fn oneway_request_gets_no_reply() {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), ServeConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    // The echo handler returns a response for every request; the oneway one must be dropped.
    let oneway = request(CODE_ECHO, 1, &[]).with_opaque(41).oneway();
    let normal = request(CODE_ECHO, 2, &[]).with_opaque(42);
    let mut bytes = frame_bytes(&oneway);
    bytes.extend(frame_bytes(&normal));
    write_raw(&mut raw, bytes).await;
    let (frames, end) = read_frames(&mut raw, Duration::from_millis(300)).await;
    assert_eq!(end, RawEnd::StillOpen);
    assert_eq!(
        frames.len(),
        1,
        "only the two-way request is answered: {frames:?}"
    );
    assert_eq!(frames[0].opaque, 42);
    assert!(frames[0].is_response());
    assert_eq!(
        handler.calls.get(),
        2,
        "the oneway request was still handled"
    );

    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    client
        .invoke_oneway(request(CODE_ECHO, 3, &[]))
        .await
        .expect("oneway queued");
    assert!(eventually(WAIT, || handler.calls.get() == 3).await);
    assert_eq!(client.pending_count(), 0);
}

/// A client that writes oneway requests and closes at once (a producer's oneway sends, a
/// consumer's oneway offset commits before its shutdown) still gets them served: the server
/// runs the oneway requests it read to completion after the EOF, as Java's server does.
/// Before, the EOF dropped every request still in its handler, so a slow oneway was lost.
#[compio::test]
async fn oneway_requests_read_before_the_peer_closes_run_to_completion() {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), ServeConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    let mut bytes = Vec::new();
    for seq in 0..3 {
        let slow = request(CODE_DELAY, seq, &[("delay_ms", "200")]).oneway();
        bytes.extend(frame_bytes(&slow));
    }
    write_raw(&mut raw, bytes).await;
    assert!(eventually(WAIT, || handler.calls.get() == 3).await);
    drop(raw);
    assert!(
        eventually(WAIT, || handler.completed.get() == 3).await,
        "{} of 3 oneway requests ran to their end after the peer closed",
        handler.completed.get()
    );
}

/// Raw inputs the server must refuse by closing the connection.
fn malformed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut over_limit = (32 * 1024 * 1024_u32).to_be_bytes().to_vec();
    over_limit.extend(16_u32.to_be_bytes());
    let mut bad_type = 20_u32.to_be_bytes().to_vec();
    bad_type.extend(((7_u32 << 24) | 16).to_be_bytes());
    bad_type.extend([b'{'; 16]);
    let header = b"{not json at all";
    let mut bad_header = (4 + header.len() as u32).to_be_bytes().to_vec();
    bad_header.extend((header.len() as u32).to_be_bytes());
    bad_header.extend(header);
    vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("frame over the limit", over_limit),
        ("bad serialize type", bad_type),
        ("undecodable header", bad_header),
    ]
}

#[compio::test]
async fn malformed_frames_close_only_their_connection() {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    client
        .invoke(request(CODE_ECHO, 0, &[]), WAIT)
        .await
        .expect("works before");
    let first_connection = client.connection().expect("connected").id();
    for (what, bytes) in malformed_inputs() {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        write_raw(&mut raw, bytes).await;
        let (frames, end) = read_frames(&mut raw, WAIT).await;
        assert_eq!(end, RawEnd::Closed, "{what}: server closes the connection");
        assert!(frames.is_empty(), "{what}: no reply");
        let response = client
            .invoke(request(CODE_ECHO, 1, &[]), WAIT)
            .await
            .expect("the well-behaved client keeps working");
        assert_eq!(response.ext("seq"), Some("1"));
    }
    assert_eq!(
        client.connection().expect("connected").id(),
        first_connection
    );
    assert_eq!(handler.calls.get(), 1 + malformed_inputs().len());
}

#[compio::test]
async fn idle_connection_is_closed() {
    let config = ServeConfig {
        conn: ConnConfig {
            idle_timeout: Some(Duration::from_millis(200)),
            ..ConnConfig::default()
        },
        ..ServeConfig::default()
    };
    let (addr, _server) = start_server(ScriptedHandler::new(), config).await;
    let started = Instant::now();
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    let (_, end) = read_frames(&mut raw, WAIT).await;
    assert_eq!(end, RawEnd::Closed);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "not closed before the timeout"
    );

    // A client whose connection idled out reconnects on its next call.
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    client
        .invoke(request(CODE_ECHO, 1, &[]), WAIT)
        .await
        .expect("first call");
    let first = client.connection().expect("connected").id();
    assert!(
        eventually(WAIT, || !client.is_connected()).await,
        "server closed the idle client"
    );
    client
        .invoke(request(CODE_ECHO, 2, &[]), WAIT)
        .await
        .expect("call after reconnect");
    assert_ne!(client.connection().expect("reconnected").id(), first);
}

#[compio::test]
async fn inflight_cap_stops_reading() {
    let config = ServeConfig {
        conn: ConnConfig {
            inflight_requests_per_connection_max: 2,
            ..ConnConfig::default()
        },
        ..ServeConfig::default()
    };
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), config).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    let done = Rc::new(RefCell::new(Vec::new()));
    for seq in 0..3 {
        let done = done.clone();
        client.invoke_async(request(CODE_BLOCK, seq, &[]), WAIT, move |result| {
            done.borrow_mut().push(result.map(|r| r.response_code()));
        });
    }
    assert!(eventually(WAIT, || handler.calls.get() == 2).await);
    compio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        handler.calls.get(),
        2,
        "third request not read while two are in flight"
    );
    assert_eq!(client.pending_count(), 3, "all three were sent");

    handler.release.send(()).expect("gate open");
    assert!(
        eventually(WAIT, || handler.calls.get() == 3).await,
        "third read after one completes"
    );
    handler.release.send(()).expect("gate open");
    handler.release.send(()).expect("gate open");
    assert!(eventually(WAIT, || done.borrow().len() == 3).await);
    assert!(done
        .borrow()
        .iter()
        .all(|r| matches!(r, Ok(ResponseCode::Success))));
}

/// Accepts one connection, serves it with `serve_connection` while `client` runs, and
/// returns how the connection ended.
async fn serve_one_with<F: std::future::Future<Output = ()>>(
    config: ConnConfig,
    client: impl FnOnce(std::net::SocketAddr) -> F,
) -> Result<(), ConnError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = async {
        let (stream, _) = listener.accept().await.expect("accept");
        serve_connection(stream, ScriptedHandler::new(), config).await
    };
    let (result, ()) = futures_util::future::join(server, client(addr)).await;
    result
}

#[compio::test]
async fn serve_connection_reports_how_it_ended() {
    let clean = serve_one_with(ConnConfig::default(), |addr| async move {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        write_raw(&mut raw, frame_bytes(&request(CODE_ECHO, 1, &[]))).await;
        let (frames, _) = read_frames(&mut raw, Duration::from_millis(100)).await;
        assert_eq!(frames.len(), 1);
        drop(raw);
    })
    .await;
    assert!(
        clean.is_ok(),
        "EOF between frames is a clean close: {clean:?}"
    );

    let mid_frame = serve_one_with(ConnConfig::default(), |addr| async move {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        let bytes = frame_bytes(&request(CODE_ECHO, 1, &[]));
        write_raw(&mut raw, bytes[..bytes.len() - 3].to_vec()).await;
        drop(raw);
    })
    .await;
    assert!(
        matches!(mid_frame, Err(ConnError::EofMidFrame { buffered, .. }) if buffered > 0),
        "{mid_frame:?}"
    );

    let malformed = serve_one_with(ConnConfig::default(), |addr| async move {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        write_raw(&mut raw, b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
        let (_, end) = read_frames(&mut raw, WAIT).await;
        assert_eq!(end, RawEnd::Closed);
    })
    .await;
    assert!(
        matches!(
            malformed,
            Err(ConnError::Malformed {
                source: CodecError::FrameSize { .. },
                ..
            })
        ),
        "{malformed:?}"
    );

    let idle_config = ConnConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..ConnConfig::default()
    };
    let idle = serve_one_with(idle_config, |addr| async move {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        let (_, end) = read_frames(&mut raw, WAIT).await;
        assert_eq!(end, RawEnd::Closed);
    })
    .await;
    assert!(matches!(idle, Err(ConnError::Idle { .. })), "{idle:?}");
}
