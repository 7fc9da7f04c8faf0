//! Request dispatch: every request arrives on the shard that accepted its connection; this
//! module decides which shard owns the state it touches and either runs the processor locally
//! or forwards the request with one [`submit_to`] call (the owner runs the same processor) and
//! relays the reply. Unknown codes get REQUEST_CODE_NOT_SUPPORTED; a full mesh gets SYSTEM_BUSY.
//! With ACL on, every request is checked here first ([`crate::acl`]), on the accepting shard.
//! Must never: process a queue's request on a shard that does not own the queue.

use std::rc::Rc;

use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::conn::{ConnContext, ConnHandle, Handler};
use rmq_net::RemotingCommand;

use crate::runtime::mesh::{submit_to, ClientMeta, ConnKey};
use crate::runtime::placement::{shard_for, split_offset};
use crate::runtime::ShardId;

use super::append::Settle;
use super::shard::{Shard, CONTROL_SHARD};
use super::{
    consumer_status, control, durable_replies, error_response, offset, offset_tables, pull, query,
    reply, reset, send, sendback, sql92, stats, transaction, view, Failure, Outcome,
};

/// What routing learned about a request, carried to the shard that processes it so nothing is
/// decoded or checked twice.
#[derive(Debug)]
pub enum Plan {
    /// Nothing: the processor decodes the request itself.
    None,
    /// A send, decoded and checked on the accepting shard.
    Send(send::SendPlan),
}

/// Where a request is processed, and what routing learned on the way.
struct Route {
    target: ShardId,
    plan: Plan,
}

/// The connection handler of one shard.
pub struct BrokerHandler {
    /// This shard.
    pub shard: Rc<Shard>,
}

impl Handler for BrokerHandler {
    async fn handle(&self, ctx: &ConnContext, request: RemotingCommand) -> Option<RemotingCommand> {
        let shard = &self.shard;
        if shard.stopping.is_set() {
            // Java's answer once its store is shut down; clients retry another broker.
            return (!request.is_oneway()).then(|| {
                error_response(
                    &request,
                    ResponseCode::ServiceNotAvailable,
                    "the broker is shutting down",
                )
            });
        }
        let _in_flight = InFlight::enter(shard);
        let started = stats::rpc_started(shard, &request);
        shard
            .conns
            .borrow_mut()
            .entry(ctx.handle().id())
            .or_insert_with(|| ctx.handle().clone());
        if let Err(denied) = crate::acl::check_request(shard, ctx.peer_addr(), &request) {
            return (!request.is_oneway()).then(|| denied.response(&request));
        }
        let client = ClientMeta {
            key: ConnKey {
                shard: shard.id,
                conn: ctx.handle().id(),
            },
            peer_addr: ctx.peer_addr(),
            language: ctx.language().unwrap_or_default(),
            version: ctx.version().unwrap_or(request.version),
            serialize_type: ctx.last_serialize_type(),
        };
        let oneway = request.is_oneway();
        let code = request.request_code();
        let response = match route(shard, &request).await {
            Ok(Route { target, plan }) if target == shard.id => {
                let (mut response, settle) = process_local(shard, &request, &client, plan).await;
                if let (Some(end), false) = (settle.durable_only_end(shard), oneway) {
                    // Only its fdatasync left: parked, answered by the shard's one task for
                    // them; this request ends now.
                    let reply = response.answering(request.opaque, request.serialize_type);
                    match durable_replies::park(shard, end, ctx.handle(), reply, code, started) {
                        None => return None,
                        Some(reply) => response = reply,
                    }
                }
                // What a stored send still waits for (its fdatasync, its slave) is waited for
                // without the request: its frame's read buffer is released now.
                drop(request);
                Some(settle.finish(shard, response).await)
            }
            Ok(Route { target, plan }) => {
                // The body travels only with the forwarded copy, so this shard does not hold
                // the frame's read buffer while the owner works.
                let mut request = request;
                let forwarded = RemotingCommand {
                    body: std::mem::take(&mut request.body),
                    ..request.clone()
                };
                let processed = submit_to(shard, target, move |owner: Rc<Shard>| async move {
                    let (response, settle) = process_local(&owner, &forwarded, &client, plan).await;
                    let oneway = forwarded.is_oneway();
                    drop(forwarded);
                    let response = settle.finish(&owner, response).await;
                    (!oneway).then_some(response)
                });
                match processed.await {
                    Ok(response) => response,
                    Err(err) => {
                        let Failure::Code(code, remark) = Failure::from(err);
                        Some(error_response(&request, code, &remark))
                    }
                }
            }
            Err(Failure::Code(code, remark)) => Some(error_response(&request, code, &remark)),
        };
        if oneway {
            return None;
        }
        stats::observe_rpc(shard, code, response.as_ref(), started);
        response
    }

    fn on_close(&self, handle: &ConnHandle) {
        self.shard.conns.borrow_mut().remove(&handle.id());
        control::connection_closed(
            &self.shard,
            ConnKey {
                shard: self.shard.id,
                conn: handle.id(),
            },
        );
    }
}

/// Counts one client request in [`Shard::requests_in_flight`] while it is handled.
struct InFlight<'a>(&'a Shard);

impl<'a> InFlight<'a> {
    fn enter(shard: &'a Shard) -> Self {
        shard
            .requests_in_flight
            .set(shard.requests_in_flight.get() + 1);
        Self(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let count = self.0.requests_in_flight.get();
        assert!(count > 0, "in-flight count underflow");
        self.0.requests_in_flight.set(count - 1);
    }
}

/// The processor family of a request code. Routing and processing both use this one table,
/// so a code can never be routed by one rule and processed by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Sends: the owner of the target queue.
    Send,
    /// Pulls: the owner of the queue.
    Pull,
    /// Consumer offsets and queue offsets: the owner of the queue.
    QueueOffset,
    /// VIEW_MESSAGE_BY_ID: the shard in the physical offset.
    ViewById,
    /// CONSUMER_SEND_MSG_BACK: the shard in the physical offset.
    SendBack,
    /// Control plane: shard 0.
    Control,
    /// QUERY_MESSAGE: map-reduce from the accepting shard.
    Query,
    /// Broker statistics and config: map-reduce from the accepting shard.
    Stats,
    /// Every shard's consumer or delay offsets (what a slave copies): map-reduce from the
    /// accepting shard.
    OffsetTables,
    /// This broker's topic list (replicated snapshot).
    TopicList,
    /// INVOKE_BROKER_TO_RESET_OFFSET: shard 0 (it fans out to the queues' owners).
    ResetOffset,
    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS: shard 0 (it asks the group's members).
    ConsumerStatus,
    /// SEND_REPLY_MESSAGE(_V2): the accepting shard (lookup, push and store cross the mesh).
    Reply,
    /// END_TRANSACTION and the pending-transactions view: the half-queue owner.
    Transaction,
    /// CHECK_CLIENT_CONFIG: any shard (it only compiles the expression).
    CheckClientConfig,
    /// TIMER_STATUS (ours): gathered from every shard by the accepting one.
    Timer,
    /// Not served: REQUEST_CODE_NOT_SUPPORTED.
    Unsupported,
}

fn family(code: RequestCode) -> Family {
    match code {
        RequestCode::SendMessage | RequestCode::SendMessageV2 | RequestCode::SendBatchMessage => {
            Family::Send
        }
        RequestCode::PullMessage | RequestCode::LitePullMessage => Family::Pull,
        RequestCode::QueryConsumerOffset
        | RequestCode::UpdateConsumerOffset
        | RequestCode::GetMaxOffset
        | RequestCode::GetMinOffset
        | RequestCode::SearchOffsetByTimestamp
        | RequestCode::GetEarliestMsgStoretime => Family::QueueOffset,
        RequestCode::ViewMessageById => Family::ViewById,
        RequestCode::ConsumerSendMsgBack => Family::SendBack,
        RequestCode::HeartBeat
        | RequestCode::UnregisterClient
        | RequestCode::GetConsumerListByGroup
        | RequestCode::LockBatchMq
        | RequestCode::UnlockBatchMq
        | RequestCode::GetConsumerConnectionList
        | RequestCode::UpdateAndCreateTopic
        | RequestCode::DeleteTopicInBroker
        | RequestCode::GetAllTopicConfig
        | RequestCode::GetProducerConnectionList
        | RequestCode::UpdateAndCreateSubscriptionGroup
        | RequestCode::GetAllSubscriptionGroupConfig
        | RequestCode::DeleteSubscriptionGroup => Family::Control,
        RequestCode::QueryMessage => Family::Query,
        RequestCode::GetBrokerRuntimeInfo
        | RequestCode::ViewBrokerStatsData
        | RequestCode::GetTopicStatsInfo
        | RequestCode::GetConsumeStats
        | RequestCode::GetBrokerConfig
        | RequestCode::UpdateBrokerConfig
        | RequestCode::CleanExpiredConsumequeue => Family::Stats,
        RequestCode::GetAllConsumerOffset | RequestCode::GetAllDelayOffset => Family::OffsetTables,
        RequestCode::GetAllTopicListFromNameserver => Family::TopicList,
        RequestCode::InvokeBrokerToResetOffset => Family::ResetOffset,
        RequestCode::InvokeBrokerToGetConsumerStatus => Family::ConsumerStatus,
        RequestCode::SendReplyMessage | RequestCode::SendReplyMessageV2 => Family::Reply,
        RequestCode::EndTransaction | RequestCode::TransactionPendingStats => Family::Transaction,
        RequestCode::CheckClientConfig => Family::CheckClientConfig,
        RequestCode::TimerStatus => Family::Timer,
        _ => Family::Unsupported,
    }
}

/// Decides where `request` runs. Sends to unknown topics are auto-created first (through the
/// control shard), so the owner's processor finds the topic.
async fn route(shard: &Rc<Shard>, request: &RemotingCommand) -> Result<Route, Failure> {
    let shards = shard.shard_count();
    let target = match family(request.request_code()) {
        Family::Send => {
            let plan = send::plan(shard, request).await?;
            return Ok(Route {
                target: plan.owner(shards),
                plan: Plan::Send(plan),
            });
        }
        Family::Pull | Family::QueueOffset => {
            let topic = request.ext("topic").unwrap_or_default();
            let queue_id = request
                .ext("queueId")
                .and_then(|q| q.trim().parse::<i32>().ok())
                .unwrap_or(0);
            shard_for(topic, queue_id, shards)
        }
        Family::SendBack => sendback::owner(request, shards)?,
        Family::ViewById => {
            let offset = request
                .ext("offset")
                .and_then(|o| o.trim().parse::<i64>().ok())
                .unwrap_or(-1);
            match split_offset(offset) {
                Some((owner, _)) if owner.0 < shards => owner,
                _ => {
                    return Err(Failure::Code(
                        ResponseCode::SystemError,
                        format!("can not find message by the offset, {offset}"),
                    ))
                }
            }
        }
        Family::Control | Family::ResetOffset | Family::ConsumerStatus => CONTROL_SHARD,
        Family::Transaction => transaction::half_owner(shards),
        Family::Reply
        | Family::Query
        | Family::Stats
        | Family::OffsetTables
        | Family::TopicList
        | Family::CheckClientConfig
        | Family::Timer
        | Family::Unsupported => shard.id,
    };
    Ok(Route {
        target,
        plan: Plan::None,
    })
}

/// Runs a request's processor on this shard (it owns the request's state). The reply is final
/// once the returned [`Settle`] is done (a stored send's SYNC_FLUSH and slave waits).
pub async fn process_local(
    shard: &Rc<Shard>,
    request: &RemotingCommand,
    client: &ClientMeta,
    plan: Plan,
) -> (RemotingCommand, Settle) {
    let mut settle = Settle::Done;
    let outcome: Outcome = match family(request.request_code()) {
        Family::Send => {
            let Plan::Send(plan) = plan else {
                unreachable!("every send is planned by route()")
            };
            send::process_deferred(shard, request, plan, client.peer_addr)
                .await
                .map(|(response, pending)| {
                    settle = pending;
                    response
                })
        }
        Family::Pull => pull::process(shard, request).await,
        Family::QueueOffset => offset::process(shard, request).await,
        Family::ViewById => view::process(shard, request).await,
        Family::Control => control::process(shard, request, client).await,
        Family::ResetOffset => reset::process(shard, request).await,
        Family::ConsumerStatus => consumer_status::process(shard, request).await,
        Family::Reply => reply::process(shard, request, client).await,
        Family::Query => query::process(shard, request).await,
        Family::SendBack => sendback::process(shard, request).await,
        Family::Stats => stats::process(shard, request).await,
        Family::OffsetTables => offset_tables::process(shard, request).await,
        Family::TopicList => Ok(super::success(request).with_body(
            rmq_net::codec::body::JsonBody::to_json(&control::topic_list(shard)),
        )),
        Family::Transaction => transaction::process(shard, request).await,
        Family::CheckClientConfig => sql92::check_client_config(shard, request),
        Family::Timer => super::timer::admin::process(shard, request).await,
        Family::Unsupported => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", request.code),
        )),
    };
    let response = outcome
        .unwrap_or_else(|Failure::Code(code, remark)| error_response(request, code, &remark));
    // Before the settle: every stored send counts, whatever its flush or slave outcome.
    stats::observe(shard, request, &response);
    (response, settle)
}
