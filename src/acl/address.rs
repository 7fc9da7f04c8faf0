//! White-list address patterns of `plain_acl.yml` (`globalWhiteRemoteAddresses` entries and an
//! account's `whiteRemoteAddress`), parsed once and matched per request as Java's
//! `RemoteAddressStrategyFactory` does: blank (nothing), `*` (everything), one address, a list
//! (`192.168.1.1,192.168.1.2`), a brace list (`192.168.1.{1,2}`) and an IPv4 range in one octet
//! (`192.168.0.*`, `192.168.1-10.*`, `192.168.0.1-10`).
//!
//! Must never: accept a pattern it would match differently from Java; what it cannot match
//! (IPv6 ranges, text after a range octet other than `*`) is refused at load with the reason.

use std::net::IpAddr;

use crate::limits::ACL_ADDRESS_ENTRIES_MAX;

/// One parsed white-list pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// Blank: matches no address (an account without `whiteRemoteAddress`).
    Blank,
    /// `*`: matches every address.
    Any,
    /// One or more exact addresses.
    Set(Vec<IpAddr>),
    /// IPv4 addresses whose first `prefix.len()` octets are `prefix` and whose next octet is in
    /// `first..=last`.
    Range {
        /// The fixed leading octets (1 to 3).
        prefix: Vec<u8>,
        /// Lowest value of the ranged octet.
        first: u8,
        /// Highest value of the ranged octet.
        last: u8,
    },
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("white address `{pattern}`: {reason}")]
pub struct AddressError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

fn refused(pattern: &str, reason: impl Into<String>) -> AddressError {
    AddressError {
        pattern: pattern.to_owned(),
        reason: reason.into(),
    }
}

impl AddressPattern {
    /// Parses one pattern.
    ///
    /// # Errors
    /// [`AddressError`] for anything that is not one of the supported forms.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::Blank);
        }
        if matches!(text, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(Self::Any);
        }
        if text.ends_with('}') {
            return parse_braces(text);
        }
        if text.contains(',') {
            return parse_list(text, text.split(','));
        }
        if text.contains('*') || text.contains('-') {
            return parse_range(text);
        }
        Ok(Self::Set(vec![parse_one(text, text)?]))
    }

    /// Whether `peer` matches.
    #[must_use]
    pub fn matches(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        match self {
            Self::Blank => false,
            Self::Any => true,
            Self::Set(addresses) => addresses.contains(&peer),
            Self::Range {
                prefix,
                first,
                last,
            } => {
                let IpAddr::V4(v4) = peer else {
                    return false;
                };
                let octets = v4.octets();
                assert!(
                    (1..=3).contains(&prefix.len()),
                    "a range has 1 to 3 fixed octets"
                );
                octets.starts_with(prefix) && (*first..=*last).contains(&octets[prefix.len()])
            }
        }
    }
}

fn parse_one(pattern: &str, address: &str) -> Result<IpAddr, AddressError> {
    address
        .trim()
        .parse::<IpAddr>()
        .map(|a| a.to_canonical())
        .map_err(|_| {
            refused(
                pattern,
                format!("`{}` is not an IP address", address.trim()),
            )
        })
}

fn parse_list<'a>(
    pattern: &str,
    entries: impl Iterator<Item = &'a str>,
) -> Result<AddressPattern, AddressError> {
    let mut addresses = Vec::new();
    for entry in entries.filter(|e| !e.trim().is_empty()) {
        if addresses.len() == ACL_ADDRESS_ENTRIES_MAX {
            return Err(refused(
                pattern,
                format!("more than {ACL_ADDRESS_ENTRIES_MAX} addresses"),
            ));
        }
        addresses.push(parse_one(pattern, entry)?);
    }
    if addresses.is_empty() {
        return Err(refused(pattern, "no address in the list"));
    }
    Ok(AddressPattern::Set(addresses))
}

/// `a.b.c.{x,y}`: the addresses `a.b.c.x` and `a.b.c.y` (IPv4 only).
fn parse_braces(pattern: &str) -> Result<AddressPattern, AddressError> {
    let Some(open) = pattern.find('{') else {
        return Err(refused(pattern, "`}` without `{`"));
    };
    let head = &pattern[..open];
    if pattern.contains(':') || !head.ends_with('.') || head.split('.').count() != 4 {
        return Err(refused(
            pattern,
            "a brace list must be the last octet of an IPv4 address (192.168.1.{1,2})",
        ));
    }
    let inner = &pattern[open + 1..pattern.len() - 1];
    let full: Vec<String> = inner
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|last| format!("{head}{}", last.trim()))
        .collect();
    parse_list(pattern, full.iter().map(String::as_str))
}

/// `a.*`, `a.b.*`, `a.b.c.*`, `a.b.x-y.*`, `a.b.c.x-y`: IPv4 only, as Java's
/// `RangeRemoteAddressStrategy` (the first octet cannot be ranged; octets after the ranged one
/// must be `*`).
fn parse_range(pattern: &str) -> Result<AddressPattern, AddressError> {
    if pattern.contains(':') {
        return Err(refused(pattern, "IPv6 ranges are not supported"));
    }
    let octets: Vec<&str> = pattern.split('.').map(str::trim).collect();
    if octets.len() != 4 {
        return Err(refused(pattern, "an IPv4 range has four octets"));
    }
    let is_ranged = |octet: &str| octet == "*" || octet.contains('-');
    let ranged = match (0..4).find(|&i| is_ranged(octets[i])) {
        Some(0) | None => return Err(refused(pattern, "the first octet cannot be a range")),
        Some(index) => index,
    };
    let octet = |text: &str| {
        text.parse::<u8>()
            .map_err(|_| refused(pattern, format!("`{text}` is not an octet (0-255)")))
    };
    let prefix = octets[..ranged]
        .iter()
        .map(|o| octet(o))
        .collect::<Result<Vec<u8>, _>>()?;
    let (first, last) = if octets[ranged] == "*" {
        (0, u8::MAX)
    } else {
        let (low, high) = octets[ranged]
            .split_once('-')
            .expect("the ranged octet holds `-`");
        let (first, last) = (octet(low.trim())?, octet(high.trim())?);
        if first > last {
            return Err(refused(pattern, format!("range {first}-{last} is empty")));
        }
        (first, last)
    };
    if octets[ranged + 1..].iter().any(|o| *o != "*") {
        return Err(refused(pattern, "octets after the ranged one must be `*`"));
    }
    Ok(AddressPattern::Range {
        prefix,
        first,
        last,
    })
}

/// `peer`'s address as text for a remark (never a port).
#[must_use]
pub fn display(peer: IpAddr) -> String {
    peer.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn matches(pattern: &str, address: &str) -> bool {
        AddressPattern::parse(pattern)
            .expect("valid pattern")
            .matches(ip(address))
    }

    #[test]
    fn blank_matches_nothing_and_star_everything() {
        assert!(!matches("", "127.0.0.1"));
        assert!(!matches("  ", "127.0.0.1"));
        for any in ["*", "*.*.*.*", "*:*:*:*:*:*:*:*"] {
            assert!(matches(any, "10.1.2.3"), "{any}");
            assert!(matches(any, "::1"), "{any}");
        }
    }

    #[test]
    fn exact_lists_and_braces() {
        assert!(matches("192.168.1.1", "192.168.1.1"));
        assert!(!matches("192.168.1.1", "192.168.1.2"));
        assert!(matches("192.168.1.1,192.168.1.2", "192.168.1.2"));
        assert!(!matches("192.168.1.1,192.168.1.2", "192.168.1.3"));
        assert!(matches("192.168.1.{1,2,3}", "192.168.1.3"));
        assert!(!matches("192.168.1.{1,2,3}", "192.168.1.4"));
        assert!(matches("::1", "::1"));
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        assert!(matches("127.0.0.1", "::ffff:127.0.0.1"));
    }

    #[test]
    fn ranges_in_one_octet() {
        assert!(matches("192.168.0.*", "192.168.0.77"));
        assert!(!matches("192.168.0.*", "192.168.1.77"));
        assert!(matches("192.168.*.*", "192.168.200.1"));
        assert!(matches("192.168.1-10.*", "192.168.10.200"));
        assert!(!matches("192.168.1-10.*", "192.168.11.1"));
        assert!(matches("192.168.0.1-10", "192.168.0.1"));
        assert!(matches("192.168.0.1-10", "192.168.0.10"));
        assert!(!matches("192.168.0.1-10", "192.168.0.11"));
        assert!(!matches("192.168.0.*", "::1"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,40}") {
            let _ = AddressPattern::parse(&text);
        }

        #[test]
        fn one_octet_patterns_match_exactly_their_addresses(
            octets in proptest::array::uniform4(proptest::num::u8::ANY),
            low in proptest::num::u8::ANY,
            high in proptest::num::u8::ANY,
        ) {
            let [a, b, c, d] = octets;
            let address = IpAddr::from(octets);
            let text = address.to_string();
            let last_star = format!("{a}.{b}.{c}.*");
            let two_stars = format!("{a}.{b}.*.*");
            let braces = format!("{a}.{b}.{c}.{{{d}}}");
            proptest::prop_assert!(matches(&last_star, &text));
            proptest::prop_assert!(matches(&two_stars, &text));
            proptest::prop_assert!(matches(&braces, &text));
            let (low, high) = (low.min(high), low.max(high));
            let range = AddressPattern::parse(&format!("{a}.{b}.{c}.{low}-{high}")).expect("range");
            proptest::prop_assert_eq!(range.matches(address), (low..=high).contains(&d));
            let other = IpAddr::from([a, b, c.wrapping_add(1), d]);
            proptest::prop_assert!(!range.matches(other));
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (bad, why) in [
            ("192.168.0", "not an IP address"),
            ("10-20.*.*.*", "first octet"),
            ("192.168.10-1.*", "empty"),
            ("192.168.1-300.*", "not an octet"),
            ("192.168.*.1", "must be `*`"),
            ("fe80::*", "IPv6 ranges"),
            ("192.168.{1,2}", "last octet"),
            ("192.168.1.{}", "no address"),
            ("192.168.1.1,nope", "not an IP address"),
        ] {
            let err = AddressPattern::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }
}
