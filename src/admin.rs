//! `rmq admin`: the operations tests and users need first, over the remoting protocol with our
//! own client: create/update/delete topic, topic list, topic route, cluster list.
//! Runs in the CLI's own runtime; never touches broker state directly.

use std::time::Duration;

use rmq_net::codec::body::route::{ClusterInfo, TopicRouteData};
use rmq_net::codec::body::table::TopicList;
use rmq_net::codec::body::topic::TopicFilterType;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::admin::{CreateTopicRequestHeader, DeleteTopicRequestHeader};
use rmq_net::codec::header::namesrv::{
    DeleteTopicFromNamesrvRequestHeader, GetRouteInfoRequestHeader,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::conn::{ClientConfig, RemotingClient};
use rmq_net::{ExtFields, RemotingCommand};

/// How long one admin call may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin failure, with the server's code and remark when there was a reply.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Transport failure.
    #[error("{addr}: {source}")]
    Client {
        /// Peer.
        addr: String,
        /// Cause.
        source: rmq_net::conn::ClientError,
    },
    /// The server answered with an error code.
    #[error("{addr}: code {code:?}: {remark}")]
    Refused {
        /// Peer.
        addr: String,
        /// Code.
        code: ResponseCode,
        /// Remark.
        remark: String,
    },
    /// A body did not parse.
    #[error("{0}")]
    Codec(#[from] rmq_net::CodecError),
    /// Nothing to act on.
    #[error("{0}")]
    Usage(String),
}

async fn call(addr: &str, request: RemotingCommand) -> Result<RemotingCommand, AdminError> {
    let client = RemotingClient::new(addr.to_owned(), ClientConfig::default());
    let reply = client
        .invoke(request, ADMIN_TIMEOUT)
        .await
        .map_err(|source| AdminError::Client {
            addr: addr.to_owned(),
            source,
        })?;
    client.close();
    if reply.response_code() != ResponseCode::Success {
        return Err(AdminError::Refused {
            addr: addr.to_owned(),
            code: reply.response_code(),
            remark: reply.remark.clone().unwrap_or_default(),
        });
    }
    Ok(reply)
}

/// GET_BROKER_CLUSTER_INFO from a NameServer.
///
/// # Errors
/// [`AdminError`].
pub async fn cluster_info(namesrv: &str) -> Result<ClusterInfo, AdminError> {
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetBrokerClusterInfo, ExtFields::new()),
    )
    .await?;
    Ok(ClusterInfo::from_json(&reply.body)?)
}

/// GET_ROUTEINFO_BY_TOPIC from a NameServer.
///
/// # Errors
/// [`AdminError`].
pub async fn topic_route(namesrv: &str, topic: &str) -> Result<TopicRouteData, AdminError> {
    let header = GetRouteInfoRequestHeader {
        topic: topic.to_owned(),
        accept_standard_json_only: Some(true),
    };
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetRouteinfoByTopic, header.to_ext()),
    )
    .await?;
    Ok(TopicRouteData::from_json(&reply.body)?)
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
///
/// # Errors
/// [`AdminError`].
pub async fn topic_list(namesrv: &str) -> Result<TopicList, AdminError> {
    let reply = call(
        namesrv,
        RemotingCommand::request(RequestCode::GetAllTopicListFromNameserver, ExtFields::new()),
    )
    .await?;
    Ok(TopicList::from_json(&reply.body)?)
}

/// Master addresses of `cluster` (or of every cluster when `None`).
///
/// # Errors
/// [`AdminError`].
pub async fn master_addrs(namesrv: &str, cluster: Option<&str>) -> Result<Vec<String>, AdminError> {
    let info = cluster_info(namesrv).await?;
    let mut addrs = Vec::new();
    for (cluster_name, brokers) in &info.cluster_addr_table {
        if cluster.is_some_and(|c| c != cluster_name) {
            continue;
        }
        for name in brokers {
            if let Some(addr) = info
                .broker_addr_table
                .get(name)
                .and_then(|b| b.broker_addrs.get(&0))
            {
                addrs.push(addr.clone());
            }
        }
    }
    if addrs.is_empty() {
        return Err(AdminError::Usage(format!(
            "no master broker found (cluster {cluster:?})"
        )));
    }
    Ok(addrs)
}

/// What a topic should look like.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Name.
    pub topic: String,
    /// Read queues.
    pub read_queue_nums: i32,
    /// Write queues.
    pub write_queue_nums: i32,
    /// Permission bits.
    pub perm: i32,
    /// Order topic.
    pub order: bool,
}

/// UPDATE_AND_CREATE_TOPIC on each broker address.
///
/// # Errors
/// [`AdminError`] of the first broker that failed.
pub async fn update_topic(brokers: &[String], spec: &TopicSpec) -> Result<(), AdminError> {
    let header = CreateTopicRequestHeader {
        topic: spec.topic.clone(),
        default_topic: "TBW102".into(),
        read_queue_nums: spec.read_queue_nums,
        write_queue_nums: spec.write_queue_nums,
        perm: spec.perm,
        topic_filter_type: TopicFilterType::SingleTag,
        topic_sys_flag: Some(0),
        order: spec.order,
        attributes: None,
        force: None,
    };
    for broker in brokers {
        call(
            broker,
            RemotingCommand::request(RequestCode::UpdateAndCreateTopic, header.to_ext()),
        )
        .await?;
    }
    Ok(())
}

/// DELETE_TOPIC_IN_BROKER on each broker, then DELETE_TOPIC_IN_NAMESRV.
///
/// # Errors
/// [`AdminError`].
pub async fn delete_topic(
    namesrv: &str,
    brokers: &[String],
    topic: &str,
) -> Result<(), AdminError> {
    let header = DeleteTopicRequestHeader {
        topic: topic.to_owned(),
    };
    for broker in brokers {
        call(
            broker,
            RemotingCommand::request(RequestCode::DeleteTopicInBroker, header.to_ext()),
        )
        .await?;
    }
    let header = DeleteTopicFromNamesrvRequestHeader {
        topic: topic.to_owned(),
        cluster_name: None,
    };
    call(
        namesrv,
        RemotingCommand::request(RequestCode::DeleteTopicInNamesrv, header.to_ext()),
    )
    .await?;
    Ok(())
}
