//! Subscription-group administration on the control shard: UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
//! (200), GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), DELETE_SUBSCRIPTIONGROUP (207; `cleanOffset`
//! also drops the group's consumer offsets on every shard).
//!
//! Must never: answer a change before it is journaled and installed on every shard.

use std::rc::Rc;

use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::RemotingCommand;

use crate::broker::replicate;
use crate::broker::shard::Shard;
use crate::broker::{success, Failure, Outcome};
use crate::runtime::clock::now_ms;
use crate::runtime::mesh::broadcast;
use crate::tables::groups::{GroupError, SubscriptionGroupConfig};

use super::{assert_control, required_ext};

/// Maps a group-table error to a response.
fn group_failure(err: &GroupError) -> Failure {
    let code = match err {
        GroupError::InvalidName { .. } => ResponseCode::InvalidParameter,
        GroupError::NotExist(_) => ResponseCode::SubscriptionGroupNotExist,
        _ => ResponseCode::SystemError,
    };
    Failure::Code(code, err.to_string())
}

/// Processes a subscription-group admin request.
pub async fn admin(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    assert_control(shard);
    let control = shard.control();
    match request.request_code() {
        RequestCode::UpdateAndCreateSubscriptionGroup => {
            let config = SubscriptionGroupConfig::from_json(&request.body)?;
            control
                .groups
                .borrow_mut()
                .update(config, now_ms())
                .map_err(|e| group_failure(&e))?;
            replicate::publish_groups(shard).await;
            Ok(success(request))
        }
        RequestCode::GetAllSubscriptionGroupConfig => {
            let wrapper = control.groups.borrow().to_wrapper();
            crate::broker::table_reply(request, "subscription group", wrapper.to_json())
        }
        RequestCode::DeleteSubscriptionGroup => {
            let group = required_ext(request, "groupName")?.to_owned();
            let clean_offset = request
                .ext("cleanOffset")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let removed = control.groups.borrow_mut().delete(&group, now_ms());
            if removed.is_some() {
                tracing::info!(group, clean_offset, "subscription group deleted");
                replicate::publish_groups(shard).await;
            }
            if clean_offset {
                let dropped = broadcast(shard, move |s: Rc<Shard>| async move {
                    let entries = s.offsets.borrow_mut().delete_group(&group);
                    tracing::debug!(shard = s.id.0, entries, group, "consumer offsets dropped");
                })
                .await;
                if let Some(Err(err)) = dropped.into_iter().find(Result::is_err) {
                    return Err(Failure::from(err));
                }
            }
            Ok(success(request))
        }
        code => Err(Failure::Code(
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {} not supported", code.value()),
        )),
    }
}
