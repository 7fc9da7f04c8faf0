//! Black-box tests of VIEW_BROKER_STATS_DATA (315) and the `stats-all` columns it feeds, with
//! 1 and 2 shards: messages put into a topic are counted under `TOPIC_PUT_NUMS <topic>`,
//! messages a group pulls under `GROUP_GET_NUMS <topic>@<group>`, summed over the shards;
//! `rmq admin stats-all` prints them as `#InMsg24Hour` / `#OutMsg24Hour` (`#InTPS` from the
//! last complete minute); an item or key nobody counted is SYSTEM_ERROR "not exist", as Java.

mod common;

use std::process::Command;

use common::{
    assert_code, block_on, call, create_topic, properties, pulled, send_v2, update_offset_request,
    Broker, PullSpec,
};
use rmq_net::codec::body::broker_stats::BrokerStatsData;
use rmq_net::codec::body::JsonBody as _;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::ViewBrokerStatsDataRequestHeader;
use rmq_net::codec::header::CommandHeader as _;
use rmq_net::RemotingCommand;
use serde_json::Value;

fn admin(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rmq"))
        .arg("admin")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run rmq admin");
    assert!(
        output.status.success(),
        "rmq admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 stdout")
}

fn view_request(name: &str, key: &str) -> RemotingCommand {
    let header = ViewBrokerStatsDataRequestHeader {
        stats_name: name.into(),
        stats_key: key.into(),
    };
    RemotingCommand::request(RequestCode::ViewBrokerStatsData, header.to_ext())
}

fn scenario(shards: usize) {
    let broker = Broker::start(shards, "");
    let client = broker.client();
    let (topic, group) = ("StatsAllT", "StatsAllG");
    let pulled_count = block_on(async {
        // 4 queues so both shards own some when there are 2.
        create_topic(&client, topic, 4, 6).await;
        let props = properties(None, None, None);
        for index in 0..7 {
            let reply = send_v2(&client, topic, index % 4, b"m", &props).await;
            assert_code(&reply, ResponseCode::Success);
        }
        // The group pulls queues 0 and 1 (4 messages) and commits there.
        let mut got = 0;
        for queue_id in 0..2 {
            let spec = PullSpec {
                group,
                ..PullSpec::new(topic, queue_id, 0)
            };
            let reply = pulled(&call(&client, spec.request()).await);
            got += reply.records.len();
            let offset = i64::try_from(reply.records.len()).expect("small");
            assert_code(
                &call(
                    &client,
                    update_offset_request(group, topic, queue_id, offset),
                )
                .await,
                ResponseCode::Success,
            );
        }
        got
    });
    assert_eq!(pulled_count, 4, "queues 0 and 1 hold 2 messages each");

    let (put, get, unknown, bad_name) = block_on(async {
        let put = call(&client, view_request("TOPIC_PUT_NUMS", topic)).await;
        let get = call(
            &client,
            view_request("GROUP_GET_NUMS", &format!("{topic}@{group}")),
        )
        .await;
        let unknown = call(&client, view_request("TOPIC_PUT_NUMS", "NoSuchTopic")).await;
        let bad_name = call(&client, view_request("NO_SUCH_ITEM", topic)).await;
        (put, get, unknown, bad_name)
    });
    assert_code(&put, ResponseCode::Success);
    let put = BrokerStatsData::from_json(&put.body).expect("BrokerStatsData");
    assert_eq!((put.stats_day.sum, put.stats_hour.sum), (7, 7), "{put:?}");
    assert!(
        (put.stats_day.avgpt - 1.0).abs() < 1e-9,
        "one message per send: {put:?}"
    );
    assert!((put.stats_day.tps - 7.0 / 86_400.0).abs() < 1e-12);
    assert_code(&get, ResponseCode::Success);
    let get = BrokerStatsData::from_json(&get.body).expect("BrokerStatsData");
    assert_eq!(get.stats_day.sum, 4, "{get:?}");
    assert!(
        (get.stats_day.avgpt - 2.0).abs() < 1e-9,
        "2 per pull: {get:?}"
    );
    assert_code(&unknown, ResponseCode::SystemError);
    assert_eq!(
        unknown.remark.as_deref(),
        Some("The stats <TOPIC_PUT_NUMS> <NoSuchTopic> not exist")
    );
    assert_code(&bad_name, ResponseCode::SystemError);

    let ns = broker.namesrv.to_string();
    // stats-all lists the broker's subscription groups (a bare pull creates none).
    admin(&["update-sub-group", "-n", &ns, "-g", group]);
    let doc: Value = serde_json::from_str(&admin(&["stats-all", "-n", &ns, "-t", topic, "--json"]))
        .expect("stats-all json");
    let row = doc
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["consumerGroup"] == group)
        .unwrap_or_else(|| panic!("a {group} row: {doc}"))
        .clone();
    assert_eq!(row["inMsg24Hour"], 7, "{row}");
    assert_eq!(row["outMsg24Hour"], 4, "{row}");
    assert!(row["inTps"].as_f64().is_some(), "{row}");
    let table = admin(&["stats-all", "-n", &ns, "-t", topic]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "#Topic",
            "#Consumer",
            "Group",
            "#Accumulation",
            "#InTPS",
            "#OutTPS",
            "#InMsg24Hour",
            "#OutMsg24Hour",
            "#Stored"
        ]
    );
    let cells: Vec<&str> = table
        .lines()
        .find(|l| l.contains(group))
        .expect("group line")
        .split_whitespace()
        .collect();
    assert_eq!(cells[0], topic);
    assert_eq!(cells[5..], ["7", "4", "7"], "{table}");
}

#[test]
fn view_broker_stats_data_and_stats_all_one_shard() {
    scenario(1);
}

#[test]
fn view_broker_stats_data_and_stats_all_two_shards() {
    scenario(2);
}
