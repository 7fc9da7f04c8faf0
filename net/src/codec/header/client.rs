//! Client-management headers (PROTOCOL.md §4.6): UNREGISTER_CLIENT (35),
//! GET_CONSUMER_LIST_BY_GROUP (38), NOTIFY_CONSUMER_IDS_CHANGED (40, broker→client) and the
//! HEART_BEAT (34) response extFields. HEART_BEAT itself has no request header (its body is
//! `HeartbeatData`). Must never track client state.

command_header! {
    /// UNREGISTER_CLIENT (35) request.
    pub struct UnregisterClientRequestHeader {
        /// The client's id (`ip@instance`), Java spells it `clientID`.
        pub client_id: String = "clientID",
        /// Producer group to leave.
        pub producer_group: Option<String> = "producerGroup",
        /// Consumer group to leave.
        pub consumer_group: Option<String> = "consumerGroup",
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38) request.
    pub struct GetConsumerListByGroupRequestHeader {
        /// Consumer group.
        pub consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// NOTIFY_CONSUMER_IDS_CHANGED (40) request, broker → client, oneway.
    pub struct NotifyConsumerIdsChangedRequestHeader {
        /// Consumer group whose membership changed.
        pub consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// HEART_BEAT (34) response extFields.
    pub struct HeartbeatResponseHeader {
        /// The broker understands heartbeat v2 (fingerprints, `withoutSub`).
        pub is_support_heart_beat_v2: bool = "IS_SUPPORT_HEART_BEAT_V2" or false,
        /// The subscription changed; `true` forces the client to send full heartbeats.
        pub is_sub_change: bool = "IS_SUB_CHANGE" or false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::command::ExtFields;
    use crate::codec::header::CommandHeader;

    header_round_trip! {
        unregister_client_request: UnregisterClientRequestHeader,
        get_consumer_list_by_group_request: GetConsumerListByGroupRequestHeader,
        notify_consumer_ids_changed_request: NotifyConsumerIdsChangedRequestHeader,
        heartbeat_response: HeartbeatResponseHeader,
    }

    #[test]
    fn heartbeat_response_writes_both_keys() {
        let ext = HeartbeatResponseHeader {
            is_support_heart_beat_v2: true,
            is_sub_change: false,
        }
        .to_ext();
        let expected: ExtFields = [
            ("IS_SUB_CHANGE".to_owned(), "false".to_owned()),
            ("IS_SUPPORT_HEART_BEAT_V2".to_owned(), "true".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(ext, expected);
    }
}
