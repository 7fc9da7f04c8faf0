//! Black-box tests of the operator commands of `rmq admin` (mqadmin's names in parentheses in
//! `--help`) against a running standalone NameServer + broker, with 1 and 2 shards: each
//! command's table output and its `--json` output (parsed), and its effect on the broker:
//! send-message / query-msg-by-id / -by-key / -by-unique-key / consume-message round trips,
//! update-broker-config changing what get-broker-config answers and what sends get,
//! wipe-write-perm / add-write-perm changing the route's perm, clean-expired-cq, subscription
//! groups,
//! consumer and producer connections, stats-all, topic-cluster-list, and `--json` on the
//! first set of commands.

mod common;

use std::process::{Command, Output};

use common::{
    assert_code, block_on, call, create_topic, heartbeat_request, properties, send_v2,
    update_offset_request, Broker, BROKER_NAME, CLUSTER_NAME,
};
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::{ExtFields, RemotingCommand};
use serde_json::Value;

fn rmq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmq"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run rmq")
}

/// `rmq admin <args> -n <namesrv>` (when `namesrv`), asserting success; stdout.
fn admin(args: &[&str]) -> String {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    let output = rmq(&full);
    assert!(
        output.status.success(),
        "rmq {full:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 stdout")
}

/// [`admin`] with `--json`, parsed.
fn admin_json(args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.push("--json");
    let text = admin(&full);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} --json: {e}: {text}"))
}

/// `rmq admin <args>` that must fail; its stderr.
fn admin_fails(args: &[&str]) -> String {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    let output = rmq(&full);
    assert!(!output.status.success(), "rmq {full:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whitespace-separated cells of each line after the header.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn queue_perms(namesrv: &str, topic: &str) -> Vec<i64> {
    let route = admin_json(&["topic-route", "-n", namesrv, "-t", topic]);
    route["queueDatas"]
        .as_array()
        .expect("queueDatas")
        .iter()
        .map(|q| q["perm"].as_i64().expect("perm"))
        .collect()
}

fn check_messages(shards: usize) {
    let broker = Broker::start(shards, "");
    let ns = broker.namesrv.to_string();
    let ns = ns.as_str();
    let created = admin_json(&["update-topic", "-n", ns, "-t", "OpsT", "-r", "4", "-w", "4"]);
    assert_eq!(created["brokers"][0], broker.addr.to_string());

    // send-message: table and JSON; queue 3 lands on shard 1 with two shards.
    let table = admin(&[
        "send-message",
        "-n",
        ns,
        "-t",
        "OpsT",
        "-p",
        "hello-ops",
        "-k",
        "order-7",
        "-c",
        "TagA",
    ]);
    assert!(table.starts_with("#Broker Name"), "{table}");
    let first = &rows(&table)[0];
    assert_eq!(first[..3], [BROKER_NAME, "0", "SEND_OK"]);
    let sent = admin_json(&[
        "send-message",
        "-n",
        ns,
        "-t",
        "OpsT",
        "-p",
        "second body",
        "-k",
        "order-7",
        "-i",
        "3",
    ]);
    assert_eq!(sent["sendResult"], "SEND_OK");
    assert_eq!(sent["queueId"], 3);
    let offset_id = sent["offsetMsgId"]
        .as_str()
        .expect("offsetMsgId")
        .to_owned();
    let uniq = sent["msgId"].as_str().expect("msgId").to_owned();

    // query-msg-by-id prints properties and body, and saves the body.
    let dir = common::TempDir::new("ops-body");
    let body_file = dir.path().join("body.bin");
    let text = admin(&[
        "query-msg-by-id",
        "-i",
        &offset_id,
        "--body-file",
        body_file.to_str().expect("utf-8"),
    ]);
    assert!(
        text.contains(&format!("OffsetID:            {offset_id}\n")),
        "{text}"
    );
    assert!(text.contains("Topic:               OpsT\n"), "{text}");
    assert!(text.contains("Keys:                [order-7]\n"), "{text}");
    assert!(text.contains(&format!("UNIQ_KEY={uniq}")), "{text}");
    assert!(
        text.contains("Message Body:        second body\n"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&body_file).expect("body saved"),
        b"second body"
    );
    let viewed = admin_json(&["query-msg-by-id", "-i", &offset_id]);
    assert_eq!(viewed["body"], "second body");
    assert_eq!(viewed["queueId"], 3);
    assert_eq!(viewed["msgId"], uniq.as_str());
    assert!(admin_fails(&["query-msg-by-id", "-i", "nothex"]).contains("not an offset msgId"));

    // query-msg-by-key finds both (the index is built right after the append: retry briefly).
    let mut found = Value::Null;
    for _ in 0..50 {
        found = admin_json(&["query-msg-by-key", "-n", ns, "-t", "OpsT", "-k", "order-7"]);
        if found.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let bodies: std::collections::BTreeSet<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["hello-ops", "second body"].into());
    let table = admin(&["query-msg-by-key", "-n", ns, "-t", "OpsT", "-k", "order-7"]);
    assert!(table.starts_with("#Message ID"), "{table}");
    assert_eq!(rows(&table).len(), 2, "{table}");
    assert!(rows(&table)
        .iter()
        .any(|r| r[0] == uniq && r[1] == "3" && r[2] == "0"));

    let by_uniq = admin(&[
        "query-msg-by-unique-key",
        "-n",
        ns,
        "-t",
        "OpsT",
        "-i",
        &uniq,
    ]);
    assert!(
        by_uniq.contains("Message Body:        second body\n"),
        "{by_uniq}"
    );
    let by_uniq = admin_json(&[
        "query-msg-by-unique-key",
        "-n",
        ns,
        "-t",
        "OpsT",
        "-i",
        &uniq,
    ]);
    assert_eq!(by_uniq[0]["offsetMsgId"], offset_id.as_str());

    // consume-message pulls both without committing anything.
    let consumed = admin_json(&["consume-message", "-n", ns, "-t", "OpsT"]);
    let consumed = consumed.as_array().expect("array");
    assert_eq!(consumed.len(), 2);
    let table = admin(&["consume-message", "-n", ns, "-t", "OpsT", "-i", "3"]);
    assert!(table.contains("BODY: second body\n"), "{table}");
    assert!(table.ends_with("Consume ok: 1 message(s)\n"), "{table}");
    let capped = admin_json(&["consume-message", "-n", ns, "-t", "OpsT", "-c", "1"]);
    assert_eq!(capped.as_array().expect("array").len(), 1);
    let empty = admin_json(&[
        "consume-message",
        "-n",
        ns,
        "-t",
        "OpsT",
        "-i",
        "3",
        "-o",
        "1",
    ]);
    assert_eq!(empty, Value::Array(Vec::new()), "nothing past the end");

    // topic-cluster-list.
    assert_eq!(
        admin(&["topic-cluster-list", "-n", ns, "-t", "OpsT"]),
        format!("{CLUSTER_NAME}\n")
    );
    assert_eq!(
        admin_json(&["topic-cluster-list", "-n", ns, "-t", "OpsT"]),
        serde_json::json!([CLUSTER_NAME])
    );

    // --json on the first set of commands.
    let topics = admin_json(&["topic-list", "-n", ns]);
    assert!(topics
        .as_array()
        .expect("array")
        .contains(&Value::from("OpsT")));
    let status = admin_json(&["topic-status", "-n", ns, "-t", "OpsT"]);
    let max_sum: i64 = status
        .as_array()
        .expect("array")
        .iter()
        .map(|q| q["maxOffset"].as_i64().expect("maxOffset"))
        .sum();
    assert_eq!(max_sum, 2);
    let clusters = admin_json(&["cluster-list", "-n", ns]);
    assert_eq!(clusters[0]["brokerName"], BROKER_NAME);
    assert_eq!(
        clusters[0]["runtimeInfo"]["shardCount"],
        shards.to_string().as_str()
    );
    let status = admin_json(&["broker-status", "-b", &broker.addr.to_string()]);
    assert_eq!(status["msgPutTotalTodayNow"], "2");
    let deleted = admin_json(&["delete-topic", "-n", ns, "-t", "OpsT"]);
    assert_eq!(deleted["topic"], "OpsT");
}

#[test]
fn messages_one_shard() {
    check_messages(1);
}

#[test]
fn messages_two_shards() {
    check_messages(2);
}

fn send_code(broker: &Broker, topic: &str, queue_id: i32) -> ResponseCode {
    block_on(async {
        let client = broker.client();
        let props = properties(None, None, None);
        send_v2(&client, topic, queue_id, b"x", &props)
            .await
            .response_code()
    })
}

fn check_broker_config_and_write_perm(shards: usize) {
    let broker = Broker::start(shards, "");
    let ns = broker.namesrv.to_string();
    let ns = ns.as_str();
    let addr = broker.addr.to_string();
    block_on(async { create_topic(&broker.client(), "PermT", 2, 6).await });
    let config = admin_json(&["get-broker-config", "-n", ns]);
    assert_eq!(config[&addr]["brokerPermission"], "6");
    let table = admin(&["get-broker-config", "-b", &addr]);
    assert!(
        table.starts_with(&format!("============{addr}============\n")),
        "{table}"
    );
    assert!(
        table.contains(&format!("{:<50}=  6\n", "brokerPermission")),
        "{table}"
    );

    // Read-only at the broker: every shard refuses sends (queue 1 is shard 1's with two
    // shards) and the route follows at once.
    let updated = admin_json(&[
        "update-broker-config",
        "-b",
        &addr,
        "-k",
        "brokerPermission",
        "-v",
        "4",
    ]);
    assert_eq!(updated["brokers"][0], addr.as_str());
    let config = admin_json(&["get-broker-config", "-b", &addr]);
    assert_eq!(config[&addr]["brokerPermission"], "4");
    for queue_id in 0..2 {
        assert_eq!(
            send_code(&broker, "PermT", queue_id),
            ResponseCode::NoPermission
        );
    }
    assert_eq!(queue_perms(ns, "PermT"), [4]);
    let refused = admin_fails(&["send-message", "-n", ns, "-t", "PermT", "-p", "x"]);
    assert!(refused.contains("no writable queue"), "{refused}");

    // Keys that cannot change at run time are refused by name; bad values too; nothing changes.
    let refused = admin_fails(&[
        "update-broker-config",
        "-b",
        &addr,
        "-k",
        "listenPort",
        "-v",
        "1",
    ]);
    assert!(
        refused.contains("NoPermission") && refused.contains("listenPort"),
        "{refused}"
    );
    let refused = admin_fails(&[
        "update-broker-config",
        "-n",
        ns,
        "-k",
        "brokerPermission",
        "-v",
        "9",
    ]);
    assert!(
        refused.contains("InvalidParameter") && refused.contains("brokerPermission"),
        "{refused}"
    );
    assert_eq!(
        admin_json(&["get-broker-config", "-b", &addr])[&addr]["brokerPermission"],
        "4"
    );

    let table = admin(&[
        "update-broker-config",
        "-n",
        ns,
        "-k",
        "brokerPermission",
        "-v",
        "6",
    ]);
    assert_eq!(table, format!("update broker config success, {addr}\n"));
    assert_eq!(send_code(&broker, "PermT", 1), ResponseCode::Success);
    assert_eq!(queue_perms(ns, "PermT"), [6]);
    admin(&[
        "update-broker-config",
        "-n",
        ns,
        "-k",
        "slaveReadEnable",
        "-v",
        "true",
    ]);
    assert_eq!(
        admin_json(&["get-broker-config", "-b", &addr])[&addr]["slaveReadEnable"],
        "true"
    );

    // NameServer-side drain: the route loses write perm (the broker itself still accepts),
    // producers that follow routes find no writable queue, until add-write-perm.
    let wiped = admin(&["wipe-write-perm", "-n", ns, "-b", BROKER_NAME]);
    assert!(
        wiped.starts_with(&format!(
            "wipe write perm of broker[{BROKER_NAME}] in name server[{ns}] OK, "
        )),
        "{wiped}"
    );
    let count: i64 = wiped
        .trim()
        .rsplit(' ')
        .next()
        .expect("count")
        .parse()
        .expect("number");
    assert!(count >= 1, "{wiped}");
    assert_eq!(queue_perms(ns, "PermT"), [4]);
    let refused = admin_fails(&["send-message", "-n", ns, "-t", "PermT", "-p", "x"]);
    assert!(refused.contains("no writable queue"), "{refused}");
    let added = admin_json(&["add-write-perm", "-n", ns, "-b", BROKER_NAME]);
    assert_eq!(added["results"][0]["topicCount"], count);
    assert_eq!(queue_perms(ns, "PermT"), [6]);
    let sent = admin_json(&["send-message", "-n", ns, "-t", "PermT", "-p", "back"]);
    assert_eq!(sent["sendResult"], "SEND_OK");

    // clean-expired-cq: every shard answers; nothing has expired, so no offset moves.
    let before = admin_json(&["topic-status", "-n", ns, "-t", "PermT"]);
    let table = admin(&["clean-expired-cq", "-n", ns]);
    assert!(
        table.starts_with(&format!(
            "{addr}: success (shard0: commitLogMin=0 queuesRaised=0"
        )),
        "{table}"
    );
    let cleaned = admin_json(&["clean-expired-cq", "-b", &addr]);
    let remark = cleaned[&addr].as_str().expect("remark");
    assert_eq!(remark.matches("queuesRaised=0").count(), shards, "{remark}");
    let after = admin_json(&["topic-status", "-n", ns, "-t", "PermT"]);
    assert_eq!(before, after);
}

#[test]
fn broker_config_and_write_perm_one_shard() {
    check_broker_config_and_write_perm(1);
}

#[test]
fn broker_config_and_write_perm_two_shards() {
    check_broker_config_and_write_perm(2);
}

fn check_groups_connections_and_stats(shards: usize) {
    let broker = Broker::start(shards, "");
    let ns = broker.namesrv.to_string();
    let ns = ns.as_str();
    let addr = broker.addr.to_string();

    let made = admin_json(&[
        "update-sub-group",
        "-n",
        ns,
        "-g",
        "OpsGroup",
        "--retry-max-times",
        "3",
    ]);
    assert_eq!(made["brokers"][0], addr.as_str());
    assert_eq!(made["config"]["retryMaxTimes"], 3);
    let groups = |client: &rmq_net::conn::RemotingClient| {
        let client = client.clone();
        block_on(async move {
            let reply = call(
                &client,
                RemotingCommand::request(
                    RequestCode::GetAllSubscriptionGroupConfig,
                    ExtFields::new(),
                ),
            )
            .await;
            assert_code(&reply, ResponseCode::Success);
            rmq::tables::groups::SubscriptionGroupWrapper::from_json(&reply.body)
                .expect("groups")
                .subscription_group_table
        })
    };
    let client = broker.client();
    assert_eq!(groups(&client)["OpsGroup"].retry_max_times, 3);
    let table = admin(&["update-sub-group", "-b", &addr, "-g", "OpsGroup2"]);
    assert!(
        table.starts_with(&format!("create subscription group to {addr} success.\n")),
        "{table}"
    );
    let table = admin(&["delete-sub-group", "-n", ns, "-g", "OpsGroup2"]);
    assert_eq!(
        table,
        format!("delete subscription group [OpsGroup2] from broker [{addr}] success.\n")
    );
    assert!(!groups(&client).contains_key("OpsGroup2"));

    // A consumer of OpsGroup on StatsT, 5 messages over 2 queues, 2 consumed on queue 0. The
    // heartbeat's connection lives as long as this runtime: the CLI runs inside it.
    block_on(async {
        create_topic(&client, "StatsT", 2, 6).await;
        let props = properties(None, None, None);
        for index in 0..5 {
            let reply = send_v2(&client, "StatsT", index % 2, b"m", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
        assert_code(
            &call(&client, update_offset_request("OpsGroup", "StatsT", 0, 2)).await,
            ResponseCode::Success,
        );
        assert_code(
            &call(
                &client,
                heartbeat_request("ops-client@1", "OpsGroup", "StatsT", "TagA || TagB"),
            )
            .await,
            ResponseCode::Success,
        );
        check_connections(ns);
    });
    // stats-all: 3 on queue 0 (2 consumed: 1 left) and 2 on queue 1 (none consumed: 2 left
    // once the group has an offset there; without one the broker counts it from 0).
    let stats = admin_json(&["stats-all", "-n", ns, "-t", "StatsT"]);
    let stats = stats.as_array().expect("array");
    let row = stats
        .iter()
        .find(|r| r["consumerGroup"] == "OpsGroup")
        .unwrap_or_else(|| panic!("OpsGroup row: {stats:?}"));
    assert_eq!(row["stored"], 5);
    assert_eq!(row["accumulation"], 3);
    let table = admin(&["stats-all", "-n", ns, "-t", "StatsT"]);
    assert!(table.starts_with("#Topic"), "{table}");
    assert!(
        rows(&table)
            .iter()
            .any(|r| r[..3] == ["StatsT", "OpsGroup", "3"]),
        "{table}"
    );
    let progress = admin_json(&[
        "consumer-progress",
        "-n",
        ns,
        "-g",
        "OpsGroup",
        "-t",
        "StatsT",
    ]);
    assert_eq!(progress["diffTotal"], 3);
    drop(client);
}

/// consumer-connection and producer-connection of the client `ops-client@1` (consumer of
/// OpsGroup on StatsT, producer of CLIENT_INNER_PRODUCER).
fn check_connections(ns: &str) {
    let cc = admin_json(&["consumer-connection", "-n", ns, "-g", "OpsGroup"]);
    assert_eq!(cc["connectionSet"][0]["clientId"], "ops-client@1");
    assert_eq!(
        cc["subscriptionTable"]["StatsT"]["subString"],
        "TagA || TagB"
    );
    let table = admin(&["consumer-connection", "-n", ns, "-g", "OpsGroup"]);
    assert!(table.starts_with("#Index"), "{table}");
    assert_eq!(rows(&table)[0][..2], ["001", "ops-client@1"]);
    // Our client sends version 479: mqadmin's name for it.
    assert_eq!(rows(&table)[0].last().map(String::as_str), Some("V5_3_3"));
    assert!(
        table.contains("Below is subscription:\n001  Topic: StatsT"),
        "{table}"
    );
    assert!(table.contains("MessageModel: CLUSTERING\n"), "{table}");
    let offline = admin_fails(&["consumer-connection", "-n", ns, "-g", "NobodyHere"]);
    assert!(offline.contains("ConsumerNotOnline"), "{offline}");
    let pc = admin_json(&[
        "producer-connection",
        "-n",
        ns,
        "-g",
        "CLIENT_INNER_PRODUCER",
        "-t",
        "StatsT",
    ]);
    assert_eq!(pc["connectionSet"][0]["clientId"], "ops-client@1");
    let table = admin(&[
        "producer-connection",
        "-n",
        ns,
        "-g",
        "CLIENT_INNER_PRODUCER",
        "-t",
        "StatsT",
    ]);
    assert_eq!(rows(&table)[0][..2], ["0001", "ops-client@1"]);
}

#[test]
fn groups_connections_and_stats_one_shard() {
    check_groups_connections_and_stats(1);
}

#[test]
fn groups_connections_and_stats_two_shards() {
    check_groups_connections_and_stats(2);
}

/// get-broker-config and update-broker-config with a cluster act on masters and slaves (as
/// mqadmin's do).
#[test]
fn broker_config_reaches_slaves() {
    let master = Broker::start(1, "");
    let ns = master.namesrv.to_string();
    let dir = common::TempDir::new("ops-slave");
    let slave = common::start_slave(&dir, master.namesrv, 1, 1, "", None);
    let slave_addr = slave.addr("broker").to_string();
    let master_addr = master.addr.to_string();
    let mut configs = Value::Null;
    for _ in 0..50 {
        configs = admin_json(&["get-broker-config", "-n", &ns, "-c", CLUSTER_NAME]);
        if configs.get(&slave_addr).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(configs[&master_addr]["brokerRole"], "ASYNC_MASTER");
    assert_eq!(configs[&slave_addr]["brokerRole"], "SLAVE");
    let updated = admin_json(&[
        "update-broker-config",
        "-n",
        &ns,
        "-c",
        CLUSTER_NAME,
        "-k",
        "slaveReadEnable",
        "-v",
        "true",
    ]);
    assert_eq!(updated["brokers"].as_array().expect("brokers").len(), 2);
    let configs = admin_json(&["get-broker-config", "-n", &ns]);
    for addr in [&master_addr, &slave_addr] {
        assert_eq!(configs[addr]["slaveReadEnable"], "true", "{addr}");
    }
}
