//! Client-facing small bodies (PROTOCOL.md §4.6, §4.9, §5.5): the GET_CONSUMER_LIST_BY_GROUP
//! (38) reply, `Connection` / `ConsumerConnection` / `ProducerConnection` (203/204 replies) and
//! `CheckClientRequestBody` (46). Must never look up clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::heartbeat::{ConsumeFromWhere, ConsumeType, MessageModel};
use super::lenient;
use super::subscription::SubscriptionData;
use crate::codec::codes::LanguageCode;

/// GET_CONSUMER_LIST_BY_GROUP (38) reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GetConsumerListByGroupResponseBody {
    /// The live consumers' client ids.
    pub consumer_id_list: Vec<String>,
}

/// One client connection as admin tools see it. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Connection {
    /// Remote `ip:port`.
    pub client_addr: String,
    /// Client id.
    pub client_id: String,
    /// Client language, by name.
    #[serde(
        serialize_with = "language_name",
        deserialize_with = "language_name_or_code"
    )]
    pub language: LanguageCode,
    /// Client `MQVersion` ordinal.
    #[serde(deserialize_with = "lenient::i32")]
    pub version: i32,
}

fn language_name<S: Serializer>(language: &LanguageCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(language.name())
}

fn language_name_or_code<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<LanguageCode, D::Error> {
    lenient::deserialize_name_enum(
        deserializer,
        "LanguageCode",
        |name| Some(LanguageCode::from_name(name)),
        |code| u8::try_from(code).ok().map(LanguageCode::from_code),
    )
}

/// GET_CONSUMER_CONNECTION_LIST (203) reply body. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerConnection {
    /// The group's connections.
    pub connection_set: Vec<Connection>,
    /// Where the group starts.
    pub consume_from_where: ConsumeFromWhere,
    /// Push, pull or POP.
    pub consume_type: ConsumeType,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// topic -> subscription.
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

/// GET_PRODUCER_CONNECTION_LIST (204) reply body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProducerConnection {
    /// The group's connections.
    pub connection_set: Vec<Connection>,
}

/// CHECK_CLIENT_CONFIG (46) request body. Fields in JSON-name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckClientRequestBody {
    /// Client id.
    pub client_id: String,
    /// Consumer group.
    pub group: String,
    /// Namespace (5.x), omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The subscription to check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::JsonBody;

    #[test]
    fn consumer_connection_matches_java_shape() {
        let mut connection = ConsumerConnection {
            connection_set: vec![Connection {
                client_addr: "10.0.0.5:50000".into(),
                client_id: "10.0.0.5@1".into(),
                language: LanguageCode::Java,
                version: 479,
            }],
            ..ConsumerConnection::default()
        };
        connection
            .subscription_table
            .insert("T".into(), SubscriptionData::new_tag("T", "*", 5));
        let expected = concat!(
            r#"{"connectionSet":[{"clientAddr":"10.0.0.5:50000","clientId":"10.0.0.5@1","language":"JAVA","version":479}],"#,
            r#""consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","#,
            r#""subscriptionTable":{"T":{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","#,
            r#""subVersion":5,"tagsSet":[],"topic":"T"}}}"#
        );
        assert_eq!(
            String::from_utf8(connection.to_json()).expect("utf-8"),
            expected
        );
        assert_eq!(
            ConsumerConnection::from_json(expected.as_bytes()),
            Ok(connection)
        );
        let by_code = ProducerConnection::from_json(br#"{"connectionSet":[{"language":13}]}"#)
            .expect("valid");
        assert_eq!(by_code.connection_set[0].language, LanguageCode::NodeJs);
    }

    #[test]
    fn small_bodies() {
        let list = GetConsumerListByGroupResponseBody {
            consumer_id_list: vec!["10.0.0.5@12345".into(), "10.0.0.6@23456".into()],
        };
        assert_eq!(
            String::from_utf8(list.to_json()).expect("utf-8"),
            r#"{"consumerIdList":["10.0.0.5@12345","10.0.0.6@23456"]}"#
        );
        let check = CheckClientRequestBody::from_json(
            br#"{"clientId":"c","group":"G","subscriptionData":{"expressionType":"SQL92","subString":"a > 1","topic":"T"}}"#,
        )
        .expect("valid");
        assert_eq!(check.namespace, None);
        let sub = check.subscription_data.as_ref().expect("present");
        assert_eq!(sub.expression_type, "SQL92");
        assert!(!sub.is_tag_type());
        assert_eq!(
            CheckClientRequestBody::from_json(&check.to_json()),
            Ok(check)
        );
    }
}
