//! RocketMQ 4.x plain ACL on the broker (`aclEnable=true`, `plain_acl.yml`): the parsed,
//! immutable configuration ([`AclConfig`]), its file format ([`file`]), white-list address
//! patterns ([`address`]), the per-request check ([`check`], Java's `PlainAccessValidator` +
//! `PlainPermissionManager.validate`), the reload loop ([`reload`]) and the `rmq admin` CLI's
//! credentials ([`client`]).
//!
//! Every shard holds the current configuration in its [`AclSlot`] (an `Arc` replaced whole on
//! reload through the mesh); the accepting shard checks each request against it before routing,
//! with no lock and no cross-core call. Signatures are computed by `rmq_net::codec::acl_sign`,
//! the same function our clients sign with.
//!
//! Must never: log, print or put in a remark a secret key; let a file that fails to parse
//! replace a working configuration; close a connection for a refused request.

pub mod address;
pub mod check;
pub mod client;
pub mod file;
pub mod reload;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use address::AddressPattern;

/// Java's `Permission` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm(pub u8);

impl Perm {
    /// `DENY`: refused whatever is needed.
    pub const DENY: Self = Self(1);
    /// `ANY`: needs PUB or SUB.
    pub const ANY: Self = Self(1 << 1);
    /// `PUB`: send to a topic.
    pub const PUB: Self = Self(1 << 2);
    /// `SUB`: consume from a topic, act as a consumer group.
    pub const SUB: Self = Self(1 << 3);
    /// `PUB|SUB`.
    pub const PUB_SUB: Self = Self(Self::PUB.0 | Self::SUB.0);

    /// Java's `Permission.parsePermFromString`: `PUB`, `SUB`, `PUB|SUB`, `SUB|PUB`, `DENY`;
    /// anything else is `None` (Java reads it as DENY; the file check refuses it).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "PUB" => Some(Self::PUB),
            "SUB" => Some(Self::SUB),
            "PUB|SUB" | "SUB|PUB" => Some(Self::PUB_SUB),
            "DENY" => Some(Self::DENY),
            _ => None,
        }
    }

    /// Java's `Permission.checkPermission`: whether `owned` grants `needed`.
    #[must_use]
    pub fn grants(owned: Self, needed: Self) -> bool {
        if owned.0 & Self::DENY.0 != 0 {
            return false;
        }
        if needed.0 & Self::ANY.0 != 0 {
            return owned.0 & (Self::PUB.0 | Self::SUB.0) != 0;
        }
        needed.0 & owned.0 != 0
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match *self {
            Self::DENY => "DENY",
            Self::ANY => "ANY",
            Self::PUB => "PUB",
            Self::SUB => "SUB",
            Self::PUB_SUB => "PUB|SUB",
            _ => return write!(f, "{:#x}", self.0),
        };
        f.write_str(text)
    }
}

/// The retry topic that names a consumer group as an ACL resource (Java keys `groupPerms` as
/// `%RETRY%<group>`).
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";

/// The resource key of consumer group `group`.
#[must_use]
pub fn group_resource(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// One account of `plain_acl.yml`.
#[derive(Clone)]
pub struct Account {
    /// `accessKey`.
    pub access_key: String,
    /// `secretKey`: never printed (see the `Debug` impl).
    pub secret_key: String,
    /// `whiteRemoteAddress`: a matching peer needs no signature and has every permission.
    pub white_remote_address: AddressPattern,
    /// `admin`: may send the admin request codes.
    pub admin: bool,
    /// `defaultTopicPerm` (DENY when absent).
    pub default_topic_perm: Perm,
    /// `defaultGroupPerm` (DENY when absent).
    pub default_group_perm: Perm,
    /// `topicPerms` by topic and `groupPerms` by [`group_resource`].
    pub resource_perms: HashMap<String, Perm>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("white_remote_address", &self.white_remote_address)
            .field("admin", &self.admin)
            .field("default_topic_perm", &self.default_topic_perm)
            .field("default_group_perm", &self.default_group_perm)
            .field("resource_perms", &self.resource_perms.len())
            .finish()
    }
}

/// One loaded `plain_acl.yml`: immutable, shared by every shard through an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct AclConfig {
    /// `globalWhiteRemoteAddresses`: a matching peer is not checked at all.
    pub global_white_remote_addresses: Vec<AddressPattern>,
    /// Accounts by access key.
    pub accounts: HashMap<String, Account>,
}

/// A shard's current ACL configuration: `None` while ACL is off. Replaced whole on reload
/// (on the shard's own thread, through the mesh); read without holding the borrow across an
/// `.await`.
#[derive(Debug, Default)]
pub struct AclSlot(RefCell<Option<Arc<AclConfig>>>);

impl AclSlot {
    /// A slot holding `config` (`None`: ACL off).
    #[must_use]
    pub fn new(config: Option<Arc<AclConfig>>) -> Self {
        Self(RefCell::new(config))
    }

    /// The configuration in force, if ACL is on.
    #[must_use]
    pub fn current(&self) -> Option<Arc<AclConfig>> {
        self.0.borrow().clone()
    }

    /// Installs a reloaded configuration.
    pub fn install(&self, config: Arc<AclConfig>) {
        *self.0.borrow_mut() = Some(config);
    }

    /// Runs `check` against the configuration in force; `None` when ACL is off.
    pub fn with<T>(&self, check: impl FnOnce(&AclConfig) -> T) -> Option<T> {
        self.0.borrow().as_deref().map(check)
    }
}

/// Checks `request` from `peer` against `shard`'s ACL configuration (nothing when ACL is off).
/// A refusal is logged at debug level with the access key and the reason (never a secret).
///
/// # Errors
/// [`check::Denied`] when the request is refused.
pub fn check_request(
    shard: &crate::broker::shard::Shard,
    peer: std::net::SocketAddr,
    request: &rmq_net::RemotingCommand,
) -> Result<(), check::Denied> {
    let Some(result) = shard
        .acl
        .with(|config| check::check(config, peer.ip(), request))
    else {
        return Ok(());
    };
    if let Err(denied) = &result {
        tracing::debug!(
            code = request.code,
            peer = %peer,
            access_key = request.ext(rmq_net::codec::acl_sign::ACCESS_KEY).unwrap_or("-"),
            reason = denied.0,
            "ACL refused a request"
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_checks_follow_java() {
        assert!(Perm::grants(Perm::PUB, Perm::PUB));
        assert!(!Perm::grants(Perm::SUB, Perm::PUB));
        assert!(Perm::grants(Perm::PUB_SUB, Perm::SUB));
        assert!(!Perm::grants(Perm::DENY, Perm::SUB));
        assert!(!Perm::grants(Perm(Perm::DENY.0 | Perm::PUB.0), Perm::PUB));
        assert!(Perm::grants(Perm::SUB, Perm::ANY));
        assert!(!Perm::grants(Perm::DENY, Perm::ANY));
        assert_eq!(Perm::parse(" SUB|PUB "), Some(Perm::PUB_SUB));
        assert_eq!(Perm::parse("pub"), None);
        assert_eq!(Perm::PUB_SUB.to_string(), "PUB|SUB");
    }

    #[test]
    fn an_account_never_prints_its_secret() {
        let account = Account {
            access_key: "rocketmq2".into(),
            secret_key: "very-secret-key".into(),
            white_remote_address: AddressPattern::Blank,
            admin: false,
            default_topic_perm: Perm::DENY,
            default_group_perm: Perm::DENY,
            resource_perms: HashMap::new(),
        };
        let printed = format!("{account:?}");
        assert!(printed.contains("rocketmq2"));
        assert!(!printed.contains("very-secret-key"), "{printed}");
    }
}
