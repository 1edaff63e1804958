//! Connecting a tenant's OAuth app: a signed, short-lived state, the provider's consent page,
//! and the callback that exchanges the code for tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::signed::{self, SigningKey};
use super::{Error, Result};
use crate::domain::connector::{AuthSpec, ConnectorSpec};
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::engine::Engine;
use crate::engine::credentials::{Grant, TokenError, render_url, token_request};
use crate::ports::{AdminKey, Condition, Item, PortError};
use crate::store::connections;
use crate::store::credentials::{self as stored, Credentials, oauth_app};

/// How long a connect attempt (authorize → callback) may take.
pub const STATE_TTL_SECS: i64 = 600;

/// What `start_connect` gives the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectStart {
    pub authorize_url: String,
    pub state: String,
    pub expires_at: i64,
}

/// The server-side half of a connect attempt, keyed by the state's random id.
#[derive(Clone, Serialize, Deserialize)]
struct PendingConnect {
    space: SpaceId,
    tenant: TenantId,
    connector: ConnectorId,
    pkce_verifier: Option<String>,
    redirect_uri: String,
    return_to: Option<String>,
    /// Set while a callback exchanges the code (see `complete_connect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exchanging_since: Option<i64>,
}

/// How long a callback holds the exchange of a code before another may take it over (the one
/// holding it crashed).
const EXCHANGE_LEASE_MS: i64 = 60_000;
/// When the token endpoint is down, the tenant retries the same callback after this long.
const EXCHANGE_RETRY_SECS: u64 = 5;

/// The payload the state carries (signed).
#[derive(Debug, Serialize, Deserialize)]
pub struct StateClaims {
    pub sid: String,
    pub space: SpaceId,
    pub tenant: TenantId,
    pub connector: ConnectorId,
    pub exp: i64,
}

fn pending_key(sid: &str) -> crate::ports::Key {
    crate::ports::Key::new(format!("OAUTH#{sid}"), "PENDING")
}

/// The key states are signed with: derived from the admin key, so no extra secret exists.
pub struct StateKey(SigningKey);

/// The purpose OAuth states are signed for (see `signed`).
const STATE_PURPOSE: &str = "oauth state";

impl StateKey {
    /// The state key of this deployment; without an admin key no state can be signed.
    pub async fn of(admin_key: &dyn AdminKey) -> Result<StateKey, Error> {
        Ok(StateKey(SigningKey::of(admin_key, STATE_PURPOSE).await?))
    }

    pub fn from_admin_key(admin: &str) -> StateKey {
        StateKey(SigningKey::derive(admin, STATE_PURPOSE))
    }
}

pub fn sign_state(key: &[u8], claims: &StateClaims) -> String {
    signed::sign(key, claims)
}

/// Check a state's signature and expiry (the callback's first step; pure, so the fuzz
/// target calls it directly).
pub fn verify_state(key: &[u8], state: &str, now_ms: i64) -> Result<StateClaims, Error> {
    signed::open::<StateClaims>(key, state).filter(|claims| claims.exp >= now_ms).ok_or_else(|| {
        Error::invalid(
            "invalid_state",
            "the authorization state is invalid or expired; start connecting again",
            Value::Null,
        )
    })
}

/// Begin connecting a tenant's OAuth connector: a signed, short-lived state bound to space,
/// tenant and connector, and the provider's authorize URL (with a PKCE challenge when the
/// provider supports it).
pub async fn start_connect(
    engine: &Engine,
    state_key: &StateKey,
    space: &SpaceId,
    tenant: &TenantId,
    spec: &ConnectorSpec,
    default_redirect: &str,
    return_to: Option<String>,
) -> Result<ConnectStart, Error> {
    let AuthSpec::Oauth2 { authorize_url, scopes, pkce, scope_separator, authorize_params, .. } = &spec.auth else {
        return Err(Error::bad_request(format!(
            "connector {} does not use OAuth; set its credentials instead",
            spec.id
        )));
    };
    let app = oauth_app(&engine.db, space, &spec.id).await?.ok_or_else(|| {
        Error::bad_request(format!(
            "register the space's OAuth app for {} first (PUT /api/v1/connectors/{}/oauth-app)",
            spec.id, spec.id
        ))
    })?;
    let settings =
        connections::get_settings(&engine.db, space, tenant, &spec.id).await?.map(|s| s.settings).unwrap_or_default();
    connections::validate_settings(spec, &settings)?;
    let redirect_uri = app.redirect_uri.clone().unwrap_or_else(|| default_redirect.to_string());
    let now = engine.now_ms();
    let sid = hex::encode(rand::random::<[u8; 16]>());
    let claims = StateClaims {
        sid: sid.clone(),
        space: space.clone(),
        tenant: tenant.clone(),
        connector: spec.id.clone(),
        exp: now + STATE_TTL_SECS * 1000,
    };
    let state = sign_state(state_key.0.as_bytes(), &claims);
    let (challenge, verifier) = if *pkce {
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        (Some(challenge), Some(verifier.secret().to_string()))
    } else {
        (None, None)
    };
    let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(app.client_id.clone()))
        .set_auth_uri(oauth2::AuthUrl::from_url(render_url(authorize_url, &settings)?))
        .set_redirect_uri(
            oauth2::RedirectUrl::new(redirect_uri.clone()).map_err(|_| Error::bad_request("invalid redirect URI"))?,
        );
    let csrf = state.clone();
    let mut request = client.authorize_url(move || oauth2::CsrfToken::new(csrf));
    if !scopes.is_empty() {
        // Joined by the provider's separator (Slack and Shopify use commas).
        request = request.add_extra_param("scope", scopes.join(scope_separator));
    }
    if let Some(challenge) = challenge {
        request = request.set_pkce_challenge(challenge);
    }
    for (k, v) in authorize_params {
        request = request.add_extra_param(k.clone(), v.clone());
    }
    let (url, _) = request.url();
    let pending = PendingConnect {
        space: space.clone(),
        tenant: tenant.clone(),
        connector: spec.id.clone(),
        pkce_verifier: verifier,
        redirect_uri,
        return_to,
        exchanging_since: None,
    };
    let item = Item::new(pending_key(&sid), serde_json::to_value(&pending).unwrap_or(Value::Null))
        .expiring_at(now / 1000 + STATE_TTL_SECS);
    engine.db.store.put(item, Condition::IfAbsent).await?;
    Ok(ConnectStart { authorize_url: url.to_string(), state, expires_at: claims.exp })
}

/// Where the callback leaves the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Connected {
    pub space: SpaceId,
    pub tenant: TenantId,
    pub connector: ConnectorId,
    pub return_to: Option<String>,
}

/// Finish connecting: check the state, exchange the code, store the tokens.
///
/// A state completes one connection. The pending record is claimed before the exchange (a
/// conditional write: a concurrent callback with the same state waits or is refused), and
/// deleted once the tokens are stored or the provider refused the code. When the token
/// endpoint is unavailable the claim is released and the answer is a 503 with `Retry-After`:
/// the same callback URL works again (an authorization code stays valid until the provider
/// accepts it) until the state expires.
pub async fn complete_connect(
    engine: &Engine,
    state_key: &StateKey,
    state: &str,
    code: &str,
) -> Result<Connected, Error> {
    let claims = verify_state(state_key.0.as_bytes(), state, engine.now_ms())?;
    let key = pending_key(&claims.sid);
    let spent = || {
        Error::invalid(
            "invalid_state",
            "the authorization state was already used or has expired; start connecting again",
            Value::Null,
        )
    };
    let item = engine.db.store.get(&key).await?.ok_or_else(spent)?;
    let mut pending: PendingConnect = item.parse()?;
    if pending.space != claims.space || pending.tenant != claims.tenant || pending.connector != claims.connector {
        return Err(Error::invalid("invalid_state", "the authorization state is invalid", Value::Null));
    }
    let now = engine.now_ms();
    let busy = || Error::RetryLater {
        message: "this authorization is being completed; retry in a few seconds".into(),
        retry_after_secs: EXCHANGE_RETRY_SECS,
    };
    if pending.exchanging_since.is_some_and(|since| now - since < EXCHANGE_LEASE_MS) {
        return Err(busy());
    }
    pending.exchanging_since = Some(now);
    let claimed = Item {
        key: key.clone(),
        data: serde_json::to_value(&pending).unwrap_or(Value::Null),
        version: item.version + 1,
        expires_at: item.expires_at,
    };
    match engine.db.store.put(claimed.clone(), Condition::IfVersion(item.version)).await {
        Ok(()) => {}
        Err(PortError::ConditionFailed) => return Err(busy()),
        Err(e) => return Err(e.into()),
    }
    let result = exchange(engine, &pending, code).await;
    match &result {
        // Done, or refused for good: the state is spent.
        Ok(_) | Err(Error::Invalid { .. }) | Err(Error::NotFound(_)) => {
            if let Err(e) = engine.db.store.delete(&key, Condition::None).await {
                tracing::warn!(error = %e, "spent OAuth state not deleted; it expires with its TTL");
            }
        }
        // The provider or our store was unavailable: give the state back for a retry.
        Err(_) => {
            pending.exchanging_since = None;
            let released = Item {
                data: serde_json::to_value(&pending).unwrap_or(Value::Null),
                version: claimed.version + 1,
                ..claimed.clone()
            };
            if let Err(e) = engine.db.store.put(released, Condition::IfVersion(claimed.version)).await {
                tracing::warn!(error = %e, "OAuth state not released; a retry can take it over after the lease");
            }
        }
    }
    match result {
        Err(Error::Unavailable { detail }) => {
            tracing::warn!(%detail, "OAuth code exchange failed; the callback can be retried");
            Err(Error::RetryLater {
                message:
                    "the provider could not be reached to complete the authorization; retry this page in a few seconds"
                        .into(),
                retry_after_secs: EXCHANGE_RETRY_SECS,
            })
        }
        other => other,
    }
}

/// Exchange the code for tokens and store them.
async fn exchange(engine: &Engine, pending: &PendingConnect, code: &str) -> Result<Connected, Error> {
    let spec = engine.catalog.get(&pending.connector).ok_or_else(|| Error::not_found("connector no longer exists"))?;
    let app = oauth_app(&engine.db, &pending.space, &spec.id)
        .await?
        .ok_or_else(|| Error::bad_request("the space's OAuth app was removed"))?;
    let settings = connections::get_settings(&engine.db, &pending.space, &pending.tenant, &spec.id)
        .await?
        .map(|s| s.settings)
        .unwrap_or_default();
    let grant = Grant::Code { code, verifier: pending.pkce_verifier.as_deref(), redirect_uri: &pending.redirect_uri };
    let tokens = token_request(engine, spec, &settings, &app.client_id, &app.client_secret, grant).await.map_err(
        |e| match e {
            TokenError::Refused(detail) => Error::invalid(
                "authorization_failed",
                format!("the provider refused the authorization code: {detail}; start connecting again"),
                Value::Null,
            ),
            TokenError::Unavailable(detail) => Error::Unavailable { detail },
        },
    )?;
    let credentials = Credentials::Oauth2 {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: tokens.expires_in.map(|s| engine.now_ms() + s * 1000),
        scope: tokens.scope,
    };
    stored::store(&engine.db, &pending.space, &pending.tenant, &spec.id, &credentials).await?;
    Ok(Connected {
        space: pending.space.clone(),
        tenant: pending.tenant.clone(),
        connector: spec.id.clone(),
        return_to: pending.return_to.clone(),
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    #[test]
    fn states_are_signed_and_expire() {
        let key = b"k".repeat(32);
        let claims = StateClaims {
            sid: "abc".into(),
            space: SpaceId::parse("s").unwrap(),
            tenant: TenantId::parse("t").unwrap(),
            connector: ConnectorId::parse("github").unwrap(),
            exp: 10_000,
        };
        let state = sign_state(&key, &claims);
        assert!(verify_state(&key, &state, 9_000).is_ok());
        assert!(verify_state(&key, &state, 10_001).is_err(), "expired");
        assert!(verify_state(b"other-key-other-key-other-key-12", &state, 9_000).is_err(), "other key");
        let (payload, sig) = state.split_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &json!({"sid": "abc", "space": "s", "tenant": "other", "connector": "github", "exp": 10_000}),
            )
            .unwrap(),
        );
        assert!(verify_state(&key, &format!("{forged_claims}.{sig}"), 9_000).is_err(), "payload swapped");
        assert!(verify_state(&key, payload, 9_000).is_err(), "signature missing");
    }
}
