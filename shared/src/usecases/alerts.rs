//! Evaluating alert rules, from the scheduler's tick (every minute).
//!
//! For each rule: measure its metric over its window, compare with the threshold, and on a
//! change (not firing → breached, firing → back) save the new state with a conditional write
//! first, so of two overlapping ticks one announces. Announcing records an alert event,
//! publishes `alert.firing` / `alert.resolved`, and POSTs the event to the rule's webhook,
//! signed as Standard Webhooks with the space's secret, through the outbound guard, with up to
//! `DELIVERY_ATTEMPTS` attempts. A failed delivery is recorded on the event; the platform
//! event is published either way.

use std::time::Duration;

use serde_json::{Value, json};

use super::Result;
use crate::domain::alerts::AlertMetric;
use crate::domain::ids::{AlertId, SpaceId};
use crate::domain::metrics::Rollup;
use crate::domain::webhook::signature::sign;
use crate::engine::Engine;
use crate::ports::{OutboundRequest, PlatformEvent, QueueId};
use crate::store::alerts::{self, AlertEvent, StoredRule};
use crate::store::{metrics, quotas, tenants};

/// Attempts of one webhook delivery, with a growing pause between them.
pub const DELIVERY_ATTEMPTS: u32 = 3;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most DLQ messages counted for `dlq_depth` (the listing's own bound).
const DLQ_COUNT_MAX: usize = 200;
const HOUR_MS: i64 = 3_600_000;

/// Evaluate every enabled rule of every space. Returns how many were measured. One rule's
/// failure is logged and does not stop the others.
pub async fn evaluate_all(engine: &Engine) -> Result<usize> {
    let mut measured = 0;
    for (space, id) in alerts::index(&engine.db).await? {
        match evaluate(engine, &space, &id).await {
            Ok(true) => measured += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(%space, alert = %id, error = %e, "alert rule not evaluated"),
        }
    }
    Ok(measured)
}

async fn evaluate(engine: &Engine, space: &SpaceId, id: &AlertId) -> Result<bool> {
    let db = &engine.db;
    let Some((mut stored, version)) = alerts::get(db, space, id).await? else { return Ok(false) };
    if !stored.rule.enabled {
        return Ok(false);
    }
    let now = engine.now_ms();
    let value = measure(engine, &stored, now).await?;
    stored.state.evaluated_at = Some(now);
    stored.state.last_value = value;
    let transition = value.and_then(|v| match (stored.state.firing, stored.rule.breached(v)) {
        (false, true) => Some("firing"),
        (true, false) => Some("resolved"),
        _ => None,
    });
    if transition.is_some() {
        stored.state.firing = !stored.state.firing;
        stored.state.since = Some(now);
    }
    if !alerts::save_state(db, &stored, version).await? {
        return Ok(true);
    }
    if let Some(kind) = transition {
        announce(engine, &stored, kind, value, now).await?;
    }
    Ok(true)
}

/// The rule's metric now; `None` when there is too little to measure.
async fn measure(engine: &Engine, stored: &StoredRule, now: i64) -> Result<Option<f64>> {
    let db = &engine.db;
    let rule = &stored.rule;
    let window = i64::from(rule.window_hours) * HOUR_MS;
    let from = now.div_euclid(HOUR_MS) * HOUR_MS - window + HOUR_MS;
    let rollup = |from: i64, to: i64| async move {
        let Some(tenant) = &rule.tenant else { return Ok::<_, super::Error>(Rollup::default()) };
        let mut total = Rollup::default();
        for hour in metrics::read(db, &stored.space, tenant, from, to, rule.flow.as_ref()).await? {
            total.merge(&hour.rollup);
        }
        Ok(total)
    };
    Ok(match rule.metric {
        AlertMetric::ErrorRate => {
            let r = rollup(from, now + 1).await?;
            (r.started >= rule.min_executions).then(|| r.error_rate()).flatten()
        }
        AlertMetric::DurationP95 | AlertMetric::DurationP99 => {
            let r = rollup(from, now + 1).await?;
            let d = (r.started >= rule.min_executions).then(|| r.durations()).flatten();
            d.map(|d| if rule.metric == AlertMetric::DurationP95 { d.p95_ms } else { d.p99_ms } as f64)
        }
        AlertMetric::ThroughputDrop => {
            let current = rollup(from, now + 1).await?.started;
            let previous = rollup(from - window, from).await?.started;
            (previous >= rule.min_executions)
                .then(|| (previous.saturating_sub(current) as f64 * 10_000.0 / previous as f64).round() / 100.0)
        }
        AlertMetric::DlqDepth => {
            let letters =
                super::dead_letters::list(engine.queue.as_ref(), QueueId::RunsDlq, Some(&stored.space), DLQ_COUNT_MAX)
                    .await?;
            Some(letters.len() as f64)
        }
        AlertMetric::QuotaUsage => {
            let (Some(tenant), Some(dimension)) = (&rule.tenant, rule.dimension) else { return Ok(None) };
            let Some(resolved) = tenants::resolve_tenant(db, tenant).await?.filter(|t| t.space.id == stored.space)
            else {
                return Ok(None);
            };
            let quota = quotas::effective(db, &resolved, dimension);
            let used = quotas::used(db, quotas::Owner::of(&resolved), dimension).await?;
            quota
                .limit
                .map(|limit| if limit == 0 { 100.0 } else { (used as f64 * 10_000.0 / limit as f64).round() / 100.0 })
        }
    })
}

async fn announce(engine: &Engine, stored: &StoredRule, kind: &str, value: Option<f64>, now: i64) -> Result<()> {
    let db = &engine.db;
    let rule = &stored.rule;
    let mut event = AlertEvent {
        id: alerts::new_event_id(db),
        alert: stored.id.clone(),
        kind: kind.to_string(),
        at: now,
        value,
        threshold: rule.threshold,
        metric: rule.metric,
        tenant: rule.tenant.clone(),
        flow: rule.flow.clone(),
        delivery: "none".into(),
        attempts: 0,
    };
    let detail_type = format!("alert.{kind}");
    if let Some(url) = &rule.webhook_url {
        let (delivered, attempts) = deliver(engine, &stored.space, url, &detail_type, &event).await;
        event.delivery = if delivered { "delivered" } else { "failed" }.into();
        event.attempts = attempts;
    }
    alerts::put_event(db, &stored.space, &event).await?;
    let mut detail = json!(event);
    detail["space"] = json!(stored.space);
    detail["name"] = json!(rule.name);
    let event = PlatformEvent { detail_type, detail };
    if let Err(e) = crate::engine::events::publish(engine, &stored.space, rule.tenant.as_ref(), &[event]).await {
        tracing::warn!(error = %e, alert = %stored.id, "alert event not published");
    }
    Ok(())
}

/// POST the event, signed; `(delivered, attempts)`.
async fn deliver(engine: &Engine, space: &SpaceId, url: &str, detail_type: &str, event: &AlertEvent) -> (bool, u32) {
    let Ok(url) = url::Url::parse(url) else { return (false, 0) };
    let secret = match alerts::signing_secret(&engine.db, space).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            tracing::warn!(%space, "no alert signing secret set (PUT /api/v1/alerts/signing-secret); not delivered");
            return (false, 0);
        }
        Err(e) => {
            tracing::warn!(error = %e, "alert signing secret unavailable; not delivered");
            return (false, 0);
        }
    };
    let body: Value = json!({"type": detail_type, "timestamp": event.at, "data": event});
    let body = bytes::Bytes::from(body.to_string());
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let timestamp = engine.db.clock.now_secs();
        let mut request = OutboundRequest::new(http::Method::POST, url.clone());
        request.timeout = DELIVERY_TIMEOUT;
        request.body = Some(body.clone());
        request.headers = vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), event.id.clone()),
            ("webhook-timestamp".into(), timestamp.to_string()),
            ("webhook-signature".into(), sign::standard(&secret, &event.id, timestamp, &body)),
        ];
        match engine.http.send(request).await {
            Ok(r) if (200..300).contains(&r.status) => return (true, attempt),
            Ok(r) => tracing::info!(status = r.status, attempt, "alert webhook refused"),
            Err(e) => tracing::info!(error = %e, attempt, "alert webhook failed"),
        }
        if attempt < DELIVERY_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt * attempt))).await;
        }
    }
    (false, DELIVERY_ATTEMPTS)
}
