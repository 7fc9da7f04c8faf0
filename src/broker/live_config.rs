//! The broker settings an operator may change while the broker runs (UPDATE_BROKER_CONFIG,
//! 25; `rmq admin update-broker-config`): each shard's copy of them ([`LiveConfig`]) and the
//! processor that validates a request and applies it to every shard through the mesh.
//!
//! Changeable at run time ([`RUNTIME_KEYS`]): `brokerPermission` (sends, send-backs and pulls
//! check it on every shard; the control shard also masks the topic perms it registers with it
//! and re-registers at once with a fresh data version, as Java's `updateBrokerConfig` does) and
//! `slaveReadEnable` (the pull advice). Every other key is refused with NO_PERMISSION naming
//! the key, before anything changes. Changes live in memory only: unlike Java, which rewrites
//! its config file, a restart reads broker.conf again (the file is the operator's).
//! Must never: apply part of a request (all keys are validated first), or change the
//! immutable [`crate::config::BrokerConfig`] shared by the shards.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use rmq_net::codec::codes::ResponseCode;
use rmq_net::RemotingCommand;

use crate::config::{parse_properties, BrokerConfig};

use super::shard::{Shard, CONTROL_SHARD};
use super::{success, Failure, Outcome};

/// The keys UPDATE_BROKER_CONFIG accepts.
pub const RUNTIME_KEYS: &[&str] = &["brokerPermission", "slaveReadEnable"];

use crate::limits::ADMIN_REMARK_ECHO_MAX;
pub use crate::limits::UPDATE_BROKER_CONFIG_KEYS_MAX as UPDATE_KEYS_MAX;

/// `text` cut to [`ADMIN_REMARK_ECHO_MAX`] bytes (at a char boundary, marked with `...`), so
/// a remark never echoes a client's megabyte key or value whole: the answer's header must stay
/// under the clients' header limit (512 KiB for ours) or they drop the connection.
fn echo(text: &str) -> String {
    if text.len() <= ADMIN_REMARK_ECHO_MAX {
        return text.to_owned();
    }
    let mut end = ADMIN_REMARK_ECHO_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// One shard's copy of the run-time settings, initialised from broker.conf.
#[derive(Debug)]
pub struct LiveConfig {
    broker_permission: Cell<i32>,
    slave_read_enable: Cell<bool>,
}

impl LiveConfig {
    /// The settings of a parsed broker.conf.
    #[must_use]
    pub fn new(config: &BrokerConfig) -> Self {
        Self {
            broker_permission: Cell::new(config.broker_permission),
            slave_read_enable: Cell::new(config.slave_read_enable),
        }
    }

    /// `brokerPermission` now.
    #[must_use]
    pub fn broker_permission(&self) -> i32 {
        self.broker_permission.get()
    }

    /// `slaveReadEnable` now.
    #[must_use]
    pub fn slave_read_enable(&self) -> bool {
        self.slave_read_enable.get()
    }

    /// `config` with the run-time settings of this shard over it (what GET_BROKER_CONFIG and
    /// GET_BROKER_RUNTIME_INFO report).
    #[must_use]
    pub fn over(&self, config: &BrokerConfig) -> BrokerConfig {
        BrokerConfig {
            broker_permission: self.broker_permission(),
            slave_read_enable: self.slave_read_enable(),
            ..config.clone()
        }
    }
}

/// A validated UPDATE_BROKER_CONFIG: the values to set (`None`: unchanged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// New `brokerPermission`.
    pub broker_permission: Option<i32>,
    /// New `slaveReadEnable`.
    pub slave_read_enable: Option<bool>,
}

/// Parses and validates an UPDATE_BROKER_CONFIG body (Java properties text).
///
/// # Errors
/// INVALID_PARAMETER for a body that is not properties text, is empty or has too many keys,
/// or a value the broker.conf parser refuses; NO_PERMISSION naming the first key that cannot
/// change at run time.
pub fn parse_update(body: &[u8]) -> Result<Update, Failure> {
    let invalid = |remark: String| Failure::Code(ResponseCode::InvalidParameter, remark);
    let text = std::str::from_utf8(body)
        .map_err(|_| invalid("the broker config body is not UTF-8".into()))?;
    let props = parse_properties(text).map_err(|e| invalid(echo(&e.to_string())))?;
    if props.is_empty() {
        return Err(invalid("no broker config key to update".into()));
    }
    if props.len() > UPDATE_KEYS_MAX {
        return Err(invalid(format!(
            "{} keys in one update; at most {UPDATE_KEYS_MAX}",
            props.len()
        )));
    }
    if let Some(key) = props.keys().find(|k| !RUNTIME_KEYS.contains(&k.as_str())) {
        return Err(Failure::Code(
            ResponseCode::NoPermission,
            format!(
                "can not update broker config {} at run time (changeable: {}); set it in \
                 broker.conf and restart",
                echo(key),
                RUNTIME_KEYS.join(", ")
            ),
        ));
    }
    // The broker.conf parser validates the values (ranges, booleans) exactly as at start.
    let parsed = BrokerConfig::from_properties(&props)
        .map_err(|e| invalid(echo(&e.to_string())))?
        .config;
    let has = |key: &str| props.contains_key(key);
    Ok(Update {
        broker_permission: has("brokerPermission").then_some(parsed.broker_permission),
        slave_read_enable: has("slaveReadEnable").then_some(parsed.slave_read_enable),
    })
}

/// Processes UPDATE_BROKER_CONFIG on the accepting shard: validates, sets the values on every
/// shard, and when `brokerPermission` changed has the control shard re-register.
pub async fn process(shard: &Rc<Shard>, request: &RemotingCommand) -> Outcome {
    let update = parse_update(&request.body)?;
    let applied = super::stats::map_shards(shard, move |owner: Rc<Shard>| async move {
        if let Some(perm) = update.broker_permission {
            owner.live.broker_permission.set(perm);
        }
        if let Some(enable) = update.slave_read_enable {
            owner.live.slave_read_enable.set(enable);
        }
        if owner.id == CONTROL_SHARD {
            if let Some(perm) = update.broker_permission {
                owner
                    .control()
                    .topics
                    .borrow_mut()
                    .set_broker_permission(perm);
                super::control::register::request_refresh_and_wait(&owner).await;
            }
        }
    })
    .await?;
    assert_eq!(applied.len(), shard.shard_count(), "every shard applied it");
    tracing::info!(?update, "broker config updated at run time");
    Ok(success(request))
}

/// The keys and values of an update as the request body carries them (for the CLI).
#[must_use]
pub fn update_body(pairs: &BTreeMap<String, String>) -> Vec<u8> {
    let mut text = String::new();
    for (key, value) in pairs {
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<Update, Failure>) -> (ResponseCode, String) {
        match result {
            Err(Failure::Code(code, remark)) => (code, remark),
            Ok(update) => panic!("accepted: {update:?}"),
        }
    }

    #[test]
    fn refusals_echo_a_bounded_part_of_huge_keys_and_values() {
        let key = format!("{}=1", "\u{e9}".repeat(1 << 19));
        let (status, remark) = code(parse_update(key.as_bytes()));
        assert_eq!(status, ResponseCode::NoPermission);
        assert!(remark.len() < 2 * ADMIN_REMARK_ECHO_MAX, "{}", remark.len());
        assert!(remark.contains("(1048576 bytes)"), "{remark}");
        let value = format!("brokerPermission={}", "9".repeat(1 << 20));
        let (status, remark) = code(parse_update(value.as_bytes()));
        assert_eq!(status, ResponseCode::InvalidParameter);
        assert!(remark.len() < 2 * ADMIN_REMARK_ECHO_MAX, "{}", remark.len());
        assert_eq!(echo("short"), "short");
    }

    #[test]
    fn runtime_keys_parse_and_others_are_refused_by_name() {
        assert_eq!(
            parse_update(b"brokerPermission=4\nslaveReadEnable=true\n").expect("valid"),
            Update {
                broker_permission: Some(4),
                slave_read_enable: Some(true),
            }
        );
        assert_eq!(
            parse_update(b"slaveReadEnable=false").expect("valid"),
            Update {
                broker_permission: None,
                slave_read_enable: Some(false),
            }
        );
        let (code_, remark) = code(parse_update(b"brokerPermission=6\nlistenPort=1\n"));
        assert_eq!(code_, ResponseCode::NoPermission);
        assert!(remark.contains("listenPort"), "{remark}");
        let (code_, remark) = code(parse_update(b"noSuchKey=1"));
        assert_eq!(code_, ResponseCode::NoPermission);
        assert!(remark.contains("noSuchKey"), "{remark}");
        let (code_, remark) = code(parse_update(b"brokerPermission=9"));
        assert_eq!(code_, ResponseCode::InvalidParameter);
        assert!(remark.contains("brokerPermission"), "{remark}");
        assert_eq!(code(parse_update(b"")).0, ResponseCode::InvalidParameter);
        assert_eq!(
            code(parse_update(b"\xff=1")).0,
            ResponseCode::InvalidParameter
        );
        let many: String = (0..=UPDATE_KEYS_MAX).map(|i| format!("k{i}=1\n")).collect();
        assert_eq!(
            code(parse_update(many.as_bytes())).0,
            ResponseCode::InvalidParameter
        );
    }

    #[test]
    fn live_values_overlay_the_file_config() {
        let config = BrokerConfig::default();
        let live = LiveConfig::new(&config);
        assert_eq!(live.broker_permission(), config.broker_permission);
        live.broker_permission.set(4);
        live.slave_read_enable.set(!config.slave_read_enable);
        let over = live.over(&config);
        assert_eq!(over.broker_permission, 4);
        assert_eq!(over.slave_read_enable, !config.slave_read_enable);
        assert_eq!(over.broker_name, config.broker_name);
        assert_eq!(
            update_body(&BTreeMap::from([("a".into(), "1".into())])),
            b"a=1\n"
        );
    }
}
