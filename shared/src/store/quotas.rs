//! Usage quotas, enforced atomically with a counter that refuses to pass its ceiling (no
//! check-then-increment race), in fixed UTC windows.

use chrono::{TimeZone, Utc};

use super::tenants::ResolvedTenant;
use super::{Db, Error};
use crate::ports::Key;
use crate::store::keys;

/// A unit of quota taken; give it back if the work it paid for did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    key: Key,
    amount: i64,
}

impl Reservation {
    pub async fn refund(self, db: &Db) {
        if let Err(e) = db.store.add_counter(&self.key, -self.amount, None, None).await {
            tracing::warn!(error = %e, amount = self.amount, "quota refund failed; the tenant loses that much of today's quota");
        }
    }
}

/// The fixed UTC windows quotas are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Day,
    Minute,
}

impl Window {
    /// The window `now_ms` falls in: its label, when it ends (epoch seconds), and when its
    /// counter can go (a window past its end, so usage can still be read).
    fn at(self, now_ms: i64) -> (String, i64, i64) {
        let now = Utc.timestamp_millis_opt(now_ms).single().unwrap_or_default();
        match self {
            Window::Day => {
                let ends = now
                    .date_naive()
                    .succ_opt()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc().timestamp())
                    .unwrap_or(now_ms / 1000);
                (now.format("%Y-%m-%d").to_string(), ends, ends + 86_400)
            }
            Window::Minute => {
                let ends = (now_ms / 60_000 + 1) * 60;
                (now.format("%Y-%m-%dT%H:%M").to_string(), ends, ends + 60)
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Window::Day => "daily",
            Window::Minute => "per-minute",
        }
    }
}

/// Take `n` units of `dimension` (all or none) from the tenant's `limit` for the current
/// `window`. `Ok(None)` means unlimited (nothing to refund); a full quota is a 429 that says
/// when the window resets.
pub async fn reserve(
    db: &Db,
    tenant: &ResolvedTenant,
    dimension: &str,
    limit: crate::domain::tenancy::Limit,
    window: Window,
    n: u64,
) -> Result<Option<Reservation>, Error> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    let now = db.now_ms();
    let (label, ends, expires_at) = window.at(now);
    let key = keys::quota_counter(&tenant.space.id, &tenant.tenant.id, dimension, &label);
    let amount = i64::try_from(n).unwrap_or(i64::MAX);
    match db.store.add_counter(&key, amount, Some(limit as i64), Some(expires_at)).await? {
        Some(_) => Ok(Some(Reservation { key, amount })),
        None => Err(Error::LimitReached {
            message: format!("{} {dimension} quota of {limit} reached for this tenant's plan", window.describe()),
            retry_after_secs: (ends - now / 1000).max(1) as u64,
        }),
    }
}

/// The counted dimensions.
pub const EVENTS: &str = "events";
pub const API_CALLS: &str = "api_calls";
pub const AGENT_SESSIONS: &str = "agent_sessions";

/// Take one of the tenant's API calls of this minute (MCP tool calls).
pub async fn reserve_api_call(db: &Db, tenant: &ResolvedTenant) -> Result<Option<Reservation>, Error> {
    reserve(db, tenant, API_CALLS, tenant.plan().quotas().api_calls_per_minute, Window::Minute, 1).await
}

/// Take one of the tenant's agent sessions of today (MCP handshakes).
pub async fn reserve_agent_session(db: &Db, tenant: &ResolvedTenant) -> Result<Option<Reservation>, Error> {
    reserve(db, tenant, AGENT_SESSIONS, tenant.plan().quotas().agent_sessions_per_day, Window::Day, 1).await
}

/// Take one event from the tenant's daily event quota.
pub async fn reserve_event(db: &Db, tenant: &ResolvedTenant) -> Result<Option<Reservation>, Error> {
    reserve_events(db, tenant, 1).await
}

/// Take `n` events at once (all or none).
pub async fn reserve_events(db: &Db, tenant: &ResolvedTenant, n: u64) -> Result<Option<Reservation>, Error> {
    reserve(db, tenant, EVENTS, tenant.plan().quotas().events_per_day, Window::Day, n).await
}

/// Today's usage of a counted dimension.
pub async fn usage_today(db: &Db, tenant: &ResolvedTenant, dimension: &str) -> Result<i64, Error> {
    usage(db, tenant, dimension, Window::Day).await
}

/// The current window's usage of a counted dimension.
pub async fn usage(db: &Db, tenant: &ResolvedTenant, dimension: &str, window: Window) -> Result<i64, Error> {
    let (label, ..) = window.at(db.now_ms());
    let key = keys::quota_counter(&tenant.space.id, &tenant.tenant.id, dimension, &label);
    Ok(db.store.get(&key).await?.and_then(|i| i.data.as_i64()).unwrap_or(0))
}
