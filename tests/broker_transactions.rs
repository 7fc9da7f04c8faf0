//! Black-box tests of transactional messages with our own client, with 1 and 2 shards: half
//! messages are invisible until committed; END_TRANSACTION commits exactly once, rolls back,
//! and answers unknown, mismatched and already-resolved offsets with a clear code and remark
//! while storing nothing; check-backs reach a live producer connection and are answered;
//! unanswered half messages are discarded to TRANS_CHECK_MAX_TIME_TOPIC; a kill -9 between
//! half message and commit loses nothing; the pending view counts what is open.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    assert_code, block_on, call, create_topic, eventually, pull_all, recording_client, send_v2,
    sent, Broker, Sent,
};
use rmq_net::codec::body::heartbeat::{HeartbeatData, ProducerData};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::send::SendHeaderForm;
use rmq_net::codec::header::transaction::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, TRANSACTION_COMMIT_TYPE,
    TRANSACTION_ROLLBACK_TYPE,
};
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::codec::message::{decode_all, keys, msg_id, sysflag, CrcCheck, Properties};
use rmq_net::conn::RemotingClient;
use rmq_net::{ExtFields, RemotingCommand};

const GROUP: &str = "TxGroup";
const QUEUES: i32 = 4;
const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";

fn half_properties(uniq: &str, group: &str) -> Properties {
    let mut props = common::properties(Some("TagT"), Some(uniq), Some(uniq));
    props.insert(keys::TRAN_MSG, "true").expect("insert");
    props.insert(keys::PGROUP, group).expect("insert");
    props
}

/// Sends a half message (TRAN_MSG, PGROUP, sysFlag PREPARED) with SEND_MESSAGE_V2.
async fn send_half(client: &RemotingClient, topic: &str, queue_id: i32, uniq: &str) -> Sent {
    let props = half_properties(uniq, GROUP);
    let mut header = common::send_header(topic, queue_id, &props);
    header.sys_flag = sysflag::TRANSACTION_PREPARED_TYPE;
    header.producer_group = GROUP.into();
    let body = format!("body-{uniq}");
    let request = RemotingCommand::request(
        RequestCode::SendMessageV2,
        header.to_ext_in(SendHeaderForm::V2),
    )
    .with_body(Bytes::from(body.clone()));
    sent(&call(client, request).await, body.as_bytes())
}

fn end_request(half: &Sent, group: &str, outcome: i32) -> RemotingCommand {
    let id = msg_id::decode(&half.header.msg_id).expect("offset msgId");
    end_request_at(half.header.queue_offset, id.1, group, outcome)
}

fn end_request_at(
    table_offset: i64,
    commit_log_offset: i64,
    group: &str,
    outcome: i32,
) -> RemotingCommand {
    let header = EndTransactionRequestHeader {
        producer_group: group.into(),
        tran_state_table_offset: table_offset,
        commit_log_offset,
        commit_or_rollback: outcome,
        from_transaction_check: false,
        msg_id: "id".into(),
        transaction_id: None,
        topic: None,
        broker_name: None,
    };
    RemotingCommand::request(RequestCode::EndTransaction, header.to_ext())
}

async fn bodies(client: &RemotingClient, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    for queue in 0..QUEUES {
        for record in pull_all(client, topic, queue).await {
            out.push(String::from_utf8_lossy(&record.body).into_owned());
        }
    }
    out.sort();
    out
}

async fn pending_stats(broker: &Broker) -> serde_json::Value {
    let client = broker.client();
    let reply = call(
        &client,
        RemotingCommand::request(RequestCode::TransactionPendingStats, ExtFields::new()),
    )
    .await;
    assert_code(&reply, ResponseCode::Success);
    serde_json::from_slice(&reply.body).expect("pending report JSON")
}

/// Polls the pending report until `done` holds (fails the test after `limit`).
async fn report_when(
    broker: &Broker,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let report = pending_stats(broker).await;
        if done(&report) {
            return report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached: {report}"
        );
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `rmq <args>` to completion; returns stdout, asserting success.
fn run_cli(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rmq");
    assert!(
        output.status.success(),
        "rmq {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn remark(reply: &RemotingCommand) -> String {
    reply.remark.clone().unwrap_or_default()
}

#[test]
fn commit_stores_once_and_rollback_never_with_one_and_two_shards() {
    for shards in [1, 2] {
        let broker = Broker::start(shards, "");
        let client = broker.client();
        block_on(async {
            let topic = format!("TxCommit{shards}");
            create_topic(&client, &topic, QUEUES, 6).await;
            let mut committed = Vec::new();
            for queue in 0..QUEUES {
                let uniq = format!("C{queue}");
                let half = send_half(&client, &topic, queue, &uniq).await;
                assert_eq!(
                    half.header.queue_id, queue,
                    "the requested queue is answered"
                );
                assert_eq!(half.header.transaction_id.as_deref(), Some(uniq.as_str()));
                committed.push((uniq, half));
            }
            let rolled = send_half(&client, &topic, 1, "R1").await;
            assert!(
                bodies(&client, &topic).await.is_empty(),
                "half messages are invisible"
            );
            for (_, half) in &committed {
                let reply = call(&client, end_request(half, GROUP, TRANSACTION_COMMIT_TYPE)).await;
                assert_code(&reply, ResponseCode::Success);
            }
            let reply = call(
                &client,
                end_request(&rolled, GROUP, TRANSACTION_ROLLBACK_TYPE),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            // Second outcomes are answered and ignored: no duplicate, no late commit.
            let again = call(
                &client,
                end_request(&committed[0].1, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&again, ResponseCode::Success);
            assert!(
                remark(&again).contains("already resolved"),
                "{}",
                remark(&again)
            );
            let late = call(
                &client,
                end_request(&rolled, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&late, ResponseCode::Success);
            assert!(
                remark(&late).contains("already resolved"),
                "{}",
                remark(&late)
            );
            let want: Vec<String> = (0..QUEUES).map(|q| format!("body-C{q}")).collect();
            assert_eq!(bodies(&client, &topic).await, want, "{shards} shard(s)");
            for (queue, (uniq, half)) in committed.iter().enumerate() {
                let records = pull_all(&client, &topic, i32::try_from(queue).expect("small")).await;
                assert_eq!(records.len(), 1, "committed into its real queue");
                let record = &records[0];
                assert_eq!(
                    sysflag::transaction_value(record.sys_flag),
                    sysflag::TRANSACTION_COMMIT_TYPE
                );
                let half_phys = msg_id::decode(&half.header.msg_id).expect("msgId").1;
                assert_eq!(record.prepared_transaction_offset, half_phys);
                assert_eq!(
                    record.properties.uniq_key(),
                    Some(uniq.as_str()),
                    "msgId kept"
                );
                assert_eq!(record.properties.get(keys::PGROUP), Some(GROUP));
                for gone in [keys::TRAN_MSG, keys::REAL_TOPIC, keys::REAL_QID] {
                    assert_eq!(record.properties.get(gone), None, "{gone} removed");
                }
                assert_eq!(record.properties.tags(), Some("TagT"));
            }
            let report = pending_stats(&broker).await;
            assert_eq!(report["total"], 0, "{report}");
        });
    }
}

#[test]
fn bad_end_transactions_get_a_clear_answer_and_store_nothing() {
    for shards in [1, 2] {
        let broker = Broker::start(shards, "transactionTimeOut=3600000\n");
        let client = broker.client();
        block_on(async {
            let topic = format!("TxErr{shards}");
            create_topic(&client, &topic, QUEUES, 6).await;
            let half = send_half(&client, &topic, 0, "E0").await;
            let phys = msg_id::decode(&half.header.msg_id).expect("msgId").1;
            let offset = half.header.queue_offset;

            let unknown = call(
                &client,
                end_request_at(offset + 1000, phys, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&unknown, ResponseCode::SystemError);
            assert!(
                remark(&unknown).starts_with("Find prepared transaction message failed"),
                "{}",
                remark(&unknown)
            );
            let negative = call(
                &client,
                end_request_at(-1, phys, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&negative, ResponseCode::SystemError);

            let wrong_group = call(
                &client,
                end_request(&half, "OtherGroup", TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&wrong_group, ResponseCode::SystemError);
            assert!(
                remark(&wrong_group).starts_with("The producer group wrong"),
                "{}",
                remark(&wrong_group)
            );
            let wrong_phys = call(
                &client,
                end_request_at(offset, phys + 1, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&wrong_phys, ResponseCode::SystemError);
            assert!(
                remark(&wrong_phys).starts_with("The commit log offset wrong"),
                "{}",
                remark(&wrong_phys)
            );
            let bad_outcome = call(&client, end_request(&half, GROUP, 5)).await;
            assert_code(&bad_outcome, ResponseCode::InvalidParameter);
            let unknown_state = call(&client, end_request(&half, GROUP, 0)).await;
            assert_code(&unknown_state, ResponseCode::Success);
            assert!(
                bodies(&client, &topic).await.is_empty(),
                "no refused END_TRANSACTION stored anything"
            );
            let report = pending_stats(&broker).await;
            assert_eq!(report["total"], 1, "still pending: {report}");
            assert_eq!(report["groups"][0]["producerGroup"], GROUP);
            let addr = broker.addr.to_string();
            let json = run_cli(&["admin", "trans-pending", "-b", &addr, "-g", GROUP, "--json"]);
            let cli: serde_json::Value = serde_json::from_str(&json).expect("CLI JSON");
            assert_eq!(cli["groups"][0]["count"], 1, "{json}");
            assert!(cli["groups"][0]["oldestAgeMs"].as_i64().expect("age") >= 0);
            let other = run_cli(&[
                "admin",
                "trans-pending",
                "-b",
                &addr,
                "-g",
                "Nobody",
                "--json",
            ]);
            let other: serde_json::Value = serde_json::from_str(&other).expect("CLI JSON");
            assert_eq!(other["total"], 0, "narrowed to one group");
            let table = run_cli(&["admin", "trans-pending", "-b", &addr]);
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with(GROUP) && l.split_whitespace().nth(1) == Some("1")),
                "{table}"
            );

            // Resolved by rollback, an outcome naming a wrong offset is still refused.
            let rollback = call(
                &client,
                end_request(&half, GROUP, TRANSACTION_ROLLBACK_TYPE),
            )
            .await;
            assert_code(&rollback, ResponseCode::Success);
            let stray = call(
                &client,
                end_request_at(offset, phys + 1, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&stray, ResponseCode::SystemError);
            let other_group = call(
                &client,
                end_request(&half, "OtherGroup", TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&other_group, ResponseCode::SystemError);
            assert!(bodies(&client, &topic).await.is_empty());

            // A transaction without a producer group could never be checked back: refused.
            let mut props = half_properties("B0", GROUP);
            props.remove(keys::PGROUP);
            let reply = send_v2(&client, &topic, 0, b"x", &props).await;
            assert_code(&reply, ResponseCode::MessageIllegal);
        });
    }
}

#[test]
fn reject_transaction_message_refuses_half_messages() {
    let broker = Broker::start(1, "rejectTransactionMessage=true\n");
    let client = broker.client();
    block_on(async {
        create_topic(&client, "TxRejected", 1, 6).await;
        let reply = send_v2(&client, "TxRejected", 0, b"x", &half_properties("X", GROUP)).await;
        assert_code(&reply, ResponseCode::NoPermission);
    });
}

fn producer_heartbeat(client_id: &str, group: &str) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.into(),
        producer_data_set: vec![ProducerData {
            group_name: group.into(),
        }],
        ..HeartbeatData::default()
    };
    RemotingCommand::request(RequestCode::HeartBeat, ExtFields::new()).with_body(data.to_json())
}

#[test]
fn a_check_back_reaches_the_producer_and_its_answer_commits() {
    for shards in [1, 2] {
        let broker = Broker::start(
            shards,
            "transactionTimeOut=300\ntransactionCheckInterval=300\ntransactionCheckMax=50\n",
        );
        let client = broker.client();
        let (producer, inbox) = recording_client(broker.addr);
        block_on(async {
            let topic = format!("TxCheck{shards}");
            create_topic(&client, &topic, QUEUES, 6).await;
            assert_code(
                &call(&producer, producer_heartbeat("tx-producer", GROUP)).await,
                ResponseCode::Success,
            );
            let half = send_half(&client, &topic, 2, "K2").await;
            let half_phys = msg_id::decode(&half.header.msg_id).expect("msgId").1;
            assert!(
                eventually(Duration::from_secs(20), || !inbox.borrow().is_empty()).await,
                "a check-back arrives"
            );
            let check = inbox.borrow()[0].clone();
            assert_eq!(check.request_code(), RequestCode::CheckTransactionState);
            assert!(check.is_oneway());
            let header =
                CheckTransactionStateRequestHeader::decode_command(&check).expect("header");
            assert_eq!(header.tran_state_table_offset, half.header.queue_offset);
            assert_eq!(header.commit_log_offset, half_phys);
            assert_eq!(header.msg_id.as_deref(), Some("K2"));
            assert_eq!(header.transaction_id.as_deref(), Some("K2"));
            assert_eq!(
                header.offset_msg_id.as_deref(),
                Some(half.header.msg_id.as_str())
            );
            let records = decode_all(&check.body, CrcCheck::Verify).expect("stored layout");
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].topic, topic, "the real topic");
            assert_eq!(records[0].queue_id, 2, "the real queue");
            assert_eq!(records[0].properties.get(keys::PGROUP), Some(GROUP));
            assert_eq!(records[0].body, Bytes::from_static(b"body-K2"));
            let mut answer = end_request_at(
                header.tran_state_table_offset,
                header.commit_log_offset,
                GROUP,
                TRANSACTION_COMMIT_TYPE,
            );
            answer.ext_fields.insert("fromTransactionCheck", "true");
            assert_code(&call(&producer, answer).await, ResponseCode::Success);
            assert_eq!(bodies(&client, &topic).await, vec!["body-K2".to_owned()]);
            assert_eq!(pending_stats(&broker).await["total"], 0);
        });
    }
}

#[test]
fn unanswered_half_messages_are_discarded_after_the_check_limit() {
    for shards in [1, 2] {
        let broker = Broker::start(
            shards,
            "transactionTimeOut=200\ntransactionCheckInterval=200\ntransactionCheckMax=3\n",
        );
        let client = broker.client();
        block_on(async {
            let topic = format!("TxDiscard{shards}");
            create_topic(&client, &topic, QUEUES, 6).await;
            // No producer of the group is connected: checks count, nobody answers.
            let half = send_half(&client, &topic, 3, "D3").await;
            let report = pending_stats(&broker).await;
            assert_eq!(report["total"], 1, "{report}");
            let report =
                report_when(&broker, Duration::from_secs(30), |r| r["discarded"] == 1).await;
            assert_eq!(report["total"], 0, "{report}");
            let discarded = pull_all(&client, CHECK_MAX_TOPIC, 0).await;
            assert_eq!(discarded.len(), 1);
            assert_eq!(discarded[0].body, Bytes::from_static(b"body-D3"));
            assert_eq!(
                discarded[0].properties.get(keys::REAL_TOPIC),
                Some(topic.as_str())
            );
            assert_eq!(
                discarded[0].properties.get(keys::TRANSACTION_CHECK_TIMES),
                Some("3")
            );
            assert!(bodies(&client, &topic).await.is_empty(), "never delivered");
            let late = call(&client, end_request(&half, GROUP, TRANSACTION_COMMIT_TYPE)).await;
            assert_code(&late, ResponseCode::Success);
            assert!(remark(&late).contains("already resolved"));
            assert!(
                bodies(&client, &topic).await.is_empty(),
                "a late commit is ignored"
            );
        });
    }
}

#[test]
fn check_immunity_property_delays_the_first_check_back() {
    let broker = Broker::start(
        1,
        "transactionTimeOut=100\ntransactionCheckInterval=100\ntransactionCheckMax=1\n",
    );
    let client = broker.client();
    block_on(async {
        create_topic(&client, "TxImmune", 1, 6).await;
        let mut props = half_properties("I0", GROUP);
        props
            .insert(keys::CHECK_IMMUNITY_TIME_IN_SECONDS, "3600")
            .expect("insert");
        let reply = send_v2(&client, "TxImmune", 0, b"immune", &props).await;
        assert_code(&reply, ResponseCode::Success);
        send_half(&client, "TxImmune", 0, "N0").await;
        let report = report_when(&broker, Duration::from_secs(20), |r| r["discarded"] == 1).await;
        assert_eq!(
            report["total"], 1,
            "the immune one is still pending: {report}"
        );
        assert_eq!(report["groups"][0]["maxCheckTimes"], 0, "{report}");
    });
}

#[test]
fn a_kill_between_half_message_and_commit_loses_nothing() {
    for shards in [1, 2] {
        let mut broker = Broker::start(
            shards,
            "flushDiskType=SYNC_FLUSH\ntransactionTimeOut=3600000\n",
        );
        let topic = format!("TxKill{shards}");
        let (open, rolled, committed) = block_on(async {
            let client = broker.client();
            create_topic(&client, &topic, QUEUES, 6).await;
            let open = send_half(&client, &topic, 0, "O0").await;
            let rolled = send_half(&client, &topic, 1, "R1").await;
            let committed = send_half(&client, &topic, 2, "C2").await;
            let reply = call(
                &client,
                end_request(&rolled, GROUP, TRANSACTION_ROLLBACK_TYPE),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            let reply = call(
                &client,
                end_request(&committed, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            (open, rolled, committed)
        });
        broker.kill_and_restart();
        block_on(async {
            let client = broker.client();
            let report =
                report_when(&broker, Duration::from_secs(20), |r| r["recovered"] == true).await;
            assert_eq!(report["total"], 1, "only the open one is pending: {report}");
            let reply = call(&client, end_request(&open, GROUP, TRANSACTION_COMMIT_TYPE)).await;
            assert_code(&reply, ResponseCode::Success);
            let again = call(
                &client,
                end_request(&committed, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert!(
                remark(&again).contains("already resolved"),
                "{}",
                remark(&again)
            );
            let late = call(
                &client,
                end_request(&rolled, GROUP, TRANSACTION_COMMIT_TYPE),
            )
            .await;
            assert!(
                remark(&late).contains("already resolved"),
                "{}",
                remark(&late)
            );
            assert_eq!(
                bodies(&client, &topic).await,
                vec!["body-C2".to_owned(), "body-O0".to_owned()],
                "{shards} shard(s)"
            );
            assert_eq!(pending_stats(&broker).await["total"], 0);
            // Half messages stay in their own topic.
            assert_eq!(pull_all(&client, HALF_TOPIC, 0).await.len(), 3);
        });
    }
}

#[test]
fn check_counts_survive_a_kill() {
    for shards in [1, 2] {
        let mut broker = Broker::start(
            shards,
            "transactionTimeOut=100\ntransactionCheckInterval=3000\ntransactionCheckMax=4\n",
        );
        let topic = format!("TxCount{shards}");
        block_on(async {
            let client = broker.client();
            create_topic(&client, &topic, QUEUES, 6).await;
            send_half(&client, &topic, 0, "N0").await;
            report_when(&broker, Duration::from_secs(20), |r| {
                r["groups"][0]["maxCheckTimes"] == 2
            })
            .await;
            // Check records are not waited for: let the ASYNC_FLUSH interval write them.
            compio::time::sleep(Duration::from_millis(1500)).await;
        });
        broker.kill_and_restart();
        block_on(async {
            let report =
                report_when(&broker, Duration::from_secs(20), |r| r["recovered"] == true).await;
            assert_eq!(report["total"], 1, "{report}");
            let checks = report["groups"][0]["maxCheckTimes"]
                .as_u64()
                .expect("checks");
            assert!(checks >= 2, "the count resumed, not restarted: {report}");
            let report =
                report_when(&broker, Duration::from_secs(20), |r| r["discarded"] == 1).await;
            assert_eq!(report["total"], 0, "{report}");
            let client = broker.client();
            let discarded = pull_all(&client, CHECK_MAX_TOPIC, 0).await;
            assert_eq!(discarded.len(), 1);
            assert_eq!(
                discarded[0].properties.get(keys::TRANSACTION_CHECK_TIMES),
                Some("4"),
                "transactionCheckMax checks in all, across the restart"
            );
        });
    }
}
