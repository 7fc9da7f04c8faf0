//! Offset headers (PROTOCOL.md §4.5): QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15),
//! GET_MAX_OFFSET (30), GET_MIN_OFFSET (31), SEARCH_OFFSET_BY_TIMESTAMP (29) with its
//! [`BoundaryType`], GET_EARLIEST_MSG_STORETIME (32). Must never decide offset semantics
//! (what "not found" means is the processor's business).

command_header! {
    /// QUERY_CONSUMER_OFFSET (14) request.
    pub struct QueryConsumerOffsetRequestHeader {
        /// Consumer group.
        pub consumer_group: String = "consumerGroup",
        /// Topic.
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
        /// Java treats `None` like `true`: only an explicit `false` skips the zero fallback.
        pub set_zero_if_not_found: Option<bool> = "setZeroIfNotFound",
    }
}

command_header! {
    /// QUERY_CONSUMER_OFFSET (14) response.
    pub struct QueryConsumerOffsetResponseHeader {
        /// The committed offset.
        pub offset: i64 = "offset",
    }
}

command_header! {
    /// UPDATE_CONSUMER_OFFSET (15) request (usually oneway); no response header.
    pub struct UpdateConsumerOffsetRequestHeader {
        /// Consumer group.
        pub consumer_group: String = "consumerGroup",
        /// Topic.
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
        /// Offset to commit.
        pub commit_offset: i64 = "commitOffset",
    }
}

command_header! {
    /// GET_MAX_OFFSET (30) request.
    pub struct GetMaxOffsetRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
        /// Committed (replicated) max rather than the raw one; Java default true.
        pub committed: bool = "committed" or true,
    }
}

command_header! {
    /// GET_MAX_OFFSET (30) response.
    pub struct GetMaxOffsetResponseHeader {
        /// Next logical offset to be written.
        pub offset: i64 = "offset",
    }
}

command_header! {
    /// GET_MIN_OFFSET (31) request.
    pub struct GetMinOffsetRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
    }
}

command_header! {
    /// GET_MIN_OFFSET (31) response.
    pub struct GetMinOffsetResponseHeader {
        /// Smallest logical offset still stored.
        pub offset: i64 = "offset",
    }
}

/// Which end of a run of equal store timestamps SEARCH_OFFSET_BY_TIMESTAMP returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BoundaryType {
    /// First offset whose store time is >= the timestamp (Java default).
    #[default]
    Lower,
    /// Last offset whose store time is <= the timestamp.
    Upper,
}

impl BoundaryType {
    /// The wire text (`lower` / `upper`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Upper => "upper",
        }
    }

    /// Java `BoundaryType.getType`: `upper` in any case is Upper, anything else Lower.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        if name.trim().eq_ignore_ascii_case("upper") {
            Self::Upper
        } else {
            Self::Lower
        }
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29) request.
    pub struct SearchOffsetRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
        /// Store timestamp, ms.
        pub timestamp: i64 = "timestamp",
        /// Lower (default) or upper boundary.
        pub boundary_type: BoundaryType = "boundaryType" or BoundaryType::Lower,
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29) response.
    pub struct SearchOffsetResponseHeader {
        /// The logical offset found.
        pub offset: i64 = "offset",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME (32) request.
    pub struct GetEarliestMsgStoretimeRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME (32) response.
    pub struct GetEarliestMsgStoretimeResponseHeader {
        /// Store time of the earliest message, ms (-1 if none).
        pub timestamp: i64 = "timestamp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::command::ExtFields;
    use crate::codec::header::CommandHeader;

    header_round_trip! {
        query_consumer_offset_request: QueryConsumerOffsetRequestHeader,
        query_consumer_offset_response: QueryConsumerOffsetResponseHeader,
        update_consumer_offset_request: UpdateConsumerOffsetRequestHeader,
        get_max_offset_request: GetMaxOffsetRequestHeader,
        get_max_offset_response: GetMaxOffsetResponseHeader,
        get_min_offset_request: GetMinOffsetRequestHeader,
        get_min_offset_response: GetMinOffsetResponseHeader,
        search_offset_request: SearchOffsetRequestHeader,
        search_offset_response: SearchOffsetResponseHeader,
        get_earliest_msg_storetime_request: GetEarliestMsgStoretimeRequestHeader,
        get_earliest_msg_storetime_response: GetEarliestMsgStoretimeResponseHeader,
    }

    #[test]
    fn defaults_apply_when_absent() {
        let mut ext = ExtFields::new();
        ext.insert("topic", "T");
        ext.insert("queueId", "3");
        ext.insert("timestamp", "1700000000000");
        let search = SearchOffsetRequestHeader::from_ext_fields(&ext).expect("valid header");
        assert_eq!(search.boundary_type, BoundaryType::Lower);
        let max = GetMaxOffsetRequestHeader::from_ext_fields(&ext).expect("valid header");
        assert!(max.committed);
        ext.insert("boundaryType", "UPPER");
        ext.insert("committed", "false");
        let search = SearchOffsetRequestHeader::from_ext_fields(&ext).expect("valid header");
        assert_eq!(search.boundary_type, BoundaryType::Upper);
        let max = GetMaxOffsetRequestHeader::from_ext_fields(&ext).expect("valid header");
        assert!(!max.committed);
        assert_eq!(BoundaryType::from_name("sideways"), BoundaryType::Lower);
    }
}
