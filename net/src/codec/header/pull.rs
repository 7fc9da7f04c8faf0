//! Pull headers (PROTOCOL.md §4.4): PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361) share
//! [`PullMessageRequestHeader`]; [`PullMessageResponseHeader`]; and the pull `sysFlag` bits
//! ([`PullSysFlag`]). Must never decide filtering or long-poll behaviour.

command_header! {
    /// PULL_MESSAGE (11) / LITE_PULL_MESSAGE (361) request.
    pub struct PullMessageRequestHeader {
        /// Consumer group.
        pub consumer_group: String = "consumerGroup",
        /// Topic (may be `%RETRY%group`).
        pub topic: String = "topic",
        /// Queue id.
        pub queue_id: i32 = "queueId",
        /// Logical offset to read from.
        pub queue_offset: i64 = "queueOffset",
        /// Batch size.
        pub max_msg_nums: i32 = "maxMsgNums",
        /// Pull flags, see [`PullSysFlag`].
        pub sys_flag: i32 = "sysFlag",
        /// Consumer's offset, committed when [`PullSysFlag::COMMIT_OFFSET`] is set.
        pub commit_offset: i64 = "commitOffset",
        /// Longest hold for a long poll, ms.
        pub suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        /// Filter expression; present with [`PullSysFlag::SUBSCRIPTION`].
        pub subscription: Option<String> = "subscription",
        /// Subscription version.
        pub sub_version: i64 = "subVersion",
        /// `TAG` (default when absent or empty) or `SQL92`.
        pub expression_type: Option<String> = "expressionType",
        /// 5.x byte cap.
        pub max_msg_bytes: Option<i32> = "maxMsgBytes",
        /// Proxy use.
        pub request_source: Option<i32> = "requestSource",
        /// Proxy use (Java's spelling).
        pub proxy_froward_client_id: Option<String> = "proxyFrowardClientId",
    }
}

command_header! {
    /// PULL_MESSAGE / LITE_PULL_MESSAGE response.
    pub struct PullMessageResponseHeader {
        /// 0 = keep pulling from the master; n = pull from that slave next.
        pub suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        /// Offset for the next pull.
        pub next_begin_offset: i64 = "nextBeginOffset",
        /// Queue min logical offset.
        pub min_offset: i64 = "minOffset",
        /// Queue max logical offset.
        pub max_offset: i64 = "maxOffset",
        /// Static topics.
        pub offset_delta: Option<i64> = "offsetDelta",
        /// Topic sysFlag.
        pub topic_sys_flag: Option<i32> = "topicSysFlag",
        /// Group sysFlag.
        pub group_sys_flag: Option<i32> = "groupSysFlag",
        /// With NO_PERMISSION: 1 broker, 2 group, 3 topic, 4 broadcasting, 5 subscription.
        pub forbidden_type: Option<i32> = "forbiddenType",
    }
}

/// The pull request `sysFlag` (Java `PullSysFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PullSysFlag(pub i32);

impl PullSysFlag {
    /// Store `commitOffset` for (group, topic, queue) (master only).
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// Long polling allowed.
    pub const SUSPEND: i32 = 0x2;
    /// Build the filter from this request's `subscription` and `expressionType`.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Legacy class filter (obsolete).
    pub const CLASS_FILTER: i32 = 0x8;
    /// Sent with LITE_PULL_MESSAGE (361).
    pub const LITE_PULL: i32 = 0x10;

    /// Builds a flag value from its parts, as Java `PullSysFlag.buildSysFlag` (plus lite).
    #[must_use]
    pub const fn build(
        commit_offset: bool,
        suspend: bool,
        subscription: bool,
        lite_pull: bool,
    ) -> Self {
        let mut flag = 0;
        if commit_offset {
            flag |= Self::COMMIT_OFFSET;
        }
        if suspend {
            flag |= Self::SUSPEND;
        }
        if subscription {
            flag |= Self::SUBSCRIPTION;
        }
        if lite_pull {
            flag |= Self::LITE_PULL;
        }
        Self(flag)
    }

    /// Whether the commit-offset bit is set.
    #[must_use]
    pub const fn has_commit_offset(self) -> bool {
        self.0 & Self::COMMIT_OFFSET != 0
    }

    /// Whether the suspend (long-poll) bit is set.
    #[must_use]
    pub const fn has_suspend(self) -> bool {
        self.0 & Self::SUSPEND != 0
    }

    /// Whether the subscription bit is set.
    #[must_use]
    pub const fn has_subscription(self) -> bool {
        self.0 & Self::SUBSCRIPTION != 0
    }

    /// Whether the class-filter bit is set.
    #[must_use]
    pub const fn has_class_filter(self) -> bool {
        self.0 & Self::CLASS_FILTER != 0
    }

    /// Whether the lite-pull bit is set.
    #[must_use]
    pub const fn has_lite_pull(self) -> bool {
        self.0 & Self::LITE_PULL != 0
    }

    /// The flag with the commit-offset bit cleared (Java `clearCommitOffsetFlag`, used on
    /// slaves).
    #[must_use]
    pub const fn without_commit_offset(self) -> Self {
        Self(self.0 & !Self::COMMIT_OFFSET)
    }

    /// The flag with the suspend bit cleared (a woken long poll must not suspend again).
    #[must_use]
    pub const fn without_suspend(self) -> Self {
        Self(self.0 & !Self::SUSPEND)
    }
}

impl PullMessageRequestHeader {
    /// The `sysFlag` as a [`PullSysFlag`].
    #[must_use]
    pub const fn pull_sys_flag(&self) -> PullSysFlag {
        PullSysFlag(self.sys_flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    header_round_trip! {
        pull_message_request: PullMessageRequestHeader,
        pull_message_response: PullMessageResponseHeader,
    }

    #[test]
    fn sys_flag_bits() {
        let push = PullSysFlag::build(true, true, false, false);
        assert_eq!(push.0, 0b11);
        assert!(push.has_commit_offset());
        assert!(push.has_suspend());
        assert!(!push.has_subscription());
        assert!(!push.has_class_filter());
        assert!(!push.has_lite_pull());
        assert_eq!(push.without_commit_offset().0, PullSysFlag::SUSPEND);
        assert_eq!(push.without_suspend().0, PullSysFlag::COMMIT_OFFSET);
        let lite = PullSysFlag::build(false, false, true, true);
        assert_eq!(lite.0, 0x14);
        assert!(lite.has_subscription());
        assert!(lite.has_lite_pull());
        assert!(PullSysFlag(0x8).has_class_filter());
    }
}
