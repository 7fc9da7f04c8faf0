//! Frames that arrive slowly or never finish (issue 11, defect 5), against a real server over
//! raw sockets: the frame completion timeout closes a trickling peer but not a quiet one or a
//! steady stream of frames, and past the serve loop's budget for incomplete frames the
//! connection holding the most is shed while the others, and whole-frame clients, are served.

#![cfg(feature = "runtime")]

mod conn_support;

use std::time::Duration;

use bytes::BufMut;
use compio::buf::BufResult;
use compio::io::AsyncWriteExt;
use compio::net::{TcpListener, TcpStream};
use conn_support::{
    frame_bytes, read_frames, request, start_server, write_raw, RawEnd, ScriptedHandler, CODE_ECHO,
};
use rmq_net::codec::codes::ResponseCode;
use rmq_net::conn::{
    serve_connection, ClientConfig, ConnConfig, ConnError, RemotingClient, ServeConfig,
};

const WAIT: Duration = Duration::from_secs(5);

/// A config whose frames must complete within `timeout`.
fn frame_deadline(timeout: Duration) -> ConnConfig {
    ConnConfig {
        frame_completion_timeout: Some(timeout),
        ..ConnConfig::default()
    }
}

/// Accepts one connection, serves it while `client` runs, returns how it ended.
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

/// Writes `bytes`, reporting failure instead of panicking (the server may have closed).
async fn try_write(stream: &mut TcpStream, bytes: Vec<u8>) -> bool {
    let BufResult(result, _) = stream.write_all(bytes).await;
    result.is_ok()
}

/// The 1-byte trickle of the issue (scaled down): the length word and a few bytes, then one
/// byte at a time. Every byte resets the idle timeout, so only the frame deadline ends it.
#[compio::test]
async fn a_trickling_frame_is_closed_at_its_deadline() {
    let ended = serve_one_with(
        frame_deadline(Duration::from_millis(300)),
        |addr| async move {
            let mut raw = TcpStream::connect(addr).await.expect("connect");
            let mut head = Vec::new();
            head.put_u32(996); // a 1000-byte frame
            head.put_u32(0); // JSON, empty header: the rest is body
            write_raw(&mut raw, head).await;
            // At most 100 × 50 ms: the server must close long before the trickle ends.
            for _ in 0..100 {
                compio::time::sleep(Duration::from_millis(50)).await;
                if !try_write(&mut raw, vec![b'{']).await {
                    return;
                }
            }
            panic!("still writing after 5 s: the frame deadline did not close the connection");
        },
    )
    .await;
    match ended {
        Err(ConnError::FrameTimeout {
            buffered,
            frame_size,
            timeout,
            ..
        }) => {
            assert_eq!(timeout, Duration::from_millis(300));
            assert_eq!(frame_size, Some(1000));
            assert!((8..1000).contains(&buffered), "{buffered}");
        }
        other => panic!("expected a frame timeout, got {other:?}"),
    }
}

/// The deadline runs only while a frame is incomplete: a connection quiet between frames for
/// longer than it, and one streaming frames whose reads always end mid-frame, are served.
#[compio::test]
async fn quiet_and_streaming_connections_are_not_closed_by_the_frame_deadline() {
    let timeout = Duration::from_millis(200);
    let ended = serve_one_with(frame_deadline(timeout), |addr| async move {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        write_raw(&mut raw, frame_bytes(&request(CODE_ECHO, 1, &[]))).await;
        let (frames, end) = read_frames(&mut raw, 3 * timeout).await;
        assert_eq!((frames.len(), end), (1, RawEnd::StillOpen));
        // Ten frames, each written in two halves 100 ms apart, the second half together with
        // the first half of the next: for a second, the buffer never is between frames.
        let frames: Vec<Vec<u8>> = (0..10)
            .map(|seq| frame_bytes(&request(CODE_ECHO, seq, &[]).with_body(vec![7; 500])))
            .collect();
        let mut pending = Vec::new();
        for frame in &frames {
            let (first, second) = frame.split_at(frame.len() / 2);
            pending.extend_from_slice(first);
            write_raw(&mut raw, std::mem::take(&mut pending)).await;
            compio::time::sleep(timeout / 2).await;
            pending.extend_from_slice(second);
        }
        write_raw(&mut raw, pending).await;
        let (answers, end) = read_frames(&mut raw, Duration::from_millis(300)).await;
        assert_eq!(answers.len(), 10);
        assert_eq!(end, RawEnd::StillOpen);
    })
    .await;
    assert!(ended.is_ok(), "{ended:?}");
}

/// Writes all of `frame` but its last `held_back` bytes.
async fn start_frame(addr: std::net::SocketAddr, frame: &[u8], held_back: usize) -> TcpStream {
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    write_raw(&mut raw, frame[..frame.len() - held_back].to_vec()).await;
    raw
}

/// Past the serve loop's budget, the connection holding the most incomplete bytes is closed;
/// the others finish their frames and are answered, and a client sending whole frames is
/// served throughout.
#[compio::test]
async fn past_the_budget_the_largest_partial_frame_is_shed() {
    let limit = 1024 * 1024;
    let config = ServeConfig {
        partial_frame_bytes_max: limit,
        ..ServeConfig::default()
    };
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), config).await;
    let frame = |seq: usize, body: usize| {
        frame_bytes(&request(CODE_ECHO, seq, &[]).with_body(vec![1; body]))
    };
    let (big, middle, small) = (
        frame(1, 1024 * 1024),
        frame(2, 300 * 1024),
        frame(3, 200 * 1024),
    );
    // 700 KiB + 300 KiB + 200 KiB held: more than 1 MiB, whatever order the server reads them
    // in, and at the moment it crosses the limit the big one holds the most.
    let mut big_conn = start_frame(addr, &big, big.len() - 700 * 1024).await;
    let mut middle_conn = start_frame(addr, &middle, 10).await;
    let mut small_conn = start_frame(addr, &small, 10).await;
    let (_, end) = read_frames(&mut big_conn, WAIT).await;
    assert_eq!(end, RawEnd::Closed, "the largest holder is shed");

    // The other two finish their frames and are answered.
    for (conn, frame, seq) in [(&mut middle_conn, &middle, 2), (&mut small_conn, &small, 3)] {
        write_raw(conn, frame[frame.len() - 10..].to_vec()).await;
        let (answers, end) = read_frames(conn, Duration::from_millis(300)).await;
        assert_eq!(end, RawEnd::StillOpen);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].ext("seq"), Some(seq.to_string().as_str()));
    }
    // Whole small frames are served as usual.
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    for seq in 0..20 {
        let answer = client
            .invoke(request(CODE_ECHO, seq, &[]).with_body(vec![2; 4096]), WAIT)
            .await
            .expect("echo");
        assert_eq!(answer.response_code(), ResponseCode::Success);
    }
    assert_eq!(handler.calls.get(), 22, "the shed frame was never handled");
}
