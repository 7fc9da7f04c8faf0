//! `HeartbeatData` (HEART_BEAT body, PROTOCOL.md §5.6) with `ConsumerData`, `ProducerData` and
//! the enums `ConsumeType`, `MessageModel`, `ConsumeFromWhere` (by name; the C++ client sends
//! ordinals, which decode too).
//!
//! Fields ali-ons, C++ and older clients leave out default to the Java push consumer's values:
//! `CONSUME_PASSIVELY`, `CLUSTERING`, `CONSUME_FROM_LAST_OFFSET`, `unitMode=false`,
//! `heartbeatFingerprint=0`, `withoutSub=false`. Must never keep client state.

use serde::{Deserialize, Serialize};

use super::lenient;
use super::subscription::SubscriptionData;

name_enum! {
    /// How a consumer gets messages.
    pub enum ConsumeType {
        /// Pull / lite-pull consumers.
        ConsumeActively = "CONSUME_ACTIVELY",
        /// Push consumers.
        ConsumePassively = "CONSUME_PASSIVELY",
        /// 5.x POP consumers.
        ConsumePop = "CONSUME_POP",
    }
    default = ConsumePassively;
}

name_enum! {
    /// How a group shares messages.
    pub enum MessageModel {
        /// Every consumer gets every message.
        Broadcasting = "BROADCASTING",
        /// Each message goes to one consumer of the group.
        Clustering = "CLUSTERING",
    }
    default = Clustering;
}

name_enum! {
    /// Where a new consumer group starts.
    pub enum ConsumeFromWhere {
        /// The queue's max offset.
        ConsumeFromLastOffset = "CONSUME_FROM_LAST_OFFSET",
        /// Deprecated.
        ConsumeFromLastOffsetAndFromMinWhenBootFirst =
            "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        /// Deprecated.
        ConsumeFromMinOffset = "CONSUME_FROM_MIN_OFFSET",
        /// Deprecated.
        ConsumeFromMaxOffset = "CONSUME_FROM_MAX_OFFSET",
        /// Offset 0.
        ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET",
        /// By timestamp.
        ConsumeFromTimestamp = "CONSUME_FROM_TIMESTAMP",
    }
    default = ConsumeFromLastOffset;
}

/// One consumer group a client belongs to. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerData {
    /// Where a new group starts.
    pub consume_from_where: ConsumeFromWhere,
    /// Push, pull or POP.
    pub consume_type: ConsumeType,
    /// Group name.
    pub group_name: String,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// Subscriptions, one per topic.
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode.
    #[serde(deserialize_with = "lenient::bool")]
    pub unit_mode: bool,
}

/// One producer group a client belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProducerData {
    /// Group name.
    pub group_name: String,
}

/// HEART_BEAT (34) body. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeartbeatData {
    /// `ip@instance` (Java spells the key `clientID`).
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// Consumer groups.
    pub consumer_data_set: Vec<ConsumerData>,
    /// Heartbeat v2 fingerprint; 0 = v1.
    #[serde(deserialize_with = "lenient::i32")]
    pub heartbeat_fingerprint: i32,
    /// Producer groups.
    pub producer_data_set: Vec<ProducerData>,
    /// Heartbeat v2: subscriptions left out because unchanged.
    #[serde(deserialize_with = "lenient::bool")]
    pub without_sub: bool,
}

impl HeartbeatData {
    /// Recomputes every tag subscription's `tagsSet`/`codeSet` from its `subString`
    /// ([`SubscriptionData::recompute_tags`]). Call this on every received heartbeat.
    pub fn recompute_tags(&mut self) {
        self.consumer_data_set
            .iter_mut()
            .flat_map(|consumer| consumer.subscription_data_set.iter_mut())
            .for_each(SubscriptionData::recompute_tags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::JsonBody;

    #[test]
    fn protocol_example_round_trips_byte_for_byte() {
        let expected = concat!(
            r#"{"clientID":"10.0.0.5@12345","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","#,
            r#""consumeType":"CONSUME_PASSIVELY","groupName":"G","messageModel":"CLUSTERING","subscriptionDataSet":["#,
            r#"{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","#,
            r#""subVersion":1700000000123,"tagsSet":["TagA","TagB"],"topic":"T"},"#,
            r#"{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","#,
            r#""subVersion":1700000000124,"tagsSet":[],"topic":"%RETRY%G"}],"unitMode":false}],"#,
            r#""heartbeatFingerprint":0,"producerDataSet":[{"groupName":"PG"},{"groupName":"CLIENT_INNER_PRODUCER"}],"#,
            r#""withoutSub":false}"#
        );
        let data = HeartbeatData::from_json(expected.as_bytes()).expect("valid heartbeat");
        assert_eq!(
            data.consumer_data_set[0].subscription_data_set[0].code_set,
            [2_598_919, 2_598_920]
        );
        assert_eq!(String::from_utf8(data.to_json()).expect("utf-8"), expected);
    }

    #[test]
    fn enums_by_name_or_ordinal() {
        assert_eq!(
            ConsumeFromWhere::from_ordinal(4),
            Some(ConsumeFromWhere::ConsumeFromFirstOffset)
        );
        assert_eq!(ConsumeFromWhere::from_ordinal(6), None);
        assert_eq!(ConsumeFromWhere::from_ordinal(-1), None);
        assert_eq!(
            ConsumeFromWhere::from_name("CONSUME_FROM_MIN_OFFSET"),
            Some(ConsumeFromWhere::ConsumeFromMinOffset)
        );
        for (index, value) in ConsumeType::ALL.iter().enumerate() {
            let ordinal = i64::try_from(index).expect("small");
            assert_eq!(ConsumeType::from_ordinal(ordinal), Some(*value));
            assert_eq!(ConsumeType::from_name(value.name()), Some(*value));
        }
        let data: ConsumerData = crate::codec::body::parse_lenient(
            "ConsumerData",
            br#"{"consumeType":2,"messageModel":0}"#,
        )
        .expect("ordinals decode");
        assert_eq!(data.consume_type, ConsumeType::ConsumePop);
        assert_eq!(data.message_model, MessageModel::Broadcasting);
        assert!(crate::codec::body::parse_lenient::<ConsumerData>(
            "c",
            br#"{"consumeType":"PUSH"}"#
        )
        .is_err());
        assert!(
            crate::codec::body::parse_lenient::<ConsumerData>("c", br#"{"consumeType":9}"#)
                .is_err()
        );
    }
}
