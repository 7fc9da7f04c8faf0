//! Transaction headers (PROTOCOL.md §4.3): END_TRANSACTION (37, client → broker, oneway) and
//! CHECK_TRANSACTION_STATE (39, broker → producer, oneway). Must never resolve transactions.

/// `commitOrRollback` value: state unknown, the broker ignores the request.
pub const TRANSACTION_NOT_TYPE: i32 = 0;
/// `commitOrRollback` value: commit.
pub const TRANSACTION_COMMIT_TYPE: i32 = 8;
/// `commitOrRollback` value: roll back.
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 12;

command_header! {
    /// END_TRANSACTION (37) request.
    pub struct EndTransactionRequestHeader {
        /// Must equal the half message's `PGROUP`.
        pub producer_group: String = "producerGroup",
        /// Half-topic queue offset of the half message.
        pub tran_state_table_offset: i64 = "tranStateTableOffset",
        /// Physical offset of the half message.
        pub commit_log_offset: i64 = "commitLogOffset",
        /// 0 unknown, 8 commit, 12 rollback.
        pub commit_or_rollback: i32 = "commitOrRollback",
        /// True when answering a check (Java default false).
        pub from_transaction_check: bool = "fromTransactionCheck" or false,
        /// Send result msgId (UNIQ_KEY).
        pub msg_id: String = "msgId",
        /// Transaction id.
        pub transaction_id: Option<String> = "transactionId",
        /// Real topic (5.x).
        pub topic: Option<String> = "topic",
        /// Broker name.
        pub broker_name: Option<String> = "bname",
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39) request, broker → producer.
    pub struct CheckTransactionStateRequestHeader {
        /// Half-topic queue offset of the half message.
        pub tran_state_table_offset: i64 = "tranStateTableOffset",
        /// Physical offset of the half message.
        pub commit_log_offset: i64 = "commitLogOffset",
        /// UNIQ_KEY.
        pub msg_id: Option<String> = "msgId",
        /// UNIQ_KEY.
        pub transaction_id: Option<String> = "transactionId",
        /// Offset msgId of the half message.
        pub offset_msg_id: Option<String> = "offsetMsgId",
        /// Real topic.
        pub topic: Option<String> = "topic",
        /// Broker name.
        pub broker_name: Option<String> = "bname",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    header_round_trip! {
        end_transaction_request: EndTransactionRequestHeader,
        check_transaction_state_request: CheckTransactionStateRequestHeader,
    }
}
