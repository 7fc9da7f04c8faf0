//! Control-plane request processing on the control shard (shard 0). The duties, one module
//! each:
//! - [`clients`]: heartbeats, unregistration, consumer/producer lists, orderly locks, and the
//!   membership changes they cause (subscription broadcast);
//! - [`notify`]: NOTIFY_CONSUMER_IDS_CHANGED, coalesced per group;
//! - [`topics`]: topic administration and auto-creation (also the data shards' side of it:
//!   asking the control shard for a topic their replica lacks);
//! - [`groups`]: subscription-group administration;
//! - [`register`]: registration with the NameServers (coalesced) and the background loop
//!   (periodic registration, client expiry, replica re-sync).
//!
//! Every change to a replicated table leaves through [`super::replicate`] (journal, then
//! install on every shard) before the request is answered.
//!
//! Must never: run on another shard (every entry point asserts it), or block the event loop
//! (file writes go through the blocking pool in `replicate`).

pub mod clients;
pub mod groups;
pub mod notify;
pub mod register;
pub mod topics;

use std::rc::Rc;

use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::RemotingCommand;

use crate::runtime::mesh::ClientMeta;

use super::shard::{Shard, CONTROL_SHARD};
use super::{Failure, Outcome};

pub use clients::{connection_closed, refresh_subscriptions};
pub use topics::{ensure_topic, topic_failure, topic_list};

fn assert_control(shard: &Shard) {
    assert_eq!(
        shard.id, CONTROL_SHARD,
        "control-plane work on a data shard"
    );
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

/// Processes a control-plane request on the control shard.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand, client: &ClientMeta) -> Outcome {
    assert_control(shard);
    match request.request_code() {
        RequestCode::HeartBeat => clients::heartbeat(shard, request, client).await,
        RequestCode::UnregisterClient => clients::unregister(shard, request, client).await,
        RequestCode::GetConsumerListByGroup => clients::consumer_list(shard, request),
        RequestCode::LockBatchMq => clients::lock_batch(shard, request),
        RequestCode::UnlockBatchMq => clients::unlock_batch(shard, request),
        RequestCode::GetConsumerConnectionList => clients::consumer_connections(shard, request),
        RequestCode::GetProducerConnectionList => clients::producer_connections(shard, request),
        RequestCode::UpdateAndCreateTopic => topics::create_topic(shard, request).await,
        RequestCode::DeleteTopicInBroker => topics::delete_topic(shard, request).await,
        RequestCode::GetAllTopicConfig => topics::all_topic_config(shard, request),
        RequestCode::UpdateAndCreateSubscriptionGroup
        | RequestCode::GetAllSubscriptionGroupConfig
        | RequestCode::DeleteSubscriptionGroup => groups::admin(shard, request).await,
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}
