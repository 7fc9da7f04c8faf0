//! Topics on the control shard: UPDATE_AND_CREATE_TOPIC (17), DELETE_TOPIC_IN_BROKER (215),
//! GET_ALL_TOPIC_CONFIG (21), auto-creation from a template (PROTOCOL.md §4.1 step 3), and the
//! data shards' side: [`ensure_topic`] (ask the control shard to auto-create a topic this
//! shard's replica lacks).
//!
//! Must never: answer a create before the change is journaled and installed on every shard,
//! or delete a topic's data before its config is gone everywhere.

use std::collections::BTreeSet;
use std::rc::Rc;

use rmq_net::codec::body::table::TopicList;
use rmq_net::codec::body::topic::TopicConfig;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::ResponseCode;
use rmq_net::codec::header::admin::{CreateTopicRequestHeader, DeleteTopicRequestHeader};
use rmq_net::codec::header::CommandHeader;
use rmq_net::RemotingCommand;

use crate::broker::replicate;
use crate::broker::shard::{Shard, CONTROL_SHARD};
use crate::broker::{success, Failure, Outcome};
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::{broadcast, submit_to};
use crate::tables::topics::TopicError;

use super::{assert_control, register};

/// Maps a topic-table error to the response Java gives.
#[must_use]
pub fn topic_failure(err: &TopicError) -> Failure {
    let code = match err {
        TopicError::InvalidName { .. } => ResponseCode::InvalidParameter,
        TopicError::NotExist { .. }
        | TopicError::TemplateNotExist { .. }
        | TopicError::NoInheritTemplate { .. }
        | TopicError::AutoCreateLimit { .. } => ResponseCode::TopicNotExist,
        TopicError::SystemTopic { .. } => ResponseCode::NoPermission,
        _ => ResponseCode::SystemError,
    };
    Failure::Code(code, err.to_string())
}

/// UPDATE_AND_CREATE_TOPIC: answered once the topic is journaled, installed on every shard and
/// registered with the NameServers (incrementally: only this topic, as Java's
/// `registerIncrementBrokerData`).
pub async fn create_topic(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
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
            .create_or_update(config, now_ms())
            .map_err(|e| topic_failure(&e))?;
    }
    replicate::publish_topics(shard).await;
    register::request_and_wait(shard, vec![header.topic]).await;
    Ok(success(request))
}

/// DELETE_TOPIC_IN_BROKER: refused for system topics (NO_PERMISSION); otherwise the config goes
/// everywhere first, then every shard drops the topic's consumer offsets and data.
pub async fn delete_topic(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let header = DeleteTopicRequestHeader::decode_command(request)?;
    // System topics (TBW102, SCHEDULE_TOPIC_XXXX, RMQ_SYS_*, the cluster and broker names...)
    // are never deleted: delay levels, auto-create and transactions depend on them.
    shard
        .control()
        .topics
        .borrow()
        .check_admin_topic(&header.topic)
        .map_err(|e| topic_failure(&e))?;
    let removed = shard
        .control()
        .topics
        .borrow_mut()
        .delete(&header.topic, now_ms());
    if removed.is_some() {
        replicate::publish_topics(shard).await;
        drop_topic_data(shard, &header.topic).await;
        register::request_full_and_wait(shard).await;
    }
    Ok(success(request))
}

/// Drops a deleted topic's consumer offsets and queue data on every shard (its config is
/// already gone everywhere). Failures are logged: the topic is deleted either way.
pub async fn drop_topic_data(shard: &Rc<Shard>, topic: &str) {
    let owned = topic.to_owned();
    let dropped = broadcast(shard, move |s: Rc<Shard>| async move {
        s.offsets.borrow_mut().delete_topic(&owned);
        if let Err(err) = s.store.delete_topic(&owned).await {
            tracing::warn!(%err, topic = owned, "deleting topic data failed");
        }
    })
    .await;
    for (target, answer) in dropped.iter().enumerate() {
        if let Err(err) = answer {
            tracing::warn!(%err, target, topic, "topic data not deleted");
        }
    }
}

/// GET_ALL_TOPIC_CONFIG (21): the table as it is (unmasked, as Java).
///
/// # Errors
/// SYSTEM_ERROR when the table does not fit one reply ([`crate::broker::table_reply`]).
pub fn all_topic_config(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let wrapper = shard.control().topics.borrow().to_wrapper();
    crate::broker::table_reply(request, "topic config", wrapper.to_json())
}

/// Auto-creates `topic` from `template` on the control shard (PROTOCOL.md §4.1 step 3); a new
/// topic is journaled and installed everywhere before this returns, and registered with the
/// NameServers in the background (coalesced).
///
/// # Errors
/// The topic table's refusal (no template, template not inheritable, limits).
pub async fn auto_create(
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
        .auto_create_from_template(topic, template, queue_nums, now_ms())
        .map_err(|e| topic_failure(&e))?;
    if ensured.created {
        tracing::info!(
            topic,
            template,
            queues = ensured.config.write_queue_nums,
            "topic auto-created"
        );
        replicate::publish_topics(shard).await;
        register::request(shard, vec![topic.to_owned()]);
    }
    Ok(ensured.config)
}

/// Makes sure `topic` exists (asking the control shard to auto-create it from `template`)
/// and returns its config as this shard now sees it.
///
/// # Errors
/// SYSTEM_BUSY when the control shard cannot be reached; its refusal otherwise.
pub async fn ensure_topic(
    shard: &Rc<Shard>,
    topic: &str,
    template: &str,
    queue_nums: i32,
) -> Result<TopicConfig, Failure> {
    if let Some(config) = shard.topics.entry(topic) {
        return Ok(config);
    }
    let (topic_owned, template_owned) = (topic.to_owned(), template.to_owned());
    let created = submit_to(shard, CONTROL_SHARD, move |control: Rc<Shard>| async move {
        let created = auto_create(&control, &topic_owned, &template_owned, queue_nums).await;
        created
            .map(|config| (config, control.topics.get()))
            .map_err(|Failure::Code(code, remark)| (code.value(), remark))
    })
    .await?;
    match created {
        Ok((config, snapshot)) => {
            // Already installed by the broadcast unless this shard refused it (busy).
            shard.topics.install(snapshot);
            Ok(config)
        }
        Err((code, remark)) => Err(Failure::Code(ResponseCode::from_value(code), remark)),
    }
}

/// Topic list of this broker (for admin).
#[must_use]
pub fn topic_list(shard: &Shard) -> TopicList {
    let topics = shard.topics.get();
    TopicList {
        broker_addr: None,
        topic_list: topics
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<BTreeSet<_>>(),
    }
}
