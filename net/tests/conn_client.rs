//! `RemotingClient` against a real server: timeouts, a dying server, reconnect, the pending
//! limit, and requests the server starts (oneway notify, and invoke with a response), in
//! both header encodings.

#![cfg(feature = "runtime")]

mod conn_support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use conn_support::{
    eventually, request, start_server, ScriptedHandler, CODE_ASK_BACK, CODE_DELAY, CODE_ECHO,
    CODE_FLOOD, CODE_NOTIFY_BACK,
};
use futures_util::future::join_all;
use rmq_net::codec::codes::{RequestCode, ResponseCode, SerializeType};
use rmq_net::conn::{
    ClientConfig, ClientError, ConnConfig, ConnContext, RemotingClient, RequestCallback,
    ServeConfig,
};
use rmq_net::RemotingCommand;

const WAIT: Duration = Duration::from_secs(5);

#[compio::test]
async fn timeout_removes_pending_entry_and_late_response_is_ignored() {
    let (addr, _server) = start_server(ScriptedHandler::new(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    client
        .invoke(request(CODE_ECHO, 0, &[]), WAIT)
        .await
        .expect("connects");
    let connection = client.connection().expect("connected").id();

    let slow = request(CODE_DELAY, 1, &[("delay_ms", "300")]);
    let result = client.invoke(slow, Duration::from_millis(50)).await;
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(client.pending_count(), 0, "timed-out entry removed");

    compio::time::sleep(Duration::from_millis(400)).await; // the late response arrives
    let response = client
        .invoke(request(CODE_ECHO, 2, &[]), WAIT)
        .await
        .expect("connection still usable");
    assert_eq!(response.ext("seq"), Some("2"));
    assert_eq!(client.connection().expect("connected").id(), connection);
}

#[compio::test]
async fn server_death_fails_pending_requests_promptly() {
    let (addr, server) = start_server(ScriptedHandler::new(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    client
        .invoke(request(CODE_ECHO, 0, &[]), WAIT)
        .await
        .expect("connects");
    let calls = (1..=5).map(|seq| {
        client.invoke(
            request(CODE_DELAY, seq, &[("delay_ms", "20000")]),
            Duration::from_secs(30),
        )
    });
    let kill = async {
        assert!(eventually(WAIT, || client.pending_count() == 5).await);
        let _cancelled: Option<()> = server.cancel().await;
    };
    let started = Instant::now();
    let (results, ()) = futures_util::future::join(join_all(calls), kill).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed promptly, not by timeout"
    );
    for result in results {
        assert!(
            matches!(result, Err(ClientError::ConnectionClosed { .. })),
            "{result:?}"
        );
    }
    assert_eq!(client.pending_count(), 0);
    let again = client.invoke(request(CODE_ECHO, 6, &[]), WAIT).await;
    assert!(
        matches!(again, Err(ClientError::Connect { .. })),
        "{again:?}"
    );
}

#[compio::test]
async fn closed_connection_reconnects_on_next_call() {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    client
        .invoke(request(CODE_ECHO, 0, &[]), WAIT)
        .await
        .expect("connects");
    let first = client.connection().expect("connected");
    let pending = client.invoke(request(CODE_DELAY, 1, &[("delay_ms", "10000")]), WAIT);
    let close = async {
        assert!(eventually(WAIT, || client.pending_count() == 1).await);
        client.close();
    };
    let (result, ()) = futures_util::future::join(pending, close).await;
    assert!(
        matches!(result, Err(ClientError::ConnectionClosed { .. })),
        "{result:?}"
    );
    assert!(first.is_closed());
    let sent = first.try_send_oneway(request(CODE_ECHO, 9, &[]));
    assert!(
        matches!(sent, Err(ClientError::ConnectionClosed { .. })),
        "{sent:?}"
    );
    client
        .invoke(request(CODE_ECHO, 2, &[]), WAIT)
        .await
        .expect("reconnects");
    assert_ne!(client.connection().expect("connected").id(), first.id());
    assert_eq!(handler.connections.borrow().len(), 2);
}

#[compio::test]
async fn pending_limit_rejects_extra_requests() {
    let (addr, _server) = start_server(ScriptedHandler::new(), ServeConfig::default()).await;
    let config = ClientConfig {
        conn: ConnConfig {
            pending_requests_max: 2,
            ..ConnConfig::default()
        },
        ..ClientConfig::default()
    };
    let client = RemotingClient::new(addr.to_string(), config);
    client
        .invoke(request(CODE_ECHO, 0, &[]), WAIT)
        .await
        .expect("connects");
    let calls =
        (1..=3).map(|seq| client.invoke(request(CODE_DELAY, seq, &[("delay_ms", "100")]), WAIT));
    let results = join_all(calls).await;
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(ClientError::PendingFull { max: 2 })))
        .count();
    assert_eq!(full, 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
}

#[compio::test]
async fn connect_failure_is_reported() {
    let listener = compio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    let result = client.invoke(request(CODE_ECHO, 0, &[]), WAIT).await;
    assert!(
        matches!(result, Err(ClientError::Connect { .. })),
        "{result:?}"
    );
    let oneway = client.invoke_oneway(request(CODE_ECHO, 0, &[])).await;
    assert!(
        matches!(oneway, Err(ClientError::Connect { .. })),
        "{oneway:?}"
    );
}

/// What the client callback saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    code: i32,
    oneway: bool,
    serialize_type: SerializeType,
    group: Option<String>,
}

fn recording_callback(seen: Rc<RefCell<Vec<Seen>>>) -> RequestCallback {
    Rc::new(move |_ctx: &ConnContext, request: RemotingCommand| {
        seen.borrow_mut().push(Seen {
            code: request.code,
            oneway: request.is_oneway(),
            serialize_type: request.serialize_type,
            group: request.ext("consumerGroup").map(str::to_owned),
        });
        // Answers even oneway requests: the connection must drop those answers.
        Some(
            RemotingCommand::response_to(&request, ResponseCode::Success)
                .with_body(&b"running-info"[..]),
        )
    })
}

async fn server_initiated_requests(serialize_type: SerializeType) {
    let handler = ScriptedHandler::new();
    let (addr, _server) = start_server(handler.clone(), ServeConfig::default()).await;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let config = ClientConfig {
        serialize_type,
        ..ClientConfig::default()
    };
    let client = RemotingClient::with_request_callback(
        addr.to_string(),
        config,
        recording_callback(seen.clone()),
    );

    let response = client
        .invoke(request(CODE_NOTIFY_BACK, 1, &[]), WAIT)
        .await
        .expect("notify");
    assert_eq!(response.ext("seq"), Some("1"));
    assert!(
        eventually(WAIT, || seen.borrow().len() == 1).await,
        "oneway reached the callback"
    );
    assert_eq!(
        seen.borrow()[0],
        Seen {
            code: RequestCode::NotifyConsumerIdsChanged.value(),
            oneway: true,
            serialize_type,
            group: Some("G".to_owned()),
        }
    );

    let response = client
        .invoke(request(CODE_ASK_BACK, 2, &[]), WAIT)
        .await
        .expect("ask back");
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "{:?}",
        response.remark
    );
    assert_eq!(
        &response.body[..],
        b"running-info",
        "the server got the client's answer"
    );
    assert_eq!(seen.borrow().len(), 2);
    assert_eq!(
        seen.borrow()[1].code,
        RequestCode::GetConsumerRunningInfo.value()
    );
    assert!(!seen.borrow()[1].oneway);
    assert_eq!(
        seen.borrow()[1].serialize_type,
        serialize_type,
        "server used the client's encoding"
    );
    assert_eq!(client.pending_count(), 0);
}

#[compio::test]
async fn server_initiated_requests_json() {
    server_initiated_requests(SerializeType::Json).await;
}

#[compio::test]
async fn server_initiated_requests_rocketmq_binary() {
    server_initiated_requests(SerializeType::RocketMq).await;
}

#[compio::test]
async fn bounded_write_queue_refuses_non_waiting_sends_when_full() {
    let config = ServeConfig {
        conn: ConnConfig {
            write_queue_capacity: 4,
            ..ConnConfig::default()
        },
        ..ServeConfig::default()
    };
    let (addr, _server) = start_server(ScriptedHandler::new(), config).await;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let client = RemotingClient::with_request_callback(
        addr.to_string(),
        ClientConfig::default(),
        recording_callback(seen.clone()),
    );
    // The handler queues without yielding, so the writer cannot drain in between: exactly
    // the capacity fits. Its own response then waits for room instead of failing.
    let response = client
        .invoke(request(CODE_FLOOD, 1, &[("count", "10")]), WAIT)
        .await
        .expect("flood request answered");
    assert_eq!(response.ext("sent"), Some("4"));
    assert_eq!(response.ext("full"), Some("6"));
    assert!(eventually(WAIT, || seen.borrow().len() == 4).await);
    compio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        seen.borrow().len(),
        4,
        "refused sends never reach the client"
    );
}

#[compio::test]
async fn client_without_callback_answers_not_supported() {
    let (addr, _server) = start_server(ScriptedHandler::new(), ServeConfig::default()).await;
    let client = RemotingClient::new(addr.to_string(), ClientConfig::default());
    let response = client
        .invoke(request(CODE_ASK_BACK, 1, &[]), WAIT)
        .await
        .expect("ask back");
    assert_eq!(
        response.response_code(),
        ResponseCode::RequestCodeNotSupported
    );
}
