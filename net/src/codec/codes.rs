//! Request, response and language codes (PROTOCOL.md §1.6, §2, §3). Each enum has an
//! `Unknown` arm so no code on the wire can make decoding fail; the server layer answers an
//! unknown request code with [`ResponseCode::RequestCodeNotSupported`].

/// Defines an `i32`-valued code enum with an `Unknown(i32)` arm and lossless conversions.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code this build does not know; carried through unchanged.
            Unknown(i32),
        }

        impl $name {
            /// Every known code, for tests and tables.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The code's wire value.
            #[must_use]
            pub const fn value(self) -> i32 {
                match self {
                    $($name::$variant => $value,)*
                    $name::Unknown(v) => v,
                }
            }

            /// The enum for a wire value; never fails.
            #[must_use]
            pub const fn from_value(value: i32) -> Self {
                match value {
                    $($value => $name::$variant,)*
                    v => $name::Unknown(v),
                }
            }
        }

        impl From<i32> for $name {
            fn from(value: i32) -> Self {
                Self::from_value(value)
            }
        }

        impl From<$name> for i32 {
            fn from(code: $name) -> i32 {
                code.value()
            }
        }
    };
}

code_enum! {
    /// Request codes served by the NameServer and the broker, and sent by the broker to clients.
    RequestCode {
        SendMessage = 10,
        PullMessage = 11,
        QueryMessage = 12,
        QueryConsumerOffset = 14,
        UpdateConsumerOffset = 15,
        UpdateAndCreateTopic = 17,
        UpdateAndCreateTopicList = 18,
        GetAllTopicConfig = 21,
        UpdateBrokerConfig = 25,
        GetBrokerConfig = 26,
        GetBrokerRuntimeInfo = 28,
        SearchOffsetByTimestamp = 29,
        GetMaxOffset = 30,
        GetMinOffset = 31,
        GetEarliestMsgStoretime = 32,
        ViewMessageById = 33,
        HeartBeat = 34,
        UnregisterClient = 35,
        ConsumerSendMsgBack = 36,
        EndTransaction = 37,
        GetConsumerListByGroup = 38,
        CheckTransactionState = 39,
        NotifyConsumerIdsChanged = 40,
        LockBatchMq = 41,
        UnlockBatchMq = 42,
        GetAllConsumerOffset = 43,
        GetAllDelayOffset = 45,
        CheckClientConfig = 46,
        PutKvConfig = 100,
        GetKvConfig = 101,
        DeleteKvConfig = 102,
        RegisterBroker = 103,
        UnregisterBroker = 104,
        GetRouteinfoByTopic = 105,
        GetBrokerClusterInfo = 106,
        UpdateAndCreateSubscriptionGroup = 200,
        GetAllSubscriptionGroupConfig = 201,
        GetTopicStatsInfo = 202,
        GetConsumerConnectionList = 203,
        GetProducerConnectionList = 204,
        WipeWritePermOfBroker = 205,
        GetAllTopicListFromNameserver = 206,
        DeleteSubscriptionGroup = 207,
        GetConsumeStats = 208,
        DeleteTopicInBroker = 215,
        DeleteTopicInNamesrv = 216,
        RegisterTopicInNamesrv = 217,
        GetKvlistByNamespace = 219,
        ResetConsumerClientOffset = 220,
        GetConsumerStatusFromClient = 221,
        InvokeBrokerToResetOffset = 222,
        InvokeBrokerToGetConsumerStatus = 223,
        GetTopicsByCluster = 224,
        GetSystemTopicListFromNs = 304,
        CleanExpiredConsumequeue = 306,
        GetConsumerRunningInfo = 307,
        ConsumeMessageDirectly = 309,
        SendMessageV2 = 310,
        GetUnitTopicList = 311,
        GetHasUnitSubTopicList = 312,
        GetHasUnitSubUnunitTopicList = 313,
        ViewBrokerStatsData = 315,
        UpdateNamesrvConfig = 318,
        GetNamesrvConfig = 319,
        SendBatchMessage = 320,
        QueryDataVersion = 322,
        SendReplyMessage = 324,
        SendReplyMessageV2 = 325,
        PushReplyMessageToClient = 326,
        AddWritePermOfBroker = 327,
        GetTopicConfig = 351,
        LitePullMessage = 361,
        RecallMessage = 370,
        QueryAssignment = 400,
        SetMessageRequestMode = 401,
        GetBrokerMemberGroup = 901,
        BrokerHeartbeat = 904,
        PopMessage = 200_050,
        AckMessage = 200_051,
        PeekMessage = 200_052,
        ChangeMessageInvisibletime = 200_053,
        Notification = 200_054,
        PollingInfo = 200_055,
        PopRollback = 200_056,
        BatchAckMessage = 200_151,
        /// Ours (private admin range 60000-60099, unused by Apache RocketMQ): pending half
        /// messages per producer group (docs/transactions.md).
        TransactionPendingStats = 60_000,
        /// Ours: pending timer messages per topic and the next due time (docs/timer.md).
        TimerStatus = 60_001,
    }
}

code_enum! {
    /// Response codes (`RemotingSysResponseCode` and `ResponseCode`).
    ResponseCode {
        Success = 0,
        SystemError = 1,
        SystemBusy = 2,
        RequestCodeNotSupported = 3,
        TransactionFailed = 4,
        FlushDiskTimeout = 10,
        SlaveNotAvailable = 11,
        FlushSlaveTimeout = 12,
        MessageIllegal = 13,
        ServiceNotAvailable = 14,
        VersionNotSupported = 15,
        NoPermission = 16,
        TopicNotExist = 17,
        TopicExistAlready = 18,
        PullNotFound = 19,
        PullRetryImmediately = 20,
        PullOffsetMoved = 21,
        QueryNotFound = 22,
        SubscriptionParseFailed = 23,
        SubscriptionNotExist = 24,
        SubscriptionNotLatest = 25,
        SubscriptionGroupNotExist = 26,
        FilterDataNotExist = 27,
        FilterDataNotLatest = 28,
        InvalidParameter = 29,
        TransactionShouldCommit = 200,
        TransactionShouldRollback = 201,
        TransactionStateUnknow = 202,
        TransactionStateGroupWrong = 203,
        NoBuyerId = 204,
        NotInCurrentUnit = 205,
        ConsumerNotOnline = 206,
        ConsumeMsgTimeout = 207,
        NoMessage = 208,
        PollingFull = 209,
        PollingTimeout = 210,
        BrokerNotExist = 211,
        BrokerDispatchNotComplete = 212,
        BroadcastConsumption = 213,
        FlowControl = 215,
        NotLeaderForQueue = 501,
        IllegalOperation = 604,
        GoAway = 1500,
    }
}

/// The sender's implementation language (PROTOCOL.md §1.6). JSON carries the name, the
/// binary header carries the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LanguageCode {
    /// Java (also what ali-ons claims to be).
    #[default]
    Java,
    /// C++.
    Cpp,
    /// .NET.
    Dotnet,
    /// Python.
    Python,
    /// Delphi.
    Delphi,
    /// Erlang.
    Erlang,
    /// Ruby.
    Ruby,
    /// Other.
    Other,
    /// HTTP.
    Http,
    /// Go.
    Go,
    /// PHP.
    Php,
    /// OMS.
    Oms,
    /// Rust.
    Rust,
    /// Node.js.
    NodeJs,
}

impl LanguageCode {
    const TABLE: [(LanguageCode, &'static str, u8); 14] = [
        (Self::Java, "JAVA", 0),
        (Self::Cpp, "CPP", 1),
        (Self::Dotnet, "DOTNET", 2),
        (Self::Python, "PYTHON", 3),
        (Self::Delphi, "DELPHI", 4),
        (Self::Erlang, "ERLANG", 5),
        (Self::Ruby, "RUBY", 6),
        (Self::Other, "OTHER", 7),
        (Self::Http, "HTTP", 8),
        (Self::Go, "GO", 9),
        (Self::Php, "PHP", 10),
        (Self::Oms, "OMS", 11),
        (Self::Rust, "RUST", 12),
        (Self::NodeJs, "NODE_JS", 13),
    ];

    /// Every language, in code order.
    pub const ALL: [LanguageCode; 14] = [
        Self::Java,
        Self::Cpp,
        Self::Dotnet,
        Self::Python,
        Self::Delphi,
        Self::Erlang,
        Self::Ruby,
        Self::Other,
        Self::Http,
        Self::Go,
        Self::Php,
        Self::Oms,
        Self::Rust,
        Self::NodeJs,
    ];

    /// The enum name as Java writes it in JSON headers.
    #[must_use]
    pub fn name(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(l, _, _)| *l == self)
            .map_or("OTHER", |(_, n, _)| n)
    }

    /// The binary header code.
    #[must_use]
    pub fn code(self) -> u8 {
        Self::TABLE
            .iter()
            .find(|(l, _, _)| *l == self)
            .map_or(7, |(_, _, c)| *c)
    }

    /// Lenient parse of a name; unknown names become `Other`.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        Self::TABLE
            .iter()
            .find(|(_, n, _)| *n == name)
            .map_or(Self::Other, |(l, _, _)| *l)
    }

    /// Lenient parse of a code; unknown codes become `Other`.
    #[must_use]
    pub fn from_code(code: u8) -> Self {
        Self::TABLE
            .iter()
            .find(|(_, _, c)| *c == code)
            .map_or(Self::Other, |(l, _, _)| *l)
    }
}

/// Header encoding, carried in the high byte of the header-length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// JSON header (type byte 0). Default for every client.
    #[default]
    Json,
    /// ROCKETMQ binary header (type byte 1).
    RocketMq,
}

impl SerializeType {
    /// The type byte.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }

    /// The name Java writes in `serializeTypeCurrentRPC`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }

    /// Parse a type byte; `None` for anything but 0 and 1.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }
}

/// `MQVersion` ordinal we put in every response (V5_3_3, Java HEAD `CURRENT_VERSION`).
pub const SERVER_VERSION: i32 = 479;
/// V4_9_4: requests at or above this version get standard (quoted-key) route JSON.
pub const VERSION_V4_9_4: i32 = 401;
/// V3_4_9: from this version the send header's `maxReconsumeTimes` is honoured.
pub const VERSION_V3_4_9: i32 = 121;
/// V3_0_11: from this version REGISTER_BROKER carries a `RegisterBrokerBody`.
pub const VERSION_V3_0_11: i32 = 37;
/// V5_0_0.
pub const VERSION_V5_0_0: i32 = 413;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_round_trip_and_unknown_is_kept() {
        for code in RequestCode::ALL {
            assert_eq!(RequestCode::from_value(code.value()), *code);
        }
        assert_eq!(RequestCode::from_value(9999), RequestCode::Unknown(9999));
        assert_eq!(RequestCode::SendMessageV2.value(), 310);
        assert_eq!(RequestCode::PopMessage.value(), 200_050);
    }

    #[test]
    fn response_codes_round_trip() {
        for code in ResponseCode::ALL {
            assert_eq!(ResponseCode::from_value(code.value()), *code);
        }
        assert_eq!(ResponseCode::FlushDiskTimeout.value(), 10);
        assert_eq!(ResponseCode::from_value(-5), ResponseCode::Unknown(-5));
    }

    #[test]
    fn languages_round_trip_by_name_and_code() {
        for lang in LanguageCode::ALL {
            assert_eq!(LanguageCode::from_name(lang.name()), lang);
            assert_eq!(LanguageCode::from_code(lang.code()), lang);
        }
        assert_eq!(LanguageCode::Rust.code(), 12);
        assert_eq!(LanguageCode::NodeJs.name(), "NODE_JS");
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
    }
}
