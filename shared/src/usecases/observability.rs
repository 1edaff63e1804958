//! What an operator reads about one tenant without CloudWatch: execution metrics from the
//! store's hourly rollups (`store::metrics`), and the health of its polls and connections.
//! Webhook delivery counts and poll lag as a time series are CloudWatch metrics (EMF lines,
//! `adapters::emf`, from `usecases::webhooks::observe` and the poller): counting every
//! delivery in the store would add a write to the receiver's hot path, and refused deliveries
//! are a stranger's to multiply.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Error, Result};
use crate::domain::ids::FlowId;
use crate::domain::metrics::Rollup;
use crate::engine::Engine;
use crate::store::tenants::ResolvedTenant;
use crate::store::{connections, metrics, polls};

/// How a metrics series is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Granularity> {
        match s {
            "hour" => Some(Granularity::Hour),
            "day" => Some(Granularity::Day),
            _ => None,
        }
    }
    fn millis(self) -> i64 {
        match self {
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }
}

/// What a metrics read covers: `[from, to)` in epoch ms, at most `metrics::MAX_RANGE_DAYS`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub flow: Option<FlowId>,
    pub granularity: Granularity,
}

fn summary(r: &Rollup) -> Value {
    let step_failures: Vec<Value> = r
        .step_failures
        .iter()
        .map(|(step, count)| {
            let (connector, action) = step.split_once('.').unwrap_or((step.as_str(), ""));
            json!({"connector": connector, "action": action, "count": count})
        })
        .collect();
    json!({
        "started": r.started, "succeeded": r.succeeded, "failed": r.failed, "cancelled": r.cancelled,
        "error_rate": r.error_rate(), "duration_ms": r.durations(), "step_failures": step_failures,
    })
}

/// Executions of the tenant (optionally of one flow) counted when they finished, in totals,
/// per flow and as a series.
pub async fn tenant_metrics(engine: &Engine, tenant: &ResolvedTenant, q: &MetricsQuery) -> Result<Value> {
    // Instants a user sends are checked before any arithmetic on them.
    const LATEST_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if !(0..=LATEST_MS).contains(&q.from_ms) || !(0..=LATEST_MS).contains(&q.to_ms) {
        return Err(Error::bad_request("from and to must be between 1970 and 9999"));
    }
    if q.to_ms <= q.from_ms {
        return Err(Error::bad_request("from must be before to"));
    }
    if q.to_ms - q.from_ms > metrics::MAX_RANGE_DAYS * 86_400_000 {
        return Err(Error::bad_request(format!("a range covers at most {} days", metrics::MAX_RANGE_DAYS)));
    }
    let hours =
        metrics::read(&engine.db, &tenant.space.id, &tenant.tenant.id, q.from_ms, q.to_ms, q.flow.as_ref()).await?;
    let mut totals = Rollup::default();
    let mut by_flow: BTreeMap<String, Rollup> = BTreeMap::new();
    let mut series: BTreeMap<i64, Rollup> = BTreeMap::new();
    for h in &hours {
        totals.merge(&h.rollup);
        by_flow.entry(h.flow.clone()).or_default().merge(&h.rollup);
        let at = h.hour.div_euclid(q.granularity.millis()) * q.granularity.millis();
        series.entry(at).or_default().merge(&h.rollup);
    }
    let series: Vec<Value> = series
        .iter()
        .map(|(at, r)| {
            let mut point = summary(r);
            point["at"] = json!(at);
            point
        })
        .collect();
    let flows: Vec<Value> = by_flow
        .iter()
        .map(|(flow, r)| {
            let mut entry = summary(r);
            entry["flow"] = json!(flow);
            entry
        })
        .collect();
    Ok(json!({
        "tenant": tenant.tenant.id, "from": q.from_ms, "to": q.to_ms, "flow": q.flow,
        "granularity": match q.granularity { Granularity::Hour => "hour", Granularity::Day => "day" },
        "totals": summary(&totals), "flows": flows, "series": series,
    }))
}

/// Every poll of the tenant (last success, lag behind its interval, consecutive failures, the
/// last error) and every connection's state: `connected`, `needs_reauthorization`, `failing`
/// (a poll on it is unhealthy), `not_connected` or `disabled`.
pub async fn tenant_health(engine: &Engine, tenant: &ResolvedTenant) -> Result<Value> {
    let db = &engine.db;
    let now = engine.now_ms();
    let states = polls::list_states(db, &tenant.space.id, &tenant.tenant.id, 500).await?;
    let mut failing = std::collections::HashSet::new();
    let polls: Vec<Value> = states
        .iter()
        .map(|(connector, resource, s)| {
            let healthy = s.failures < polls::UNHEALTHY_AFTER;
            if !healthy {
                failing.insert(connector.clone());
            }
            json!({
                "connector": connector, "resource": resource, "healthy": healthy,
                "last_polled_at": s.last_polled_at, "last_success_at": s.last_success_at,
                "interval_secs": s.interval_secs, "next_due": s.next_due,
                "lag_secs": super::polls::lag(s, s.interval_secs, now) / 1000,
                "failures": s.failures, "last_error": s.last_error,
            })
        })
        .collect();
    let settings = connections::list_settings(db, &tenant.space.id, &tenant.tenant.id).await?;
    let connections: Vec<Value> = settings
        .iter()
        .map(|s| {
            let needs_credentials =
                engine.catalog.find(s.connector.as_str()).is_none_or(|spec| spec.auth.needs_credentials());
            let state = if !s.enabled {
                "disabled"
            } else if s.credentials.needs_reauthorization {
                "needs_reauthorization"
            } else if failing.contains(s.connector.as_str()) {
                "failing"
            } else if s.credentials.connected || !needs_credentials {
                "connected"
            } else {
                "not_connected"
            };
            json!({"connector": s.connector, "state": state, "credentials": s.credentials, "updated_at": s.updated_at})
        })
        .collect();
    let healthy = polls.iter().all(|p| p["healthy"] == true)
        && connections.iter().all(|c| !matches!(c["state"].as_str(), Some("failing" | "needs_reauthorization")));
    Ok(json!({"tenant": tenant.tenant.id, "healthy": healthy, "polls": polls, "connections": connections}))
}
