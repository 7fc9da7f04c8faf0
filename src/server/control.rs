//! Control-plane processing on the control shard (shard 0): client heartbeats and
//! membership, consumer lists, orderly locks, topic and group administration, auto-creation,
//! persistence of `config/*.json`, versioned broadcasts to the other shards, registration
//! with the NameServers, and client expiry.
//!
//! Must never: run on another shard (every entry point asserts it), or block on the data
//! path; metadata files are small and written only when the control plane changes.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rmq_net::codec::body::client::GetConsumerListByGroupResponseBody;
use rmq_net::codec::body::heartbeat::HeartbeatData;
use rmq_net::codec::body::queue::{
    LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody,
};
use rmq_net::codec::body::register::RegisterBrokerBody;
use rmq_net::codec::body::table::TopicList;
use rmq_net::codec::body::topic::{TopicConfig, TopicConfigAndMappingSerializeWrapper};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, GetConsumerConnectionListRequestHeader,
};
use rmq_net::codec::header::client::{
    GetConsumerListByGroupRequestHeader, HeartbeatResponseHeader,
    NotifyConsumerIdsChangedRequestHeader, UnregisterClientRequestHeader,
};
use rmq_net::codec::header::namesrv::RegisterBrokerRequestHeader;
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::body_crc;
use rmq_net::RemotingCommand;

use crate::broker::clients::GroupChange;
use crate::broker::topics::TopicError;
use crate::runtime::mesh::{ClientMeta, ConnKey};

use super::shard::{Shard, CONTROL_SHARD};
use super::{success, Failure, Outcome};

/// How long one REGISTER_BROKER call may take.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);
/// How often client channels are checked for expiry (Java scans every 10 s).
pub const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);

fn assert_control(shard: &Shard) {
    assert_eq!(
        shard.id, CONTROL_SHARD,
        "control-plane work on a data shard"
    );
}

/// Maps a topic-table error to the response Java gives.
pub fn topic_failure(err: &TopicError) -> Failure {
    let code = match err {
        TopicError::InvalidName { .. } => ResponseCode::InvalidParameter,
        TopicError::NotExist { .. }
        | TopicError::TemplateNotExist { .. }
        | TopicError::NoInheritTemplate { .. } => ResponseCode::TopicNotExist,
        TopicError::SystemTopic { .. } => ResponseCode::NoPermission,
        _ => ResponseCode::SystemError,
    };
    Failure::Code(code, err.to_string())
}

/// Processes a control-plane request on the control shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand, client: &ClientMeta) -> Outcome {
    assert_control(shard);
    match request.request_code() {
        RequestCode::HeartBeat => heartbeat(shard, request, client),
        RequestCode::UnregisterClient => {
            let header = UnregisterClientRequestHeader::decode_command(request)?;
            let changes = shard.control().clients.borrow_mut().unregister(
                client.key,
                &header.client_id,
                header.producer_group.as_deref(),
                header.consumer_group.as_deref(),
            );
            after_membership_change(shard, &changes);
            Ok(success(request))
        }
        RequestCode::GetConsumerListByGroup => {
            let header = GetConsumerListByGroupRequestHeader::decode_command(request)?;
            let ids = shard
                .control()
                .clients
                .borrow()
                .consumer_ids(&header.consumer_group);
            if ids.is_empty() {
                return Err(Failure::Code(
                    ResponseCode::SystemError,
                    format!("no consumer for this group, {}", header.consumer_group),
                ));
            }
            let body = GetConsumerListByGroupResponseBody {
                consumer_id_list: ids,
            };
            Ok(success(request).with_body(body.to_json()))
        }
        RequestCode::LockBatchMq => {
            let body = LockBatchRequestBody::from_json(&request.body)?;
            let locked = shard.control().locks.borrow_mut().try_lock_batch(
                &body.consumer_group,
                &body.client_id,
                body.mq_set.iter(),
                Shard::now_ms(),
            );
            let reply = LockBatchResponseBody {
                lock_ok_mq_set: locked.into_iter().collect(),
            };
            Ok(success(request).with_body(reply.to_json()))
        }
        RequestCode::UnlockBatchMq => {
            let body = UnlockBatchRequestBody::from_json(&request.body)?;
            shard.control().locks.borrow_mut().unlock_batch(
                &body.consumer_group,
                &body.client_id,
                body.mq_set.iter(),
            );
            Ok(success(request))
        }
        RequestCode::GetConsumerConnectionList => {
            let header = GetConsumerConnectionListRequestHeader::decode_command(request)?;
            match shard
                .control()
                .clients
                .borrow()
                .consumer_connection(&header.consumer_group)
            {
                Some(connection) => Ok(success(request).with_body(connection.to_json())),
                None => Err(Failure::Code(
                    ResponseCode::ConsumerNotOnline,
                    format!("the consumer group[{}] not online", header.consumer_group),
                )),
            }
        }
        RequestCode::UpdateAndCreateTopic => create_topic(shard, request).await,
        RequestCode::DeleteTopicInBroker => delete_topic(shard, request).await,
        RequestCode::GetAllTopicConfig => {
            let wrapper = shard.control().topics.borrow().to_register_wrapper();
            Ok(success(request).with_body(wrapper.to_json()))
        }
        RequestCode::GetProducerConnectionList => producer_connection_list(shard, request),
        RequestCode::UpdateAndCreateSubscriptionGroup
        | RequestCode::GetAllSubscriptionGroupConfig
        | RequestCode::DeleteSubscriptionGroup => subscription_group_admin(shard, request),
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}

fn heartbeat(shard: &Rc<Shard>, request: &RemotingCommand, client: &ClientMeta) -> Outcome {
    let mut data = HeartbeatData::from_json(&request.body)?;
    data.recompute_tags();
    let control = shard.control();
    let now = Shard::now_ms();
    let mut groups_changed = false;
    for consumer in &data.consumer_data_set {
        let lookup = control
            .groups
            .borrow_mut()
            .find_or_auto_create(&consumer.group_name, now);
        if matches!(lookup, Ok(crate::broker::groups::GroupLookup::Created(_))) {
            groups_changed = true;
        }
    }
    if groups_changed {
        persist_and_broadcast_groups(shard);
    }
    let outcome = {
        let groups = control.groups.borrow();
        control
            .clients
            .borrow_mut()
            .heartbeat(client, &data, now, |group| {
                groups.get(group).map(|g| g.client_policy())
            })
            .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?
    };
    let mut topics_created = false;
    for retry_topic in &outcome.retry_topics_needed {
        let group = retry_topic.trim_start_matches(crate::broker::topics::RETRY_GROUP_TOPIC_PREFIX);
        let queues = control
            .groups
            .borrow()
            .get(group)
            .map_or(1, |g| g.retry_queue_nums);
        match control
            .topics
            .borrow_mut()
            .create_retry_topic(group, queues, now)
        {
            Ok(ensured) => topics_created |= ensured.created,
            Err(err) => tracing::warn!(%err, group, "cannot create retry topic"),
        }
    }
    if topics_created {
        persist_and_broadcast_topics(shard);
        spawn_register(shard);
    }
    after_membership_change(shard, &outcome.groups_changed);
    let reply = HeartbeatResponseHeader {
        is_support_heart_beat_v2: true,
        is_sub_change: outcome.sub_changed,
    };
    Ok(success(request).with_ext_fields(reply.to_ext()))
}

/// Broadcasts the subscription snapshot if it changed and notifies group members.
fn after_membership_change(shard: &Rc<Shard>, changes: &[GroupChange]) {
    let snapshot = shard.control().clients.borrow().subscriptions_snapshot();
    if snapshot.supersedes(&shard.subscriptions.borrow()) {
        broadcast(shard, move |s| {
            s.install_subscriptions(Arc::clone(&snapshot))
        });
    }
    for change in changes {
        for key in &change.notify {
            notify_consumer_ids_changed(shard, *key, &change.group);
        }
    }
}

/// Sends NOTIFY_CONSUMER_IDS_CHANGED (oneway) over connection `key`, wherever it lives.
pub fn notify_consumer_ids_changed(shard: &Rc<Shard>, key: ConnKey, group: &str) {
    let header = NotifyConsumerIdsChangedRequestHeader {
        consumer_group: group.to_owned(),
    };
    let command =
        RemotingCommand::request(RequestCode::NotifyConsumerIdsChanged, header.to_ext()).oneway();
    send_to_connection(shard, key, command);
}

/// Sends `command` oneway over the connection `key` (on its own shard).
pub fn send_to_connection(shard: &Rc<Shard>, key: ConnKey, command: RemotingCommand) {
    if key.shard == shard.id {
        if let Some(conn) = shard.conns.borrow().get(&key.conn) {
            if let Err(err) = conn.try_send_oneway(command) {
                tracing::debug!(%err, conn = key.conn, "notify dropped");
            }
        }
        return;
    }
    let mesh = shard.mesh.clone();
    compio::runtime::spawn(async move {
        let work: crate::runtime::mesh::Invoke<Shard> =
            Box::new(move |target: &Rc<Shard>| send_to_connection(target, key, command));
        if let Err(err) = mesh
            .send(key.shard, crate::runtime::mesh::ShardMsg::Invoke(work))
            .await
        {
            tracing::debug!(%err, "notify not delivered");
        }
    })
    .detach();
}

/// Runs `apply` on every shard (locally at once, on the others through the mesh).
pub fn broadcast(shard: &Rc<Shard>, apply: impl Fn(&Rc<Shard>) + Send + Sync + 'static) {
    let apply = Arc::new(apply);
    apply(shard);
    let mesh = shard.mesh.clone();
    let me = shard.id;
    compio::runtime::spawn(async move {
        for target in 0..mesh.shards() {
            let target = crate::runtime::ShardId(target);
            if target == me {
                continue;
            }
            let apply = Arc::clone(&apply);
            let work: crate::runtime::mesh::Invoke<Shard> = Box::new(move |s: &Rc<Shard>| apply(s));
            if let Err(err) = mesh
                .send(target, crate::runtime::mesh::ShardMsg::Invoke(work))
                .await
            {
                tracing::warn!(%err, ?target, "broadcast not delivered");
            }
        }
    })
    .detach();
}

/// Saves `topics.json` and broadcasts the new snapshot.
pub fn persist_and_broadcast_topics(shard: &Rc<Shard>) {
    let control = shard.control();
    let path = control.config_dir.join("topics.json");
    if let Err(err) = control.topics.borrow().save(&path) {
        tracing::error!(%err, path = %path.display(), "cannot persist topics");
    }
    let snapshot = control.topics.borrow().snapshot();
    broadcast(shard, move |s| s.install_topics(Arc::clone(&snapshot)));
}

/// Saves `subscriptionGroup.json` and broadcasts the new snapshot.
pub fn persist_and_broadcast_groups(shard: &Rc<Shard>) {
    let control = shard.control();
    let path = control.config_dir.join("subscriptionGroup.json");
    if let Err(err) = control.groups.borrow().save(&path) {
        tracing::error!(%err, path = %path.display(), "cannot persist subscription groups");
    }
    let snapshot = control.groups.borrow().snapshot();
    broadcast(shard, move |s| s.install_groups(Arc::clone(&snapshot)));
}

/// Auto-creates `topic` from `template` on the control shard (PROTOCOL.md §4.1 step 3).
pub fn auto_create(
    shard: &Rc<Shard>,
    topic: &str,
    template: &str,
    queue_nums: i32,
) -> Result<TopicConfig, Failure> {
    assert_control(shard);
    let ensured = shard
        .control()
        .topics
        .borrow_mut()
        .auto_create_from_template(topic, template, queue_nums, Shard::now_ms())
        .map_err(|e| topic_failure(&e))?;
    if ensured.created {
        tracing::info!(
            topic,
            template,
            queues = ensured.config.write_queue_nums,
            "topic auto-created"
        );
        persist_and_broadcast_topics(shard);
        spawn_register(shard);
    }
    Ok(ensured.config)
}

/// Makes sure `topic` exists (asking the control shard to auto-create it from `template`)
/// and returns its config as this shard now sees it.
pub async fn ensure_topic(
    shard: &Rc<Shard>,
    topic: &str,
    template: &str,
    queue_nums: i32,
) -> Result<TopicConfig, Failure> {
    if let Some(config) = shard.topics.borrow().get(topic) {
        return Ok(config.clone());
    }
    let (topic_owned, template_owned) = (topic.to_owned(), template.to_owned());
    let result = shard
        .mesh
        .call(CONTROL_SHARD, move |control: &Rc<Shard>, reply| {
            let outcome = auto_create(control, &topic_owned, &template_owned, queue_nums)
                .map(|config| (config, control.control().topics.borrow().snapshot()));
            let _ = reply.send(outcome.map_err(|Failure::Code(c, r)| (c.value(), r)));
        })
        .await
        .map_err(|e| Failure::Code(ResponseCode::SystemBusy, e.to_string()))?;
    match result {
        Ok((config, snapshot)) => {
            shard.install_topics(snapshot);
            Ok(config)
        }
        Err((code, remark)) => Err(Failure::Code(ResponseCode::from_value(code), remark)),
    }
}

/// Installs the control shard's subscription snapshot on this shard if it is newer. Pulls call
/// it when their group's subscription is missing or older than the pull's `subVersion`: a
/// heartbeat is answered once the control shard registered it, while its broadcast to the
/// other shards may still be in flight, and a client may pull on another shard at once.
pub async fn refresh_subscriptions(shard: &Rc<Shard>) {
    if shard.id == CONTROL_SHARD {
        return; // the control shard installs its own snapshot before it answers
    }
    let snapshot = shard
        .mesh
        .call(CONTROL_SHARD, |control: &Rc<Shard>, reply| {
            let _ = reply.send(control.control().clients.borrow().subscriptions_snapshot());
        })
        .await;
    if let Ok(snapshot) = snapshot {
        shard.install_subscriptions(snapshot);
    }
}

/// A topic's config as this shard sees it, falling back to the control shard's table when this
/// shard's snapshot does not know the topic yet (a broadcast still in flight). Never creates.
pub async fn lookup_topic(shard: &Rc<Shard>, topic: &str) -> Option<TopicConfig> {
    if let Some(config) = shard.topics.borrow().get(topic) {
        return Some(config.clone());
    }
    let name = topic.to_owned();
    let snapshot = shard
        .mesh
        .call(CONTROL_SHARD, move |control: &Rc<Shard>, reply| {
            let table = control.control().topics.borrow();
            let _ = reply.send(table.contains(&name).then(|| table.snapshot()));
        })
        .await
        .ok()
        .flatten()?;
    shard.install_topics(snapshot);
    shard.topics.borrow().get(topic).cloned()
}

async fn create_topic(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = CreateTopicRequestHeader::decode_command(request)?;
    let mut config = TopicConfig::new(&header.topic);
    config.read_queue_nums = header.read_queue_nums;
    config.write_queue_nums = header.write_queue_nums;
    config.perm = header.perm;
    config.topic_filter_type = header.topic_filter_type;
    config.topic_sys_flag = header.topic_sys_flag.unwrap_or(0);
    config.order = header.order;
    {
        let control = shard.control();
        let mut topics = control.topics.borrow_mut();
        topics
            .check_admin_topic(&header.topic)
            .map_err(|e| topic_failure(&e))?;
        topics
            .create_or_update(config, Shard::now_ms())
            .map_err(|e| topic_failure(&e))?;
    }
    persist_and_broadcast_topics(shard);
    register_all(shard).await;
    Ok(success(request))
}

async fn delete_topic(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = DeleteTopicRequestHeader::decode_command(request)?;
    let removed = shard
        .control()
        .topics
        .borrow_mut()
        .delete(&header.topic, Shard::now_ms());
    if removed.is_some() {
        persist_and_broadcast_topics(shard);
        let topic = header.topic.clone();
        broadcast(shard, move |s| {
            s.offsets.borrow_mut().delete_topic(&topic);
            let topic = topic.clone();
            let s = Rc::clone(s);
            compio::runtime::spawn(async move {
                if let Err(err) = s.store.delete_topic(&topic).await {
                    tracing::warn!(%err, topic, "deleting topic data failed");
                }
            })
            .detach();
        });
        register_all(shard).await;
    }
    Ok(success(request))
}

/// Topic list of this broker (for admin).
#[must_use]
pub fn topic_list(shard: &Shard) -> TopicList {
    let topics = shard.topics.borrow();
    TopicList {
        broker_addr: None,
        topic_list: topics
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<BTreeSet<_>>(),
    }
}

/// Spawns a registration with every NameServer.
pub fn spawn_register(shard: &Rc<Shard>) {
    let shard = Rc::clone(shard);
    compio::runtime::spawn(async move { register_all(&shard).await }).detach();
}

/// Registers this broker (all topics) with every NameServer (PROTOCOL.md §4.10.1).
pub async fn register_all(shard: &Rc<Shard>) {
    assert_control(shard);
    let control = shard.control();
    let wrapper: TopicConfigAndMappingSerializeWrapper =
        control.topics.borrow().to_register_wrapper();
    let body = RegisterBrokerBody {
        filter_server_list: Vec::new(),
        topic_config_serialize_wrapper: wrapper,
    }
    .to_json();
    let config = &shard.config;
    let header = RegisterBrokerRequestHeader {
        broker_name: config.broker_name.clone(),
        broker_addr: shard.store_host.to_string(),
        cluster_name: config.broker_cluster_name.clone(),
        ha_server_addr: format!("{}:{}", config.broker_ip2, config.ha_listen_port),
        broker_id: config.broker_id,
        heartbeat_timeout_millis: Some(120_000),
        enable_acting_master: Some(false),
        compressed: false,
        body_crc32: body_crc(&body),
        zone_name: None,
    };
    let request =
        RemotingCommand::request(RequestCode::RegisterBroker, header.to_ext()).with_body(body);
    for client in &control.namesrv {
        match client.invoke(request.clone(), REGISTER_TIMEOUT).await {
            Ok(reply) if reply.response_code() == ResponseCode::Success => {}
            Ok(reply) => {
                tracing::warn!(namesrv = client.addr(), code = reply.code, remark = ?reply.remark, "register refused")
            }
            Err(err) => tracing::warn!(namesrv = client.addr(), %err, "register failed"),
        }
    }
}

/// Unregisters this broker from every NameServer (clean shutdown).
pub async fn unregister_all(shard: &Rc<Shard>) {
    assert_control(shard);
    let config = &shard.config;
    let header = rmq_net::codec::header::namesrv::UnregisterBrokerRequestHeader {
        broker_name: config.broker_name.clone(),
        broker_addr: shard.store_host.to_string(),
        cluster_name: config.broker_cluster_name.clone(),
        broker_id: config.broker_id,
    };
    let request = RemotingCommand::request(RequestCode::UnregisterBroker, header.to_ext());
    for client in &shard.control().namesrv {
        if let Err(err) = client.invoke(request.clone(), REGISTER_TIMEOUT).await {
            tracing::warn!(namesrv = client.addr(), %err, "unregister failed");
        }
    }
}

/// Background control tasks: periodic registration and client expiry. Runs forever.
pub async fn run_background(shard: Rc<Shard>) {
    assert_control(&shard);
    register_all(&shard).await;
    let mut next_register = std::time::Instant::now() + shard.config.register_name_server_period;
    loop {
        compio::time::sleep(CLIENT_SCAN_INTERVAL.min(shard.config.register_name_server_period))
            .await;
        let expired = shard.control().clients.borrow_mut().expire(Shard::now_ms());
        after_membership_change(&shard, &expired.groups_changed);
        for key in expired.expired {
            tracing::info!(?key, "client channel expired");
        }
        if std::time::Instant::now() >= next_register {
            register_all(&shard).await;
            next_register = std::time::Instant::now() + shard.config.register_name_server_period;
        }
    }
}

/// A connection closed on some shard: drop its client state (on the control shard).
pub fn connection_closed(shard: &Rc<Shard>, key: ConnKey) {
    if shard.id != CONTROL_SHARD {
        let mesh = shard.mesh.clone();
        compio::runtime::spawn(async move {
            let work: crate::runtime::mesh::Invoke<Shard> =
                Box::new(move |s: &Rc<Shard>| connection_closed(s, key));
            if let Err(err) = mesh
                .send(CONTROL_SHARD, crate::runtime::mesh::ShardMsg::Invoke(work))
                .await
            {
                tracing::warn!(%err, "connection-closed not delivered to the control shard");
            }
        })
        .detach();
        return;
    }
    let changes = shard.control().clients.borrow_mut().connection_closed(key);
    after_membership_change(shard, &changes);
}

/// A required header field, as Java's header decoding demands it.
fn required_ext<'a>(request: &'a RemotingCommand, name: &str) -> Result<&'a str, Failure> {
    request
        .ext(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            Failure::Code(
                ResponseCode::SystemError,
                format!("the custom field <{name}> is null"),
            )
        })
}

/// GET_PRODUCER_CONNECTION_LIST (204): the producer group's live connections.
fn producer_connection_list(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let group = required_ext(request, "producerGroup")?;
    let connection = shard.control().clients.borrow().producer_connection(group);
    match connection {
        Some(connection) => Ok(success(request).with_body(connection.to_json())),
        None => Err(Failure::Code(
            ResponseCode::SystemError,
            format!("the producer group[{group}] not exist"),
        )),
    }
}

/// Maps a group-table error to a response.
fn group_failure(err: &crate::broker::groups::GroupError) -> Failure {
    let code = match err {
        crate::broker::groups::GroupError::InvalidName { .. } => ResponseCode::InvalidParameter,
        crate::broker::groups::GroupError::NotExist(_) => ResponseCode::SubscriptionGroupNotExist,
        _ => ResponseCode::SystemError,
    };
    Failure::Code(code, err.to_string())
}

/// Subscription-group administration: UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200),
/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), DELETE_SUBSCRIPTIONGROUP (207, `cleanOffset` also
/// drops the group's consumer offsets on every shard). Changes are persisted and broadcast.
fn subscription_group_admin(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    assert_control(shard);
    let control = shard.control();
    match request.request_code() {
        RequestCode::UpdateAndCreateSubscriptionGroup => {
            let config = crate::broker::groups::SubscriptionGroupConfig::from_json(&request.body)?;
            let changed = control
                .groups
                .borrow_mut()
                .update(config, Shard::now_ms())
                .map_err(|e| group_failure(&e))?;
            if changed {
                persist_and_broadcast_groups(shard);
            }
            Ok(success(request))
        }
        RequestCode::GetAllSubscriptionGroupConfig => {
            let wrapper = control.groups.borrow().to_wrapper();
            Ok(success(request).with_body(wrapper.to_json()))
        }
        RequestCode::DeleteSubscriptionGroup => {
            let group = required_ext(request, "groupName")?.to_owned();
            let clean_offset = request
                .ext("cleanOffset")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let removed = control.groups.borrow_mut().delete(&group, Shard::now_ms());
            if removed.is_some() {
                tracing::info!(group, clean_offset, "subscription group deleted");
                persist_and_broadcast_groups(shard);
            }
            if clean_offset {
                broadcast(shard, move |s| {
                    let entries = s.offsets.borrow_mut().delete_group(&group);
                    tracing::debug!(shard = s.id.0, entries, group, "consumer offsets dropped");
                });
            }
            Ok(success(request))
        }
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}
