//! Per-connection rate limits, enforced across every container with the store's atomic
//! counter: one counter per (tenant, connector, fixed window), refusing past the limit.
//! A caller over the limit waits for the next window (briefly) instead of spending the
//! provider's patience; past that it gets a retryable error.

use std::time::Duration;

use super::Platform;
use crate::domain::connector::RateLimit;
use crate::domain::ids::{ConnectorId, SpaceId, TenantId};
use crate::engine::actions::ActionError;
use crate::store::keys;

/// Windows waited for before giving up.
const MAX_WAITS: u32 = 3;
/// Longest single wait.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Take one call from the connection's budget.
pub async fn acquire(
    p: &Platform,
    space: &SpaceId,
    tenant: &TenantId,
    connector: &ConnectorId,
    limit: RateLimit,
) -> Result<(), ActionError> {
    let per = i64::from(limit.per_seconds.max(1));
    for _ in 0..=MAX_WAITS {
        let now = p.clock.now_secs();
        let window = now.div_euclid(per);
        let key = keys::quota_counter(space, tenant, &format!("rate:{connector}"), &window.to_string());
        let granted = p
            .store
            .add_counter(&key, 1, Some(i64::from(limit.requests)), Some((window + 2) * per))
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        if granted.is_some() {
            return Ok(());
        }
        let next_window_ms = (window + 1) * per * 1000 - p.now_ms();
        let wait = Duration::from_millis(next_window_ms.max(10) as u64);
        if wait > MAX_WAIT {
            return Err(ActionError::RateLimited { retry_after: wait });
        }
        tokio::time::sleep(wait).await;
    }
    Err(ActionError::RateLimited { retry_after: Duration::from_secs(limit.per_seconds.into()) })
}
