//! Quotas, usage and overage, and where each configuration value came from.

use serde_json::{Value, json};
use switchyard::domain::config::{self, Level};
use switchyard::domain::ids::{ConnectorId, FlowId};
use switchyard::domain::quota::{Dimension, QuotaOverrides};
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, json as json_response};
use switchyard::store::quotas::{self, Owner};
use switchyard::store::{connections, flows, tenants};
use switchyard::usecases::quotas as usage;

use crate::Call;

pub async fn tenant_usage(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let tenant = call.resolved_tenant(tenant).await?;
    Ok(json_response(200, &usage::tenant_usage(call.engine(), &tenant).await?))
}

/// The space's own counters (its API calls without a tenant, its space-wide flows) and a page
/// of its tenants' usage. A tenant key sees only its own tenant.
pub async fn space_usage(call: &Call<'_>) -> Result<Response, AppError> {
    let space = tenants::require_space(call.db(), &call.space()?).await?;
    let (limit, cursor) = call.page()?;
    let (page, next) = match call.who.is_tenant_bound() {
        true => {
            let own = call.who.tenant.clone().ok_or_else(|| AppError::Forbidden("tenant key without tenant".into()))?;
            (vec![tenants::require_tenant(call.db(), &space.id, &own).await?], None)
        }
        false => tenants::list_tenants(call.db(), &space.id, limit.min(50), cursor).await?,
    };
    let mut items = Vec::with_capacity(page.len());
    for tenant in page {
        let resolved = tenants::ResolvedTenant { space: space.clone(), tenant };
        items.push(usage::tenant_usage(call.engine(), &resolved).await?);
    }
    let mut own = Vec::new();
    for dimension in [Dimension::ApiCallsPerMinute, Dimension::FlowsPerTenant] {
        let rule = quotas::effective_for_space(call.db(), &space, dimension);
        let used = quotas::used(call.db(), Owner::Space(&space.id), dimension).await?;
        own.push(json!({"dimension": dimension, "limit": rule.limit, "used": used, "mode": rule.mode,
                        "limit_source": rule.limit_source, "mode_source": rule.mode_source}));
    }
    Ok(json_response(
        200,
        &json!({"space": space.id, "plan": space.plan, "space_counters": own, "tenants": items, "next_cursor": next}),
    ))
}

/// `from` and `to` as `YYYY-MM-DD` (default: the last 30 days).
fn day_range(call: &Call<'_>) -> Result<(String, String), AppError> {
    let q = call.query();
    let now = chrono::DateTime::from_timestamp_millis(call.p.now_ms()).unwrap_or_default().date_naive();
    let parse = |name: &str, default: chrono::NaiveDate| match q.get(name) {
        None => Ok(default),
        Some(v) => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| AppError::bad_request(format!("{name} must be a date, YYYY-MM-DD"))),
    };
    let from = parse("from", now - chrono::Days::new(29))?;
    let to = parse("to", now)?;
    if from > to {
        return Err(AppError::bad_request("from must not be after to"));
    }
    Ok((from.to_string(), to.to_string()))
}

/// Metered overage per tenant per day (the `overage` mode), for billing.
pub async fn overage(call: &Call<'_>) -> Result<Response, AppError> {
    let space = call.space()?;
    let (from, to) = day_range(call)?;
    let (limit, cursor) = call.page()?;
    let (page, next) = match call.who.is_tenant_bound() {
        true => {
            let own = call.who.tenant.clone().ok_or_else(|| AppError::Forbidden("tenant key without tenant".into()))?;
            (vec![tenants::require_tenant(call.db(), &space, &own).await?], None)
        }
        false => tenants::list_tenants(call.db(), &space, limit, cursor).await?,
    };
    let mut items = Vec::new();
    for tenant in page {
        for record in quotas::overage(call.db(), Owner::Tenant(&space, &tenant.id), &from, &to).await? {
            items.push(
                json!({"tenant": tenant.id, "day": record.day, "dimension": record.dimension, "over": record.over}),
            );
        }
    }
    // The cursor pages through tenants; each page lists every record of its tenants.
    Ok(json_response(200, &json!({"from": from, "to": to, "items": items, "next_cursor": next})))
}

fn overrides_body(call: &Call<'_>) -> Result<QuotaOverrides, AppError> {
    call.body::<QuotaOverrides>()
}

pub async fn get_space_quotas(call: &Call<'_>) -> Result<Response, AppError> {
    let space = tenants::require_space(call.db(), &call.space()?).await?;
    Ok(json_response(200, &json!({"quotas": space.quotas})))
}

pub async fn put_space_quotas(call: &Call<'_>) -> Result<Response, AppError> {
    let space = tenants::set_space_quotas(call.db(), &call.space()?, overrides_body(call)?).await?;
    Ok(json_response(200, &json!({"quotas": space.quotas})))
}

pub async fn get_tenant_quotas(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let tenant = tenants::require_tenant(call.db(), &space, &tenant).await?;
    Ok(json_response(200, &json!({"quotas": tenant.quotas})))
}

pub async fn put_tenant_quotas(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let tenant = tenants::set_tenant_quotas(call.db(), &space, &tenant, overrides_body(call)?).await?;
    Ok(json_response(200, &json!({"quotas": tenant.quotas})))
}

/// Every effective configuration key for a tenant (and optionally one connector and one
/// flow), with the level that set it and the value at each level.
pub async fn effective_config(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let tenant = call.resolved_tenant(tenant).await?;
    let q = call.query();
    let integration = match q.get("connector") {
        Some(c) => {
            let id = ConnectorId::parse(c.as_str()).map_err(|e| AppError::bad_request(e.to_string()))?;
            call.engine()
                .catalog
                .find(id.as_str())
                .ok_or_else(|| AppError::not_found(format!("connector {id} not found")))?;
            connections::get_settings(call.db(), &tenant.space.id, &tenant.tenant.id, &id)
                .await?
                .map(|s| s.config)
                .unwrap_or_default()
        }
        None => Default::default(),
    };
    let flow = match q.get("flow") {
        Some(f) => {
            let id = FlowId::parse(f.as_str()).map_err(|e| AppError::bad_request(e.to_string()))?;
            let flow = flows::find_flow_for_tenant(call.db(), &tenant, &id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("flow {id} not found")))?;
            flow.definition.get("config").and_then(Value::as_object).cloned().unwrap_or_default()
        }
        None => Default::default(),
    };
    let platform = &call.db().deployment.platform_config;
    let mut levels =
        vec![(Level::Platform, platform), (Level::Space, &tenant.space.config), (Level::Tenant, &tenant.tenant.config)];
    if q.contains_key("connector") {
        levels.push((Level::Integration, &integration));
    }
    if q.contains_key("flow") {
        levels.push((Level::Flow, &flow));
    }
    let (effective, keys) = config::provenance(&levels);
    Ok(json_response(200, &json!({"effective": effective, "keys": keys})))
}
