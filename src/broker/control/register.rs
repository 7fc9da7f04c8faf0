//! Registration with the NameServers (PROTOCOL.md §4.10.1), coalesced, and the control shard's
//! background loop.
//!
//! Owns [`Registrar`]: topic changes ask for an incremental registration (only the changed
//! topics, as Java's `registerIncrementBrokerData`); the periodic registration and a topic
//! deletion send the whole table. At most one registration is in flight; whatever is asked
//! meanwhile is merged into one pending registration (a pending set past
//! [`REGISTER_PENDING_TOPICS_MAX`] names becomes a full registration). So a burst of
//! auto-created topics costs a few registrations, not one full-table registration per topic.
//!
//! Must never: run two registrations at once, or let the pending set grow without bound.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use rmq_net::codec::body::register::RegisterBrokerBody;
use rmq_net::codec::body::JsonBody;
use rmq_net::codec::codes::{RequestCode, ResponseCode};
use rmq_net::codec::header::namesrv::{
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnregisterBrokerRequestHeader,
};
use rmq_net::codec::header::CommandHeader;
use rmq_net::codec::message::body_crc;
use rmq_net::RemotingCommand;

use crate::broker::replicate;
use crate::broker::shard::Shard;
use crate::runtime::clock::now_ms;

use super::{assert_control, clients};

/// How long one REGISTER_BROKER call may take.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);
/// How often client channels are checked for expiry (Java scans every 10 s).
pub const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);
pub use crate::limits::REGISTER_PENDING_TOPICS_MAX;
/// Broker expiry the broker asks the NameServer for (Java's default, 120 s).
pub const REGISTER_HEARTBEAT_TIMEOUT_MS: i64 = 120_000;

/// What the next registration sends.
#[derive(Debug, Default)]
struct Pending {
    full: bool,
    topics: BTreeSet<String>,
    waiters: Vec<flume::Sender<()>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        !self.full && self.topics.is_empty()
    }
}

/// The coalescing registrar (control shard only).
#[derive(Debug, Default)]
pub struct Registrar {
    pending: RefCell<Pending>,
    running: Cell<bool>,
    /// A registration failed since the last full one succeeded: the next full registration
    /// carries a fresh version timestamp so every NameServer re-reads the whole table.
    failed: Cell<bool>,
}

/// Asks for an incremental registration of `topics` (not waiting for it).
pub fn request(shard: &Rc<Shard>, topics: Vec<String>) {
    enqueue(shard, false, topics, None);
}

/// Asks for an incremental registration of `topics` and waits until one that covers them ran.
pub async fn request_and_wait(shard: &Rc<Shard>, topics: Vec<String>) {
    let (done, wait) = flume::bounded(1);
    enqueue(shard, false, topics, Some(done));
    let _ = wait.recv_async().await;
}

/// Asks for a full registration with a fresh version timestamp (so every NameServer rewrites
/// the broker's queue data, as after a failed registration) and waits until one ran: a
/// changed `brokerPermission` reaches the routes at once.
pub async fn request_refresh_and_wait(shard: &Rc<Shard>) {
    shard.control().registrar.failed.set(true);
    request_full_and_wait(shard).await;
}

/// Asks for a full registration and waits until one ran.
pub async fn request_full_and_wait(shard: &Rc<Shard>) {
    let (done, wait) = flume::bounded(1);
    enqueue(shard, true, Vec::new(), Some(done));
    let _ = wait.recv_async().await;
}

fn enqueue(shard: &Rc<Shard>, full: bool, topics: Vec<String>, waiter: Option<flume::Sender<()>>) {
    assert_control(shard);
    let registrar = &shard.control().registrar;
    {
        let mut pending = registrar.pending.borrow_mut();
        pending.full |= full;
        if !pending.full {
            pending.topics.extend(topics);
            if pending.topics.len() > REGISTER_PENDING_TOPICS_MAX {
                pending.full = true;
            }
        }
        if pending.full {
            pending.topics.clear();
        }
        pending.waiters.extend(waiter);
    }
    if !registrar.running.replace(true) {
        let shard = Rc::clone(shard);
        compio::runtime::spawn(async move { run_registrations(&shard).await }).detach();
    }
}

async fn run_registrations(shard: &Rc<Shard>) {
    let registrar = &shard.control().registrar;
    assert!(registrar.running.get());
    loop {
        let batch = std::mem::take(&mut *registrar.pending.borrow_mut());
        if batch.is_empty() {
            for waiter in batch.waiters {
                let _ = waiter.send(());
            }
            registrar.running.set(false);
            return;
        }
        let names: Vec<&str> = batch.topics.iter().map(String::as_str).collect();
        let ok = register(shard, (!batch.full).then_some(&names[..])).await;
        if ok && batch.full {
            registrar.failed.set(false);
        } else if !ok {
            registrar.failed.set(true);
        }
        for waiter in batch.waiters {
            let _ = waiter.send(());
        }
    }
}

/// Registers with every NameServer: the named topics, or the whole table when `topics` is
/// `None`. Returns whether every NameServer accepted it.
async fn register(shard: &Rc<Shard>, topics: Option<&[&str]>) -> bool {
    let control = shard.control();
    let mut wrapper = match topics {
        Some(names) => control.topics.borrow().to_register_wrapper_for(names),
        None => control.topics.borrow().to_register_wrapper(),
    };
    if topics.is_none() && control.registrar.failed.get() {
        wrapper.data_version.timestamp = now_ms();
    }
    let body = RegisterBrokerBody {
        filter_server_list: Vec::new(),
        topic_config_serialize_wrapper: wrapper,
    }
    .to_json();
    let config = &shard.config;
    let header = RegisterBrokerRequestHeader {
        broker_name: config.broker_name.clone(),
        broker_addr: shard.store_host.to_string(),
        cluster_name: config.broker_cluster_name.clone(),
        ha_server_addr: shard.ha_server_addr.clone(),
        broker_id: config.broker_id,
        heartbeat_timeout_millis: Some(REGISTER_HEARTBEAT_TIMEOUT_MS),
        enable_acting_master: Some(false),
        compressed: false,
        body_crc32: body_crc(&body),
        zone_name: None,
    };
    let request =
        RemotingCommand::request(RequestCode::RegisterBroker, header.to_ext()).with_body(body);
    let mut all_ok = true;
    for client in &control.namesrv {
        match client.invoke(request.clone(), REGISTER_TIMEOUT).await {
            Ok(reply) if reply.response_code() == ResponseCode::Success => {
                learn_master(shard, &reply).await;
            }
            Ok(reply) => {
                all_ok = false;
                tracing::warn!(namesrv = client.addr(), code = reply.code, remark = ?reply.remark, "register refused");
            }
            Err(err) => {
                all_ok = false;
                tracing::warn!(namesrv = client.addr(), %err, "register failed");
            }
        }
    }
    all_ok
}

/// A slave learns its master's HA and remoting addresses from a REGISTER_BROKER reply (as
/// Java's slave does), unless `haMasterAddress` fixes the HA address.
async fn learn_master(shard: &Rc<Shard>, reply: &RemotingCommand) {
    if shard.config.broker_role.is_master() {
        return;
    }
    let Ok(header) = RegisterBrokerResponseHeader::from_ext_fields(&reply.ext_fields) else {
        tracing::warn!("REGISTER_BROKER reply with an unreadable header");
        return;
    };
    let master_addr = header.master_addr.filter(|a| !a.is_empty());
    let ha_addr = match &shard.config.ha_master_address {
        Some(configured) => Some(configured.to_string()),
        None => header.ha_server_addr.filter(|a| !a.is_empty()),
    };
    if let Some(ha_addr) = ha_addr {
        crate::broker::ha::set_master(shard, ha_addr, master_addr).await;
    }
}

/// Unregisters this broker from every NameServer (clean shutdown).
pub async fn unregister_all(shard: &Rc<Shard>) {
    assert_control(shard);
    let config = &shard.config;
    let header = UnregisterBrokerRequestHeader {
        broker_name: config.broker_name.clone(),
        broker_addr: shard.store_host.to_string(),
        cluster_name: config.broker_cluster_name.clone(),
        broker_id: config.broker_id,
    };
    let request = RemotingCommand::request(RequestCode::UnregisterBroker, header.to_ext());
    for client in &shard.control().namesrv {
        if let Err(err) = client.invoke(request.clone(), REGISTER_TIMEOUT).await {
            tracing::warn!(namesrv = client.addr(), %err, "unregister failed");
        }
    }
}

/// How often a slave that does not know its master yet registers (the reply names the master).
const HA_MASTER_DISCOVERY_INTERVAL: Duration = Duration::from_secs(2);

/// Background control tasks, forever: periodic registration (the first one runs during
/// start-up, before READY), client expiry and the re-sync of replicas a busy shard refused.
pub async fn run_background(shard: Rc<Shard>) {
    assert_control(&shard);
    let period = shard.config.register_name_server_period;
    let mut next_register = std::time::Instant::now() + period;
    loop {
        let until_register = next_register.saturating_duration_since(std::time::Instant::now());
        compio::time::sleep(CLIENT_SCAN_INTERVAL.min(period).min(until_register)).await;
        let expired = shard.control().clients.borrow_mut().expire(now_ms());
        clients::after_membership_change(&shard, &expired.groups_changed).await;
        for key in expired.expired {
            tracing::info!(?key, "client channel expired");
        }
        replicate::resync_if_stale(&shard).await;
        if std::time::Instant::now() >= next_register {
            request_full_and_wait(&shard).await;
            // A slave that has not learnt its master yet (it registered before its master
            // did) asks again soon rather than a whole period later.
            let discovering = !shard.config.broker_role.is_master()
                && shard.ha.master_addr().is_none()
                && shard.config.ha_master_address.is_none();
            let wait = if discovering {
                period.min(HA_MASTER_DISCOVERY_INTERVAL)
            } else {
                period
            };
            next_register = std::time::Instant::now() + wait;
        }
    }
}
