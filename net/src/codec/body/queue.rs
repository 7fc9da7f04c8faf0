//! `MessageQueue` and the orderly-lock bodies (PROTOCOL.md §4.7, §5.5): LOCK_BATCH_MQ (41)
//! request and reply, UNLOCK_BATCH_MQ (42) request. Must never hold lock state.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::lenient;

/// A queue: (topic, brokerName, queueId). Fields in JSON-name order; ordered as Java's
/// `compareTo` (topic, then brokerName, then queueId).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageQueue {
    /// Broker name.
    pub broker_name: String,
    /// Queue id.
    #[serde(deserialize_with = "lenient::i32")]
    pub queue_id: i32,
    /// Topic.
    pub topic: String,
}

impl MessageQueue {
    /// A queue from its parts.
    #[must_use]
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self {
            broker_name: broker_name.into(),
            queue_id,
            topic: topic.into(),
        }
    }
}

impl Ord for MessageQueue {
    fn cmp(&self, other: &Self) -> Ordering {
        self.topic
            .cmp(&other.topic)
            .then_with(|| self.broker_name.cmp(&other.broker_name))
            .then_with(|| self.queue_id.cmp(&other.queue_id))
    }
}

impl PartialOrd for MessageQueue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// LOCK_BATCH_MQ (41) request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    /// Requesting client.
    pub client_id: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Queues to lock.
    pub mq_set: Vec<MessageQueue>,
    /// Lock only on this broker (5.x proxy use).
    #[serde(deserialize_with = "lenient::bool")]
    pub only_this_broker: bool,
}

/// UNLOCK_BATCH_MQ (42) request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UnlockBatchRequestBody {
    /// Requesting client.
    pub client_id: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Queues to unlock.
    pub mq_set: Vec<MessageQueue>,
    /// Unlock only on this broker.
    #[serde(deserialize_with = "lenient::bool")]
    pub only_this_broker: bool,
}

/// LOCK_BATCH_MQ (41) reply body: the queues this client now holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    /// Locked queues (Java key `lockOKMQSet`).
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::body::JsonBody;

    #[test]
    fn lock_bodies_match_protocol() {
        let request = r#"{"clientId":"10.0.0.5@12345","consumerGroup":"G","mqSet":[{"brokerName":"broker-a","queueId":0,"topic":"T"}],"onlyThisBroker":false}"#;
        let parsed = LockBatchRequestBody::from_json(request.as_bytes()).expect("valid");
        assert_eq!(parsed.mq_set, vec![MessageQueue::new("T", "broker-a", 0)]);
        assert_eq!(String::from_utf8(parsed.to_json()).expect("utf-8"), request);
        let unlock = UnlockBatchRequestBody::from_json(request.as_bytes()).expect("valid");
        assert_eq!(String::from_utf8(unlock.to_json()).expect("utf-8"), request);

        let reply = LockBatchResponseBody {
            lock_ok_mq_set: parsed.mq_set,
        };
        assert_eq!(
            String::from_utf8(reply.to_json()).expect("utf-8"),
            r#"{"lockOKMQSet":[{"brokerName":"broker-a","queueId":0,"topic":"T"}]}"#
        );
    }

    #[test]
    fn ordering_is_topic_broker_queue() {
        let mut queues = vec![
            MessageQueue::new("B", "a", 0),
            MessageQueue::new("A", "b", 1),
            MessageQueue::new("A", "b", 0),
            MessageQueue::new("A", "a", 9),
        ];
        queues.sort();
        assert_eq!(
            queues,
            vec![
                MessageQueue::new("A", "a", 9),
                MessageQueue::new("A", "b", 0),
                MessageQueue::new("A", "b", 1),
                MessageQueue::new("B", "a", 0),
            ]
        );
    }

    proptest! {
        #[test]
        fn lock_request_round_trips(
            client in any::<String>(),
            group in any::<String>(),
            queues in proptest::collection::vec((any::<String>(), any::<String>(), any::<i32>()), 0..5),
            only in any::<bool>(),
        ) {
            let body = LockBatchRequestBody {
                client_id: client,
                consumer_group: group,
                mq_set: queues.into_iter().map(|(t, b, q)| MessageQueue::new(t, b, q)).collect(),
                only_this_broker: only,
            };
            prop_assert_eq!(LockBatchRequestBody::from_json(&body.to_json()), Ok(body));
        }
    }
}
