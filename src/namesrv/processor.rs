//! NameServer request processor: one request in, one response out, against the route table and
//! KV config. Synchronous and I/O-free except the KV persist; the serving loop lives in
//! [`super::server`]. Must never panic on client input: every decode error becomes a response
//! code with a remark.

use std::cell::RefCell;

use bytes::Bytes;
use rmq_net::codec::body::register::RegisterBrokerBody;
use rmq_net::codec::body::route::{ClusterInfo, QueueData, RouteJsonStyle, TopicRouteData};
use rmq_net::codec::body::table::{KvTable, TopicList};
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::namesrv::{
    AddWritePermOfBrokerRequestHeader, AddWritePermOfBrokerResponseHeader,
    BrokerHeartbeatRequestHeader, DeleteKvConfigRequestHeader, DeleteTopicFromNamesrvRequestHeader,
    GetKvConfigRequestHeader, GetKvConfigResponseHeader, GetKvListByNamespaceRequestHeader,
    GetRouteInfoRequestHeader, GetTopicsByClusterRequestHeader, PutKvConfigRequestHeader,
    QueryDataVersionRequestHeader, QueryDataVersionResponseHeader, RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader, UnregisterBrokerRequestHeader,
    WipeWritePermOfBrokerRequestHeader, WipeWritePermOfBrokerResponseHeader,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::body_crc;
use rmq_net::RemotingCommand;

use crate::failure::{error_response, Failure, Outcome};

use super::kv::KvConfig;
use super::route_table::{Registration, RouteTable};

/// KV namespace whose table is returned to registering brokers and read for `orderTopicConf`.
pub const ORDER_TOPIC_CONFIG_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

/// NameServer options (`namesrv.conf`-like).
#[derive(Debug, Clone, Default)]
pub struct NamesrvOptions {
    /// `orderMessageEnable`: put `orderTopicConf` from the KV config into routes.
    pub order_message_enable: bool,
}

/// The NameServer's state and request logic.
#[derive(Debug)]
pub struct NameServer {
    table: RefCell<RouteTable>,
    kv: RefCell<KvConfig>,
    options: NamesrvOptions,
}

impl NameServer {
    /// A NameServer over the given KV config.
    #[must_use]
    pub fn new(kv: KvConfig, options: NamesrvOptions) -> Self {
        Self {
            table: RefCell::new(RouteTable::default()),
            kv: RefCell::new(kv),
            options,
        }
    }

    /// Read access to the route table (tests, admin).
    pub fn with_table<T>(&self, f: impl FnOnce(&RouteTable) -> T) -> T {
        f(&self.table.borrow())
    }

    /// Removes brokers whose heartbeat is older than their timeout.
    pub fn expire(&self, now_ms: i64) -> Vec<String> {
        self.table.borrow_mut().expire(now_ms)
    }

    /// A connection closed: brokers registered over it are removed at once.
    pub fn connection_closed(&self, connection: u64) -> Vec<String> {
        self.table.borrow_mut().connection_closed(connection)
    }

    /// Processes one request. Returns the response (the caller drops it for oneway requests).
    #[must_use]
    pub fn process(
        &self,
        request: &RemotingCommand,
        connection: u64,
        now_ms: i64,
    ) -> RemotingCommand {
        self.dispatch(request, connection, now_ms)
            .unwrap_or_else(|Failure::Code(code, remark)| error_response(request, code, &remark))
    }

    fn dispatch(&self, request: &RemotingCommand, connection: u64, now_ms: i64) -> Outcome {
        match request.request_code() {
            RequestCode::RegisterBroker => self.register_broker(request, connection, now_ms),
            RequestCode::UnregisterBroker => self.unregister_broker(request),
            RequestCode::BrokerHeartbeat => self.broker_heartbeat(request, now_ms),
            RequestCode::QueryDataVersion => self.query_data_version(request, now_ms),
            RequestCode::GetRouteinfoByTopic => self.route(request),
            RequestCode::GetBrokerClusterInfo => Ok(self.cluster_info(request)),
            RequestCode::GetAllTopicListFromNameserver => {
                let topics = self
                    .table
                    .borrow()
                    .topic_names()
                    .map(String::from)
                    .collect();
                Ok(topic_list(request, topics))
            }
            RequestCode::GetSystemTopicListFromNs => {
                let names = self.table.borrow().cluster_and_broker_names();
                Ok(topic_list(request, names))
            }
            RequestCode::GetTopicsByCluster => {
                let header = GetTopicsByClusterRequestHeader::decode_command(request)?;
                let topics = self.table.borrow().topics_of_cluster(&header.cluster);
                Ok(topic_list(request, topics.into_iter().collect()))
            }
            RequestCode::DeleteTopicInNamesrv => {
                let header = DeleteTopicFromNamesrvRequestHeader::decode_command(request)?;
                self.table
                    .borrow_mut()
                    .delete_topic(&header.topic, header.cluster_name.as_deref());
                Ok(success(request))
            }
            RequestCode::RegisterTopicInNamesrv => self.register_topic(request),
            RequestCode::WipeWritePermOfBroker => {
                let header = WipeWritePermOfBrokerRequestHeader::decode_command(request)?;
                let count = self
                    .table
                    .borrow_mut()
                    .set_write_perm(&header.broker_name, false);
                let reply = WipeWritePermOfBrokerResponseHeader {
                    wipe_topic_count: count,
                };
                Ok(success(request).with_ext_fields(reply.to_ext()))
            }
            RequestCode::AddWritePermOfBroker => {
                let header = AddWritePermOfBrokerRequestHeader::decode_command(request)?;
                let count = self
                    .table
                    .borrow_mut()
                    .set_write_perm(&header.broker_name, true);
                let reply = AddWritePermOfBrokerResponseHeader {
                    add_topic_count: count,
                };
                Ok(success(request).with_ext_fields(reply.to_ext()))
            }
            RequestCode::PutKvConfig => self.put_kv(request),
            RequestCode::GetKvConfig => self.get_kv(request),
            RequestCode::DeleteKvConfig => {
                let header = DeleteKvConfigRequestHeader::decode_command(request)?;
                self.kv
                    .borrow_mut()
                    .delete(&header.namespace, &header.key)
                    .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
                Ok(success(request))
            }
            RequestCode::GetKvlistByNamespace => {
                let header = GetKvListByNamespaceRequestHeader::decode_command(request)?;
                match self.kv.borrow().list(&header.namespace) {
                    Some(table) => {
                        let body = KvTable {
                            table: table.clone(),
                        }
                        .to_json();
                        Ok(success(request).with_body(body))
                    }
                    None => Err(Failure::Code(
                        ResponseCode::QueryNotFound,
                        format!("No config item, Namespace: {}", header.namespace),
                    )),
                }
            }
            code => Err(Failure::Code(
                ResponseCode::RequestCodeNotSupported,
                format!(" request type {} not supported", code.value()),
            )),
        }
    }

    fn register_broker(&self, request: &RemotingCommand, connection: u64, now_ms: i64) -> Outcome {
        let header = RegisterBrokerRequestHeader::decode_command(request)?;
        if header.body_crc32 != 0 && body_crc(&request.body) != header.body_crc32 {
            return Err(Failure::Code(
                ResponseCode::SystemError,
                "crc32 not match".into(),
            ));
        }
        let body = if request.body.is_empty() {
            RegisterBrokerBody::default()
        } else {
            RegisterBrokerBody::decode(&request.body, header.compressed, request.version)?
        };
        let wrapper = body.topic_config_serialize_wrapper;
        let topics = wrapper
            .topic_config_table
            .into_values()
            .map(|t| {
                let queues = QueueData {
                    broker_name: header.broker_name.clone(),
                    perm: t.perm,
                    read_queue_nums: t.read_queue_nums,
                    topic_sys_flag: t.topic_sys_flag,
                    write_queue_nums: t.write_queue_nums,
                };
                (t.topic_name, queues)
            })
            .collect();
        let registration = Registration {
            cluster: header.cluster_name,
            broker_name: header.broker_name,
            broker_addr: header.broker_addr,
            broker_id: header.broker_id,
            ha_server_addr: header.ha_server_addr,
            timeout_ms: header.heartbeat_timeout_millis.unwrap_or(0),
            version: wrapper.data_version,
            enable_acting_master: header.enable_acting_master.unwrap_or(false),
            topics,
            connection: Some(connection),
        };
        let outcome = self
            .table
            .borrow_mut()
            .register(registration, now_ms)
            .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
        let reply = RegisterBrokerResponseHeader {
            ha_server_addr: outcome.ha_server_addr,
            master_addr: outcome.master_addr,
        };
        let order = self
            .kv
            .borrow()
            .list(ORDER_TOPIC_CONFIG_NAMESPACE)
            .cloned()
            .unwrap_or_default();
        let body = KvTable { table: order }.to_json();
        Ok(success(request)
            .with_ext_fields(reply.to_ext())
            .with_body(body))
    }

    fn unregister_broker(&self, request: &RemotingCommand) -> Outcome {
        let header = UnregisterBrokerRequestHeader::decode_command(request)?;
        self.table.borrow_mut().unregister(&header.broker_addr);
        Ok(success(request))
    }

    fn broker_heartbeat(&self, request: &RemotingCommand, now_ms: i64) -> Outcome {
        let header = BrokerHeartbeatRequestHeader::decode_command(request)?;
        self.table.borrow_mut().touch(&header.broker_addr, now_ms);
        Ok(success(request))
    }

    fn query_data_version(&self, request: &RemotingCommand, now_ms: i64) -> Outcome {
        let header = QueryDataVersionRequestHeader::decode_command(request)?;
        let theirs = rmq_net::codec::body::topic::DataVersion::from_json(&request.body)?;
        let stored = self.table.borrow_mut().touch(&header.broker_addr, now_ms);
        let changed = stored != Some(theirs);
        let reply = QueryDataVersionResponseHeader { changed };
        let mut response = success(request).with_ext_fields(reply.to_ext());
        if let Some(stored) = stored {
            response = response.with_body(stored.to_json());
        }
        Ok(response)
    }

    fn route(&self, request: &RemotingCommand) -> Outcome {
        let header = GetRouteInfoRequestHeader::decode_command(request)?;
        let Some(route) = self.table.borrow().route(&header.topic) else {
            return Err(Failure::Code(
                ResponseCode::TopicNotExist,
                format!(
                    "No topic route info in name server for the topic: {}",
                    header.topic
                ),
            ));
        };
        let order_topic_conf = if self.options.order_message_enable {
            self.kv
                .borrow()
                .get(ORDER_TOPIC_CONFIG_NAMESPACE, &header.topic)
                .map(String::from)
        } else {
            None
        };
        let data = TopicRouteData {
            broker_datas: route.brokers,
            queue_datas: route.queues,
            order_topic_conf,
            ..TopicRouteData::default()
        };
        let style = RouteJsonStyle::for_request(
            request.version,
            header.accept_standard_json_only.unwrap_or(false),
        );
        Ok(success(request).with_body(data.to_json_in(style)))
    }

    fn cluster_info(&self, request: &RemotingCommand) -> RemotingCommand {
        let table = self.table.borrow();
        let (brokers, clusters) = table.cluster_info();
        let info = ClusterInfo {
            broker_addr_table: brokers.clone(),
            cluster_addr_table: clusters.clone(),
        };
        success(request).with_body(info.to_json_in(RouteJsonStyle::Legacy))
    }

    fn register_topic(&self, request: &RemotingCommand) -> Outcome {
        let topic = request
            .ext("topic")
            .ok_or(Failure::Code(
                ResponseCode::SystemError,
                "missing topic".into(),
            ))?
            .to_owned();
        let data = TopicRouteData::from_json(&request.body)?;
        self.table.borrow_mut().put_topic(&topic, data.queue_datas);
        Ok(success(request))
    }

    fn put_kv(&self, request: &RemotingCommand) -> Outcome {
        let header = PutKvConfigRequestHeader::decode_command(request)?;
        self.kv
            .borrow_mut()
            .put(&header.namespace, &header.key, &header.value)
            .map_err(|e| Failure::Code(ResponseCode::SystemError, e.to_string()))?;
        Ok(success(request))
    }

    fn get_kv(&self, request: &RemotingCommand) -> Outcome {
        let header = GetKvConfigRequestHeader::decode_command(request)?;
        match self.kv.borrow().get(&header.namespace, &header.key) {
            Some(value) => {
                let reply = GetKvConfigResponseHeader {
                    value: Some(value.to_owned()),
                };
                Ok(success(request).with_ext_fields(reply.to_ext()))
            }
            None => Err(Failure::Code(
                ResponseCode::QueryNotFound,
                format!(
                    "No config item, Namespace: {} Key: {}",
                    header.namespace, header.key
                ),
            )),
        }
    }
}

fn success(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request, ResponseCode::Success)
}

fn topic_list(
    request: &RemotingCommand,
    topics: std::collections::BTreeSet<String>,
) -> RemotingCommand {
    let body = TopicList {
        broker_addr: None,
        topic_list: topics,
    }
    .to_json();
    success(request).with_body(Bytes::from(body))
}
