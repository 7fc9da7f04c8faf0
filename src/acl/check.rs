//! The per-request ACL check, as Java 4.9's `PlainAccessValidator.parse` (which resources a
//! request code touches, with which permission) and `PlainPermissionManager.validate` (global
//! white list, account, account white list, signature, admin codes, resource permissions).
//! Pure: a configuration, the peer address and the request in; allowed or a [`Denied`] remark
//! out.
//!
//! Must never: name a secret key or the expected signature in a remark, or decide on anything
//! but the request's own fields and body.

use std::net::IpAddr;

use rmq_net::codec::acl_sign::{self, ACCESS_KEY, SIGNATURE};
use rmq_net::codec::body::heartbeat::HeartbeatData;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::RemotingCommand;

use super::{address, group_resource, Account, AclConfig, Perm, RETRY_GROUP_TOPIC_PREFIX};

/// Java's `TopicValidator.RMQ_SYS_TRACE_TOPIC`: sending traces to it needs no topic permission.
const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// A refused request: the NO_PERMISSION remark saying what was missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl Denied {
    /// The NO_PERMISSION (16) response to `request`. (Java 4.9 answers an `AclException` with
    /// SYSTEM_ERROR and the exception text; the remark here is the same message.)
    #[must_use]
    pub fn response(&self, request: &RemotingCommand) -> RemotingCommand {
        crate::failure::error_response(request, ResponseCode::NoPermission, &self.0)
    }
}

/// Java's `Permission.ADMIN_CODE`: requests only an `admin: true` account may send.
#[must_use]
pub fn is_admin_code(code: RequestCode) -> bool {
    matches!(
        code,
        RequestCode::UpdateAndCreateTopic
            | RequestCode::UpdateBrokerConfig
            | RequestCode::DeleteTopicInBroker
            | RequestCode::UpdateAndCreateSubscriptionGroup
            | RequestCode::DeleteSubscriptionGroup
    )
}

/// The resources `request` touches and the permission each needs (Java's `parse`): a
/// consumer group is the resource `%RETRY%<group>`. A missing field adds nothing (the
/// processor refuses the request itself).
///
/// # Errors
/// [`Denied`] when a HEART_BEAT body does not decode (Java refuses it as an ACL failure).
pub fn resources(request: &RemotingCommand) -> Result<Vec<(String, Perm)>, Denied> {
    let mut needed = Vec::new();
    let mut add = |resource: Option<String>, perm: Perm| {
        if let Some(resource) = resource {
            // Java keeps one entry per resource, the last added.
            needed.retain(|(r, _): &(String, Perm)| *r != resource);
            needed.push((resource, perm));
        }
    };
    let field = |key: &str| request.ext(key).map(str::to_owned);
    let group = |key: &str| request.ext(key).map(group_resource);
    let send = |topic_key: &str, group_key: &str| match request.ext(topic_key) {
        Some(topic) if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) => (group(group_key), Perm::SUB),
        topic => (topic.map(str::to_owned), Perm::PUB),
    };
    match request.request_code() {
        RequestCode::SendMessage => {
            let (resource, perm) = send("topic", "producerGroup");
            add(resource, perm);
        }
        // Java 4.9 does not list SEND_BATCH_MESSAGE and so lets a batch through without PUB;
        // a batch carries the V2 (or V1) send header and is checked as the send it is.
        RequestCode::SendMessageV2 | RequestCode::SendBatchMessage
            if request.ext("b").is_some() =>
        {
            let (resource, perm) = send("b", "a");
            add(resource, perm);
        }
        RequestCode::SendBatchMessage => {
            let (resource, perm) = send("topic", "producerGroup");
            add(resource, perm);
        }
        RequestCode::SendMessageV2 => {}
        RequestCode::ConsumerSendMsgBack => add(group("group"), Perm::SUB),
        RequestCode::PullMessage | RequestCode::LitePullMessage => {
            add(field("topic"), Perm::SUB);
            add(group("consumerGroup"), Perm::SUB);
        }
        RequestCode::QueryMessage => add(field("topic"), Perm::SUB),
        RequestCode::HeartBeat => {
            let data = HeartbeatData::from_json(&request.body)
                .map_err(|err| Denied(format!("the heartbeat body does not decode: {err}")))?;
            for consumer in &data.consumer_data_set {
                add(Some(group_resource(&consumer.group_name)), Perm::SUB);
                for subscription in &consumer.subscription_data_set {
                    add(Some(subscription.topic.clone()), Perm::SUB);
                }
            }
        }
        RequestCode::UnregisterClient | RequestCode::GetConsumerListByGroup => {
            add(group("consumerGroup"), Perm::SUB);
        }
        RequestCode::UpdateConsumerOffset => {
            add(group("consumerGroup"), Perm::SUB);
            add(field("topic"), Perm::SUB);
        }
        _ => {}
    }
    Ok(needed)
}

/// Checks `request` from `peer` against `config` (Java's `validate`).
///
/// # Errors
/// [`Denied`] with what was missing.
pub fn check(config: &AclConfig, peer: IpAddr, request: &RemotingCommand) -> Result<(), Denied> {
    if config
        .global_white_remote_addresses
        .iter()
        .any(|pattern| pattern.matches(peer))
    {
        return Ok(());
    }
    let Some(access_key) = request.ext(ACCESS_KEY) else {
        return Err(Denied(format!(
            "No accessKey is configured: the request from {} carries no AccessKey and the address is not in globalWhiteRemoteAddresses",
            address::display(peer)
        )));
    };
    let Some(account) = config.accounts.get(access_key) else {
        return Err(Denied(format!("No acl config for {access_key}")));
    };
    if account.white_remote_address.matches(peer) {
        return Ok(());
    }
    let claimed = request.ext(SIGNATURE).unwrap_or_default();
    if !acl_sign::verify(
        &request.ext_fields,
        &request.body,
        &account.secret_key,
        claimed,
    ) {
        return Err(Denied(format!(
            "Check signature failed for accessKey={access_key}"
        )));
    }
    let needed = resources(request)?;
    if needed
        .iter()
        .any(|(resource, perm)| resource == TRACE_TOPIC && *perm == Perm::PUB)
    {
        return Ok(());
    }
    check_perms(account, request.request_code(), &needed)
}

/// Java's `checkPerm`: admin codes, then each resource against its explicit or default
/// permission.
fn check_perms(
    account: &Account,
    code: RequestCode,
    needed: &[(String, Perm)],
) -> Result<(), Denied> {
    if is_admin_code(code) && !account.admin {
        return Err(Denied(format!(
            "Need admin permission for request code={}, but accessKey={} is not",
            code.value(),
            account.access_key
        )));
    }
    // Java: an admin without any topicPerms/groupPerms owns every resource.
    if needed.is_empty() || (account.admin && account.resource_perms.is_empty()) {
        return Ok(());
    }
    for (resource, perm) in needed {
        let group = resource.strip_prefix(RETRY_GROUP_TOPIC_PREFIX);
        let (owned, source) = match account.resource_perms.get(resource) {
            Some(owned) => (*owned, ""),
            None if group.is_some() => (account.default_group_perm, " (defaultGroupPerm)"),
            None => (account.default_topic_perm, " (defaultTopicPerm)"),
        };
        if !Perm::grants(owned, *perm) {
            let what = match group {
                Some(group) => format!("group:{group}"),
                None => format!("topic:{resource}"),
            };
            return Err(Denied(format!(
                "No permission for {what}: the request needs {perm}, accessKey={} has {owned}{source}",
                account.access_key
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::file;
    use rmq_net::codec::acl_sign::Credentials;
    use rmq_net::ExtFields;

    const ACL: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: producer1
    secretKey: producer-secret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - orders=PUB
      - audit=SUB
    groupPerms:
      - blocked=DENY
  - accessKey: admin001
    secretKey: admin-secret
    whiteRemoteAddress: 192.168.1.*
    admin: true
"#;

    fn config() -> AclConfig {
        file::parse(ACL).expect("test ACL")
    }

    fn peer(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn signed(
        code: RequestCode,
        pairs: &[(&str, &str)],
        body: &[u8],
        key: &str,
        secret: &str,
    ) -> RemotingCommand {
        let ext: ExtFields = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut request = RemotingCommand::request(code, ext).with_body(body.to_vec());
        acl_sign::sign(
            &mut request,
            &Credentials {
                access_key: key.into(),
                secret_key: secret.into(),
                security_token: None,
            },
        );
        request
    }

    fn remark(result: Result<(), Denied>) -> String {
        result.expect_err("denied").0
    }

    const OUTSIDE: &str = "127.0.0.1";

    #[test]
    fn a_signed_send_with_pub_passes_and_without_is_refused() {
        let config = config();
        let ok = signed(
            RequestCode::SendMessageV2,
            &[("a", "pg"), ("b", "orders")],
            b"m",
            "producer1",
            "producer-secret",
        );
        assert_eq!(check(&config, peer(OUTSIDE), &ok), Ok(()));
        let other = signed(
            RequestCode::SendMessageV2,
            &[("a", "pg"), ("b", "audit")],
            b"m",
            "producer1",
            "producer-secret",
        );
        let why = remark(check(&config, peer(OUTSIDE), &other));
        assert!(
            why.contains("topic:audit") && why.contains("needs PUB"),
            "{why}"
        );
        let default = signed(
            RequestCode::SendMessage,
            &[("producerGroup", "pg"), ("topic", "misc")],
            b"m",
            "producer1",
            "producer-secret",
        );
        let why = remark(check(&config, peer(OUTSIDE), &default));
        assert!(why.contains("defaultTopicPerm"), "{why}");
    }

    #[test]
    fn wrong_secrets_unknown_keys_and_tampering_are_refused() {
        let config = config();
        let wrong = signed(
            RequestCode::SendMessageV2,
            &[("b", "orders")],
            b"m",
            "producer1",
            "not-the-secret",
        );
        let why = remark(check(&config, peer(OUTSIDE), &wrong));
        assert_eq!(why, "Check signature failed for accessKey=producer1");
        assert!(!why.contains("producer-secret"));
        let unknown = signed(
            RequestCode::SendMessageV2,
            &[("b", "orders")],
            b"m",
            "stranger",
            "whatever1",
        );
        assert_eq!(
            remark(check(&config, peer(OUTSIDE), &unknown)),
            "No acl config for stranger"
        );
        let mut tampered = signed(
            RequestCode::SendMessageV2,
            &[("b", "orders")],
            b"m",
            "producer1",
            "producer-secret",
        );
        tampered.body = bytes::Bytes::from_static(b"changed");
        assert!(remark(check(&config, peer(OUTSIDE), &tampered)).contains("Check signature failed"));
        let unsigned = RemotingCommand::request(RequestCode::SendMessageV2, ExtFields::new());
        assert!(remark(check(&config, peer(OUTSIDE), &unsigned)).contains("No accessKey"));
    }

    #[test]
    fn white_lists_skip_the_check() {
        let config = config();
        let unsigned =
            RemotingCommand::request(RequestCode::UpdateAndCreateTopic, ExtFields::new());
        assert_eq!(check(&config, peer("10.10.103.4"), &unsigned), Ok(()));
        let mut by_admin = unsigned.clone();
        by_admin.ext_fields.insert("AccessKey", "admin001");
        assert_eq!(check(&config, peer("192.168.1.20"), &by_admin), Ok(()));
        assert!(remark(check(&config, peer("192.168.2.20"), &by_admin)).contains("signature"));
    }

    #[test]
    fn admin_codes_need_admin() {
        let config = config();
        let create = signed(
            RequestCode::UpdateAndCreateTopic,
            &[("topic", "orders")],
            b"",
            "producer1",
            "producer-secret",
        );
        let why = remark(check(&config, peer(OUTSIDE), &create));
        assert!(
            why.contains("Need admin permission for request code=17"),
            "{why}"
        );
        let by_admin = signed(
            RequestCode::UpdateAndCreateTopic,
            &[("topic", "orders")],
            b"",
            "admin001",
            "admin-secret",
        );
        assert_eq!(check(&config, peer(OUTSIDE), &by_admin), Ok(()));
    }

    #[test]
    fn pulls_need_sub_on_topic_and_group() {
        let config = config();
        let pull = |group: &str, topic: &str| {
            signed(
                RequestCode::PullMessage,
                &[("consumerGroup", group), ("topic", topic)],
                b"",
                "producer1",
                "producer-secret",
            )
        };
        assert_eq!(check(&config, peer(OUTSIDE), &pull("cg", "audit")), Ok(()));
        assert!(
            remark(check(&config, peer(OUTSIDE), &pull("cg", "orders"))).contains("topic:orders")
        );
        let why = remark(check(&config, peer(OUTSIDE), &pull("blocked", "audit")));
        assert!(
            why.contains("group:blocked") && why.contains("DENY"),
            "{why}"
        );
        // Sending to a retry topic is a consumer act: SUB on the group.
        let retry = signed(
            RequestCode::SendMessageV2,
            &[("a", "blocked"), ("b", "%RETRY%blocked")],
            b"",
            "producer1",
            "producer-secret",
        );
        assert!(remark(check(&config, peer(OUTSIDE), &retry)).contains("group:blocked"));
    }

    #[test]
    fn heartbeats_need_sub_on_every_subscribed_topic() {
        let config = config();
        let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"topic":"audit","subString":"*","tagsSet":[],"codeSet":[],"subVersion":1,"classFilterMode":false}],"unitMode":false}],"producerDataSet":[]}"#;
        let ok = signed(
            RequestCode::HeartBeat,
            &[],
            body,
            "producer1",
            "producer-secret",
        );
        assert_eq!(check(&config, peer(OUTSIDE), &ok), Ok(()));
        let body = String::from_utf8_lossy(body).replace("\"audit\"", "\"orders\"");
        let refused = signed(
            RequestCode::HeartBeat,
            &[],
            body.as_bytes(),
            "producer1",
            "producer-secret",
        );
        assert!(remark(check(&config, peer(OUTSIDE), &refused)).contains("topic:orders"));
    }

    #[test]
    fn requests_without_resources_need_only_a_valid_signature() {
        let config = config();
        let info = signed(
            RequestCode::GetBrokerRuntimeInfo,
            &[],
            b"",
            "producer1",
            "producer-secret",
        );
        assert_eq!(check(&config, peer(OUTSIDE), &info), Ok(()));
    }
}
