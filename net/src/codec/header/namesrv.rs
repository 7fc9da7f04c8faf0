//! NameServer headers (PROTOCOL.md §4.10): REGISTER_BROKER (103) request and response,
//! UNREGISTER_BROKER (104), BROKER_HEARTBEAT (904), QUERY_DATA_VERSION (322),
//! GET_ROUTEINFO_BY_TOPIC (105), KV config (100/101/102/219), GET_TOPICS_BY_CLUSTER (224),
//! DELETE_TOPIC_IN_NAMESRV (216), WIPE/ADD_WRITE_PERM_OF_BROKER (205/327). Must never keep
//! route state.

command_header! {
    /// REGISTER_BROKER (103) request.
    pub struct RegisterBrokerRequestHeader {
        /// Broker name, e.g. `broker-a`.
        pub broker_name: String = "brokerName",
        /// `brokerIP1:listenPort`, the address put in routes.
        pub broker_addr: String = "brokerAddr",
        /// Cluster name.
        pub cluster_name: String = "clusterName",
        /// `brokerIP2:haListenPort`.
        pub ha_server_addr: String = "haServerAddr",
        /// 0 = master, >= 1 = slave.
        pub broker_id: i64 = "brokerId",
        /// Broker expiry, ms (namesrv default 120000 when absent).
        pub heartbeat_timeout_millis: Option<i64> = "heartbeatTimeoutMillis",
        /// 5.x slave acting as master.
        pub enable_acting_master: Option<bool> = "enableActingMaster",
        /// The body is the deflate form (Java primitive, default false).
        pub compressed: bool = "compressed" or false,
        /// `crc32(body) & 0x7FFFFFFF`; 0 = don't check (Java default 0).
        pub body_crc32: i32 = "bodyCrc32" or 0,
        /// Zone tag.
        pub zone_name: Option<String> = "__ZONE_NAME",
    }
}

command_header! {
    /// REGISTER_BROKER (103) response.
    pub struct RegisterBrokerResponseHeader {
        /// For a slave: the master's HA address.
        pub ha_server_addr: Option<String> = "haServerAddr",
        /// For a slave: the master's broker address.
        pub master_addr: Option<String> = "masterAddr",
    }
}

command_header! {
    /// UNREGISTER_BROKER (104) request.
    pub struct UnregisterBrokerRequestHeader {
        /// Broker name.
        pub broker_name: String = "brokerName",
        /// Broker address.
        pub broker_addr: String = "brokerAddr",
        /// Cluster name.
        pub cluster_name: String = "clusterName",
        /// Broker id.
        pub broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// BROKER_HEARTBEAT (904) request (5.x light heartbeat).
    pub struct BrokerHeartbeatRequestHeader {
        /// Cluster name.
        pub cluster_name: String = "clusterName",
        /// Broker address.
        pub broker_addr: String = "brokerAddr",
        /// Broker name.
        pub broker_name: String = "brokerName",
        /// Broker id (required by Java HEAD, absent from early 5.x).
        pub broker_id: Option<i64> = "brokerId",
        /// Controller epoch.
        pub epoch: Option<i32> = "epoch",
        /// CommitLog max offset.
        pub max_offset: Option<i64> = "maxOffset",
        /// Confirmed offset.
        pub confirm_offset: Option<i64> = "confirmOffset",
        /// Heartbeat timeout, ms (Java's spelling).
        pub heartbeat_timeout_mills: Option<i64> = "heartbeatTimeoutMills",
        /// Controller election priority.
        pub election_priority: Option<i32> = "electionPriority",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) request; body is the broker's `DataVersion`.
    pub struct QueryDataVersionRequestHeader {
        /// Broker name.
        pub broker_name: String = "brokerName",
        /// Broker address.
        pub broker_addr: String = "brokerAddr",
        /// Cluster name.
        pub cluster_name: String = "clusterName",
        /// Broker id.
        pub broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// QUERY_DATA_VERSION (322) response.
    pub struct QueryDataVersionResponseHeader {
        /// The broker's topic table differs from the namesrv's copy.
        pub changed: bool = "changed",
    }
}

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105) request.
    pub struct GetRouteInfoRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Ask for standard (quoted-key) route JSON whatever the version.
        pub accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
    }
}

command_header! {
    /// PUT_KV_CONFIG (100) request.
    pub struct PutKvConfigRequestHeader {
        /// Namespace, e.g. `ORDER_TOPIC_CONFIG`.
        pub namespace: String = "namespace",
        /// Key.
        pub key: String = "key",
        /// Value.
        pub value: String = "value",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) request.
    pub struct GetKvConfigRequestHeader {
        /// Namespace.
        pub namespace: String = "namespace",
        /// Key.
        pub key: String = "key",
    }
}

command_header! {
    /// GET_KV_CONFIG (101) response.
    pub struct GetKvConfigResponseHeader {
        /// The value.
        pub value: Option<String> = "value",
    }
}

command_header! {
    /// DELETE_KV_CONFIG (102) request.
    pub struct DeleteKvConfigRequestHeader {
        /// Namespace.
        pub namespace: String = "namespace",
        /// Key.
        pub key: String = "key",
    }
}

command_header! {
    /// GET_KVLIST_BY_NAMESPACE (219) request.
    pub struct GetKvListByNamespaceRequestHeader {
        /// Namespace.
        pub namespace: String = "namespace",
    }
}

command_header! {
    /// GET_TOPICS_BY_CLUSTER (224) request.
    pub struct GetTopicsByClusterRequestHeader {
        /// Cluster name.
        pub cluster: String = "cluster",
    }
}

command_header! {
    /// DELETE_TOPIC_IN_NAMESRV (216) request.
    pub struct DeleteTopicFromNamesrvRequestHeader {
        /// Topic.
        pub topic: String = "topic",
        /// Restrict to this cluster's brokers.
        pub cluster_name: Option<String> = "clusterName",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) request.
    pub struct WipeWritePermOfBrokerRequestHeader {
        /// Broker name.
        pub broker_name: String = "brokerName",
    }
}

command_header! {
    /// WIPE_WRITE_PERM_OF_BROKER (205) response.
    pub struct WipeWritePermOfBrokerResponseHeader {
        /// Topics whose write permission was cleared.
        pub wipe_topic_count: i32 = "wipeTopicCount",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327) request.
    pub struct AddWritePermOfBrokerRequestHeader {
        /// Broker name.
        pub broker_name: String = "brokerName",
    }
}

command_header! {
    /// ADD_WRITE_PERM_OF_BROKER (327) response.
    pub struct AddWritePermOfBrokerResponseHeader {
        /// Topics whose write permission was restored.
        pub add_topic_count: i32 = "addTopicCount",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::command::ExtFields;
    use crate::codec::header::CommandHeader;

    header_round_trip! {
        register_broker_request: RegisterBrokerRequestHeader,
        register_broker_response: RegisterBrokerResponseHeader,
        unregister_broker_request: UnregisterBrokerRequestHeader,
        broker_heartbeat_request: BrokerHeartbeatRequestHeader,
        query_data_version_request: QueryDataVersionRequestHeader,
        query_data_version_response: QueryDataVersionResponseHeader,
        get_route_info_request: GetRouteInfoRequestHeader,
        put_kv_config_request: PutKvConfigRequestHeader,
        get_kv_config_request: GetKvConfigRequestHeader,
        get_kv_config_response: GetKvConfigResponseHeader,
        delete_kv_config_request: DeleteKvConfigRequestHeader,
        get_kv_list_by_namespace_request: GetKvListByNamespaceRequestHeader,
        get_topics_by_cluster_request: GetTopicsByClusterRequestHeader,
        delete_topic_from_namesrv_request: DeleteTopicFromNamesrvRequestHeader,
        wipe_write_perm_request: WipeWritePermOfBrokerRequestHeader,
        wipe_write_perm_response: WipeWritePermOfBrokerResponseHeader,
        add_write_perm_request: AddWritePermOfBrokerRequestHeader,
        add_write_perm_response: AddWritePermOfBrokerResponseHeader,
    }

    #[test]
    fn register_broker_defaults_compressed_and_crc() {
        let ext: ExtFields = [
            ("brokerName", "broker-a"),
            ("brokerAddr", "10.0.0.1:10911"),
            ("clusterName", "DefaultCluster"),
            ("haServerAddr", "10.0.0.1:10912"),
            ("brokerId", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let header = RegisterBrokerRequestHeader::from_ext_fields(&ext).expect("valid header");
        assert!(!header.compressed);
        assert_eq!(header.body_crc32, 0);
        assert_eq!(header.heartbeat_timeout_millis, None);
        let written = header.to_ext();
        assert_eq!(written.get("compressed"), Some("false"));
        assert_eq!(written.get("bodyCrc32"), Some("0"));
    }
}
