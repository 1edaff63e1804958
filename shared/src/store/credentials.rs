//! A tenant's credentials for its connectors, in its secret document under
//! `connectors.<id>.credentials`; the space's OAuth apps (client id and secret registered with
//! a provider) in the space's document (`{space}/_space`) under `connectors.<id>.oauth_app`.
//! API responses only ever show [`CredentialStatus`]: presence, kind, expiry. Every write
//! goes through `connections::modify_secret_document` (under the secrets lease).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::connections::{self, CredentialStatus, connector_entry, connector_view, modify_secret_document};
use super::{Db, Error, leases};
use crate::domain::connector::{AuthSpec, ConnectorSpec};
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::ports::{SecretDocument, SecretOwner};
use crate::store::keys;

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

    pub fn expires_at(&self) -> Option<i64> {
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

/// The space-level secret document (OAuth apps) is kept as a pseudo-tenant no real tenant id
/// can collide with (tenant ids start with a letter or digit).
pub fn space_owner(space: &SpaceId) -> SecretOwner {
    SecretOwner { space: space.to_string(), tenant: "_space".into() }
}

pub fn credentials_in(document: &SecretDocument, connector: &ConnectorId) -> Option<Credentials> {
    connector_view(document, connector)?.get("credentials").and_then(|c| serde_json::from_value(c.clone()).ok())
}

pub fn status_of(credentials: &Credentials) -> CredentialStatus {
    CredentialStatus {
        connected: true,
        kind: Some(credentials.kind().into()),
        expires_at: credentials.expires_at(),
        needs_reauthorization: false,
    }
}

/// Store credentials and mark the connection connected. Past a hard active-integrations
/// quota the credentials are taken out again and the refusal returned, so nothing is left
/// half connected.
pub async fn store(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    credentials: &Credentials,
) -> Result<connections::ConnectorSettings, Error> {
    let value = serde_json::to_value(credentials).map_err(|e| Error::invalid("bad_request", e.to_string()))?;
    modify_secret_document(db, space, tenant, |document| {
        connector_entry(document, connector).insert("credentials".into(), value);
        Ok(())
    })
    .await?;
    let status = status_of(credentials);
    match connections::update_settings(db, space, tenant, connector, |s| s.credentials = status.clone()).await {
        Err(refused @ Error::QuotaExceeded(_)) => {
            modify_secret_document(db, space, tenant, |document| {
                connector_entry(document, connector).remove("credentials");
                Ok(())
            })
            .await?;
            Err(refused)
        }
        other => other,
    }
}

/// Check that credentials fit the connector's auth kind (an API key for an API-key connector…).
pub fn check_kind(spec: &ConnectorSpec, credentials: &Credentials) -> Result<(), Error> {
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
        Err(Error::invalid(
            "bad_request",
            format!("connector {} takes {} credentials, not {}", spec.id, spec.auth.kind(), credentials.kind()),
        ))
    }
}

/// Forget a connection's credentials.
pub async fn disconnect(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Result<connections::ConnectorSettings, Error> {
    modify_secret_document(db, space, tenant, |document| {
        connector_entry(document, connector).remove("credentials");
        Ok(())
    })
    .await?;
    connections::update_settings(db, space, tenant, connector, |s| s.credentials = CredentialStatus::default()).await
}

/// Register (or replace) the space's OAuth app for a connector.
pub async fn set_oauth_app(db: &Db, space: &SpaceId, connector: &ConnectorId, app: &OAuthApp) -> Result<(), Error> {
    let owner = space_owner(space);
    let value = serde_json::to_value(app).map_err(|e| Error::invalid("bad_request", e.to_string()))?;
    let lease_key = keys::space_lease(space, "secrets");
    leases::with_lease(db, lease_key, Duration::from_secs(30), Duration::from_secs(10), || async {
        let mut document = db.secrets.get_fresh(&owner).await?.unwrap_or_default();
        connector_entry(&mut document, connector).insert("oauth_app".into(), value);
        db.secrets.put(&owner, &document).await?;
        Ok::<(), Error>(())
    })
    .await
}

pub async fn oauth_app(db: &Db, space: &SpaceId, connector: &ConnectorId) -> Result<Option<OAuthApp>, Error> {
    let Some(document) = db.secrets.get(&space_owner(space)).await? else { return Ok(None) };
    Ok(connector_view(&document, connector)
        .and_then(|c| c.get("oauth_app"))
        .and_then(|a| serde_json::from_value(a.clone()).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug() {
        let c = Credentials::Basic { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
        let a = OAuthApp { client_id: "id".into(), client_secret: "s3cr3t".into(), redirect_uri: None };
        assert!(!format!("{a:?}").contains("s3cr3t"));
    }
}
