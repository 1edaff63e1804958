//! A tenant's connectors: which are enabled, their settings, and the secrets behind them
//! (webhook signing secrets now; API credentials through `credentials`).
//!
//! Secrets live in the tenant's one secret document:
//! `{"connectors": {"<id>": {"webhook": {"current", "previous", "previous_until"}, ...}}}`.
//! Every write to it happens under the tenant's secrets lease, so concurrent writers (two
//! rotations, an OAuth refresh) never lose each other's updates.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::leases;
use super::{Db, Error};
use crate::domain::connector::{ConnectorSpec, HmacConfig};
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::domain::quota::{self, Dimension};
use crate::domain::webhook::signature::SigningSecret;
use crate::ports::{Condition, Item, PortError, Query, SecretDocument, SecretOwner, WriteOp, query_all};
use crate::store::keys;
use crate::store::quotas;

/// How long a secrets lease may be held before it expires on its own.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a writer waits for the lease.
const LEASE_WAIT: Duration = Duration::from_secs(10);

/// A tenant's settings for one connector (no secrets in here: this is returned by the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorSettings {
    pub connector: ConnectorId,
    pub enabled: bool,
    #[serde(default)]
    pub settings: Map<String, Value>,
    /// Generic HMAC scheme settings chosen by the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacConfig>,
    #[serde(default)]
    pub webhook_secret_set: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_rotated_at: Option<i64>,
    /// Credentials status, maintained by the credentials module.
    #[serde(default)]
    pub credentials: CredentialStatus,
    /// Integration-level configuration (see `domain::config`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    pub updated_at: i64,
}

impl ConnectorSettings {
    /// Whether calls can be made with the tenant's credentials for `spec`: connected, or the
    /// connector needs none. (Enabled or not is the caller's to check.)
    pub fn has_credentials_for(&self, spec: &ConnectorSpec) -> bool {
        self.credentials.connected || !spec.auth.needs_credentials()
    }

    /// Enabled, and `has_credentials_for` the connector: a poll or a tool call can go ahead.
    pub fn usable_with(&self, spec: &ConnectorSpec) -> bool {
        self.enabled && self.has_credentials_for(spec)
    }
}

/// What the API may say about credentials: presence, kind and expiry, never the values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CredentialStatus {
    #[serde(default)]
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// A refresh failed for good: the tenant must connect again.
    #[serde(default)]
    pub needs_reauthorization: bool,
}

pub fn owner(space: &SpaceId, tenant: &TenantId) -> SecretOwner {
    SecretOwner { space: space.to_string(), tenant: tenant.to_string() }
}

pub async fn get_settings(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Result<Option<ConnectorSettings>, Error> {
    Ok(db.store.get(&keys::connector_settings(space, tenant, connector)).await?.map(|i| i.parse()).transpose()?)
}

/// The settings, cached per container for `CACHE_TTL` (the webhook hot path reads them for
/// every delivery).
pub async fn cached_settings(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Result<Option<ConnectorSettings>, Error> {
    let key = (keys::tenant_pk(space, tenant), connector.to_string());
    if let Some(found) = db.caches.connector_settings.get(&key) {
        return Ok(found);
    }
    let settings = get_settings(db, space, tenant, connector).await?;
    db.caches.connector_settings.put(key, settings.clone());
    Ok(settings)
}

pub async fn list_settings(db: &Db, space: &SpaceId, tenant: &TenantId) -> Result<Vec<ConnectorSettings>, Error> {
    let items =
        query_all(db.store.as_ref(), Query::prefix(keys::tenant_pk(space, tenant), keys::CONNECTOR_PREFIX), 500)
            .await?;
    Ok(items.iter().map(|i| i.parse()).collect::<Result<Vec<_>, _>>()?)
}

/// Counted by the connectors-per-tenant quota: enabled for the tenant.
fn counts_as_connector(s: &ConnectorSettings) -> bool {
    s.enabled
}

/// Counted by the active-integrations quota: enabled and connected.
fn counts_as_integration(s: &ConnectorSettings) -> bool {
    s.enabled && s.credentials.connected
}

/// Read-modify-write the settings item with optimistic concurrency (retried on conflict). A
/// change that enables a connector or connects one takes from the tenant's connectors or
/// active-integrations quota in the same transaction (refused past a hard limit, nothing
/// written); one that disables or disconnects gives it back.
pub async fn update_settings(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    change: impl Fn(&mut ConnectorSettings),
) -> Result<ConnectorSettings, Error> {
    let key = keys::connector_settings(space, tenant, connector);
    for _ in 0..5 {
        let existing = db.store.get(&key).await?;
        let (mut settings, condition, version) = match &existing {
            Some(item) => (item.parse::<ConnectorSettings>()?, Condition::IfVersion(item.version), item.version + 1),
            None => (
                ConnectorSettings {
                    connector: connector.clone(),
                    enabled: true,
                    settings: Map::new(),
                    hmac: None,
                    webhook_secret_set: false,
                    webhook_secret_rotated_at: None,
                    credentials: CredentialStatus::default(),
                    config: Map::new(),
                    updated_at: 0,
                },
                Condition::IfAbsent,
                1,
            ),
        };
        let before = existing.as_ref().map(|_| (counts_as_connector(&settings), counts_as_integration(&settings)));
        change(&mut settings);
        settings.updated_at = db.now_ms();
        let (was_connector, was_integration) = before.unwrap_or((false, false));
        let deltas = [
            (Dimension::ConnectorsPerTenant, i64::from(counts_as_connector(&settings)) - i64::from(was_connector)),
            (Dimension::ActiveIntegrations, i64::from(counts_as_integration(&settings)) - i64::from(was_integration)),
        ];
        let value = serde_json::to_value(&settings).unwrap_or(Value::Null);
        let mut ops = vec![WriteOp::Put { item: Item::new(key.clone(), value).with_version(version), condition }];
        let mut rules = Vec::new();
        if deltas.iter().any(|(_, d)| *d != 0) {
            let resolved = super::tenants::resolve_tenant(db, tenant).await?;
            for (dimension, delta) in deltas.into_iter().filter(|(_, d)| *d != 0) {
                let rule = match &resolved {
                    Some(t) => quotas::effective(db, t, dimension),
                    None => quota::effective(
                        &db.deployment.plans,
                        Default::default(),
                        &Default::default(),
                        &Default::default(),
                        dimension,
                    ),
                };
                ops.push(quotas::gauge_op(quotas::Owner::Tenant(space, tenant), &rule, delta, None));
                rules.push((rule, delta));
            }
        }
        match db.store.transact(ops).await {
            Ok(()) => {
                db.caches.connector_settings.remove(&(keys::tenant_pk(space, tenant), connector.to_string()));
                for (rule, delta) in &rules {
                    if let Some(notice) =
                        quotas::gauge_notice(db, quotas::Owner::Tenant(space, tenant), rule, *delta).await?
                    {
                        tracing::info!(tenant = %tenant, dimension = %notice.dimension, used = notice.used, limit = notice.limit, "connections past a soft quota");
                    }
                }
                return Ok(settings);
            }
            Err(PortError::TransactionCancelled { failed }) => {
                if let Some((rule, _)) = failed.iter().find_map(|i| i.checked_sub(1).and_then(|i| rules.get(i))) {
                    return Err(quotas::gauge_refused(rule));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict("connector settings are being changed concurrently; retry".into()))
}

/// Check tenant settings against the connector's declared settings: known names, allowed
/// characters only (they end up in URLs), required ones present.
pub fn validate_settings(spec: &ConnectorSpec, settings: &Map<String, Value>) -> Result<(), Error> {
    for (name, value) in settings {
        let declared =
            spec.settings.iter().find(|s| &s.name == name).ok_or_else(|| {
                Error::invalid("bad_request", format!("connector {} has no setting {name:?}", spec.id))
            })?;
        let text = value
            .as_str()
            .ok_or_else(|| Error::invalid("bad_request", format!("setting {name:?} must be a string")))?;
        if text.is_empty() || text.len() > 253 || !text.chars().all(|c| charset_allows(&declared.charset, c)) {
            return Err(Error::invalid(
                "bad_request",
                format!("setting {name:?} may only contain the characters [{}]", declared.charset),
            ));
        }
    }
    for declared in spec.settings.iter().filter(|s| s.required) {
        if !settings.contains_key(&declared.name) {
            return Err(Error::invalid(
                "bad_request",
                format!("connector {} needs the setting {:?}", spec.id, declared.name),
            ));
        }
    }
    Ok(())
}

/// Whether `c` is in a charset written like a regex class body: `a-z0-9-.`.
fn charset_allows(charset: &str, c: char) -> bool {
    let chars: Vec<char> = charset.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            if (chars[i]..=chars[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if chars[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

/// Read-modify-write the tenant's secret document under the tenant's secrets lease.
pub async fn modify_secret_document<T>(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    change: impl FnOnce(&mut SecretDocument) -> Result<T, Error>,
) -> Result<T, Error> {
    let who = owner(space, tenant);
    leases::with_lease(db, keys::lease(space, tenant, "secrets"), LEASE_TTL, LEASE_WAIT, || async {
        let mut document = db.secrets.get_fresh(&who).await?.unwrap_or_default();
        let result = change(&mut document)?;
        db.secrets.put(&who, &document).await?;
        Ok::<T, Error>(result)
    })
    .await
}

/// The part of the secret document for one connector, created if missing.
pub fn connector_entry<'d>(document: &'d mut SecretDocument, connector: &ConnectorId) -> &'d mut Map<String, Value> {
    let connectors = document.0.entry("connectors").or_insert_with(|| json!({}));
    if !connectors.is_object() {
        *connectors = json!({});
    }
    let Value::Object(connectors) = connectors else { unreachable!("made an object above") };
    let entry = connectors.entry(connector.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    let Value::Object(entry) = entry else { unreachable!("made an object above") };
    entry
}

/// The read-only view of a connector's part of the document.
pub fn connector_view<'d>(document: &'d SecretDocument, connector: &ConnectorId) -> Option<&'d Map<String, Value>> {
    document.0.get("connectors")?.get(connector.as_str())?.as_object()
}

/// Set (or rotate) a connector's webhook signing secret. The replaced secret keeps verifying
/// for the rotation window, so deliveries signed just before the switch still go through.
pub async fn set_webhook_secret(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    secret: &str,
    rotation_window_secs: i64,
) -> Result<ConnectorSettings, Error> {
    if !(8..=1024).contains(&secret.chars().count()) {
        return Err(Error::invalid("bad_request", "a webhook secret must be 8 to 1024 characters"));
    }
    let now = db.now_ms();
    let until = now + rotation_window_secs * 1000;
    let rotated = modify_secret_document(db, space, tenant, |document| {
        let entry = connector_entry(document, connector);
        let previous = entry.get("webhook").and_then(|w| w.get("current")).and_then(Value::as_str).map(str::to_string);
        let rotated = previous.is_some();
        let mut webhook = json!({"current": secret});
        if let Some(previous) = previous.filter(|prev| prev != secret) {
            webhook["previous"] = json!(previous);
            webhook["previous_until"] = json!(until);
        }
        entry.insert("webhook".into(), webhook);
        // A secret is set: the setup is over.
        entry.remove("setup_tokens");
        Ok(rotated)
    })
    .await?;
    update_settings(db, space, tenant, connector, |s| {
        s.webhook_secret_set = true;
        if rotated {
            s.webhook_secret_rotated_at = Some(now);
        }
    })
    .await
}

/// Pending setup tokens kept per connector, newest last, and for how long.
pub const MAX_SETUP_TOKENS: usize = 5;
pub const SETUP_TOKEN_TTL_MS: i64 = 7 * 86_400_000;

/// Keep a setup token an unsigned request brought (see `WebhookSpec::setup_token_field`): at
/// most `MAX_SETUP_TOKENS`, for `SETUP_TOKEN_TTL_MS`. Anyone who knows the URL can send one, so
/// it is only ever shown to an admin, who sets the one the provider accepts as the secret.
pub async fn add_setup_token(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    token: &str,
) -> Result<(), Error> {
    let now = db.now_ms();
    modify_secret_document(db, space, tenant, |document| {
        let entry = connector_entry(document, connector);
        let mut tokens = live_setup_tokens(entry.get("setup_tokens"), now);
        tokens.retain(|t| t["token"] != token);
        tokens.push(json!({"token": token, "received_at": now}));
        let excess = tokens.len().saturating_sub(MAX_SETUP_TOKENS);
        tokens.drain(..excess);
        entry.insert("setup_tokens".into(), Value::Array(tokens));
        Ok(())
    })
    .await
}

/// The pending setup tokens of a connector, oldest first.
pub async fn setup_tokens(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Result<Vec<Value>, Error> {
    let document = db.secrets.get_fresh(&owner(space, tenant)).await?.unwrap_or_default();
    Ok(live_setup_tokens(connector_view(&document, connector).and_then(|c| c.get("setup_tokens")), db.now_ms()))
}

fn live_setup_tokens(stored: Option<&Value>, now: i64) -> Vec<Value> {
    let Some(Value::Array(tokens)) = stored else { return Vec::new() };
    tokens
        .iter()
        .filter(|t| t["token"].is_string() && t["received_at"].as_i64().is_some_and(|at| now - at < SETUP_TOKEN_TTL_MS))
        .cloned()
        .collect()
}

/// The secrets that may verify a delivery now: the current one and, during a rotation window,
/// the previous one.
pub async fn webhook_secrets(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
) -> Result<Vec<SigningSecret>, Error> {
    let Some(document) = db.secrets.get(&owner(space, tenant)).await? else {
        return Ok(Vec::new());
    };
    let Some(webhook) = connector_view(&document, connector).and_then(|c| c.get("webhook")) else {
        return Ok(Vec::new());
    };
    let mut secrets = Vec::new();
    if let Some(current) = webhook.get("current").and_then(Value::as_str) {
        secrets.push(SigningSecret::new(current));
    }
    let until = webhook.get("previous_until").and_then(Value::as_i64).unwrap_or(0);
    if let Some(previous) = webhook.get("previous").and_then(Value::as_str) {
        if until > db.now_ms() {
            secrets.push(SigningSecret::new(previous));
        }
    }
    Ok(secrets)
}
