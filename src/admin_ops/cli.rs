//! The clap surface of the operator commands ([`OpsCommand`], flattened into `rmq admin`)
//! and their runner, which prints mqadmin's table or, with `--json`, one JSON document on
//! stdout. Flags follow mqadmin's letters where they do not clash with `rmq admin`'s
//! (`-n` NameServer, `-b` broker, `-c` cluster, `-g` group, `-t` topic).
//! Must never: print anything but the result on stdout (scripts parse it).

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{json as js, render, OpsError, Target};
use crate::tables::groups::SubscriptionGroupConfig;

/// Where a broker-side command goes.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// NameServer address.
    #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// One broker address (default: every master of the cluster).
    #[arg(short = 'b', long)]
    pub broker: Option<String>,
    /// Cluster (default: every cluster).
    #[arg(short = 'c', long)]
    pub cluster: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            namesrv: self.namesrv.clone(),
            broker: self.broker.clone(),
            cluster: self.cluster.clone(),
        }
    }
}

/// The operator commands.
#[derive(Debug, Clone, Subcommand)]
pub enum OpsCommand {
    /// Create or update a subscription group (mqadmin updateSubGroup).
    UpdateSubGroup {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Group.
        #[arg(short = 'g', long)]
        group: String,
        /// Whether the group may consume.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        consume_enable: bool,
        /// Whether a new group starts from the min offset.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        consume_from_min_enable: bool,
        /// Whether broadcasting consumption is allowed.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        consume_broadcast_enable: bool,
        /// Queues of the group's %RETRY% topic.
        #[arg(long, default_value_t = 1)]
        retry_queue_nums: i32,
        /// Retries before a message goes to %DLQ%.
        #[arg(long, default_value_t = 16)]
        retry_max_times: i32,
        /// Broker id consumers pull from.
        #[arg(long, default_value_t = 0)]
        broker_id: i64,
        /// Broker id suggested when consumption is slow.
        #[arg(long, default_value_t = 1)]
        which_broker_when_consume_slowly: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a subscription group (mqadmin deleteSubGroup).
    DeleteSubGroup {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Group.
        #[arg(short = 'g', long)]
        group: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A consumer group's connections and subscriptions (mqadmin consumerConnection).
    ConsumerConnection {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A producer group's connections on a topic's brokers (mqadmin producerConnection).
    ProducerConnection {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Producer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Topic the group sends to.
        #[arg(short = 't', long)]
        topic: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One message by its offset msgId (mqadmin queryMsgById).
    QueryMsgById {
        /// Offset msgId (`send-message` prints it as offsetMsgId with --json).
        #[arg(short = 'i', long = "msg-id")]
        msg_id: String,
        /// Save the body to this file.
        #[arg(long)]
        body_file: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Messages of a topic by KEYS (mqadmin queryMsgByKey).
    QueryMsgByKey {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Key.
        #[arg(short = 'k', long)]
        key: String,
        /// Most messages per broker.
        #[arg(long, default_value_t = super::QUERY_MAX_NUM_DEFAULT)]
        max_num: i32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A message by its UNIQ_KEY, the client msgId (mqadmin queryMsgByUniqueKey).
    QueryMsgByUniqueKey {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// The UNIQ_KEY.
        #[arg(short = 'i', long = "msg-id")]
        msg_id: String,
        /// Save the (first) body to this file.
        #[arg(long)]
        body_file: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The send and consume traces of a message (mqadmin queryMsgTraceById): trace records
    /// clients with tracing on sent to the trace topic, found by the message's msgId.
    #[command(alias = "query-msg-trace-by-id")]
    QueryMsgTrace {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// The traced message's msgId (its UNIQ_KEY, as the client's send result names it).
        #[arg(short = 'i', long = "msg-id")]
        msg_id: String,
        /// The trace topic (the broker's msgTraceTopicName).
        #[arg(short = 't', long = "trace-topic", default_value = crate::tables::topics::TRACE_TOPIC)]
        trace_topic: String,
        /// Most trace messages per broker.
        #[arg(long, default_value_t = super::QUERY_MAX_NUM_DEFAULT)]
        max_num: i32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Broker configuration (mqadmin getBrokerConfig).
    GetBrokerConfig {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a broker setting at run time (mqadmin updateBrokerConfig): brokerPermission or
    /// slaveReadEnable; other keys are refused with the key named (set them in broker.conf).
    UpdateBrokerConfig {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Key.
        #[arg(short = 'k', long)]
        key: String,
        /// Value.
        #[arg(short = 'v', long)]
        value: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per topic and consumer group: accumulation and consume TPS (mqadmin statsAll).
    StatsAll {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Only this topic.
        #[arg(short = 't', long)]
        topic: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove consume-queue and index files that only point at deleted CommitLog records, now
    /// rather than at the next retention pass; offsets are kept (mqadmin cleanExpiredCQ).
    CleanExpiredCq {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The clusters a topic is on (mqadmin topicClusterList).
    TopicClusterList {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send one message (mqadmin sendMessage).
    SendMessage {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Body.
        #[arg(short = 'p', long)]
        body: String,
        /// KEYS.
        #[arg(short = 'k', long)]
        keys: Option<String>,
        /// TAGS.
        #[arg(short = 'c', long)]
        tags: Option<String>,
        /// Broker name.
        #[arg(short = 'b', long = "broker-name")]
        broker_name: Option<String>,
        /// Queue id (default 0).
        #[arg(short = 'i', long = "queue-id")]
        queue_id: Option<i32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pull and print messages of a topic; commits no offset (mqadmin consumeMessage).
    ConsumeMessage {
        /// NameServer address.
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Broker name.
        #[arg(short = 'b', long = "broker-name")]
        broker_name: Option<String>,
        /// Queue id (default: every queue).
        #[arg(short = 'i', long = "queue-id")]
        queue_id: Option<i32>,
        /// Start offset in each queue (default: its min offset).
        #[arg(short = 'o', long)]
        offset: Option<i64>,
        /// Most messages to print.
        #[arg(short = 'c', long = "count", default_value_t = 128)]
        count: usize,
        /// Group to pull as.
        #[arg(short = 'g', long, default_value = super::TOOLS_CONSUMER_GROUP)]
        group: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drain a broker before maintenance: remove write permission from its queues in the
    /// NameServer routes, so producers stop choosing it (mqadmin wipeWritePerm).
    WipeWritePerm {
        /// NameServer addresses, `;`-separated (each is told).
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Broker name.
        #[arg(short = 'b', long = "broker-name")]
        broker_name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a broker's queues write permission back after wipe-write-perm (mqadmin
    /// addWritePerm).
    AddWritePerm {
        /// NameServer addresses, `;`-separated (each is told).
        #[arg(short = 'n', long = "namesrv", default_value = "127.0.0.1:9876")]
        namesrv: String,
        /// Broker name.
        #[arg(short = 'b', long = "broker-name")]
        broker_name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value prints")
    );
}

fn save_body(path: &std::path::Path, body: &[u8]) -> Result<String, OpsError> {
    std::fs::write(path, body).map_err(|source| OpsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path.display().to_string())
}

/// Runs one operator command, printing its result.
///
/// # Errors
/// [`OpsError`].
#[expect(
    clippy::too_many_lines,
    reason = "one flat match over the commands reads better than one function per arm"
)]
pub async fn run(command: OpsCommand) -> Result<(), OpsError> {
    match command {
        OpsCommand::UpdateSubGroup {
            target,
            group,
            consume_enable,
            consume_from_min_enable,
            consume_broadcast_enable,
            retry_queue_nums,
            retry_max_times,
            broker_id,
            which_broker_when_consume_slowly,
            json,
        } => {
            let config = SubscriptionGroupConfig {
                consume_enable,
                consume_from_min_enable,
                consume_broadcast_enable,
                retry_queue_nums,
                retry_max_times,
                broker_id,
                which_broker_when_consume_slowly,
                ..SubscriptionGroupConfig::new(group.clone())
            };
            let brokers = super::update_sub_group(&target.target(), &config).await?;
            if json {
                print_json(&json!({"brokers": brokers, "config": js::to_value(&config)}));
            } else {
                for broker in &brokers {
                    println!("create subscription group to {broker} success.");
                }
                println!("{}", js::to_value(&config));
            }
        }
        OpsCommand::DeleteSubGroup {
            target,
            group,
            json,
        } => {
            let brokers = super::delete_sub_group(&target.target(), &group).await?;
            if json {
                print_json(&json!({"group": group, "brokers": brokers}));
            } else {
                for broker in &brokers {
                    println!("delete subscription group [{group}] from broker [{broker}] success.");
                }
            }
        }
        OpsCommand::ConsumerConnection {
            target,
            group,
            json,
        } => {
            let cc = super::consumer_connection(&target.target(), &group).await?;
            if json {
                print_json(&js::to_value(&cc));
            } else {
                print!("{}", render::consumer_connection(&cc));
            }
        }
        OpsCommand::ProducerConnection {
            namesrv,
            group,
            topic,
            json,
        } => {
            let pc = super::producer_connection(&namesrv, &group, &topic).await?;
            if json {
                print_json(&js::to_value(&pc));
            } else {
                print!("{}", render::producer_connection(&pc));
            }
        }
        OpsCommand::QueryMsgById {
            msg_id,
            body_file,
            json,
        } => {
            let record = super::query_msg_by_id(&msg_id).await?;
            let path = match &body_file {
                Some(path) => Some(save_body(path, &record.body)?),
                None => None,
            };
            if json {
                print_json(&js::to_value(&js::MessageView::of(&record)));
            } else {
                print!("{}", render::message(&record, path.as_deref()));
            }
        }
        OpsCommand::QueryMsgByKey {
            namesrv,
            topic,
            key,
            max_num,
            json,
        } => {
            let records = super::query_msg(&namesrv, &topic, &key, max_num, false).await?;
            if json {
                print_json(&js::messages(&records));
            } else {
                print!("{}", render::message_list(&records));
            }
        }
        OpsCommand::QueryMsgByUniqueKey {
            namesrv,
            topic,
            msg_id,
            body_file,
            json,
        } => {
            let records = super::query_msg(
                &namesrv,
                &topic,
                &msg_id,
                super::QUERY_MAX_NUM_DEFAULT,
                true,
            )
            .await?;
            let Some(first) = records.first() else {
                return Err(OpsError::Usage(format!(
                    "no message with UNIQ_KEY {msg_id} in {topic}"
                )));
            };
            let path = match &body_file {
                Some(path) => Some(save_body(path, &first.body)?),
                None => None,
            };
            if json {
                print_json(&js::messages(&records));
            } else {
                for record in &records {
                    print!("{}", render::message(record, path.as_deref()));
                    println!();
                }
            }
        }
        OpsCommand::QueryMsgTrace {
            namesrv,
            msg_id,
            trace_topic,
            max_num,
            json,
        } => {
            let (views, skipped) =
                super::trace::query(&namesrv, &trace_topic, &msg_id, max_num).await?;
            if json {
                print_json(&json!({
                    "msgId": msg_id,
                    "traceTopic": trace_topic,
                    "traces": views,
                    "skippedRecords": skipped,
                }));
            } else {
                print!("{}", super::trace::render(&views));
            }
        }
        OpsCommand::GetBrokerConfig { target, json } => {
            let configs = super::get_broker_config(&target.target()).await?;
            if json {
                print_json(&js::to_value(&configs));
            } else {
                print!("{}", render::broker_config(&configs));
            }
        }
        OpsCommand::UpdateBrokerConfig {
            target,
            key,
            value,
            json,
        } => {
            let brokers = super::update_broker_config(&target.target(), &key, &value).await?;
            if json {
                print_json(&json!({"brokers": brokers, "key": key, "value": value}));
            } else {
                for broker in &brokers {
                    println!("update broker config success, {broker}");
                }
            }
        }
        OpsCommand::StatsAll {
            target,
            topic,
            json,
        } => {
            let rows = super::stats_all(&target.target(), topic.as_deref()).await?;
            if json {
                print_json(&js::to_value(&rows));
            } else {
                print!("{}", render::stats_all(&rows));
            }
        }
        OpsCommand::CleanExpiredCq { target, json } => {
            let cleaned = super::clean_expired_cq(&target.target()).await?;
            if json {
                print_json(&js::to_value(&cleaned));
            } else {
                for (broker, what) in &cleaned {
                    println!("{broker}: success ({what})");
                }
            }
        }
        OpsCommand::TopicClusterList {
            namesrv,
            topic,
            json,
        } => {
            let clusters = super::topic_cluster_list(&namesrv, &topic).await?;
            if json {
                print_json(&js::to_value(&clusters));
            } else {
                print!("{}", render::cluster_names(&clusters));
            }
        }
        OpsCommand::SendMessage {
            namesrv,
            topic,
            body,
            keys,
            tags,
            broker_name,
            queue_id,
            json,
        } => {
            let spec = super::SendSpec {
                topic,
                body: body.into_bytes(),
                keys,
                tags,
                broker_name,
                queue_id,
            };
            let sent = super::send_message(&namesrv, &spec).await?;
            if json {
                print_json(&js::to_value(&sent));
            } else {
                print!("{}", render::send_outcome(&sent));
            }
        }
        OpsCommand::ConsumeMessage {
            namesrv,
            topic,
            broker_name,
            queue_id,
            offset,
            count,
            group,
            json,
        } => {
            let spec = super::ConsumeSpec {
                topic,
                broker_name,
                queue_id,
                offset,
                count,
                group,
            };
            let records = super::consume_message(&namesrv, &spec).await?;
            if json {
                print_json(&js::messages(&records));
            } else {
                print!("{}", render::consumed(&records));
            }
        }
        OpsCommand::WipeWritePerm {
            namesrv,
            broker_name,
            json,
        } => write_perm(&namesrv, &broker_name, true, json).await?,
        OpsCommand::AddWritePerm {
            namesrv,
            broker_name,
            json,
        } => write_perm(&namesrv, &broker_name, false, json).await?,
    }
    Ok(())
}

async fn write_perm(
    namesrvs: &str,
    broker_name: &str,
    wipe: bool,
    json: bool,
) -> Result<(), OpsError> {
    let mut results = Vec::new();
    for namesrv in namesrvs.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let count = super::write_perm(namesrv, broker_name, wipe).await?;
        results.push(json!({"namesrv": namesrv, "topicCount": count}));
        if !json {
            let verb = if wipe { "wipe" } else { "add" };
            println!(
                "{verb} write perm of broker[{broker_name}] in name server[{namesrv}] OK, {count}"
            );
        }
    }
    if json {
        print_json(&json!({"brokerName": broker_name, "wipe": wipe, "results": results}));
    }
    Ok(())
}
