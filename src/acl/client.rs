//! ACL credentials for our own client, the `rmq admin` CLI: read from the environment
//! (`RMQ_ACCESS_KEY`, `RMQ_SECRET_KEY`, optional `RMQ_SECURITY_TOKEN`; the environment keeps the
//! secret out of `ps` and shell history, unlike an argument) and applied with the one signer
//! the broker verifies with (`rmq_net::codec::acl_sign`).
//!
//! Must never: print the secret key, or sign with half a key pair (both or neither).

use rmq_net::codec::acl_sign::{self, Credentials};
use rmq_net::RemotingCommand;

/// The access key variable.
pub const ACCESS_KEY_ENV: &str = "RMQ_ACCESS_KEY";
/// The secret key variable.
pub const SECRET_KEY_ENV: &str = "RMQ_SECRET_KEY";
/// The optional STS token variable.
pub const SECURITY_TOKEN_ENV: &str = "RMQ_SECURITY_TOKEN";

/// Credentials from `access_key` and `secret_key` when both are set and non-empty.
#[must_use]
pub fn credentials(
    access_key: Option<String>,
    secret_key: Option<String>,
    security_token: Option<String>,
) -> Option<Credentials> {
    let access_key = access_key.filter(|k| !k.is_empty())?;
    let secret_key = secret_key.filter(|k| !k.is_empty())?;
    Some(Credentials {
        access_key,
        secret_key,
        security_token: security_token.filter(|t| !t.is_empty()),
    })
}

/// Credentials from the environment, if both keys are set.
#[must_use]
pub fn credentials_from_env() -> Option<Credentials> {
    let var = |name| std::env::var(name).ok();
    credentials(
        var(ACCESS_KEY_ENV),
        var(SECRET_KEY_ENV),
        var(SECURITY_TOKEN_ENV),
    )
}

/// Signs `request` when the environment holds credentials; leaves it unsigned otherwise.
pub fn sign_if_configured(request: &mut RemotingCommand) {
    if let Some(credentials) = credentials_from_env() {
        acl_sign::sign(request, &credentials);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_keys_or_none() {
        let some = |s: &str| Some(s.to_owned());
        assert!(credentials(some("ak12345"), None, None).is_none());
        assert!(credentials(None, some("sk12345"), None).is_none());
        assert!(credentials(some("ak12345"), some(""), None).is_none());
        let both = credentials(some("ak12345"), some("sk12345"), some("")).expect("both");
        assert_eq!(both.access_key, "ak12345");
        assert_eq!(both.security_token, None);
    }
}
