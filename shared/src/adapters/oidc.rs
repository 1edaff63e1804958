//! Bearer tokens from OpenID Connect issuers (Keycloak, Cognito, Auth0, Entra, Google, any
//! provider that publishes discovery and a JWKS), verified with `jsonwebtoken`.
//!
//! A token is checked in this order: its size; its header (an algorithm of the allow-list:
//! RS256, RS384, ES256, EdDSA; `none` does not parse and HS* is refused, so a public key can
//! never serve as an HMAC secret); its `iss`, read unverified only to pick one of the
//! configured issuers; the signature, with that issuer's key of the header's `kid` (the key's
//! family must fit the algorithm, and a key that names its `alg` must name this one); then
//! `exp` and `nbf` against the platform clock with [`LEEWAY_SECS`]; then `aud` (when
//! `SWITCHYARD_OIDC_AUDIENCE` is set) or `azp` (one of `SWITCHYARD_OIDC_CLIENTS`).
//!
//! Keys, per issuer: fetched from `jwks_uri` of `{issuer}/.well-known/openid-configuration`
//! (whose `issuer` must be the configured one) through the outbound client, so the SSRF guard,
//! timeouts and a size limit apply (an identity provider on a private address needs its range
//! in `SWITCHYARD_OUTBOUND_ALLOW`). They are kept for [`KEYS_TTL`]; a `kid` not among them
//! refetches, but at most once per [`REFETCH_INTERVAL`] per issuer; a cold or stale cache is
//! filled by one fetch that concurrent requests wait for (a mutex per issuer). When the
//! provider is down, cached keys keep working past their time to live, and a token whose key
//! is not cached gets a 503 (`TokenError::Unavailable`), never a 500.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::ports::{Clock, Http, OutboundRequest, TokenError, TokenVerifier, VerifiedToken};

/// How long fetched keys are used before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(600);
/// Least time between two fetches of one issuer's keys when they succeeded.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Least time between two attempts after a failed fetch.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;
/// Largest token read (a JWT with many roles is a few kilobytes).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The algorithms accepted.
pub const ALGORITHMS: [Algorithm; 4] = [Algorithm::RS256, Algorithm::RS384, Algorithm::ES256, Algorithm::EdDSA];

/// The OIDC settings (`SWITCHYARD_OIDC_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcSettings {
    /// Issuer URLs, exactly as they appear in `iss`.
    pub issuers: Vec<String>,
    /// The expected `aud`; when unset, `azp` must be one of `clients`.
    pub audience: Option<String>,
    pub clients: Vec<String>,
    /// Dotted claim paths whose string values are role mappings (`space:{space}:{role}`);
    /// `{azp}` stands for the token's client, as in Keycloak's `resource_access.{azp}.roles`.
    pub roles_claims: Vec<String>,
}

impl OidcSettings {
    pub fn enabled(&self) -> bool {
        !self.issuers.is_empty()
    }
}

struct Key {
    decoding: DecodingKey,
    /// The key's own `alg`, when it names one.
    alg: Option<String>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid`, tried for tokens without one.
    anonymous: Vec<Arc<Key>>,
    /// When keys were last fetched successfully; `None` before the first success.
    fetched_at_ms: Option<i64>,
    /// When a fetch was last attempted.
    attempted_at_ms: Option<i64>,
    last_failed: bool,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Vec<Arc<Key>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned().into_iter().collect(),
            None => self.anonymous.clone(),
        }
    }
}

struct Issuer {
    url: String,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching: one fetch per issuer at a time, which waiting requests share.
    fetching: tokio::sync::Mutex<()>,
}

impl Issuer {
    fn snapshot(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn replace(&self, set: KeySet) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}

/// [`TokenVerifier`] over the configured issuers.
pub struct OidcVerifier {
    http: Arc<dyn Http>,
    clock: Arc<dyn Clock>,
    settings: OidcSettings,
    issuers: Vec<Issuer>,
}

fn invalid(reason: impl Into<String>) -> TokenError {
    TokenError::Invalid(reason.into())
}

impl OidcVerifier {
    pub fn new(settings: OidcSettings, http: Arc<dyn Http>, clock: Arc<dyn Clock>) -> OidcVerifier {
        let issuers = settings
            .issuers
            .iter()
            .map(|url| Issuer {
                url: url.clone(),
                keys: RwLock::new(Arc::new(KeySet::default())),
                fetching: tokio::sync::Mutex::new(()),
            })
            .collect();
        OidcVerifier { http, clock, settings, issuers }
    }

    /// The keys that may have signed a token of `issuer` with this `kid`, fetching them when
    /// the cache says to (see the module documentation).
    async fn keys(&self, issuer: &Issuer, kid: Option<&str>) -> Result<Vec<Arc<Key>>, TokenError> {
        let now = self.clock.now_ms();
        let fresh = |set: &KeySet| set.fetched_at_ms.is_some_and(|at| now - at < KEYS_TTL.as_millis() as i64);
        let cached = issuer.snapshot();
        let found = cached.find(kid);
        if !found.is_empty() && fresh(&cached) {
            return Ok(found);
        }
        let _fetching = issuer.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let cached = issuer.snapshot();
        let found = cached.find(kid);
        if !found.is_empty() && fresh(&cached) {
            return Ok(found);
        }
        let wait = if cached.last_failed { RETRY_INTERVAL } else { REFETCH_INTERVAL };
        let recently_tried = cached.attempted_at_ms.is_some_and(|at| now - at < wait.as_millis() as i64);
        // Stale keys are refetched at most once per interval like unknown ones.
        if recently_tried {
            return match (found.is_empty(), cached.fetched_at_ms) {
                (false, _) => Ok(found),
                (true, None) => {
                    Err(TokenError::Unavailable(format!("the keys of {} could not be fetched", issuer.url)))
                }
                (true, Some(_)) => Err(invalid("the token's signing key is not one of the issuer's")),
            };
        }
        match self.fetch(&issuer.url).await {
            Ok(mut set) => {
                set.fetched_at_ms = Some(now);
                set.attempted_at_ms = Some(now);
                let found = set.find(kid);
                issuer.replace(set);
                if found.is_empty() {
                    return Err(invalid("the token's signing key is not one of the issuer's"));
                }
                Ok(found)
            }
            Err(reason) => {
                tracing::warn!(issuer = %issuer.url, %reason, "fetching the identity provider's keys failed");
                issuer.replace(KeySet {
                    by_kid: cached.by_kid.clone(),
                    anonymous: cached.anonymous.clone(),
                    fetched_at_ms: cached.fetched_at_ms,
                    attempted_at_ms: Some(now),
                    last_failed: true,
                });
                if found.is_empty() {
                    Err(TokenError::Unavailable(format!("the keys of {} could not be fetched", issuer.url)))
                } else {
                    Ok(found)
                }
            }
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let url = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let mut request = OutboundRequest::new(http::Method::GET, url.clone()).header("accept", "application/json");
        request.timeout = FETCH_TIMEOUT;
        let response = self.http.send(request).await.map_err(|e| format!("{url}: {e}"))?;
        if response.status != 200 {
            return Err(format!("{url} answered {}", response.status));
        }
        if response.body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        serde_json::from_slice(&response.body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// Discovery, then the key set.
    async fn fetch(&self, issuer: &str) -> Result<KeySet, String> {
        let discovery =
            self.get_json(&format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))).await?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(format!("the discovery document of {issuer} names another issuer"));
        }
        let jwks_uri = discovery.get("jwks_uri").and_then(Value::as_str).ok_or("discovery without jwks_uri")?;
        // Keys come over TLS unless the issuer itself is plain HTTP (a local provider).
        if !jwks_uri.starts_with("https://") && !(issuer.starts_with("http://") && jwks_uri.starts_with("http://")) {
            return Err(format!("jwks_uri {jwks_uri} is not https"));
        }
        let jwks = self.get_json(jwks_uri).await?;
        let mut set = KeySet::default();
        for entry in jwks.get("keys").and_then(Value::as_array).ok_or("a JWKS without keys")? {
            // Keys this platform cannot use (encryption keys, unknown types) are skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else { continue };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
            if decoding.family() == jsonwebtoken::AlgorithmFamily::Hmac {
                continue;
            }
            let alg = entry.get("alg").and_then(Value::as_str).map(str::to_string);
            let key = Arc::new(Key { decoding, alg });
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.anonymous.push(key),
            }
        }
        Ok(set)
    }

    fn check_claims(&self, issuer: &str, claims: &Value) -> Result<VerifiedToken, TokenError> {
        let now = self.clock.now_ms() / 1000;
        let number = |name: &str| claims.get(name).and_then(Value::as_f64).map(|v| v as i64);
        let expires_at = number("exp").ok_or_else(|| invalid("the token has no exp"))?;
        if now > expires_at + LEEWAY_SECS {
            return Err(invalid("the token has expired"));
        }
        if number("nbf").is_some_and(|nbf| now + LEEWAY_SECS < nbf) {
            return Err(invalid("the token is not valid yet"));
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let client = text("azp");
        match &self.settings.audience {
            Some(expected) => {
                let matches = match claims.get("aud") {
                    Some(Value::String(aud)) => aud == expected,
                    Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
                    _ => false,
                };
                if !matches {
                    return Err(invalid("the token is for another audience"));
                }
            }
            None => {
                if !client.as_ref().is_some_and(|c| self.settings.clients.contains(c)) {
                    return Err(invalid("the token was issued to another client"));
                }
            }
        }
        let subject =
            text("sub").filter(|s| !s.is_empty() && s.len() <= 255).ok_or_else(|| invalid("the token has no sub"))?;
        let mut roles = Vec::new();
        for path in &self.settings.roles_claims {
            let path = path.replace("{azp}", client.as_deref().unwrap_or(""));
            let mut at = Some(claims);
            for part in path.split('.') {
                at = at.and_then(|v| v.get(part));
            }
            match at {
                Some(Value::Array(values)) => roles.extend(values.iter().filter_map(Value::as_str).map(str::to_string)),
                Some(Value::String(value)) => roles.extend(value.split(' ').map(str::to_string)),
                _ => {}
            }
        }
        roles.truncate(256);
        Ok(VerifiedToken {
            issuer: issuer.to_string(),
            subject,
            email: text("email").filter(|e| e.len() <= 320),
            email_verified: claims.get("email_verified").and_then(Value::as_bool).unwrap_or(false),
            username: text("preferred_username").or_else(|| text("username")).filter(|u| u.len() <= 255),
            roles,
        })
    }
}

#[async_trait]
impl TokenVerifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("the token is too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("the token is not a JWT of an accepted algorithm"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!("tokens signed with {:?} are not accepted", header.alg)));
        }
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| invalid("the token's claims are not readable"))?;
        let iss = unverified.get("iss").and_then(Value::as_str).unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.url == iss)
            .ok_or_else(|| invalid("the token is not from a trusted issuer"))?;
        let keys = self.keys(issuer, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        // Time and audience are checked below, against the platform clock and both rules.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer.url.as_str()]);
        let alg_name = format!("{:?}", header.alg);
        for key in keys.iter().filter(|k| k.alg.as_deref().is_none_or(|a| a == alg_name)) {
            if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation) {
                return self.check_claims(&issuer.url, &data.claims);
            }
        }
        Err(invalid("the token's signature does not verify"))
    }
}
