//! A tenant's credentials for its connectors, and OAuth handled for the tenant.
//!
//! Credentials live in the tenant's secret document under `connectors.<id>.credentials`; the
//! space's OAuth app (client id and secret registered with the provider) in the space's
//! document (`{space}/_space`) under `connectors.<id>.oauth_app`. API responses only ever show
//! [`CredentialStatus`]: presence, kind, expiry.
//!
//! Token refresh happens ahead of expiry (or after a 401, for OAuth tokens: a static bearer
//! token stored on an OAuth connector is sent again as it is), one refresh at a time per
//! connection: the refresher takes the connection's refresh lease, re-reads the document (a
//! concurrent refresher may already have done the work), calls the token endpoint, and
//! persists the new tokens — a rotated refresh token included — under the secrets lease
//! before anyone uses them. Parallel executors therefore never spend a refresh token twice.
//! A refresh the provider refuses for good (`invalid_grant`) marks the connection as needing
//! re-authorization and publishes `connection.reauthorization_required`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::connections::{self, CredentialStatus, connector_entry, connector_view, modify_secret_document};
use super::error::AppError;
use super::{Platform, lease};
use crate::domain::connector::{AuthSpec, ClientAuth, ConnectorSpec, KeyLocation};
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::domain::template;
use crate::ports::{
    Condition, Item, OutboundError, OutboundRequest, PlatformEvent, PortError, SecretDocument, SecretOwner, Secrets,
};
use crate::store::keys;

/// Refresh when the access token has less than this left.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(120);
/// How long a connect attempt (authorize → callback) may take.
pub const STATE_TTL_SECS: i64 = 600;
/// How long a refresh may hold the connection's lease.
const REFRESH_LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a caller waits for another caller's refresh.
const REFRESH_LEASE_WAIT: Duration = Duration::from_secs(20);

/// Stored credentials of one connection. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    Oauth2 {
        access_token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_token: Option<String>,
        /// Epoch ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    ClientCredentials {
        client_id: String,
        client_secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    ApiKey {
        key: String,
    },
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, redacted)", self.kind())
    }
}

impl Credentials {
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Oauth2 { .. } => "oauth2",
            Credentials::ClientCredentials { .. } => "client_credentials",
            Credentials::ApiKey { .. } => "api_key",
            Credentials::Basic { .. } => "basic",
            Credentials::Bearer { .. } => "bearer",
        }
    }

    fn expires_at(&self) -> Option<i64> {
        match self {
            Credentials::Oauth2 { expires_at, .. } | Credentials::ClientCredentials { expires_at, .. } => *expires_at,
            _ => None,
        }
    }

    /// Every secret string in these credentials (for the no-leak tests and log scrubbing).
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Credentials::Oauth2 { access_token, refresh_token, .. } => {
                let mut v = vec![access_token.as_str()];
                v.extend(refresh_token.as_deref());
                v
            }
            Credentials::ClientCredentials { client_secret, access_token, .. } => {
                let mut v = vec![client_secret.as_str()];
                v.extend(access_token.as_deref());
                v
            }
            Credentials::ApiKey { key } => vec![key],
            Credentials::Basic { password, .. } => vec![password],
            Credentials::Bearer { token } => vec![token],
        }
    }
}

/// The OAuth app a space registered with a provider.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// Where the provider sends the tenant back; `{public url}/api/v1/oauth/callback` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp").field("client_id", &self.client_id).field("client_secret", &"redacted").finish()
    }
}

/// Why credentials could not be produced for a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CredentialError {
    #[error("connector {0} is not connected for this tenant")]
    NotConnected(String),
    #[error("connector {0} needs to be connected again (authorization expired or revoked)")]
    NeedsReauthorization(String),
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

impl CredentialError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CredentialError::Unavailable(_))
    }
}

impl From<PortError> for CredentialError {
    fn from(e: PortError) -> Self {
        CredentialError::Unavailable(e.to_string())
    }
}

impl From<AppError> for CredentialError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unavailable { detail } => CredentialError::Unavailable(detail),
            other => CredentialError::Invalid(other.to_string()),
        }
    }
}

/// The space-level secret document (OAuth apps) is kept as a pseudo-tenant no real tenant id
/// can collide with (tenant ids start with a letter or digit).
pub fn space_owner(space: &SpaceId) -> SecretOwner {
    SecretOwner { space: space.to_string(), tenant: "_space".into() }
}

fn credentials_in(document: &SecretDocument, connector: &ConnectorId) -> Option<Credentials> {
    connector_view(document, connector)?.get("credentials").and_then(|c| serde_json::from_value(c.clone()).ok())
}

fn status_of(credentials: &Credentials) -> CredentialStatus {
    CredentialStatus {
        connected: true,
        kind: Some(credentials.kind().into()),
        expires_at: credentials.expires_at(),
        needs_reauthorization: false,
    }
}

/// Store credentials and mark the connection connected.
pub async fn store(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    credentials: &Credentials,
) -> Result<connections::ConnectorSettings, AppError> {
    let value = serde_json::to_value(credentials).map_err(|e| AppError::bad_request(e.to_string()))?;
    modify_secret_document(p, space, tenant, |document| {
        connector_entry(document, connector).insert("credentials".into(), value);
        Ok(())
    })
    .await?;
    let status = status_of(credentials);
    connections::update_settings(p, space, tenant, connector, |s| s.credentials = status.clone()).await
}

/// Check that credentials fit the connector's auth kind (an API key for an API-key connector…).
pub fn check_kind(spec: &ConnectorSpec, credentials: &Credentials) -> Result<(), AppError> {
    let fits = matches!(
        (&spec.auth, credentials),
        (AuthSpec::Oauth2 { .. }, Credentials::Oauth2 { .. } | Credentials::Bearer { .. })
            | (AuthSpec::ClientCredentials { .. }, Credentials::ClientCredentials { .. })
            | (AuthSpec::ApiKey { .. }, Credentials::ApiKey { .. })
            | (AuthSpec::Basic, Credentials::Basic { .. })
            | (AuthSpec::Bearer, Credentials::Bearer { .. })
    );
    if fits {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "connector {} takes {} credentials, not {}",
            spec.id,
            spec.auth.kind(),
            credentials.kind()
        )))
    }
}

/// Forget a connection's credentials.
pub async fn disconnect(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Result<connections::ConnectorSettings, AppError> {
    modify_secret_document(p, space, tenant, |document| {
        connector_entry(document, connector).remove("credentials");
        Ok(())
    })
    .await?;
    connections::update_settings(p, space, tenant, connector, |s| s.credentials = CredentialStatus::default()).await
}

/// Register (or replace) the space's OAuth app for a connector.
pub async fn set_oauth_app(
    p: &Platform,
    space: &SpaceId,
    connector: &ConnectorId,
    app: &OAuthApp,
) -> Result<(), AppError> {
    let owner = space_owner(space);
    let value = serde_json::to_value(app).map_err(|e| AppError::bad_request(e.to_string()))?;
    let lease_key = keys::space_lease(space, "secrets");
    lease::with_lease(p, lease_key, Duration::from_secs(30), Duration::from_secs(10), || async {
        let mut document = p.secrets.get_fresh(&owner).await?.unwrap_or_default();
        connector_entry(&mut document, connector).insert("oauth_app".into(), value);
        p.secrets.put(&owner, &document).await?;
        Ok::<(), AppError>(())
    })
    .await
}

pub async fn oauth_app(p: &Platform, space: &SpaceId, connector: &ConnectorId) -> Result<Option<OAuthApp>, AppError> {
    let Some(document) = p.secrets.get(&space_owner(space)).await? else { return Ok(None) };
    Ok(connector_view(&document, connector)
        .and_then(|c| c.get("oauth_app"))
        .and_then(|a| serde_json::from_value(a.clone()).ok()))
}

/// Render a catalog URL template (authorize/token/base URLs may depend on tenant settings).
pub fn render_url(template_text: &str, settings: &Map<String, Value>) -> Result<url::Url, AppError> {
    let rendered = template::render(&Value::String(template_text.to_string()), &json!({"settings": settings}))
        .map_err(|e| AppError::bad_request(format!("URL template: {e}")))?;
    let text = rendered.as_str().unwrap_or_default();
    let url = url::Url::parse(text).map_err(|_| {
        AppError::bad_request(format!("connector URL {text:?} is invalid; check the connector settings"))
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(AppError::bad_request("connector URLs must be http(s)"));
    }
    Ok(url)
}

// ---------------------------------------------------------------------------------------------
// OAuth connect: start and callback
// ---------------------------------------------------------------------------------------------

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
async fn state_key(p: &Platform) -> Result<Vec<u8>, AppError> {
    let admin = super::auth::admin_key(p).await?.ok_or_else(|| AppError::Unavailable {
        detail: "no admin key configured: OAuth state cannot be signed".into(),
    })?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(admin.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"switchyard oauth state v1");
    Ok(mac.finalize().into_bytes().to_vec())
}

pub fn sign_state(key: &[u8], claims: &StateClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Check a state's signature and expiry (the callback's first step; pure, so the fuzz
/// target calls it directly).
pub fn verify_state(key: &[u8], state: &str, now_ms: i64) -> Result<StateClaims, AppError> {
    let invalid = || {
        AppError::invalid(
            "invalid_state",
            "the authorization state is invalid or expired; start connecting again",
            Value::Null,
        )
    };
    let (payload, signature) = state.split_once('.').ok_or_else(invalid)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    let expected = mac.finalize().into_bytes();
    let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
    if given.len() != expected.len() || !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(invalid());
    }
    let claims: StateClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?).map_err(|_| invalid())?;
    if claims.exp < now_ms {
        return Err(invalid());
    }
    Ok(claims)
}

/// Begin connecting a tenant's OAuth connector: a signed, short-lived state bound to space,
/// tenant and connector, and the provider's authorize URL (with a PKCE challenge when the
/// provider supports it).
pub async fn start_connect(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    spec: &ConnectorSpec,
    default_redirect: &str,
    return_to: Option<String>,
) -> Result<ConnectStart, AppError> {
    let AuthSpec::Oauth2 { authorize_url, scopes, pkce, scope_separator, authorize_params, .. } = &spec.auth else {
        return Err(AppError::bad_request(format!(
            "connector {} does not use OAuth; set its credentials instead",
            spec.id
        )));
    };
    let app = oauth_app(p, space, &spec.id).await?.ok_or_else(|| {
        AppError::bad_request(format!(
            "register the space's OAuth app for {} first (PUT /api/v1/connectors/{}/oauth-app)",
            spec.id, spec.id
        ))
    })?;
    let settings = connections::get_settings(p, space, tenant, &spec.id).await?.map(|s| s.settings).unwrap_or_default();
    connections::validate_settings(spec, &settings)?;
    let redirect_uri = app.redirect_uri.clone().unwrap_or_else(|| default_redirect.to_string());
    let now = p.now_ms();
    let sid = hex::encode(rand::random::<[u8; 16]>());
    let claims = StateClaims {
        sid: sid.clone(),
        space: space.clone(),
        tenant: tenant.clone(),
        connector: spec.id.clone(),
        exp: now + STATE_TTL_SECS * 1000,
    };
    let state = sign_state(&state_key(p).await?, &claims);
    let (challenge, verifier) = if *pkce {
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        (Some(challenge), Some(verifier.secret().to_string()))
    } else {
        (None, None)
    };
    let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(app.client_id.clone()))
        .set_auth_uri(oauth2::AuthUrl::from_url(render_url(authorize_url, &settings)?))
        .set_redirect_uri(
            oauth2::RedirectUrl::new(redirect_uri.clone())
                .map_err(|_| AppError::bad_request("invalid redirect URI"))?,
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
    p.store.put(item, Condition::IfAbsent).await?;
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
pub async fn complete_connect(p: &Platform, state: &str, code: &str) -> Result<Connected, AppError> {
    let claims = verify_state(&state_key(p).await?, state, p.now_ms())?;
    let key = pending_key(&claims.sid);
    let spent = || {
        AppError::invalid(
            "invalid_state",
            "the authorization state was already used or has expired; start connecting again",
            Value::Null,
        )
    };
    let item = p.store.get(&key).await?.ok_or_else(spent)?;
    let mut pending: PendingConnect = item.parse()?;
    if pending.space != claims.space || pending.tenant != claims.tenant || pending.connector != claims.connector {
        return Err(AppError::invalid("invalid_state", "the authorization state is invalid", Value::Null));
    }
    let now = p.now_ms();
    let busy = || AppError::RetryLater {
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
    match p.store.put(claimed.clone(), Condition::IfVersion(item.version)).await {
        Ok(()) => {}
        Err(PortError::ConditionFailed) => return Err(busy()),
        Err(e) => return Err(e.into()),
    }
    let result = exchange(p, &pending, code).await;
    match &result {
        // Done, or refused for good: the state is spent.
        Ok(_) | Err(AppError::BadRequest { .. }) | Err(AppError::NotFound(_)) => {
            if let Err(e) = p.store.delete(&key, Condition::None).await {
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
            if let Err(e) = p.store.put(released, Condition::IfVersion(claimed.version)).await {
                tracing::warn!(error = %e, "OAuth state not released; a retry can take it over after the lease");
            }
        }
    }
    match result {
        Err(AppError::Unavailable { detail }) => {
            tracing::warn!(%detail, "OAuth code exchange failed; the callback can be retried");
            Err(AppError::RetryLater {
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
async fn exchange(p: &Platform, pending: &PendingConnect, code: &str) -> Result<Connected, AppError> {
    let spec = p.catalog.get(&pending.connector).ok_or_else(|| AppError::not_found("connector no longer exists"))?;
    let app = oauth_app(p, &pending.space, &spec.id)
        .await?
        .ok_or_else(|| AppError::bad_request("the space's OAuth app was removed"))?;
    let settings = connections::get_settings(p, &pending.space, &pending.tenant, &spec.id)
        .await?
        .map(|s| s.settings)
        .unwrap_or_default();
    let grant = Grant::Code { code, verifier: pending.pkce_verifier.as_deref(), redirect_uri: &pending.redirect_uri };
    let tokens =
        token_request(p, spec, &settings, &app.client_id, &app.client_secret, grant).await.map_err(|e| match e {
            TokenError::Refused(detail) => AppError::invalid(
                "authorization_failed",
                format!("the provider refused the authorization code: {detail}; start connecting again"),
                Value::Null,
            ),
            TokenError::Unavailable(detail) => AppError::Unavailable { detail },
        })?;
    let credentials = Credentials::Oauth2 {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: tokens.expires_in.map(|s| p.now_ms() + s * 1000),
        scope: tokens.scope,
    };
    store(p, &pending.space, &pending.tenant, &spec.id, &credentials).await?;
    Ok(Connected {
        space: pending.space.clone(),
        tenant: pending.tenant.clone(),
        connector: spec.id.clone(),
        return_to: pending.return_to.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Token endpoint (through the oauth2 crate, its HTTP going through our SSRF-guarded client)
// ---------------------------------------------------------------------------------------------

/// Tokens from the token endpoint.
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

enum TokenError {
    /// The provider said no (bad code, revoked or spent refresh token): do not retry.
    Refused(String),
    Unavailable(String),
}

/// Transport errors of the oauth2 crate's HTTP calls.
#[derive(Debug, thiserror::Error)]
enum OAuthHttpError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The oauth2 crate's HTTP client: our SSRF-guarded `Http` port.
struct OAuthHttp(std::sync::Arc<dyn crate::ports::Http>);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = OAuthHttpError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, OAuthHttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = url::Url::parse(&parts.uri.to_string()).map_err(|e| OAuthHttpError::Refused(e.to_string()))?;
            let mut outbound = OutboundRequest::new(parts.method, url).body(body);
            outbound.headers =
                parts.headers.iter().filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect();
            outbound.timeout = Duration::from_secs(15);
            let response = client.send(outbound).await.map_err(|e| match e {
                OutboundError::Forbidden(d) | OutboundError::Invalid(d) => OAuthHttpError::Refused(d),
                other => OAuthHttpError::Unavailable(other.to_string()),
            })?;
            // Throttling and server errors are worth a retry; the crate would read them as refusals.
            if response.status == 429 || response.status >= 500 {
                return Err(OAuthHttpError::Unavailable(format!("token endpoint answered {}", response.status)));
            }
            let mut builder = http::Response::builder().status(response.status);
            for (k, v) in &response.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            builder.body(response.body.to_vec()).map_err(|e| OAuthHttpError::Unavailable(e.to_string()))
        })
    }
}

/// The grant to send.
enum Grant<'a> {
    Code { code: &'a str, verifier: Option<&'a str>, redirect_uri: &'a str },
    Refresh { refresh_token: &'a str },
    ClientCredentials { scopes: &'a [String] },
}

async fn token_request<'a>(
    p: &'a Platform,
    spec: &'a ConnectorSpec,
    settings: &'a Map<String, Value>,
    client_id: &'a str,
    client_secret: &'a str,
    grant: Grant<'a>,
) -> Result<Tokens, TokenError> {
    use oauth2::{
        AuthType, AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl, RefreshToken,
        RequestTokenError, Scope, TokenResponse, TokenUrl,
    };
    let (token_url, client_auth) = match &spec.auth {
        AuthSpec::Oauth2 { token_url, client_auth, .. }
        | AuthSpec::ClientCredentials { token_url, client_auth, .. } => (token_url, *client_auth),
        _ => return Err(TokenError::Refused("connector has no token endpoint".into())),
    };
    let url = render_url(token_url, settings).map_err(|e| TokenError::Refused(e.to_string()))?;
    let client = oauth2::basic::BasicClient::new(ClientId::new(client_id.to_string()))
        .set_client_secret(ClientSecret::new(client_secret.to_string()))
        .set_token_uri(TokenUrl::from_url(url))
        .set_auth_type(match client_auth {
            ClientAuth::Body => AuthType::RequestBody,
            ClientAuth::Basic => AuthType::BasicAuth,
        });
    let http = OAuthHttp(p.http.clone());
    let result = match grant {
        Grant::Code { code, verifier, redirect_uri } => {
            let redirect =
                RedirectUrl::new(redirect_uri.to_string()).map_err(|e| TokenError::Refused(e.to_string()))?;
            let mut request = client
                .exchange_code(AuthorizationCode::new(code.to_string()))
                .set_redirect_uri(std::borrow::Cow::Owned(redirect));
            if let Some(v) = verifier {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
            }
            request.request_async(&http).await
        }
        Grant::Refresh { refresh_token } => {
            let token = RefreshToken::new(refresh_token.to_string());
            client.exchange_refresh_token(&token).request_async(&http).await
        }
        Grant::ClientCredentials { scopes } => {
            client
                .exchange_client_credentials()
                .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())))
                .request_async(&http)
                .await
        }
    };
    match result {
        Ok(token) => Ok(Tokens {
            access_token: token.access_token().secret().to_string(),
            refresh_token: token.refresh_token().map(|t| t.secret().to_string()),
            expires_in: token.expires_in().map(|d| d.as_secs() as i64),
            scope: token.scopes().map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        }),
        // The error code only: descriptions can echo what was sent.
        Err(RequestTokenError::ServerResponse(error)) => Err(TokenError::Refused(error.error().to_string())),
        Err(RequestTokenError::Request(OAuthHttpError::Refused(d))) => Err(TokenError::Refused(d)),
        Err(RequestTokenError::Request(OAuthHttpError::Unavailable(d))) => Err(TokenError::Unavailable(d)),
        // Some providers (GitHub) answer errors with a 200 and an error object.
        Err(RequestTokenError::Parse(_, _)) => Err(TokenError::Refused("unexpected token endpoint response".into())),
        Err(RequestTokenError::Other(d)) => Err(TokenError::Unavailable(d)),
    }
}

// ---------------------------------------------------------------------------------------------
// Using credentials
// ---------------------------------------------------------------------------------------------

/// What to add to a request for a connection.
#[derive(Clone, Default, PartialEq)]
pub struct Authorization {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authorization({} headers, {} query, redacted)", self.headers.len(), self.query.len())
    }
}

fn fresh_enough(expires_at: Option<i64>, now_ms: i64) -> bool {
    expires_at.is_none_or(|e| e - now_ms > REFRESH_AHEAD.as_millis() as i64)
}

/// The authorization for a call with this tenant's credentials, refreshing the token first if
/// it is about to expire or `force_refresh` (after a 401).
pub async fn authorize<'a>(
    p: &'a Platform,
    space: &'a SpaceId,
    tenant: &'a TenantId,
    spec: &'a ConnectorSpec,
    force_refresh: bool,
) -> Result<Authorization, CredentialError> {
    if matches!(spec.auth, AuthSpec::None) {
        return Ok(Authorization::default());
    }
    let owner = connections::owner(space, tenant);
    let document = p.secrets.get(&owner).await?.unwrap_or_default();
    let credentials =
        credentials_in(&document, &spec.id).ok_or_else(|| CredentialError::NotConnected(spec.id.to_string()))?;
    let credentials = match &credentials {
        Credentials::Oauth2 { expires_at, .. } | Credentials::ClientCredentials { expires_at, .. }
            if force_refresh
                || !fresh_enough(*expires_at, p.now_ms())
                || matches!(credentials, Credentials::ClientCredentials { access_token: None, .. }) =>
        {
            refresh(p, space, tenant, spec, &credentials).await?
        }
        _ => credentials,
    };
    Ok(apply(spec, &credentials))
}

fn apply(spec: &ConnectorSpec, credentials: &Credentials) -> Authorization {
    let mut auth = Authorization::default();
    match (credentials, &spec.auth) {
        (Credentials::Oauth2 { access_token, .. }, AuthSpec::Oauth2 { header, prefix, .. }) => {
            auth.headers.push((header.clone(), format!("{prefix}{access_token}")));
        }
        (Credentials::ClientCredentials { access_token: Some(token), .. }, _)
        | (Credentials::Oauth2 { access_token: token, .. }, _) => {
            auth.headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        (Credentials::Bearer { token }, AuthSpec::Oauth2 { header, prefix, .. }) => {
            auth.headers.push((header.clone(), format!("{prefix}{token}")));
        }
        (Credentials::Bearer { token }, _) => auth.headers.push(("Authorization".into(), format!("Bearer {token}"))),
        (Credentials::ApiKey { key }, AuthSpec::ApiKey { location, name, prefix }) => match location {
            KeyLocation::Header => auth.headers.push((name.clone(), format!("{prefix}{key}"))),
            KeyLocation::Query => auth.query.push((name.clone(), format!("{prefix}{key}"))),
        },
        (Credentials::ApiKey { key }, _) => auth.headers.push(("Authorization".into(), format!("Bearer {key}"))),
        (Credentials::Basic { username, password }, _) => {
            auth.headers
                .push(("Authorization".into(), format!("Basic {}", BASE64.encode(format!("{username}:{password}")))));
        }
        (Credentials::ClientCredentials { access_token: None, .. }, _) => {}
    }
    auth
}

/// One refresh at a time per connection; see the module documentation.
async fn refresh(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    spec: &ConnectorSpec,
    seen: &Credentials,
) -> Result<Credentials, CredentialError> {
    let owner = connections::owner(space, tenant);
    let lease_key = keys::lease(space, tenant, &format!("refresh:{}", spec.id));
    let held = lease::acquire(p, lease_key, REFRESH_LEASE_TTL, REFRESH_LEASE_WAIT).await?;
    let result = async {
        // Someone may have refreshed while we waited: use their tokens.
        let document = p.secrets.get_fresh(&owner).await?.unwrap_or_default();
        let current =
            credentials_in(&document, &spec.id).ok_or_else(|| CredentialError::NotConnected(spec.id.to_string()))?;
        if &current != seen && fresh_enough(current.expires_at(), p.now_ms()) {
            return Ok(current);
        }
        let connection = connections::get_settings(p, space, tenant, &spec.id).await?;
        // Refused already, and nobody stored new credentials since: do not spend another call.
        if &current == seen && connection.as_ref().is_some_and(|c| c.credentials.needs_reauthorization) {
            return Err(CredentialError::NeedsReauthorization(spec.id.to_string()));
        }
        let settings = connection.map(|s| s.settings).unwrap_or_default();
        let no_scopes = Vec::new();
        let app;
        let (client_id, client_secret, grant) = match &current {
            Credentials::Oauth2 { refresh_token: Some(token), .. } => {
                app = oauth_app(p, space, &spec.id)
                    .await?
                    .ok_or_else(|| CredentialError::NeedsReauthorization(spec.id.to_string()))?;
                (app.client_id.as_str(), app.client_secret.as_str(), Grant::Refresh { refresh_token: token })
            }
            Credentials::Oauth2 { refresh_token: None, .. } => {
                return Err(CredentialError::NeedsReauthorization(spec.id.to_string()));
            }
            Credentials::ClientCredentials { client_id, client_secret, .. } => {
                let scopes = match &spec.auth {
                    AuthSpec::ClientCredentials { scopes, .. } => scopes,
                    _ => &no_scopes,
                };
                (client_id.as_str(), client_secret.as_str(), Grant::ClientCredentials { scopes })
            }
            other => return Ok(other.clone()),
        };
        match token_request(p, spec, &settings, client_id, client_secret, grant).await {
            Ok(tokens) => {
                let expires_at = tokens.expires_in.map(|s| p.now_ms() + s * 1000);
                let next = match current {
                    Credentials::Oauth2 { refresh_token, scope, .. } => Credentials::Oauth2 {
                        access_token: tokens.access_token,
                        // A rotated refresh token replaces the spent one before anyone uses it.
                        refresh_token: tokens.refresh_token.or(refresh_token),
                        expires_at,
                        scope: tokens.scope.or(scope),
                    },
                    Credentials::ClientCredentials { client_id, client_secret, .. } => Credentials::ClientCredentials {
                        client_id,
                        client_secret,
                        access_token: Some(tokens.access_token),
                        expires_at,
                    },
                    other => other,
                };
                store(p, space, tenant, &spec.id, &next).await?;
                Ok(next)
            }
            Err(TokenError::Refused(detail)) => {
                mark_needs_reauthorization(p, space, tenant, &spec.id, &detail).await;
                Err(CredentialError::NeedsReauthorization(spec.id.to_string()))
            }
            Err(TokenError::Unavailable(detail)) => Err(CredentialError::Unavailable(detail)),
        }
    }
    .await;
    held.release(p).await;
    result
}

async fn mark_needs_reauthorization(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    detail: &str,
) {
    tracing::warn!(%space, %tenant, %connector, reason = %detail, "token refresh refused; the connection needs re-authorization");
    if let Err(e) =
        connections::update_settings(p, space, tenant, connector, |s| s.credentials.needs_reauthorization = true).await
    {
        tracing::warn!(error = %e, "could not mark the connection");
    }
    let event = PlatformEvent {
        detail_type: "connection.reauthorization_required".into(),
        detail: json!({"space": space, "tenant": tenant, "connector": connector, "reason": detail}),
    };
    if let Err(e) = p.bus.publish(&[event]).await {
        tracing::warn!(error = %e, "could not publish connection.reauthorization_required");
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn credentials_never_show_in_debug() {
        let c = Credentials::Basic { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
        let a = OAuthApp { client_id: "id".into(), client_secret: "s3cr3t".into(), redirect_uri: None };
        assert!(!format!("{a:?}").contains("s3cr3t"));
    }
}
