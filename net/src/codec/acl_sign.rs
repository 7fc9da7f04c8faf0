//! RocketMQ 4.x plain-ACL request signatures: HMAC-SHA1, base64, over the values of the
//! extFields in key order (without `Signature` and `_UNIQUE_KEY_QUERY`) followed by the body,
//! keyed with the account's secret key (Java `AclUtils.combineRequestContent` + `AclSigner`,
//! ali-ons `Channel.beforeRequest`). One implementation for both sides: our clients sign with
//! [`sign`], the broker checks with [`verify`].
//!
//! Must never: log, format or keep a secret key (the [`Credentials`] `Debug` hides it), or
//! compare a signature in time that depends on where it differs (verification goes through
//! the MAC's constant-time check).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use super::command::{ExtFields, RemotingCommand};

/// The extFields key naming the account (`SessionCredentials.ACCESS_KEY`).
pub const ACCESS_KEY: &str = "AccessKey";
/// The extFields key carrying the signature (`SessionCredentials.SIGNATURE`).
pub const SIGNATURE: &str = "Signature";
/// The extFields key of an STS token (`SessionCredentials.SECURITY_TOKEN`); signed like any
/// other field.
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// `MixAll.UNIQUE_MSG_QUERY_FLAG`: Java leaves this QUERY_MESSAGE flag out of the signed
/// content (it is added after signing by the admin tools).
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

type HmacSha1 = Hmac<Sha1>;

/// An account's key pair, as a client holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account name (`accessKey` in `plain_acl.yml`).
    pub access_key: String,
    /// The signing key (`secretKey`); never printed.
    pub secret_key: String,
    /// An optional STS token, sent as `SecurityToken` and signed.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// Whether `key` is part of the signed content.
fn is_signed(key: &str) -> bool {
    key != SIGNATURE && key != UNIQUE_MSG_QUERY_FLAG
}

/// The MAC over `ext_fields` (sorted by key, as [`ExtFields`] always is) and `body`.
fn mac(ext_fields: &ExtFields, body: &[u8], secret_key: &str) -> HmacSha1 {
    let mut mac =
        <HmacSha1 as KeyInit>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key");
    let mut previous: Option<&str> = None;
    for (key, value) in ext_fields.iter() {
        // The content is defined by key order; ExtFields guarantees it, check it stays so.
        assert!(
            previous.is_none_or(|p| p < key),
            "extFields out of key order"
        );
        previous = Some(key);
        if is_signed(key) {
            mac.update(value.as_bytes());
        }
    }
    mac.update(body);
    mac
}

/// The base64 signature of `ext_fields` and `body` under `secret_key`.
#[must_use]
pub fn signature(ext_fields: &ExtFields, body: &[u8], secret_key: &str) -> String {
    BASE64.encode(mac(ext_fields, body, secret_key).finalize().into_bytes())
}

/// Whether `claimed` (base64, as sent in `Signature`) is the signature of `ext_fields` and
/// `body` under `secret_key`. The comparison takes the same time wherever the bytes differ.
#[must_use]
pub fn verify(ext_fields: &ExtFields, body: &[u8], secret_key: &str, claimed: &str) -> bool {
    let Ok(claimed) = BASE64.decode(claimed.trim()) else {
        return false;
    };
    mac(ext_fields, body, secret_key)
        .verify_slice(&claimed)
        .is_ok()
}

/// Signs `request` as an ACL client does: sets `AccessKey` (and `SecurityToken` when the
/// credentials carry one), then `Signature` over every other field and the body. Sign last,
/// after every field and the body are final.
pub fn sign(request: &mut RemotingCommand, credentials: &Credentials) {
    request.ext_fields.remove(SIGNATURE);
    request
        .ext_fields
        .insert(ACCESS_KEY, credentials.access_key.as_str());
    if let Some(token) = &credentials.security_token {
        request.ext_fields.insert(SECURITY_TOKEN, token.as_str());
    }
    let signed = signature(&request.ext_fields, &request.body, &credentials.secret_key);
    request.ext_fields.insert(SIGNATURE, signed);
    assert!(verify(
        &request.ext_fields,
        &request.body,
        &credentials.secret_key,
        request.ext_fields.get(SIGNATURE).unwrap_or_default(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::codes::RequestCode;

    fn fields(pairs: &[(&str, &str)]) -> ExtFields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The shared cross-check vector: ali-ons and the C++ client both sent this signature
    /// (wire-captures README).
    #[test]
    fn the_cross_check_vector_verifies() {
        let ext = fields(&[
            ("AccessKey", "dummyAK"),
            ("OnsChannel", "ALIYUN"),
            ("Signature", "pPi4sewMarg+C+HTGAtkfpZ00UU="),
            ("topic", "TopicTest"),
        ]);
        assert_eq!(
            signature(&ext, b"", "dummySK"),
            "pPi4sewMarg+C+HTGAtkfpZ00UU="
        );
        assert!(verify(&ext, b"", "dummySK", "pPi4sewMarg+C+HTGAtkfpZ00UU="));
        assert!(!verify(
            &ext,
            b"",
            "dummySk",
            "pPi4sewMarg+C+HTGAtkfpZ00UU="
        ));
        assert!(!verify(
            &ext,
            b"x",
            "dummySK",
            "pPi4sewMarg+C+HTGAtkfpZ00UU="
        ));
        assert!(!verify(&ext, b"", "dummySK", "not base64 !"));
        assert!(!verify(&ext, b"", "dummySK", ""));
    }

    #[test]
    fn the_unique_key_query_flag_and_the_signature_are_not_signed() {
        let plain = fields(&[("AccessKey", "ak"), ("topic", "T")]);
        let flagged = fields(&[
            ("AccessKey", "ak"),
            ("Signature", "whatever"),
            ("_UNIQUE_KEY_QUERY", "true"),
            ("topic", "T"),
        ]);
        assert_eq!(signature(&plain, b"b", "s"), signature(&flagged, b"b", "s"));
        let other = fields(&[("AccessKey", "ak"), ("topic", "U")]);
        assert_ne!(signature(&plain, b"b", "s"), signature(&other, b"b", "s"));
    }

    proptest::proptest! {
        #[test]
        fn a_signed_request_verifies_and_any_change_does_not(
            pairs in proptest::collection::btree_map("[a-zA-Z]{1,8}", "\\PC{0,12}", 0..8),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            flip in proptest::num::usize::ANY,
        ) {
            let ext: ExtFields = pairs.into_iter().collect();
            let signed = signature(&ext, &body, "secret-key");
            proptest::prop_assert!(verify(&ext, &body, "secret-key", &signed));
            proptest::prop_assert!(!verify(&ext, &body, "secret-kez", &signed));
            let mut changed = body.clone();
            if changed.is_empty() {
                changed.push(0);
            } else {
                let at = flip % changed.len();
                changed[at] ^= 1;
            }
            proptest::prop_assert!(!verify(&ext, &changed, "secret-key", &signed));
        }
    }

    #[test]
    fn sign_sets_the_access_key_and_token_and_verifies() {
        let credentials = Credentials {
            access_key: "rocketmq2".into(),
            secret_key: "12345678".into(),
            security_token: Some("token".into()),
        };
        let mut request = RemotingCommand::request(
            RequestCode::GetRouteinfoByTopic,
            fields(&[("topic", "T"), ("Signature", "stale")]),
        )
        .with_body(&b"body"[..]);
        sign(&mut request, &credentials);
        assert_eq!(request.ext("AccessKey"), Some("rocketmq2"));
        assert_eq!(request.ext("SecurityToken"), Some("token"));
        let claimed = request.ext("Signature").unwrap_or_default().to_owned();
        assert_ne!(claimed, "stale");
        assert!(verify(
            &request.ext_fields,
            &request.body,
            "12345678",
            &claimed
        ));
        assert!(!format!("{credentials:?}").contains("12345678"));
    }
}
