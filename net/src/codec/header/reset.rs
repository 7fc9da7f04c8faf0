//! Back-tracking and request-reply headers (PROTOCOL.md §4.9): INVOKE_BROKER_TO_RESET_OFFSET
//! (222, admin → broker) and RESET_CONSUMER_CLIENT_OFFSET (220, broker → client) share
//! Java's `ResetOffsetRequestHeader`; PUSH_REPLY_MESSAGE_TO_CLIENT (326, broker → client)
//! carries Java's `ReplyMessageRequestHeader`; INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223,
//! admin → broker) and GET_CONSUMER_STATUS_FROM_CLIENT (221, broker → client) share Java's
//! `GetConsumerStatusRequestHeader`. Must never check ranges or look up state.

command_header! {
    /// INVOKE_BROKER_TO_RESET_OFFSET (222) and RESET_CONSUMER_CLIENT_OFFSET (220) request.
    pub struct ResetOffsetRequestHeader {
        /// Topic whose offsets are reset.
        pub topic: String = "topic",
        /// Consumer group.
        pub group: String = "group",
        /// Store time to go back (or forward) to, ms; -1 means the queue's max offset.
        pub timestamp: i64 = "timestamp",
        /// Move offsets forward too (otherwise only backwards).
        pub is_force: bool = "isForce",
    }
}

command_header! {
    /// PUSH_REPLY_MESSAGE_TO_CLIENT (326) request, broker → requesting client.
    pub struct ReplyMessageRequestHeader {
        /// Producer group of the replier.
        pub producer_group: String = "producerGroup",
        /// Reply topic (`<cluster>_REPLY_TOPIC`).
        pub topic: String = "topic",
        /// Template topic of the reply send.
        pub default_topic: String = "defaultTopic",
        /// Template queue count of the reply send.
        pub default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        /// Queue id of the reply send.
        pub queue_id: i32 = "queueId",
        /// Message sysFlag.
        pub sys_flag: i32 = "sysFlag",
        /// Born time, ms.
        pub born_timestamp: i64 = "bornTimestamp",
        /// Message flag.
        pub flag: i32 = "flag",
        /// Message properties (with PUSH_REPLY_TIME added).
        pub properties: Option<String> = "properties",
        /// Reconsume count.
        pub reconsume_times: Option<i32> = "reconsumeTimes",
        /// Unit mode.
        pub unit_mode: Option<bool> = "unitMode",
        /// Replier's address, `ip:port`.
        pub born_host: String = "bornHost",
        /// This broker's address, `ip:port`.
        pub store_host: String = "storeHost",
        /// When the broker pushed the reply, ms.
        pub store_timestamp: i64 = "storeTimestamp",
    }
}

command_header! {
    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223) and GET_CONSUMER_STATUS_FROM_CLIENT (221)
    /// request.
    pub struct GetConsumerStatusRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Consumer group.
        pub group: String = "group",
        /// Only this client id (Java names the field `clientAddr` but compares client ids).
        pub client_addr: Option<String> = "clientAddr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::header::CommandHeader;

    header_round_trip! {
        reset_offset_request_round_trips: ResetOffsetRequestHeader,
        reply_message_request_round_trips: ReplyMessageRequestHeader,
        get_consumer_status_request_round_trips: GetConsumerStatusRequestHeader,
    }

    #[test]
    fn reset_header_uses_java_names() {
        let header = ResetOffsetRequestHeader {
            topic: "t".into(),
            group: "g".into(),
            timestamp: 42,
            is_force: false,
        };
        let ext = header.to_ext();
        assert_eq!(ext.get("isForce"), Some("false"));
        assert_eq!(ext.get("timestamp"), Some("42"));
        let back = ResetOffsetRequestHeader::from_ext_fields(&ext).expect("round trip");
        assert_eq!(back, header);
    }
}
