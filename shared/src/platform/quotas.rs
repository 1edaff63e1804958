//! Usage quotas, enforced atomically with a counter that refuses to pass its ceiling (no
//! check-then-increment race), in fixed UTC windows.

use chrono::{TimeZone, Utc};

use super::Platform;
use super::error::AppError;
use super::tenancy::ResolvedTenant;
use crate::domain::keys;
use crate::ports::Key;

/// A unit of quota taken; give it back if the work it paid for did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    key: Key,
    amount: i64,
}

impl Reservation {
    pub async fn refund(self, p: &Platform) {
        if let Err(e) = p.store.add_counter(&self.key, -self.amount, None, None).await {
            tracing::warn!(error = %e, amount = self.amount, "quota refund failed; the tenant loses that much of today's quota");
        }
    }
}

/// The window a timestamp falls in: the UTC day, and when that window's counter can go.
fn day_window(now_ms: i64) -> (String, i64) {
    let now = Utc.timestamp_millis_opt(now_ms).single().unwrap_or_default();
    let day = now.format("%Y-%m-%d").to_string();
    let next_midnight =
        now.date_naive().succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc().timestamp());
    // Keep the counter a day past its window so usage can still be read.
    (day, next_midnight.unwrap_or(now_ms / 1000) + 86_400)
}

/// Take one event from the tenant's daily event quota. `Ok(None)` means unlimited (nothing to
/// refund); a full quota is a 429 that says when the window resets.
pub async fn reserve_event(p: &Platform, tenant: &ResolvedTenant) -> Result<Option<Reservation>, AppError> {
    reserve_events(p, tenant, 1).await
}

/// Take `n` events at once (all or none).
pub async fn reserve_events(p: &Platform, tenant: &ResolvedTenant, n: u64) -> Result<Option<Reservation>, AppError> {
    let Some(limit) = tenant.plan().quotas().events_per_day else {
        return Ok(None);
    };
    let now = p.now_ms();
    let (day, expires_at) = day_window(now);
    let key = keys::quota_counter(&tenant.space.id, &tenant.tenant.id, "events", &day);
    let amount = i64::try_from(n).unwrap_or(i64::MAX);
    match p.store.add_counter(&key, amount, Some(limit as i64), Some(expires_at)).await? {
        Some(_) => Ok(Some(Reservation { key, amount })),
        None => {
            let reset_in = (expires_at - 86_400 - now / 1000).max(1) as u64;
            Err(AppError::TooManyRequests {
                message: format!("daily event quota of {limit} reached for this tenant's plan"),
                retry_after_secs: reset_in,
            })
        }
    }
}

/// Today's usage of a counted dimension.
pub async fn usage_today(p: &Platform, tenant: &ResolvedTenant, dimension: &str) -> Result<i64, AppError> {
    let (day, _) = day_window(p.now_ms());
    let key = keys::quota_counter(&tenant.space.id, &tenant.tenant.id, dimension, &day);
    Ok(p.store.get(&key).await?.and_then(|i| i.data.as_i64()).unwrap_or(0))
}
