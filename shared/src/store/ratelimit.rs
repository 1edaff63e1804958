//! Per-connection rate limits, enforced across every container with the store's atomic
//! counter: one counter per (tenant, connector, fixed window), refusing past the limit.
//! A caller over the limit waits for the next window (briefly) instead of spending the
//! provider's patience; past that it gets a retryable error.

use std::time::Duration;

use super::Db;
use crate::domain::connector::RateLimit;
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::ports::PortError;
use crate::store::keys;

/// Why a call may not be made now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitError {
    /// The connection's budget is spent until the window turns.
    #[error("rate limit of the connection reached")]
    Reached { retry_after: Duration },
    /// The counter could not be updated.
    #[error("rate limit counter: {0}")]
    Port(#[from] PortError),
}

impl RateLimitError {
    /// How long to wait before trying again (`None` when the counter is down).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RateLimitError::Reached { retry_after } => Some(*retry_after),
            RateLimitError::Port(_) => None,
        }
    }
}

/// The limit on calls made with a tenant's connection: the connector's own, overridden field
/// by field by the `rate_limit` key of the configuration cascade (platform, space, tenant,
/// integration; `domain::config`). All from per-container caches.
pub async fn effective_limit(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    spec: &crate::domain::connector::ConnectorSpec,
) -> Result<Option<RateLimit>, super::Error> {
    let resolved = super::tenants::resolve_tenant(db, tenant).await?.filter(|t| &t.space.id == space);
    let integration = super::connections::cached_settings(db, space, tenant, &spec.id).await?.map(|s| s.config);
    let empty = serde_json::Map::new();
    let (space_level, tenant_level) = match &resolved {
        Some(t) => (&t.space.config, &t.tenant.config),
        None => (&empty, &empty),
    };
    let config = crate::domain::config::cascade(&[
        &db.deployment.platform_config,
        space_level,
        tenant_level,
        integration.as_ref().unwrap_or(&empty),
    ]);
    let Some(setting) = crate::domain::config::rate_limit(&config) else { return Ok(spec.rate_limit) };
    let (requests, per_seconds) = (
        setting.requests.or(spec.rate_limit.map(|l| l.requests)),
        setting.per_seconds.or(spec.rate_limit.map(|l| l.per_seconds)),
    );
    Ok(match (requests, per_seconds) {
        (Some(requests), Some(per_seconds)) => Some(RateLimit { requests, per_seconds }),
        // Half a limit over a connector without one: the other half is per minute or 60 calls.
        (Some(requests), None) => Some(RateLimit { requests, per_seconds: 60 }),
        (None, Some(per_seconds)) => Some(RateLimit { requests: 60, per_seconds }),
        (None, None) => None,
    })
}

/// Windows waited for before giving up.
const MAX_WAITS: u32 = 3;
/// Longest single wait.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Take one call from the connection's budget.
pub async fn acquire(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    limit: RateLimit,
) -> Result<(), RateLimitError> {
    let per = i64::from(limit.per_seconds.max(1));
    for _ in 0..=MAX_WAITS {
        let now = db.clock.now_secs();
        let window = now.div_euclid(per);
        let key = keys::quota_counter(space, tenant, &format!("rate:{connector}"), &window.to_string());
        let granted = db.store.add_counter(&key, 1, Some(i64::from(limit.requests)), Some((window + 2) * per)).await?;
        if granted.is_some() {
            return Ok(());
        }
        let next_window_ms = (window + 1) * per * 1000 - db.now_ms();
        let wait = Duration::from_millis(next_window_ms.max(10) as u64);
        if wait > MAX_WAIT {
            return Err(RateLimitError::Reached { retry_after: wait });
        }
        tokio::time::sleep(wait).await;
    }
    Err(RateLimitError::Reached { retry_after: Duration::from_secs(limit.per_seconds.into()) })
}
