//! Quota admission as the use cases see it: take from the tenant's quota before new work is
//! queued, and announce a notice (soft limit or overage passed) as a platform event, once per
//! window. The counters and modes themselves are `store::quotas`.

use serde_json::{Value, json};

use super::Result;
use crate::domain::execution::{FlowRef, TriggerInfo};
use crate::domain::ids::{ExecutionId, SpaceId, TenantId};
use crate::domain::quota::Dimension;
use crate::engine::{Engine, runs};
use crate::ports::PlatformEvent;
use crate::store::quotas::{self, Admission, Notice, Owner};
use crate::store::tenants::ResolvedTenant;

/// Admit `n` events for the tenant (webhook deliveries, poll changes, scheduled, API and MCP
/// starts, reruns): the storage quota first (measured, cached per container), then the day's
/// events. Returns the admission and the notices to report to the caller.
pub async fn admit_events(engine: &Engine, tenant: &ResolvedTenant, n: u64) -> Result<(Admission, Vec<Notice>)> {
    let mut notices = Vec::new();
    if let Some(notice) = storage_notice(engine, tenant).await? {
        notices.push(notice);
    }
    let rule = quotas::effective(&engine.db, tenant, Dimension::EventsPerDay);
    let admission = quotas::take_windowed(&engine.db, Owner::of(tenant), &rule, n).await?;
    notices.extend(admission.notice().cloned());
    announce(engine, tenant, &notices).await;
    Ok((admission, notices))
}

/// Admit as many of `n` events as today has room for (a poll's changes: the rest are found
/// again by a later poll). Returns how many were admitted.
pub async fn admit_events_up_to(engine: &Engine, tenant: &ResolvedTenant, n: u64) -> Result<(u64, Admission)> {
    let notice = storage_notice(engine, tenant).await?;
    let rule = quotas::effective(&engine.db, tenant, Dimension::EventsPerDay);
    let (taken, admission) = quotas::take_up_to(&engine.db, Owner::of(tenant), &rule, n).await?;
    announce(engine, tenant, notice.iter().chain(admission.notice())).await;
    Ok((taken, admission))
}

/// A run started through the quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub execution_id: ExecutionId,
    /// Deferred by a `queue_for_later` quota: it will be queued at this time (epoch ms).
    pub queued_until: Option<i64>,
    pub notices: Vec<Notice>,
}

/// Start one run (API, MCP, schedule, rerun) as one event of the tenant's quota: now, or
/// deferred to the next window with room. The event is given back if the run cannot be
/// queued.
#[allow(clippy::too_many_arguments)]
pub async fn start_counted(
    engine: &Engine,
    tenant: &ResolvedTenant,
    flow: FlowRef,
    trigger: TriggerInfo,
    input: Value,
    key: Option<&str>,
    execution_id: ExecutionId,
) -> Result<Started> {
    let (admission, notices) = admit_events(engine, tenant, 1).await?;
    let queued_until = match &admission {
        Admission::Later { at_ms, .. } => Some(*at_ms),
        Admission::Now { .. } => None,
    };
    let started = match queued_until {
        Some(at) => runs::start_deferred(engine, tenant, flow, trigger, input, key, execution_id, at).await,
        None => runs::start_pinned(engine, tenant, flow, trigger, input, key, execution_id).await,
    };
    match started {
        Ok(execution_id) => Ok(Started { execution_id, queued_until, notices }),
        Err(e) => {
            admission.refund(&engine.db).await;
            Err(e.into())
        }
    }
}

/// The storage quota at admission, from the per-container cache when fresh.
async fn storage_notice(engine: &Engine, tenant: &ResolvedTenant) -> Result<Option<Notice>> {
    let db = &engine.db;
    let rule = quotas::effective(db, tenant, Dimension::StorageMb);
    let Some(limit) = rule.limit else { return Ok(None) };
    let cache_key = crate::store::keys::tenant_pk(&tenant.space.id, &tenant.tenant.id);
    if db.caches.storage.get(&cache_key).is_some_and(|bytes| bytes < limit) {
        return Ok(None);
    }
    let bytes = quotas::storage_bytes(db, Owner::of(tenant)).await?;
    db.caches.storage.put(cache_key, bytes);
    Ok(quotas::check_storage(db, tenant, bytes).await?)
}

/// Take `n` of a windowed dimension for the tenant: API calls (MCP `tools/call`,
/// tenant-scoped REST), agent sessions (MCP handshakes), LLM tokens (before a model call; what
/// it really used is settled with `settle_llm_tokens`). Refusals are 429s until the window
/// turns; the admission can be refunded if the work does not happen.
pub async fn admit(engine: &Engine, tenant: &ResolvedTenant, dimension: Dimension, n: u64) -> Result<Admission> {
    let rule = quotas::effective(&engine.db, tenant, dimension);
    let admission = quotas::take_windowed(&engine.db, Owner::of(tenant), &rule, n).await?;
    announce(engine, tenant, admission.notice()).await;
    Ok(admission)
}

/// Correct an LLM token take by what the call really used (`used - estimated`, either sign);
/// never refused, since the call has happened.
pub async fn settle_llm_tokens(engine: &Engine, tenant: &ResolvedTenant, estimated: u64, used: u64) -> Result<()> {
    let rule = quotas::effective(&engine.db, tenant, Dimension::LlmTokensPerDay);
    if rule.limit.is_none() || estimated == used {
        return Ok(());
    }
    let mut unbounded = rule;
    unbounded.mode = crate::domain::quota::Mode::SoftWarning;
    if used > estimated {
        let admission = quotas::take_windowed(&engine.db, Owner::of(tenant), &unbounded, used - estimated).await?;
        announce(engine, tenant, admission.notice()).await;
    } else {
        quotas::give_back(&engine.db, Owner::of(tenant), Dimension::LlmTokensPerDay, estimated - used).await;
    }
    Ok(())
}

/// Publish the first notice of each window as a platform event (failures are logged: the
/// work it is about goes ahead either way).
pub async fn announce<'n>(engine: &Engine, tenant: &ResolvedTenant, notices: impl IntoIterator<Item = &'n Notice>) {
    publish_notices(engine, &tenant.space.id, Some(&tenant.tenant.id), notices).await
}

/// `announce` for a space's or a tenant's own counters (`tenant` is `None` for the space's).
pub async fn publish_notices<'n>(
    engine: &Engine,
    space: &SpaceId,
    tenant: Option<&TenantId>,
    notices: impl IntoIterator<Item = &'n Notice>,
) {
    let events: Vec<PlatformEvent> = notices
        .into_iter()
        .filter(|n| n.first)
        .map(|n| PlatformEvent {
            detail_type: n.event_type().to_string(),
            detail: json!({
                "space": space, "tenant": tenant, "dimension": n.dimension,
                "mode": n.mode, "used": n.used, "limit": n.limit,
            }),
        })
        .collect();
    if events.is_empty() {
        return;
    }
    if let Err(e) = crate::engine::events::publish(engine, space, tenant, &events).await {
        tracing::warn!(error = %e, "quota notice not published");
    }
}

/// Days of daily history in a usage document.
pub const HISTORY_DAYS: u32 = 30;

/// One dimension as the usage document shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DimensionUsage {
    pub dimension: Dimension,
    /// What the counter counts (`count`, `bytes`, `tokens`).
    pub unit: &'static str,
    /// `day`, `minute`, or absent for gauges (counted as they are, not per window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<&'static str>,
    /// `null` is unlimited.
    pub limit: Option<u64>,
    pub used: u64,
    /// `used / limit`, in percent (absent when unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_used: Option<f64>,
    pub mode: crate::domain::quota::Mode,
    pub limit_source: crate::domain::quota::QuotaSource,
    pub mode_source: crate::domain::quota::QuotaSource,
    /// Daily windows: the last `HISTORY_DAYS` days that have a count, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<quotas::DailyCount>,
}

/// A tenant's usage of every dimension, with limits, modes and where they came from, and the
/// runs deferred to a later window.
pub async fn tenant_usage(engine: &Engine, tenant: &ResolvedTenant) -> Result<Value> {
    let db = &engine.db;
    let owner = Owner::of(tenant);
    let rows = Dimension::ALL.map(|dimension| async move {
        let rule = quotas::effective(db, tenant, dimension);
        let used = quotas::used(db, owner, dimension).await?;
        let history = quotas::history(db, owner, dimension, HISTORY_DAYS).await?;
        Ok::<_, super::Error>(DimensionUsage {
            dimension,
            unit: dimension.unit(),
            window: dimension.window().map(|w| match w {
                crate::domain::quota::Window::Day => "day",
                crate::domain::quota::Window::Minute => "minute",
            }),
            limit: rule.limit,
            used,
            percent_used: rule
                .limit
                .map(|l| if l == 0 { 100.0 } else { (used as f64 * 10_000.0 / l as f64).round() / 100.0 }),
            mode: rule.mode,
            limit_source: rule.limit_source,
            mode_source: rule.mode_source,
            history,
        })
    });
    let rows = futures::future::try_join_all(rows).await?;
    // Deferred runs not yet due (a released one is an execution by now).
    let now = engine.now_ms();
    let deferred: Vec<Value> = crate::store::schedules::list_deferred(db, &tenant.space.id, &tenant.tenant.id, 100)
        .await?
        .into_iter()
        .filter(|d| d.runs_at > now)
        .map(|d| json!({"execution_id": d.execution.id, "flow_id": d.execution.flow.id, "runs_at": d.runs_at}))
        .collect();
    Ok(json!({
        "tenant": tenant.tenant.id,
        "plan": tenant.plan(),
        "dimensions": rows,
        "deferred": deferred,
    }))
}

/// Count one authenticated `/api/v1` call: on the tenant it names (the path's
/// `tenants/{tenant}`, else the principal's tenant), or, naming none, on the space's own
/// per-minute budget. The platform admin key is never counted: it is the operator's own, not a
/// customer's. A tenant id that is not the caller space's counts on the space (the operation
/// then answers 404).
pub async fn admit_api_request(
    engine: &Engine,
    who: &super::auth::Principal,
    path_tenant: Option<&str>,
) -> Result<Vec<Notice>> {
    let db = &engine.db;
    let Some(space_id) = who.space.as_ref().filter(|_| !who.is_platform_admin()) else { return Ok(Vec::new()) };
    let named = path_tenant.and_then(|t| crate::domain::ids::TenantId::parse(t).ok()).or_else(|| who.tenant.clone());
    if let Some(tenant_id) = named {
        if let Some(tenant) = crate::store::tenants::resolve_tenant(db, &tenant_id).await? {
            if &tenant.space.id == space_id {
                let admission = admit(engine, &tenant, Dimension::ApiCallsPerMinute, 1).await?;
                return Ok(admission.notice().cloned().into_iter().collect());
            }
        }
    }
    let Some(space) = crate::store::tenants::get_space(db, space_id).await? else { return Ok(Vec::new()) };
    let rule = quotas::effective_for_space(db, &space, Dimension::ApiCallsPerMinute);
    let admission = quotas::take_windowed(db, Owner::Space(space_id), &rule, 1).await?;
    Ok(admission.notice().cloned().into_iter().collect())
}
