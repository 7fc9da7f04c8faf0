//! Broker admin headers (PROTOCOL.md §4.9): UPDATE_AND_CREATE_TOPIC (17),
//! DELETE_TOPIC_IN_BROKER (215), GET_TOPIC_STATS_INFO (202), GET_CONSUMER_CONNECTION_LIST (203),
//! GET_CONSUME_STATS (208). Must never validate topic names or permissions.

use crate::codec::body::topic::TopicFilterType;

command_header! {
    /// UPDATE_AND_CREATE_TOPIC (17) request.
    pub struct CreateTopicRequestHeader {
        /// Topic to create or update.
        pub topic: String = "topic",
        /// Template topic.
        pub default_topic: String = "defaultTopic",
        /// Read queue count.
        pub read_queue_nums: i32 = "readQueueNums",
        /// Write queue count.
        pub write_queue_nums: i32 = "writeQueueNums",
        /// `PermName` bits.
        pub perm: i32 = "perm",
        /// `SINGLE_TAG` or `MULTI_TAG`; any other name is invalid.
        pub topic_filter_type: TopicFilterType = "topicFilterType",
        /// Topic sysFlag.
        pub topic_sys_flag: Option<i32> = "topicSysFlag",
        /// Order topic.
        pub order: bool = "order",
        /// `+name=value` entries separated by commas.
        pub attributes: Option<String> = "attributes",
        /// Force the update.
        pub force: Option<bool> = "force",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_BROKER (215) request.
    pub struct DeleteTopicRequestHeader {
        /// Topic to delete.
        pub topic: String = "topic",
    }
}

command_header! {
    /// GET_TOPIC_STATS_INFO (202) request.
    pub struct GetTopicStatsInfoRequestHeader {
        /// Topic.
        pub topic: String = "topic",
    }
}

command_header! {
    /// VIEW_BROKER_STATS_DATA (315) request.
    pub struct ViewBrokerStatsDataRequestHeader {
        /// Stats item: `TOPIC_PUT_NUMS` or `GROUP_GET_NUMS`.
        pub stats_name: String = "statsName",
        /// A topic, or `topic@group`.
        pub stats_key: String = "statsKey",
    }
}

command_header! {
    /// GET_CONSUMER_CONNECTION_LIST (203) request.
    pub struct GetConsumerConnectionListRequestHeader {
        /// Consumer group.
        pub consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUME_STATS (208) request.
    pub struct GetConsumeStatsRequestHeader {
        /// Consumer group.
        pub consumer_group: String = "consumerGroup",
        /// Restrict to one topic.
        pub topic: Option<String> = "topic",
        /// Restrict to these topics (5.x, `;`-separated).
        pub topic_list: Option<String> = "topicList",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::error::CodecError;
    use crate::codec::header::CommandHeader;

    header_round_trip! {
        create_topic_request: CreateTopicRequestHeader,
        delete_topic_request: DeleteTopicRequestHeader,
        get_topic_stats_info_request: GetTopicStatsInfoRequestHeader,
        get_consumer_connection_list_request: GetConsumerConnectionListRequestHeader,
        view_broker_stats_data_request: ViewBrokerStatsDataRequestHeader,
        get_consume_stats_request: GetConsumeStatsRequestHeader,
    }

    #[test]
    fn create_topic_rejects_unknown_filter_type() {
        let mut ext = CreateTopicRequestHeader {
            topic: "T".into(),
            default_topic: "TBW102".into(),
            read_queue_nums: 8,
            write_queue_nums: 8,
            perm: 6,
            ..CreateTopicRequestHeader::default()
        }
        .to_ext();
        assert_eq!(ext.get("topicFilterType"), Some("SINGLE_TAG"));
        ext.insert("topicFilterType", "ANY_TAG");
        assert_eq!(
            CreateTopicRequestHeader::from_ext_fields(&ext),
            Err(CodecError::InvalidField {
                field: "topicFilterType",
                value: "ANY_TAG".into()
            })
        );
    }
}
