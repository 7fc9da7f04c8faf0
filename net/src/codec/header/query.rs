//! Query headers (PROTOCOL.md §4.8): QUERY_MESSAGE (12) request and response,
//! VIEW_MESSAGE_BY_ID (33). Must never search an index.

command_header! {
    /// QUERY_MESSAGE (12) request.
    pub struct QueryMessageRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Message key, or a UNIQ_KEY when `_UNIQUE_KEY_QUERY` is true.
        pub key: String = "key",
        /// Most messages to return.
        pub max_num: i32 = "maxNum",
        /// Store-time window start, ms.
        pub begin_timestamp: i64 = "beginTimestamp",
        /// Store-time window end, ms.
        pub end_timestamp: i64 = "endTimestamp",
        /// Java `MixAll.UNIQUE_MSG_QUERY_FLAG`: `key` is a UNIQ_KEY.
        pub unique_key_query: Option<bool> = "_UNIQUE_KEY_QUERY",
    }
}

impl QueryMessageRequestHeader {
    /// Whether `key` is a UNIQ_KEY (the broker then uses its own max number).
    #[must_use]
    pub fn is_unique_key_query(&self) -> bool {
        self.unique_key_query == Some(true)
    }
}

command_header! {
    /// QUERY_MESSAGE (12) response.
    pub struct QueryMessageResponseHeader {
        /// Index's last update time, ms.
        pub index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        /// Index's last physical offset.
        pub index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

command_header! {
    /// VIEW_MESSAGE_BY_ID (33) request.
    pub struct ViewMessageRequestHeader {
        /// CommitLog physical offset.
        pub offset: i64 = "offset",
        /// Topic (5.x).
        pub topic: Option<String> = "topic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    header_round_trip! {
        query_message_request: QueryMessageRequestHeader,
        query_message_response: QueryMessageResponseHeader,
        view_message_request: ViewMessageRequestHeader,
    }
}
