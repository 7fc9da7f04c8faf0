//! Property names (PROTOCOL.md §6.2). They are wire-visible: clients read and write them by
//! these exact strings, so they must never change. Rust names follow the wire name; the Java
//! `MessageConst` name is given where it differs. Constants only; no logic.

/// Message tag. Its Java `hashCode` is the ConsumeQueue tag code ([`super::tag::tag_hash`]).
pub const TAGS: &str = "TAGS";
/// Space-separated business keys ([`KEY_SEPARATOR`]), indexed for `QUERY_MESSAGE`.
pub const KEYS: &str = "KEYS";
/// Separator between the keys in [`KEYS`] (Java `KEY_SEPARATOR`).
pub const KEY_SEPARATOR: char = ' ';
/// Client message id (§6.9); the msgId users see. Java `PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX`.
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// `true` (default when absent): reply after flush/replication. Java `PROPERTY_WAIT_STORE_MSG_OK`.
pub const WAIT: &str = "WAIT";
/// Delay level 1..18; `-1` on DLQ diversion. Java `PROPERTY_DELAY_TIME_LEVEL`.
pub const DELAY: &str = "DELAY";
/// Original topic of a message now in `%RETRY%`.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// Original topic while parked in a schedule, timer or half topic.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Original queue id while parked. Java `PROPERTY_REAL_QUEUE_ID`.
pub const REAL_QID: &str = "REAL_QID";
/// `true` = transactional half message. Java `PROPERTY_TRANSACTION_PREPARED`.
pub const TRAN_MSG: &str = "TRAN_MSG";
/// Producer group, used for transaction check-back. Java `PROPERTY_PRODUCER_GROUP`.
pub const PGROUP: &str = "PGROUP";
/// Client-only: queue min offset copied from the pull response; never stored.
pub const MIN_OFFSET: &str = "MIN_OFFSET";
/// Client-only: queue max offset copied from the pull response; never stored.
pub const MAX_OFFSET: &str = "MAX_OFFSET";
/// Legacy.
pub const BUYER_ID: &str = "BUYER_ID";
/// msgId of the first delivery, kept across retries.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Legacy.
pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
/// Legacy.
pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
/// Legacy.
pub const MQ2_FLAG: &str = "MQ2_FLAG";
/// Set on the client's fallback re-send to a retry topic.
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// Region id, added by the broker. Java `PROPERTY_MSG_REGION`.
pub const MSG_REGION: &str = "MSG_REGION";
/// Whether tracing is on (`true`/`false`), added by the broker. Java `PROPERTY_TRACE_SWITCH`.
pub const TRACE_ON: &str = "TRACE_ON";
/// 5.x misc.
pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
/// Set on the client's fallback re-send to a retry topic.
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
/// Client-only. Java `PROPERTY_CONSUME_START_TIMESTAMP`.
pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
/// 5.x inner batch.
pub const INNER_NUM: &str = "INNER_NUM";
/// 5.x inner batch.
pub const INNER_BASE: &str = "INNER_BASE";
/// 5.x misc.
pub const DUP_INFO: &str = "DUP_INFO";
/// Delay before the first transaction check.
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Broker bookkeeping for transactions. Java `PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET`.
pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Transaction id (= `UNIQ_KEY`) on half messages.
pub const TRANSACTION_ID: &str = "__transactionId__";
/// Number of check-backs so far.
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// 5.x misc.
pub const INSTANCE_ID: &str = "INSTANCE_ID";
/// Request-reply correlation id.
pub const CORRELATION_ID: &str = "CORRELATION_ID";
/// Request-reply: client id to push the reply to. Java `PROPERTY_MESSAGE_REPLY_TO_CLIENT`.
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// Request-reply time to live. Java `PROPERTY_MESSAGE_TTL`.
pub const TTL: &str = "TTL";
/// Request-reply. Java `PROPERTY_REPLY_MESSAGE_ARRIVE_TIME`.
pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
/// Request-reply.
pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
/// Cluster name, added by the broker at store.
pub const CLUSTER: &str = "CLUSTER";
/// Message type; [`MSG_TYPE_REPLY`] for request-reply answers.
pub const MSG_TYPE: &str = "MSG_TYPE";
/// Value of [`MSG_TYPE`] on reply messages (Java `REPLY_MESSAGE_FLAG`).
pub const MSG_TYPE_REPLY: &str = "reply";
/// POP checkpoint.
pub const POP_CK: &str = "POP_CK";
/// POP checkpoint offset.
pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
/// POP first pop time. Java `PROPERTY_FIRST_POP_TIME`.
pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
/// 5.x FIFO sharding key.
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
/// 5.x timer: relative delay in seconds.
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// 5.x timer: relative delay in ms.
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// 5.x timer: absolute delivery time, epoch ms.
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// Timer internals.
pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
/// Timer internals.
pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
/// Timer internals.
pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
/// Timer internals.
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
/// Timer internals.
pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
/// Timer internals.
pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
/// Proxy: the real born host.
pub const BORN_HOST: &str = "__BORNHOST";
/// Proxy: the real born timestamp.
pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
/// Optional CRC appended in the store (`enabledAppendPropCRC`, default off).
pub const CRC32: &str = "__CRC32#";
/// 5.x: original topic of a DLQ message.
pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// 5.x: original msgId of a DLQ message.
pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
/// Alibaba Cloud SDKs: absolute delivery time in ms. Not an Apache key; Apache ignores it.
pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
/// Prefix of transient properties: never stored or sent.
pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
