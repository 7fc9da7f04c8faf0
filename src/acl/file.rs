//! `plain_acl.yml` (RocketMQ 4.x format) to an [`AclConfig`]: `globalWhiteRemoteAddresses` and
//! `accounts` with `accessKey`, `secretKey`, `whiteRemoteAddress`, `admin`,
//! `defaultTopicPerm`, `defaultGroupPerm`, `topicPerms`, `groupPerms` (`name=PERM` items).
//! Other keys (Java's `dataVersion`) are ignored. Validated whole before anything is used: a
//! file either loads completely or is refused with the reason.
//!
//! YAML is read with `yaml-rust2` (pure Rust, maintained; `serde_yaml` is deprecated and the
//! file is small and untyped enough that walking the tree is simpler than serde). Anchors and
//! aliases are refused: the loader expands them by copying, which a hostile file could turn into
//! an exponential blow-up, and `plain_acl.yml` never needs them. Nesting deeper than
//! [`ACL_YAML_DEPTH_MAX`] is refused too, from the parser's event stream (a state machine),
//! before the recursive loader sees the file: `- - - ... x` nests one block sequence per two
//! bytes, and a 200 KB file of it overflowed the stack (aborting the broker) in the loader.
//!
//! Must never: put a secret key in an error, or accept a file over the named limits.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

use super::address::{AddressError, AddressPattern};
use super::{group_resource, Account, AclConfig, Perm};
use crate::limits::{
    ACL_ACCESS_KEY_LENGTH_MIN, ACL_ACCOUNTS_MAX, ACL_ADDRESS_ENTRIES_MAX, ACL_FILE_BYTES_MAX,
    ACL_RESOURCE_PERMS_MAX, ACL_YAML_DEPTH_MAX,
};

/// Why a `plain_acl.yml` was refused. Never holds a secret key.
#[derive(Debug, thiserror::Error)]
pub enum AclFileError {
    /// The file is over [`ACL_FILE_BYTES_MAX`].
    #[error("the ACL file is {bytes} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        max: usize,
    },
    /// Not YAML (the scanner's message: what and where, no content).
    #[error("the ACL file is not valid YAML: {0}")]
    Yaml(String),
    /// An anchor or alias.
    #[error("the ACL file uses YAML aliases (`*name`), which are not supported; quote a `*` white address")]
    Aliases,
    /// Sequences and mappings nested deeper than [`ACL_YAML_DEPTH_MAX`].
    #[error("the ACL file nests sequences and mappings deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A key holds the wrong kind of value, or a list is too long.
    #[error("the ACL file's `{key}` {reason}")]
    Shape {
        /// The top-level key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// One account is wrong.
    #[error("account {index} (accessKey={access_key}) in the ACL file: {reason}")]
    Account {
        /// Its position in `accounts`, from 0.
        index: usize,
        /// Its access key (`?` when missing).
        access_key: String,
        /// What is wrong.
        reason: String,
    },
    /// A white-list pattern is wrong.
    #[error("the ACL file's {0}")]
    Address(#[from] AddressError),
}

/// Walks the parser's events (no tree, no recursion) before loading: refuses aliases and
/// nesting past [`ACL_YAML_DEPTH_MAX`], so the recursive loader only sees shallow files.
fn check_events(text: &str) -> Result<(), AclFileError> {
    let mut parser = Parser::new(text.chars());
    let mut depth = 0usize;
    loop {
        let (event, _) = parser
            .next_token()
            .map_err(|err| AclFileError::Yaml(err.to_string()))?;
        match event {
            Event::StreamEnd => return Ok(()),
            Event::Alias(_) => return Err(AclFileError::Aliases),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > ACL_YAML_DEPTH_MAX {
                    return Err(AclFileError::TooDeep {
                        max: ACL_YAML_DEPTH_MAX,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth
                    .checked_sub(1)
                    .expect("the parser balances its events");
            }
            _ => {}
        }
    }
}

/// Parses and validates a whole `plain_acl.yml`.
///
/// # Errors
/// [`AclFileError`] naming the first problem (never a secret).
pub fn parse(text: &str) -> Result<AclConfig, AclFileError> {
    if text.len() > ACL_FILE_BYTES_MAX {
        return Err(AclFileError::TooLarge {
            bytes: text.len() as u64,
            max: ACL_FILE_BYTES_MAX,
        });
    }
    check_events(text)?;
    let documents =
        YamlLoader::load_from_str(text).map_err(|err| AclFileError::Yaml(err.to_string()))?;
    let root = match documents.as_slice() {
        [] => return Ok(AclConfig::default()),
        [root] => root,
        _ => {
            return Err(AclFileError::Yaml(
                "more than one YAML document (`---`)".into(),
            ))
        }
    };
    if !matches!(root, Yaml::Hash(_) | Yaml::Null) {
        return Err(AclFileError::Yaml("the top level is not a mapping".into()));
    }
    let mut config = AclConfig::default();
    for entry in list(root, "globalWhiteRemoteAddresses", ACL_ADDRESS_ENTRIES_MAX)? {
        let Some(text) = scalar(entry) else {
            return Err(AclFileError::Shape {
                key: "globalWhiteRemoteAddresses",
                reason: "holds an entry that is not a string".into(),
            });
        };
        config
            .global_white_remote_addresses
            .push(AddressPattern::parse(&text)?);
    }
    let mut resource_perms = 0_usize;
    for (index, entry) in list(root, "accounts", ACL_ACCOUNTS_MAX)?.iter().enumerate() {
        let account = account(index, entry)?;
        resource_perms += account.resource_perms.len();
        if resource_perms > ACL_RESOURCE_PERMS_MAX {
            return Err(AclFileError::Shape {
                key: "accounts",
                reason: format!(
                    "hold more than {ACL_RESOURCE_PERMS_MAX} topicPerms and groupPerms in all"
                ),
            });
        }
        let key = account.access_key.clone();
        if config.accounts.insert(key.clone(), account).is_some() {
            return Err(AclFileError::Account {
                index,
                access_key: key,
                reason: "the accessKey appears twice".into(),
            });
        }
    }
    Ok(config)
}

/// The list under `key` (absent or null: empty), at most `max` entries.
fn list<'a>(root: &'a Yaml, key: &'static str, max: usize) -> Result<&'a [Yaml], AclFileError> {
    match &root[key] {
        Yaml::BadValue | Yaml::Null => Ok(&[]),
        Yaml::Array(items) if items.len() <= max => Ok(items),
        Yaml::Array(items) => Err(AclFileError::Shape {
            key,
            reason: format!("has {} entries, over the limit of {max}", items.len()),
        }),
        _ => Err(AclFileError::Shape {
            key,
            reason: "is not a list".into(),
        }),
    }
}

/// A scalar as Java's YAML-to-JSON reading sees it (numbers and booleans as their text).
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn account(index: usize, entry: &Yaml) -> Result<Account, AclFileError> {
    let access_key = scalar(&entry["accessKey"]);
    let refuse = |reason: String| AclFileError::Account {
        index,
        access_key: access_key.clone().unwrap_or_else(|| "?".into()),
        reason,
    };
    if !matches!(entry, Yaml::Hash(_)) {
        return Err(refuse("is not a mapping".into()));
    }
    let Some(access_key_text) = access_key.clone() else {
        return Err(refuse("has no accessKey".into()));
    };
    let Some(secret_key) = scalar(&entry["secretKey"]) else {
        return Err(refuse("has no secretKey".into()));
    };
    // Java's checkPlainAccessConfig: both longer than 6 characters.
    if access_key_text.chars().count() < ACL_ACCESS_KEY_LENGTH_MIN
        || secret_key.chars().count() < ACL_ACCESS_KEY_LENGTH_MIN
    {
        return Err(refuse(format!(
            "accessKey and secretKey must each be at least {ACL_ACCESS_KEY_LENGTH_MIN} characters"
        )));
    }
    let white = match &entry["whiteRemoteAddress"] {
        Yaml::BadValue | Yaml::Null => AddressPattern::Blank,
        value => match scalar(value) {
            Some(text) => AddressPattern::parse(&text).map_err(|e| refuse(e.to_string()))?,
            None => return Err(refuse("whiteRemoteAddress is not a string".into())),
        },
    };
    let admin = match &entry["admin"] {
        Yaml::BadValue | Yaml::Null => false,
        Yaml::Boolean(flag) => *flag,
        value => match scalar(value).as_deref().map(str::trim) {
            Some("true") => true,
            Some("false") => false,
            _ => return Err(refuse("admin is not true or false".into())),
        },
    };
    let default_perm = |key: &str| -> Result<Perm, AclFileError> {
        match &entry[key] {
            Yaml::BadValue | Yaml::Null => Ok(Perm::DENY),
            value => scalar(value)
                .as_deref()
                .and_then(Perm::parse)
                .ok_or_else(|| refuse(format!("{key} is not DENY, PUB, SUB or PUB|SUB"))),
        }
    };
    let default_topic_perm = default_perm("defaultTopicPerm")?;
    let default_group_perm = default_perm("defaultGroupPerm")?;
    let resource_perms = resource_perms(entry).map_err(refuse)?;
    Ok(Account {
        access_key: access_key_text,
        secret_key,
        white_remote_address: white,
        admin,
        default_topic_perm,
        default_group_perm,
        resource_perms,
    })
}

/// An account's `topicPerms` and `groupPerms`, keyed as Java keys them (groups as
/// `%RETRY%<group>`).
fn resource_perms(entry: &Yaml) -> Result<HashMap<String, Perm>, String> {
    let mut resource_perms = HashMap::new();
    for (key, is_topic) in [("topicPerms", true), ("groupPerms", false)] {
        let items = match &entry[key] {
            Yaml::BadValue | Yaml::Null => &[][..],
            Yaml::Array(items) if items.len() <= ACL_RESOURCE_PERMS_MAX => items.as_slice(),
            _ => {
                return Err(format!(
                    "{key} is not a list of at most {ACL_RESOURCE_PERMS_MAX} `name=PERM` items"
                ))
            }
        };
        for item in items {
            let (name, perm) = scalar(item)
                .as_deref()
                .and_then(resource_perm)
                .ok_or_else(|| {
                    format!(
                        "{key} item {item:?} is not `name=PERM` (PERM one of DENY, PUB, SUB, PUB|SUB)"
                    )
                })?;
            let resource = if is_topic {
                name
            } else {
                group_resource(&name)
            };
            resource_perms.insert(resource, perm);
        }
    }
    Ok(resource_perms)
}

/// `name=PERM` (Java's `Permission.parseResourcePerms` + `checkResourcePerms`).
fn resource_perm(item: &str) -> Option<(String, Perm)> {
    let mut parts = item.split('=').filter(|part| !part.is_empty());
    let (name, perm) = (parts.next()?.trim(), parts.next()?);
    if parts.next().is_some() || name.is_empty() {
        return None;
    }
    Some((name.to_owned(), Perm::parse(perm)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// RocketMQ 4.9's distributed `conf/plain_acl.yml`, as shipped.
    const JAVA_SAMPLE: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      # the group should convert to retry topic
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB

  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    # if it is admin, it could access all resources
    admin: true
"#;

    #[test]
    fn the_java_sample_loads() {
        let config = parse(JAVA_SAMPLE).expect("the shipped sample");
        assert_eq!(config.global_white_remote_addresses.len(), 2);
        let peer: IpAddr = "192.168.0.9".parse().expect("ip");
        assert!(config.global_white_remote_addresses[1].matches(peer));
        let first = &config.accounts["RocketMQ"];
        assert_eq!(
            first.secret_key, "12345678",
            "a YAML number reads as its text"
        );
        assert!(!first.admin);
        assert_eq!(first.white_remote_address, AddressPattern::Blank);
        assert_eq!(first.default_topic_perm, Perm::DENY);
        assert_eq!(first.default_group_perm, Perm::SUB);
        assert_eq!(first.resource_perms["topicB"], Perm::PUB_SUB);
        assert_eq!(first.resource_perms["%RETRY%groupA"], Perm::DENY);
        assert_eq!(first.resource_perms.len(), 6);
        let second = &config.accounts["rocketmq2"];
        assert!(second.admin);
        assert!(second.resource_perms.is_empty());
        assert!(second
            .white_remote_address
            .matches("192.168.1.7".parse().expect("ip")));
    }

    #[test]
    fn an_empty_file_has_no_accounts() {
        let config = parse("").expect("empty");
        assert!(config.accounts.is_empty());
        assert!(config.global_white_remote_addresses.is_empty());
    }

    fn refusal(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn deep_nesting_is_refused_before_the_recursive_loader() {
        // One block sequence per two bytes: 400 KB, under the size limit, 200,000 levels.
        let deep = format!("accounts:\n  {}x\n", "- ".repeat(200_000));
        assert!(deep.len() < ACL_FILE_BYTES_MAX);
        assert!(refusal(&deep).contains("deeper than 16 levels"));
        let flow = format!("accounts: {}", "[".repeat(ACL_YAML_DEPTH_MAX + 1));
        assert!(refusal(&flow).contains("deeper than 16 levels"));
        // The format's own depth (4) loads.
        let shallow = "accounts:\n  - accessKey: account1\n    secretKey: secret-key-1\n    topicPerms: [ 'a=PUB' ]\n";
        assert!(parse(shallow).is_ok());
    }

    #[test]
    fn bad_files_are_refused_without_their_secrets() {
        let cases = [
            ("accounts: [", "not valid YAML"),
            ("accounts: 3", "is not a list"),
            ("accounts:\n  - secretKey: hidden-secret-1\n", "has no accessKey"),
            (
                "accounts:\n  - accessKey: shortie1\n    secretKey: short\n",
                "at least 7",
            ),
            (
                "accounts:\n  - accessKey: account1\n    secretKey: hidden-secret-1\n    topicPerms: [ 'a=WRITE' ]\n",
                "not `name=PERM`",
            ),
            (
                "accounts:\n  - accessKey: account1\n    secretKey: hidden-secret-1\n    defaultTopicPerm: ALL\n",
                "defaultTopicPerm",
            ),
            (
                "accounts:\n  - accessKey: account1\n    secretKey: hidden-secret-1\n  - accessKey: account1\n    secretKey: hidden-secret-2\n",
                "appears twice",
            ),
            (
                "accounts:\n  - accessKey: account1\n    secretKey: hidden-secret-1\n    whiteRemoteAddress: 10-1.*.*.*\n",
                "first octet",
            ),
            ("globalWhiteRemoteAddresses: [ 'x.y' ]", "not an IP address"),
            (
                "a: &x [1]\nglobalWhiteRemoteAddresses: *x\n",
                "aliases",
            ),
        ];
        for (text, why) in cases {
            let err = refusal(text);
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(!err.contains("hidden-secret"), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parsing_yaml_shaped_text_never_panics(
            lines in proptest::collection::vec(
                "(accounts:|  - accessKey: [a-z0-9]{0,9}|    secretKey: [a-z0-9*&]{0,9}|    topicPerms: \\[ *[a-z=|A-Z]{0,12} *\\]|    admin: (true|1|no)|globalWhiteRemoteAddresses:|  - [0-9.*{},-]{0,16})",
                0..12,
            ),
        ) {
            let _ = parse(&lines.join("\n"));
        }
    }

    #[test]
    fn limits_are_enforced() {
        let big = "#".repeat(ACL_FILE_BYTES_MAX + 1);
        assert!(refusal(&big).contains("over the"));
        let mut many = String::from("accounts:\n");
        for i in 0..=ACL_ACCOUNTS_MAX {
            many.push_str(&format!(
                "  - {{accessKey: account{i}, secretKey: secret{i}x}}\n"
            ));
        }
        assert!(refusal(&many).contains("over the limit"));
    }
}
