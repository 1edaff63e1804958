//! Signed tokens the platform gives out and takes back: `base64url(JSON claims) "." base64url(
//! HMAC-SHA256)`, with a key derived from the admin key for one purpose, so no extra secret has
//! to be provisioned and rotating the admin key invalidates every token signed before.
//!
//! Used by the OAuth connect state (`connect`) and the console's session cookie. A token carries
//! no secret: whoever holds one can read its claims, nobody can change them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Error;
use crate::ports::AdminKey;

/// The key tokens of one purpose are signed with.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The key of `purpose` in this deployment; without an admin key nothing can be signed.
    pub async fn of(admin_key: &dyn AdminKey, purpose: &str) -> Result<SigningKey, Error> {
        let admin = admin_key
            .admin_key()
            .await?
            .ok_or_else(|| Error::unavailable(format!("no admin key configured: {purpose} cannot be signed")))?;
        Ok(SigningKey::derive(&admin, purpose))
    }

    /// `HMAC(admin key, "switchyard {purpose} v1")`.
    pub fn derive(admin: &str, purpose: &str) -> SigningKey {
        let mut mac = hmac(admin.as_bytes());
        mac.update(format!("switchyard {purpose} v1").as_bytes());
        SigningKey(mac.finalize().into_bytes().to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Sign `claims`.
pub fn sign<T: Serialize>(key: &[u8], claims: &T) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = hmac(key);
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The claims of a token signed with `key`, or `None` for anything else (a wrong signature,
/// bad encoding, claims of another shape). Expiry is the caller's to check.
pub fn open<T: DeserializeOwned>(key: &[u8], token: &str) -> Option<T> {
    let (payload, signature) = token.split_once('.')?;
    let mut mac = hmac(key);
    mac.update(payload.as_bytes());
    let expected = mac.finalize().into_bytes();
    let given = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if given.len() != expected.len() || !bool::from(expected.as_slice().ct_eq(&given)) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Whether two tokens are the same, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Claims {
        who: String,
        exp: i64,
    }

    #[test]
    fn a_token_opens_only_with_its_key_and_unchanged() {
        let key = SigningKey::derive("admin", "console session");
        let claims = Claims { who: "k1".into(), exp: 5 };
        let token = sign(key.as_bytes(), &claims);
        assert_eq!(open::<Claims>(key.as_bytes(), &token), Some(claims));
        let other = SigningKey::derive("admin", "oauth state");
        assert_eq!(open::<Claims>(other.as_bytes(), &token), None, "another purpose's key");
        let (payload, signature) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"who":"admin","exp":5}"#);
        assert_eq!(open::<Claims>(key.as_bytes(), &format!("{forged}.{signature}")), None);
        assert_eq!(open::<Claims>(key.as_bytes(), payload), None);
        assert_eq!(open::<Claims>(key.as_bytes(), &format!("{payload}.")), None);
        assert_eq!(open::<Claims>(key.as_bytes(), ""), None);
    }
}
