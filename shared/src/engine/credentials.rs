//! Credentials for a call: the tenant's stored credentials applied to a request, refreshed
//! first when they are about to expire (or after a 401, for OAuth tokens: a static bearer token
//! stored on an OAuth connector is sent again as it is).
//!
//! One refresh at a time per connection: the refresher takes the connection's refresh lease,
//! re-reads the document (a concurrent refresher may already have done the work), calls the
//! token endpoint, and persists the new tokens — a rotated refresh token included — under the
//! secrets lease before anyone uses them. Parallel executors therefore never spend a refresh
//! token twice. A refresh the provider refuses for good (`invalid_grant`) marks the connection
//! as needing re-authorization and publishes `connection.reauthorization_required`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::Engine;
use crate::domain::connector::{AuthSpec, ClientAuth, ConnectorSpec, KeyLocation};
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::domain::template;
use crate::ports::{OutboundError, OutboundRequest, PlatformEvent, PortError};
use crate::store::credentials::{self as stored, Credentials, credentials_in, oauth_app};
use crate::store::{connections, keys, leases};

/// Refresh when the access token has less than this left.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(120);
/// How long a refresh may hold the connection's lease.
const REFRESH_LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a caller waits for another caller's refresh.
const REFRESH_LEASE_WAIT: Duration = Duration::from_secs(20);

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

impl From<crate::store::Error> for CredentialError {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::Port(PortError::Unavailable(detail)) => CredentialError::Unavailable(detail),
            other => CredentialError::Invalid(other.to_string()),
        }
    }
}

/// Render a catalog URL template (authorize/token/base URLs may depend on tenant settings).
pub fn render_url(template_text: &str, settings: &Map<String, Value>) -> Result<url::Url, CredentialError> {
    let rendered = template::render(&Value::String(template_text.to_string()), &json!({"settings": settings}))
        .map_err(|e| CredentialError::Invalid(format!("URL template: {e}")))?;
    let text = rendered.as_str().unwrap_or_default();
    let url = url::Url::parse(text).map_err(|_| {
        CredentialError::Invalid(format!("connector URL {text:?} is invalid; check the connector settings"))
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(CredentialError::Invalid("connector URLs must be http(s)".into()));
    }
    Ok(url)
}

/// Tokens from the token endpoint.
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
}

pub(crate) enum TokenError {
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
pub(crate) enum Grant<'a> {
    Code { code: &'a str, verifier: Option<&'a str>, redirect_uri: &'a str },
    Refresh { refresh_token: &'a str },
    ClientCredentials { scopes: &'a [String] },
}

pub(crate) async fn token_request<'a>(
    engine: &'a Engine,
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
    let http = OAuthHttp(engine.http.clone());
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
    engine: &'a Engine,
    space: &'a SpaceId,
    tenant: &'a TenantId,
    spec: &'a ConnectorSpec,
    force_refresh: bool,
) -> Result<Authorization, CredentialError> {
    if matches!(spec.auth, AuthSpec::None) {
        return Ok(Authorization::default());
    }
    let owner = connections::owner(space, tenant);
    let document = engine.db.secrets.get(&owner).await?.unwrap_or_default();
    let credentials =
        credentials_in(&document, &spec.id).ok_or_else(|| CredentialError::NotConnected(spec.id.to_string()))?;
    let credentials = match &credentials {
        Credentials::Oauth2 { expires_at, .. } | Credentials::ClientCredentials { expires_at, .. }
            if force_refresh
                || !fresh_enough(*expires_at, engine.now_ms())
                || matches!(credentials, Credentials::ClientCredentials { access_token: None, .. }) =>
        {
            refresh(engine, space, tenant, spec, &credentials).await?
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
    engine: &Engine,
    space: &SpaceId,
    tenant: &TenantId,
    spec: &ConnectorSpec,
    seen: &Credentials,
) -> Result<Credentials, CredentialError> {
    let owner = connections::owner(space, tenant);
    let lease_key = keys::lease(space, tenant, &format!("refresh:{}", spec.id));
    let db = &engine.db;
    let held = leases::acquire(db, lease_key, REFRESH_LEASE_TTL, REFRESH_LEASE_WAIT).await?;
    let result = async {
        // Someone may have refreshed while we waited: use their tokens.
        let document = db.secrets.get_fresh(&owner).await?.unwrap_or_default();
        let current =
            credentials_in(&document, &spec.id).ok_or_else(|| CredentialError::NotConnected(spec.id.to_string()))?;
        if &current != seen && fresh_enough(current.expires_at(), engine.now_ms()) {
            return Ok(current);
        }
        let connection = connections::get_settings(db, space, tenant, &spec.id).await?;
        // Refused already, and nobody stored new credentials since: do not spend another call.
        if &current == seen && connection.as_ref().is_some_and(|c| c.credentials.needs_reauthorization) {
            return Err(CredentialError::NeedsReauthorization(spec.id.to_string()));
        }
        let settings = connection.map(|s| s.settings).unwrap_or_default();
        let no_scopes = Vec::new();
        let app;
        let (client_id, client_secret, grant) = match &current {
            Credentials::Oauth2 { refresh_token: Some(token), .. } => {
                app = oauth_app(db, space, &spec.id)
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
        match token_request(engine, spec, &settings, client_id, client_secret, grant).await {
            Ok(tokens) => {
                let expires_at = tokens.expires_in.map(|s| engine.now_ms() + s * 1000);
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
                stored::store(db, space, tenant, &spec.id, &next).await?;
                Ok(next)
            }
            Err(TokenError::Refused(detail)) => {
                mark_needs_reauthorization(engine, space, tenant, &spec.id, &detail).await;
                Err(CredentialError::NeedsReauthorization(spec.id.to_string()))
            }
            Err(TokenError::Unavailable(detail)) => Err(CredentialError::Unavailable(detail)),
        }
    }
    .await;
    held.release(db).await;
    result
}

async fn mark_needs_reauthorization(
    engine: &Engine,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    detail: &str,
) {
    tracing::warn!(%space, %tenant, %connector, reason = %detail, "token refresh refused; the connection needs re-authorization");
    if let Err(e) = connections::update_settings(&engine.db, space, tenant, connector, |s| {
        s.credentials.needs_reauthorization = true
    })
    .await
    {
        tracing::warn!(error = %e, "could not mark the connection");
    }
    let detail = json!({"space": space, "tenant": tenant, "connector": connector, "reason": detail});
    let events = [
        PlatformEvent { detail_type: "connection.reauthorization_required".into(), detail: detail.clone() },
        PlatformEvent { detail_type: "connection.failing".into(), detail },
    ];
    if let Err(e) = crate::engine::events::publish(engine, space, Some(tenant), &events).await {
        tracing::warn!(error = %e, "could not publish connection.reauthorization_required");
    }
}
